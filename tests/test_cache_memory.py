"""The cache reader's memory stays within its buffer whatever the shard size (issue 14): shards larger
than a quarter of the buffer, or than the whole buffer, are read in pieces; the first read of a
piece still checks the whole shard file before any of its rows come out."""
import hashlib
import os
import shutil
import sys
import tracemalloc

import numpy as np
import pytest

import graphsurgeon as gs
from graphsurgeon._src.cache import CacheReader, epochs
from graphsurgeon._src.storage import cachefiles, cacheshards, shardfile
from graphsurgeon._src.storage.records import SPLIT_CODES

WIDTH, SHARD, COUNTS = 64, 300, (1600, 200, 200)  # float32 rows of 256 bytes; shards of 76,800 bytes of rows
ROW = WIDTH * 4


def build(directory: str) -> str:
    """A complete cache written in the cache format without a model: one split per shard, each
    shard's rows in example order, label = example % 10."""
    os.makedirs(directory)
    rng = np.random.default_rng(0)
    view = np.empty(sum(COUNTS), cacheshards.EXAMPLE_DTYPE)
    entries, shard_of, example = [], [], 0
    for code, count in enumerate(COUNTS):
        for a in range(0, count, SHARD):
            rows = min(SHARD, count - a)
            keys = np.zeros(rows, cacheshards.KEY_DTYPE)
            keys["key"] = np.frombuffer(b"".join(hashlib.sha256(b"%d" % (example + i)).digest()
                                                 for i in range(rows)), "V32")
            entries.append(cacheshards.write_shard(directory, len(entries),
                                                   rng.standard_normal((rows, WIDTH), dtype=np.float32), keys))
            sl = slice(example, example + rows)
            view["example"][sl], view["aug"][sl], view["row"][sl] = np.arange(example, example + rows), 0, np.arange(rows)
            view["label"][sl], view["split"][sl] = np.arange(example, example + rows) % 10, code
            shard_of.append(np.full(rows, len(entries) - 1, np.int64))
            example += rows
    table = cacheshards.write_examples(directory, view, np.concatenate(shard_of))
    cachefiles.write_manifest(directory, {
        "version": cachefiles.VERSION, "tensor_dtype": "float32", "shape": [WIDTH], "dtype": "float32",
        "fingerprint": {"graph": "0" * 64, "variables": {}, "tensor": "features:0", "input": "x:0", "feeds": {}},
        "preprocessing": {"kind": "npz"}, "augment": None, "shards": entries, "complete": True, "examples": table,
        "classes": None, "copies": 0, "data": {"kind": "npz", "path": "synthetic", "examples": sum(COUNTS),
                                               "splits": list(COUNTS), "labels": [0, 9], "sha256": "0" * 64}})
    return directory


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build(str(tmp_path_factory.mktemp("memory") / "c"))


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of 8 KiB and checksum chunks of 2 KiB, so that the fixed overhead is small beside
    a shard (75 KiB) and a test of the bound can see a shard too many."""
    monkeypatch.setattr(epochs, "PIECE_BYTES", 8 << 10)
    monkeypatch.setattr(shardfile, "CHECK_CHUNK", 2 << 10)


@pytest.mark.parametrize("validation_first", [False, True])
def test_allocated_memory_stays_within_the_buffer_and_the_fixed_overhead(cache, small_pieces, validation_first):
    """A 200 KiB buffer over shards of 75 KiB (more than a quarter of it): training windowed (and,
    with the validation split resident first, in windows smaller than a shard), validation streamed
    or resident. Over two epochs, what the store counts stays within the buffer, and every byte
    allocated (numpy reports its arrays to tracemalloc) within the buffer plus the documented fixed
    overhead: the piece buffer, a checksum chunk, one shard's selection (about 50 bytes a row of
    it), the rows carried and the batches (three of 32 rows), and 24 KiB for Python's own objects.
    The reader before this change allocated up to 417 KB here (windows of two whole shards)."""
    budget, batch = 200 << 10, 32
    bound = budget + epochs.PIECE_BYTES + shardfile.CHECK_CHUNK + 64 * SHARD + 3 * batch * (ROW + 8) + (24 << 10)
    splits = ("validation", "train") if validation_first else ("train", "validation")
    with CacheReader(cache, buffer_bytes=budget) as r:
        tracemalloc.start()
        try:
            for epoch in (0, 1):
                for split in splits:
                    n = 0
                    for x, y in r.batches(split, batch, shuffle=split == "train", epoch=epoch):
                        n += len(y)
                        assert r._store.used() <= budget
                    assert n == r.count(split)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (1 in r._store.resident) == validation_first and 0 not in r._store.resident
        if validation_first:  # windows smaller than a shard: shards were read in pieces
            assert r._store.window_rows() < SHARD
    assert peak <= bound, (peak, bound)


def test_a_buffer_smaller_than_one_shard_reads_every_row_once_an_epoch(cache, small_pieces):
    """A 40 KiB buffer, about half a shard: windows of 64 rows cut across shards; every training
    example once per epoch, the same activations as a full read, each byte of the training shards
    read once an epoch once they are checked; the same order for the same seed and epoch."""
    with CacheReader(cache) as full:
        want = full.read(full.examples("train"))
        train_bytes = full.count("train") * ROW
    orders = {}
    for run in (0, 1):
        with CacheReader(cache, buffer_bytes=40 << 10) as r:
            assert r._store.window_rows() * (ROW + epochs.ROW_BOOKKEEPING) <= 20 << 10 < SHARD * ROW
            for epoch in (0, 1):
                before = r.stats["bytes_read"]
                batches = list(r.batches("train", 32, seed=3, epoch=epoch))
                x = np.concatenate([b[0] for b in batches])
                assert len(x) == r.count("train") and all(len(b[1]) == 32 for b in batches[:-1])
                np.testing.assert_array_equal(x[np.lexsort(x.T[::-1])], want[np.lexsort(want.T[::-1])])
                if epoch:  # checked in epoch 0 (the whole file on a first read): now only the rows
                    assert r.stats["bytes_read"] - before == train_bytes
                orders[run, epoch] = x
    np.testing.assert_array_equal(orders[0, 0], orders[1, 0])
    np.testing.assert_array_equal(orders[0, 1], orders[1, 1])
    assert not np.array_equal(orders[0, 0], orders[0, 1])


def test_the_smallest_buffer_is_two_windows_of_one_row(cache):
    """Below two rows and their bookkeeping the reader refuses at open, naming the minimum; at it,
    an epoch still gives every example once (windows of one row)."""
    least = 2 * (ROW + epochs.ROW_BOOKKEEPING)
    for bad in (least - 1, np.int64(least - 1)):
        with pytest.raises(gs.CacheError, match=rf"c: buffer_bytes={int(bad)}; the reader needs at least {least} bytes "
                                                rf"for this cache's rows of {ROW} bytes \(two windows of one row"):
            CacheReader(cache, buffer_bytes=bad)
    for bad in ("256MB", None, 1e6, True):  # not a number of bytes: said so, whatever its size
        with pytest.raises(gs.CacheError, match=rf"c: buffer_bytes={bad!r}: expected a whole number of bytes "
                                                r"\(an int\)"):
            CacheReader(cache, buffer_bytes=bad)
    with CacheReader(cache, buffer_bytes=np.int64(least)) as r:
        assert r._store.window_rows() == 1
    with CacheReader(cache, buffer_bytes=least) as r:
        assert r._store.window_rows() == 1
        y = np.concatenate([y for _, y in r.batches("validation", 50, shuffle=True)])
        np.testing.assert_array_equal(np.sort(y), np.sort(r.labels("validation")))


def test_resident_and_streamed_pieces_give_the_rows_of_a_full_read(cache, small_pieces):
    """Through 8 KiB pieces: the resident load and a streamed pass give the same activations, in
    the same order, as reading whole shards."""
    with CacheReader(cache) as full:
        order = full.examples("validation")
        want = full.read(order)
    with CacheReader(cache, buffer_bytes=20 << 20) as r:  # resident
        got = np.concatenate([x for x, _ in r.batches("validation", 64, shuffle=False)])
        assert 1 in r._store.resident and len(r._store.scratch) == 8 << 10
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(r.read(order[::-1]), want[::-1])
    with CacheReader(cache, buffer_bytes=4 << 10) as r:  # streamed
        got = np.concatenate([x for x, _ in r.batches("validation", 64, shuffle=False)])
        assert not r._store.resident and r.stats["shard_reads"] >= 200 * ROW // (8 << 10)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_a_damaged_last_row_fails_the_first_piece_before_any_row_comes_out(cache, small_pieces, tmp_path, split):
    """One byte of a shard's last row changed: reading its first rows (a piece of 8 KiB, or a
    window smaller than the shard) raises, because the first read checks the whole file; a
    reader that does not verify returns the rows."""
    bad = str(tmp_path / "c")
    shutil.copytree(cache, bad)
    m = cachefiles.read_manifest(bad)
    entry = next(s for s in m["shards"] if s["shard"] == (0 if split == "train" else 6))
    path = os.path.join(bad, entry["file"])
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0x55
    open(path, "wb").write(bytes(data))
    f = shardfile.ShardFile(bad, entry, "float32", [WIDTH])
    with pytest.raises(gs.CacheError, match=f"{entry['file']}: the shard does not match its checksum"):
        f.read_rows(np.empty(10 * ROW, np.uint8), 0, 10)
    assert not f.verified
    rows = shardfile.ShardFile(bad, entry, "float32", [WIDTH], verify=False).read_rows(np.empty(10 * ROW, np.uint8),
                                                                                      0, 10)
    assert rows.shape == (10, WIDTH)
    with CacheReader(bad) as r:  # read() gathers through pieces and checks after the last one
        with pytest.raises(gs.CacheError, match="the shard does not match its checksum"):
            r.read(r.examples(split))
    with CacheReader(bad, buffer_bytes=40 << 10 if split == "train" else 4 << 10) as r:
        it = r.batches(split, 32, shuffle=split == "train")
        with pytest.raises(gs.CacheError, match="the shard does not match its checksum"):
            for _ in it:  # training: shard 0 may come in any window; validation: shard 6 is first
                assert split == "train"


def test_a_first_read_in_pieces_reads_each_byte_of_the_shard_once(cache, small_pieces, monkeypatch):
    """The resident load and ``read`` check a shard in the same pass that reads its pieces: every
    byte of the file goes through the reads once (counted at the file reads themselves)."""
    seen = []
    real_fully, real_through = shardfile._read_fully, shardfile._hash_through
    monkeypatch.setattr(shardfile, "_read_fully", lambda f, view: seen.append(real_fully(f, view)) or seen[-1])
    monkeypatch.setattr(shardfile, "_hash_through", lambda *a: seen.append(real_through(*a)) or seen[-1])
    with CacheReader(cache) as r:
        entry = next(s for s in r.manifest["shards"] if s["shard"] == 6)  # the validation shard
        r.read(r.examples("validation")[::3])
        assert sum(seen) == entry["bytes"] and len(seen) > 200 * ROW // (8 << 10)
        seen.clear()
        r.read(r.examples("validation")[:5])  # checked: only the piece that holds them
        assert sum(seen) == (8 << 10)


def test_reading_a_few_examples_allocates_for_those_examples_not_the_data_set(cache, small_pieces):
    """``read`` of three positions selects them shard by shard: beside the piece buffer, a checksum
    chunk and one shard's index (about 50 bytes a row of it), what it allocates does not grow with
    the data set (2,000 examples here: arrays over all of them, 4 x 8 bytes a row and their sorted
    copies, would take 128 KB and more)."""
    with CacheReader(cache, buffer_bytes=200 << 10) as r:
        want = r.read([1999, 5, 1700])
        tracemalloc.start()
        try:
            got = r.read([1999, 5, 1700])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert got.tobytes() == want.tobytes() and got.shape == (3, WIDTH)
    assert peak <= epochs.PIECE_BYTES + shardfile.CHECK_CHUNK + 64 * SHARD + (24 << 10), peak


@pytest.mark.parametrize("resident", [True, False])
@pytest.mark.parametrize("buffer_bytes", [200 << 10, 2 * (ROW + epochs.ROW_BOOKKEEPING)])
def test_an_empty_split_gives_no_batches(tmp_path, monkeypatch, buffer_bytes, resident):
    """A cache whose test split is empty: its batches, shuffled or not, are none, and reading them
    allocates no buffer. An empty split always fits, so it is resident; with ``Store.fits`` made to
    say no, it is read windowed (shuffled; this raised ValueError) and streamed (this allocated the
    piece buffer)."""
    monkeypatch.setattr(sys.modules[__name__], "COUNTS", (600, 200, 0))
    if not resident:
        monkeypatch.setattr(epochs.Store, "fits", lambda self, code: False)
    with CacheReader(build(str(tmp_path / "c")), buffer_bytes=buffer_bytes) as r:
        assert r.count("test") == 0 and len(r.labels("test")) == 0
        for shuffle in (True, False):
            assert list(r.batches("test", 32, shuffle=shuffle)) == []
        test = SPLIT_CODES["test"]
        assert (test in r._store.resident) is resident and r._store.buffers == [] and r._store.scratch is None
        for shuffle in (True, False):  # the same paths give the rows of a split that is not empty
            assert sum(len(y) for _, y in r.batches("validation", 32, shuffle=shuffle)) == 200


def test_a_split_is_kept_only_if_its_index_bytes_fit_too(cache):
    """Validation's 200 rows are 51,200 bytes of float32, 64,000 with ``RESIDENT_ROW_BYTES`` a row:
    a buffer with room for the first but not the second streams the split instead of keeping it,
    and one byte short of the second is short enough (so the charge a row is exactly 64: at 63 the
    split would be kept with that room, at 65 not with 64,000)."""
    rows, charged = COUNTS[1], 64  # the 64 bytes a row the reader documents
    least = 2 * (ROW + epochs.ROW_BOOKKEEPING)
    need = rows * (ROW + charged)
    for room, kept in ((60_000, False), (need - 1, False), (need, True)):
        with CacheReader(cache, buffer_bytes=least + room) as r:
            assert sum(len(y) for _, y in r.batches("validation", 32, shuffle=False)) == rows
            assert bool(r._store.resident) is kept
