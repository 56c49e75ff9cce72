"""The files of a cache: only its own are ever deleted, renames are made durable, old formats and
unfinished caches are refused, a read-only directory is refused before anything runs, and the
reader reads the index one shard at a time and never evicts the training split."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import graphsurgeon as gs
from graphsurgeon._src.cache import CacheReader, epochs, generate
from graphsurgeon._src.cli import to_flags
from graphsurgeon._src.storage import cachefiles

from helpers import ROOT, tree_hash


@pytest.fixture
def cache(seed004, npz, tmp_path):
    out = str(tmp_path / "c")
    generate(seed004[0], "hidden2/Relu", npz, out, batch_size=32, shard_size=32, progress=False)
    return out


def _manifest(out):
    return json.load(open(os.path.join(out, "manifest.json")))


def _write_manifest(out, m):
    open(os.path.join(out, "manifest.json"), "w").write(json.dumps(m, sort_keys=True, indent=1))


@pytest.mark.parametrize("name", ["../victim.npy", "model.ckpt.index", "shard-00007.npy"])
def test_repair_deletes_only_files_it_created(seed004, npz, cache, tmp_path, name):
    """A damaged manifest naming another file as shard 1 (a path outside, a checkpoint file, another
    shard's name) is refused before anything is deleted, with --repair too."""
    victim = tmp_path / "victim.npy"
    victim.write_bytes(b"keep me")
    (tmp_path / "c" / "model.ckpt.index").write_bytes(b"keep me too")
    m = _manifest(cache)
    m["shards"][1]["file"] = name
    m["shards"][1]["sha256"] = "0" * 64  # as if damaged: --repair would want to delete it
    _write_manifest(cache, m)
    before = tree_hash(str(tmp_path))
    with pytest.raises(gs.CacheError, match=f"shard entry 1 names files '{name}'.*shard 1's files are shard-00001.npy"):
        generate(seed004[0], "hidden2/Relu", npz, cache, batch_size=32, shard_size=32, repair=True, progress=False)
    with pytest.raises(gs.CacheError, match="the manifest is damaged"):
        CacheReader(cache)
    assert tree_hash(str(tmp_path)) == before


def test_clean_up_touches_only_the_cache_own_names(seed004, npz, cache):
    """Temporary files and unlisted shards of the cache's own patterns go; anything else stays."""
    mine = ["shard-00099.npy", "shard-00099.keys.npy", "shard-00003.npy.tmp", "manifest.json.tmp",
            "examples-0123456789abcdef.npy", "shard-00001.npy." + "a" * 32 + ".tmp"]
    theirs = ["notes.tmp", "shard-00001.npy.bak", "shard-1.npy", "examples.npy", "README", "x.keys.npy",
              "shard-00001.npy." + "z" * 32 + ".tmp"]
    for n in mine + theirs:
        open(os.path.join(cache, n), "wb").write(b"x")
    rep = generate(seed004[0], "hidden2/Relu", npz, cache, batch_size=32, shard_size=32, progress=False)
    assert rep.computed == 0
    left = set(os.listdir(cache))
    assert not (set(mine) & left) and set(theirs) <= left


def test_renames_are_followed_by_a_directory_fsync(seed004, npz, tmp_path, monkeypatch):
    events = []
    replace, fsync_dir = os.replace, cachefiles.fsync_dir
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("rename", b)), replace(a, b)))
    monkeypatch.setattr(cachefiles, "fsync_dir", lambda d: (events.append(("fsync", d)), fsync_dir(d)))
    out = str(tmp_path / "c")
    generate(seed004[0], "hidden2/Relu", npz, out, batch_size=32, shard_size=64, progress=False)
    events = [e for e in events if e != ("rename", os.path.join(out, "probe"))]  # the writability probe, deleted
    renamed = {os.path.basename(b) for kind, b in events if kind == "rename"}
    assert {"manifest.json", "shard-00000.npy", "shard-00000.keys.npy"} <= renamed
    for i, (kind, _) in enumerate(events):  # each run of renames is followed at once by an fsync of the directory
        if kind == "rename" and (i + 1 == len(events) or events[i + 1][0] != "rename"):
            assert i + 1 < len(events) and events[i + 1] == ("fsync", out), events[i - 2:i + 2]


def test_a_version_1_cache_is_refused_not_converted(seed004, npz, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"version": 1, "shards": [], "fingerprint": {}}))
    before = tree_hash(str(out))
    with pytest.raises(gs.CacheError, match="format version 1 .*make a new cache in another directory"):
        CacheReader(str(out))
    with pytest.raises(gs.CacheError, match="format version 1"):
        generate(seed004[0], "hidden2/Relu", npz, str(out), progress=False)
    assert tree_hash(str(out)) == before


def test_read_only_directory_is_refused_before_anything_runs(seed004, tmp_path):
    """On a read-only file system (a tmpfs mounted read-only in a private mount namespace) the
    cache is refused at once: the data here is not even readable, which a later step would report."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode:
        pytest.skip("needs unshare --mount (a private mount namespace) to mount a read-only file system")
    ro = tmp_path / "ro"
    ro.mkdir()
    (tmp_path / "broken.npz").write_bytes(b"not an npz")
    cmd = (f"mount -t tmpfs -o ro,size=1m tmpfs {ro} && exec {sys.executable} -m graphsurgeon cache --model "
           f"{seed004[0]} --cut hidden2/Relu --data {tmp_path / 'broken.npz'} --out {ro / 'cache'} --quiet")
    runners = ["local"] + (["beam"] if importlib.util.find_spec("apache_beam") else [])  # beam: the [beam] extra
    for runner in runners:
        p = subprocess.run(["unshare", "--mount", "sh", "-c", cmd + f" --runner {runner}"], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": ROOT})
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip() == (f"graphsurgeon cache: error: --out {ro / 'cache'} cannot be written: {ro} is on a "
                                    "read-only file system")


def test_an_interrupted_cache_is_refused_by_the_reader(cache):
    m = _manifest(cache)
    m["complete"] = False
    for k in ("examples", "data", "classes", "copies"):
        m.pop(k)
    _write_manifest(cache, m)
    with pytest.raises(gs.CacheError) as e:
        CacheReader(cache)
    n = len(m["shards"])
    assert n > 1
    assert str(e.value) == (f"{cache}: incomplete (a run of generate_cache into it was interrupted after {n} "
                            "shards); run generate_cache again with the same arguments to complete it")
    assert to_flags(str(e.value)) == (f"{cache}: incomplete (a run of the cache command into it was interrupted after "
                                      f"{n} shards); run the cache command again with the same arguments to "
                                      "complete it")
    _write_manifest(cache, dict(m, shards=m["shards"][:1]))  # one shard: not '1 shard(s)'
    with pytest.raises(gs.CacheError, match=r"interrupted after 1 shard\); run generate_cache"):
        CacheReader(cache)


def test_the_cut_is_stored_under_the_manifests_tensor_key(cache):
    """The library calls the cut point ``cut``; the manifest keeps the key caches have always had
    (``fingerprint.tensor``), so caches made before the rename still read."""
    m = _manifest(cache)
    assert m["fingerprint"]["tensor"] == "hidden2/Relu:0" and "cut" not in m["fingerprint"]
    with CacheReader(cache) as r:
        assert r.cut == "hidden2/Relu:0"


def test_shards_hold_one_split_and_the_index_is_read_one_shard_at_a_time(cache):
    """A damaged part of the index (the validation shards') fails only when those shards are read."""
    m = _manifest(cache)
    parts = m["examples"]["parts"]
    assert all(sum(1 for n in p["splits"] if n) == 1 for p in parts)  # one split per shard
    val = next(p for p in parts if p["splits"][1])
    path = os.path.join(cache, m["examples"]["file"])
    data = bytearray(open(path, "rb").read())
    offset = len(data) - m["examples"]["rows"] * 15
    data[offset + val["start"] * 15] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with CacheReader(cache) as r:
        assert sum(len(y) for _, y in r.batches("train", 32)) == r.count("train")
        with pytest.raises(gs.CacheError, match=f"the index of shard {val['shard']} does not match its checksum"):
            list(r.batches("validation", 32, shuffle=False))


@pytest.mark.parametrize("large", [True, False])
def test_validation_does_not_evict_the_training_split(cache, large):
    """Train fits the buffer; validation is then kept too (large buffer) or streamed (small): in
    both cases the second epoch reads no shard, and both passes give every example once."""
    with CacheReader(cache) as r:
        n_train, n_val = r.count("train"), r.count("validation")
    row = 100 * 4 + epochs.RESIDENT_ROW_BYTES  # a resident row and its bookkeeping
    room = 2 * (100 * 4 + epochs.ROW_BOOKKEEPING)  # what a resident split must leave: two windows of one row
    with CacheReader(cache, buffer_bytes=10_000 * 400 if large else n_train * row + room + 100) as r:
        assert large or n_train * row + room <= r.buffer_bytes < (n_train + n_val) * row + room
        assert sum(len(y) for _, y in r.batches("train", 32, epoch=0)) == n_train
        assert sum(len(y) for _, y in r.batches("validation", 32, shuffle=False)) == n_val
        reads = r.stats["shard_reads"]
        assert sum(len(y) for _, y in r.batches("train", 32, epoch=1)) == n_train
        val = list(r.batches("validation", 32, shuffle=False))
        assert sum(len(y) for _, y in val) == n_val
        after = r.stats["shard_reads"] - reads
        assert after == (0 if large else sum(1 for p in r.manifest["examples"]["parts"]
                                                             if p["splits"][1]))
        np.testing.assert_array_equal(np.sort(np.concatenate([y for _, y in val])), np.sort(r.labels("validation")))


def test_the_checks_record_is_read_when_present_and_checked(cache):
    """``checks`` (what the cache run found) is optional: a manifest without it (made before the
    record) reads; one that holds it must hold both findings, each true, false or null."""
    m = _manifest(cache)
    assert m["checks"] == {"random": False, "batch_dependent": False}
    for bad in ({"random": False}, {"random": 1, "batch_dependent": False}, [],
                {"random": None, "batch_dependent": None, "other": True}):
        _write_manifest(cache, dict(m, checks=bad))
        with pytest.raises(gs.CacheError, match=r"'checks' is .*; expected random and batch_dependent, each true, "
                                                r"false or null; the manifest is damaged"):
            CacheReader(cache)
    del m["checks"]
    _write_manifest(cache, m)
    CacheReader(cache).close()


@pytest.mark.parametrize("held, rows, said", [(1, 2, "holds 1 content key; expected 2 content keys"),
                                              (2, 1, "holds 2 content keys; expected 1 content key")])
def test_a_keys_file_of_the_wrong_length_is_counted_in_the_right_number(tmp_path, held, rows, said):
    """It said '1 content keys'."""
    import hashlib
    import io

    from graphsurgeon._src.storage.cacheshards import KEY_DTYPE, read_keys

    buf = io.BytesIO()
    np.save(buf, np.zeros(held, KEY_DTYPE))
    (tmp_path / "k.npy").write_bytes(buf.getvalue())
    entry = {"keys": "k.npy", "keys_sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "rows": rows, "file": "s.npy"}
    with pytest.raises(gs.CacheError, match=said):
        read_keys(str(tmp_path), entry)
