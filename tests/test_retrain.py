"""Seed 004: restore, lock hidden1/hidden2, replace the output with 2 classes, train."""
import errno
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src.retrain import run
from graphsurgeon._src.storage import staging
from graphsurgeon._src.storage.datasets import Dataset
from graphsurgeon._src.storage.writer import write_json

from helpers import ckpt, half_checkpoint, tree_hash

tf1 = tf.compat.v1


def two_class_data(x):
    y = (x[:, 7] > 0).astype(np.int64)
    split = np.array(["train"] * 200 + ["validation"] * 28 + ["test"] * (len(y) - 228))
    return Dataset(x, y, split, [str(i) for i in range(len(y))])


@pytest.fixture(scope="module")
def retrained(seed004, tmp_path_factory):
    prefix, x, _ = seed004
    out = str(tmp_path_factory.mktemp("retrained"))
    before = tree_hash(prefix)
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", trainable=["hidden3"], lr_mult=["hidden3=0.5"],
                           epochs=3, batch_size=32, lr=0.05)
    res = gs.retrain(cfg, two_class_data(x), out, progress=False)
    assert tree_hash(prefix) == before  # the source is never touched
    return prefix, x, out, res


def test_locked_layers_change_by_exactly_zero(retrained):
    prefix, _, out, res = retrained
    src, new = ckpt(prefix), ckpt(os.path.join(out, "checkpoint", "model.ckpt"))
    for n in ("hidden1/weights", "hidden1/biases", "hidden2/weights", "hidden2/biases"):
        assert new[n].tobytes() == src[n].tobytes(), n
    assert np.abs(new["hidden3/weights"] - src["hidden3/weights"]).max() > 0
    assert sorted(new) == ["head/logits/bias", "head/logits/kernel", "hidden1/biases", "hidden1/weights",
                           "hidden2/biases", "hidden2/weights", "hidden3/biases", "hidden3/weights"]


def updated_variables(graph) -> list[str]:
    """The variables the train ops update: the first input of every Apply* op they hold."""
    out = set()
    for op in graph.get_operations():
        if op.name.startswith("graphsurgeon/train_stage") and "Apply" in op.type:
            v = op.inputs[0]
            out.add((v.op.inputs[0].op.name if v.op.type == "ReadVariableOp" else v.op.name))
    return sorted(out)


def test_plan_and_var_list(retrained):
    _, _, out, res = retrained
    p = res.plan
    # what compute_gradients got as var_list is exactly what the plan says trains
    assert updated_variables(res.setup.model.graph) == p.trainable
    assert p.trainable == ["head/logits/bias", "head/logits/kernel", "hidden3/biases", "hidden3/weights"]
    assert p.by_status("new") == ["head/logits/bias", "head/logits/kernel"]
    assert p.by_status("dropped") == ["global_step", "output/biases", "output/weights"]
    assert p.by_status("restored") == ["hidden1/biases", "hidden1/weights", "hidden2/biases", "hidden2/weights",
                                       "hidden3/biases", "hidden3/weights"]
    assert {v.name: v.lr_mult for v in p.variables if v.trainable}["hidden3/weights"] == 0.5
    saved = json.load(open(os.path.join(out, "plan.json")))
    assert saved["trainable"] == p.trainable


def test_the_new_head_learned(retrained):
    _, _, _, res = retrained
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.metrics["test"]["accuracy"] > 0.6


def test_saved_result_restores_and_computes_the_same_outputs(retrained):
    _, x, out, res = retrained
    setup = res.setup
    expected = setup.model.run(setup.logits, {setup.input: x[:16]})
    for path in (os.path.join(out, "checkpoint"), os.path.join(out, "saved_model")):
        with gs.restore(path) as m:
            assert m.inputs == ["X:0"] and m.outputs[0] == setup.logits.name
            np.testing.assert_array_equal(m.run(m.outputs[0], {"X": x[:16]}), expected)


def test_saved_model_loads_with_tf2_api(retrained):
    _, x, out, res = retrained
    loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
    fn = loaded.signatures["serving_default"]
    got = fn(inputs=tf.constant(x[:16]))
    expected = res.setup.model.run(res.setup.probabilities, {res.setup.input: x[:16]})
    np.testing.assert_allclose(got["probabilities"].numpy(), expected, rtol=0, atol=1e-6)


def test_retrain_writes_the_picture_and_the_graph_for_tensorboard(retrained):
    _, _, out, _ = retrained
    assert 'label="hidden3\\ntrainable\\nlr x0.5\\ncut: hidden3/Relu"' in open(os.path.join(out, "surgery.dot")).read()
    graphs = []
    for f in os.listdir(os.path.join(out, "logs")):
        for e in tf1.train.summary_iterator(os.path.join(out, "logs", f)):
            if e.graph_def:
                graphs.append(tf1.GraphDef.FromString(e.graph_def))
    assert len(graphs) == 1  # what TensorBoard's graph tab reads
    names = {n.name for n in graphs[0].node}
    assert {"head/logits/MatMul", "hidden3/Relu", "graphsurgeon/loss"} <= names


def test_tensorboard_scalars_written(retrained):
    _, _, out, _ = retrained
    files = os.listdir(os.path.join(out, "logs"))
    assert any(f.startswith("events.out.tfevents") for f in files)
    tags = set()
    for f in files:
        for e in tf1.train.summary_iterator(os.path.join(out, "logs", f)):
            tags |= {v.tag for v in e.summary.value}
    assert {"train/loss", "train/accuracy", "validation/loss", "validation/accuracy"} <= tags


def test_progressive_unfreezing(seed004, tmp_path):
    """Epoch 0 trains the head only; from epoch 1, hidden3 joins at lr x0.1."""
    prefix, x, _ = seed004
    data = two_class_data(x)
    base = dict(model=prefix, head="hidden3/Relu:2", batch_size=64, lr=0.05)
    gs.retrain(gs.RetrainConfig(**base, epochs=1, unfreeze=["1:hidden3=0.1"]), data, str(tmp_path / "a"), progress=False)
    assert ckpt(str(tmp_path / "a/checkpoint/model.ckpt"))["hidden3/weights"].tobytes() == ckpt(prefix)["hidden3/weights"].tobytes()
    r2 = gs.retrain(gs.RetrainConfig(**base, epochs=2, unfreeze=["1:hidden3=0.1"]), data, str(tmp_path / "b"), progress=False)
    new = ckpt(str(tmp_path / "b/checkpoint/model.ckpt"))
    assert new["hidden3/weights"].tobytes() != ckpt(prefix)["hidden3/weights"].tobytes()
    assert new["hidden2/weights"].tobytes() == ckpt(prefix)["hidden2/weights"].tobytes()
    assert r2.plan.trainable == ["head/logits/bias", "head/logits/kernel", "hidden3/biases", "hidden3/weights"]


def test_reinitialize_in_place(seed004):
    prefix, _, _ = seed004
    with gs.restore(prefix) as m:
        old = m.values(["hidden3/weights", "hidden2/weights"])
        assert gs.reinitialize(m, ["hidden3"], seed=1) == ["hidden3/biases", "hidden3/weights"]
        new = m.values(["hidden3/weights", "hidden2/weights", "hidden3/biases"])
        assert not np.array_equal(new["hidden3/weights"], old["hidden3/weights"])
        assert new["hidden2/weights"].tobytes() == old["hidden2/weights"].tobytes()
        assert not new["hidden3/biases"].any()
        assert m.status["hidden3/weights"] == "reinitialized"
        n_ops = len(m.graph.get_operations())
        gs.reinitialize(m, ["hidden3"], seed=2)
        assert len(m.graph.get_operations()) == n_ops  # fed through the initial values: no new ops


def test_extra_placeholders_need_feeds_and_become_defaults(tmp_path):
    from legacy_models import seed004_mlp

    prefix, x, _ = seed004_mlp(str(tmp_path / "src"), keep_prob=0.5)
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", epochs=1)
    with pytest.raises(gs.ConfigError, match="keep_prob"):
        gs.plan(cfg)
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", epochs=1, feeds={"keep_prob": 1.0},
                           train_feeds={"keep_prob": "0.5"})
    res = gs.retrain(cfg, two_class_data(x), str(tmp_path / "out"), progress=False)
    with gs.restore(str(tmp_path / "out/saved_model")) as m:
        assert m.inputs == ["X:0"]
        a = m.run(m.outputs[0], {"X": x[:8]})
        b = m.run(m.outputs[0], {"X": x[:8]})
        np.testing.assert_array_equal(a, b)  # keep_prob defaults to 1.0: deterministic
        np.testing.assert_array_equal(a, res.setup.model.run(res.setup.logits, {res.setup.input: x[:8], "keep_prob": 1.0}))


def test_toml_plan_file(seed004, tmp_path):
    prefix, _, _ = seed004
    f = tmp_path / "plan.toml"
    f.write_text(f'''model = "{prefix}"
head = "hidden3/Relu:2"
trainable = ["hidden3"]
epochs = 1
[[unfreeze]]
epoch = 1
scopes = ["hidden2"]
lr_mult = 0.1
''')
    cfg = gs.RetrainConfig.from_toml(str(f), epochs=4)
    assert cfg.epochs == 4 and cfg.unfreeze[0]["scopes"] == ["hidden2"]
    p = gs.plan(cfg)
    assert "hidden2/weights" in p.trainable and {v.name: v.lr_mult for v in p.variables}["hidden2/weights"] == 0.1
    f.write_text('modle = "x"\n')
    with pytest.raises(gs.ConfigError, match="unknown key.*modle"):
        gs.RetrainConfig.from_toml(str(f))


def test_adam_slots_are_new_and_restored_values_untouched(seed004_adam, tmp_path):
    """An Adam-trained checkpoint retrained with Adam: the old slots are dropped, new slots are
    initialized without touching restored values, and the locked layers change by exactly 0."""
    prefix, x, _ = seed004_adam
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", trainable=["hidden3"], optimizer="adam",
                           epochs=1, lr=0.01)
    res = gs.retrain(cfg, two_class_data(x), str(tmp_path / "out"), progress=False)
    assert "hidden1/weights/Adam" in res.plan.by_status("dropped") and "beta1_power" in res.plan.by_status("dropped")
    src, new = ckpt(prefix), ckpt(str(tmp_path / "out/checkpoint/model.ckpt"))
    assert not any("Adam" in n or "power" in n for n in new)  # no optimizer state exported
    for n in ("hidden1/weights", "hidden1/biases", "hidden2/weights", "hidden2/biases"):
        assert new[n].tobytes() == src[n].tobytes(), n
    assert new["hidden3/weights"].tobytes() != src["hidden3/weights"].tobytes()


def test_lr_multiplier_zero_freezes_and_reinit_starts_fresh(seed004, tmp_path):
    """hidden3 is listed as trainable but at lr x0 (so it must not move); hidden2 is re-initialized
    in place and stays frozen (so it must hold its fresh values, not the checkpoint's)."""
    prefix, x, _ = seed004
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", trainable=["hidden3"], lr_mult=["hidden3=0"],
                           reinit=["hidden2"], epochs=1, lr=0.1)
    res = gs.retrain(cfg, two_class_data(x), str(tmp_path / "out"), progress=False)
    assert res.plan.by_status("reinitialized") == ["hidden2/biases", "hidden2/weights"]
    src, new = ckpt(prefix), ckpt(str(tmp_path / "out/checkpoint/model.ckpt"))
    assert new["hidden3/weights"].tobytes() == src["hidden3/weights"].tobytes()
    assert new["hidden2/weights"].tobytes() != src["hidden2/weights"].tobytes()
    assert not new["hidden2/biases"].any()
    assert new["head/logits/kernel"].shape == (50, 2)


def test_unfreezing_keeps_the_optimizer_state(seed004, tmp_path):
    """With Adam, the head's moments carry over when hidden3 joins: one pair of slots per variable."""
    prefix, x, _ = seed004
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", optimizer="adam", epochs=2,
                           unfreeze=["1:hidden3=0.1"])
    res = gs.retrain(cfg, two_class_data(x), str(tmp_path / "o"), progress=False)
    with res.setup.model.graph.as_default():
        names = [v.op.name for v in tf1.global_variables()]
    head_slots = [n for n in names if n.startswith("graphsurgeon/") and "head/logits/kernel" in n]
    assert len(head_slots) == 2, head_slots  # Adam's m and v, created once for both stages
    assert len([n for n in names if "hidden3/weights" in n and n != "hidden3/weights"]) == 2


def test_reinitialize_zeroes_optimizer_slots_under_the_scope(seed004_adam):
    """Restored with its Adam state, hidden3 re-initialized: the kernel gets fresh Glorot values,
    its Adam slots become zeros (a fresh optimizer), never random draws."""
    prefix, _, _ = seed004_adam
    with gs.restore(prefix, restore_optimizer=True) as m:
        names = gs.reinitialize(m, ["hidden3"], seed=1)
        assert names == ["hidden3/biases", "hidden3/biases/Adam", "hidden3/biases/Adam_1", "hidden3/weights",
                         "hidden3/weights/Adam", "hidden3/weights/Adam_1"]
        v = m.values(names)
    assert all(not v[n].any() for n in names if "/Adam" in n)
    limit = np.sqrt(6.0 / (100 + 50))
    assert v["hidden3/weights"].std() > 0 and np.abs(v["hidden3/weights"]).max() <= limit


def test_dtype_mismatch_is_reported_and_needs_allow_cast(seed004, tmp_path):
    """A float16 checkpoint value for a float32 variable: the plan says so, restore refuses unless asked."""
    prefix, x, _ = seed004
    src = ckpt(prefix)
    half = half_checkpoint(prefix, tmp_path / "half.ckpt")
    p = gs.plan(gs.RetrainConfig(model=half, head="hidden3/Relu:2"))
    row = {v.name: v for v in p.variables}["hidden1/weights"]
    assert row.cast and row.checkpoint_dtype == "float16" and p.to_dict()["counts"]["cast"] == 1
    assert "hidden1/weights        restored       no    [500, 300]  (cast from float16)" in p.format_text()
    with pytest.raises(gs.PlanError, match="hidden1/weights: the checkpoint holds float16 but the graph's variable is "
                                           "float32 .pass allow_cast=True to cast it"):
        gs.restore(half, outputs=["hidden3/Relu"])
    with gs.restore(half, outputs=["hidden3/Relu"], allow_cast=True) as m:
        got = m.values(["hidden1/weights"])["hidden1/weights"]
    assert got.dtype == np.float32 and got.tobytes() == src["hidden1/weights"].astype(np.float16).astype(np.float32).tobytes()


def test_logdir_is_not_staged_a_failed_run_keeps_its_curves(retrained, tmp_path, monkeypatch):
    prefix, x, _, _ = retrained
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", trainable=["hidden3"], epochs=1, batch_size=32, lr=0.05)

    def full_disk(path, obj):
        if path.endswith("metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return write_json(path, obj)

    monkeypatch.setattr(run, "write_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        gs.retrain(cfg, two_class_data(x), str(tmp_path / "out"), logdir=str(tmp_path / "tb"), progress=False)
    assert not (tmp_path / "out").exists()  # out_dir staged: nothing left
    events = [f for _, _, fs in os.walk(tmp_path / "tb") for f in fs if f.startswith("events.out.tfevents")]
    assert events  # logdir written while training, kept


def test_settings_are_checked_before_an_existing_out(retrained, tmp_path):
    """An existing --out was reported before --trainable or --head: a user fixed one mistake, then met the next."""
    prefix, x, first, _ = retrained
    out = tmp_path / "out"
    shutil.copytree(first, out)
    before = tree_hash(str(out))
    for kw, error, said in ((dict(head="hidden3/Relu:2", trainable=["hiden3"]), gs.PatternError,
                             "trainable: pattern 'hiden3' matches no variable; closest scopes: hidden3"),
                            (dict(head="hidden3/Relu"), gs.ConfigError, "head 'hidden3/Relu': expected CUT:N_CLASSES"),
                            (dict(head="hidden9/Relu:2"), gs.GraphSurgeonError, "'hidden9/Relu'"),
                            (dict(head="hidden3/Relu:2", epochs=0), gs.ConfigError, "epochs=0: expected an integer")):
        cfg = gs.RetrainConfig(model=prefix, **{"epochs": 1, **kw})
        with pytest.raises(error) as e:
            gs.retrain(cfg, two_class_data(x), str(out), progress=False)
        assert said in str(e.value) and "exists" not in str(e.value), str(e.value)
    with pytest.raises(gs.ConfigError, match="checkpoint exists; pass overwrite=True"):  # with the settings right
        gs.retrain(gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", epochs=1), two_class_data(x), str(out),
                   progress=False)
    assert tree_hash(str(out)) == before and os.listdir(tmp_path) == ["out"]


def test_a_failed_run_leaves_an_existing_out_exactly_as_it_was(retrained, tmp_path, monkeypatch):
    prefix, x, first, _ = retrained
    out = tmp_path / "out"
    shutil.copytree(first, out)
    (out / "notes.txt").write_text("the user's own file")
    before = tree_hash(str(out))
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", trainable=["hidden3"], epochs=1, batch_size=32, lr=0.05)

    def full_disk(path, obj):  # the last write of a run fails: everything else is written by then
        if path.endswith("metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return write_json(path, obj)

    monkeypatch.setattr(run, "write_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        gs.retrain(cfg, two_class_data(x), str(out), overwrite=True, progress=False)
    assert tree_hash(str(out)) == before and os.listdir(tmp_path) == ["out"]  # no staging directory left
    with pytest.raises(gs.ConfigError, match="checkpoint exists; pass overwrite=True"):  # refused before training
        gs.retrain(cfg, two_class_data(x), str(out), progress=False)
    monkeypatch.undo()
    res = gs.retrain(cfg, two_class_data(x), str(out), overwrite=True, progress=False)
    after = tree_hash(str(out))
    assert after["notes.txt"] == before["notes.txt"] and after["metrics.json"] != before["metrics.json"]
    assert len([n for n in after if n.startswith("logs/")]) == 1  # the replaced run's events are gone
    assert res.export.checkpoint == os.path.join(str(out), "checkpoint", "model.ckpt")
    assert os.listdir(tmp_path) == ["out"]


def test_publish_undoes_its_moves_when_one_fails(tmp_path, monkeypatch):
    final, staged = tmp_path / "final", tmp_path / "staged"
    for d, names in ((final, ("a", "b", "keep")), (staged, ("a", "b", "c"))):
        d.mkdir()
        for n in names:
            (d / n).write_text(f"{d.name} {n}")
    before, new = tree_hash(str(final)), tree_hash(str(staged))
    calls, real_replace = [], os.replace

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 4:  # both old entries moved aside, one new one moved in
            raise OSError(errno.EIO, "I/O error", src)
        real_replace(src, dst)

    monkeypatch.setattr(staging.os, "replace", replace)
    with pytest.raises(OSError, match="I/O error"):
        staging.publish(str(staged), str(final), ["a", "b"], str(tmp_path / "aside"))
    monkeypatch.undo()
    assert tree_hash(str(final)) == before and tree_hash(str(staged)) == new
    staging.publish(str(staged), str(final), ["a", "b"], str(tmp_path / "aside2"))
    assert sorted(tree_hash(str(final))) == ["a", "b", "c", "keep"] and (final / "a").read_text() == "staged a"
