"""The data files of a V2 checkpoint: tensors' bytes read and written in bounded chunks.

A numeric tensor is stored as its raw little-endian bytes; its index entry holds the
masked crc32c of those bytes. A string tensor is stored as the varint64 length of each
element, a masked crc32c of the lengths (each as a little-endian uint32, or uint64 past
4 GiB), then the elements' bytes; its entry's crc32c covers the lengths (as checksummed),
the length checksum and the bytes. TensorFlow checks both on every read.

>>> data, crc = encode_strings(np.array([b"ab", b""], object))
>>> data[:2], len(data), data[-2:]  # lengths 2 and 0, their 4-byte checksum, the bytes
(b'\\x02\\x00', 8, b'ab')
"""
from __future__ import annotations

import errno
import mmap
import os
import struct
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from graphsurgeon._src.errors import CorruptCheckpointError
from graphsurgeon._src.storage.bundle import crc32c, mask
from graphsurgeon._src.storage.pages import aligned
from graphsurgeon._src.storage.written import WrittenRanges

CHUNK_BYTES = 16 << 20  # a multiple of every dtype's size


def read_chunks(path: str, offset: int, size: int, *, crc: int | None = None, what: str = "",
                chunk_bytes: int = CHUNK_BYTES, private: bool = False, convert=None, pool=None, ahead: int = 2):
    """Yield the bytes ``[offset, offset + size)`` of ``path`` as uint8 arrays of at most
    ``chunk_bytes``, each a view of the file mapped into memory (no copy; the pages are read
    from the page cache, or from disk with the next chunk's read-ahead asked for unless its first
    and last pages are cached already). A chunk stays valid while it is referenced; its mapping
    goes with its last reference, so memory stays near one chunk whatever the tensor's size (a
    few with a ``pool``). The arrays are read-only, or with ``private`` writable copy-on-write
    views (a write changes this process's copy of a page, never the file), which libraries that
    only take writable buffers accept without a copy.

    With ``convert``, ``convert(chunk)`` is yielded in place of each chunk; with a ``pool``
    (a thread pool) too, the chunks of a range longer than one chunk are mapped and converted by
    its threads, up to ``ahead`` chunks beyond the one last yielded, and yielded in order (the
    crc32c is still checked in order, by the caller's thread); a range of one chunk is mapped and
    converted by the caller's thread, which would only wait for a pool thread's result.

    Raises:
      CorruptCheckpointError: the file ends early, or (``crc`` given: the masked crc32c from
        the index) the bytes do not match it; the message names ``path`` and ``what``.
    """
    what = what or "a tensor"
    running = 0
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
        if os.fstat(fd).st_size < offset + size:
            raise CorruptCheckpointError(f"{path}: ends inside {what} (needs bytes up to {offset + size}); "
                                         "the data file is truncated")

        def load(start: int):
            n = min(chunk_bytes, offset + size - start)
            _read_ahead(fd, start + n, min(chunk_bytes, offset + size - start - n))
            chunk = _map(fd, start, n, private)
            return chunk, (chunk if convert is None else convert(chunk))

        starts = range(offset, offset + size, chunk_bytes)
        for chunk, out in _in_order(load, starts, pool if len(starts) > 1 else None, ahead):
            if crc is not None:
                running = crc32c(chunk, running)
            del chunk
            yield out
    if crc is not None and mask(running) != crc:
        raise CorruptCheckpointError(f"{path}: the bytes of {what} do not match their crc32c in the index; "
                                     "the data file is damaged")


def _map(fd: int, start: int, n: int, private: bool) -> np.ndarray:
    """Bytes ``[start, start + n)`` of ``fd`` mapped into memory, as a uint8 array (see :func:`read_chunks`)."""
    base = start - start % mmap.ALLOCATIONGRANULARITY
    window = mmap.mmap(fd, start + n - base, access=mmap.ACCESS_COPY if private else mmap.ACCESS_READ, offset=base)
    return np.frombuffer(window, np.uint8, n, start - base)  # unmapped when the array and its views are gone


def _in_order(fn, items, pool, ahead: int):
    """``fn(item)`` for each item, in order: computed here, or with ``pool`` by its threads up to
    ``ahead`` items beyond the one last yielded (those still running are waited for if the
    caller stops early, so nothing they use is closed under them)."""
    if pool is None:
        yield from map(fn, items)
        return
    pending = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        wait(pending)


def _read_ahead(fd: int, offset: int, n: int) -> None:
    """Ask the kernel to start reading ``[offset, offset + n)`` of ``fd`` into the page cache,
    unless its first and last pages are there already (a read that would wait for the disk
    fails at once with ``RWF_NOWAIT``; asking costs a walk over every page of the range)."""
    if n <= 0:
        return
    if hasattr(os, "RWF_NOWAIT"):
        probe = bytearray(1)
        try:
            if all(os.preadv(fd, [probe], at, os.RWF_NOWAIT) == 1 for at in (offset, offset + n - 1)):
                return
        except OSError:
            pass  # not cached (EAGAIN), or no RWF_NOWAIT here
    os.posix_fadvise(fd, offset, n, os.POSIX_FADV_WILLNEED)


def encode_strings(values: np.ndarray) -> tuple[bytes, int]:
    """A string tensor's bytes as TensorFlow's bundle writer lays them out, and their masked crc32c."""
    items = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in np.asarray(values, object).ravel()]
    lengths, crc = bytearray(), 0
    for item in items:
        n = len(item)
        while n >= 0x80:
            lengths.append((n & 0x7F) | 0x80)
            n >>= 7
        lengths.append(n)
        crc = crc32c(struct.pack("<I" if len(item) <= 0xFFFFFFFF else "<Q", len(item)), crc)
    length_crc = struct.pack("<I", mask(crc))
    crc = crc32c(length_crc, crc)
    body = b"".join(items)
    return bytes(lengths) + length_crc + body, mask(crc32c(body, crc))


class DataWriter:
    """Appends tensors to one new data file (never an existing one) and reports, for each,
    its offset, size and masked crc32c.

    The crc32c of a chunk and its copy into a stage run in a background thread while the caller
    computes the next chunk (a chunk under ``INLINE_BYTES``, 1 MiB, in the caller's thread: handing
    it over would cost more than the work). Bytes are gathered in 8 MiB page-aligned stages (up to four, used in
    turn); each full stage is written by one of two I/O threads while the next fills, in whole
    4 KiB blocks with direct I/O (``O_DIRECT``: from the stage to the disk, no page cache to fill
    and write back later). Two writes in flight keep the disk busy while a thread that has finished
    one waits for the GIL. The last partial block, and everything on a file system that refuses
    direct I/O, go through the page cache (whole blocks written there are handed to the kernel's
    write-back at once: ``posix_fadvise(DONTNEED)``), as do :meth:`copy`'s bytes (copied by the
    kernel, no such hint). A tensor written with ``read_back=True`` has its bytes read from the
    disk into the page cache as soon as the blocks holding them are written (the kernel's
    read-ahead, ``posix_fadvise(WILLNEED)``, asked by the I/O thread that wrote them), so that a
    reader after :meth:`close` finds there what the disk holds, read while the rest was written.
    :meth:`close` fsyncs.

    Stages are made when first needed, their pages as they are first written, unless
    ``expected_bytes`` (what the caller expects to write) exceeds one stage: then each stage's
    pages are made at once, without holding the GIL (see
    :func:`~graphsurgeon._src.storage.pages.aligned`), by a background thread ahead of its use,
    the first while the caller computes its first chunk, each next one as the one before it is
    taken into use."""

    BLOCK = 4096
    STAGE_BYTES = 8 << 20
    STAGES = 4
    IO_THREADS = 2
    READ_AHEAD_BYTES = 128 << 10  # asked for in pieces no larger than the smallest read-ahead window Linux uses
    INLINE_BYTES = 1 << 20

    def __init__(self, path: str, *, expected_bytes: int = 0):
        self.path = path
        self._f = open(path, "xb+", buffering=0)  # noqa: SIM115 (closed by close() or abandon())
        self._direct = self._direct_fd = _open_direct(path)
        self.size = 0
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="graphsurgeon-write")
        self._io = ThreadPoolExecutor(self.IO_THREADS, thread_name_prefix="graphsurgeon-io")
        ahead = expected_bytes > self.STAGE_BYTES
        self._made = self._io.submit(aligned, self.STAGE_BYTES, populate=True) if ahead else None  # the next stage
        self._stages = []  # page-aligned, each made when first needed
        self._stage = None if ahead else self._new_stage()  # filling (one made ahead is taken at first use)
        self._base = 0  # file offset of the stage's first byte, a multiple of BLOCK
        self._fill = 0  # the stage holds the file's bytes [base, base + fill)
        self._writing = []  # (future, stage) of full stages being written, oldest first
        self._read_back = []  # [start, end] of the tensors written with read_back (end None while being written)
        self.written = WrittenRanges()  # the bytes already in the file (see wait_written)

    def write(self, chunks, *, read_back: bool = False) -> tuple[int, int, int]:
        """Append the bytes of ``chunks`` (arrays or bytes, in order) as one tensor;
        returns ``(offset, size, masked crc32c)``. A chunk is written while the next one is
        computed, and is no longer read once the one after the next has been asked for (so a
        producer may reuse two buffers in turn). ``read_back``: see the class docstring."""
        offset, crc, pending = self.size, 0, None
        span = [offset, None]
        if read_back and self._read_back and self._read_back[-1][1] == offset:  # right after the last one: one span
            span = self._read_back[-1]
            span[1] = None
        elif read_back:
            self._read_back.append(span)
        try:
            for chunk in chunks:
                if isinstance(chunk, np.ndarray):
                    chunk = np.ascontiguousarray(chunk).reshape(-1).view(np.uint8)
                if pending is not None:
                    crc, pending = pending.result(), None
                if len(chunk) < self.INLINE_BYTES:
                    crc = self._append(chunk, crc)
                else:
                    pending = self._thread.submit(self._append, chunk, crc)
            if pending is not None:
                crc = pending.result()
        except BaseException:
            if pending is not None:
                pending.cancel()
                wait([pending])
            raise
        finally:
            span[1] = self.size
        return offset, self.size - offset, mask(crc)

    def _append(self, chunk, crc: int) -> int:
        """Add one chunk at the end of the file (through the stage); returns the running crc32c."""
        crc = crc32c(chunk, crc)
        if self._stage is None:
            self._stage = self._new_stage()
        data, done = np.frombuffer(chunk, np.uint8), 0
        while done < len(data):
            n = min(len(data) - done, self.STAGE_BYTES - self._fill)
            self._stage[self._fill:self._fill + n] = data[done:done + n]
            self._fill += n
            done += n
            if self._fill == self.STAGE_BYTES:
                self._send_stage()
        self.size += len(data)
        return crc

    def _send_stage(self) -> None:
        """Hand the full stage to the I/O thread and continue in the next free one."""
        self._writing.append((self._io.submit(self._write_at, self._stage, self._base), self._stage))
        self._base += self._fill
        self._fill = 0
        free = [s for s in self._stages if all(s is not busy for _, busy in self._writing)]
        if not free and len(self._stages) < self.STAGES:
            free = [self._new_stage()]
        if not free:
            self._writing.pop(0)[0].result()  # the oldest write done (or its error raised)
            free = [s for s in self._stages if all(s is not busy for _, busy in self._writing)]
        self._stage = free[0]

    def _new_stage(self) -> np.ndarray:
        """One more stage: the one made ahead (the next then asked for, while there may be more),
        or one made now whose pages are made as they are first written."""
        if self._made is None:
            stage = aligned(self.STAGE_BYTES, populate=len(self._stages) > 0)
        else:
            stage = self._made.result()
            more = len(self._stages) + 1 < self.STAGES
            self._made = self._io.submit(aligned, self.STAGE_BYTES, populate=True) if more else None
        self._stages.append(stage)
        return stage

    def _drain(self) -> None:
        """Wait for every stage being written (raising the first write's error)."""
        while self._writing:
            self._writing.pop(0)[0].result()

    def _flush(self) -> None:
        """Put the stage's bytes in the file: its whole blocks directly (by an I/O thread, while the
        stages before it may still be being written), the rest through the page cache; returns once
        every write has ended."""
        if self._stage is None:
            self._stage = self._new_stage()
        whole = self._fill - self._fill % self.BLOCK
        if whole:
            self._writing.append((self._io.submit(self._write_at, self._stage[:whole], self._base), self._stage))
        self._drain()
        self._write_at(self._stage[whole:self._fill], self._base + whole)

    def _write_at(self, view: np.ndarray, offset: int) -> None:
        """Write all of ``view`` at ``offset``: directly when whole blocks are aligned, else (or
        when direct I/O is refused: EINVAL) through the page cache."""
        done = 0
        while done < len(view):
            at, rest = offset + done, view[done:]
            direct = self._direct
            if direct is not None and at % self.BLOCK == 0 and len(rest) % self.BLOCK == 0:
                try:
                    n = os.pwrite(direct, rest, at)
                    self._ask_read_back(at, at + n)
                    self.written.add(at, at + n)
                    done += n
                    continue
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        self.written.fail()
                        raise
                    self._direct = None  # closed with the file (another I/O thread may be using it)
            try:
                n = os.pwrite(self._f.fileno(), rest, at)
            except BaseException:
                self.written.fail()
                raise
            if n >= self.BLOCK:  # start writing these pages to disk now, so close()'s fsync has little left
                os.posix_fadvise(self._f.fileno(), at, n, os.POSIX_FADV_DONTNEED)
            self.written.add(at, at + n)
            done += n

    def _ask_read_back(self, start: int, end: int) -> None:
        """Ask the kernel to read into the page cache the bytes of ``[start, end)`` (just written
        with direct I/O) that belong to a tensor written with ``read_back``."""
        for first, last in list(self._read_back):  # (appended to by the writing thread meanwhile)
            a, b = max(start, first), min(end, end if last is None else last)
            for at in range(a, b, self.READ_AHEAD_BYTES):
                os.posix_fadvise(self._f.fileno(), at, min(self.READ_AHEAD_BYTES, b - at), os.POSIX_FADV_WILLNEED)

    def copy(self, path: str, offset: int, size: int) -> int:
        """Append bytes ``[offset, offset + size)`` of file ``path`` unchanged (copied by the
        kernel where it can); returns their offset in this file.

        Raises:
          CorruptCheckpointError: ``path`` ends before ``offset + size``.
        """
        self._flush()
        start = self.size
        self._f.seek(start)
        with open(path, "rb", buffering=0) as src:
            done = 0
            while done < size:
                n = _copy_range(src.fileno(), self._f.fileno(), offset + done, size - done)
                if n <= 0:
                    raise CorruptCheckpointError(f"{path}: ends before byte {offset + size}; the data file is truncated")
                done += n
        self.written.add(start, start + size)
        self.size += size
        self._base = self.size - self.size % self.BLOCK  # the stage starts with the last partial block
        self._fill = self.size - self._base
        self._stage[:self._fill] = np.frombuffer(os.pread(self._f.fileno(), self._fill, self._base), np.uint8)
        return start

    def close(self) -> None:
        """Write what is left, fsync the file, then close it."""
        self._thread.shutdown()
        if not self._f.closed:
            try:
                self._flush()
                os.fsync(self._f.fileno())
            finally:
                self._io.shutdown()
            self._close_files()

    def wait_written(self, end: int) -> bool:
        """Wait (from any thread) until every byte before ``end`` is in the file: written directly to
        the disk, or into the page cache for the parts that go through it. Returns False instead if
        a write failed or the writer was abandoned first. Bytes still in a stage reach the file when
        the stage is full, or at :meth:`close`."""
        return self.written.wait(end)

    def abandon(self) -> None:
        """Close without writing what is left or syncing (the file is about to be deleted)."""
        self.written.fail()
        self._thread.shutdown()
        self._io.shutdown(cancel_futures=True)  # returns once a write under way has ended
        self._close_files()

    def _close_files(self) -> None:
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct = self._direct_fd = None
        self._f.close()


def _open_direct(path: str) -> int | None:
    """A second descriptor of ``path`` for direct I/O, or None where there is none (tmpfs, macOS)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_DIRECT)
    except (AttributeError, OSError):
        return None


def _copy_range(src_fd: int, dst_fd: int, offset: int, size: int) -> int:
    """Copy up to ``size`` bytes from ``src_fd`` at ``offset`` to the end of ``dst_fd``; bytes copied."""
    n = min(size, 1 << 30)
    if hasattr(os, "copy_file_range"):
        try:
            return os.copy_file_range(src_fd, dst_fd, n, offset)
        except OSError:
            pass  # another file system, or no kernel support: copy through user space
    data = os.pread(src_fd, min(n, CHUNK_BYTES), offset)
    return os.write(dst_fd, data) if data else 0
