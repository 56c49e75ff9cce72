"""Files of a bottleneck cache: binary ``.npy`` shards and a JSON manifest.

Every write goes to a temporary name, is flushed to disk and renamed into place,
so a run killed at any moment leaves only complete shards and a complete
manifest (plus ``*.tmp`` leftovers that the next run removes). Shards are read
through memory maps whose pages are released as reading goes on, so a cache
larger than memory is read with flat resident memory.
"""
from __future__ import annotations

import glob
import hashlib
import json
import mmap
import os

import numpy as np

from graphsurgeon.errors import CacheError

MANIFEST = "manifest.json"
VERSION = 1


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


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


def write_shard(directory: str, index: int, array: np.ndarray) -> dict:
    """Write ``array`` as shard ``index`` atomically; returns its manifest entry."""
    path = os.path.join(directory, shard_name(index))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return {"file": shard_name(index), "rows": int(array.shape[0]), "sha256": sha256_file(path)}


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
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION or "examples" not in manifest:
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
        path = os.path.join(directory, s["file"])
        if not os.path.exists(path):
            bad.append(s["file"])
        elif full and sha256_file(path) != s["sha256"]:
            bad.append(s["file"])
    return bad


class ShardFile:
    """Random row access to one ``.npy`` shard.

    The shard is memory-mapped and rows are gathered with numpy indexing (C speed); every
    ``release_bytes`` read, the mapped pages are dropped from this process with
    ``madvise(MADV_DONTNEED)`` (they stay in the OS page cache), so resident memory stays
    flat however large the cache is.
    """

    def __init__(self, path: str, release_bytes: int = 64 << 20):
        self.path = path
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                offset = f.tell()
                size = os.fstat(f.fileno()).st_size
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except (ValueError, OSError) as e:
            raise CacheError(f"{path}: not a readable .npy shard ({e}); run the cache command with --repair") from None
        if fortran:
            raise CacheError(f"{path}: Fortran-ordered shard; expected C order")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        need = offset + int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        if size < need:
            raise CacheError(f"{path}: shard is shorter than its header says ({size} < {need} bytes); run with --repair")
        self._array = np.frombuffer(self._mm, self.dtype, count=int(np.prod(self.shape)), offset=offset
                                    ).reshape(self.shape) if self._mm else np.empty(self.shape, self.dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._release, self._since = release_bytes, 0

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (any order) as a new array."""
        out = self._array[index]
        self._since += len(index) * self.row_bytes
        if self._mm is not None and self._since >= self._release:
            self._mm.madvise(mmap.MADV_DONTNEED)
            self._since = 0
        return out

    def close(self):
        self._array = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a caller still holds a view; the map closes when it is dropped
                pass
