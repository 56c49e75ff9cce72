"""cache --runner beam: the same bytes as a local run, and a killed worker leaves nothing half-written.

Apache Beam is an optional extra ([beam]); these tests are skipped where it is not installed,
except the one that checks the message a user without it gets.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import graphsurgeon as gs
from graphsurgeon._src.cache import beam, generate
from graphsurgeon._src.storage import cachefiles, cacheshards

from helpers import ROOT, tree_hash

ENV = {**os.environ, "PYTHONPATH": ROOT}
needs_beam = pytest.mark.skipif(beam.apache_beam is None, reason="apache-beam (the [beam] extra) is not installed")


@pytest.fixture(scope="module")
def data(seed004, tmp_path_factory):
    """(prefix, small .npz (256 rows), big .npz (6000 rows))"""
    prefix, x, _ = seed004
    d = tmp_path_factory.mktemp("beamdata")
    np.savez(d / "small.npz", x=x, y=(x[:, 7] > 0).astype(np.int64))
    big = np.random.RandomState(0).randn(6000, x.shape[1]).astype(np.float32)
    np.savez(d / "big.npz", x=big, y=(big[:, 7] > 0).astype(np.int64))
    return prefix, str(d / "small.npz"), str(d / "big.npz")


def _cli(prefix, npz, out, *extra):
    return [sys.executable, "-m", "graphsurgeon", "cache", "--model", prefix, "--cut", "hidden2/Relu", "--data", npz,
            "--out", out, "--batch-size", "32", "--shard-size", "32", "--quiet", *extra]


@needs_beam
def test_beam_cache_is_byte_identical_to_the_local_one(data, tmp_path):
    prefix, small, _ = data
    local, on_beam = str(tmp_path / "local"), str(tmp_path / "beam")
    generate(prefix, "hidden2/Relu", small, local, batch_size=32, shard_size=32, progress=False)
    p = subprocess.run(_cli(prefix, small, on_beam, "--json", "--runner", "beam"), capture_output=True, text=True,
                       env=ENV)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr == ""  # neither TensorFlow's nor the Beam workers' start-up lines
    report = json.loads(p.stdout)
    assert report["version"] == 1 and report["computed"] == 256 and report["shards_written"] == 9
    assert 0 < report["startup_seconds"] <= report["seconds"]
    assert tree_hash(on_beam) == tree_hash(local)  # shards, keys, index and manifest
    with gs.CacheReader(on_beam) as r:
        assert r.count("train") + r.count("validation") + r.count("test") == 256



@needs_beam
def test_the_report_tells_the_workers_start_up_from_the_run_and_a_line_says_they_start(data, tmp_path):
    """The workers' start-up (seconds, each restoring the model) was counted as throughput: 40 rows
    were reported as computed at 3 examples/s, and nothing showed until the first shard was done."""
    prefix, small, _ = data
    out = str(tmp_path / "c")
    p = subprocess.run([a for a in _cli(prefix, small, out, "--runner", "beam") if a != "--quiet"],
                       capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.fullmatch(rf"{re.escape(out)}: 256 cached activations; computed 256 in a (\d+) s run \((\d+) s of it "
                     r"starting the Beam workers, until their first shard\), reused 0, 9 shards written\n", p.stdout)
    assert m and int(m.group(2)) <= int(m.group(1)), p.stdout
    assert "examples/s" not in p.stdout
    lines = p.stderr.splitlines()  # not a terminal: plain lines, no bar
    assert lines[0] == "caching (beam): starting the workers for 9 shards (each restores the model before its " \
                       "first one)"
    assert re.fullmatch(r"caching \(beam\): 256/256 examples \(\d+ s\)", lines[-1])

def _descendants(pid):
    out = []
    for q in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{q}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            out += [int(q), *_descendants(int(q))]
    return out


def _beam_worker(pid):
    """A Python process of the pipeline's SDK workers under ``pid``, or None."""
    for q in _descendants(pid):
        try:
            with open(f"/proc/{q}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if not cmd[0].endswith(b"sh") and b"apache_beam.runners.worker.sdk_worker_main" in cmd:
            return q
    return None


@needs_beam
def test_a_killed_worker_leaves_no_shard_and_the_next_run_completes_the_cache(data, tmp_path):
    """SIGKILL one SDK worker once workers have written shards: the DirectRunner does not retry, the
    command fails with one line, only attempts' temporary files are left (no shard, no manifest a
    reader would take), and the next run deletes them and builds the local run's bytes."""
    prefix, _, big = data
    ref, out = str(tmp_path / "ref"), str(tmp_path / "killed")
    generate(prefix, "hidden2/Relu", big, ref, batch_size=32, shard_size=32, progress=False)
    p = subprocess.Popen(_cli(prefix, big, out, "--runner", "beam"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=ENV)
    killed, deadline = None, time.time() + 240
    while killed is None and p.poll() is None and time.time() < deadline:
        names = os.listdir(out) if os.path.isdir(out) else []
        if any(cachefiles.TEMP_RE.match(n) and cachefiles.TEMP_RE.match(n).group("attempt") for n in names):
            killed = _beam_worker(p.pid)
            if killed:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.002)
    _, err = p.communicate(timeout=240)
    assert killed, "no worker was seen writing a shard before the pipeline ended"
    assert p.returncode == 2 and err.splitlines() == [
        f"graphsurgeon cache: error: a Beam worker process died (killed, or out of memory) before the pipeline "
        f"finished; nothing was committed to {out}: run the same command again to complete the cache"], err[-2000:]
    left = os.listdir(out)
    assert left and all(cachefiles.TEMP_RE.match(n).group("attempt") for n in left)  # attempts only
    with pytest.raises(gs.CacheError, match="no manifest.json"):
        gs.CacheReader(out)
    rep = generate(prefix, "hidden2/Relu", big, out, batch_size=32, shard_size=32, progress=False)
    assert rep.computed == 6000
    assert tree_hash(out) == tree_hash(ref)


def test_the_commit_takes_one_attempt_per_shard_and_refuses_a_damaged_one(tmp_path):
    """Two attempts of one shard (a retried bundle): one is renamed into place, the other deleted, the
    manifest lists the shard once; an attempt whose bytes differ from its checksum is refused."""
    d = str(tmp_path)
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    keys = np.zeros(3, cacheshards.KEY_DTYPE)
    keys["aug"] = [0, 1, 2]
    a = cacheshards.write_shard(d, 0, rows, keys, attempt=cachefiles.new_attempt())
    b = cacheshards.write_shard(d, 0, rows, keys, attempt=cachefiles.new_attempt())
    head = {"version": cachefiles.VERSION}
    assert list(beam.CommitShards(d, head, [], None).process([b, a])) == [1]
    assert sorted(os.listdir(d)) == ["manifest.json", "shard-00000.keys.npy", "shard-00000.npy"]
    with open(os.path.join(d, "manifest.json")) as f:
        assert [s["shard"] for s in json.load(f)["shards"]] == [0]
    assert np.load(os.path.join(d, "shard-00000.npy")).tolist() == rows.tolist()
    c = cacheshards.write_shard(d, 1, rows, keys, attempt=cachefiles.new_attempt())
    with open(os.path.join(d, c["temp"][0]), "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x01")
    with pytest.raises(gs.CacheError, match="differs from the checksum it reported"):
        beam.CommitShards(d, head, [], None).process([c]).__next__()
    assert not os.path.exists(os.path.join(d, "shard-00001.npy"))


def test_without_apache_beam_one_line_says_how_to_install_it(data, tmp_path, monkeypatch):
    prefix, small, _ = data
    monkeypatch.setattr(beam, "apache_beam", None)
    with pytest.raises(gs.ConfigError, match=r"^runner='beam' needs Apache Beam, an optional extra: pip install "
                                             r"'tf1-graphsurgeon\[beam\]'"):
        generate(prefix, "hidden2/Relu", small, str(tmp_path / "c"), runner="beam", progress=False)
    assert not os.path.exists(tmp_path / "c")  # refused before anything is written
