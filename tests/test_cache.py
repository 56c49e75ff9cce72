"""Bottleneck caches: correctness against live training, content keys, crash safety, stale caches."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src.cache import CacheReader, generate
from graphsurgeon._src.storage import cachefiles
from graphsurgeon._src.storage.datasets import load_npz

from helpers import ROOT, ckpt, tree_hash

tf1 = tf.compat.v1


def test_seed004_cache_trains_like_the_live_graph(seed004, npz, tmp_path):
    """hidden2 cached; hidden3 (copied, unlocked) and the new output train from the cache.
    Same seed, same batches: the result equals training through the frozen layers every step."""
    prefix, _, _ = seed004
    rep = generate(prefix, "hidden2/Relu", npz, str(tmp_path / "cache"), batch_size=64, progress=False)
    assert rep.computed == 256 and rep.reused == 0
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", trainable=["hidden3"], epochs=3, batch_size=32,
                           lr=0.05, seed=3)
    cached = gs.retrain(cfg, None, str(tmp_path / "from_cache"), cache=str(tmp_path / "cache"), progress=False)
    live = gs.retrain(cfg, load_npz(npz), str(tmp_path / "live"), progress=False)
    a, b = ckpt(str(tmp_path / "from_cache/checkpoint/model.ckpt")), ckpt(str(tmp_path / "live/checkpoint/model.ckpt"))
    assert sorted(a) == sorted(b)
    for n in a:
        np.testing.assert_allclose(a[n], b[n], rtol=0, atol=1e-6, err_msg=n)
    src = ckpt(prefix)
    for n in ("hidden1/weights", "hidden2/weights", "hidden2/biases"):
        assert a[n].tobytes() == src[n].tobytes()
    assert a["hidden3/weights"].tobytes() != src["hidden3/weights"].tobytes()
    assert [round(h["train_loss"], 5) for h in cached.history] == [round(h["train_loss"], 5) for h in live.history]
    # the result is the whole model: it runs end to end on raw inputs
    with gs.restore(str(tmp_path / "from_cache/saved_model")) as m:
        assert m.run(m.outputs[0], {"X": np.zeros((2, 500), np.float32)}).shape == (2, 2)


def test_content_keys_second_run_computes_nothing_and_new_rows_only_themselves(seed004, npz, tmp_path):
    prefix, x, _ = seed004
    out = str(tmp_path / "c")
    generate(prefix, "hidden2/Relu", npz, out, batch_size=64, shard_size=128, progress=False)
    before = tree_hash(out)
    again = generate(prefix, "hidden2/Relu", npz, out, batch_size=64, shard_size=128, progress=False)
    assert again.computed == 0 and again.reused == 256 and tree_hash(out) == before
    more = np.concatenate([x, x[:10] + 1.0]).astype(np.float32)
    np.savez(tmp_path / "more.npz", x=more, y=(more[:, 7] > 0).astype(np.int64))
    grown = generate(prefix, "hidden2/Relu", str(tmp_path / "more.npz"), out, batch_size=64, shard_size=128,
                     progress=False)
    assert grown.computed == 10 and grown.examples == 266
    with CacheReader(out) as r:
        assert r.count("train") + r.count("validation") + r.count("test") == 266


def _perturbed_copy(prefix, dst, name):
    """A copy of the checkpoint with one frozen variable changed (the source is not touched)."""
    os.makedirs(dst)
    with gs.restore(prefix) as m:
        v = m.variables[name]
        m.session.run(v.initializer, {v.initializer.inputs[1]: m.values([name])[name] + 1e-3})
        with m.graph.as_default():
            return tf1.train.Saver().save(m.session, os.path.join(dst, "model.ckpt"))


def test_stale_caches_are_never_reused(seed004, npz, tmp_path):
    prefix, _, _ = seed004
    out = str(tmp_path / "c")
    generate(prefix, "hidden2/Relu", npz, out, progress=False)
    before = tree_hash(out)
    changed = _perturbed_copy(prefix, str(tmp_path / "changed"), "hidden1/weights")
    with pytest.raises(gs.CacheError, match=r"values of frozen variable hidden1/weights.*; it is not reused: "
                                            r"choose another out_dir=DIR or delete this one$"):
        generate(changed, "hidden2/Relu", npz, out, progress=False)
    with pytest.raises(gs.CacheError, match="cut hidden2/Relu:0 -> hidden1/Relu:0"):
        generate(prefix, "hidden1/Relu", npz, out, progress=False)
    with pytest.raises(gs.CacheError, match="dtype float32 -> float16"):
        generate(prefix, "hidden2/Relu", npz, out, dtype="float16", progress=False)
    assert tree_hash(out) == before
    # retraining a changed model from the old cache is refused too
    cfg = gs.RetrainConfig(model=changed, head="hidden3/Relu:2", epochs=1)
    with pytest.raises(gs.CacheError, match="stale"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False)


def test_other_preprocessing_is_a_new_key(tmp_path):
    from test_cli import write_images

    from legacy_models import tiny_convnet

    prefix = tiny_convnet(str(tmp_path))
    write_images(tmp_path / "photos", 4)
    generate(prefix, "pool", str(tmp_path / "photos"), str(tmp_path / "c"), progress=False)
    with pytest.raises(gs.CacheError, match="preprocessing .*'scale': 'unit'.* -> .*'scale': 'inception'"):
        generate(prefix, "pool", str(tmp_path / "photos"), str(tmp_path / "c"), image_scale="inception", progress=False)


def test_trainable_layers_below_the_cache_are_refused(seed004, npz, tmp_path):
    prefix, _, _ = seed004
    generate(prefix, "hidden2/Relu", npz, str(tmp_path / "c"), progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", trainable=["hidden2"], epochs=1)
    with pytest.raises(gs.ConfigError, match="hidden2/biases, hidden2/weights lie below the cached tensor"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=str(tmp_path / "c"), progress=False)
    with pytest.raises(gs.ConfigError, match=r"^trainable variables hidden2/biases, hidden2/weights lie below the "
                                             r"cached tensor 'hidden2/Relu:0': they cannot train from the cache"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=str(tmp_path / "c"), progress=False)
    cfg.trainable = ["hidden2/weights"]  # one is named in the singular (it said 'variable(s) ... lie')
    with pytest.raises(gs.ConfigError, match=r"^trainable variable hidden2/weights lies below the cached tensor "
                                             r"'hidden2/Relu:0': it cannot train from the cache; cache a lower tensor "
                                             r"or leave it frozen$"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=str(tmp_path / "c"), progress=False)
    with CacheReader(str(tmp_path / "c")) as r:  # positions the data set does not have (it said 'position(s) [...]')
        with pytest.raises(gs.CacheError, match=r": no example at position 900 \(the data set has 256\)$"):
            r.read([0, 900])
        with pytest.raises(gs.CacheError, match=r": no example at positions 900, 901 \(the data set has 256\)$"):
            r.read([900, 0, 901])
        with pytest.raises(gs.CacheError, match=r": no example at position 900 \(the data set has 256\)$"):
            r.read([900, 0, 900])  # asked twice, named once
        with pytest.raises(gs.CacheError, match=r": no example at positions 900, 901, 902, 903, 904 \(the data set "
                                                 r"has 256\)$"):
            r.read(range(900, 905))
        with pytest.raises(gs.CacheError, match=r": no example at positions 900, 901, 902, 903, 904 … \(the data "
                                                 r"set has 256\)$"):  # more than five: a '…', as header.py says
            r.read(range(900, 906))


def test_random_ops_below_the_tensor_are_refused(tmp_path):
    from legacy_models import fully_connected

    g = tf.Graph()
    with g.as_default():
        X = tf1.placeholder(tf.float32, (None, 6), name="X")
        h = tf1.nn.dropout(fully_connected(X, 4, "hidden1"), keep_prob=0.5)  # keep_prob baked in
        tf.identity(h, name="features")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(s, str(tmp_path / "m.ckpt"))
    np.savez(tmp_path / "d.npz", x=np.arange(24, dtype=np.float32).reshape(4, 6), y=np.zeros(4, np.int64))
    with pytest.raises(gs.ConfigError, match="depends on random op.*dropout"):
        generate(prefix, "features", str(tmp_path / "d.npz"), str(tmp_path / "c"), progress=False)
    rep = generate(prefix, "hidden1/Relu", str(tmp_path / "d.npz"), str(tmp_path / "c"), progress=False)
    assert rep.computed == 4


def test_corrupt_shard_is_named_and_repair_recomputes_it(seed004, npz, tmp_path):
    prefix, _, _ = seed004
    out = str(tmp_path / "c")
    generate(prefix, "hidden2/Relu", npz, out, batch_size=64, shard_size=64, progress=False)
    good = tree_hash(out)
    shard = os.path.join(out, "shard-00001.npy")
    data = bytearray(open(shard, "rb").read())
    data[-5] ^= 0xFF
    open(shard, "wb").write(bytes(data))
    with CacheReader(out) as r:  # sizes are checked at open, checksums when a shard is first read
        with pytest.raises(gs.CacheError, match="shard-00001.npy: the shard does not match its checksum"):
            r.read(r.examples())
    with pytest.raises(gs.CacheError, match=r": shard shard-00001.npy \(checksum differs\) does not match the "
                                            r"manifest; run again with repair=True to recompute them$"):
        generate(prefix, "hidden2/Relu", npz, out, batch_size=64, shard_size=64, progress=False)
    third = os.path.join(out, "shard-00002.npy")  # two: listed after one plural noun, with a plural verb
    os.rename(third, third + ".away")
    with pytest.raises(gs.CacheError, match=r": shards shard-00001.npy \(checksum differs\), shard-00002.npy "
                                            r"\(missing\) do not match the manifest; run again with repair=True"):
        generate(prefix, "hidden2/Relu", npz, out, batch_size=64, shard_size=64, progress=False)
    os.rename(third + ".away", third)
    assert set(tree_hash(out)) == set(good)
    rep = generate(prefix, "hidden2/Relu", npz, out, batch_size=64, shard_size=64, repair=True, progress=False)
    assert rep.repaired == ["shard-00001.npy"] and rep.computed == 64 and rep.shards_written == 1
    with CacheReader(out) as r:  # verified; the same activations as before, in a new shard
        assert r.count("train") + r.count("validation") + r.count("test") == 256
        r.read(r.examples())
    index = [n for n in good if n.startswith("examples-")]
    assert set(good) - set(tree_hash(out)) == {"shard-00001.npy", "shard-00001.keys.npy", *index}
    new = f"shard-{sum(n.endswith('.keys.npy') for n in good):05d}"  # numbered after every shard there was
    assert set(tree_hash(out)) - set(good) == {f"{new}.npy", f"{new}.keys.npy",
                                              *[n for n in tree_hash(out) if n.startswith("examples-")]}


def test_truncated_manifest_is_named(seed004, npz, tmp_path):
    prefix, _, _ = seed004
    out = str(tmp_path / "c")
    generate(prefix, "hidden2/Relu", npz, out, progress=False)
    m = os.path.join(out, "manifest.json")
    open(m, "wb").write(open(m, "rb").read()[:100])
    with pytest.raises(gs.CacheError, match="manifest.json: not a readable cache manifest"):
        CacheReader(out)
    with pytest.raises(gs.CacheError, match="manifest.json"):
        generate(prefix, "hidden2/Relu", npz, out, progress=False)


def test_bad_images_are_named_and_lose_nothing(tmp_path):
    from test_cli import write_images

    from legacy_models import tiny_convnet

    prefix = tiny_convnet(str(tmp_path))
    write_images(tmp_path / "photos", 4)
    out = str(tmp_path / "c")
    generate(prefix, "pool", str(tmp_path / "photos"), out, progress=False)
    before = tree_hash(out)
    (tmp_path / "photos" / "red" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(gs.DataError, match="broken.png: cannot decode"):
        generate(prefix, "pool", str(tmp_path / "photos"), out, progress=False)
    os.remove(tmp_path / "photos" / "red" / "broken.png")
    (tmp_path / "photos" / "green").mkdir()
    with pytest.raises(gs.DataError, match="green: class folder holds no images"):
        generate(prefix, "pool", str(tmp_path / "photos"), out, progress=False)
    assert tree_hash(out) == before
    with pytest.raises(gs.DataError, match="no such file"):
        generate(prefix, "pool", str(tmp_path / "nowhere"), out, progress=False)


def test_augmented_copies_are_deterministic_and_used_for_training(tmp_path):
    from test_cli import write_images

    from legacy_models import tiny_convnet

    prefix = tiny_convnet(str(tmp_path))
    write_images(tmp_path / "photos", 12)
    a = generate(prefix, "pool", str(tmp_path / "photos"), str(tmp_path / "a"), augment=3, seed=5, progress=False)
    generate(prefix, "pool", str(tmp_path / "photos"), str(tmp_path / "b"), augment=3, seed=5, progress=False)
    assert tree_hash(str(tmp_path / "a")) == tree_hash(str(tmp_path / "b"))
    with CacheReader(str(tmp_path / "a")) as r:
        n_train = r.count("train")
        assert a.examples == 24 + 3 * n_train
        x0, _ = next(r.batches("train", 1000, shuffle=False, epoch=0))
        xu = r.read(r.examples("train"))
        assert not np.array_equal(x0, xu)  # training batches come from distorted copies
    cfg = gs.RetrainConfig(model=prefix, head="pool:2", epochs=2)
    res = gs.retrain(cfg, None, str(tmp_path / "o"), cache=str(tmp_path / "a"), progress=False)
    assert res.metrics["train"]["examples"] == n_train


def test_tfrecord_input(tmp_path):
    from legacy_models import tiny_convnet

    prefix = tiny_convnet(str(tmp_path))
    with tf.io.TFRecordWriter(str(tmp_path / "d.tfrecord")) as w:
        for i in range(6):
            img = np.full((9, 9, 3), 40 * i, np.uint8)
            ex = tf.train.Example(features=tf.train.Features(feature={
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(img).numpy()])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}))
            w.write(ex.SerializeToString())
    rep = generate(prefix, "pool", str(tmp_path / "d.tfrecord"), str(tmp_path / "c"), progress=False)
    assert rep.computed == 6
    with CacheReader(str(tmp_path / "c")) as r:
        assert list(r.labels()) == [0, 1, 0, 1, 0, 1]
    with pytest.raises(gs.DataError, match="needs features 'img'"):
        generate(prefix, "pool", str(tmp_path / "d.tfrecord"), str(tmp_path / "c2"), image_feature="img",
                 progress=False)


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
from graphsurgeon._src.storage import cachefiles, cacheshards
from graphsurgeon._src.cache import generate
point, k, calls = {point!r}, {k!r}, [0]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "shard_written":  # a shard's files complete under their temporary names, not renamed
    rename = cachefiles.rename_into_place
    def patched(directory, pairs):
        calls[0] += 1
        if calls[0] == k:
            die()
        return rename(directory, pairs)
    cachefiles.rename_into_place = patched
elif point == "manifest_half":  # half a manifest in its temporary file
    write = cachefiles.write_file
    def patched(path, data, *, sync_dir=True):
        if path.endswith("manifest.json"):
            calls[0] += 1
            if calls[0] == k:
                with open(path + ".tmp", "wb") as f:
                    f.write(data[:len(data) // 2])
                die()
        return write(path, data, sync_dir=sync_dir)
    cachefiles.write_file = patched
elif point == "index_written":  # the data set's index written, the final manifest not
    examples = cacheshards.write_examples
    def patched(*args):
        examples(*args)
        die()
    cacheshards.write_examples = patched
generate({prefix!r}, "hidden2/Relu", {data!r}, {out!r}, batch_size=32, shard_size=32, progress=False)
"""


@pytest.fixture(scope="module")
def big_npz(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    x = np.random.default_rng(1).normal(size=(6000, 500)).astype(np.float32)
    np.savez(d / "big.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    return str(d / "big.npz")


@pytest.fixture(scope="module")
def big_ref(seed004, big_npz, tmp_path_factory):
    ref = str(tmp_path_factory.mktemp("ref") / "ref")
    generate(seed004[0], "hidden2/Relu", big_npz, ref, batch_size=32, shard_size=32, progress=False)
    return tree_hash(ref)


def _listed_rows(out):
    try:
        return sum(s["rows"] for s in json.load(open(os.path.join(out, "manifest.json")))["shards"])
    except (OSError, ValueError):
        return 0


@pytest.mark.parametrize("point,k", [("shard_written", 1), ("shard_written", 5), ("manifest_half", 1),
                                     ("manifest_half", 2), ("index_written", 0)])
def test_killed_at_each_write_then_resumed_is_byte_identical(seed004, big_npz, big_ref, tmp_path, point, k):
    """SIGKILL at a chosen write (the child kills itself there): the next run completes the cache
    into the bytes of an uninterrupted run, computing exactly the rows the manifest did not list."""
    out = str(tmp_path / "killed")
    code = KILL_SCRIPT.format(root=ROOT, prefix=seed004[0], data=big_npz, out=out, point=point, k=k)
    p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()[-2000:]
    assert any(n.endswith(".tmp") for n in os.listdir(out)) or point == "index_written"
    listed = _listed_rows(out)
    if os.path.exists(os.path.join(out, "manifest.json")):
        with pytest.raises(gs.CacheError, match="incomplete"):
            CacheReader(out)
    resumed = generate(seed004[0], "hidden2/Relu", big_npz, out, batch_size=32, shard_size=32, progress=False)
    assert resumed.computed == 6000 - listed
    assert tree_hash(out) == big_ref


@pytest.mark.parametrize("kill_after_shard_files", [0, 40])
def test_sigkill_at_any_moment_then_resume_is_byte_identical(seed004, big_npz, big_ref, tmp_path,
                                                             kill_after_shard_files):
    out = str(tmp_path / "killed")
    code = KILL_SCRIPT.format(root=ROOT, prefix=seed004[0], data=big_npz, out=out, point="none", k=0)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if os.path.isdir(out) and sum(n.endswith(".npy") for n in os.listdir(out)) >= kill_after_shard_files:
            break
        time.sleep(0.002)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL  # killed while running, not after it finished
    listed = _listed_rows(out)
    resumed = generate(seed004[0], "hidden2/Relu", big_npz, out, batch_size=32, shard_size=32, progress=False)
    assert resumed.computed == 6000 - listed
    assert tree_hash(out) == big_ref


def test_cli_cache_and_retrain_from_cache(seed004, npz, tmp_path):
    prefix, _, _ = seed004
    env = {**os.environ, "PYTHONPATH": ROOT}
    p = subprocess.run([sys.executable, "-m", "graphsurgeon", "cache", "--model", prefix, "--cut", "hidden2/Relu",
                        "--data", npz, "--out", str(tmp_path / "c"), "--json", "--quiet"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads(p.stdout)
    assert report["version"] == 1 and report["computed"] == 256 and report["examples"] == 256
    assert p.stderr == ""  # --quiet: no progress, no TensorFlow noise
    p = subprocess.run([sys.executable, "-m", "graphsurgeon", "retrain", "--model", prefix, "--head", "hidden3/Relu:2",
                        "--trainable", "hidden3", "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o"),
                        "--epochs", "2", "--json", "--quiet"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)["metrics"]["train"]["examples"] > 0
    os.remove(tmp_path / "c" / "shard-00000.npy")
    assert not os.path.exists(tmp_path / "c" / "shard-00000.npy")
    p = subprocess.run([sys.executable, "-m", "graphsurgeon", "retrain", "--model", prefix, "--head", "hidden3/Relu:2",
                        "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o2"), "--quiet"],
                       capture_output=True, text=True, env=env)
    c = tmp_path / "c"
    assert p.returncode == 2 and p.stderr == (f"graphsurgeon retrain: error: {c}: shard shard-00000.npy (missing) "
                                              "does not match the manifest; run the cache command again with --repair\n")
    with pytest.raises(gs.CacheError, match=r"\(missing\) does not match the manifest; run generate_cache again with "
                                            r"repair=True$"):  # the library names its function and argument
        CacheReader(str(c))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cache_larger_than_the_buffer_is_read_in_windows(seed004, npz, tmp_path, dtype):
    """Buffer of 20 rows over 8 shards of 32: every training example once per epoch, full batches
    but the last, a new order every epoch; the same activations (as float32) as a full read; the
    validation split streamed shard by shard gives each of its examples once too."""
    prefix, _, _ = seed004
    out = str(tmp_path / "c")
    generate(prefix, "hidden2/Relu", npz, out, batch_size=32, shard_size=32, dtype=dtype, progress=False)
    with CacheReader(out) as full:
        expected = {tuple(np.round(r, 6)) for r in full.read(full.examples("train"))}
        val = full.read(full.examples("validation"))
        n = full.count("train")
    with CacheReader(out, buffer_bytes=20 * 100 * 4) as small:
        streamed = list(small.batches("validation", 16, shuffle=False))
        assert all(len(y) == 16 for _, y in streamed[:-1]) and all(x.dtype == np.float32 for x, _ in streamed)
        got = np.concatenate([x for x, _ in streamed])
        assert sorted(map(tuple, got)) == sorted(map(tuple, val))
        orders = []
        for epoch in (0, 1):
            batches = list(small.batches("train", 16, seed=0, epoch=epoch))
            assert all(len(y) == 16 for _, y in batches[:-1])
            rows = np.concatenate([x for x, _ in batches])
            assert len(rows) == n
            assert {tuple(np.round(r, 6)) for r in rows} == expected
            orders.append(rows[:, :3].copy())
        assert not np.array_equal(orders[0], orders[1])


def test_an_index_naming_a_row_past_its_shard_is_refused():
    """Windows gather rows of several shards from one buffer: a row number past its shard would
    read the next shard's rows, so it is refused."""
    from types import SimpleNamespace

    from graphsurgeon._src.cache import epochs
    from graphsurgeon._src.storage.cacheshards import EXAMPLE_DTYPE

    rows = np.zeros(3, EXAMPLE_DTYPE)
    rows["row"] = [0, 1, 4]
    store = SimpleNamespace(index=SimpleNamespace(part=lambda p: rows),
                            shards={0: SimpleNamespace(shape=(4, 100), path="shard-00000.npy")})
    with pytest.raises(gs.CacheError, match="shard-00000.npy: the data set's index names row 4 but the shard holds 4"):
        epochs._selected(store, {"shard": 0}, lambda r: np.ones(len(r), bool))
    rows["row"][2] = 3
    assert epochs._selected(store, {"shard": 0}, lambda r: np.ones(len(r), bool))[0].tolist() == [0, 1, 3]


def test_reader_as_tf_data_and_early_stopping(seed004, npz, tmp_path):
    prefix, _, _ = seed004
    out = str(tmp_path / "c")
    generate(prefix, "hidden2/Relu", npz, out, progress=False)
    with CacheReader(out) as r:
        ds = r.dataset("train", 32, seed=4, epochs=2)
        from_ds = [(x.numpy(), y.numpy()) for x, y in ds]
        direct = list(r.batches("train", 32, seed=4, epoch=0)) + list(r.batches("train", 32, seed=4, epoch=1))
        assert len(from_ds) == len(direct)
        for (a, b), (c, e) in zip(from_ds, direct):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, e)
    # a learning rate that diverges: early stopping ends the run and keeps the best epoch's weights
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", epochs=30, lr=50.0, patience=2)
    res = gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False)
    losses = [h["validation_loss"] for h in res.history]
    assert len(res.history) < 30
    assert res.metrics["validation"]["loss"] == pytest.approx(min(losses), rel=1e-5)


def test_missing_image_is_named(tmp_path):
    from test_cli import write_images

    from legacy_models import tiny_convnet

    prefix = tiny_convnet(str(tmp_path))
    write_images(tmp_path / "photos", 3)
    os.symlink(str(tmp_path / "gone.png"), str(tmp_path / "photos" / "red" / "gone.png"))
    with pytest.raises(gs.DataError, match="gone.png"):
        generate(prefix, "pool", str(tmp_path / "photos"), str(tmp_path / "c"), progress=False)
    assert not os.path.exists(tmp_path / "c" / "manifest.json")


def test_cache_directory_deleted_mid_run(seed004, npz, tmp_path, monkeypatch):
    """The directory is deleted (rm -rf by someone else) as the shards go into place: the run fails with one
    CacheError naming it, nothing is left for a reader to take, and the next run builds the cache
    byte for byte as an uninterrupted run does."""
    prefix = seed004[0]
    ref, out = str(tmp_path / "ref"), str(tmp_path / "c")
    generate(prefix, "hidden2/Relu", npz, ref, batch_size=32, shard_size=32, progress=False)
    rename, calls = cachefiles.rename_into_place, [0]

    def rename_then_delete(directory, pairs):
        calls[0] += 1
        if calls[0] == 1:
            shutil.rmtree(directory)
        return rename(directory, pairs)

    monkeypatch.setattr(cachefiles, "rename_into_place", rename_then_delete)
    with pytest.raises(gs.CacheError, match=f"cache directory {out}: a write failed while caching.*run the same"):
        generate(prefix, "hidden2/Relu", npz, out, batch_size=32, shard_size=32, progress=False)
    assert calls[0] == 1 and not os.path.exists(out)
    with pytest.raises(gs.CacheError, match="no manifest.json"):
        CacheReader(out)
    monkeypatch.setattr(cachefiles, "rename_into_place", rename)
    rep = generate(prefix, "hidden2/Relu", npz, out, batch_size=32, shard_size=32, progress=False)
    assert rep.computed == 256
    assert tree_hash(out) == tree_hash(ref)
