"""Many heads', learn-task's and add-class's errors name the library's arguments (``features=``,
``verify=False``, ``mask_lr=``); the command line says its flags (``--features``, ``--no-verify``,
``--mask-lr``), one exact stderr line per failure."""
import json
import os

import heads_models as hm
import numpy as np
import pytest
import tensorflow as tf

from graphsurgeon._src.add_class import add_class
from graphsurgeon._src.cli import main, to_flags
from graphsurgeon._src.cli.messages import command_flags
from graphsurgeon._src.errors import ConfigError, MergeHeadsError, TensorNotFoundError
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.multihead import verify
from graphsurgeon._src.multihead.merge import MergeResult, add_task, merge_heads, remove_task

from helpers import cli

tf1 = tf.compat.v1


def _complex_input_task(directory):
    """A TF1 model whose input is complex64: no probe values exist for it, so it cannot be verified."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.complex64, [None, 4], name="x")
        h = tf.tanh(tf.matmul(tf.math.real(x), tf1.get_variable("w", [4, 8])), name="features")
        tf.nn.softmax(tf.matmul(h, tf1.get_variable("o", [8, 2])), name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("msgs")
    m = {"good": hm.tf1_task(str(d / "good"), 2, 1), "good2": hm.tf1_task(str(d / "good2"), 3, 4),
         "skip": hm.tf1_task(str(d / "skip"), 2, 3, head="skip"),
         "moved": hm.tf1_task(str(d / "moved"), 2, 5, perturb=(1, 0.031)),
         "complex": _complex_input_task(str(d / "complex")), "dir": str(d)}
    m["merged"] = merge_heads([m["good"], m["good2"]], "hidden2/Tanh", str(d / "merged")).directory
    return m


def _cases(m):
    """``(library call, error type, what the library says, command line, the exact stderr line)``;
    every flag the many-heads messages name appears at least once."""
    good, good2, out = m["good"], m["good2"], os.path.join(m["dir"], "new")
    closest1 = "hidden1/Relu, hidden1, hidden1/add, hidden1/biases, hidden1/MatMul"
    closest = "hidden2/Tanh, hidden2/add, hidden2, hidden2/Const, hidden1/add"
    return [
        (lambda: merge_heads([good], "hidden2/Tan", out), TensorNotFoundError,
         f"{good}: features=hidden2/Tan is not a tensor of this model; closest: {closest}",
         ["merge-heads", good, "--features", "hidden2/Tan", "--out", out],
         f"graphsurgeon merge-heads: error: {good}: --features hidden2/Tan is not a tensor of this model; "
         f"closest: {closest}"),
        (lambda: merge_heads([good], "hidden2/Tanh", out, input="hidden1/Rel"), TensorNotFoundError,
         f"{good}: input=hidden1/Rel is not a tensor of this model; closest: {closest1}",
         ["merge-heads", good, "--features", "hidden2/Tanh", "--input", "hidden1/Rel", "--out", out],
         f"graphsurgeon merge-heads: error: {good}: --input hidden1/Rel is not a tensor of this model; "
         f"closest: {closest1}"),
        (lambda: merge_heads([good], "hidden2/Tanh", out, output="logit"), TensorNotFoundError,
         f"{good}: output=logit is not a tensor of this model; closest: logits, loss, init, gradients, Const",
         ["merge-heads", good, "--features", "hidden2/Tanh", "--output", "logit", "--out", out],
         f"graphsurgeon merge-heads: error: {good}: --output logit is not a tensor of this model; "
         "closest: logits, loss, init, gradients, Const"),
        (lambda: merge_heads([good], "probabilities", out), MergeHeadsError,
         f"{good}: cannot tell the model's output above features=probabilities:0 (candidates: none); name it with "
         "output=",
         ["merge-heads", good, "--features", "probabilities", "--out", out],
         f"graphsurgeon merge-heads: error: {good}: cannot tell the model's output above --features probabilities:0 "
         "(candidates: none); name it with --output"),
        (lambda: merge_heads([good], "probabilities", out, output="probabilities"), MergeHeadsError,
         f"{good}: the model's output probabilities:0 is the features tensor itself (features=probabilities:0); "
         "there is no head above it",
         ["merge-heads", good, "--features", "probabilities", "--output", "probabilities", "--out", out],
         f"graphsurgeon merge-heads: error: {good}: the model's output probabilities:0 is the features tensor itself "
         "(--features probabilities:0); there is no head above it"),
        (lambda: merge_heads([good], "hidden2/Tanh", out, output="hidden1/Relu"), MergeHeadsError,
         f"{good}: the model's output hidden1/Relu:0 is not computed from features=hidden2/Tanh:0; name an output "
         "above the features with output=",
         ["merge-heads", good, "--features", "hidden2/Tanh", "--output", "hidden1/Relu", "--out", out],
         f"graphsurgeon merge-heads: error: {good}: the model's output hidden1/Relu:0 is not computed from "
         "--features hidden2/Tanh:0; name an output above the features with --output"),
        (lambda: merge_heads([m["skip"]], "hidden2/Tanh", out), MergeHeadsError,
         f"{m['skip']}: op 'head/skip/MatMul' above features=hidden2/Tanh:0 reads 'hidden1/Relu', which lies below "
         "it; a head must read only the features (choose a features= tensor above every op the head reads)",
         ["merge-heads", m["skip"], "--features", "hidden2/Tanh", "--out", out],
         f"graphsurgeon merge-heads: error: {m['skip']}: op 'head/skip/MatMul' above --features hidden2/Tanh:0 reads "
         "'hidden1/Relu', which lies below it; a head must read only the features (choose a --features tensor "
         "above every op the head reads)"),
        (lambda: merge_heads([good, good2], "hidden2/Tanh", out, task_names=["same", "same"]), MergeHeadsError,
         "task names: duplicate task name 'same'; every task needs its own name (see task_names=)",
         None, None),  # the command line reads the names from a file: the next case
        (None, None, None,
         ["merge-heads", good, good2, "--features", "hidden2/Tanh", "--out", out, "--task-names", m["names"]],
         f"graphsurgeon merge-heads: error: {m['names']}: duplicate task name 'same'; every task needs its own "
         "name (see --task-names)"),
        (lambda: merge_heads([good, m["moved"]], "hidden2/Tanh", out), MergeHeadsError,
         "; pass group_backbones=True to build one backbone per group, or a larger atol= to accept differences "
         "this small",
         ["merge-heads", good, m["moved"], "--features", "hidden2/Tanh", "--out", out],
         "graphsurgeon merge-heads: error: backbone weights differ (atol 0): task 1 (moved) differs from the rest in "
         "hidden2/weights (max |Δ| 0.031, relative 0.0164); pass --group-backbones to build one backbone per "
         "group, or a larger --atol to accept differences this small"),
        (lambda: merge_heads([good], "hidden2/Tanh", m["merged"]), ConfigError,
         f"{m['merged']} exists; merged models are written to a new directory (choose another out=)",
         ["merge-heads", good, "--features", "hidden2/Tanh", "--out", m["merged"]],
         f"graphsurgeon merge-heads: error: {m['merged']} exists; merged models are written to a new directory "
         "(choose another --out)"),
        (lambda: add_task(m["merged"], good), ConfigError,
         f"{m['merged']}: its name is not a version number; say where the new version goes (out=DIR)",
         ["add-head", m["merged"], good],
         f"graphsurgeon add-head: error: {m['merged']}: its name is not a version number; say where the new version "
         "goes (--out DIR)"),
        # a version directory that is not there was said to have a name that is no version number
        (lambda: add_task(os.path.join(m["dir"], "nosuch"), good), MergeHeadsError,
         f"{m['dir']}/nosuch: no such directory; expected a directory written by graphsurgeon merge-heads",
         ["add-head", os.path.join(m["dir"], "nosuch"), good],
         f"graphsurgeon add-head: error: {m['dir']}/nosuch: no such directory; expected a directory written by "
         "graphsurgeon merge-heads"),
        (lambda: remove_task(os.path.join(m["dir"], "7"), "good"), MergeHeadsError,
         f"{m['dir']}/7: no such directory; expected a directory written by graphsurgeon merge-heads",
         ["remove-head", os.path.join(m["dir"], "7"), "good"],
         f"graphsurgeon remove-head: error: {m['dir']}/7: no such directory; expected a directory written by "
         "graphsurgeon merge-heads"),
        (lambda: add_task(m["merged"], good, out, name="good2"), MergeHeadsError,
         f"{m['merged']} + {good}: duplicate task name 'good2'; every task needs its own name (see name=)",
         ["add-head", m["merged"], good, "--out", out, "--task-name", "good2"],
         f"graphsurgeon add-head: error: {m['merged']} + {good}: duplicate task name 'good2'; every task needs its "
         "own name (see --task-name)"),
        (lambda: merge_heads([m["complex"]], "features", out), MergeHeadsError,
         "cannot make probe inputs of dtype complex64 to verify the written model; pass verify=False to skip it",
         ["merge-heads", m["complex"], "--features", "features", "--out", out],
         "graphsurgeon merge-heads: error: cannot make probe inputs of dtype complex64 to verify the written model; "
         "pass --no-verify to skip it"),
    ]


@pytest.fixture(scope="module")
def cases(models):
    names = os.path.join(models["dir"], "names.txt")
    with open(names, "w") as f:
        f.write("same\nsame\n")
    return _cases({**models, "names": names})


def test_library_errors_name_arguments(cases, models):
    for call, error, says, _, _ in cases:
        if call is None:
            continue
        with pytest.raises(error) as e:
            call()
        assert says in str(e.value), str(e.value)
        assert "--" not in str(e.value), str(e.value)  # no flag: the library's words are its arguments
    assert not os.path.exists(os.path.join(models["dir"], "new"))


def test_the_command_line_says_its_flags(cases, models, capsys):
    for _, _, _, argv, line in cases:
        if argv is None:
            continue
        assert main(argv + ["--verbose"]) == 2
        err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("graphsurgeon")]
        assert err == [line], err
    assert not os.path.exists(os.path.join(models["dir"], "new"))


def test_a_complex_input_model_merges_unverified(models, tmp_path):
    res = merge_heads([models["complex"]], "features", str(tmp_path / "out"), verify=False)
    assert res.max_abs_diff is None and len(res.tasks) == 1


def test_removing_a_task_that_is_not_there_names_the_tasks_that_are(models, tmp_path, capsys):
    """remove-head DIR a said "no task 'a' (ids 0..1; tasks.json lists the names)": no name to pick from,
    and after a removal the ids are not a range (task 0 removed from 0..1 left 'ids 1..1')."""
    one = remove_task(models["merged"], 0, str(tmp_path / "one")).directory
    with pytest.raises(MergeHeadsError) as e:
        remove_task(one, "good", str(tmp_path / "two"))
    assert str(e.value) == f"{one}: no task 'good' (tasks by id and name: 1 good2)"
    assert main(["remove-head", models["merged"], "nosuch", "--out", str(tmp_path / "three"), "--verbose"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"graphsurgeon remove-head: error: {models['merged']}: no task 'nosuch' (tasks by id and name: 0 good, 1 good2)"]
    assert not os.path.exists(tmp_path / "two") and not os.path.exists(tmp_path / "three")


def test_flag_words_and_their_commands():
    assert to_flags("pass verify=False to skip it; choose another out=) or out=DIR") == \
        "pass --no-verify to skip it; choose another --out) or --out DIR"
    assert command_flags("(see name=)", "add-head") == "(see --task-name)"
    assert command_flags("name='' needs a name", "add-class") == "--name '' needs a name"
    assert command_flags("(see name=)", "merge-heads") == "(see name=)"
    # elsewhere name= is no flag (TF2's tf.Variable(name=) in migrate's messages)
    assert to_flags("TF2 variables made without name= share one") == "TF2 variables made without name= share one"
    assert to_flags("features=f:0 reads 2 placeholders; name the input with input=") == \
        "--features f:0 reads 2 placeholders; name the input with --input"
    assert to_flags("pass group_backbones=True or a larger atol=; task_names=") == \
        "pass --group-backbones or a larger --atol; --task-names"
    with pytest.raises(MergeHeadsError, match=r"dtype complex64 to verify the written model$"):
        verify.probe(tf.complex64, tf.TensorShape([None, 2]))  # learn-task's check: no option to skip it


@pytest.mark.parametrize("argv,line", [
    (["learn-task", "{good}", "--data", "x.npz", "--task", "t", "--method", "lwf", "--out", "o", "--mask-lr", "0"],
     "graphsurgeon learn-task: error: --mask-lr 0.0: expected a number > 0"),
    (["learn-task", "{good}", "--data", "x.npz", "--task", "t", "--method", "lwf", "--out", "o",
      "--backbone-lr-mult", "-1"], "graphsurgeon learn-task: error: --backbone-lr-mult -1.0: expected a multiplier >= 0"),
    (["learn-task", "{good}", "--data", "x.npz", "--task", "t", "--method", "ewc", "--out", "o",
      "--fisher-samples", "0"], "graphsurgeon learn-task: error: --fisher-samples 0: expected an integer >= 1"),
    (["add-class", "{dir}", "--data", "x.npz", "--name", "n", "--out", "{dir}/new", "--steps", "0"],
     "graphsurgeon add-class: error: --steps 0, --lr 0.01: expected an integer >= 1 and a number > 0"),
    (["add-class", "{dir}", "--data", "x.npz", "--name", "n", "--out", "{dir}"],
     "graphsurgeon add-class: error: {dir} exists; add-class writes a new directory (choose another --out)"),
])
def test_continual_and_classifier_settings_say_their_flags(models, argv, line, capsys):
    argv = [a.format(**models) for a in argv]
    argv = [argv[0], "--model", argv[1], *argv[2:]] if argv[0] == "learn-task" else argv
    assert main(argv + ["--verbose"]) == 2
    assert [x for x in capsys.readouterr().err.splitlines() if x.startswith("graphsurgeon")] == [line.format(**models)]


def test_add_head_names_the_merged_models_features_not_a_flag_it_lacks(models, capsys):
    # add-head splits the new model where the merged model's tasks.json says: the library says features=,
    # the command line (which has no --features) says whose features they are
    m, out = models, os.path.join(models["dir"], "new_complex")
    with pytest.raises(TensorNotFoundError, match=rf"^{m['complex']}: features=hidden2/Tanh is not a tensor"):
        add_task(m["merged"], m["complex"], out)
    assert main(["add-head", m["merged"], m["complex"], "--out", out, "--verbose"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("graphsurgeon")]
    assert len(err) == 1 and err[0].startswith(f"graphsurgeon add-head: error: {m['complex']}: the merged model's features hidden2/Tanh "
                          "is not a tensor of this model; closest: ") and "--features" not in err[0]


def _flat_output_task(directory):
    """A TF1 model whose likely output is its logits reshaped to one axis (as the real lenet_noyin's loss
    reshapes them): no class count; its logits are 'logits'."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        f = tf.tanh(tf.matmul(x, tf1.get_variable("w", [4, 8])), name="features")
        logits = tf.add(tf.matmul(f, tf1.get_variable("o", [8, 3])), tf1.get_variable("b", [3]), name="logits")
        tf.reshape(logits, [-1], name="flat")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))


def test_add_class_extends_the_output_it_is_given(tmp_path, capsys):
    # add-class took the graph's likely output (the real lenet_noyin's Reshape_2, [None, None]) and had no --output
    path = _flat_output_task(str(tmp_path / "flat"))
    rng = np.random.default_rng(0)
    few, ref = str(tmp_path / "few.npz"), str(tmp_path / "ref.npz")
    np.savez(few, x=rng.normal(size=(4, 4)).astype(np.float32))
    np.savez(ref, x=rng.normal(size=(20, 4)).astype(np.float32))
    with pytest.raises(MergeHeadsError, match=r"the head's output flat:0 has shape \(None,\); a head must give "
                                              r"\[batch, classes\] with a known class count; name such a tensor with "
                                              r"output=$"):
        add_class(path, few, "new", str(tmp_path / "a"), features="features", output="flat", reference=ref)
    r = add_class(path, few, "new", str(tmp_path / "b"), features="features", output="logits", reference=ref, steps=5)
    assert r.classes == ["0", "1", "2", "new"]
    argv = ["add-class", path, "--features", "features", "--data", few, "--reference", ref, "--name", "new",
            "--steps", "5", "--verbose", "--out"]
    assert main(argv + [str(tmp_path / "c"), "--output", "logits"]) == 0
    assert main(argv + [str(tmp_path / "d"), "--output", "flat"]) == 2
    assert capsys.readouterr().err.strip().endswith("a head must give [batch, classes] with a known class count; "
                                                    "name such a tensor with --output")


def test_ewc_names_every_old_task_without_a_fisher_before_computing_any(models, tmp_path, capsys):
    # it computed the first old task's Fisher from --old-data, then named the next one missing, one per run
    import graphsurgeon as gs

    data = str(tmp_path / "new.npz")
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.normal(size=(20, 12)).astype(np.float32), y=rng.integers(0, 2, 20))
    merged = models["merged"]
    with pytest.raises(gs.ContinualError, match=rf"^no Fisher information for old tasks 'good', 'good2' of {merged}: "
                                                r"give fisher=FILE \(.*\) or old_data=\{'good': PATH, 'good2': PATH\} "
                                                r"to compute it$"):
        gs.learn_task(gs.LearnConfig(model=merged, task="t", method="ewc"), data, str(tmp_path / "o"))
    argv = ["learn-task", "--model", merged, "--data", data, "--task", "t", "--method", "ewc", "--out",
            str(tmp_path / "o"), "--verbose"]
    assert main(argv + ["--old-data", f"good={data}"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("graphsurgeon")]
    assert err == [f"graphsurgeon learn-task: error: no Fisher information for old task 'good2' of {merged}: give "
                   "--fisher FILE (the continual/fisher.npz an ewc run wrote for these weights) or --old-data "
                   "good2=PATH to compute it"], err
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().endswith("or --old-data good=PATH good2=PATH to compute it")
    assert not os.path.exists(tmp_path / "o")
    # with both: the old tasks' Fisher computed in the run is stored and reported, not only the new task's
    assert main(argv + ["--old-data", f"good={data}", f"good2={data}", "--epochs", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    fisher = r["extra_bytes"]["fisher"]
    assert fisher > 0 and r["old_fisher_bytes"] == 2 * fisher
    assert sorted(r["extra_bytes"]) == ["fisher", "head"]  # only what the new task adds
    assert r["notes"] == ["the Fisher information of old tasks 'good', 'good2' was computed from old data and stored "
                          "beside the new task's in continual/fisher.npz"]
    with np.load(tmp_path / "o" / "continual" / "fisher.npz") as z:
        assert sum(z[k].nbytes for k in z.files if not k.startswith("_")) >= 3 * fisher
    assert main(argv[:-2] + [str(tmp_path / "o2"), "--old-data", f"good={data}", f"good2={data}", "--epochs",
                             "1"]) == 0
    assert (f"the new task adds head {r['extra_bytes']['head']:,}, fisher {fisher:,} bytes; the old tasks' Fisher "
            f"information computed in this run adds {2 * fisher:,} bytes") in capsys.readouterr().out


def test_the_summary_says_an_exact_match_is_equal_not_within_0():
    """'verified: every task's output within 0 of its own head' for heads that matched exactly."""
    def said(diff):
        res = MergeResult("v/1", [], [], [], {"saved_model": 10, "backbone": 6, "heads": 4}, diff)
        return res.format_text().splitlines()[-1]

    assert said(0.0) == "verified: every task's output equal to its own head's on probe inputs"
    assert said(3e-7) == "verified: every task's output within 3e-07 of its own head on probe inputs"
    assert "verified" not in MergeResult("v/1", [], [], [], {"saved_model": 10, "backbone": 6, "heads": 4},
                                         None).format_text()


def _scalar_task(directory, features_scalar: bool = False, scalar: bool = True):
    """A TF1 model fed one scalar ``x`` (shape []), reshaped to a row; with ``features_scalar`` its features
    ``features`` are a scalar too (the sum of the row), else the row ``features`` [1, 8]; without ``scalar``
    neither: ``x`` [None, 4] and ``features`` [None, 8] (a model to merge, then add the others to)."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4] if features_scalar or not scalar else [], name="x")
        row = x if not scalar else tf.reshape(x, [-1, 4]) if features_scalar else tf.reshape(x, [1, 1]) * tf.ones([1, 4])
        h = tf.tanh(tf.matmul(row, tf1.get_variable("w", [4, 8])))
        h = tf.reduce_sum(h, name="features") if features_scalar else tf.identity(h, name="features")
        tf.nn.softmax(tf.matmul(tf.reshape(h, [-1, 1]) * tf.ones([1, 8]) if features_scalar else h,
                                tf1.get_variable("o", [8, 2])), name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))


def test_a_scalar_input_or_scalar_features_are_refused_naming_the_tensor(tmp_path, capfd):
    """A scalar has no axis 0 to hold a batch of examples: merge-heads failed in the probe with 'op 'Reshape'
    (Reshape) failed', and the piece's placeholder had unknown rank (a rank-0 input read as unknown). Each
    command says what it can be given instead: add-class has no --input, add-head takes the merged model's
    input and features from its tasks.json."""
    scalar_in = _scalar_task(str(tmp_path / "scalar_in"))
    scalar_features = _scalar_task(str(tmp_path / "scalar_features"), features_scalar=True)
    with pytest.raises(MergeHeadsError) as e:
        merge_heads([scalar_features], "features", str(tmp_path / "m2"))
    assert str(e.value) == (f"{scalar_features}: features=features:0 is a scalar (shape []): its examples come in "
                            "batches along axis 0, and a scalar has none; give features=TENSOR, a tensor with a "
                            "batch axis")
    says = "is a scalar (shape []): its examples come in batches along axis 0, and a scalar has none"
    merged = merge_heads([_scalar_task(str(tmp_path / "rows"), scalar=False)], "features",
                         str(tmp_path / "merged")).directory
    np.savez(tmp_path / "few.npz", x=np.zeros([2], np.float32))
    add_class_argv = ["add-class", "--features", "features", "--data", tmp_path / "few.npz", "--name", "new",
                      "--out", tmp_path / "c"]
    for argv, line in [
        (["merge-heads", scalar_in, "--features", "features", "--out", tmp_path / "m"],
         f"merge-heads: error: {scalar_in}: the input x:0 {says}; give --input TENSOR, a tensor with a batch axis"),
        (["merge-heads", scalar_features, "--features", "features", "--out", tmp_path / "m"],
         f"merge-heads: error: {scalar_features}: --features features:0 {says}; give --features TENSOR, a tensor "
         "with a batch axis"),
        ([*add_class_argv, scalar_in],
         f"add-class: error: {scalar_in}: the input x:0 {says}; add-class has no way to name another input (give a "
         "model whose input has a batch axis)"),
        ([*add_class_argv, scalar_features],
         f"add-class: error: {scalar_features}: the model's features features:0 {says}; give --features TENSOR, a "
         "tensor with a batch axis"),
        (["add-head", merged, scalar_in, "--out", tmp_path / "a"],
         f"add-head: error: {scalar_in}: the input x:0 {says}; add-head cannot take such a model: the merged "
         "model's input is fixed"),
        (["add-head", merged, scalar_features, "--out", tmp_path / "a"],
         f"add-head: error: {scalar_features}: the merged model's features features:0 {says}; add-head cannot take "
         "such a model: the merged model's features are fixed"),
    ]:
        code, out, err = cli(capfd, *argv)
        assert (code, out, err) == (2, "", f"graphsurgeon {line}\n")
    assert not any(os.path.exists(tmp_path / d) for d in ("m", "m2", "c", "a"))
    g = tf.Graph()
    with g.as_default():
        tf.identity(tf1.placeholder(tf.float32, [], name="x") * 2.0, name="y")
    piece, _ = pieces.lift(g.as_graph_def(), "y", "x")
    with tf.Graph().as_default(), pytest.raises(MergeHeadsError, match=r"^the input x:0 is a scalar \(shape \[\]\)"):
        pieces.input_placeholder(piece, "inputs")
