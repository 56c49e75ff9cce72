"""The local generator's shard writer (storage/shardbatch.py): the same files as write_shard, made
durable a batch at a time, an entry handed out only once its files are synced and in place."""
import os

import numpy as np
import pytest

from graphsurgeon._src.storage import cachefiles, cacheshards
from graphsurgeon._src.storage.shardbatch import ShardBatch


def shard(i, rows=5):
    a = np.random.default_rng(i).normal(size=(rows, 3)).astype(np.float32)
    keys = np.zeros(rows, cacheshards.KEY_DTYPE)
    keys["aug"] = np.arange(rows) + i
    return a, keys


def test_files_and_entries_equal_write_shards(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "batch").mkdir()
    want = [cacheshards.write_shard(str(tmp_path / "one"), i, *shard(i)) for i in range(5)]
    b = ShardBatch(str(tmp_path / "batch"), size=2)
    got = [b.write(i, *shard(i)) for i in range(5)]
    assert [len(g) for g in got] == [0, 2, 0, 2, 0]  # handed out two at a time
    got = [e for g in got for e in g] + b.flush()
    assert got == want
    assert sorted(os.listdir(tmp_path / "batch")) == sorted(os.listdir(tmp_path / "one"))
    for name in os.listdir(tmp_path / "one"):
        assert (tmp_path / "batch" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_an_entry_comes_out_only_after_its_files_are_synced_renamed_and_the_directory_synced(tmp_path, monkeypatch):
    events, fsync, replace = [], os.fsync, os.replace
    synced = lambda fd: os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))  # noqa: E731
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", synced(fd))), fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("rename", os.path.basename(b))), replace(a, b)))
    b = ShardBatch(str(tmp_path), size=3)
    assert b.write(0, *shard(0)) == [] and b.write(1, *shard(1)) == []
    assert events == [] and not any(n.endswith(".npy") for n in os.listdir(tmp_path))  # only .tmp files so far
    out = b.write(2, *shard(2))
    assert [e["shard"] for e in out] == [0, 1, 2]
    names = [n for i in range(3) for n in (cachefiles.shard_name(i), cachefiles.keys_name(i))]
    assert events == ([("fsync", cachefiles.temp_name(n)) for n in names] + [("rename", n) for n in names]
                      + [("fsync", tmp_path.name)])  # the directory, once


def test_a_failed_sync_hands_out_nothing_and_leaves_only_temporary_files(tmp_path, monkeypatch):
    b = ShardBatch(str(tmp_path), size=4)
    b.write(0, *shard(0))
    b.write(1, *shard(1))

    def full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        b.flush()
    b.close()
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == sorted(cachefiles.temp_name(n) for i in range(2)
                                                  for n in (cachefiles.shard_name(i), cachefiles.keys_name(i)))
    cachefiles.remove_leftovers(str(tmp_path))  # what the next run does first
    assert os.listdir(tmp_path) == []


def test_a_flush_after_a_failed_sync_does_not_hand_out_the_files_that_failed(tmp_path, monkeypatch):
    """A failed fsync leaves a file's data in doubt (Linux marks the pages clean even so): flushing the
    same batch again must not rename it into place and hand out its entry as durable."""
    b = ShardBatch(str(tmp_path), size=4)
    b.write(0, *shard(0))
    b.write(1, *shard(1))
    fsync, calls = os.fsync, []

    def fails_on_the_second(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        fsync(fd)
    monkeypatch.setattr(os, "fsync", fails_on_the_second)
    with pytest.raises(OSError, match="Input/output error"):
        b.flush()
    assert b.flush() == []
    assert b.write(2, *shard(2)) == [] and [e["shard"] for e in b.flush()] == [2]
    assert not any(os.path.exists(tmp_path / n) for i in range(2)
                   for n in (cachefiles.shard_name(i), cachefiles.keys_name(i)))
