"""Real checkpoints are messy: batch norm with update ops, while loops, auto-named variables."""
import os

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src.storage.datasets import Dataset

from helpers import ckpt

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def bn_net(tmp_path_factory):
    """A slim conv net with batch norm in training mode (UPDATE_OPS present) and is_training baked in."""
    from legacy_models import use_legacy_keras

    use_legacy_keras()
    import tf_slim as slim

    d = str(tmp_path_factory.mktemp("bn"))
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, 8, 8, 1], name="images")
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                            normalizer_params={"is_training": True, "decay": 0.5}):
            net = slim.conv2d(x, 8, [3, 3], scope="conv1")
            net = slim.conv2d(net, 8, [3, 3], scope="conv2")
        tf.reduce_mean(net, [1, 2], name="features")
        assert tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(s, os.path.join(d, "bn.ckpt"))
    return prefix


def test_frozen_batch_norm_statistics_never_change(bn_net, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype(np.float32) + 3.0
    y = (x.mean(axis=(1, 2, 3)) > 3.0).astype(np.int64)
    data = Dataset(x, y, np.array(["train"] * 64), [str(i) for i in range(64)])
    cfg = gs.RetrainConfig(model=bn_net, head="features:2", trainable=["conv2"], epochs=2, batch_size=16, lr=0.1)
    p = gs.plan(cfg)
    assert p.update_ops and all(op.startswith("conv2/") for op in p.update_ops)
    # is_training baked in: batch statistics, so an exported answer would depend on its batch-mates
    with pytest.raises(gs.BatchDependentError, match=r"'features:0' depends on the other examples in its batch "
                                                     r"\(through conv1/BatchNorm/FusedBatchNorm"):
        gs.retrain(cfg, data, str(tmp_path / "out"), progress=False)
    assert not os.path.exists(tmp_path / "out")
    cfg.allow_batch_dependent = True
    res = gs.retrain(cfg, data, str(tmp_path / "out"), progress=False)
    assert res.head_input.batch_dependent and "accepted by allow_batch_dependent=True" in res.head_input.notes[0]
    src, new = ckpt(bn_net), ckpt(str(tmp_path / "out/checkpoint/model.ckpt"))
    for n in ("conv1/weights", "conv1/BatchNorm/beta", "conv1/BatchNorm/moving_mean", "conv1/BatchNorm/moving_variance"):
        assert new[n].tobytes() == src[n].tobytes(), n
    assert new["conv2/BatchNorm/moving_mean"].tobytes() != src["conv2/BatchNorm/moving_mean"].tobytes()
    assert new["conv2/weights"].tobytes() != src["conv2/weights"].tobytes()


@pytest.fixture(scope="module", params=["v1", "v2"])
def rnn_net(request, tmp_path_factory):
    """An RNN unrolled with tf.while_loop (TF 1.x control flow: Enter/Exit/Merge; or v2: While)."""
    if request.param == "v1":
        tf1.disable_control_flow_v2()
    try:
        d = str(tmp_path_factory.mktemp("rnn" + request.param))
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.float32, [None, 5, 4], name="seq")
            with tf1.variable_scope("rnn", use_resource=False):
                w = tf1.get_variable("kernel", [4 + 6, 6], initializer=tf1.glorot_uniform_initializer(seed=0))
                b = tf1.get_variable("bias", [6], initializer=tf1.zeros_initializer())
            xs = tf.transpose(x, [1, 0, 2])

            def body(t, h):
                return t + 1, tf.tanh(tf.matmul(tf.concat([xs[t], h], 1), w) + b)

            _, h = tf1.while_loop(lambda t, h: t < 5, body, [tf.constant(0), tf.zeros([tf.shape(x)[0], 6])])
            h = tf.identity(h, name="last_state")
            with tf1.variable_scope("out", use_resource=False):
                wo = tf1.get_variable("weights", [6, 3])
            tf.matmul(h, wo, name="logits")
            with tf1.Session() as s:
                s.run(tf1.global_variables_initializer())
                prefix = tf1.train.Saver().save(s, os.path.join(d, "rnn.ckpt"))
    finally:
        tf1.enable_control_flow_v2()
    return prefix


def test_while_loop_graph_head_swap(rnn_net, tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 5, 4)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.int64)
    with gs.restore(rnn_net) as m:
        state = m.run("last_state", {"seq": x})
    data = Dataset(x, y, np.array(["train"] * 40), [str(i) for i in range(40)])
    res = gs.retrain(gs.RetrainConfig(model=rnn_net, head="last_state:2", epochs=2, lr=0.1), data,
                     str(tmp_path / "out"), progress=False)
    assert res.plan.by_status("dropped") == ["out/weights"]
    assert res.plan.by_status("restored") == ["rnn/bias", "rnn/kernel"]
    with gs.restore(str(tmp_path / "out/saved_model")) as m2:
        np.testing.assert_array_equal(m2.run("last_state", {"seq": x}), state)  # frozen RNN unchanged


def test_auto_named_variables_no_scopes(tmp_path):
    """Variables named Variable, Variable_1, ... with no scopes, as tf.Variable made them."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        with tf1.variable_scope("", use_resource=False):
            w1 = tf1.Variable(tf1.random_normal([4, 8], seed=1))
            b1 = tf1.Variable(tf.zeros([8]))
            w2 = tf1.Variable(tf1.random_normal([8, 3], seed=2))
        h = tf.nn.relu(tf.matmul(x, w1) + b1, name="h")
        tf.matmul(h, w2, name="y")
        assert [v.op.name for v in tf1.global_variables()] == ["Variable", "Variable_1", "Variable_2"]
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(s, str(tmp_path / "m.ckpt"))
    p = gs.plan(gs.RetrainConfig(model=prefix, head="h:2", trainable=["Variable_1"]))
    assert p.by_status("restored") == ["Variable", "Variable_1"]
    assert p.by_status("dropped") == ["Variable_2"]
    assert p.trainable == ["Variable_1", "head/logits/bias", "head/logits/kernel"]
    with pytest.raises(gs.PatternError, match="closest scopes: Variable"):
        gs.plan(gs.RetrainConfig(model=prefix, head="h:2", trainable=["Variable_9"]))


def test_nested_tf1_while_loops_survive_pruning(tmp_path):
    """A loop inside a loop (TF 1.x control flow), cut at the outer loop's result."""
    tf1.disable_control_flow_v2()
    try:
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.float32, [None, 3], name="x")
            with tf1.variable_scope("cell", use_resource=False):
                w = tf1.get_variable("w", [3, 3], initializer=tf1.glorot_uniform_initializer(seed=0))

            def outer(i, h):
                _, h2 = tf1.while_loop(lambda j, hh: j < 2, lambda j, hh: (j + 1, tf.tanh(tf.matmul(hh, w))), [0, h])
                return i + 1, h2

            _, h = tf1.while_loop(lambda i, h: i < 3, outer, [tf.constant(0), x])
            tf.identity(h, name="state")
            tf.matmul(h, tf1.get_variable("out", [3, 2], use_resource=False), name="logits")
            with tf1.Session() as s:
                s.run(tf1.global_variables_initializer())
                prefix = tf1.train.Saver().save(s, str(tmp_path / "m.ckpt"))
    finally:
        tf1.enable_control_flow_v2()
    xv = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    with gs.restore(prefix) as full:
        expected = full.run("state", {"x": xv})
    with gs.restore(prefix, outputs=["state"]) as cut:
        assert sorted(cut.variables) == ["cell/w"]
        np.testing.assert_array_equal(cut.run("state", {"x": xv}), expected)


def test_each_unfreezing_stage_runs_only_its_own_update_ops(bn_net, tmp_path):
    """conv2 trains from epoch 0, conv1 joins at epoch 1: during epoch 0 conv1's moving statistics
    must not move (they did when every stage ran the final stage's update ops)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 1)).astype(np.float32) + 3.0
    data = Dataset(x, (x.mean(axis=(1, 2, 3)) > 3.0).astype(np.int64), np.array(["train"] * 32),
                   [str(i) for i in range(32)])
    src = ckpt(bn_net)
    moving = ("conv1/BatchNorm/moving_mean", "conv1/BatchNorm/moving_variance")
    for epochs, conv1_moves in ((1, False), (2, True)):
        cfg = gs.RetrainConfig(model=bn_net, head="features:2", trainable=["conv2"], unfreeze=["1:conv1=0.5"],
                               epochs=epochs, batch_size=16, lr=0.1, allow_batch_dependent=True)  # is_training=True
        res = gs.retrain(cfg, data, str(tmp_path / f"out{epochs}"), progress=False)
        first, second = res.setup.stage_updates
        assert first and all(n.startswith("conv2/") for n in first)
        assert sorted({n.split("/")[0] for n in second}) == ["conv1", "conv2"] and len(second) == 2 * len(first)
        new = ckpt(str(tmp_path / f"out{epochs}/checkpoint/model.ckpt"))
        assert all((new[n].tobytes() != src[n].tobytes()) == conv1_moves for n in moving), epochs
        assert new["conv2/BatchNorm/moving_mean"].tobytes() != src["conv2/BatchNorm/moving_mean"].tobytes()
