"""restore(): every accepted path form, partial restore, renames, and every error path."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

import graphsurgeon as gs

from helpers import ckpt, tree_hash
from legacy_models import fully_connected

tf1 = tf.compat.v1
SEED004_VARS = sorted(f"{l}/{p}" for l in ("hidden1", "hidden2", "hidden3", "output") for p in ("weights", "biases"))


def test_restore_prefix_values_equal_checkpoint_bit_for_bit(seed004):
    prefix, x, _ = seed004
    before = tree_hash(prefix)
    with gs.restore(prefix) as m:
        assert sorted(m.variables) == sorted(SEED004_VARS + ["global_step"])
        vals = m.values()
        for n, v in ckpt(prefix).items():
            assert vals[n].tobytes() == v.tobytes(), n
        assert m.inputs[:1] == ["X:0"]
        assert m.outputs[0] == "output/BiasAdd:0"  # the logits fed to the cross-entropy
        assert m.run("output/BiasAdd", {"X": x[:3]}).shape == (3, 5)
    assert tree_hash(prefix) == before


@pytest.mark.parametrize("form", ["dir", "meta", "prefix"])
def test_path_forms(seed004, form):
    prefix, _, _ = seed004
    path = {"dir": os.path.dirname(prefix), "meta": prefix + ".meta", "prefix": prefix}[form]
    with gs.restore(path) as m:
        assert m.source.prefix == prefix
        assert set(m.status.values()) == {"restored"}


def test_checkpoint_state_file_with_foreign_absolute_path(seed004, tmp_path):
    prefix, _, _ = seed004
    d = tmp_path / "copied"
    shutil.copytree(os.path.dirname(prefix), d)
    (d / "checkpoint").write_text(f'model_checkpoint_path: "/home/someone/run7/{os.path.basename(prefix)}"\n')
    with gs.restore(str(d)) as m:
        assert m.source.prefix == str(d / os.path.basename(prefix))


def test_frozen_graph_pb_and_pbtxt(seed004, tmp_path):
    prefix, x, _ = seed004
    with gs.restore(prefix) as m:
        expected = m.run("output/BiasAdd", {"X": x[:4]})
        frozen = tf1.graph_util.convert_variables_to_constants(m.session, m.graph.as_graph_def(), ["output/BiasAdd"])
    pb = tmp_path / "frozen.pb"
    pb.write_bytes(frozen.SerializeToString())
    tf.io.write_graph(frozen, str(tmp_path), "frozen.pbtxt", as_text=True)
    for p in (pb, tmp_path / "frozen.pbtxt"):
        with gs.restore(str(p)) as f:
            assert f.variables == {}
            # Constant weights take another kernel path (oneDNN, constant folding): float order differs.
            np.testing.assert_allclose(f.run("output/BiasAdd", {"X": x[:4]}), expected, rtol=0, atol=1e-5)


def test_saved_model_with_tags(seed004, tmp_path):
    prefix, x, _ = seed004
    export_dir = str(tmp_path / "sm")
    with gs.restore(prefix) as m:
        expected = m.run("output/BiasAdd", {"X": x[:4]})
        with m.graph.as_default():
            b = tf1.saved_model.Builder(export_dir)
            b.add_meta_graph_and_variables(m.session, ["train", "gpu"])
            b.save()
    with gs.restore(export_dir, tags=["train", "gpu"]) as s:
        np.testing.assert_array_equal(s.run("output/BiasAdd", {"X": x[:4]}), expected)
    with pytest.raises(gs.CheckpointNotFoundError, match=r"no meta graph with tags \['serve'\]"):
        gs.restore(export_dir)


def test_restore_by_name_into_a_python_graph_with_rename(seed004):
    """Checkpoint without meta graph: build the graph in Python under a new scope."""
    prefix, x, _ = seed004
    g = tf.Graph()
    with g.as_default():
        X = tf1.placeholder(tf.float32, (None, 500))
        with tf1.variable_scope("encoder"):
            h = fully_connected(X, 300, "hidden1")
            h = fully_connected(h, 100, "hidden2")
        fully_connected(h, 7, "classifier", activation=None)
    rules = gs.Rules(map_scope=[("hidden1/", "encoder/hidden1/"), ("hidden2/", "encoder/hidden2/")], drop=["output"])
    m = gs.restore(prefix, graph=g, rules=rules, allow_missing=True)
    assert m.status == {"encoder/hidden1/weights": "restored", "encoder/hidden1/biases": "restored",
                        "encoder/hidden2/weights": "restored", "encoder/hidden2/biases": "restored",
                        "classifier/weights": "missing", "classifier/biases": "missing"}
    vals = ckpt(prefix)
    assert m.values(["encoder/hidden2/weights"])["encoder/hidden2/weights"].tobytes() == vals["hidden2/weights"].tobytes()
    assert m.plan.restore_map()["encoder/hidden1/weights"] == "hidden1/weights"
    # Values travel by feed: the GraphDef holds no constant of the weights' size.
    assert all(n.op != "Const" or n.attr["value"].tensor.ByteSize() < 1000 for n in g.as_graph_def().node)
    m.close()


def test_shape_mismatch_is_reported_before_anything_runs(seed004):
    prefix, _, _ = seed004
    g = tf.Graph()
    with g.as_default():
        X = tf1.placeholder(tf.float32, (None, 500))
        h = fully_connected(fully_connected(fully_connected(X, 300, "hidden1"), 100, "hidden2"), 50, "hidden3")
        fully_connected(h, 2, "output", activation=None)  # the head swapped in place: 2 classes, old name
    m = gs.restore(prefix, graph=g, values=False)
    assert m.session is None
    assert m.plan.by_status("shape_mismatch") == ["output/biases", "output/weights"]
    with pytest.raises(gs.PlanError, match=r"output/weights: graph shape \[50, 2\] but checkpoint 'output/weights' has \[50, 5\]"):
        gs.restore(prefix, graph=g)
    m = gs.restore(prefix, graph=g, rules=gs.Rules(drop=["output"]))
    assert m.status["output/weights"] == "reinitialized"
    m.close()


def test_missing_variables_raise_unless_allowed(seed004):
    prefix, _, _ = seed004
    g = tf.Graph()
    with g.as_default():
        X = tf1.placeholder(tf.float32, (None, 500))
        fully_connected(fully_connected(X, 300, "hidden1"), 10, "extra")
    with pytest.raises(gs.PlanError, match="extra/weights: not in the checkpoint"):
        gs.restore(prefix, graph=g)
    m = gs.restore(prefix, graph=g, allow_missing=True)
    assert m.status["extra/weights"] == "missing" and m.status["hidden1/weights"] == "restored"
    m.close()


def test_optimizer_state_restored_only_when_asked(seed004_adam):
    prefix, _, _ = seed004_adam
    with gs.restore(prefix, restore_optimizer=False) as m:
        slots = sorted(n for n, s in m.status.items() if s == "reinitialized")
        assert "beta1_power" in slots and "global_step" in slots and "hidden1/weights/Adam" in slots
        assert m.values(["global_step"])["global_step"] == 0
    with gs.restore(prefix) as m:
        assert m.values(["global_step"])["global_step"] == 5


def test_pruning_drops_old_head_training_ops_and_notebook_copies(tmp_path):
    from legacy_models import seed004_mlp

    prefix, _, _ = seed004_mlp(str(tmp_path), extra_copy=True, optimizer="adam")
    with gs.restore(prefix, outputs=["hidden2/Relu"]) as m:
        assert sorted(m.variables) == ["hidden1/biases", "hidden1/weights", "hidden2/biases", "hidden2/weights"]
        assert not [o for o in m.graph.get_operations() if o.type.startswith(("Apply", "ResourceApply"))]
        assert "output/weights" in m.plan.by_status("dropped") and "hidden1_1/weights" in m.plan.by_status("dropped")


# ---- error paths ---------------------------------------------------------------------------

def test_missing_path_names_what_is_there(seed004):
    prefix, _, _ = seed004
    with pytest.raises(gs.CheckpointNotFoundError) as e:
        gs.restore(prefix + "-typo")
    assert os.path.basename(prefix) in str(e.value) and "-typo" in str(e.value)


def test_missing_path_with_a_trailing_slash_is_said_as_a_directory(seed004, tmp_path):
    """'tasks/' names a directory: the message said it looked for 'tasks/.index, tasks/.meta'."""
    prefix, _, _ = seed004
    (tmp_path / "here.npz").write_bytes(b"")
    for path, why in ((tmp_path / "tasks", "no such directory"),
                      (tmp_path / "here.npz", f"{tmp_path / 'here.npz'} is a file, not a directory: drop the trailing /"),
                      (prefix, f"{prefix} is a checkpoint prefix, not a directory: drop the trailing /")):
        with pytest.raises(gs.CheckpointNotFoundError) as e:
            gs.restore(f"{path}/")
        assert str(e.value).startswith(f"no checkpoint, graph or SavedModel at {path}/ ({why}); "
                                       f"{os.path.dirname(path)} holds "), str(e.value)
        assert "/.index" not in str(e.value)


def test_directory_where_prefix_meant(seed004, tmp_path):
    prefix, _, _ = seed004
    d = tmp_path / "two"
    d.mkdir()
    for suffix in (".index", ".data-00000-of-00001", ".meta"):
        for k in (1, 2):
            shutil.copy(prefix + suffix, d / f"model.ckpt-{k}{suffix}")
    with pytest.raises(gs.WrongPathKindError, match="is a directory with no 'checkpoint' state file.*model.ckpt-1, model.ckpt-2"):
        gs.restore(str(d))


@pytest.mark.parametrize("suffix,kind", [(".index", "index file"), (".data-00000-of-00001", "data shard")])
def test_file_of_a_prefix_where_prefix_meant(seed004, suffix, kind):
    prefix, _, _ = seed004
    with pytest.raises(gs.WrongPathKindError, match=f"is the {kind}.*pass the prefix" if kind == "index file" else "data shard of checkpoint prefix"):
        gs.restore(prefix + suffix)


def test_saved_model_pb_where_directory_meant(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(gs.WrongPathKindError, match="pass its directory"):
        gs.restore(str(tmp_path / "saved_model.pb"))


def test_no_meta_graph_says_how_to_proceed(seed004, tmp_path):
    prefix, _, _ = seed004
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(prefix + suffix, str(tmp_path / "m") + suffix)
    with pytest.raises(gs.NoMetaGraphError, match=r"call graphsurgeon\.restore\(prefix, graph=your_graph\)"):
        gs.restore(str(tmp_path / "m"))


def test_unregistered_op_is_named(seed004, tmp_path):
    prefix, _, _ = seed004
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(open(prefix + ".meta", "rb").read())
    node = next(n for n in meta.graph_def.node if n.name == "hidden2/Relu")
    node.op = "FancyActivation"
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(prefix + suffix, str(tmp_path / "m") + suffix)
    (tmp_path / "m.meta").write_bytes(meta.SerializeToString())
    with pytest.raises(gs.UnregisteredOpError, match=r"op type 'FancyActivation' \(used by hidden2/Relu\)"):
        gs.restore(str(tmp_path / "m"))


@pytest.mark.parametrize("which", [".index", ".data-00000-of-00001"])
def test_truncated_checkpoint_files(seed004, tmp_path, which):
    prefix, _, _ = seed004
    for suffix in (".index", ".data-00000-of-00001", ".meta"):
        shutil.copy(prefix + suffix, str(tmp_path / "m") + suffix)
    p = str(tmp_path / "m") + which
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    before = tree_hash(str(tmp_path / "m"))
    with pytest.raises(gs.CorruptCheckpointError) as e:
        gs.restore(str(tmp_path / "m"))
    assert p in str(e.value) and "truncated" in str(e.value)
    assert tree_hash(str(tmp_path / "m")) == before


def test_unknown_tensor_lists_close_names(seed004):
    prefix, _, _ = seed004
    with gs.restore(prefix) as m:
        with pytest.raises(gs.TensorNotFoundError, match="hidden2/Relu"):
            m.tensor("hidden2/Rellu")


def test_two_ops_that_touch_files_are_counted_in_the_plural(tmp_path):
    """It said 'holds 1 op(s) that touch files or run Python' whatever the count."""
    prefix = _graph_with(tmp_path, lambda x, pre: [tf.io.write_file(str(tmp_path / f"{n}.txt"), "x", name=n)
                                                   for n in ("a", "b")])
    with pytest.raises(gs.UnsafeGraphError, match=r"holds 2 ops that touch files or run Python: a \(WriteFile\), "
                                                  r"b \(WriteFile\);.*or cut the graph below them$"):
        gs.restore(prefix, outputs=["features"])


def _graph_with(tmp_path, extra):
    """A small model ``x`` -> ``features``; ``extra(x, features_pre)`` adds ops and returns control deps."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        w = tf1.get_variable("w", [4, 3], use_resource=False, initializer=tf1.ones_initializer())
        pre = tf.matmul(x, w)
        deps = extra(x, pre)
        with tf.control_dependencies(deps):
            tf.identity(pre, name="features")
        tf.nn.relu(pre, name="clean")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver([w]).save(s, str(tmp_path / "m.ckpt"))


def test_graphs_that_touch_files_are_not_run_unless_allowed(tmp_path, capfd):
    target = tmp_path / "written.txt"
    prefix = _graph_with(tmp_path, lambda x, pre: [tf.io.write_file(str(target), "pwned", name="sneaky")])
    with pytest.raises(gs.UnsafeGraphError, match=r"holds 1 op that touches files or runs Python: sneaky "
                                                  r"\(WriteFile\);.*allow_unsafe_ops=True, or cut the graph below it$"):
        gs.restore(prefix, outputs=["features"])
    assert not target.exists()
    with gs.restore(prefix, outputs=["clean"]) as m:  # pruned away below the cut: nothing unsafe runs
        assert m.unsafe_ops == []
    with gs.restore(prefix, outputs=["features"], allow_unsafe_ops=True) as m:
        m.run("features", {"x": np.ones((1, 4), np.float32)})
    assert target.read_text() == "pwned"
    from graphsurgeon._src.cli import main

    capfd.readouterr()
    assert main(["inspect", prefix]) == 0
    assert "ops that touch files or run Python (1; restore refuses to run them without --allow-unsafe-ops): " \
           "sneaky (WriteFile)" in capfd.readouterr().out


def test_a_save_op_dressed_as_a_saver_and_python_callbacks_are_caught(tmp_path):
    def extra(x, pre):
        fake = tf.raw_ops.SaveV2(prefix=tf.constant(str(tmp_path / "leak"), name="save_9/Const"),
                                 tensor_names=["x"], shape_and_slices=[""], tensors=[x], name="save_9/SaveV2")
        cb = tf1.py_func(lambda a: a, [pre], tf.float32, name="callback")
        return [fake, cb]

    prefix = _graph_with(tmp_path, extra)
    with gs.restore(prefix, outputs=["features"], values=False) as m:
        assert m.unsafe_ops == [("callback", "PyFunc"), ("save_9/SaveV2", "SaveV2")]
    with gs.restore(prefix, values=False) as full:  # the Saver's own save/restore ops are not listed
        assert ("save/SaveV2", "SaveV2") not in full.unsafe_ops and ("save_9/SaveV2", "SaveV2") in full.unsafe_ops


def test_ops_inside_functions_are_scanned(tmp_path):
    @tf.function
    def peek(t):
        tf.io.read_file("/etc/hostname")
        return t * 2.0

    prefix = _graph_with(tmp_path, lambda x, pre: [peek(pre)])
    from graphsurgeon._src import safety
    from graphsurgeon._src.storage.checkpoint import read_meta_graph
    from graphsurgeon._src.storage.paths import resolve

    found = safety.unsafe_ops(read_meta_graph(resolve(prefix)))
    assert [op for _, op in found] == ["ReadFile"] and found[0][0].startswith("__inference_peek")
