"""Small file operations the layers above need, named for what they do: read an array or a TOML
file, write an ``.npz`` or a figure atomically, make, empty and remove directories.

The layers above storage never call ``open``, ``os``/``shutil``/``tempfile`` file functions or
``np.load``/``np.save`` themselves (``tests/test_architecture.py`` checks it).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile

import numpy as np

from graphsurgeon._src.errors import DataError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TOMLDecodeError = tomllib.TOMLDecodeError


def read_npy(path: str) -> np.ndarray:
    """The array in the ``.npy`` file at ``path`` (``~`` expanded), its header checked first
    (:func:`check_npy_header`: no pickled objects, nothing allocated that the file cannot fill).

    Raises:
      DataError: the header declares Python objects or more bytes than the file holds.
      OSError, ValueError, EOFError: as ``np.load`` does for a missing or malformed file.
    """
    path = os.path.expanduser(path)
    with open(path, "rb") as f:
        check_npy_header(f, os.fstat(f.fileno()).st_size, path)
    return np.load(path, allow_pickle=False)


def npy_header(f) -> tuple:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at ``f``'s position (left just
    after it).

    Raises:
      ValueError, OSError, EOFError: as numpy's header readers do for a malformed header.
    """
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


def check_npy_header(f, size: int, what: str) -> None:
    """Read the header of the ``.npy`` data in ``f`` (``size`` bytes long) and check it before numpy
    allocates what it declares: no Python objects (they need pickle) and no more elements than the
    bytes that follow (a header declaring a huge shape over a few bytes).

    Raises:
      DataError: naming ``what``.
    """
    try:
        shape, _, dtype = npy_header(f)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{what}: not a readable .npy array ({str(e).splitlines()[0][:120]})") from None
    if dtype.hasobject:
        raise DataError(f"{what}: holds Python objects (dtype object), which only pickle can load, and graphsurgeon "
                        "never unpickles data; save numeric arrays")
    count = 1
    for d in shape:
        count *= d
    need = count * dtype.itemsize
    if f.tell() + need > size:
        raise DataError(f"{what}: declares {dtype} {list(shape)} ({need} bytes) but holds {size - f.tell()} bytes; "
                        "the file is truncated or damaged")


def read_npz(path: str) -> dict:
    """``{name: ndarray}`` of the ``.npz`` at ``path``, each member's ``.npy`` header checked before
    numpy allocates what it declares (:func:`check_npy_header`: no
    pickled objects, no shape larger than the bytes stored).

    Raises:
      DataError: not a readable ``.npz``, or a member whose header fails the check; naming the file.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".npy"):
                    with zf.open(info) as f:
                        check_npy_header(f, info.file_size, f"{path} (array '{info.filename[:-4]}')")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: cannot read as .npz ({e})") from None


def read_bytes(path: str, error: type[Exception], suffix: str = "") -> bytes:
    """The bytes of the file at ``path``.

    Raises:
      error: the file cannot be read; the message is ``PATH: <the system's reason>`` and ``suffix``.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise error(f"{path}: {e.strerror or e}{suffix}") from None


def read_lines(path: str) -> list[str]:
    """The lines of the UTF-8 text file at ``path``, without their line ends.

    Raises:
      OSError: the file cannot be read.
    """
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def read_toml(path: str) -> dict:
    """The table in the TOML file at ``path``.

    Raises:
      OSError: the file cannot be read. TOMLDecodeError: it is not valid TOML.
    """
    with open(path, "rb") as f:
        return tomllib.load(f)


def write_npz(path: str, **arrays) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` at ``path`` atomically (temp file, then rename)."""
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def save_figure(figure, path: str) -> str:
    """Save a matplotlib ``figure`` at ``path`` (its directory made if needed) atomically; returns ``path``."""
    make_dir(os.path.dirname(os.path.abspath(path)))
    root, ext = os.path.splitext(path)
    tmp = root + ".tmp" + ext
    figure.savefig(tmp)
    os.replace(tmp, path)
    return path


def tree_bytes(path: str) -> int:
    """Bytes of every file under the directory ``path``."""
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, names in os.walk(path) for f in names)


def make_dir(path: str) -> str:
    """Make directory ``path`` and its parents if they are missing; returns ``path``."""
    os.makedirs(path, exist_ok=True)
    return path


def new_temp_dir(prefix: str, parent: str | None = None) -> str:
    """A new empty directory named ``prefix*`` under ``parent`` (the system's temporary directory if None)."""
    return tempfile.mkdtemp(prefix=prefix, dir=parent)


def new_output_dir(prefix: str, parent: str) -> str:
    """A new empty directory ``parent/prefix*`` that will be renamed into place as an output: unlike
    ``tempfile.mkdtemp``'s (mode 0700, kept through the rename) its mode is the one ``mkdir`` gives a
    new directory there (0777 less the umask, as ``mkdir -p`` would make it)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    probe = os.path.join(path, ".mode")
    os.mkdir(probe)
    try:
        os.chmod(path, os.stat(probe).st_mode & 0o7777)
    finally:
        os.rmdir(probe)
    return path


@contextlib.contextmanager
def scratch_dir(parent: str, prefix: str):
    """A new directory ``parent/prefix*`` for the duration of a ``with`` block, removed with all it
    holds at the end, also when the block raises."""
    path = new_temp_dir(prefix, parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove(path: str) -> None:
    """Remove the file or directory tree at ``path``; nothing there is not an error."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)
