"""Lists in messages: the first few items, then ' …' after the last one shown (and, where the message counts
them, '(12 shards)'), one helper for all (mixins.series, listed). They were written by hand in each place:
some ended ', …', one 'and 2 more', some stopped at the limit without saying that more were left."""
import os
import types

import numpy as np
import pytest
import tensorflow as tf

from graphsurgeon._src import combine, determinism, train
from graphsurgeon._src.add_class import add_class
from graphsurgeon._src.errors import (
    CheckpointNotFoundError,
    ConfigError,
    ContinualError,
    DataError,
    MergeHeadsError,
    MigrateError,
    WrongPathKindError,
)
from graphsurgeon._src.migrate import plan as phases
from graphsurgeon._src.migrate import verify as migrate_verify
from graphsurgeon._src.migrate.sources import open_checkpoint
from graphsurgeon._src.mixins import listed, plural, series
from graphsurgeon._src.model import Model
from graphsurgeon._src.multihead import compare, load, merge
from graphsurgeon._src.retrain import checks
from graphsurgeon._src.retrain import data as retrain_data
from graphsurgeon._src.rules import Rules
from graphsurgeon._src.storage.paths import resolve, retrain_model
from graphsurgeon._src.surgery.plan import _state_parts

tf1 = tf.compat.v1


def test_series_and_listed():
    assert series([]) == "" and series(["a"], 1) == "a" and series("abc", 3) == "a, b, c"
    assert series("abcd", 3) == "a, b, c …"
    assert series("abcd", 2, sep="; ") == "a; b …"
    assert series(range(12), 2, count="shard") == "0, 1 … (12 shards)"
    assert series(range(2), 2, count="shard") == "0, 1"
    assert listed("position", [7]) == "position 7"
    assert listed("position", range(7), 5) == "positions 0, 1, 2, 3, 4 …"
    assert listed("shard", range(7), 5, count=True) == "shards 0, 1, 2, 3, 4 … (7 shards)"
    assert listed("checkpoint prefix", ["a", "b"]) == "checkpoint prefixes a, b"
    assert [plural(n, 2) for n in ("op", "class", "prefix", "batch")] == ["ops", "classes", "prefixes", "batches"]


def test_the_weights_that_differ_past_three():
    """It said 'a, b, c and 2 more', then lost the count ('a/w, b/w, c/w …'); a scope counts its weights."""
    names = ["a/w", "b/w", "c/w", "d/w", "e/w"]
    assert compare.summarize(names, names + ["a/b", "b/b", "c/b", "d/b", "e/b"]) == "a/w, b/w, c/w … (5 weights)"
    assert compare.summarize(names[:3], names[:3] + ["c/b"]) == "a/*, b/*, c/w"
    scopes = ["a/w", "a/b", "b/w", "b/b", "c/w", "d/w"]
    assert compare.summarize(scopes, scopes) == "a/*, b/*, c/* … (6 weights)"
    differences = [{"tasks": [1], "tensors": names, "max_abs": 0.5, "max_rel": 0.25}]
    assert compare.report(differences, names + ["a/b"]) == ("task 1 differs from the rest in a/w, b/*, c/* … "
                                                             "(5 weights) (max |Δ| 0.5, relative 0.25)")


def test_duplicate_task_names_past_five():
    """It named the first five and stopped; one duplicate was 'duplicate task names 'a''."""
    with pytest.raises(MergeHeadsError, match=r"^m: duplicate task names 'a', 'b', 'c', 'd', 'e' …; every task needs "):
        load.check_names(list("abcdef") * 2, "m")
    with pytest.raises(MergeHeadsError, match=r"^m: duplicate task name 'a'; every task needs its own name"):
        load.check_names(["a", "b", "a"], "m")


def test_old_optimizer_state_past_four_accumulators():
    """It said '6 accumulators (beta1_power, …)'."""
    accumulators = ["beta1_power", "beta2_power", "beta1_power_1", "beta2_power_1", "beta1_power_2", "beta2_power_2"]
    assert _state_parts(["w/Adam", "v/Adam"] + accumulators + ["global_step"]) == (
        "2 Adam slots, beta1_power, beta1_power_1, beta1_power_2, beta2_power … (6 accumulators), global_step")
    assert _state_parts(["w/Adam"] + accumulators[:2]) == "1 Adam slot, beta1_power, beta2_power"


def test_a_cast_of_no_float_tensor_past_three():
    """It ended ', …'."""
    matched = [types.SimpleNamespace(old=f"step{i}", dtype=tf.int64) for i in range(4)]
    assert phases._no_float(("step*", "float16"), matched) == (
        "cast=('step*', 'float16'): 'step0' is int64, 'step1' is int64, 'step2' is int64 … (no float tensor among "
        "the 4 it matches); only float tensors are cast")


def test_tf2_variables_of_one_name_past_three(tmp_path):
    """It ended ', …'."""
    m = tf.Module()
    m.a, m.b, m.c, m.d = (tf.Variable(float(i)) for i in range(4))  # unnamed: all "Variable"
    path = tf.train.Checkpoint(model=m).write(str(tmp_path / "unnamed"))
    keys = ", ".join(f"model/{k}/.ATTRIBUTES/VARIABLE_VALUE" for k in "abc")
    with pytest.raises(MigrateError) as e:
        phases.plan(open_checkpoint(path), [], Rules(), from_tf2=True)
    assert f"4 variables are named 'Variable' ({keys} …); TF2 variables made without name= share one" in str(e.value)


def test_checkpoint_prefixes_a_directory_holds(tmp_path):
    """One prefix was 'checkpoint prefixes' beside a missing path; retrain's output directory named four
    copied prefixes and ', …', the directory listing eight and stopped."""
    one = tmp_path / "one"
    one.mkdir()
    (one / "model.ckpt-1.index").write_bytes(b"")
    with pytest.raises(CheckpointNotFoundError, match=f"; {one} holds checkpoint prefix model.ckpt-1$"):
        resolve(str(one / "nosuch"))
    out = tmp_path / "out"
    for d in ("checkpoint", "saved_model"):
        (out / d).mkdir(parents=True)
    for i in range(10):
        (out / f"model.ckpt-{i}.index").write_bytes(b"")
    shown = ", ".join(f"model.ckpt-{i}" for i in range(8))
    with pytest.raises(WrongPathKindError, match=f"and also holds checkpoint prefixes {shown} …: it names two models"):
        retrain_model(str(out))
    with pytest.raises(CheckpointNotFoundError, match=f"; {out} holds checkpoint prefixes {shown} …$"):
        resolve(str(out / "nosuch"))


def test_no_such_task_among_more_than_eight(tmp_path, monkeypatch):
    """It ended ', … (9 tasks)'."""
    tasks = [types.SimpleNamespace(id=i, name=f"t{i}") for i in range(9)]
    monkeypatch.setattr(merge, "_stored", lambda model_dir: ({}, [], tasks, None, None))
    monkeypatch.setattr(merge.layout, "next_id", lambda tab, model_dir: 9)
    known = ", ".join(f"{i} t{i}" for i in range(8))
    with pytest.raises(MergeHeadsError) as e:
        merge.remove_task(str(tmp_path / "m"), "nosuch", str(tmp_path / "out"))
    assert str(e.value) == f"{tmp_path / 'm'}: no task 'nosuch' (tasks by id and name: {known} … (9 tasks))"
    assert not os.path.exists(tmp_path / "out")


def _graph_model(build):
    graph = tf.Graph()
    with graph.as_default():
        build()
    return Model(graph, None, None)


def test_ops_that_may_mix_a_batch_past_three():
    """The first three of more mixing or random ops were named as if they were all (determinism.mixing,
    ops_phrase, mixing_phrase; retrain's cached tensor)."""
    def build():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        h = x
        for i in range(4):
            h = h - tf.reduce_mean(h, axis=0, name=f"m{i}")
        tf.identity(h, name="f")

    model = _graph_model(build)
    assert determinism.mixing(model, "f:0", model.graph.get_tensor_by_name("x:0")).why == "through m0, m1, m2 …"
    assert determinism.ops_phrase(list("abcd")) == "random ops a, b, c …"
    assert determinism.mixing_phrase(list("abcd"), "why") == "reads ops that may mix the examples of a batch (a, b, c …; why)"
    cfg = types.SimpleNamespace(allow_random=False, allow_batch_dependent=True)
    cache = types.SimpleNamespace(cut="f:0", directory="c/", manifest={"checks": {"random": False,
                                                                                  "batch_dependent": True}})
    assert checks.cached_notes(cfg, model, cache, "x") == [
        "c/: the cached tensor 'f:0' depends on the other examples in its batch (through m0, m1, m2 …; its cache run "
        "found it and was given allow_batch_dependent=True): accepted by allow_batch_dependent=True; the exported "
        "model's answer for an example depends on the examples served with it"]


def test_trainable_variables_below_a_cache_past_four(monkeypatch):
    """retrain from a cache named the first four variables below it as if they were all."""
    reader = types.SimpleNamespace(cut="f:0", close=lambda: None)
    monkeypatch.setattr(retrain_data.cache_mod, "CacheReader", lambda d: reader)
    monkeypatch.setattr(retrain_data.cache_mod, "check_matches", lambda *a, **k: None)
    monkeypatch.setattr(retrain_data.cache_mod, "variables_below", lambda model, cut, trainable: list("abcde"))
    setup = types.SimpleNamespace(model=types.SimpleNamespace(tensor=lambda t: types.SimpleNamespace(name=t)),
                                  feeds={}, train_feeds={}, input=types.SimpleNamespace(name="x:0"), cut="f",
                                  logits=None, head=None, plan=types.SimpleNamespace(trainable=[]))
    with pytest.raises(ConfigError, match=r"^trainable variables a, b, c, d … lie below the cached tensor 'f:0': they "):
        retrain_data.open_cache(setup, "c/", 8, 0)


def test_variables_without_a_gradient_past_four():
    with tf.Graph().as_default():
        v = {f"v{i}": tf1.get_variable(f"v{i}", [1]) for i in range(6)}
        loss = tf.reduce_sum(tf1.get_variable("other", [1]) ** 2)
        with pytest.raises(ConfigError, match=r"^no gradient flows from the loss to v0:0, v1:0, v2:0, v3:0 …; they "):
            train.build_train_op(loss, v, {n: 1.0 for n in v})


def test_keys_a_written_checkpoint_lacks_or_also_holds_past_three():
    tensors = [types.SimpleNamespace(new=f"w{i}") for i in range(4)]
    out = types.SimpleNamespace(entries={f"x{i}": None for i in range(5)})
    with pytest.raises(MigrateError) as e:
        migrate_verify._check_keys(out, tensors)
    assert str(e.value) == ("verification failed: the written checkpoint lacks w0, w1, w2 …; also holds x0, x1, "
                            "x2 …")


def test_the_classes_of_a_model_past_twelve(tmp_path):
    """add-class named the first twelve classes of one that has the new class's name already; combine the first ten
    of the union its labels do not fit."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        h = tf.tanh(tf.matmul(x, tf1.get_variable("w", [4, 8])), name="features")
        tf.nn.softmax(tf.matmul(h, tf1.get_variable("o", [8, 13])) + tf1.get_variable("b", [13]), name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(s, str(tmp_path / "m" / "model.ckpt"))
    with pytest.raises(ContinualError) as e:
        add_class(prefix, str(tmp_path / "few.npz"), "12", str(tmp_path / "out"), features="features")
    assert str(e.value) == (f"{prefix} already has a class '12' (classes: {', '.join(map(str, range(12)))} …)")
    np.savez(tmp_path / "d.npz", x=np.zeros([2, 4], np.float32), y=np.array([0, 20]))
    teacher = types.SimpleNamespace(backbone=None)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(combine, "input_spec", lambda piece: (tf.float32, None))
        with pytest.raises(DataError) as e:
            combine._checked_data(str(tmp_path / "d.npz"), [teacher], [f"c{i}" for i in range(13)], False, False)
    classes = ", ".join(f"c{i}" for i in range(10))
    assert str(e.value) == f"{tmp_path / 'd.npz'}: labels range over 0..20; the union has 13 classes ({classes} …)"


def test_split_values_of_an_npz_past_three(tmp_path):
    """An npz's bad 'split' values were the first three, shown as a Python list (['dev', 'eval', 'holdout'])
    whatever followed."""
    from graphsurgeon._src.storage import datasets

    x, y = np.zeros((5, 2), np.float32), np.arange(5)
    np.savez(tmp_path / "a.npz", x=x, y=y, split=np.array(["dev", "eval", "holdout", "zzz", "train"]))
    with pytest.raises(DataError) as e:
        datasets.load_npz(str(tmp_path / "a.npz"))
    assert str(e.value).endswith("per row (found values 'dev', 'eval', 'holdout' … (4 values))")
    np.savez(tmp_path / "b.npz", x=x, y=y, split=np.array(["dev", "train", "train", "test", "train"]))
    with pytest.raises(DataError) as e:
        datasets.load_npz(str(tmp_path / "b.npz"))
    assert str(e.value).endswith("per row (found value 'dev')")
    np.savez(tmp_path / "c.npz", x=x, y=y, split=np.array(["train"] * 4))
    with pytest.raises(DataError) as e:
        datasets.load_npz(str(tmp_path / "c.npz"))
    assert str(e.value).endswith("per row (it has shape [4] for 5 rows)")


def test_keys_a_written_multihead_checkpoint_lacks_or_also_holds_past_three(tmp_path):
    """It said 'has extra ['x0', 'x1', 'x2'] / lacks []' (Python lists, the first three, an empty one too)."""
    from graphsurgeon._src.errors import CorruptCheckpointError
    from graphsurgeon._src.storage import multihead_files

    with tf.Graph().as_default(), tf1.Session() as s:
        vs = [tf1.Variable(np.zeros(2, np.float32), name=f"x{i}") for i in range(4)]
        s.run(tf1.global_variables_initializer())
        prefix = tf1.train.Saver(vs).save(s, str(tmp_path / "m"), write_meta_graph=False)
    with pytest.raises(CorruptCheckpointError) as e:
        multihead_files.verify_values(prefix, {f"w{i}": np.zeros(2, np.float32) for i in range(2)})
    assert str(e.value) == f"{prefix}: the written checkpoint lacks w0, w1; also holds x0, x1, x2 …"
    with pytest.raises(CorruptCheckpointError) as e:
        multihead_files.verify_values(prefix, {f"x{i}": np.zeros(2, np.float32) for i in range(3)})
    assert str(e.value) == f"{prefix}: the written checkpoint also holds x3"


def test_the_ops_of_an_unregistered_type_past_three():
    from graphsurgeon._src.errors import UnregisteredOpError
    from graphsurgeon._src.storage.checkpoint import import_meta_graph

    meta = tf1.MetaGraphDef()
    for i in range(5):
        meta.graph_def.node.add(name=f"f{i}", op="FancyActivation")
    with pytest.raises(UnregisteredOpError, match=r"^g.pb: op type 'FancyActivation' \(used by f0, f1, f2 …\) is "):
        import_meta_graph(meta, tf.Graph(), "g.pb")


def test_one_variable_without_a_gradient_is_it():
    """'no gradient flows ... to v0:0; they do not feed' said 'they' of one variable."""
    with tf.Graph().as_default():
        v = {"v0": tf1.get_variable("v0", [1])}
        loss = tf.reduce_sum(tf1.get_variable("other", [1]) ** 2)
        with pytest.raises(ConfigError, match=r"^no gradient flows from the loss to v0:0; it does not feed the logits "
                                              r"being trained \(is it above the cut\?\)$"):
            train.build_train_op(loss, v, {"v0": 1.0})
