"""Binary files of a bottleneck cache: activation shards, their content keys, the data set's index.

All three are ``.npy`` files (read with ``allow_pickle=False`` semantics: plain numeric and
fixed-size byte fields only). Shards are read a range of rows at a time into a caller's reused
buffer (:mod:`graphsurgeon._src.storage.shardfile`); the index (``examples-*.npy``) is read one
part (one shard's examples) at a time, so memory follows the number of shards, not the number of
examples.
"""
from __future__ import annotations

import hashlib
import io
import os

import numpy as np

from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.mixins import agree, counted, listed
from graphsurgeon._src.storage import cachefiles, files

# per stored row: the content key (sha256 of the input's bytes) and the copy (0 = undistorted)
KEY_DTYPE = np.dtype([("key", "V32"), ("aug", "<u2")])
TRAIN = 0  # the split code of training examples (records.SPLIT_CODES), the only ones with distorted copies
# what to do about a damaged shard or index, in the words of the public function that makes caches
# (the command line says "run the cache command again with --repair")
REPAIR_HINT = "run generate_cache again with repair=True"
REPAIR = f"{REPAIR_HINT} (the index is rebuilt from the data)"
# per example of the data set (and per distorted copy of a training example)
EXAMPLE_DTYPE = np.dtype([("example", "<u4"), ("aug", "<u2"), ("row", "<u4"), ("label", "<i4"), ("split", "u1")])


def npy_bytes(array: np.ndarray) -> tuple[bytes, memoryview]:
    """``(header, data)``: the ``.npy`` file of ``array`` (C order) as ``np.save`` writes it, its data a
    view of the array's memory (no copy)."""
    header = io.BytesIO()
    d = np.lib.format.header_data_from_array_1_0(array)
    try:
        np.lib.format.write_array_header_1_0(header, d)
    except ValueError:  # a header over 64 KiB: numpy's version 2.0, as np.save picks it
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(header, d)
    return header.getvalue(), memoryview(array.reshape(-1).view(np.uint8))


def _write_npy(path: str, array: np.ndarray) -> tuple[str, int]:
    """Write ``array`` to ``path`` as ``np.save`` would (flushed to disk); ``(sha256, size)`` of the
    bytes written, hashed from the array's memory.

    Once on disk, the file's pages are dropped from the page cache (``POSIX_FADV_DONTNEED``, where
    the system has it): a large cache then recycles the same memory instead of filling gigabytes of
    page cache, whose fresh pages made later writes slower (``benchmarks/README.md``); the price is
    that a cache read right after it is made comes from the disk."""
    fd, sha, size = start_npy(path, array)
    finish_npy(fd)
    return sha, size


def start_npy(path: str, array: np.ndarray) -> tuple[int, str, int]:
    """Write ``array`` to a new file ``path`` as ``np.save`` would and ask the kernel to start writing it
    to disk (``POSIX_FADV_DONTNEED`` on dirty pages starts their write-back; the call returns at once);
    ``(open descriptor, sha256, size)``: the bytes are durable only after :func:`finish_npy`."""
    header, data = npy_bytes(np.ascontiguousarray(array))
    h = hashlib.sha256(header)
    h.update(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        for part in (memoryview(header), data):
            while len(part):
                part = part[os.write(fd, part):]
        _drop_pages(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd, h.hexdigest(), len(header) + data.nbytes


def finish_npy(fd: int) -> None:
    """fsync ``fd``, drop its (now clean) pages from the page cache, close it."""
    try:
        os.fsync(fd)
        _drop_pages(fd)
    finally:
        os.close(fd)


def _drop_pages(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # only advice: the file is written (and synced by _finish) either way


def write_shard(directory: str, shard: int, array: np.ndarray, keys: np.ndarray, *,
                attempt: str | None = None) -> dict:
    """Write shard ``shard``'s activations and content ``keys`` (``KEY_DTYPE``, one per row).

    Without ``attempt`` both files are renamed into place; with one they stay under this attempt's
    temporary names (``entry["temp"]``) until :func:`commit_shard` renames them.

    Returns:
      The manifest entry: shard, file, keys, rows, bytes, sha256, keys_sha256 (and temp).
    """
    names = (cachefiles.shard_name(shard), cachefiles.keys_name(shard))
    temps = tuple(cachefiles.temp_name(n, attempt) for n in names)
    sha, size = _write_npy(os.path.join(directory, temps[0]), array)
    keys_sha, _ = _write_npy(os.path.join(directory, temps[1]), keys.astype(KEY_DTYPE, copy=False))
    entry = {"shard": int(shard), "file": names[0], "keys": names[1], "rows": int(array.shape[0]), "bytes": size,
             "sha256": sha, "keys_sha256": keys_sha}
    if attempt:
        entry["temp"] = list(temps)
    else:
        cachefiles.rename_into_place(directory, zip(temps, names))
    return entry


def commit_shard(directory: str, entry: dict) -> bool:
    """Rename one attempt's files of ``entry`` into place, unless the shard is already there with
    the same checksums (an earlier attempt was committed). Returns True if renamed.

    Raises:
      CacheError: the attempt's files are missing or differ from their checksums.
    """
    final = os.path.join(directory, entry["file"])
    if os.path.exists(final) and sha256_file(final) == entry["sha256"] and \
            sha256_file(os.path.join(directory, entry["keys"])) == entry["keys_sha256"]:
        return False
    temps = entry["temp"]
    for tmp, want in zip(temps, (entry["sha256"], entry["keys_sha256"])):
        path = os.path.join(directory, tmp)
        if not os.path.exists(path) or sha256_file(path) != want:
            raise CacheError(f"{path}: a worker's shard file is missing or differs from the checksum it reported")
    cachefiles.rename_into_place(directory, zip(temps, (entry["file"], entry["keys"])))
    return True


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def read_keys(directory: str, entry: dict) -> np.ndarray:
    """Shard ``entry``'s content keys (``KEY_DTYPE``), checked against the manifest's sha256.

    Raises:
      CacheError: the keys file is missing, damaged, or does not hold one key per row.
    """
    path = os.path.join(directory, entry["keys"])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CacheError(f"{path}: cannot read shard keys ({e.strerror}); {REPAIR_HINT}") from None
    if hashlib.sha256(data).hexdigest() != entry["keys_sha256"]:
        raise CacheError(f"{path}: shard keys do not match their checksum; {REPAIR_HINT}")
    try:
        keys = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise CacheError(f"{path}: not a readable .npy file ({e}); {REPAIR_HINT}") from None
    if keys.dtype != KEY_DTYPE or keys.shape != (entry["rows"],):
        what = counted(len(keys), "content key") if keys.dtype == KEY_DTYPE and keys.ndim == 1 else \
            f"{keys.dtype} {list(keys.shape)}"
        raise CacheError(f"{path}: holds {what}; expected {counted(entry['rows'], 'content key')} (sha256 and copy "
                         f"number), one per row of {entry['file']}; {REPAIR_HINT}")
    return keys


def check_shards(directory: str, entries: list, dtype: str, shape: list, full: bool = True) -> dict:
    """``{shard file: what is wrong}`` for shards whose files are missing, whose size differs from
    the manifest's, whose ``.npy`` header does not hold ``dtype`` rows of ``shape`` (the manifest's),
    or (``full``) whose activations' or keys' sha256 differs or whose keys file does not hold one
    content key per row. Without ``full`` it reads only each shard's header: O(shards) small reads."""
    bad, dtype = {}, np.dtype(dtype)
    for s in entries:
        path, keys = os.path.join(directory, s["file"]), os.path.join(directory, s["keys"])
        if not os.path.exists(path):
            bad[s["file"]] = "missing"
        elif not os.path.exists(keys):
            bad[s["file"]] = f"its keys file {s['keys']} is missing"
        elif os.path.getsize(path) != s["bytes"]:
            bad[s["file"]] = f"{os.path.getsize(path)} bytes, the manifest says {s['bytes']}"
        else:
            header = _header_problem(path, s, dtype, shape)
            if header:
                bad[s["file"]] = header
            elif full and sha256_file(path) != s["sha256"]:
                bad[s["file"]] = "checksum differs"
            elif full and sha256_file(keys) != s["keys_sha256"]:
                bad[s["file"]] = f"its keys file {s['keys']} does not match its checksum"
            elif full:
                header = _header_problem(keys, dict(s, bytes=os.path.getsize(keys)), KEY_DTYPE, [])
                if header:
                    bad[s["file"]] = f"its keys file {s['keys']} {header}"
    return bad


def _header_problem(path: str, entry: dict, dtype, shape: list) -> str | None:
    """What is wrong with the ``.npy`` header of shard ``entry``'s file at ``path``: rows of another
    dtype or shape than the manifest's (``None`` dimensions take any size), or rows that do not end
    at the file's end; None if nothing."""
    try:
        with open(path, "rb") as f:
            got_shape, got_dtype, offset = read_header(f, path)
    except CacheError:
        return "not a readable .npy header"
    want = (entry["rows"], *shape)
    if got_dtype != dtype or len(got_shape) != len(want) or any(w is not None and w != g
                                                                for w, g in zip(want, got_shape)):
        return f"holds {_dtype_name(got_dtype)} {list(got_shape)}, expected {_dtype_name(dtype)} {list(want)}"
    end = offset + int(np.prod(got_shape, dtype=np.int64)) * got_dtype.itemsize
    if end != entry["bytes"]:
        return f"its header puts the end of its rows at byte {end}; the manifest says the file holds {entry['bytes']}"
    return None


def _dtype_name(dtype) -> str:
    return "content keys" if dtype == KEY_DTYPE else str(dtype)


def describe_bad(bad: dict) -> str:
    """``shard shard-00001.npy (checksum differs) does not match the manifest``, ``shards shard-00001.npy
    (checksum differs), shard-00002.npy (missing) do not match the manifest``, for messages."""
    return f"{listed('shard', [f'{name} ({why})' for name, why in bad.items()])} " \
           f"{agree(len(bad), 'does', 'do')} not match the manifest"


def read_header(f, path: str):
    """``(shape, dtype, data offset)`` of the ``.npy`` file open as ``f`` (at its start).

    Raises:
      CacheError: not a readable ``.npy`` header, or a Fortran-ordered or object array.
    """
    try:
        shape, fortran, dtype = files.npy_header(f)
    except (ValueError, OSError, EOFError) as e:
        raise CacheError(f"{path}: not a readable .npy file ({e}); {REPAIR_HINT}") from None
    if fortran or dtype.hasobject:
        raise CacheError(f"{path}: Fortran-ordered or object array; expected a C-ordered numeric array")
    return tuple(shape), np.dtype(dtype), f.tell()


def write_examples(directory: str, view: np.ndarray, shards: np.ndarray) -> dict:
    """Write the data set's index: ``view`` (``EXAMPLE_DTYPE``) grouped by ``shards`` (each row's
    shard, sorted), as ``examples-<sha256[:16]>.npy``, unless that file is already there.

    Returns:
      The manifest's ``examples`` table: file, sha256, rows, and one part per shard (shard,
      start, count, rows per split (distorted copies included), sha256 of the part's bytes).
    """
    data = io.BytesIO()
    np.lib.format.write_array(data, np.ascontiguousarray(view, EXAMPLE_DTYPE), allow_pickle=False)
    raw = data.getvalue()
    sha = hashlib.sha256(raw).hexdigest()
    offset = len(raw) - len(view) * EXAMPLE_DTYPE.itemsize
    parts = []
    bounds = np.flatnonzero(np.diff(shards)) + 1 if len(shards) else np.zeros(0, np.int64)
    for a, b in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(shards)]])):
        if b <= a:
            continue
        splits = [int(n) for n in np.bincount(view["split"][a:b], minlength=3)[:3]]
        part = raw[offset + a * EXAMPLE_DTYPE.itemsize: offset + b * EXAMPLE_DTYPE.itemsize]
        parts.append({"shard": int(shards[a]), "start": int(a), "count": int(b - a), "splits": splits,
                      "sha256": hashlib.sha256(part).hexdigest()})
    name = cachefiles.examples_name(sha)
    path = os.path.join(directory, name)
    if not (os.path.exists(path) and sha256_file(path) == sha):
        cachefiles.write_file(path, raw)
    return {"file": name, "sha256": sha, "rows": len(view), "parts": parts}


class ExamplesFile:
    """The data set's index (the manifest's ``examples`` table and its file), read one part at a time.

    With ``verify``, when opened: the file's header and size, and the table's sense (O(parts),
    :func:`check_index_table`); when a part is read: its sha256, then its rows against the manifest
    (the part's split counts, its shard's rows, the data set's examples, copies and labels).
    """

    def __init__(self, directory: str, manifest: dict, *, verify: bool = True):
        table, data = manifest["examples"], manifest["data"]
        self.path, self.verify = os.path.join(directory, table["file"]), verify
        self.shard_rows = {s["shard"]: s["rows"] for s in manifest["shards"]}
        self.examples, self.copies, self.labels = data["examples"], manifest["copies"], data["labels"]
        try:
            with open(self.path, "rb") as f:
                shape, dtype, self.offset = read_header(f, self.path)
                size = os.fstat(f.fileno()).st_size
        except OSError as e:
            raise CacheError(f"{self.path}: cannot read the data set's index ({e.strerror}); {REPAIR}") from None
        if dtype != EXAMPLE_DTYPE or shape != (table["rows"],) or size != self.offset + table["rows"] * dtype.itemsize:
            raise CacheError(f"{self.path}: holds {dtype} {list(shape)} in {size} bytes; expected {table['rows']} "
                             f"examples; {REPAIR}")
        if verify:
            check_index_table(self.path, manifest)

    def part(self, part: dict) -> np.ndarray:
        """The examples of one part (``EXAMPLE_DTYPE``).

        Raises:
          CacheError: the part's bytes differ from its sha256, or (``verify``) its rows disagree
            with the manifest.
        """
        n = part["count"] * EXAMPLE_DTYPE.itemsize
        with open(self.path, "rb") as f:
            f.seek(self.offset + part["start"] * EXAMPLE_DTYPE.itemsize)
            data = f.read(n)
        if len(data) != n or (self.verify and hashlib.sha256(data).hexdigest() != part["sha256"]):
            raise CacheError(f"{self.path}: the index of shard {part['shard']} does not match its checksum; {REPAIR}")
        rows = np.frombuffer(data, EXAMPLE_DTYPE)
        problem = self._problem(part, rows) if self.verify and len(rows) else None
        if problem:
            raise CacheError(f"{self.path}: the index of shard {part['shard']} {problem}; {REPAIR}")
        return rows

    def _problem(self, part: dict, rows: np.ndarray) -> str | None:
        splits = np.bincount(rows["split"], minlength=3).tolist()
        if splits != part["splits"]:
            return f"holds {splits} rows of train, validation, test; the manifest says {part['splits']}"
        checks = (("row", 0, self.shard_rows[part["shard"]] - 1, "a row of its shard (0..{hi})"),
                  ("example", 0, self.examples - 1, "an example of the data set (0..{hi})"),
                  ("aug", 0, self.copies, "a copy number (0..{hi})"),
                  ("label", self.labels[0], self.labels[1], "a label of the data set ({lo}..{hi})"))
        for field, lo, hi, what in checks:
            bad = rows[field][(rows[field] < lo) | (rows[field] > hi)]
            if len(bad):
                return f"holds {field} {int(bad[0])}, not {what.format(lo=lo, hi=hi)}"
        return None


def check_index_table(path: str, manifest: dict) -> None:
    """Check the manifest's ``examples`` table against itself and the data set it indexes, in
    O(parts): the parts follow each other from row 0, each as long as its split counts add up to,
    and together hold, per split, the data set's examples (training ones with their copies).

    Raises:
      CacheError: naming the index file ``path`` and what was expected.
    """
    table, data, copies = manifest["examples"], manifest["data"], manifest["copies"]
    at, per_split = 0, [0, 0, 0]
    for p in table["parts"]:
        if p["start"] != at or p["count"] != sum(p["splits"]) or not p["count"]:
            raise CacheError(f"{path}: the manifest puts the index of shard {p['shard']} at rows {p['start']} to "
                             f"{p['start'] + p['count'] - 1} with {p['splits']} rows per split; each part must "
                             f"start where the one before ends (row {at}) and hold its splits' rows; {REPAIR}")
        at += p["count"]
        per_split = [a + b for a, b in zip(per_split, p["splits"])]
    if at != table["rows"]:
        raise CacheError(f"{path}: the manifest's parts hold {at} rows of the index, its table says {table['rows']}; "
                         f"{REPAIR}")
    want = [n * (1 + copies) if code == TRAIN else n for code, n in enumerate(data["splits"])]
    if per_split != want:
        raise CacheError(f"{path}: indexes {at} rows ({per_split} of train, validation, test); the data set it "
                         f"indexes has {data['examples']} examples ({data['splits']}) and {copies} distorted "
                         f"{agree(copies, 'copy', 'copies')} per training example, so {sum(want)} rows ({want}) "
                         f"were expected; {REPAIR}")


def check_examples(directory: str, manifest: dict) -> None:
    """Check a complete cache's index as a cache run that extends it does: what
    :class:`ExamplesFile` checks when opened and when it reads each part, and the sha256 of the
    whole file.

    Raises:
      CacheError: naming the index file and what was expected.
    """
    index = ExamplesFile(directory, manifest)
    for part in manifest["examples"]["parts"]:
        index.part(part)
    path = os.path.join(directory, manifest["examples"]["file"])
    if sha256_file(path) != manifest["examples"]["sha256"]:
        raise CacheError(f"{path}: the data set's index does not match its checksum; {REPAIR}")
