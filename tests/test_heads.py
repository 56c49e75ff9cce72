"""merge-heads, add-head, remove-head on TF1 models: outputs, layout, serving, versions, bad input."""
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import heads_models as hm
import numpy as np
import pytest
import tensorflow as tf
from test_cli import our_stderr, run_cli

import graphsurgeon as gs
from graphsurgeon._src.cli import main
from graphsurgeon._src.errors import MergeHeadsError, TensorNotFoundError
from graphsurgeon._src.multihead import compare, load
from graphsurgeon._src.multihead.merge import add_task, merge_heads, remove_task
from graphsurgeon._src.storage.paths import resolve

from helpers import ckpt, cli, tree_hash

tf1 = tf.compat.v1
X = np.random.default_rng(7).normal(size=(6, 12)).astype(np.float32)
# (sub-directory, classes, head seed, build options)
TASKS = [("ckpt2", 2, 10, {"labels": ["no", "yes"]}), ("frozen3", 3, 11, {"kind": "frozen"}),
         ("sm4", 4, 12, {"kind": "saved_model", "labels": ["a", "b", "c", "d"]}),
         ("resource5", 5, 13, {"resource": True}), ("hidden3", 3, 14, {"hidden": (6,)}),
         ("branch2", 2, 15, {"head": "branch", "resource": True})]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks")
    return [hm.tf1_task(str(d / "tasks" / name), c, seed, **kw) for name, c, seed, kw in TASKS]


@pytest.fixture(scope="module")
def merged(tasks, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("merged") / "text" / "1")
    return merge_heads(tasks, "hidden2/Tanh", out), tasks


def serve(directory, signature="serving_default"):
    return tf.saved_model.load(directory).signatures[signature]


def test_each_task_equals_its_own_model_in_one_mixed_batch(merged):
    res, tasks = merged
    ids = np.arange(len(tasks)).repeat(len(X))
    out = serve(res.directory)(inputs=tf.constant(np.tile(X, (len(tasks), 1))), task_id=tf.constant(ids, tf.int64))
    for i, path in enumerate(tasks):
        own = hm.run_tf1(path, X)  # TensorFlow's own loaders, not graphsurgeon's
        rows = slice(i * len(X), (i + 1) * len(X))
        c = own.shape[1]
        np.testing.assert_allclose(out["probabilities"].numpy()[rows, :c], own, rtol=0, atol=1e-6)
        assert (out["num_classes"].numpy()[rows] == c).all()
        assert (out["probabilities"].numpy()[rows, c:] == 0).all() and (out["logits"].numpy()[rows, c:] == -1e9).all()
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-6


def test_classes_are_the_top_class_names(merged):
    res, tasks = merged
    out = serve(res.directory)(inputs=tf.constant(X), task_id=tf.constant([0, 2, 1, 0, 2, 1], tf.int64))
    names = {0: ["no", "yes"], 2: ["a", "b", "c", "d"], 1: ["0", "1", "2"]}
    want = [names[t][i] for t, i in zip([0, 2, 1, 0, 2, 1], out["probabilities"].numpy().argmax(1))]
    assert [c.decode() for c in out["classes"].numpy()] == want


def test_layout_tasks_json_and_checkpoint_names(merged):
    res, tasks = merged
    d = res.directory
    assert sorted(os.listdir(d)) == ["parts", "saved_model.pb", "tasks.json", "variables"]
    assert sorted(os.listdir(os.path.join(d, "variables"))) == [
        "variables.data-00000-of-00002", "variables.data-00001-of-00002", "variables.index", "variables.meta"]
    assert sorted(os.listdir(os.path.join(d, "parts"))) == ["backbone_0.pb", "task_5.pb"]
    table = json.load(open(os.path.join(d, "tasks.json")))
    assert [(t["id"], t["name"], t["num_classes"], t["backbone_group"]) for t in table["tasks"]] == [
        (0, "ckpt2", 2, 0), (1, "frozen3", 3, 0), (2, "sm4", 4, 0), (3, "resource5", 5, 0), (4, "hidden3", 3, 0),
        (5, "branch2", 2, 0)]
    assert table["next_id"] == 6 and table["tasks"][0]["classes"] == ["no", "yes"] and table["tasks"][2]["classes"] == ["a", "b", "c", "d"]
    assert [t["head"]["kind"] for t in table["tasks"]] == ["dense"] * 5 + ["branch"]
    assert [t["head"].get("stack") for t in table["tasks"]] == [0, 0, 0, 0, 1, None]
    assert table["tasks"][1]["source"] == tasks[1] and all(t["output"] == "probabilities" for t in table["tasks"])
    values = ckpt(os.path.join(d, "variables", "variables"))
    assert set(values) == {"hidden1/weights", "hidden1/biases", "hidden2/weights", "hidden2/biases",
                           "heads/stack_0/logits/kernel", "heads/stack_0/logits/bias",
                           "heads/stack_1/layer_0/kernel", "heads/stack_1/layer_0/bias",
                           "heads/stack_1/logits/kernel", "heads/stack_1/logits/bias",
                           "heads/task_5/head/extra/weights", "heads/task_5/head/extra/biases",
                           "heads/task_5/output/weights", "heads/task_5/output/biases"}
    # no padding stored: the packed output layers hold exactly the heads' own weights
    assert values["heads/stack_0/logits/kernel"].size == 8 * (2 + 3 + 4 + 5)
    assert values["heads/stack_1/layer_0/kernel"].shape == (1, 8, 6)
    own = ckpt(tasks[0])
    for name in ("hidden1/weights", "hidden2/biases"):
        assert values[name].tobytes() == own[name].tobytes()
    sizes = {k: os.path.getsize(os.path.join(d, "variables", f"variables.data-0000{k}-of-00002")) for k in (0, 1)}
    assert sizes[0] == sum(values[n].nbytes for n in values if n.startswith("hidden"))
    assert sizes[1] == sum(values[n].nbytes for n in values if n.startswith("heads/"))


def test_restore_and_inspect_read_the_merged_model(merged):
    res, tasks = merged
    want = serve(res.directory)(inputs=tf.constant(X), task_id=tf.constant([3] * 6, tf.int64))["logits"].numpy()
    for path in (res.directory, os.path.join(res.directory, "variables", "variables")):
        with gs.restore(path) as m:
            got = m.run("serving/logits:0", {"serving/inputs:0": X, "serving/task_id:0": np.full(6, 3, np.int64)})
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
            assert m.inputs == ["serving/inputs:0", "serving/task_id:0"]
    report = gs.inspect(res.directory)
    assert set(report["graph"]["signatures"]) == {"serving_default", "by_name"}


def test_task_names_in_a_second_signature(merged):
    res, _ = merged
    by_id = serve(res.directory)(inputs=tf.constant(X[:3]), task_id=tf.constant([4, 0, 5], tf.int64))
    by_name = serve(res.directory, "by_name")(inputs=tf.constant(X[:3]), task=tf.constant(["hidden3", "ckpt2",
                                                                                             "branch2"]))
    np.testing.assert_array_equal(by_name["probabilities"].numpy(), by_id["probabilities"].numpy())


@pytest.mark.parametrize("signature,feed,needle", [
    ("serving_default", {"task_id": [0, 9, -1, 2, 0, 0]}, "unknown task_id(s):] [9 -1]"),
    ("serving_default", {"task_id": [0, 1]}, "task_id has] [2] [value(s) for] [6]"),
    ("by_name", {"task": ["ckpt2", "nope", "sm4", "x", "ckpt2", "ckpt2"]}, "unknown task name(s):] [nope x]"),
])
def test_unknown_tasks_fail_the_request(merged, signature, feed, needle):
    res, _ = merged
    feed = {k: tf.constant(v, tf.int64 if k == "task_id" else tf.string) for k, v in feed.items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match=None) as e:
        serve(res.directory, signature)(inputs=tf.constant(X), **feed)
    assert needle in str(e.value)


def test_saved_model_cli_run(merged):
    res, tasks = merged
    expr = "inputs=" + json.dumps(X[:1].tolist()) + ";task_id=[2]"
    p = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run", "--dir",
                        res.directory, "--tag_set", "serve", "--signature_def", "serving_default",
                        "--input_exprs", expr], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    text = p.stdout.split("Result for output key probabilities:")[1]
    got = np.array([float(v) for v in text.replace("[", " ").replace("]", " ").split()[:4]])
    np.testing.assert_allclose(got, hm.run_tf1(tasks[2], X[:1])[0], rtol=0, atol=1e-6)


def test_add_and_remove_make_new_versions(merged, tmp_path):
    res, tasks = merged
    one = str(tmp_path / "text" / "1")  # its own versions, not beside the module's merged model
    shutil.copytree(res.directory, one)
    res = dataclasses.replace(res, directory=one)
    before = tree_hash(res.directory)
    new = hm.tf1_task(str(tmp_path / "extra"), 4, 99, hidden=(6,))
    added = add_task(res.directory, new, name="extra")
    version2 = os.path.join(os.path.dirname(res.directory), "2")
    assert added.directory == version2 and added.linked_backbone
    shard = "variables/variables.data-00000-of-00002"
    assert os.stat(os.path.join(version2, shard)).st_ino == os.stat(os.path.join(res.directory, shard)).st_ino
    assert tree_hash(res.directory) == before
    assert [t["id"] for t in added.tasks] == [0, 1, 2, 3, 4, 5, 6] and added.tasks[6]["name"] == "extra"
    out = serve(version2)(inputs=tf.constant(np.tile(X, (2, 1))), task_id=tf.constant([6] * 6 + [3] * 6, tf.int64))
    np.testing.assert_allclose(out["probabilities"].numpy()[:6, :4], hm.run_tf1(new, X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["probabilities"].numpy()[6:, :5], hm.run_tf1(tasks[3], X), rtol=0, atol=1e-6)

    removed = remove_task(version2, "sm4")
    assert removed.directory == os.path.join(os.path.dirname(res.directory), "3")
    assert [t["id"] for t in removed.tasks] == [0, 1, 3, 4, 5, 6]  # ids do not move
    three = serve(removed.directory)
    np.testing.assert_allclose(three(inputs=tf.constant(X), task_id=tf.constant([6] * 6, tf.int64))[
        "probabilities"].numpy()[:, :4], hm.run_tf1(new, X), rtol=0, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"unknown task_id\(s\):\] \[2\]"):
        three(inputs=tf.constant(X[:1]), task_id=tf.constant([2], tf.int64))
    assert removed.notes == [f"task 2 'sm4' removed: a request for it (task_id 2, or task 'sm4') now fails; "
                             f"{version2} still holds it; its id is not given again (the next task added gets 7)"]
    assert os.stat(os.path.join(removed.directory, shard)).st_ino == os.stat(os.path.join(res.directory, shard)).st_ino
    assert tree_hash(res.directory) == before
    # a task added to version 1 (next_id 6) when 2 and 3 exist: not id 6, which version 2 gave 'extra'
    sibling = add_task(res.directory, new, name="again")
    assert sibling.directory == os.path.join(os.path.dirname(res.directory), "4")
    assert [t["id"] for t in sibling.tasks] == [0, 1, 2, 3, 4, 5, 7]
    assert json.load(open(os.path.join(sibling.directory, "tasks.json")))["next_id"] == 8
    gone = remove_task(res.directory, "sm4", str(tmp_path / "elsewhere"))  # keeps the next id of all versions
    assert gone.notes[0].endswith("(the next task added gets 8)")
    assert json.load(open(tmp_path / "elsewhere" / "tasks.json"))["next_id"] == 8
    with open(os.path.join(version2, "tasks.json"), "w") as f:  # a version it cannot read is refused, named
        f.write("{")
    with pytest.raises(MergeHeadsError, match=rf"^{re.escape(version2)}/tasks.json: not readable JSON .* \(read "
                                              r"because a new task id must differ from every id the versions "
                                              rf"beside {re.escape(res.directory)} gave\)$"):
        add_task(res.directory, new, str(tmp_path / "refused"), name="refused")


def test_a_removed_highest_id_is_not_given_again(merged, tmp_path, capfd):
    """add-head gave a new task the highest id + 1, so after remove-head of the highest id the next task added got
    that id, and a client still sending it got the new task's answers; tasks.json's next_id now only grows."""
    res, _ = merged
    new = hm.tf1_task(str(tmp_path / "extra"), 4, 99, hidden=(6,))
    two = add_task(res.directory, new, str(tmp_path / "2"), name="extra").directory
    code, out, err = cli(capfd, "remove-head", two, "extra", "--out", tmp_path / "3", "--json")
    note = (f"task 6 'extra' removed: a request for it (task_id 6, or task 'extra') now fails; {two} still holds it; "
            "its id is not given again (the next task added gets 7)")
    assert code == 0 and json.loads(out)["notes"] == [note], err
    assert json.load(open(tmp_path / "3" / "tasks.json"))["next_id"] == 7
    again = add_task(str(tmp_path / "3"), new, str(tmp_path / "4"), name="again")
    assert [t["id"] for t in again.tasks] == [0, 1, 2, 3, 4, 5, 7]
    assert json.load(open(tmp_path / "4" / "tasks.json"))["next_id"] == 8
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"unknown task_id\(s\):\] \[6\]"):
        serve(str(tmp_path / "4"))(inputs=tf.constant(X[:1]), task_id=tf.constant([6], tf.int64))
    code, out, err = cli(capfd, "remove-head", two, "0", "--out", tmp_path / "5")  # version 4 beside it gave 7
    assert code == 0 and out.endswith(f"\ntask 0 'ckpt2' removed: a request for it (task_id 0, or task 'ckpt2') now "
                                      f"fails; {two} still holds it; its id is not given again (the next task added "
                                      "gets 8)\n"), err


def test_a_tasks_json_without_next_id_gives_the_highest_id_plus_one(merged, tmp_path):
    """A version written before next_id: add-head gives the highest id + 1, remove-head keeps that, and both write
    next_id; a next_id not above every id is refused, naming the file."""
    res, _ = merged
    old = tmp_path / "old"
    shutil.copytree(res.directory, old)
    tab = json.load(open(old / "tasks.json"))
    assert tab.pop("next_id") == 6
    (old / "tasks.json").write_text(json.dumps(tab, indent=2) + "\n")
    removed = remove_task(str(old), "branch2", str(tmp_path / "r"))
    assert removed.notes[0].endswith("its id is not given again (the next task added gets 6)")
    assert json.load(open(tmp_path / "r" / "tasks.json"))["next_id"] == 6
    new = hm.tf1_task(str(tmp_path / "extra"), 4, 99, hidden=(6,))
    assert [t["id"] for t in add_task(str(old), new, str(tmp_path / "a"), name="extra").tasks][-1] == 6
    assert json.load(open(tmp_path / "a" / "tasks.json"))["next_id"] == 7
    # versions beside it without next_id count by their highest id: version 2 gave 6, so version 1 gives 7
    shutil.copytree(old, tmp_path / "v" / "1")
    shutil.copytree(tmp_path / "a", tmp_path / "v" / "2")
    two = json.load(open(tmp_path / "v" / "2" / "tasks.json"))
    assert two.pop("next_id") == 7
    (tmp_path / "v" / "2" / "tasks.json").write_text(json.dumps(two, indent=2) + "\n")
    assert [t["id"] for t in add_task(str(tmp_path / "v" / "1"), new, name="again").tasks][-1] == 7
    tab["next_id"] = 5
    (old / "tasks.json").write_text(json.dumps(tab, indent=2) + "\n")
    with pytest.raises(MergeHeadsError, match=re.escape(f"{old / 'tasks.json'}: next_id is 5; expected an integer "
                                                        "above every task's id (the highest is 5)")):
        remove_task(str(old), "branch2", str(tmp_path / "r2"))
    assert not os.path.exists(tmp_path / "r2")


def test_a_version_beside_it_that_lists_no_task_gave_no_id(merged, tmp_path, capfd):
    """A version beside DIR whose tasks.json lists no task and has no next_id made add-head fail with max()'s
    ValueError (a traceback): it gave no id, so it raises nothing (DIR's next_id 6 is given); one whose next_id is
    not above its own ids is refused as DIR's would be, naming it."""
    res, _ = merged
    one, two = tmp_path / "v" / "1", tmp_path / "v" / "2"
    shutil.copytree(res.directory, one)
    two.mkdir()
    (two / "tasks.json").write_text(json.dumps({"format": "graphsurgeon-multihead", "tasks": []}) + "\n")
    new = hm.tf1_task(str(tmp_path / "extra"), 4, 99, hidden=(6,))
    added = add_task(str(one), new, name="again")
    assert added.directory == str(tmp_path / "v" / "3") and [t["id"] for t in added.tasks][-1] == 6
    (two / "tasks.json").write_text(json.dumps({"format": "graphsurgeon-multihead", "next_id": 3,
                                                "tasks": [{"id": 3}]}) + "\n")
    shutil.rmtree(tmp_path / "v" / "3")
    code, out, err = cli(capfd, "add-head", one, new, "--task-name", "again")
    assert (code, out) == (2, "") and err == (
        f"graphsurgeon add-head: error: {two / 'tasks.json'}: next_id is 3; expected an integer above every task's "
        f"id (the highest is 3) (read because a new task id must differ from every id the versions beside {one} "
        "gave)\n")


def test_add_head_refuses_another_backbone(merged, tmp_path):
    res, _ = merged
    other = hm.tf1_task(str(tmp_path / "other"), 3, 5, backbone_seed=1)
    with pytest.raises(MergeHeadsError, match=r"backbone weights differ from every backbone ") as e:
        add_task(res.directory, other, out=str(tmp_path / "v9"))
    # compared with the one model added, not with 'the rest' (merge-heads' wording for many models)
    assert f"/other/model.ckpt-1: its backbone weights differ from every backbone of {res.directory} (atol 0): its " \
        "hidden1/*, hidden2/* differ from backbone group 0's (max |Δ| " in str(e.value)
    assert not os.path.exists(tmp_path / "v9")
    with pytest.raises(MergeHeadsError, match="duplicate task name 'ckpt2'"):
        add_task(res.directory, hm.tf1_task(str(tmp_path / "ckpt2"), 3, 5), out=str(tmp_path / "v9"))


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory):
    d = tmp_path_factory.mktemp("perturbed")
    return [hm.tf1_task(str(d / f"t{i}"), 3, 20 + i, perturb=(1, 0.031) if i in (1, 3) else None)
            for i in range(5)]


def test_differing_backbones_are_reported_grouped(perturbed, tmp_path):
    with pytest.raises(MergeHeadsError) as e:
        merge_heads(perturbed, "hidden2/Tanh", str(tmp_path / "out"))
    assert "tasks 1 (t1), 3 (t3) differ from the rest in hidden2/weights (max |Δ| 0.031, relative" in str(e.value)
    assert not os.path.exists(tmp_path / "out") and os.listdir(tmp_path) == []
    loose = merge_heads(perturbed, "hidden2/Tanh", str(tmp_path / "loose"), atol=0.05)
    assert [g["tasks"] for g in loose.groups] == [[0, 1, 2, 3, 4]]


def test_group_backbones_builds_one_backbone_per_group(perturbed, tmp_path):
    res = merge_heads(perturbed, "hidden2/Tanh", str(tmp_path / "out"), group_backbones=True)
    assert [g["tasks"] for g in res.groups] == [[0, 2, 4], [1, 3]]
    assert [d["tasks"] for d in res.differences] == [[1, 3]]
    assert {t["backbone_group"] for t in res.tasks if t["id"] in (1, 3)} == {1}
    ids = np.arange(5).repeat(len(X))
    out = serve(res.directory)(inputs=tf.constant(np.tile(X, (5, 1))), task_id=tf.constant(ids, tf.int64))
    for i, path in enumerate(perturbed):  # each task on its own group's backbone
        np.testing.assert_allclose(out["probabilities"].numpy()[ids == i, :3], hm.run_tf1(path, X), rtol=0, atol=1e-6)
    assert "backbone_1/hidden2/weights" in ckpt(os.path.join(res.directory, "variables", "variables"))


def test_grouping_report_text():
    g = compare.Grouper(["enc/a/w", "enc/a/b", "enc/c/w"], atol=0.0)
    base = [np.zeros(3), np.zeros(2), np.zeros(1)]
    for t in range(4):
        g.add(t, base if t not in (1, 3) else [base[0] + 0.5, base[1] - 0.25, base[2]])
    text = compare.report(g.differences(), g.names)
    assert text == "tasks 1, 3 differ from the rest in enc/a/* (max |Δ| 0.5, relative inf)"


def test_default_task_names_and_expansion(tmp_path):
    for name in ("a", "b10", "b9"):
        hm.tf1_task(str(tmp_path / name), 2, 1)
    (tmp_path / "notes.txt").write_text("not a model")
    paths = load.expand([str(tmp_path)])
    assert [os.path.basename(p) for p in paths] == ["a", "b9", "b10"]
    assert load.default_names(paths) == ["a", "b9", "b10"]
    assert load.default_names([str(tmp_path / "a" / "model.ckpt-1")]) == ["a"]
    # models far apart keep their own names (the first component below '/' named them 'work' and 'tmp')
    apart = [str(tmp_path / "p" / "gan" / "model.ckpt-1"), str(tmp_path / "q" / "r" / "other" / "model.ckpt-9")]
    assert load.default_names(apart) == ["gan", "other"]
    # the same own name twice: the first component below the common directory
    same = [str(tmp_path / "runs" / k / "ckpt" / "model.ckpt-9") for k in ("x", "y")]
    assert load.default_names(same) == ["x", "y"]
    # each model by its own depth: one directory below by that directory, deeper by its own name
    mixed = [str(tmp_path / "t" / "foo" / "export"), str(tmp_path / "t" / "topic" / "v3" / "model.ckpt-9")]
    assert load.default_names(mixed) == ["foo", "v3"]
    deep = [str(tmp_path / "t" / k / v / "model.ckpt-9") for k, v in (("sentiment", "v1"), ("topic", "v3"))]
    assert load.default_names(deep) == ["v1", "v3"]  # the trade-off: their own names, not sentiment and topic
    # one directory below: named by that directory, not by the file in it
    assert load.default_names([str(tmp_path / "t" / k / "frozen.pb") for k in ("a", "b")]) == ["a", "b"]
    assert load.expand([str(tmp_path / "b*")]) == [str(tmp_path / "b9"), str(tmp_path / "b10")]


def _cli_error(args, capsys):
    """The error line of an in-process run (``--verbose`` keeps stderr where capsys sees it)."""
    assert main(args + ["--verbose"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("graphsurgeon")]
    assert len(err) == 1, err
    return err[0]


def test_an_error_is_exactly_one_stderr_line(odd_tasks, tmp_path):
    p = run_cli("merge-heads", odd_tasks["good"], odd_tasks["arch"], "--features", "hidden2/Tanh", "--out",
                str(tmp_path / "out"))
    assert p.returncode == 2 and len(our_stderr(p.stderr)) == 1, p.stderr
    assert our_stderr(p.stderr)[0].startswith("graphsurgeon merge-heads: error: backbones differ in architecture")


@pytest.fixture(scope="module")
def odd_tasks(tmp_path_factory):
    d = tmp_path_factory.mktemp("odd")
    return {"good": hm.tf1_task(str(d / "good"), 2, 1), "arch": hm.tf1_task(str(d / "arch"), 2, 2, extra_op=True),
            "skip": hm.tf1_task(str(d / "skip"), 2, 3, head="skip"), "good2": hm.tf1_task(str(d / "good2"), 3, 4)}


def test_bad_input_is_one_line_exit_2_and_nothing_written(odd_tasks, tmp_path, capsys):
    out = str(tmp_path / "out")
    msg = _cli_error(["merge-heads", odd_tasks["good"], odd_tasks["arch"], "--features", "hidden2/Tanh", "--out", out],
                     capsys)
    assert "backbones differ in architecture:" in msg and "op 'Relu6' (Relu6)" in msg and odd_tasks["arch"] in msg
    msg = _cli_error(["merge-heads", odd_tasks["good"], odd_tasks["skip"], "--features", "hidden2/Tanh", "--out", out],
                     capsys)
    assert (f"{odd_tasks['skip']}: op 'head/skip/MatMul' above --features hidden2/Tanh:0 reads 'hidden1/Relu', "
            "which lies below it") in msg
    msg = _cli_error(["merge-heads", odd_tasks["good"], odd_tasks["good2"], "--features", "hidden2/Tanh", "--out",
                      out, "--task-names", str(_names(tmp_path, ["same", "same"]))], capsys)
    assert "duplicate task name 'same'" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = _cli_error(["merge-heads", str(empty), "--features", "hidden2/Tanh", "--out", out], capsys)
    assert f"{empty}: matches no model" in msg
    assert not os.path.exists(out) and sorted(os.listdir(tmp_path)) == ["empty", "names.txt"]


def test_missing_features_names_the_model(odd_tasks, tmp_path):
    g = tf.Graph()
    with g.as_default():  # a model without hidden2/Tanh (its features are called hidden2/Relu)
        x = tf1.placeholder(tf.float32, [None, 12], name="x")
        h = tf.nn.relu(tf.matmul(x, tf1.get_variable("w", [12, 8])), name="hidden2/Relu")
        tf.nn.softmax(tf.matmul(h, tf1.get_variable("o", [8, 2])), name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            other = tf1.train.Saver().save(s, str(tmp_path / "other" / "model.ckpt"))
    with pytest.raises(TensorNotFoundError, match=f"{other}: features=hidden2/Tanh is not a tensor of this model"):
        merge_heads([odd_tasks["good"], other], "hidden2/Tanh", str(tmp_path / "out"))


def _names(tmp_path, names):
    p = tmp_path / "names.txt"
    p.write_text("\n".join(names) + "\n")
    return p


def test_cli_json_and_refusing_an_existing_dir(odd_tasks, tmp_path, capsys):
    out = str(tmp_path / "m" / "1")
    assert main(["merge-heads", odd_tasks["good"], odd_tasks["good2"], "--features", "hidden2/Tanh", "--out", out,
                 "--json", "--quiet", "--verbose", "--task-names", str(_names(tmp_path, ["first", "second"]))]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["directory"] == out and [t["name"] for t in r["tasks"]] == ["first", "second"]
    assert r["bytes"]["heads"] == 4 * (8 * 2 + 2 + 8 * 3 + 3) and r["groups"][0]["tasks"] == [0, 1]
    msg = _cli_error(["merge-heads", odd_tasks["good"], "--features", "hidden2/Tanh", "--out", out], capsys)
    assert f"{out} exists" in msg
    assert main(["remove-head", out, "first", "--json", "--verbose"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["directory"] == os.path.join(os.path.dirname(out), "2") and [t["name"] for t in r["tasks"]] == ["second"]
    msg = _cli_error(["remove-head", r["directory"], "second"], capsys)
    assert "is the only task" in msg


def test_cli_json_directory_is_the_path_as_given_or_derived_from_dir_as_given(odd_tasks, tmp_path, capsys,
                                                                              monkeypatch):
    """--json's directory is the --out given, and, when the version is picked, DIR's sibling as DIR was given
    (a relative DIR gave an absolute path there, the path as given with --out)."""
    monkeypatch.chdir(tmp_path)
    assert main(["merge-heads", odd_tasks["good"], odd_tasks["good2"], "--features", "hidden2/Tanh", "--out",
                 os.path.join("m", "1"), "--json", "--quiet", "--verbose"]) == 0
    assert json.loads(capsys.readouterr().out)["directory"] == os.path.join("m", "1")
    assert main(["remove-head", os.path.join("m", "1"), "good", "--json", "--verbose"]) == 0
    assert json.loads(capsys.readouterr().out)["directory"] == os.path.join("m", "2")
    assert main(["add-head", os.path.join("m", "2"), odd_tasks["good"], "--task-name", "again", "--json",
                 "--verbose"]) == 0
    assert json.loads(capsys.readouterr().out)["directory"] == os.path.join("m", "3")
    assert main(["remove-head", os.path.join("m", "3"), "again", "--out", "elsewhere", "--json", "--verbose"]) == 0
    assert json.loads(capsys.readouterr().out)["directory"] == "elsewhere"
    os.chdir("m")
    assert main(["remove-head", "3", "again", "--json", "--verbose"]) == 0  # DIR in the current directory
    assert json.loads(capsys.readouterr().out)["directory"] == "4" and os.path.isfile(os.path.join("4", "tasks.json"))


def _trace(directory, task_ids, n_inputs=12):
    """``(executed node names, {node: largest output bytes})`` of one request, from a full trace."""
    g = tf.Graph()
    with tf1.Session(graph=g) as s:
        meta = tf1.saved_model.load(s, ["serve"], directory)
        sig = meta.signature_def["serving_default"]
        feed = {g.get_tensor_by_name(sig.inputs["inputs"].name): np.zeros((len(task_ids), n_inputs), np.float32),
                g.get_tensor_by_name(sig.inputs["task_id"].name): task_ids}
        fetch = g.get_tensor_by_name(sig.outputs["probabilities"].name)
        md = tf1.RunMetadata()
        s.run(fetch, feed, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE), run_metadata=md)
        consts = {op.name for op in g.get_operations() if op.type in ("Const", "VarHandleOp")}
        stats = [n for d in md.step_stats.dev_stats for n in d.node_stats]
        sizes = {n.node_name: max([o.tensor_description.allocation_description.requested_bytes
                                   for o in n.output] or [0]) for n in stats if n.node_name not in consts}
        return [n.node_name for n in stats], sizes


def test_a_request_runs_only_its_own_heads(merged, tmp_path):
    res, tasks = merged
    routes = {0: 0, 4: 1, 5: 2}  # stack 0, stack 1 (the hidden layer), the branch
    for task, route in routes.items():
        names, _ = _trace(res.directory, [task])
        ran = {k for k in routes.values() if any(f"route_{k}/then/" in n for n in names)}
        assert ran == {route}, (task, ran)
    # a stack costs one head per example: the same ops and tensor sizes for 2 tasks as for 12
    paths = [hm.tf1_task(str(tmp_path / f"t{i}"), 3, 30 + i) for i in range(12)]
    two = merge_heads(paths[:2], "hidden2/Tanh", str(tmp_path / "two"))
    twelve = merge_heads(paths, "hidden2/Tanh", str(tmp_path / "twelve"))
    (n2, s2), (n12, s12) = _trace(two.directory, [1]), _trace(twelve.directory, [1])
    assert len(n2) == len(n12)
    assert max(v for k, v in s2.items() if k.startswith("heads/")) == \
        max(v for k, v in s12.items() if k.startswith("heads/")) == 1 * 8 * 3 * 4  # one [1, 8, 3] kernel


def test_input_and_output_flags(tasks, tmp_path):
    """--input cuts the backbone at any tensor (here hidden1's activations); --output picks the logits."""
    res = merge_heads(tasks[:2], "hidden2/Tanh", str(tmp_path / "out"), input="hidden1/Relu", output="logits")
    assert [t["output"] for t in res.tasks] == ["logits", "logits"]
    h = np.abs(np.random.default_rng(3).normal(size=(4, 16))).astype(np.float32)
    out = serve(res.directory)(inputs=tf.constant(h), task_id=tf.constant([0, 1, 0, 1], tf.int64))
    for i, path in enumerate(tasks[:2]):
        own = hm.run_tf1(path, h, output="logits:0", input="hidden1/Relu:0")
        np.testing.assert_allclose(out["logits"].numpy()[i::2, :own.shape[1]], own[i::2], rtol=0, atol=1e-6)


def test_task_models_made_by_retrain(seed004, tmp_path):
    """graphsurgeon's own flow: two heads retrained on one frozen model, merged at the frozen layer."""
    prefix, x, _ = seed004
    outs = {}
    for name, classes, hidden in (("three", 3, []), ("four", 4, [6])):
        data = str(tmp_path / f"{name}.npz")
        np.savez(data, x=x, y=(np.abs(x[:, 0]) * classes).astype(np.int64) % classes)
        cfg = gs.RetrainConfig(model=prefix, head=f"hidden2/Relu:{classes}", head_hidden=hidden, epochs=2)
        outs[name] = gs.retrain(cfg, data, str(tmp_path / "runs" / name), progress=False)
    # a retrain output directory (checkpoint/ and saved_model/: two copies of one model) gives its saved_model/,
    # named after the directory, as resolve reads it for every command (tests/test_retrain_output.py)
    runs = str(tmp_path / "runs")
    assert load.expand([runs]) == [outs[n].export.saved_model for n in ("four", "three")]
    assert load.default_names(load.expand([runs])) == ["four", "three"]
    assert load.default_names(load.expand([os.path.join(runs, "three")])) == ["three"]
    assert resolve(os.path.join(runs, "three")).export_dir == outs["three"].export.saved_model
    res = merge_heads([os.path.join(runs, "three"), outs["four"].export.checkpoint], "hidden2/Relu",
                      str(tmp_path / "merged"))
    assert [(t["name"], t["source"]) for t in res.tasks] == [("three", outs["three"].export.saved_model),
                                                             ("four", outs["four"].export.checkpoint)]
    # every directory written has the mode mkdir gives (the umask honoured; checkpoint/ and the merged model were 0700)
    os.mkdir(tmp_path / "plain")
    mode = os.stat(tmp_path / "plain").st_mode & 0o7777
    written = [os.path.join(runs, "three", d) for d in ("", "checkpoint", "saved_model")] + [res.directory]
    assert {d: os.stat(d).st_mode & 0o7777 for d in written} == {d: mode for d in written}
    assert [(t["head"]["kind"], t["head"]["stack"], t["classes"]) for t in res.tasks] == [
        ("dense", 0, ["0", "1", "2"]), ("dense", 1, ["0", "1", "2", "3"])]
    # add-head takes a retrain output directory as merge-heads does (it was refused: 'pass .../saved_model')
    added = add_task(res.directory, os.path.join(runs, "four"), str(tmp_path / "merged2"), name="four_again")
    assert (added.tasks[-1]["name"], added.tasks[-1]["source"]) == ("four_again", outs["four"].export.saved_model)
    assert main(["add-head", res.directory, os.path.join(runs, "three"), "--out", str(tmp_path / "merged3"),
                 "--task-name", "three_again", "--json"]) == 0
    merged = serve(res.directory)(inputs=tf.constant(x[:8]), task_id=tf.constant([0, 1] * 4, tf.int64))
    for i, name in enumerate(("three", "four")):
        own = serve(outs[name].export.saved_model)(inputs=tf.constant(x[:8]))["probabilities"].numpy()
        np.testing.assert_allclose(merged["probabilities"].numpy()[i::2, :own.shape[1]], own[i::2], rtol=0, atol=1e-6)
