"""One activation shard of a bottleneck cache, read a range of rows at a time into a caller's buffer."""
from __future__ import annotations

import hashlib
import io
import os

import numpy as np

from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.storage.cacheshards import REPAIR_HINT, read_header

# bytes read at a time, into memory of the shard's own (allocated for the read and then freed),
# while the first read of a shard hashes the bytes outside the rows it was asked for
CHECK_CHUNK = 1 << 20


class ShardFile:
    """One activation shard as its manifest entry describes it, read a range of rows at a time into
    a caller's buffer: the rows' bytes are one contiguous range of the file.

    No memory map: the kernel maps whole page-cache folios on a fault, so random row access
    through a map grows resident memory far beyond the rows read.

    With ``verify``, the first read of the shard checks the whole file before it returns any row:
    it reads every byte of the file once, in order, into a sha256 (the rows it was asked for
    straight into the caller's buffer, the other bytes ``CHECK_CHUNK`` at a time into a chunk of
    its own), compares the digest with the manifest's and the ``.npy`` header with the manifest's
    dtype and shape, and only then returns the rows. A first read of part of a shard therefore
    reads the whole file; later reads read only their rows.
    """

    def __init__(self, directory: str, entry: dict, dtype: str, shape: list, *, verify: bool = True):
        self.path, self.entry, self.verify = os.path.join(directory, entry["file"]), entry, verify
        self.dtype, self.shape = np.dtype(dtype), (entry["rows"], *shape)
        self.nbytes = int(entry["bytes"])  # the whole file: header and rows
        self.row_bytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        self.offset = self.nbytes - entry["rows"] * self.row_bytes
        self.verified = not verify

    def read_rows(self, buffer: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Read rows ``start`` to ``stop`` (default: to the last) into the start of ``buffer``
        (uint8, at least their bytes; reused memory) and return them as a view of it.

        Returns:
          ``(stop - start, *shape)`` rows of the stored dtype.

        Raises:
          CacheError: the file cannot be read or is shorter than the manifest says, or (first read
            with ``verify``) its sha256 differs or its header is not what the manifest says.
        """
        stop = self.shape[0] if stop is None else stop
        view = buffer[:(stop - start) * self.row_bytes]
        at = self.offset + start * self.row_bytes
        try:
            with open(self.path, "rb", buffering=0) as f:
                if self.verified:
                    f.seek(at)
                    got = _read_fully(f, view)
                    total = at + got if got < len(view) else self.nbytes
                else:
                    got, total = self._check_reading(f, view, at)
        except OSError as e:
            raise CacheError(f"{self.path}: cannot read the shard ({e.strerror}); {REPAIR_HINT}") from None
        if got != len(view) or total != self.nbytes:
            raise CacheError(f"{self.path}: the shard holds {total} bytes, the manifest says {self.nbytes}; "
                             f"{REPAIR_HINT}")
        return view.view(self.dtype).reshape((stop - start,) + self.shape[1:])

    def _check_reading(self, f, view: np.ndarray, at: int) -> tuple[int, int]:
        """Read the whole file (open at its start) in order into a sha256, the bytes from ``at`` into
        ``view``; check the digest and the header. ``(bytes read into view, bytes in the file)``."""
        h, chunk, header = hashlib.sha256(), np.empty(CHECK_CHUNK, np.uint8), np.empty(self.offset, np.uint8)
        before = _read_fully(f, header)
        h.update(header[:before])
        before += _hash_through(f, h, chunk, at - self.offset)
        got = _read_fully(f, view) if before == at else 0
        h.update(view[:got])
        total = before + got + (_hash_through(f, h, chunk, None) if got == len(view) else 0)
        if total != self.nbytes:
            return got, total
        if h.hexdigest() != self.entry["sha256"]:
            raise CacheError(f"{self.path}: the shard does not match its checksum; {REPAIR_HINT}")
        shape, dtype, offset = read_header(io.BytesIO(header.tobytes()), self.path)
        if (shape, dtype, offset) != (self.shape, self.dtype, self.offset):
            raise CacheError(f"{self.path}: holds {dtype} {list(shape)}; the manifest says {self.dtype} "
                             f"{list(self.shape)}")
        self.verified = True
        return got, total


def _hash_through(f, h, chunk: np.ndarray, count: int | None) -> int:
    """Hash the next ``count`` bytes of ``f`` (the rest of it when None) into ``h``, read into
    ``chunk``; the bytes read."""
    done, mv = 0, memoryview(chunk)
    while count is None or done < count:
        n = f.readinto(mv[:len(chunk) if count is None else min(len(chunk), count - done)])
        if not n:
            break
        h.update(mv[:n])
        done += n
    return done


def _read_fully(f, view: np.ndarray) -> int:
    """Read into ``view`` until it is full or the file ends; the bytes read."""
    mv, got = memoryview(view), 0
    while got < len(view):
        n = f.readinto(mv[got:])
        if not n:
            break
        got += n
    return got
