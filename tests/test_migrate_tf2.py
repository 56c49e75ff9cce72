"""TF2 object-based checkpoints in `migrate --from tf2` and `inspect`: what is not a variable
(the object graph, save_counter) is named apart, never counted as a variable, never left out in silence."""
import json

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src.migrate import migrate

from helpers import ckpt, cli

GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
KERNEL = "vars/dense.Skernel/.ATTRIBUTES/VARIABLE_VALUE"
STEP = "vars/step/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.fixture
def tf2_ckpt(tmp_path):
    """What ``tf.train.Checkpoint(vars=...).save`` writes: two variables, the object graph, save_counter."""
    variables = {"dense/kernel": tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="dense/kernel"),
                 "step": tf.Variable(np.int64(7), name="step")}
    path = tf.train.Checkpoint(vars=variables).save(str(tmp_path / "tf2" / "ckpt"))
    assert sorted(ckpt(path)) == sorted([GRAPH, COUNTER, KERNEL, STEP])
    return path


def test_from_tf2_names_the_object_graph_and_save_counter_it_leaves_out(tf2_ckpt, tmp_path, capfd):
    res = migrate(tf2_ckpt, str(tmp_path / "tf1" / "m"), from_format="tf2")
    assert sorted(ckpt(res.destination)) == ["dense/kernel", "step"]
    assert res.not_carried_over == [GRAPH, COUNTER] and res.dropped == []
    assert res.source_keys == {tf2_ckpt: {"dense/kernel": KERNEL, "step": STEP}}
    code, out, err = cli(capfd, "migrate", tf2_ckpt, tmp_path / "cli" / "m", "--from", "tf2")
    assert code == 0, err
    lines = out.splitlines()
    assert [l.split() for l in lines[1:3]] == [[KERNEL, "->", "dense/kernel"], [STEP, "->", "step"]]  # not "(kept)"
    assert lines[3] == (f"# not carried over from {tf2_ckpt}: 2 tensors that are not variables (a TF1 name-based "
                        "checkpoint has no object graph)")
    assert lines[4].split(None, 1) == [GRAPH, "(the object graph)"]
    assert lines[5].split(None, 1) == [COUNTER, "(tf.train.Checkpoint's save counter)"]
    assert lines[6].startswith(f"-- 2 tensors (2 not carried over) written to {tmp_path / 'cli' / 'm'}")
    code, out, err = cli(capfd, "migrate", tf2_ckpt, tmp_path / "j" / "m", "--from", "tf2", "--drop", "step",
                         "--dry-run", "--json")
    r = json.loads(out)
    assert r["not_carried_over"] == [GRAPH, COUNTER] and r["dropped"] == ["step"]
    assert r["source_keys"] == {tf2_ckpt: {"dense/kernel": KERNEL}}
    code, out, err = cli(capfd, "migrate", tf2_ckpt, tmp_path / "again" / "m", "--from", "tf2", "--to", "tf2",
                         "--dry-run")
    assert code == 0, err
    assert "2 tensors that are not variables (--to tf2 writes an object graph and save counter of its own)" in out
    assert f"{KERNEL}      (kept)" in out.splitlines()


def test_a_tf1_source_carries_everything_over(seed004, tmp_path, capfd):
    prefix, _, _ = seed004
    res = migrate(prefix, str(tmp_path / "m"), dry_run=True)
    assert res.not_carried_over == [] and res.source_keys == {} and res.joined is None
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "m", "--dry-run")
    assert code == 0 and "not carried over" not in out and "hidden1/weights      (kept)" in out


def test_inspect_shows_the_object_graph_apart_from_the_variables(tf2_ckpt, seed004, capfd):
    report = gs.inspect(tf2_ckpt)
    assert report["object_graph"] is True
    assert [v["name"] for v in report["variables"]] == [COUNTER, KERNEL, STEP]
    assert report["total_bytes"] == 8 + 24 + 8 and GRAPH not in report["scopes"]
    code, out, err = cli(capfd, "inspect", tf2_ckpt)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1:3] == ["object-based (TF2) checkpoint: object graph present (_CHECKPOINTABLE_OBJECT_GRAPH; not a "
                          "variable, not counted below)", "3 variables, 40 B"]
    assert GRAPH not in "\n".join(lines[2:])
    code, out, err = cli(capfd, "inspect", tf2_ckpt, "--json")
    assert json.loads(out)["object_graph"] is True
    prefix, _, _ = seed004
    assert gs.inspect(prefix)["object_graph"] is False
    code, out, err = cli(capfd, "inspect", prefix)
    assert "object graph" not in out


def test_a_tf2_saved_model_leaves_out_its_object_graph_alone_said_in_the_singular(tmp_path, capfd):
    module = tf.Module()
    module.w = tf.Variable(np.ones((2, 3), np.float32), name="dense/kernel")
    module.b = tf.Variable(np.zeros(3, np.float32), name="dense/bias")
    module.f = tf.function(lambda x: tf.matmul(x, module.w) + module.b, input_signature=[tf.TensorSpec([None, 2])])
    tf.saved_model.save(module, str(tmp_path / "sm"))
    code, out, err = cli(capfd, "migrate", tmp_path / "sm", tmp_path / "m", "--from", "tf2", "--drop", "dense/bias",
                         "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert f"# dropped from {tmp_path / 'sm'}: 1 tensor" in lines
    assert (f"# not carried over from {tmp_path / 'sm'}: 1 tensor that is not a variable (a TF1 name-based checkpoint "
            "has no object graph)") in lines
    assert lines[-1].startswith("-- 1 tensor (1 dropped, 1 not carried over); dry run, nothing written")


def _restores(prefix) -> bool:
    """Does ``tf.train.Checkpoint(vars=...)`` of the fixture's variables restore ``prefix`` with every
    object matched?"""
    variables = {"dense/kernel": tf.Variable(np.zeros((2, 3), np.float32)), "step": tf.Variable(np.int64(0))}
    tf.train.Checkpoint(vars=variables).restore(prefix).assert_consumed()
    return variables["dense/kernel"].numpy().tolist() == np.arange(6).reshape(2, 3).tolist()


def test_read_by_its_keys_a_tf2_checkpoint_copied_unchanged_keeps_its_object_graph(tf2_ckpt, tmp_path):
    other = tf.train.Checkpoint(vars={"x": tf.Variable(np.float32(1), name="x")}).save(str(tmp_path / "o" / "c"))
    res = migrate(tf2_ckpt, str(tmp_path / "m"), gs.Rules(merge=[(other, "other/")]))
    assert res.not_carried_over == [] and GRAPH in ckpt(res.destination)  # a merge leaves its keys as they are
    assert _restores(res.destination)


@pytest.mark.parametrize("rules", [gs.Rules(drop=["vars/step"]), gs.Rules(rename=[("^vars/", "v/")]),
                                   gs.Rules(cast=[("re:vars/dense.*", "float16")])], ids=["drop", "rename", "cast"])
def test_read_by_its_keys_a_changed_tf2_checkpoint_leaves_its_stale_object_graph_out(tf2_ckpt, tmp_path, rules):
    res = migrate(tf2_ckpt, str(tmp_path / "m"), rules)
    assert GRAPH not in ckpt(res.destination) and res.not_carried_over == [GRAPH]
    assert GRAPH not in res.dropped and GRAPH not in res.mapping[tf2_ckpt]
    assert sorted(ckpt(res.destination)) == sorted(res.mapping[tf2_ckpt].values())


def test_read_by_its_keys_the_cli_names_the_object_graph_it_leaves_out(tf2_ckpt, tmp_path, capfd):
    code, out, err = cli(capfd, "migrate", tf2_ckpt, tmp_path / "m", "--drop", "vars/step")
    assert code == 0, err
    lines = out.splitlines()
    i = lines.index(f"# not carried over from {tf2_ckpt}: 1 tensor that is not a variable (it names keys this "
                    "migration renames, drops, casts or joins; the result is name-based (--from tf2 reads variables))")
    assert lines[i + 1].split(None, 1) == [GRAPH, "(the object graph)"]
    assert lines[i + 2].startswith(f"-- 2 tensors (1 dropped, 1 not carried over) written to {tmp_path / 'm'}")
    code, out, err = cli(capfd, "migrate", tf2_ckpt, tmp_path / "t", "--to", "tf2", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["not_carried_over"] == [GRAPH] and GRAPH not in r["mapping"][tf2_ckpt] and r["dropped"] == []
    graph = ckpt(str(tmp_path / "t"))[GRAPH]  # the destination's own object graph, not the source's
    assert graph != ckpt(tf2_ckpt)[GRAPH]


def test_a_cast_of_every_key_casts_the_floats_and_copies_the_object_graph_s_string_and_the_ints(tf2_ckpt, seed004,
                                                                                                   tmp_path, capfd):
    """'**' matches the object graph (a string) and save_counter (int64) beside the variables, as it matches a TF1
    checkpoint's global_step: both used to be refused ("'_CHECKPOINTABLE_OBJECT_GRAPH' is string; only float
    tensors are cast")."""
    code, out, err = cli(capfd, "migrate", tf2_ckpt, tmp_path / "tf2" / "m", "--cast", "**=float16")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert [KERNEL, "(kept)", "(cast)"] in rows and [STEP, "(kept)", "(not", "cast:", "int64)"] in rows
    assert [COUNTER, "(kept)", "(not", "cast:", "int64)"] in rows
    values = ckpt(str(tmp_path / "tf2" / "m"))
    assert {k: v.dtype.name for k, v in values.items()} == {KERNEL: "float16", STEP: "int64", COUNTER: "int64"}
    assert values[STEP] == 7 and GRAPH in out  # named under '# not carried over': a key it names was cast
    prefix, _, _ = seed004
    res = migrate(prefix, str(tmp_path / "tf1" / "m"), gs.Rules(cast=[("**", "float16")]))
    values = ckpt(res.destination)
    assert values["global_step"].dtype == np.int64 and "global_step" not in res.cast
    assert res.not_cast == {"global_step": "int64"}
    assert migrate(prefix, str(tmp_path / "tf1" / "n"), gs.Rules(cast=[("re:(?!global).*", "float16")])).not_cast == {}
    assert sorted(res.cast) == sorted(n for n in values if n != "global_step")
    assert {values[n].dtype for n in res.cast} == {np.dtype(np.float16)}


def test_a_cast_pattern_that_matches_no_float_tensor_is_refused_naming_what_it_matches(tf2_ckpt, tmp_path, capfd):
    code, out, err = cli(capfd, "migrate", tf2_ckpt, tmp_path / "m", "--cast", "re:_CHECK.*|save.*=float16")
    assert code == 2 and out == ""
    assert err == (f"graphsurgeon migrate: error: --cast 're:_CHECK.*|save.*=float16': '{GRAPH}' is string, '{COUNTER}' "
                   "is int64 (no float tensor among the 2 it matches); only float tensors are cast\n")
