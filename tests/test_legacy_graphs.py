"""The traits of real legacy graphs, rebuilt here so a user's clone tests them too: while contexts
that name gradient ops, batches fixed in static shapes, placeholders beyond the input, input
queues, batch statistics, TF 1.0-era placeholder shapes, and one-line errors for everything."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src import subgraph, terminal
from graphsurgeon._src.storage.checkpoint import read_meta_graph
from graphsurgeon._src.storage.paths import resolve

import legacy_models
from helpers import ROOT, ckpt, cli

tf1 = tf.compat.v1



@pytest.fixture(scope="module")
def rnn(tmp_path_factory):
    return legacy_models.v1_rnn_adam(str(tmp_path_factory.mktemp("rnn")))


def test_pruned_while_context_names_only_ops_that_remain(rnn):
    """The forward loop's context lists the Adam gradient's stack pushes; pruned at the outputs,
    the context keeps only what is left (in sorted order), so import_meta_graph rebuilds it."""
    meta = read_meta_graph(resolve(rnn))
    full = [v for raw in meta.collection_def["while_context"].bytes_list.value
            for v in subgraph.control_flow_pb2.WhileContextDef.FromString(raw).values_def.values]
    assert any(v.startswith("gradients") for v in full)  # the trait of the 2018 char-rnn
    pruned = subgraph.prune_meta_graph(meta, ["outputs"])
    present = {n.name for n in pruned.graph_def.node}
    raws = pruned.collection_def["while_context"].bytes_list.value
    assert len(raws) == 1  # the gradient loop's own context is gone with its pivot
    ctx = subgraph.control_flow_pb2.WhileContextDef.FromString(raws[0])
    assert list(ctx.values_def.values) == sorted(ctx.values_def.values)
    assert all(subgraph.node_name(v) in present for v in ctx.values_def.values)
    assert subgraph.prune_meta_graph(meta, ["outputs"]).SerializeToString(deterministic=True) == \
        pruned.SerializeToString(deterministic=True)
    g = tf.Graph()
    with g.as_default():
        tf1.train.import_meta_graph(pruned)


def test_rnn_trains_through_its_v1_loop(rnn, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6, 4)).astype(np.float32)
    data = gs.Dataset(x, (x[:, 0, 0] > 0).astype(np.int64), np.array(["train"] * 40), [str(i) for i in range(40)])
    cfg = gs.RetrainConfig(model=rnn, head="outputs:2", trainable=["rnn"], epochs=2, lr=0.1)
    assert tf1.control_flow_v2_enabled()
    gs.retrain(cfg, data, str(tmp_path / "o"), progress=False)
    assert tf1.control_flow_v2_enabled()  # the process-wide switch is put back
    new, src = ckpt(str(tmp_path / "o/checkpoint/model.ckpt")), ckpt(rnn)
    assert new["rnn/kernel"].tobytes() != src["rnn/kernel"].tobytes()
    assert sorted(new) == ["head/logits/bias", "head/logits/kernel", "rnn/bias", "rnn/kernel"]


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    d = tmp_path_factory.mktemp("fixed")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(130, 12)).astype(np.float32)  # 130 = 2 x 50 + a partial batch of 30
    np.savez(d / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    return legacy_models.fixed_batch_mlp(str(d)), str(d / "data.npz"), x


def _live(prefix, tensor, feed):
    g = tf.Graph()
    with g.as_default(), tf1.Session(graph=g) as s:
        tf1.train.import_meta_graph(prefix + ".meta").restore(s, prefix)
        return s.run(tensor, feed)


def test_fixed_batch_is_read_from_the_graph_and_the_last_batch_padded(fixed, tmp_path, capfd):
    prefix, data, x = fixed
    code, out, err = cli(capfd, "cache", "--model", prefix, "--cut", "features", "--data", data,
                         "--out", tmp_path / "c", "--json", "--quiet")
    assert code == 0, err
    from graphsurgeon._src.cache import CacheReader

    with CacheReader(str(tmp_path / "c")) as r:
        got = r.read(np.arange(130))
    padded = np.concatenate([x, x[100:120]])  # the last 30 rows, padded to 50 with themselves
    want = np.concatenate([_live(prefix, "features:0", {"x:0": padded[i:i + 50]}) for i in range(0, 150, 50)])[:130]
    # the cache batches each split's rows (its shards hold one split each), so a row's batch-mates
    # differ from data-order batches: equal to the last bit or two of float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    code, _, err = cli(capfd, "cache", "--model", prefix, "--cut", "features", "--data", data,
                       "--out", tmp_path / "c2", "--batch-size", 32, "--quiet")
    assert code == 2 and "fixes the batch at 50 in its static shapes; pass --batch-size 50" in err
    # retrain from the cache at the fixed batch, and live: padding rows carry no weight
    code, out, err = cli(capfd, "retrain", "--model", prefix, "--head", "features:2", "--cache", tmp_path / "c",
                         "--out", tmp_path / "r", "--epochs", 2, "--quiet", "--json")
    assert code == 0, err
    m = json.loads(out)["metrics"]
    assert sum(v["examples"] for v in m.values()) == 130
    code, out, err = cli(capfd, "retrain", "--model", prefix, "--head", "features:2", "--data", data,
                         "--out", tmp_path / "r2", "--epochs", 2, "--quiet", "--json")
    assert code == 0, err


def test_padding_rows_weigh_nothing(fixed, tmp_path):
    """A batch of 30 padded to 50: the loss equals the mean over the 30 real rows."""
    prefix, _, x = fixed
    y = (x[:, 0] > 0).astype(np.int64)
    data = gs.Dataset(x[:30], y[:30], np.array(["train"] * 30), [str(i) for i in range(30)])
    cfg = gs.RetrainConfig(model=prefix, head="features:2", epochs=1, lr=0.0)
    res = gs.retrain(cfg, data, str(tmp_path / "o"), progress=False)
    with gs.restore(str(tmp_path / "o/checkpoint")) as m:
        logits = m.run(m.outputs[0], {m.inputs[0]: np.concatenate([x[:30], x[:20]])})[:30]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    xent = -np.log(p[np.arange(30), y[:30]]).mean()
    assert res.history[0]["train_loss"] == pytest.approx(xent, rel=1e-5)


def test_feeds_broadcast_over_the_batch(tmp_path, capfd):
    prefix = legacy_models.fixed_batch_mlp(str(tmp_path), batch=10, with_state=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 12)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    state = np.arange(6, dtype=np.float32) / 6
    np.save(tmp_path / "state.npy", state)
    code, _, err = cli(capfd, "cache", "--model", prefix, "--cut", "features", "--data", tmp_path / "d.npz",
                       "--out", tmp_path / "c", "--feed", f"state={tmp_path / 'state.npy'}", "--quiet")
    assert code == 0, err
    from graphsurgeon._src.cache import CacheReader

    with CacheReader(str(tmp_path / "c")) as r:
        got = r.read(np.arange(10))
    want = _live(prefix, "features:0", {"x:0": x[:10], "state:0": np.tile(state, (10, 1))})
    np.testing.assert_array_equal(got, want)
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "features:2", "--feed", "state=0")
    assert code == 0, err  # a scalar broadcasts too
    np.save(tmp_path / "bad.npy", np.zeros(4, np.float32))
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "features:2", "--feed",
                       f"state={tmp_path / 'bad.npy'}")
    assert code == 2 and "feed 'state': a value of shape [4] does not broadcast to placeholder 'state'" in err
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "features:2")
    assert code == 2 and "cannot tell the input of 'features': it reads placeholders state float32[None, 6], " \
                         "x float32[10, 12]" in err
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "features:2", "--input", "x")
    assert code == 2 and "also needs placeholder state float32[None, 6]" in err
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "features:2", "--feed", "state=0",
                       "--feed", "nothere=1")
    assert code == 2 and "feed 'nothere'" in err


def test_queue_fed_graph_takes_any_tensor_as_input(tmp_path, capfd):
    prefix = legacy_models.queue_fed_net(str(tmp_path))
    code, out, _ = cli(capfd, "inspect", prefix)
    assert "likely inputs: fifo_queue_DequeueMany:1 float32 [20, 12]" in out
    assert "likely outputs: probabilities:0" in out
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "hidden/Relu:2")
    assert code == 2 and "its data comes from fifo_queue_DequeueMany:1" in err
    m = gs.restore(prefix, outputs=["hidden/Relu"], inputs=["fifo_queue_DequeueMany:1"])
    ph = m.tensor("fifo_queue_DequeueMany:1")
    assert ph.op.type == "Placeholder" and ph.shape.as_list() == [20, 12]
    assert not [op for op in m.graph.get_operations() if "Queue" in op.type]  # the queue is pruned away
    x = np.ones((20, 12), np.float32)
    np.testing.assert_array_equal(m.run("hidden/Relu", {ph: x}), _live(prefix, "hidden/Relu:0",
                                                                        {"fifo_queue_DequeueMany:1": x}))


def test_batch_statistics_refused_unless_allowed(tmp_path, capfd):
    prefix = legacy_models.fixed_batch_mlp(str(tmp_path), batch=None, with_moments=True)
    x = np.random.default_rng(0).normal(size=(20, 12)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(20, np.int64))
    code, _, err = cli(capfd, "cache", "--model", prefix, "--cut", "features", "--data", tmp_path / "d.npz",
                       "--out", tmp_path / "c", "--quiet")
    assert code == 2 and "depends on the other examples in its batch (through moments/mean, moments/variance" in err
    assert not os.path.exists(tmp_path / "c" / "manifest.json")
    code, _, err = cli(capfd, "cache", "--model", prefix, "--cut", "hidden/BiasAdd", "--data", tmp_path / "d.npz",
                       "--out", tmp_path / "c", "--quiet")
    assert code == 0, err  # below the batch norm, each example stands alone


def test_the_one_placeholder_upstream_is_the_input(tmp_path, capfd):
    prefix = legacy_models.two_copies_net(str(tmp_path))
    code, out, err = cli(capfd, "plan", "--model", prefix, "--head", "Relu_1:2", "--json")
    assert code == 0, err
    assert json.loads(out)["inputs"] == ["Placeholder_1:0"]


def test_tf10_placeholder_shapes(tmp_path, capfd):
    prefix = legacy_models.tf10_style_meta(legacy_models.two_copies_net(str(tmp_path)))
    code, out, _ = cli(capfd, "inspect", prefix, "--json")
    assert {i["name"]: i["shape"] for i in json.loads(out)["graph"]["inputs"]} == \
        {"Placeholder:0": [None, 12], "Placeholder_1:0": [None, 12]}
    m = gs.restore(prefix, outputs=["Relu"])
    assert m.tensor("Placeholder").shape.as_list() == [None, 12]


def test_a_frozen_tf10_placeholder_without_recorded_shape_is_unknown_not_a_scalar(tmp_path, capfd):
    """The TF 1.0 graph frozen as a user freezes it (convert_variables_to_constants keeps producer 21
    and drops ``_output_shapes``): its placeholders' empty ``shape`` attr means unknown (as TensorFlow
    reads it), and inspect said ``[]``, a scalar; a later graph's scalar placeholder is ``[]`` and one
    of unknown rank reads 'unknown' in the text (it read 'None')."""
    prefix = legacy_models.tf10_style_meta(legacy_models.two_copies_net(str(tmp_path)))
    g = tf.Graph()
    with g.as_default(), tf1.Session(graph=g) as s:
        tf1.train.import_meta_graph(prefix + ".meta").restore(s, prefix)
        frozen = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["Relu"])
    assert frozen.versions.producer == 21 and not any("_output_shapes" in n.attr for n in frozen.node)
    (tmp_path / "frozen.pb").write_bytes(frozen.SerializeToString())
    modern = tf.Graph()
    with modern.as_default():
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        tf.identity(x * tf1.placeholder(tf.float32, [], name="keep_prob") * tf1.placeholder(tf.float32, None, name="any"),
                    name="y")
    (tmp_path / "modern.pb").write_bytes(modern.as_graph_def().SerializeToString())
    for pb, want, text in (("frozen.pb", {"Placeholder:0": None}, "likely inputs: Placeholder:0 float32 unknown"),
                           ("modern.pb", {"x:0": [None, 3], "keep_prob:0": [], "any:0": None},
                            "likely inputs: x:0 float32 [None, 3], keep_prob:0 float32 [], any:0 float32 unknown")):
        code, out, err = cli(capfd, "inspect", tmp_path / pb, "--json")
        assert code == 0 and {i["name"]: i["shape"] for i in json.loads(out)["graph"]["inputs"]} == want, err
        code, out, err = cli(capfd, "inspect", tmp_path / pb)
        assert code == 0 and text in out.splitlines(), out


def test_plan_without_a_head_reports_restore_and_trainability(seed004_adam, capfd):
    prefix, _, _ = seed004_adam
    code, out, err = cli(capfd, "plan", "--model", prefix, "--trainable", "hidden3", "--json")
    assert code == 0, err
    p = json.loads(out)
    assert sorted(p["trainable"]) == ["hidden3/biases", "hidden3/weights"]
    status = {v["name"]: v["status"] for v in p["variables"]}
    assert status["hidden1/weights"] == "restored" and status["output/weights"] == "restored"
    assert status["hidden1/weights/Adam"] == "reinitialized"  # old optimizer state is not restored by default
    code, _, err = cli(capfd, "retrain", "--model", prefix, "--data", "x.npz", "--out", "o")
    assert code == 2 and "nothing to train: give --head" in err


def test_unexpected_errors_are_one_line_and_debug_adds_the_traceback(seed004, capfd, monkeypatch):
    import graphsurgeon._src.inspect as inspect_mod

    def boom(*a, **k):
        raise KeyError("The name 'x' refers to an Operation not in the graph.")

    monkeypatch.setattr(inspect_mod, "inspect", boom)
    prefix, _, _ = seed004
    code, out, err = cli(capfd, "inspect", prefix)
    assert code == 2 and out == ""
    assert err.splitlines() == ["graphsurgeon inspect: error: unexpected KeyError: \"The name 'x' refers to an "
                                "Operation not in the graph.\" (this is a graphsurgeon bug; --debug shows the traceback)"]
    code, _, err = cli(capfd, "inspect", prefix, "--debug")
    assert code == 2 and "Traceback (most recent call last)" in err and err.strip().endswith("--debug shows the traceback)")


def test_tensorflow_errors_name_the_op(capfd, monkeypatch, seed004):
    import graphsurgeon._src.inspect as inspect_mod

    def boom(*a, **k):
        g = tf.Graph()
        with g.as_default():
            op = tf1.placeholder(tf.float32, name="some/op").op
        raise tf.errors.InvalidArgumentError(None, op, "Input to reshape is a tensor with 3 values\nmore")

    monkeypatch.setattr(inspect_mod, "inspect", boom)
    code, _, err = cli(capfd, "inspect", seed004[0])
    assert err == "graphsurgeon inspect: error: op 'some/op' (Placeholder) failed: Input to reshape is a tensor " \
                  "with 3 values (--debug shows the traceback)\n"


def test_noise_filter():
    assert terminal.is_noise(b"I0000 00:00:1795846729.085037    2483 cudart_stub.cc:31] Could not find cuda drivers")
    assert terminal.is_noise(b"E0000 00:00:1795846859.403718    2675 cuda_platform.cc:52] failed call to cuInit: X")
    assert terminal.is_noise(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not terminal.is_noise(b"graphsurgeon plan: error: no op 'x' in the graph")
    assert not terminal.is_noise(b"F0000 00:00:1795846859.403718    2675 x.cc:1] Check failed: fatal")


def test_a_real_process_prints_only_its_own_lines(seed004, tmp_path):
    """Without TF_CPP_MIN_LOG_LEVEL, as a user runs it: a failure is one line, a success prints no stderr."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT
    bad = subprocess.run([sys.executable, "-m", "graphsurgeon", "plan", "--model", seed004[0], "--head", "nope:2"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("graphsurgeon plan: error: ") and "no op 'nope' in the graph" in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "graphsurgeon", "plan", "--model", seed004[0], "--head",
                         "hidden2/Relu:2"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    loud = subprocess.run([sys.executable, "-m", "graphsurgeon", "plan", "--model", seed004[0], "--head",
                           "hidden2/Relu:2", "--verbose"], capture_output=True, text=True, env=env)
    assert loud.returncode == 0 and ("cuda" in loud.stderr.lower() or "absl" in loud.stderr)
