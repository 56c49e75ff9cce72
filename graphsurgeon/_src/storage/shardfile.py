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

    With ``verify``, the first read of the shard checks the whole file: it reads every byte of the
    file once, in order, into a sha256 (the rows it was asked for straight into the caller's
    buffer, the bytes between and after them ``CHECK_CHUNK`` at a time into a chunk of its own),
    and compares the digest with the manifest's and the ``.npy`` header with the manifest's dtype
    and shape. :meth:`read_rows` returns its rows only after that check; :meth:`read_pieces` hands
    out its pieces before it (each overwrites the last in the buffer) and raises after the last
    one if the check fails, so a caller that keeps what it copies out of the pieces must not use it
    until the iteration has ended. A first read of part of a shard therefore reads the whole file;
    later reads read only their rows.
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
        (uint8, at least their bytes; reused memory) and return them, once checked, as a view of it.

        Returns:
          ``(stop - start, *shape)`` rows of the stored dtype.

        Raises:
          CacheError: see :meth:`read_pieces`.
        """
        for _, _, rows in self.read_pieces(buffer, [(start, self.shape[0] if stop is None else stop)]):
            pass
        return rows

    def read_pieces(self, buffer: np.ndarray, pieces: list):
        """``(start, stop, rows)`` for each ``(start, stop)`` of ``pieces`` (in ascending order, not
        overlapping), its rows read into the start of ``buffer`` (the same memory each time).

        Raises:
          CacheError: the file cannot be read or is shorter than the manifest says, or (first read
            with ``verify``, after the last piece) its sha256 differs or its header is not what the
            manifest says.
        """
        checking = not self.verified
        h, chunk = (hashlib.sha256(), np.empty(CHECK_CHUNK, np.uint8)) if checking else (None, None)
        header = np.empty(self.offset if checking else 0, np.uint8)
        try:
            with open(self.path, "rb", buffering=0) as f:
                at = _read_fully(f, header)
                _hash(h, header[:at])
                for start, stop in pieces:
                    view = buffer[:(stop - start) * self.row_bytes]
                    begin = self.offset + start * self.row_bytes
                    at += _hash_through(f, h, chunk, begin - at) if checking else f.seek(begin) - at
                    got = _read_fully(f, view) if at == begin else 0
                    _hash(h, view[:got])
                    if got < len(view):
                        raise CacheError(f"{self.path}: the shard holds {at + got} bytes, the manifest says "
                                         f"{self.nbytes}; {REPAIR_HINT}")
                    at += got
                    yield start, stop, view.view(self.dtype).reshape((stop - start,) + self.shape[1:])
                if checking:
                    self._check(h, header, at + _hash_through(f, h, chunk, None))
        except OSError as e:
            raise CacheError(f"{self.path}: cannot read the shard ({e.strerror}); {REPAIR_HINT}") from None

    def _check(self, h, header: np.ndarray, total: int) -> None:
        """Check a whole read's byte count, digest and header; mark the shard verified."""
        if total != self.nbytes:
            raise CacheError(f"{self.path}: the shard holds {total} bytes, the manifest says {self.nbytes}; "
                             f"{REPAIR_HINT}")
        if h.hexdigest() != self.entry["sha256"]:
            raise CacheError(f"{self.path}: the shard does not match its checksum; {REPAIR_HINT}")
        shape, dtype, offset = read_header(io.BytesIO(header.tobytes()), self.path)
        if (shape, dtype, offset) != (self.shape, self.dtype, self.offset):
            raise CacheError(f"{self.path}: holds {dtype} {list(shape)}; the manifest says {self.dtype} "
                             f"{list(self.shape)}")
        self.verified = True


def _hash(h, data) -> None:
    if h is not None:
        h.update(data)


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
