"""storage.pages: page-aligned memory for direct I/O, made without holding the GIL."""
import gc
import mmap
import sys

import numpy as np
import pytest

from graphsurgeon._src.storage import pages

from helpers import longest_stall

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MAP_POPULATE is Linux's")


@pytest.mark.parametrize("populate", [False, True])
def test_aligned_memory_is_zeroed_writable_and_page_aligned(populate):
    a = pages.aligned(3 << 20, populate=populate)
    assert a.dtype == np.uint8 and a.shape == (3 << 20,) and a.flags.writeable
    assert a.ctypes.data % mmap.PAGESIZE == 0
    assert not a.any()
    a[::4096] = 7
    assert int(a.sum()) == 7 * (3 << 20) // 4096


@pytest.fixture
def unmapped(monkeypatch):
    """The ``(address, size)`` of each munmap of memory made from now on (the C library's, recorded)."""
    libc, calls = pages._libc(), []
    assert libc is not None

    class Recording:
        mmap = libc.mmap

        @staticmethod
        def munmap(addr, size):
            calls.append((addr, size))
            return libc.munmap(addr, size)

    monkeypatch.setattr(pages, "_LIBC", [Recording])
    return calls


@linux
def test_populated_memory_comes_from_the_c_library_and_is_unmapped_with_its_last_view(unmapped):
    a = pages.aligned(1 << 20, populate=True)
    assert isinstance(a.base, pages._Mapping)
    address, view = a.ctypes.data, a[4096:]
    del a
    gc.collect()
    assert unmapped == []  # a view still holds it
    assert view[0] == 0
    del view
    gc.collect()
    assert unmapped == [(address, 1 << 20)]


@linux
def test_other_threads_run_while_populated_memory_is_made():
    size = 64 << 20
    # the check sees a call that holds the GIL: filling as many bytes (bytes' repeat holds it throughout)
    stall, took = longest_stall(lambda: b"\1" * size)
    assert stall >= 0.5 * took, (stall, took)
    # aligned(): the spinner never went half a call without running; a busy machine may hold it off, so up to three tries
    tries = []
    while len(tries) < 3 and not any(stall < 0.5 * took for stall, took in tries):
        tries.append(longest_stall(lambda: pages.aligned(size, populate=True)))
    assert any(stall < 0.5 * took for stall, took in tries), tries


@linux
def test_a_mapping_unmaps_itself_with_the_munmap_it_was_made_with(unmapped, monkeypatch):
    """At interpreter exit the module's globals may be gone: a mapping collected then still unmaps itself."""
    unraisable = []
    a = pages.aligned(1 << 20, populate=True)
    address = a.ctypes.data

    def gone():
        raise AssertionError("looked up the C library again")

    monkeypatch.setattr(pages, "_libc", gone)
    monkeypatch.setattr(pages, "_LIBC", [])
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    del a
    gc.collect()
    assert unraisable == [] and unmapped == [(address, 1 << 20)]
