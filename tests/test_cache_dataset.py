"""A cache is a cache of a data set: labels by class name, every example its own label, what the data
no longer holds is not read, and everything the rows depend on (feeds, seeds, the model and the run)
is checked before a cache is reused."""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from test_cli import write_images

import graphsurgeon as gs
from graphsurgeon._src.cache import CacheReader, generate

from helpers import tree_hash
from legacy_models import fully_connected, tiny_convnet

tf1 = tf.compat.v1


def _folder_labels(reader, root):
    """``{file name: class name}`` of the undistorted examples, from the reader's labels and classes."""
    files = sorted((c, f) for c in sorted(os.listdir(root)) for f in sorted(os.listdir(os.path.join(root, c))))
    labels = reader.labels()
    return {f: reader.classes[int(y)] for (_, f), y in zip(files, labels)}, {f: c for c, f in files}


def test_labels_follow_class_names_when_a_class_is_added_or_an_image_moves(tmp_path):
    prefix = tiny_convnet(str(tmp_path))
    root, out = tmp_path / "photos", str(tmp_path / "c")
    write_images(root, 4)  # blue/, red/
    generate(prefix, "pool", str(root), out, progress=False)
    with CacheReader(out) as r:
        assert r.classes == ["blue", "red"]
    # a class that sorts first shifts every index: the old examples keep their class by name
    os.makedirs(root / "amber")
    shutil.copy(root / "red" / "red0.png", root / "amber" / "amber0.png")  # same content as red0: reused
    (root / "amber" / "amber1.png").write_bytes(tf.io.encode_png(np.full((5, 5, 3), 200, np.uint8)).numpy())
    rep = generate(prefix, "pool", str(root), out, progress=False)
    assert rep.computed == 1 and rep.examples == 10
    assert any("classes ['blue', 'red'] -> ['amber', 'blue', 'red']" in c for c in rep.changes)
    with CacheReader(out) as r:
        assert r.classes == ["amber", "blue", "red"]
        got, want = _folder_labels(r, root)
        assert got == want
        assert r.count("train") + r.count("validation") + r.count("test") == 10
    # an image moved to another folder takes that folder's label; nothing is computed
    os.rename(root / "blue" / "blue2.png", root / "red" / "blue2.png")
    rep = generate(prefix, "pool", str(root), out, progress=False)
    assert rep.computed == 0
    with CacheReader(out) as r:
        got, want = _folder_labels(r, root)
        assert got == want and got["blue2.png"] == "red"


def test_duplicate_contents_are_separate_examples_with_their_own_labels(seed004, tmp_path):
    prefix, x, _ = seed004
    xs = np.concatenate([x[:50], x[:20]])  # rows 50..69 repeat rows 0..19, with other labels
    ys = np.concatenate([np.zeros(50, np.int64), np.ones(20, np.int64)])
    split = np.array(["train"] * 70)
    np.savez(tmp_path / "d.npz", x=xs, y=ys, split=split)
    rep = generate(prefix, "hidden2/Relu", str(tmp_path / "d.npz"), str(tmp_path / "c"), progress=False)
    assert rep.computed == 50 and rep.examples == 70  # each content computed once, every example indexed
    with CacheReader(str(tmp_path / "c")) as r:
        assert r.count("train") == 70
        np.testing.assert_array_equal(r.labels("train"), ys)
        np.testing.assert_array_equal(r.read(np.arange(50, 70)), r.read(np.arange(20)))
        ys_seen = np.concatenate([y for _, y in r.batches("train", 16, seed=1)])
        assert sorted(ys_seen.tolist()) == sorted(ys.tolist())


def test_examples_the_data_no_longer_holds_are_not_read_and_files_do_not_merge(seed004, npz, tmp_path):
    prefix, x, _ = seed004
    out = str(tmp_path / "c")
    generate(prefix, "hidden2/Relu", npz, out, progress=False)
    y = np.load(npz)["y"]
    np.savez(tmp_path / "fewer.npz", x=x[:100], y=y[:100])
    rep = generate(prefix, "hidden2/Relu", str(tmp_path / "fewer.npz"), out, progress=False)
    assert rep.computed == 0 and rep.examples == 100 and rep.unreferenced == 156
    with CacheReader(out) as r:
        assert sorted(r.examples().tolist()) == list(range(100))
        np.testing.assert_array_equal(r.labels(), y[:100])
        assert r.data["path"] == str(tmp_path / "fewer.npz") and r.data["examples"] == 100
        assert sum(len(b) for _, b in r.batches("train", 32)) == r.count("train")
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", epochs=1)
    res = gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False)
    assert sum(m["examples"] for m in res.metrics.values()) == 100
    # another file into the same directory: its own examples only (no merge); the old rows stay
    other = np.random.default_rng(5).normal(size=(30, 500)).astype(np.float32)
    np.savez(tmp_path / "other.npz", x=other, y=np.zeros(30, np.int64))
    rep = generate(prefix, "hidden2/Relu", str(tmp_path / "other.npz"), out, progress=False)
    assert rep.computed == 30 and rep.examples == 30 and rep.unreferenced == 256
    with CacheReader(out) as r:
        assert r.data["examples"] == 30 and r.count("train") + r.count("validation") + r.count("test") == 30
    # the first data set again: nothing to compute, its index comes back
    assert generate(prefix, "hidden2/Relu", npz, out, progress=False).computed == 0


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """X -> hidden1 -> times placeholder 'scale' -> hidden2: a feed below the cut 'scaled'."""
    d = tmp_path_factory.mktemp("scaled")
    g = tf.Graph()
    with g.as_default():
        X = tf1.placeholder(tf.float32, (None, 6), name="X")
        scale = tf1.placeholder(tf.float32, (), name="scale")
        h = tf.multiply(fully_connected(X, 5, "hidden1"), scale, name="scaled")
        fully_connected(h, 4, "hidden2")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(s, str(d / "m" / "m.ckpt"))
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    np.savez(d / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    return prefix, str(d / "d.npz")


def test_feed_values_are_fingerprinted(scaled, tmp_path):
    prefix, data = scaled
    out = str(tmp_path / "c")
    generate(prefix, "scaled", data, out, feeds={"scale": "1"}, progress=False)
    before = tree_hash(out)
    with pytest.raises(gs.CacheError, match=r"feed scale 1\.0 -> 2\.0"):
        generate(prefix, "scaled", data, out, feeds={"scale": "2"}, progress=False)
    assert tree_hash(out) == before
    assert generate(prefix, "scaled", data, out, feeds={"scale": 1.0}, progress=False).computed == 0
    cfg = gs.RetrainConfig(model=prefix, head="hidden2/Relu:2", feeds={"scale": "2"}, epochs=1)
    with pytest.raises(gs.CacheError, match=r"other settings .*feed scale 1\.0 -> 2\.0.*stale"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="hidden2/Relu:2", feeds={"scale": "1"}, train_feeds={"scale": "3"},
                           epochs=1)
    with pytest.raises(gs.CacheError, match="train_feeds=.*'scale'.* below the cached tensor"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="hidden2/Relu:2", feeds={"scale": "1"}, epochs=1)
    assert gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False).metrics["train"]["examples"] > 0


def test_augmentation_seed_and_settings_are_fingerprinted(tmp_path):
    prefix = tiny_convnet(str(tmp_path))
    write_images(tmp_path / "photos", 6)
    out = str(tmp_path / "c")
    generate(prefix, "pool", str(tmp_path / "photos"), out, augment=2, seed=5, progress=False)
    before = tree_hash(out)
    with pytest.raises(gs.CacheError, match="other distortion settings .*seed 5 -> 6"):
        generate(prefix, "pool", str(tmp_path / "photos"), out, augment=2, seed=6, progress=False)
    with pytest.raises(gs.CacheError, match="random_crop 10.0 -> 20.0"):
        generate(prefix, "pool", str(tmp_path / "photos"), out, augment=2, seed=5, augment_params={"random_crop": 20.0},
                 progress=False)
    assert tree_hash(out) == before
    # without copies now, the settings of the stored ones are remembered and still checked later
    generate(prefix, "pool", str(tmp_path / "photos"), out, progress=False)
    with pytest.raises(gs.CacheError, match="seed 5 -> 7"):
        generate(prefix, "pool", str(tmp_path / "photos"), out, augment=2, seed=7, progress=False)


def _edit_manifest(out, **changes):
    path = os.path.join(out, "manifest.json")
    m = json.load(open(path))
    m.update(changes)
    open(path, "w").write(json.dumps(m, sort_keys=True, indent=1))


def _narrow_shards(out, width):
    """Every shard cut to its first ``width`` columns, the manifest's sizes and checksums updated to
    match: a cache whose files agree with each other, of a tensor ``width`` wide."""
    path = os.path.join(out, "manifest.json")
    m = json.load(open(path))
    for s in m["shards"]:
        shard = os.path.join(out, s["file"])
        np.save(shard, np.load(shard)[:, :width])
        s.update(sha256=hashlib.sha256(open(shard, "rb").read()).hexdigest(), bytes=os.path.getsize(shard))
    open(path, "w").write(json.dumps(dict(m, shape=[width]), sort_keys=True, indent=1))


def test_retrain_checks_the_cache_against_the_model_and_the_run_not_the_manifest(seed004, npz, tmp_path):
    """Shape and dtype are compared with what the model computes now: a manifest that says
    otherwise (a cache of another model) is refused, naming the difference."""
    prefix, _, _ = seed004
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", epochs=1)
    for change, message in ((lambda out: _narrow_shards(out, 99), r"shape \[99\] -> \[100\]"),
                            (lambda out: _edit_manifest(out, tensor_dtype="float16"), "tensor_dtype float16 -> float32")):
        out = str(tmp_path / f"c{len(message)}")
        generate(prefix, "hidden2/Relu", npz, out, progress=False)
        change(out)
        with pytest.raises(gs.CacheError, match=message):
            gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False)


def test_retrain_checks_the_input_against_the_run(tmp_path):
    g = tf.Graph()
    with g.as_default():
        a = tf1.placeholder(tf.float32, (None, 3), name="A")
        b = tf1.placeholder(tf.float32, (None, 3), name="B")
        h = tf.nn.relu(fully_connected(a, 4, "fa", activation=None) + fully_connected(b, 4, "fb", activation=None),
                       name="features")
        fully_connected(h, 3, "top")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(s, str(tmp_path / "m" / "m.ckpt"))
    np.savez(tmp_path / "d.npz", x=np.eye(3, dtype=np.float32).repeat(4, 0), y=np.arange(12) % 2)
    out = str(tmp_path / "c")
    generate(prefix, "features", str(tmp_path / "d.npz"), out, input="A", feeds={"B": "0"}, progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="top/Relu:2", input="B", feeds={"A": "0"}, epochs=1)
    with pytest.raises(gs.CacheError, match="was made with input A:0, and this run's input is 'B': the cached "
                                            "activations were computed from A:0"):  # refused before the other differences
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="top/Relu:2", input="A", feeds={"B": "0"}, epochs=1)
    assert gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False).metrics


def test_retrain_checks_the_pixel_scale_of_an_image_cache(tmp_path):
    prefix = tiny_convnet(str(tmp_path))
    write_images(tmp_path / "photos", 4)
    out = str(tmp_path / "c")
    generate(prefix, "pool", str(tmp_path / "photos"), out, image_scale="inception", progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="pool:2", epochs=1)
    with pytest.raises(gs.CacheError, match="preprocessing .*'scale': 'inception'.* -> .*'scale': 'unit'"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="pool:2", epochs=1, image_scale="inception")
    assert gs.retrain(cfg, None, str(tmp_path / "o"), cache=out, progress=False).metrics
