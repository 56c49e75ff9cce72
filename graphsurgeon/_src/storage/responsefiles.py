"""Files of learn-task's recorded responses (``continual/responses.py``): ``.npy`` shards of
float rows, each with a JSON key index, and a checksummed JSON manifest. This is the format the
bottleneck cache used before format 2, kept for the responses store only; bottleneck caches use
``cachefiles.py``.

Every write goes to a temporary name, is flushed to disk and renamed into place,
so a run killed at any moment leaves only complete shards and a complete
manifest (plus ``*.tmp`` leftovers that the next run removes).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np

from graphsurgeon._src.errors import CacheError

MANIFEST = "manifest.json"
VERSION = 1


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


def index_name(index: int) -> str:
    return f"shard-{index:05d}.index.json"


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _fsync_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shard(directory: str, index: int, array: np.ndarray, columns: dict) -> dict:
    """Write ``array`` as shard ``index`` and its examples' ``columns`` (one list per column,
    one item per row) as the shard's index file, each atomically; returns the manifest entry.
    The manifest itself lists shards only, so appending a shard costs the same at any size."""
    path = os.path.join(directory, shard_name(index))
    tmp = path + ".tmp"
    with open(tmp, "wb") as raw:
        f = _HashingWriter(raw)  # the checksum is taken as the bytes go out, not by reading them back
        np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, path)
    data = json.dumps(columns, sort_keys=True, separators=(",", ":")).encode()
    _fsync_write(os.path.join(directory, index_name(index)), data)
    return {"file": shard_name(index), "index": index_name(index), "rows": int(array.shape[0]),
            "sha256": f.hash.hexdigest(), "index_sha256": hashlib.sha256(data).hexdigest()}


class _HashingWriter:
    """A file-like object that writes through and keeps a sha256 of everything written."""

    def __init__(self, raw):
        self.raw, self.hash = raw, hashlib.sha256()

    def write(self, data):
        self.hash.update(data)
        return self.raw.write(data)


def read_index(directory: str, entry: dict) -> dict:
    """The example columns of one shard (checked against the manifest's sha256)."""
    path = os.path.join(directory, entry["index"])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CacheError(f"{path}: cannot read shard index ({e.strerror}); run the cache command with --repair") from None
    if hashlib.sha256(data).hexdigest() != entry["index_sha256"]:
        raise CacheError(f"{path}: shard index does not match its checksum; run the cache command with --repair")
    return json.loads(data.decode())


def write_manifest(directory: str, manifest: dict) -> None:
    """Replace the manifest atomically (deterministic bytes: sorted keys, no timestamps)."""
    _fsync_write(os.path.join(directory, MANIFEST), json.dumps(manifest, sort_keys=True, indent=1).encode())


def read_manifest(directory: str) -> dict | None:
    """The manifest, or None if the cache is new.

    Raises:
      CacheError: the manifest is truncated or not a graphsurgeon cache manifest.
    """
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CacheError(f"{path}: not a readable cache manifest ({e}); the file is truncated or damaged — "
                         "delete it to rebuild the cache (the shards are recomputed)") from None
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION or "shards" not in manifest:
        raise CacheError(f"{path}: not a graphsurgeon cache manifest (version {VERSION} expected)")
    return manifest


def remove_leftovers(directory: str) -> list[str]:
    """Delete ``*.tmp`` files a killed run left behind; returns their names."""
    out = []
    for p in glob.glob(os.path.join(glob.escape(directory), "*.tmp")):
        os.remove(p)
        out.append(os.path.basename(p))
    return sorted(out)


def check_shards(directory: str, shards: list, full: bool = True) -> list[str]:
    """Names of shards that are missing or whose size or sha256 differ from the manifest."""
    bad = []
    for s in shards:
        path, index = os.path.join(directory, s["file"]), os.path.join(directory, s["index"])
        missing = not os.path.exists(path) or not os.path.exists(index)
        if missing or (full and (sha256_file(path) != s["sha256"] or sha256_file(index) != s["index_sha256"])):
            bad.append(s["file"])
    return bad


class ShardFile:
    """One ``.npy`` shard: its header, and its rows read with plain sequential reads.

    No memory map: the kernel maps whole page-cache folios on a fault, so random row access
    through a map grows resident memory far beyond the rows read. Reading a whole shard
    sequentially is fast, and its buffer is freed as soon as the rows are taken.
    """

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                self.offset = f.tell()
                size = os.fstat(f.fileno()).st_size
        except (ValueError, OSError) as e:
            raise CacheError(f"{path}: not a readable .npy shard ({e}); run the cache command with --repair") from None
        if fortran:
            raise CacheError(f"{path}: Fortran-ordered shard; expected C order")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        need = self.offset + self.shape[0] * self.row_bytes
        if size < need:
            raise CacheError(f"{path}: shard is shorter than its header says ({size} < {need} bytes); run with --repair")

    def read_all(self) -> np.ndarray:
        """Every row, read sequentially."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            flat = np.fromfile(f, self.dtype, count=int(np.prod(self.shape, dtype=np.int64)))
        if flat.size != int(np.prod(self.shape, dtype=np.int64)):
            raise CacheError(f"{self.path}: shard is shorter than its header says; run with --repair")
        return flat.reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes

    def read_into(self, buffer: np.ndarray) -> np.ndarray:
        """Read every row into ``buffer`` (uint8, at least ``nbytes`` long; reused memory, no
        page-fault cost) and return the rows as a view of it."""
        view = buffer[:self.nbytes]
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            got = f.readinto(memoryview(view))
        if got != self.nbytes:
            raise CacheError(f"{self.path}: shard is shorter than its header says; run with --repair")
        return view.view(self.dtype).reshape(self.shape)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (any order), from one sequential read of the shard."""
        return self.read_all()[index]

    def close(self):
        pass
