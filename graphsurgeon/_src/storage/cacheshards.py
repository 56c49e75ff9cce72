"""Binary files of a bottleneck cache: activation shards, their content keys, the data set's index.

All three are ``.npy`` files (read with ``allow_pickle=False`` semantics: plain numeric and
fixed-size byte fields only). Shards are read whole and sequentially into a caller's reused
buffer; the index (``examples-*.npy``) is read one part (one shard's examples) at a time, so
memory follows the number of shards, not the number of examples.
"""
from __future__ import annotations

import hashlib
import io
import os

import numpy as np

from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.storage import cachefiles, files

# per stored row: the content key (sha256 of the input's bytes) and the copy (0 = undistorted)
KEY_DTYPE = np.dtype([("key", "V32"), ("aug", "<u2")])
# per example of the data set (and per distorted copy of a training example)
EXAMPLE_DTYPE = np.dtype([("example", "<u4"), ("aug", "<u2"), ("row", "<u4"), ("label", "<i4"), ("split", "u1")])


class _HashingWriter:
    """A file-like object that writes through and keeps a sha256 of everything written."""

    def __init__(self, raw):
        self.raw, self.hash, self.size = raw, hashlib.sha256(), 0

    def write(self, data):
        self.hash.update(data)
        self.size += len(data)
        return self.raw.write(data)


def _write_npy(path: str, array: np.ndarray) -> tuple[str, int]:
    """Write ``array`` to ``path`` (flushed to disk); ``(sha256, size)`` taken as the bytes go out."""
    with open(path, "wb") as raw:
        f = _HashingWriter(raw)
        np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
        raw.flush()
        os.fsync(raw.fileno())
    return f.hash.hexdigest(), f.size


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
        raise CacheError(f"{path}: cannot read shard keys ({e.strerror}); run the cache command with --repair") from None
    if hashlib.sha256(data).hexdigest() != entry["keys_sha256"]:
        raise CacheError(f"{path}: shard keys do not match their checksum; run the cache command with --repair")
    keys = np.load(io.BytesIO(data), allow_pickle=False)
    if keys.dtype != KEY_DTYPE or keys.shape != (entry["rows"],):
        raise CacheError(f"{path}: holds {keys.dtype} {list(keys.shape)}; expected {entry['rows']} content keys")
    return keys


def check_shards(directory: str, entries: list, full: bool = True) -> dict:
    """``{shard file: what is wrong}`` for shards whose files are missing, whose size differs from
    the manifest's, or (``full``) whose sha256 differs."""
    bad = {}
    for s in entries:
        path, keys = os.path.join(directory, s["file"]), os.path.join(directory, s["keys"])
        if not os.path.exists(path) or not os.path.exists(keys):
            bad[s["file"]] = "missing"
        elif os.path.getsize(path) != s["bytes"]:
            bad[s["file"]] = f"{os.path.getsize(path)} bytes, the manifest says {s['bytes']}"
        elif full and (sha256_file(path) != s["sha256"] or sha256_file(keys) != s["keys_sha256"]):
            bad[s["file"]] = "checksum differs"
    return bad


def describe_bad(bad: dict) -> str:
    """``shard-00001.npy (checksum differs), …`` for messages."""
    return ", ".join(f"{name} ({why})" for name, why in bad.items())


def _read_header(f, path: str):
    try:
        shape, fortran, dtype = files.npy_header(f)
    except (ValueError, OSError, EOFError) as e:
        raise CacheError(f"{path}: not a readable .npy file ({e}); run the cache command with --repair") from None
    if fortran or dtype.hasobject:
        raise CacheError(f"{path}: Fortran-ordered or object array; expected a C-ordered numeric array")
    return tuple(shape), np.dtype(dtype), f.tell()


class ShardFile:
    """One activation shard as its manifest entry describes it, read whole into a caller's buffer.

    No memory map: the kernel maps whole page-cache folios on a fault, so random row access
    through a map grows resident memory far beyond the rows read. The shard's sha256 is checked
    the first time it is read (``verify``), before any of its rows are returned.
    """

    def __init__(self, directory: str, entry: dict, dtype: str, shape: list, *, verify: bool = True):
        self.path, self.entry, self.verify = os.path.join(directory, entry["file"]), entry, verify
        self.dtype, self.shape = np.dtype(dtype), (entry["rows"], *shape)
        self.nbytes = int(entry["bytes"])  # the whole file: header and rows
        self.row_bytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        self.offset = self.nbytes - entry["rows"] * self.row_bytes
        self.verified = not verify

    def read_into(self, buffer: np.ndarray) -> np.ndarray:
        """Read the whole file into ``buffer`` (uint8, at least ``nbytes``; reused memory) and
        return its rows as a view of it.

        Raises:
          CacheError: the file is shorter, its header is not what the manifest says, or (first read
            with ``verify``) its sha256 differs.
        """
        view = buffer[:self.nbytes]
        try:
            with open(self.path, "rb") as f:
                got = f.readinto(memoryview(view))
        except OSError as e:
            raise CacheError(f"{self.path}: cannot read the shard ({e.strerror}); run the cache command with "
                             "--repair") from None
        if got != self.nbytes:
            raise CacheError(f"{self.path}: the shard holds {got} bytes, the manifest says {self.nbytes}; run the "
                             "cache command with --repair")
        if not self.verified:
            if hashlib.sha256(view).hexdigest() != self.entry["sha256"]:
                raise CacheError(f"{self.path}: the shard does not match its checksum; run the cache command with "
                                 "--repair")
            shape, dtype, offset = _read_header(io.BytesIO(view[:self.offset].tobytes()), self.path)
            if (shape, dtype, offset) != (self.shape, self.dtype, self.offset):
                raise CacheError(f"{self.path}: holds {dtype} {list(shape)}; the manifest says {self.dtype} "
                                 f"{list(self.shape)}")
            self.verified = True
        return view[self.offset:].view(self.dtype).reshape(self.shape)


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
    """The data set's index, read one part at a time (each part checked against its sha256)."""

    def __init__(self, directory: str, table: dict, *, verify: bool = True):
        self.path, self.verify = os.path.join(directory, table["file"]), verify
        try:
            with open(self.path, "rb") as f:
                shape, dtype, self.offset = _read_header(f, self.path)
                size = os.fstat(f.fileno()).st_size
        except OSError as e:
            raise CacheError(f"{self.path}: cannot read the data set's index ({e.strerror}); run the cache "
                             "command again") from None
        if dtype != EXAMPLE_DTYPE or shape != (table["rows"],) or size != self.offset + table["rows"] * dtype.itemsize:
            raise CacheError(f"{self.path}: holds {dtype} {list(shape)} in {size} bytes; expected {table['rows']} "
                             "examples; run the cache command again")

    def part(self, part: dict) -> np.ndarray:
        """The examples of one part (``EXAMPLE_DTYPE``).

        Raises:
          CacheError: the part's bytes differ from its sha256.
        """
        n = part["count"] * EXAMPLE_DTYPE.itemsize
        with open(self.path, "rb") as f:
            f.seek(self.offset + part["start"] * EXAMPLE_DTYPE.itemsize)
            data = f.read(n)
        if len(data) != n or (self.verify and hashlib.sha256(data).hexdigest() != part["sha256"]):
            raise CacheError(f"{self.path}: the index of shard {part['shard']} does not match its checksum; "
                             "run the cache command again")
        return np.frombuffer(data, EXAMPLE_DTYPE)
