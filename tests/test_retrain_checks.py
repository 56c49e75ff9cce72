"""The tensor a new head reads must give each example one answer, or the export will not:
retrain runs it on the first training batch twice and its first example alone, with the feeds
the export keeps, and refuses random or batch-dependent values unless told (see
graphsurgeon/_src/retrain/checks.py). Tiny graphs, one epoch: seconds."""
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src import subgraph
from graphsurgeon._src.determinism import highest_uniform, probe, scan
from graphsurgeon._src.feeds import Feeder
from graphsurgeon._src.storage.datasets import Dataset

from helpers import ckpt, cli

tf1 = tf.compat.v1


def _net(directory, kind):
    """X[None, 6] -> hidden (8, relu) -> KIND -> features (8, relu) -> logits (3), saved with Saver.
    KIND: dropout with keep_prob 'baked' in, fed by a 'placeholder', or a placeholder 'default'
    1.0; 'moments' (batch statistics); 'none'."""
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, 6], name="X")
        init = tf1.glorot_uniform_initializer(seed=1)
        h = tf.nn.relu(tf.matmul(x, tf1.get_variable("w1", [6, 8], initializer=init)) + 0.1, name="hidden")
        if kind == "baked":
            h = tf1.nn.dropout(h, keep_prob=0.5)
        elif kind == "placeholder":
            h = tf1.nn.dropout(h, keep_prob=tf1.placeholder(tf.float32, (), name="keep_prob"))
        elif kind == "default":
            h = tf1.nn.dropout(h, keep_prob=tf1.placeholder_with_default(1.0, (), name="keep_prob"))
        elif kind == "moments":
            mean, var = tf.nn.moments(h, [0])
            h = tf.nn.batch_normalization(h, mean, var, None, None, 1e-3)
        f = tf.nn.relu(tf.matmul(h, tf1.get_variable("w2", [8, 8], initializer=init)) + 0.1, name="features")
        tf.matmul(f, tf1.get_variable("w3", [8, 3], initializer=init), name="logits")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, kind, "m.ckpt"))


def _data(n=40):
    x = np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32)
    return Dataset(x, (x[:, 0] > 0).astype(np.int64), np.array(["train"] * n), [str(i) for i in range(n)])


def _retrain(prefix, out, **kw):
    cfg = gs.RetrainConfig(model=prefix, head=kw.pop("head", "features:2"), epochs=1, **kw)
    return gs.retrain(cfg, _data(), str(out), progress=False)


def _serve_twice(saved_model, x):
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
        sig = tf1.saved_model.loader.load(s, ["serve"], saved_model).signature_def["serving_default"]
        run = (lambda: s.run(sig.outputs["probabilities"].name, {sig.inputs["inputs"].name: x}))
        return run(), run()


def test_dropout_with_keep_prob_baked_in_is_refused_unless_allowed(tmp_path):
    prefix = _net(str(tmp_path), "baked")
    with pytest.raises(gs.RandomTensorError, match=r"^the head's input 'features:0' differs between two runs on the "
                                                   r"same batch: it depends on random op dropout/"):
        _retrain(prefix, tmp_path / "o")
    assert not os.path.exists(tmp_path / "o")  # refused before anything was written
    with pytest.raises(gs.RandomTensorError, match="'logits:0' differs"):  # fine-tuning the old logits too
        _retrain(prefix, tmp_path / "o", head=None, output="logits")
    _retrain(prefix, tmp_path / "below", head="hidden:2")  # below the dropout: deterministic
    res = _retrain(prefix, tmp_path / "o", allow_random=True)
    assert res.head_input.random and res.head_input.batch_dependent is None
    assert res.head_input.notes == [
        "the head's input 'features:0' is random (two runs on one batch differed; random op "
        "dropout/random_uniform/RandomUniform): accepted by allow_random=True; the exported model's answers differ "
        "call to call, and whether they depend on the batch was not checked"]
    a, b = _serve_twice(str(tmp_path / "o/saved_model"), _data().x[:8])
    assert not np.allclose(a, b)  # what the note says is true of the export


def _mlp_around(tmp_path, middle):
    """X [None, 6] -> hidden (8, relu) -> ``middle(hidden)`` -> features (8, relu) -> logits (3),
    saved with Saver under ``tmp_path/m``: ``(prefix, graph)``."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 6], name="X")
        h = middle(tf.nn.relu(tf.matmul(x, tf1.get_variable("w1", [6, 8])), name="hidden"))
        f = tf.nn.relu(tf.matmul(h, tf1.get_variable("w2", [8, 8])), name="features")
        tf.matmul(f, tf1.get_variable("w3", [8, 3]), name="logits")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, str(tmp_path / "m" / "m.ckpt")), g


def test_random_ops_inside_a_tf2_cond_are_refused_by_the_runs_and_named_in_their_function(tmp_path):
    """A tf.cond built in TensorFlow 2 is an If op whose branches are functions: the runs differ, and the
    scan names the random op inside the branch (it said 'random ops the graph scan does not name')."""
    prefix, g = _mlp_around(tmp_path, lambda h: tf.cond(tf1.placeholder_with_default(True, (), name="training"),
                                                        lambda: tf1.nn.dropout(h, keep_prob=0.5),
                                                        lambda: tf.identity(h)))
    assert {"If", "StatelessIf"} & {op.type for op in g.get_operations()}  # not Switch/Merge
    branch = g.get_operation_by_name("cond").get_attr("then_branch").name
    with pytest.raises(gs.RandomTensorError, match=r"differs between two runs on the same batch: it depends on random "
                                                   r"op dropout/random_uniform/RandomUniform in function "
                                                   rf"'{branch}' called by op 'cond' \(dropout with keep_prob"):
        _retrain(prefix, tmp_path / "o")
    notes = gs.plan(gs.RetrainConfig(model=prefix, head="features:2")).notes
    assert notes[0].startswith(f"'features' depends on random op dropout/random_uniform/RandomUniform in function "
                               f"'{branch}' called by op 'cond': retrain runs it twice")


def test_random_ops_tensorflow_refuses_to_feed_together_are_fed_one_at_a_time(tmp_path):
    """Two dropouts with keep_prob 0.99999 baked in: two ordinary runs agree. Fed their low draws at once
    they drop everything, and the log of 0 fails check_numerics, so TensorFlow refuses the run; fed one
    at a time (the other drawing as usual) each gives other values at its two draws: the first does, so the message
    says that one of the two was fed them (it said 'its random ops', as if both were)."""
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, 6], name="X")
        init = tf1.glorot_uniform_initializer(seed=1)
        h = tf.nn.sigmoid(tf.matmul(x, tf1.get_variable("w1", [6, 8], initializer=init)), name="hidden")
        h = tf1.nn.dropout(h, keep_prob=0.99999) + tf1.nn.dropout(h, keep_prob=0.99999)
        h = tf.debugging.check_numerics(tf.math.log(h), "all dropped")
        f = tf.nn.relu(tf.matmul(h, tf1.get_variable("w2", [8, 8], initializer=init)) + 0.1, name="features")
        tf.matmul(f, tf1.get_variable("w3", [8, 3], initializer=init), name="logits")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(s, str(tmp_path / "m" / "m.ckpt"))
    with pytest.raises(gs.RandomTensorError, match=r"^the head's input 'features:0' differs between runs on the same "
                                                   r"batch with 1 of its random ops fed two far-apart draws \(two "
                                                   r"ordinary runs agreed\): it depends on random ops "
                                                   r"dropout/random_uniform/RandomUniform, dropout_1/"):
        _retrain(prefix, tmp_path / "o")


def test_retrain_scans_the_graph_for_the_random_ops_above_its_cut_once(tmp_path, monkeypatch):
    """The plan's notes, the probe (the count of the ops the scan names, beside the far-apart draws) and the refusal
    each ask for the random ops the cut depends on: the graph was scanned for them three times (once per ask)."""
    prefix = _net(str(tmp_path), "placeholder")
    scanned, real = [], scan._in_functions

    def counting(gd, by_name, tensor, input_op=None):
        if input_op is None:  # the random-op scan (batch_mixing_ops passes the input)
            scanned.append(tensor)
        return real(gd, by_name, tensor, input_op)

    monkeypatch.setattr(scan, "_in_functions", counting)
    with pytest.raises(gs.RandomTensorError, match=r"^the head's input 'features:0' differs between runs on the same "
                                                   r"batch with its random op fed two far-apart draws"):
        _retrain(prefix, tmp_path / "o", feeds={"keep_prob": 0.9999999})
    assert [subgraph.node_name(t) for t in scanned] == ["features"]


@pytest.mark.parametrize("cut", [{"head": "features:2"}, {}], ids=["cut", "no_cut"])
def test_build_calls_before_values_after_the_plan_and_before_reading_values_with_or_without_a_cut(tmp_path, cut,
                                                                                                monkeypatch):
    """build's before_values (where retrain checks out_dir) runs once, before the values are read, also when no cut
    is given and the whole graph is restored (it was not called there)."""
    from graphsurgeon._src.retrain import setup as setup_mod
    prefix, order, real = _net(str(tmp_path), "none"), [], setup_mod.load
    monkeypatch.setattr(setup_mod, "load", lambda *a, **k: (order.append("values"), real(*a, **k))[1])
    built = gs.build(gs.RetrainConfig(model=prefix, **cut), before_values=lambda: order.append("before_values"))
    assert order == ["before_values", "values"] and built.plan is not None


def test_build_without_a_cut_draws_the_reinit_variables_again_and_restores_the_others(tmp_path):
    """With no cut, build read every variable from the checkpoint and ignored reinit."""
    prefix = _net(str(tmp_path), "none")
    saved = tf.train.load_checkpoint(prefix)
    built = gs.build(gs.RetrainConfig(model=prefix, reinit=["w2"]))
    got = {n: built.model.session.run(built.model.variables[n]) for n in ("w1", "w2", "w3")}
    assert np.array_equal(got["w1"], saved.get_tensor("w1")) and np.array_equal(got["w3"], saved.get_tensor("w3"))
    assert got["w2"].shape == (8, 8) and not np.array_equal(got["w2"], saved.get_tensor("w2"))


def _old_dropout(keep_prob, dtype=tf.float32):
    """Dropout as older TensorFlow 1.x's tf.nn.dropout wrote it (the real lenet_noyin holds it), ``keep_prob``
    a constant: ``h / keep_prob * floor(keep_prob + u)``, ``u`` from RandomUniform in ``dtype``."""
    def middle(h):
        with tf.name_scope("dropout"):
            h = tf.cast(h, dtype)
            kp = tf.constant(keep_prob, dtype, name="keep_prob")
            mask = tf.floor(kp + tf1.random_uniform(tf.shape(h), dtype=dtype))
            return tf.cast(h / kp * mask, tf.float32)
    return middle


def test_old_style_dropout_at_keep_prob_one_passes_and_below_one_is_refused(tmp_path):
    """floor(1 + u) is 1 for every u RandomUniform draws; fed the largest value below 1 (1 - 2**-24 in
    float32) instead of the largest it draws (1 - 2**-23), 1 + u rounded to 2.0 and the cut was refused."""
    (tmp_path / "one").mkdir()
    (tmp_path / "half").mkdir()
    prefix, _ = _mlp_around(tmp_path / "one", _old_dropout(1.0))
    res = _retrain(prefix, tmp_path / "o")
    assert res.head_input.random is False and res.head_input.notes == []
    assert res.head_input.random_ops == ["dropout/random_uniform/RandomUniform"]
    prefix, _ = _mlp_around(tmp_path / "half", _old_dropout(0.5))
    with pytest.raises(gs.RandomTensorError, match=r"^the head's input 'features:0' differs between two runs on the "
                                                   r"same batch: it depends on random op dropout/random_uniform/"
                                                   r"RandomUniform \(dropout with keep_prob baked in\?\)"):
        _retrain(prefix, tmp_path / "o2")
    assert not os.path.exists(tmp_path / "o2")


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float32, tf.float64])
def test_the_probe_feeds_uniform_draws_that_keep_old_style_dropout_at_one_and_drop_below_it(dtype):
    """At keep_prob 1 the two draws give one mask in every dtype RandomUniform draws in; at the largest
    keep_prob below 1 (dropping only where u is 0: two ordinary runs agree) they give two."""
    one_step = 2.0 ** -{tf.float16: 11, tf.bfloat16: 8, tf.float32: 24, tf.float64: 53}[dtype]
    got = {}
    for keep_prob in (1.0, 1.0 - one_step):
        with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
            tf1.set_random_seed(0)
            x = tf1.placeholder(tf.float32, [None, 4], name="x")
            t = _old_dropout(keep_prob, dtype)(x + 1.0)
            model = types.SimpleNamespace(graph=g, session=s)
            got[keep_prob] = probe(model, t, Feeder(model, x, {}), np.ones((2, 4), np.float32), random=True)
    assert got[1.0].random is False
    assert got[1.0 - one_step].random is True
    if dtype in (tf.float32, tf.float64):  # u is 0 with probability 2**-23 (2**-52): seen by the draws only
        assert got[1.0 - one_step].random_by == "draws"
    else:  # the draw fed is the largest RandomUniform makes (2**10 or 2**7 values: 100,000 draws reach it)
        with tf.Graph().as_default(), tf1.Session() as s:
            drawn = s.run(tf1.random_uniform([100_000], dtype=dtype, seed=1)).astype(np.float64)
        assert drawn.max() == highest_uniform(dtype.as_numpy_dtype) == 1.0 - 2 * one_step


def test_a_deterministic_tensor_with_nans_and_infinities_is_neither_random_nor_batch_dependent():
    """log of negative and zero inputs: NaN and -inf in every run, the same alone as in the batch (NaN compared
    unequal to itself made it random; a NaN in the largest magnitude made every comparison fail)."""
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        keep = tf1.placeholder_with_default(1.0, [], name="keep_prob")  # a random op upstream, kept at 1
        t = tf.math.log(tf1.nn.dropout(x, rate=1.0 - keep) * 3.0)
        model = types.SimpleNamespace(graph=g, session=s)
        batch = np.array([[-1.0, 0.0, 2.0, 5.0], [3.0, -2.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
        p = probe(model, t, Feeder(model, x, {}), batch, random=True)
    assert (p.random, p.batch_dependent, p.identical) == (False, False, True)


def test_complex_values_are_compared_part_by_part():
    from graphsurgeon._src.determinism import same

    a = np.array([1 + 2j, 3 - 1j], np.complex64)
    assert same(a, a.copy()) and not same(a, a + 0.5j) and not same(a, a + 0.5)
    assert not same(a, a[:1])


def test_a_keep_prob_placeholder_fed_one_or_defaulting_to_one_passes(tmp_path):
    prefix = _net(str(tmp_path), "placeholder")
    res = _retrain(prefix, tmp_path / "o", feeds={"keep_prob": 1.0}, train_feeds={"keep_prob": 0.5})
    assert res.head_input.random is False and res.head_input.batch_dependent is False
    assert res.head_input.random_ops and res.head_input.notes == []  # a random op is there; its runs agree
    a, b = _serve_twice(str(tmp_path / "o/saved_model"), _data().x[:8])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(gs.RandomTensorError, match=r"same batch \(keep_prob fed 0.5\): .* cut below it, give the "
                                                   r"placeholder that drives it its inference value in feeds="):
        _retrain(prefix, tmp_path / "p", feeds={"keep_prob": 0.5})
    default = _net(str(tmp_path), "default")
    res = _retrain(default, tmp_path / "d")
    assert res.head_input.random is False and res.head_input.random_ops and res.head_input.notes == []
    # fed while training only, dropout trains (it was refused): other weights than with its default, the same
    # with 1.0; the check and the export run with the default, so the export's answers are the same every call
    heads = {}
    for out, train in (("d", None), ("half", {"keep_prob": 0.5}), ("one", {"keep_prob": 1.0})):
        if train:
            assert _retrain(default, tmp_path / out, train_feeds=train).head_input.random is False
        heads[out] = ckpt(str(tmp_path / out / "checkpoint/model.ckpt"))["head/logits/kernel"]
    assert heads["one"].tobytes() == heads["d"].tobytes() and heads["half"].tobytes() != heads["d"].tobytes()
    a, b = _serve_twice(str(tmp_path / "half/saved_model"), _data().x[:8])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(gs.RandomTensorError, match=r"same batch \(keep_prob fed 0.5\): "):
        _retrain(default, tmp_path / "p2", feeds={"keep_prob": 0.5})


def test_a_random_tensor_whose_rate_is_fed_is_not_guessed_to_have_it_baked_in(tmp_path):
    """keep_prob, a placeholder_with_default, fed 0.5: the refusals of retrain and cache said "(keep_prob
    fed 0.5) ... (dropout with keep_prob baked in?)"; they say the rate is read from the fed keep_prob. A
    fed placeholder on the data's path (times 'scale', then dropout with keep_prob baked in) keeps the guess."""
    fed = r"\(keep_prob fed 0.5\): it depends on random op dropout/random_uniform/RandomUniform \(its rate " \
          r"is read from the fed keep_prob\), so "
    default = _net(str(tmp_path), "default")
    with pytest.raises(gs.RandomTensorError, match=fed + "the exported model would answer"):
        _retrain(default, tmp_path / "o", feeds={"keep_prob": 0.5})
    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    with pytest.raises(gs.RandomTensorError, match=fed + "its values cannot be cached"):
        gs.generate_cache(default, "features", str(tmp_path / "d.npz"), str(tmp_path / "c"), feeds={"keep_prob": 0.5},
                          progress=False)
    prefix, _ = _mlp_around(tmp_path, lambda h: tf1.nn.dropout(h * tf1.placeholder_with_default(1.0, (), name="scale"),
                                                                keep_prob=0.5))
    with pytest.raises(gs.RandomTensorError, match=r"\(scale fed 2.0\): it depends on random op "
                                                   r"dropout/random_uniform/RandomUniform \(dropout with keep_prob "
                                                   r"baked in\?\), so "):
        _retrain(prefix, tmp_path / "p", feeds={"scale": 2.0})


def test_refusals_say_it_of_one_op_and_them_of_two(tmp_path):
    """Retrain's and cache's refusals of a random tensor and of a batch-dependent one: 'cut below it, give the
    placeholder that drives it' and 'its rate' for one op, 'them' and 'their' for two (they said 'them' and
    'their' of one op)."""
    def dropouts(h):
        kp = tf1.placeholder_with_default(1.0, (), name="keep_prob")
        return tf1.nn.dropout(tf1.nn.dropout(h, keep_prob=kp), keep_prob=kp)

    def centred(h):
        return h - tf.reduce_mean(h, 0, name="centre")

    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    (tmp_path / "two").mkdir()
    (tmp_path / "centred").mkdir()
    random = {"it": _net(str(tmp_path), "default"), "them": _mlp_around(tmp_path / "two", dropouts)[0]}
    batch = {"it": _mlp_around(tmp_path / "centred", centred)[0], "them": _net(str(tmp_path), "moments")}
    for it, prefix in random.items():
        fed = (r"\(keep_prob fed 0.5\): it depends on random ops? [^(]*\(" + {"it": "its", "them": "their"}[it]
               + r" rate is read from the fed keep_prob\), so ")
        hint = f", give the placeholder that drives {it} its inference value in feeds=, or pass allow_random=True$"
        with pytest.raises(gs.RandomTensorError, match=fed + f"the exported model would answer differently on every "
                                                             f"call; cut below {it}{hint}"):
            _retrain(prefix, tmp_path / "o", feeds={"keep_prob": 0.5})
        with pytest.raises(gs.RandomTensorError, match=fed + f"its values cannot be cached; cache a tensor below {it}"
                                                             + hint):
            gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), str(tmp_path / "c"),
                              feeds={"keep_prob": 0.5}, progress=False)
    for it, prefix in batch.items():
        with pytest.raises(gs.BatchDependentError, match=f"; cut below {it}, or pass allow_batch_dependent=True$"):
            _retrain(prefix, tmp_path / "o")
        with pytest.raises(gs.BatchDependentError, match=f"; cache a tensor below {it}, or pass "
                                                         "allow_batch_dependent=True$"):
            gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), str(tmp_path / "c"), progress=False)
    assert not os.path.exists(tmp_path / "o") and not os.path.exists(tmp_path / "c")


def _scaled(directory):
    """X -> hidden -> times 'scale', a placeholder_with_default(1.0) -> features -> logits."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 6], name="X")
        init = tf1.glorot_uniform_initializer(seed=1)
        h = tf.nn.relu(tf.matmul(x, tf1.get_variable("w1", [6, 8], initializer=init)) + 0.1, name="hidden")
        h = h * tf1.placeholder_with_default(1.0, (), name="scale")
        f = tf.nn.relu(tf.matmul(h, tf1.get_variable("w2", [8, 8], initializer=init)) + 0.1, name="features")
        tf.matmul(f, tf1.get_variable("w3", [8, 3], initializer=init), name="logits")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, "scaled", "m.ckpt"))


def test_a_placeholder_with_default_fed_is_fed_and_the_export_serves_with_the_value(tmp_path):
    """feeds={'scale': 2.0} for a placeholder_with_default(1.0) was refused as not supported."""
    prefix, x = _scaled(str(tmp_path)), _data().x[:8]
    res = _retrain(prefix, tmp_path / "o", head="features:2", feeds={"scale": 2.0})
    assert res.setup.feeds == {"scale": 2.0} and res.setup.train_feeds == {"scale": 2.0}
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
        sig = tf1.saved_model.loader.load(s, ["serve"], str(tmp_path / "o/saved_model")).signature_def["serving_default"]
        run = (lambda **more: s.run(sig.outputs["logits"].name, {sig.inputs["inputs"].name: x, **more}))
        served, at_two, at_one = run(), run(**{"scale:0": 2.0}), run(**{"scale:0": 1.0})
    assert served.tobytes() == at_two.tobytes() and not np.allclose(served, at_one)
    # the exported graph, fed only X, computes the cut as the original graph does fed scale=2.0
    cut = {}
    for name, prefix_of in (("original", prefix), ("export", str(tmp_path / "o/checkpoint/model.ckpt"))):
        with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
            tf1.train.import_meta_graph(prefix_of + ".meta").restore(s, prefix_of)
            cut[name] = s.run("features:0", {"X:0": x, **({"scale:0": 2.0} if name == "original" else {})})
    assert cut["export"].tobytes() == cut["original"].tobytes()
    # a cache made with the feed: its value is in the fingerprint, and training cannot change it
    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    c = str(tmp_path / "c")
    gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c, feeds={"scale": 2.0}, progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="features:2", epochs=1, feeds={"scale": 2.0})
    gs.retrain(cfg, None, str(tmp_path / "oc"), cache=c, progress=False)
    cfg.feeds = {}  # left out, it is taken from the cache's manifest
    assert gs.retrain(cfg, None, str(tmp_path / "oc1"), cache=c, progress=False).setup.feeds == {"scale": 2.0}
    cfg.feeds = {"scale": 3.0}
    with pytest.raises(gs.CacheError, match="made under other settings"):
        gs.retrain(cfg, None, str(tmp_path / "oc2"), cache=c, progress=False)
    cfg.feeds = {}
    plain = str(tmp_path / "plain")
    gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), plain, progress=False)
    cfg.train_feeds = {"scale": 3.0}
    with pytest.raises(gs.CacheError, match=r"train_feeds=\{'scale': VALUE\} changes placeholder 'scale' below the "
                                            r"cached tensor 'features:0', whose values were computed once with its "
                                            r"default; training from the cache cannot change them"):
        gs.retrain(cfg, None, str(tmp_path / "oc3"), cache=plain, progress=False)


def test_batch_statistics_are_refused_unless_allowed(tmp_path):
    prefix = _net(str(tmp_path), "moments")
    with pytest.raises(gs.BatchDependentError, match=r"'features:0' depends on the other examples in its batch "
                                                     r"\(through moments/mean, moments/variance"):
        _retrain(prefix, tmp_path / "o")
    res = _retrain(prefix, tmp_path / "o", allow_batch_dependent=True)
    assert res.head_input.batch_dependent and res.head_input.random is False
    assert "accepted by allow_batch_dependent=True" in res.head_input.notes[0]
    assert _retrain(prefix, tmp_path / "h", head="hidden:2").head_input.batch_dependent is False
    # a first batch of one example has nothing to compare the example with: unchecked, and the notes say so
    res = _retrain(prefix, tmp_path / "one", batch_size=1)
    assert res.head_input.batch_dependent is None and res.head_input.notes == [
        "the head's input 'features:0': whether it depends on its batch-mates was not checked (the first training batch "
        "holds 1 example)"]


def test_from_a_cache_the_layers_above_it_are_run_and_random_ops_below_need_the_flag(tmp_path):
    prefix = _net(str(tmp_path), "baked")
    x, y = _data().x, _data().y
    np.savez(tmp_path / "d.npz", x=x, y=y)
    gs.generate_cache(prefix, "hidden", str(tmp_path / "d.npz"), str(tmp_path / "c1"), progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="features:2", epochs=1)
    with pytest.raises(gs.RandomTensorError, match="'features:0' differs between two runs"):  # dropout above the cache
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=str(tmp_path / "c1"), progress=False)
    c2 = str(tmp_path / "c2")
    with pytest.raises(gs.RandomTensorError, match=r"^tensor 'features:0' differs between two runs on the same "
                                                   r"batch: it depends on random op dropout/random_uniform/"):
        gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c2, progress=False)
    gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c2, progress=False, allow_random=True)
    assert _manifest(c2)["checks"] == {"random": True, "batch_dependent": None}
    with pytest.raises(gs.RandomTensorError, match=rf"^{c2}: the cached tensor 'features:0' is random \(random op "
                                                   r"dropout/random_uniform/RandomUniform; its cache run found"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=c2, progress=False)
    cfg.allow_random = True
    res = gs.retrain(cfg, None, str(tmp_path / "o"), cache=c2, progress=False)
    assert res.head_input.notes[0] == (
        f"{c2}: the cached tensor 'features:0' is random (random op dropout/random_uniform/RandomUniform; its cache "
        "run found its values differ between runs on one batch and was given allow_random=True): accepted by "
        "allow_random=True; the exported model runs it on every call")
    # a later run into the cache without the flag is refused by the record, whatever its own runs show
    with pytest.raises(gs.RandomTensorError, match=rf"^{c2}: an earlier run into this cache found tensor 'features:0' "
                                                   r"random .* pass allow_random=True to extend the cache"):
        gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c2, progress=False)


def _manifest(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        return json.load(f)


def _drop_the_record(directory):
    """The manifest as a cache made before caches recorded their checks wrote it."""
    m = _manifest(directory)
    del m["checks"]
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(m, f)


def test_a_cache_whose_keep_prob_is_fed_one_needs_no_flag_and_a_nearly_one_is_still_random(tmp_path):
    """cache decides as retrain does: by running the tensor with the feeds it caches with. A
    keep_prob of 0.999 on 2 rows of 8 values mostly drops nothing in two ordinary runs; fed the
    lowest and highest draws of its RandomUniform, its dropout drops every value, then none."""
    prefix = _net(str(tmp_path), "placeholder")
    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    np.savez(tmp_path / "two.npz", x=_data().x[:2], y=_data().y[:2])
    c = str(tmp_path / "c")
    rep = gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c, feeds={"keep_prob": 1.0}, progress=False)
    assert rep.computed == 40 and _manifest(c)["checks"] == {"random": False, "batch_dependent": False}
    cfg = gs.RetrainConfig(model=prefix, head="features:2", epochs=1, feeds={"keep_prob": 1.0})
    res = gs.retrain(cfg, None, str(tmp_path / "o"), cache=c, progress=False)
    assert res.head_input.notes == []
    draws = (r"^tensor 'features:0' differs between runs on the same batch with its random op fed two "
             r"far-apart draws \(two ordinary runs agreed\) \(keep_prob fed 0.999\): .* give the placeholder that")
    with pytest.raises(gs.RandomTensorError, match=draws):
        gs.generate_cache(prefix, "features", str(tmp_path / "two.npz"), str(tmp_path / "n"),
                          feeds={"keep_prob": 0.999}, progress=False)
    assert not os.path.exists(tmp_path / "n")


def test_a_cache_made_with_allow_batch_dependent_needs_it_again(tmp_path, capfd):
    prefix = _net(str(tmp_path), "moments")
    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    c = str(tmp_path / "c")
    with pytest.raises(gs.BatchDependentError, match="^tensor 'features:0' depends on the other examples"):
        gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c, progress=False)
    rep = gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c, progress=False,
                            allow_batch_dependent=True)
    assert _manifest(c)["checks"] == rep.checks == {"random": False, "batch_dependent": True}
    # extended by one row, whose batch of one cannot show it: the record keeps what the first run found
    np.savez(tmp_path / "d41.npz", x=np.concatenate([_data().x, _data().x[:1] + 1]), y=np.append(_data().y, 0))
    with pytest.raises(gs.BatchDependentError, match=rf"^{c}: an earlier run into this cache found tensor 'features:0' "
                                                     "dependent on its batch-mates"):
        gs.generate_cache(prefix, "features", str(tmp_path / "d41.npz"), c, progress=False)
    rep = gs.generate_cache(prefix, "features", str(tmp_path / "d41.npz"), c, progress=False,
                            allow_batch_dependent=True)
    assert rep.computed == 1 and _manifest(c)["checks"] == {"random": False, "batch_dependent": True}
    code, out, err = cli(capfd, "cache", "--model", prefix, "--cut", "features", "--data", tmp_path / "d.npz",
                         "--out", tmp_path / "c2", "--allow-batch-dependent", "--quiet")
    assert code == 0, err
    assert out.splitlines()[1:] == [
        "  the cached tensor is dependent on its batch-mates (accepted by --allow-batch-dependent; recorded in the "
        "manifest, so retrain --cache needs --allow-batch-dependent too)"]
    cfg = gs.RetrainConfig(model=prefix, head="features:2", epochs=1)
    refused = (rf"^{c}: the cached tensor 'features:0' depends on the other examples in its batch \(through "
               r"moments/mean, moments/variance; its cache run found it .* pass allow_batch_dependent=True to accept")
    with pytest.raises(gs.BatchDependentError, match=refused):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=c, progress=False)
    cfg.allow_batch_dependent = True
    res = gs.retrain(cfg, None, str(tmp_path / "o"), cache=c, progress=False)
    assert [n for n in res.head_input.notes if "allow_batch_dependent" in n] == [
        f"{c}: the cached tensor 'features:0' depends on the other examples in its batch (through moments/mean, "
        "moments/variance; its cache run found it and was given allow_batch_dependent=True): accepted by "
        "allow_batch_dependent=True; the exported model's answer for an example depends on the examples served with it"]
    retrain = ["retrain", "--model", prefix, "--head", "features:2", "--cache", c, "--out", tmp_path / "cli",
               "--epochs", 1, "--quiet"]
    code, _, err = cli(capfd, *retrain)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"graphsurgeon retrain: error: {c}: the cached tensor 'features:0' depends")
    assert err.rstrip().endswith("pass --allow-batch-dependent to accept it, or train from the data")
    code, out, err = cli(capfd, *retrain, "--allow-batch-dependent")
    assert code == 0, err
    assert out.count("accepted by --allow-batch-dependent") == 1 and f"{c}: the cached tensor" in out
    # a cache made before the record: the graph scan decides, and says so
    _drop_the_record(c)
    cfg.allow_batch_dependent = False
    old = (rf"^{c}: the cached tensor 'features:0' reads ops that may mix the examples of a batch "
           r"\(moments/mean, moments/variance; its cache was made before caches recorded their checks")
    with pytest.raises(gs.BatchDependentError, match=old):
        gs.retrain(cfg, None, str(tmp_path / "o2"), cache=c, progress=False)
    # a record whose batch-mates finding is null (a first batch of one row checks nothing): the scan decides
    m = _manifest(c)
    m["checks"] = {"random": False, "batch_dependent": None}
    with open(os.path.join(c, "manifest.json"), "w") as f:
        json.dump(m, f)
    with pytest.raises(gs.BatchDependentError, match=r"may mix the examples of a batch \(moments/mean"):
        gs.retrain(cfg, None, str(tmp_path / "o3"), cache=c, progress=False)


def test_only_reductions_over_the_batch_axis_are_named_as_mixing_it():
    """batch_mixing_ops names a reduction over axis 0 (the batch) and not one over axis 1."""
    from graphsurgeon._src.determinism import batch_mixing_ops

    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        rows = tf.reduce_sum(x, axis=1, keepdims=True, name="per_row")
        cols = tf.reduce_mean(x, axis=0, name="over_batch")
        tf.identity(x - rows, name="a")
        tf.identity(x - cols, name="b")
    model = types.SimpleNamespace(graph=g)
    assert batch_mixing_ops(model, "a:0", "x") == []
    assert batch_mixing_ops(model, "b:0", "x") == ["over_batch"]


def test_a_cache_made_before_the_record_is_judged_by_its_graph(tmp_path):
    prefix = _net(str(tmp_path), "placeholder")
    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    c = str(tmp_path / "c")
    gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c, feeds={"keep_prob": 1.0}, progress=False)
    _drop_the_record(c)
    cfg = gs.RetrainConfig(model=prefix, head="features:2", epochs=1, feeds={"keep_prob": 1.0})
    with pytest.raises(gs.RandomTensorError, match=rf"^{c}: the cached tensor 'features:0' depends on random op "
                                                   r"dropout/random_uniform/RandomUniform \(its cache was made with "
                                                   r"allow_random=True, before caches recorded their checks"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=c, progress=False)
    # a run that computes no row checks nothing: its record says so, and the graph still decides
    assert gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c, feeds={"keep_prob": 1.0},
                             progress=False).computed == 0
    assert _manifest(c)["checks"] == {"random": None, "batch_dependent": None}
    with pytest.raises(gs.RandomTensorError, match=rf"^{c}: the cached tensor 'features:0' depends on random op "
                                                   r"dropout/random_uniform/RandomUniform \(its cache's record says no "
                                                   r"run checked whether it is random\)"):
        gs.retrain(cfg, None, str(tmp_path / "o"), cache=c, progress=False)
    # extended by a run that computes rows, the cache gets the record again
    np.savez(tmp_path / "more.npz", x=np.concatenate([_data().x, _data().x + 1]), y=np.tile(_data().y, 2))
    gs.generate_cache(prefix, "features", str(tmp_path / "more.npz"), c, feeds={"keep_prob": 1.0}, progress=False)
    assert _manifest(c)["checks"] == {"random": False, "batch_dependent": False}
    gs.retrain(cfg, None, str(tmp_path / "o"), cache=c, progress=False)


def test_from_a_cache_a_keep_prob_placeholder_above_it_is_fed(tmp_path):
    """Dropout between the cached tensor and the head, driven by a placeholder: training feeds it
    the train_feeds value, the check and the export the feeds value (it was not fed at all)."""
    prefix = _net(str(tmp_path), "placeholder")
    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    gs.generate_cache(prefix, "hidden", str(tmp_path / "d.npz"), str(tmp_path / "c"), progress=False)
    cfg = gs.RetrainConfig(model=prefix, head="features:2", epochs=1, feeds={"keep_prob": 1.0},
                           train_feeds={"keep_prob": 0.5})
    res = gs.retrain(cfg, None, str(tmp_path / "o"), cache=str(tmp_path / "c"), progress=False)
    assert res.head_input.random is False and res.history
    cfg.feeds = {"keep_prob": 0.5}
    with pytest.raises(gs.RandomTensorError, match=r"same batch \(keep_prob fed 0.5\)"):
        gs.retrain(cfg, None, str(tmp_path / "p"), cache=str(tmp_path / "c"), progress=False)


def test_plan_notes_and_the_command_line(tmp_path, capfd):
    prefix = _net(str(tmp_path), "baked")
    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    code, out, _ = cli(capfd, "plan", "--model", prefix, "--head", "features:2")
    assert code == 0 and "-- note: 'features' depends on random op dropout/random_uniform/RandomUniform: retrain " \
                          "runs it twice" in out and out.rstrip().endswith("unless --allow-random")
    assert gs.plan(gs.RetrainConfig(model=prefix, head="hidden:2")).notes == []
    code, _, err = cli(capfd, "retrain", "--model", prefix, "--head", "features:2", "--data", tmp_path / "d.npz",
                       "--out", tmp_path / "o", "--epochs", 1, "--quiet")
    assert code == 2 and err.count("\n") == 1 and err.rstrip().endswith("cut below it, or pass --allow-random")
    code, out, err = cli(capfd, "retrain", "--model", prefix, "--head", "features:2", "--data", tmp_path / "d.npz",
                         "--out", tmp_path / "o", "--epochs", 1, "--quiet", "--allow-random")
    assert code == 0, err
    assert out.count("accepted by --allow-random") == 1 and "allow_random" not in out


def _time_major(directory):
    """x [None, 5 steps, 3] -> h (relu, 4 units per step) -> 'time_major' [5, ?, 4] (transposed as a
    time-major RNN reads it) -> 'rows' [?, 4] (reshaped: 5 * batch rows); 'batch_major' transposes back."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 5, 3], name="x")
        h = tf.nn.relu(tf.einsum("btc,cu->btu", x, tf1.get_variable("w", [3, 4])) + 0.1, name="h")
        tm = tf.transpose(h, [1, 0, 2], name="time_major")
        tf.reshape(tm, [-1, 4], name="rows")
        tf.transpose(tm, [1, 0, 2], name="batch_major")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(s, os.path.join(directory, "tm", "m.ckpt"))
    x = np.random.default_rng(0).normal(size=(40, 5, 3)).astype(np.float32)
    return prefix, Dataset(x, (x[:, 0, 0] > 0).astype(np.int64), np.array(["train"] * 40), [str(i) for i in range(40)])


def test_a_time_major_cut_is_said_to_have_an_axis_0_that_may_not_be_the_batch(tmp_path, capfd):
    """Its static size 5 on axis 0 was called a batch the graph fixes, and the refusal blamed batch
    statistics; a reshape to time * batch rows failed in the loss (logits [160, 2], labels [32]), and cache
    stored its first rows (time steps) as if they were the examples."""
    prefix, data = _time_major(str(tmp_path))
    doubt = "axis 0 of 'time_major' may not be the batch (its static size 5 is not the input's batch ('x:0' is [?, 5, 3])"
    notes = gs.plan(gs.RetrainConfig(model=prefix, head="time_major:2")).notes
    assert notes == [f"{doubt}, a guess from the graph): retrain takes it for the batch, and its static size for a "
                     "batch the graph fixes (it trains on batches of 5) and refuses the cut if the first training "
                     "example alone gives other values than in its batch unless allow_batch_dependent=True"]
    assert gs.plan(gs.RetrainConfig(model=prefix, head="batch_major:2")).notes == []
    cfg = gs.RetrainConfig(model=prefix, head="time_major:2", epochs=1)
    with pytest.raises(gs.BatchDependentError) as e:
        gs.retrain(cfg, data, str(tmp_path / "o"), progress=False)
    assert str(e.value) == (
        "the head's input 'time_major:0' depends on the other examples in its batch (axis 0 of 'time_major:0' may not "
        "be the batch: its static size 5 is not the input's batch ('x:0' is [?, 5, 3]), a guess from the graph): the "
        "first training example alone gives other values than in its batch, so the exported model's answer for an "
        "example would depend on the examples served with it; cut where axis 0 is the batch, or pass "
        "allow_batch_dependent=True")
    np.savez(tmp_path / "d.npz", x=data.x, y=data.y)
    with pytest.raises(gs.BatchDependentError, match=r"\(axis 0 of 'time_major:0' may not be the batch: .*; cache a "
                                                     r"tensor where axis 0 is the batch, or pass"):
        gs.generate_cache(prefix, "time_major", str(tmp_path / "d.npz"), str(tmp_path / "c"), progress=False)
    with pytest.raises(gs.ConfigError, match=r"^the head's input 'rows:0' has 160 rows for a batch of 32 examples: "
                                             r"its axis 0 is not the batch \(transpose 'time_major' moves the input's "
                                             r"axis 0 to axis 1, a guess from the graph\), and a head needs one row "
                                             r"per example; cut where axis 0 is the batch$"):
        gs.retrain(gs.RetrainConfig(model=prefix, head="rows:2", epochs=1), data, str(tmp_path / "o"), progress=False)
    with pytest.raises(gs.ConfigError, match=r"^tensor 'rows:0' has 170 rows for a batch of 34 examples: its axis 0 is "
                                             r"not the batch \(.*\), and a cache stores one row per example; cache a "
                                             r"tensor where axis 0 is the batch$"):  # it stored rows of time steps
        gs.generate_cache(prefix, "rows", str(tmp_path / "d.npz"), str(tmp_path / "rows"), progress=False)
    # accepted, the export's signature takes any batch: the summary does not say it declares 5
    code, out, err = cli(capfd, "retrain", "--model", prefix, "--head", "time_major:2", "--data", tmp_path / "d.npz",
                         "--out", tmp_path / "o", "--epochs", 1, "--quiet", "--allow-batch-dependent")
    assert code == 0, err
    assert "may not be the batch" in out and "declares batches" not in out


def test_plans_random_note_gives_the_dropout_example_only_for_dropout(tmp_path):
    """plan's note on random ops said '(dropout with keep_prob baked in)' whatever they were: for noise
    (RandomStandardNormal added to a layer) it gives no example; dropout's, here inside a tf.cond's branch
    too, keeps it."""
    note = ("'features' depends on random op {}: retrain runs it twice on the first training batch, fed as the "
            "export is fed, and refuses it if the runs differ{} unless allow_random=True")
    for d in "ndb":
        (tmp_path / d).mkdir()
    noisy, _ = _mlp_around(tmp_path / "n", lambda h: h + tf.random.normal(tf.shape(h), name="noise"))
    assert gs.plan(gs.RetrainConfig(model=noisy, head="features:2")).notes == [
        note.format("noise/RandomStandardNormal", "")]
    dropped, _ = _mlp_around(tmp_path / "d", lambda h: tf1.nn.dropout(h, keep_prob=0.5))
    assert gs.plan(gs.RetrainConfig(model=dropped, head="features:2")).notes == [
        note.format("dropout/random_uniform/RandomUniform", " (dropout with keep_prob baked in)")]
    branch, g = _mlp_around(tmp_path / "b", lambda h: tf.cond(tf1.placeholder_with_default(True, (), name="training"),
                                                              lambda: tf1.nn.dropout(h, keep_prob=0.5),
                                                              lambda: tf.identity(h)))
    f = g.get_operation_by_name("cond").get_attr("then_branch").name
    assert gs.plan(gs.RetrainConfig(model=branch, head="features:2")).notes == [
        note.format(f"dropout/random_uniform/RandomUniform in function '{f}' called by op 'cond'",
                    " (dropout with keep_prob baked in)")]


def test_a_random_tensor_refusal_guesses_dropout_only_for_dropout(tmp_path):
    """retrain's and cache's refusals of a random cut guessed '(dropout with keep_prob baked in?)'
    whatever the random op: noise added to a layer gets no guess."""
    prefix, _ = _mlp_around(tmp_path, lambda h: h + tf.random.normal(tf.shape(h), name="noise"))
    with pytest.raises(gs.RandomTensorError, match=r"depends on random op noise/RandomStandardNormal, so the "
                                                   r"exported model would answer"):
        _retrain(prefix, tmp_path / "o")
    np.savez(tmp_path / "d.npz", x=_data().x, y=_data().y)
    with pytest.raises(gs.RandomTensorError, match=r"depends on random op noise/RandomStandardNormal, so its "
                                                   r"values cannot be cached"):
        gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), str(tmp_path / "c"), progress=False)


def test_a_cache_says_when_its_record_holds_the_batch_check_as_not_run(tmp_path, capsys):
    """A first batch of one example left batch_dependent null in the manifest, and cache's report said nothing
    of it (retrain --cache's notes did); a one-example run into a checked cache also erased the earlier check."""
    from graphsurgeon._src.cli import main

    prefix = _net(str(tmp_path), "none")
    x, y = _data(41).x, _data(41).y
    np.savez(tmp_path / "d.npz", x=x[:40], y=y[:40])
    np.savez(tmp_path / "d41.npz", x=x, y=y)
    one, c = "the first batch this run computed holds 1 example", str(tmp_path / "c")
    note = ("the cached tensor 'features:0': whether it depends on its batch-mates was not checked ({}; the manifest "
            "records it as not checked)")
    argv = ["cache", "--model", prefix, "--cut", "features", "--data", str(tmp_path / "d.npz"), "--quiet"]
    assert main(argv + ["--out", c, "--batch-size", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checks"] == {"random": False, "batch_dependent": None} == _manifest(c)["checks"]
    assert report["notes"] == [note.format(one)]
    assert main(argv + ["--out", c]) == 0  # computes nothing: the record, and so the note, stays
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  " + note.format("this run computed no row, and the run that computed its rows did not check it")]
    # into a cache whose check ran, one new example (a first batch of one) keeps what the earlier run found
    c2 = str(tmp_path / "c2")
    gs.generate_cache(prefix, "features", str(tmp_path / "d.npz"), c2, progress=False)
    rep = gs.generate_cache(prefix, "features", str(tmp_path / "d41.npz"), c2, progress=False)
    assert rep.computed == 1 and rep.checks == {"random": False, "batch_dependent": False} == _manifest(c2)["checks"]
    assert rep.notes == []
    rep = gs.generate_cache(prefix, "features", str(tmp_path / "d41.npz"), str(tmp_path / "c3"), batch_size=1,
                            progress=False)
    assert rep.notes == [note.format(one)]
