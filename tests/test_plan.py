"""The plan's name mapping and statuses, on names alone."""
import pytest

import graphsurgeon as gs
from graphsurgeon._src.surgery.plan import is_optimizer_state


@pytest.mark.parametrize("name,expected", [
    ("hidden1/weights/Adam", True), ("hidden1/weights/Adam_1", True), ("beta1_power", True), ("beta2_power_3", True),
    ("global_step", True), ("w/Momentum", True), ("w/RMSProp_1", True), ("Adam/weights", False),
    ("hidden1/weights", False), ("Variable_17", False),
])
def test_optimizer_state_names(name, expected):
    assert is_optimizer_state(name) is expected


def test_statuses_from_names_and_shapes():
    graph = {"a/w": ((2, 3), "float32"), "b/w": ((3, 4), "float32"), "head/k": ((3, 2), "float32"),
             "c/w": ((5,), "float32"), "d/w": ((1,), "float32")}
    ckpt = {"a/w": ((2, 3), "float32"), "b/w": ((3, 5), "float32"), "d/w": ((1,), "float32"),
            "old/w": ((9,), "float32")}
    p = gs.make_plan(graph, ckpt, new=["head/k"], reinit=["d/w"], trainable=["head/k"])
    assert {v.name: v.status for v in p.variables} == {
        "a/w": "restored", "b/w": "shape_mismatch", "head/k": "new", "c/w": "missing", "d/w": "reinitialized",
        "old/w": "dropped"}
    assert p.trainable == ["head/k"]
    with pytest.raises(gs.PlanError, match=r"b/w: graph shape \[3, 4\] but checkpoint 'b/w' has \[3, 5\]"):
        p.check(allow_missing=True)
