"""Page-aligned memory for the buffers handed to direct I/O.

Python's ``mmap.mmap`` holds the GIL while the kernel makes the mapping, and with
``MAP_POPULATE`` that is the time to make every page: an 8 MiB buffer stalled every other
Python thread for about 4 ms (measured on Python 3.11). :func:`aligned` makes populated memory
through the C library's ``mmap`` called by ``ctypes``, which releases the GIL for the call, and
falls back to ``mmap.mmap`` where that is not available.
"""
from __future__ import annotations

import ctypes
import mmap

import numpy as np


def aligned(size: int, *, populate: bool) -> np.ndarray:
    """``size`` bytes of zeroed page-aligned memory, as a writable uint8 array that keeps it mapped (the
    memory is unmapped when the array and its views are gone). With ``populate`` (Linux) its pages
    are made at once, in one call that does not hold the GIL where the C library's ``mmap`` can be
    called (else through ``mmap.mmap``, which holds it), rather than one page fault at a time
    as they are first written (fresh memory is expensive on virtual machines: 32 MiB took 33 ms
    page by page and 16 ms populated, measured on the benchmark's VM)."""
    if populate and hasattr(mmap, "MAP_POPULATE") and _libc() is not None:
        return np.asarray(_Mapping(size))
    if populate and hasattr(mmap, "MAP_POPULATE"):
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
        return np.frombuffer(mmap.mmap(-1, size, flags=flags), np.uint8)
    return np.frombuffer(mmap.mmap(-1, size), np.uint8)


class _Mapping:
    """Anonymous private memory mapped (populated) by the C library's ``mmap``; unmapped when collected.
    numpy reads it through ``__array_interface__`` and keeps this object as the array's base."""

    def __init__(self, size: int):
        libc = _libc()
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
        addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
        if addr is None or addr == _MAP_FAILED:
            errno = ctypes.get_errno()
            raise OSError(errno, f"mmap of {size} bytes failed")
        self._addr, self._size, self._munmap = addr, size, libc.munmap  # (kept: module globals may be gone at exit)
        self.__array_interface__ = {"shape": (size,), "typestr": "|u1", "data": (addr, False), "version": 3}

    def __del__(self):
        if getattr(self, "_addr", None) is not None:
            self._munmap(self._addr, self._size)
            self._addr = None


_MAP_FAILED = ctypes.c_void_p(-1).value
_LIBC: list = []


def _libc():
    """The C library with ``mmap``/``munmap`` typed for ctypes, or None where it cannot be loaded."""
    if not _LIBC:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_long]
            libc.munmap.restype = ctypes.c_int
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        except (OSError, AttributeError):
            libc = None
        _LIBC.append(libc)
    return _LIBC[0]
