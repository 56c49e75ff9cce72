"""Messages say one thing in the singular and more in the plural: they said 'op(s)', 'variable(s)',
'placeholder(s)', 'position(s)' ... whatever the count (mixins.plural, counted, listed)."""
import types

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src import determinism, feeds, restore, train
from graphsurgeon._src.cache import header
from graphsurgeon._src.model import Model
from graphsurgeon._src.retrain import checks
from graphsurgeon._src.rules import Rules

tf1 = tf.compat.v1


def test_the_random_ops_of_a_message():
    assert determinism.ops_phrase(["d/RandomUniform"]) == "random op d/RandomUniform"
    assert determinism.ops_phrase(["a", "b", "c", "d"]) == "random ops a, b, c …"


@pytest.mark.parametrize("drawn,named,noun", [(1, 1, "its random op"), (2, 2, "its random ops"),
                                              (1, 2, "1 of its random ops"), (2, 3, "2 of its 3 random ops")])
def test_how_a_random_tensor_was_seen_counts_the_ops_fed_the_draws(drawn, named, noun):
    """The ops fed the draws, of those the scan names: fewer when TensorFlow fed them one at a time."""
    p = determinism.Probe("t:0", 4, True, None, "draws", True, drawn, named)
    assert determinism.random_phrase(p) == (f"differs between runs on the same batch with {noun} fed two "
                                            "far-apart draws (two ordinary runs agreed)")
    assert determinism.random_seen(p) == f"runs on one batch with {noun} fed two far-apart draws differed"


def test_the_ops_that_may_mix_a_batch():
    assert determinism.mixing_phrase(["moments/mean"]) == "reads an op that may mix the examples of a batch (moments/mean)"
    assert determinism.mixing_phrase(list("abcd")) == "reads ops that may mix the examples of a batch (a, b, c …)"
    assert determinism.mixing_phrase(["m"], "why") == "reads an op that may mix the examples of a batch (m; why)"
    assert determinism.batch_unchecked("'f'", "why", ["moments/mean"]) == \
        "'f' reads an op that may mix the examples of a batch (moments/mean; why)"
    assert determinism.batch_unchecked("'f'", "why", ["m/mean", "m/variance"]) == \
        "'f' reads ops that may mix the examples of a batch (m/mean, m/variance; why)"
    assert determinism.batch_unchecked("'f'", "why", []) == ("'f': whether it depends on its batch-mates was not "
                                                            "checked (why); the graph holds no op that may mix the "
                                                            "examples of a batch")
    assert determinism.batch_unchecked("'f'", "why", random=True) == \
        "'f': whether it is random or depends on its batch-mates was not checked (why)"


def _model(build) -> Model:
    graph = tf.Graph()
    with graph.as_default():
        build()
    return Model(graph, None, None)


@pytest.mark.parametrize("n,it", [(1, "it"), (2, "them")])
def test_a_cached_random_tensor_is_it_for_one_op_and_them_for_two(n, it):
    """retrain from a cache of a random tensor: 'whether a feed makes it deterministic …, and a cache cannot run it',
    'the exported model runs it on every call' for one op (it said 'them')."""
    def build():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        for i in range(n):
            x = tf1.nn.dropout(x, rate=0.5, name=f"d{i}")
        tf.identity(x, name="f")

    model = _model(build)
    cfg = types.SimpleNamespace(allow_random=True, allow_batch_dependent=False)
    old = types.SimpleNamespace(cut="f:0", directory="c/", manifest={})
    ops = "random op d0/random_uniform/RandomUniform" if n == 1 else \
        "random ops d0/random_uniform/RandomUniform, d1/random_uniform/RandomUniform"
    assert checks.cached_notes(cfg, model, old, "x") == [
        f"c/: the cached tensor 'f:0' depends on {ops} (its cache was made with allow_random=True, before caches "
        f"recorded their checks: whether a feed makes {it} deterministic was not recorded, and a cache cannot run "
        f"{it}): accepted by allow_random=True; the exported model runs {it} on every call"]
    cfg.allow_random = False
    recorded = types.SimpleNamespace(cut="f:0", directory="c/", manifest={"checks": {"random": True,
                                                                                    "batch_dependent": None}})
    with pytest.raises(gs.RandomTensorError) as e:
        checks.cached_notes(cfg, model, recorded, "x")
    assert str(e.value).endswith(f"the exported model runs {it} on every call; pass allow_random=True to accept it, "
                                 "or train from the data")


def test_the_way_out_of_a_batch_refusal_that_keeps_the_head():
    assert determinism.way_out("cut {}", True, below=["m/mean"]) == \
        "use a model without it (a cut below it leaves it in its head, which is checked too)"
    assert determinism.way_out("cut {}", True, below=["m/mean", "m/variance"]) == \
        "use a model without them (a cut below them leaves them in its head, which is checked too)"
    assert determinism.way_out("cut {}", False, below=["m/mean"]) == "cut below it"
    assert determinism.way_out("cut {}", True, where="where axis 0 is the batch") == "cut where axis 0 is the batch"


def test_an_output_index_past_an_ops_outputs():
    def build():
        x = tf1.placeholder(tf.float32, [4], name="x")
        tf.identity(x, name="one")
        tf.split(x, 2, name="two")

    model = _model(build)
    with pytest.raises(gs.TensorNotFoundError, match=r"^op 'one' has 1 output; 'one:1' asks for output 1$"):
        model.tensor("one:1")
    with pytest.raises(gs.TensorNotFoundError, match=r"^op 'two' has 2 outputs; 'two:2' asks for output 2$"):
        model.tensor("two:2")


def test_the_placeholders_a_cut_reads_or_needs():
    def build():
        a, b, x = (tf1.placeholder(tf.float32, [], name=n) for n in "abx")
        tf.identity(x + a, name="xa")
        tf.identity(x + a + b, name="xab")
        tf1.placeholder(tf.float32, [], name="z")

    model = _model(build)
    with pytest.raises(gs.ConfigError, match=r"^input 'z' does not feed 'xa'; 'xa' reads placeholders a, x$"):
        feeds.find_input(model, "z", "xa", {})
    with pytest.raises(gs.ConfigError, match=r"^input 'z' does not feed 'x'; 'x' reads placeholder x$"):
        feeds.find_input(model, "z", "x", {})
    with pytest.raises(gs.ConfigError, match=r"^'xa' also needs placeholder a float32\[\]; give its value in feeds="):
        feeds.find_input(model, "x", "xa", {})
    with pytest.raises(gs.ConfigError, match=r"^'xab' also needs placeholders a float32\[\], b float32\[\]; give "
                                             r"their values in feeds="):
        feeds.find_input(model, "x", "xab", {})


def test_a_feed_that_cannot_fill_unknown_dimensions():
    with tf.Graph().as_default():
        one = tf1.placeholder(tf.float32, [2, None], name="one")
        two = tf1.placeholder(tf.float32, [None, None], name="two")
    with pytest.raises(gs.ConfigError, match=r"cannot fill its unknown dimension 1: give"):
        feeds.broadcast("one", np.zeros(3), one, None)
    with pytest.raises(gs.ConfigError, match=r"cannot fill its unknown dimensions 0, 1: give"):
        feeds.broadcast("two", np.zeros(3), two, None)


def test_the_frozen_variables_whose_values_changed():
    def fp(variables):
        return {"fingerprint": {"tensor": "f", "input": "x", "feeds": {}, "variables": variables, "graph": "g"}}

    old = fp({"a": 1, "b": 1})
    assert header.differences(old, fp({"a": 2, "b": 1}), keys=()) == ["values of frozen variable a"]
    assert header.differences(old, fp({"a": 2, "b": 2}), keys=()) == ["values of frozen variables a, b"]


def test_unknown_keys_of_a_plan_file(tmp_path):
    for keys, said in ([["learning_rate"], "unknown key learning_rate;"],
                       [["learning_rate", "lr_decay"], "unknown keys learning_rate, lr_decay;"]):
        path = tmp_path / f"{len(keys)}.toml"
        path.write_text("".join(f"{k} = 0.1\n" for k in keys))
        with pytest.raises(gs.ConfigError, match=f"^plan file {path}: {said} known: "):
            gs.RetrainConfig.from_toml(str(path))


def test_the_groups_of_a_rename_rule():
    with pytest.raises(gs.ConfigError, match=r"the regular expression has 1 group\)$"):
        Rules(rename=[(r"a_(\d)", r"v\2")])
    with pytest.raises(gs.ConfigError, match=r"the regular expression has 2 groups\)$"):
        Rules(rename=[(r"(a)_(\d)", r"v\3")])


def test_nan_values_of_a_checkpoint_tensor():
    reader = types.SimpleNamespace(prefix="m/c")
    with pytest.raises(gs.PlanError, match=r"^checkpoint m/c: tensor 'w' holds 1 NaN value of 3 \("):
        restore._check_no_nan(reader, "w", np.array([np.nan, 1, 2], np.float32))
    with pytest.raises(gs.PlanError, match=r"^checkpoint m/c: tensor 'w' holds 2 NaN values of 3 \("):
        restore._check_no_nan(reader, "w", np.array([np.nan, np.nan, 2], np.float32))


def test_the_variables_a_multiplier_sets():
    stages = [(0, {"a/w": 1.0, "b/w": 1.0, "b/v": 1.0}), (3, {"a/w": 1.0, "b/w": 1.0, "b/v": 1.0, "b/u": 1.0})]
    names = ["a/w", "a/x", "b/w", "b/v", "b/u", "b/t", "b/s"]
    assert train.lr_mult_notes(["a*=0.1"], stages, names) == [
        "lr_mult='a*=0.1' sets the multiplier of the 1 variable it matches that trains from the first epoch; it "
        "ignores the 1 it matches that does not train (a/x)"]
    assert train.lr_mult_notes(["b*=0.1"], stages, names) == [
        "lr_mult='b*=0.1' sets the multiplier of the 2 variables it matches that train from the first epoch; it "
        "ignores the 2 it matches that do not train (b/s, b/t); the 1 it matches that an unfreeze stage starts (b/u) "
        "takes that stage's multiplier"]
