"""TF2 object-based checkpoints in `inspect`: the object graph is not a variable and is shown apart."""
import json

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs

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
