"""Per-row digests and hash splits computed a block at a time: the same keys and splits as the
per-row Python code they replaced (values pinned from it), so existing caches stay valid."""
import hashlib
import os
import pickle
import types

import numpy as np
import pytest
from sklearn.datasets import load_digits

import graphsurgeon as gs
from graphsurgeon._src.cache import plan
from graphsurgeon._src.storage import datasets, records, rowhash
from graphsurgeon._src.storage.cacheshards import _write_npy

# pinned from the per-row code (commit b112782: a sha1 hexdigest per row, which_split per key, a
# sha256 per row): sha256 of the keys joined by newlines, of the split names, of RecordSource's
# keys and split codes
PINNED = {
    "digits": ("3e556f06fbd9263d27c0706b7ee6f7c9904fd20f720b2e69fc91193f5b6d4e3f",
               "1b0ea2ed965d72b35f92433b4dc89704f1c9fa54358b077b9ab689b42b9012f5",
               "06ccc82da926fda354a880a66d07b672d845c883937a2324fff417056bad082f",
               "8c54312e4328e5caa3a30922ee1ed0f536018faa411b2c18fd1e9486911abe53", [1438, 186, 173]),
    "digits_f32_25_5": ("5b0302e2207b825fd5dce9e138393603efe880dd8d642ece2f371d9e013bdc73",
                        "903b2fe84967e1b671f1895ee2087e8021012b264e0556579eceeff4b609ebce",
                        "1bd27d65ac6dc7ce0b2a3a2854ea0d1836f9ec5c5a5e43719ef373eb91c9e40d",
                        "2e97b927d0b5a7b91bc9333fa882c71fc7ad81d5ee078a2f3bec61f436ceabc9", [1261, 443, 93]),
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_npz_keys_and_splits_match_the_pinned_per_row_values(tmp_path, monkeypatch, name):
    monkeypatch.setattr(rowhash, "BLOCK", 700)  # several blocks and a short last one over 1,797 rows
    d = load_digits()
    x, pct = (d.data, {}) if name == "digits" else (d.data.astype(np.float32) / 16,
                                                     {"validation_pct": 25, "test_pct": 5})
    np.savez(tmp_path / "d.npz", x=x, y=d.target)
    ds = datasets.load_npz(str(tmp_path / "d.npz"), **pct)
    src = records.open_source(str(tmp_path / "d.npz"), **pct)
    keys, names, src_keys, codes, counts = PINNED[name]
    assert isinstance(ds.keys, list) and isinstance(ds.keys[0], str) and ds.split.dtype == np.dtype("U10")
    assert sha("\n".join(ds.keys).encode()) == keys and sha("\n".join(ds.split).encode()) == names
    assert sha(src.keys.tobytes()) == src_keys and sha(src.splits.tobytes()) == codes
    assert np.bincount(src.splits).tolist() == counts


def test_row_digests_are_hashlib_of_each_row_in_c_order(monkeypatch):
    monkeypatch.setattr(rowhash, "BLOCK", 3)
    rng = np.random.default_rng(0)
    for x in (rng.normal(size=(7, 3, 2)), rng.normal(size=(7, 4)).astype(np.float32).T[:3].T,
              np.arange(8, dtype=np.int16), np.zeros((5, 0), np.float32), np.zeros((0, 4), np.float32)):
        for algo in ("sha1", "sha256"):
            want = [getattr(hashlib, algo)(row.tobytes()).digest() for row in x]
            assert [bytes(v) for v in rowhash.row_digests(x, algo)] == want
    digests = rowhash.row_digests(rng.normal(size=(7, 2)), "sha1")
    assert rowhash.hex_strings(digests) == [bytes(d).hex() for d in digests]


@pytest.mark.parametrize("size", [20, 32])
def test_hex_name_splits_are_which_split_of_the_hex_names(size):
    digests = np.frombuffer(np.random.default_rng(size).bytes(size * 3000), f"V{size}")
    for pct in ((10.0, 10.0), (25, 5), (0, 100), (50.5, 0)):
        want = [datasets.SPLITS.index(datasets.which_split(bytes(d).hex(), *pct)) for d in digests]
        assert rowhash.hex_name_splits(digests, *pct).tolist() == want


def test_split_names_are_as_wide_as_the_longest_present():
    assert datasets.split_names(np.array([0, 2, 0], np.uint8)).dtype == np.dtype("U5")
    assert datasets.split_names(np.array([0, 1], np.uint8)).tolist() == ["train", "validation"]


def test_an_npz_split_array_is_checked_and_coded(tmp_path):
    x, y = np.arange(8.0).reshape(4, 2), np.arange(4)
    np.savez(tmp_path / "a.npz", x=x, y=y, split=np.array(["test", "train", "validation", "train"]))
    assert records.open_source(str(tmp_path / "a.npz")).splits.tolist() == [2, 0, 1, 0]
    np.savez(tmp_path / "b.npz", x=x, y=y, split=np.array(["test", "dev", "train", "eval"]))
    with pytest.raises(gs.DataError, match=r"b.npz: 'split' must hold one of .* per row \(found values 'dev', 'eval'\)$"):
        records.open_source(str(tmp_path / "b.npz"))


def test_shard_files_are_the_bytes_numpy_writes(tmp_path):
    for a in (np.random.default_rng(0).normal(size=(5, 3)).astype(np.float16), np.zeros(4, "V32,<u2"),
              np.zeros((0, 7), np.float32)):
        sha_, size = _write_npy(str(tmp_path / "s.npy"), a)
        np.save(tmp_path / "ref.npy", a)
        want = (tmp_path / "ref.npy").read_bytes()
        assert (tmp_path / "s.npy").read_bytes() == want and (sha_, size) == (sha(want), len(want))


def test_shard_files_leave_the_page_cache_once_synced(tmp_path, monkeypatch):
    calls, sync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", os.fstat(fd).st_size)), sync(fd)))
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: calls.append(("fadvise", off, n, advice)),
                        raising=False)
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    _write_npy(str(tmp_path / "s.npy"), a)
    size = (tmp_path / "s.npy").stat().st_size
    # the first hint starts the write-back of the dirty pages, the second drops the clean ones
    assert calls == [("fadvise", 0, 0, os.POSIX_FADV_DONTNEED), ("fsync", size), ("fadvise", 0, 0, os.POSIX_FADV_DONTNEED)]

    def refuse(*args):
        raise OSError(22, "Invalid argument")
    monkeypatch.setattr(os, "posix_fadvise", refuse)  # only advice: the file is still written
    assert _write_npy(str(tmp_path / "t.npy"), a)[1] == size
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), a)


def unique_semantics(items, got):
    distinct, first, inverse = got
    want = np.unique(items, return_index=True, return_inverse=True)
    assert len(distinct) == len(want[0]) and (items[first] == distinct).all() and (distinct[inverse] == items).all()
    assert sorted(first.tolist()) == sorted(want[1].tolist())  # each value's first occurrence


def test_distinct_items_are_np_unique_up_to_order():
    rng = np.random.default_rng(0)
    keys = np.frombuffer(rng.bytes(32 * 50), "V32")[rng.integers(0, 50, 400)]  # duplicates
    items = plan.item_keys(keys, rng.integers(0, 3, 400).astype(np.uint16))    # copies share key bytes
    unique_semantics(items, plan.distinct_items(items))
    # two different items whose 64-bit mixes collide: the exact (slower) grouping is used
    a = bytearray(rng.bytes(32))
    b = bytearray(rng.bytes(32))
    b[:8] = (int.from_bytes(a[:8], "little") ^ 0x9E3779B97F4A7C15).to_bytes(8, "little")
    items = plan.item_keys(np.frombuffer(bytes(a + b + a), "V32"), np.array([0, 1, 0], np.uint16))
    assert plan.distinct_items(items)[0].size == 2
    unique_semantics(items, plan.distinct_items(items))
    for n in (0, 1):
        unique_semantics(items[:n], plan.distinct_items(items[:n]))


def test_npz_refs_are_row_numbers_and_names_are_spelled_when_read(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(20.0).reshape(10, 2), y=np.arange(10))
    src = records.open_source(str(tmp_path / "a.npz"))
    names = pickle.loads(pickle.dumps(src.names(np.array([3, 4, 7]))))
    assert len(names) == 3 and list(names) == ["row 3", "row 4", "row 7"] and names[1:][1] == "row 7"
    assert np.shares_memory(src.load(np.array([3, 4, 5])), src.loader._array)  # consecutive rows: a view
    assert src.load([7, 3]).tolist() == [[14.0, 15.0], [6.0, 7.0]] and src.load([4, 6]).tolist() == [[8, 9], [12, 13]]


def old_make_plan(source, copies, known, shard_size, first_shard):
    """The plan as the code before the integer grouping made it (np.unique over 34-byte items, lexsort)."""
    examples, augs = plan.expand(source.splits, copies)
    items = plan.item_keys(source.keys[examples], augs)
    distinct, first, inverse = np.unique(items, return_index=True, return_inverse=True)
    found, shard, row = known.lookup(distinct)
    pending = np.flatnonzero(~found)
    split_of = source.splits[examples[first[pending]]]
    pending = pending[np.lexsort((first[pending], split_of))]
    split_of = source.splits[examples[first[pending]]]
    groups = [pending[split_of == code] for code in range(3)]  # chunks never cross a split
    chunks = [g[a:a + shard_size] for g in groups for a in range(0, len(g), shard_size)]
    tasks = []
    for number, chunk in enumerate(chunks, start=first_shard):
        shard[chunk], row[chunk] = number, np.arange(len(chunk))
        tasks.append((number, examples[first[chunk]].tolist(), augs[first[chunk]].tolist()))
    inverse = inverse.reshape(-1)
    view = np.empty(len(examples), plan.cacheshards.EXAMPLE_DTYPE)
    view["example"], view["aug"], view["row"] = examples, augs, row[inverse]
    view["label"], view["split"] = source.labels[examples], source.splits[examples]
    rows_shard = shard[inverse]
    order = np.argsort(rows_shard, kind="stable")
    return tasks, view[order].tobytes(), rows_shard[order].tolist()


@pytest.mark.parametrize("copies", [0, 2])
def test_plan_is_the_one_the_per_item_sort_made(copies):
    rng = np.random.default_rng(copies)
    src = types.SimpleNamespace(keys=np.frombuffer(rng.bytes(32 * 300), "V32")[rng.integers(0, 300, 500)],
                                splits=rng.choice(3, 500, p=[0.6, 0.3, 0.1]).astype(np.uint8),
                                labels=rng.integers(0, 7, 500))
    stored = plan.item_keys(src.keys[rng.integers(0, 500, 120)], np.zeros(120, np.uint16)).view(
        plan.cacheshards.KEY_DTYPE)
    for known in (plan.Known([], []), plan.Known([stored[:60], stored[60:]], [0, 3])):
        p = plan.make_plan(src, copies, known, 37, 4)
        assert p.tasks and ([(t.shard, t.examples.tolist(), t.augs.tolist()) for t in p.tasks], p.view.tobytes(),
                            p.view_shards.tolist()) == old_make_plan(src, copies, known, 37, 4)
