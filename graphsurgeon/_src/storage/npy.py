"""Read ``.npy`` arrays without trusting their headers: no pickle, and nothing allocated that the
file's bytes cannot fill."""
from __future__ import annotations

import os

import numpy as np

from graphsurgeon._src.errors import DataError


def check_npy_header(f, size: int, what: str) -> None:
    """Read the header of the ``.npy`` data in ``f`` (``size`` bytes long) and check it before numpy
    allocates what it declares: no Python objects (they need pickle) and no more elements than the
    bytes that follow (a header declaring a huge shape over a few bytes).

    Raises:
      DataError: naming ``what``.
    """
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
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


def load_npy(path: str) -> np.ndarray:
    """The array in ``.npy`` file ``path``, its header checked first (:func:`check_npy_header`).

    Raises:
      DataError: naming ``path``: it cannot be opened, its header is damaged or declares more than
        the file holds, or it holds Python objects.
    """
    try:
        with open(path, "rb") as f:
            check_npy_header(f, os.fstat(f.fileno()).st_size, path)
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0][:120]
        raise DataError(f"{path}: cannot read the .npy file ({reason})") from None
