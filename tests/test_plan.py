"""The plan's name mapping and statuses, on names alone."""
import pytest

import graphsurgeon as gs
from graphsurgeon._src.surgery.plan import _features_line, is_optimizer_state


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


def test_text_orders_numbers_by_value_and_says_only_the_old_state_there_is():
    """Variable_2 before Variable_10 (it came after); the old optimizer state row keeps the columns and
    names what is there (it named global_step in a checkpoint without one, and overflowed the name column)."""
    f32 = ((3,), "float32")
    graph = {n: f32 for n in ("Variable", "Variable_10", "Variable_2", "head/k")}
    ckpt = {n: f32 for n in ("Variable", "Variable_10", "Variable_2", "Variable_2/Adam", "Variable_2/Adam_1",
                             "Variable_10/Momentum", "beta1_power", "beta1_power_1")}
    lines = gs.make_plan(graph, ckpt, new=["head/k"], trainable=["head/k"]).format_text().splitlines()
    assert [l.split()[0] for l in lines[1:5]] == ["Variable", "Variable_2", "Variable_10", "head/k"]
    assert lines[5] == ("(old optimizer state)  dropped        no    5 variables (2 Adam slots, 1 Momentum slot, "
                        "beta1_power, beta1_power_1)")
    assert len({l.index(" no ") if " no " in l else l.index(" yes ") for l in lines[1:6]}) == 1  # one train column
    assert lines[6] == "-- 9 variables: 3 restored, 1 new, 5 dropped; 1 trainable"
    assert gs.make_plan({}, {}).format_text().splitlines()[-1] == "-- 0 variables; 0 trainable"


@pytest.mark.parametrize("n, said", [(1, "-> 1 feature"), (2, "-> 2 features"), (None, "-> ? features")])
def test_the_features_line_counts_in_the_right_number(n, said):
    """A head reading one feature (lstm_aplain's cut) was said to read '1 features'."""
    line = _features_line({"cut": "h:0", "shape": [n], "pool": "none", "features": n})
    assert line == f"-- the head reads h:0 [{'?' if n is None else n}] {said}"


@pytest.mark.parametrize("shape, said", [
    ([5, 5, 16], "[5, 5, 16] -> avg over 5×5 -> 16 features"),
    ([None, 65], "[?, 65] -> avg over axis 1 (a size set at run time) -> 65 features"),
    ([None, 5, 8], "[?, 5, 8] -> avg over axes 1, 2 (?×5; ? a size set at run time) -> 8 features")])
def test_the_features_line_names_pooled_axes_of_unknown_size(shape, said):
    """The char-rnn's time-major rnn/transpose [50, ?, 65], axis 0 taken for the batch, was said to be averaged
    'over ?'."""
    line = _features_line({"cut": "t:0", "shape": shape, "pool": "avg", "features": shape[-1]})
    assert line == f"-- the head reads t:0 {said}"
