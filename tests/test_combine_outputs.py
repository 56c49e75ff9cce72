"""combine and learn-task take what combine and add-class write: add-class's last layer (a concat of
blocks, the op ``combined/logits`` beside its resource variables ``combined/logits/kernel``, …) is a
branch head, which combine crashed on with ``KeyError 'combined/logits:0'``."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from graphsurgeon._src.add_class import add_class
from graphsurgeon._src.combine import _graph, combine, read_teachers, run_batches
from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task
from graphsurgeon._src.errors import CheckpointNotFoundError
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.storage.multihead_files import load_saved_model

from helpers import cli

tf1 = tf.compat.v1
F = "combined/features"


def _model(directory, seed):
    """x[6] -> features (relu, 8) -> logits (3 classes) -> probabilities, in a checkpoint."""
    os.makedirs(directory)
    rng = np.random.default_rng(seed)
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 6], name="x")
        w1 = tf1.get_variable("hidden/w", initializer=rng.normal(0, 0.5, (6, 8)).astype(np.float32))
        f = tf.nn.relu(tf.matmul(x, w1), name="features")
        w2 = tf1.get_variable("output/w", initializer=rng.normal(0, 0.5, (8, 3)).astype(np.float32))
        tf.nn.softmax(tf.identity(tf.matmul(f, w2), name="logits"), name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))
    return str(directory)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    x = np.random.default_rng(1).normal(size=(40, 6)).astype(np.float32)
    np.savez(root / "x.npz", x=x)
    np.savez(root / "xy.npz", x=x, y=np.arange(40) % 2)
    np.savez(root / "few.npz", x=x[:4] + 3.0)
    a, b, c = (_model(root / n, s) for n, s in (("a", 0), ("b", 1), ("c", 2)))
    ab = combine([(a, "features"), (b, "features")], str(root / "x.npz"), str(root / "ab"), epochs=1,
                 progress=False)
    abc = add_class(ab.directory, str(root / "few.npz"), "new", str(root / "abc"), steps=2)
    return {"root": root, "x": x, "c": c, "ab": ab.directory, "abc": abc.directory, "abc_classes": abc.classes}


def _logits(directory, x):
    sess, meta = load_saved_model(directory)
    with sess:
        sig = meta.signature_def["serving_default"]
        return sess.run(sig.outputs["logits"].name, {sig.inputs["inputs"].name: x})


def test_tensor_spec_of_an_op_named_like_the_scope_of_a_resource_weight():
    with tf.Graph().as_default() as g:
        f = tf1.placeholder(tf.float32, [None, 4], name="f")
        k = tf1.get_variable("logits/kernel", [4, 3], use_resource=True)
        tf.identity(tf.matmul(f, k), name="logits")
    piece, _ = pieces.lift(g.as_graph_def(), "logits", "f")
    assert piece.weights["logits/kernel"].handle
    dtype, shape = pieces.tensor_spec(piece, "logits")
    assert dtype == tf.float32 and shape.as_list() == [None, 3]


def test_combine_takes_add_class_and_combine_outputs(made):
    root, x = made["root"], made["x"]
    teachers = read_teachers([(made["abc"], F), (made["c"], "features")])
    b = _graph(teachers, 10, {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.0}, 0)
    try:
        first, second = run_batches(b.tg.session, b.teacher_logits, b.x, x)
    finally:
        b.tg.close()
    assert np.array_equal(first, _logits(made["abc"], x))  # add-class's head, as it serves
    r = combine([(made["abc"], F), (made["c"], "features")], str(root / "x.npz"), str(root / "abc_c"), epochs=1,
                progress=False)
    assert r.classes == made["abc_classes"] + ["c:0", "c:1", "c:2"]
    assert _logits(r.directory, x).shape == (40, 10)
    r = combine([(made["abc"], F), (made["ab"], F)], str(root / "x.npz"), str(root / "abc_ab"), epochs=1,
                names=["abc", "ab"], progress=False)
    assert r.classes == [f"abc:{c}" for c in made["abc_classes"][:6]] + ["new"] + [
        f"ab:{c}" for c in made["abc_classes"][:6]]


def test_learn_task_takes_an_add_class_output(made):
    root = made["root"]
    r = learn_task(LearnConfig(model=made["abc"], features=F, task="t", method="feature-extraction", epochs=1),
                   str(root / "xy.npz"), str(root / "abc_learn"), progress=False)
    assert os.path.isdir(r.directory)


def test_cli_combines_an_add_class_output(made, capfd):
    root = made["root"]
    code, out, err = cli(capfd, "combine", "--model", made["abc"], "--features", F, "--model", made["c"],
                         "--features", "features", "--data", root / "x.npz", "--out", root / "cli", "--epochs", "1",
                         "--quiet")
    assert code == 0, err
    assert out.startswith(f"{root / 'cli'}: 10 classes (a:0, a:1, a:2, b:0, b:1, b:2, new, c:0, c:1, c:2)")


def test_combine_defaults_to_the_features_model_json_names(made, capfd):
    root = made["root"]
    r = combine([(made["abc"], None), (made["ab"], "")], str(root / "x.npz"), str(root / "dflt"), epochs=1,
                names=["abc", "ab"], progress=False)
    assert r.classes[6] == "new" and len(r.classes) == 13
    models = json.load(open(os.path.join(r.directory, "model.json")))["models"]
    assert [m["features"] for m in models] == [F + ":0", F + ":0"]  # what each model.json named, recorded
    code, out, err = cli(capfd, "combine", "--model", made["abc"], "--model", made["ab"], "--names", "abc,ab",
                         "--data", root / "x.npz", "--out", root / "dflt_cli", "--epochs", "1", "--quiet")
    assert code == 0, err
    assert out.startswith(f"{root / 'dflt_cli'}: 13 classes (abc:a:0,")
    code, out, err = cli(capfd, "combine", "--model", made["abc"], "--features", "", "--model", made["c"],
                         "--features", "features", "--data", root / "x.npz", "--out", root / "mixed", "--epochs", "1",
                         "--quiet")
    assert code == 0, err
    assert out.startswith(f"{root / 'mixed'}: 10 classes (a:0, a:1, a:2, b:0, b:1, b:2, new, c:0, c:1, c:2)")


def test_combine_without_features_refuses_a_model_without_model_json(made, capfd):
    root = made["root"]
    code, out, err = cli(capfd, "combine", "--model", made["abc"], "--model", made["c"], "--data", root / "x.npz",
                         "--out", root / "none", "--quiet")
    assert code == 2 and not os.path.exists(root / "none")
    assert err.strip().endswith(f"{made['c']} has no model.json naming its features (combine and add-class write "
                                "one): give --features TENSOR after its --model")
    assert len(err.strip().splitlines()) == 1


def test_a_path_with_nothing_at_it_is_said_to_be_missing_not_to_lack_model_json(tmp_path, capfd):
    """add-class and combine without --features read model.json first: a mistyped path said 'has no model.json
    naming its features' (give --features), where every other command says nothing is there."""
    missing = str(tmp_path / "nosuch")
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 6), np.float32))
    want = f"no checkpoint, graph or SavedModel at {missing} (looked for {missing}.index, {missing}.meta, a directory)"
    for args in (("add-class", missing, "--name", "new"), ("combine", "--model", missing, "--model", missing)):
        code, out, err = cli(capfd, *args, "--data", tmp_path / "x.npz", "--out", tmp_path / "o", "--quiet"
                             if args[0] == "combine" else "--steps=1")
        assert code == 2 and not os.path.exists(tmp_path / "o")
        assert f"error: {want}; " in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint, graph or SavedModel at "):
        add_class(missing, tmp_path / "x.npz", "new", str(tmp_path / "o"))
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint, graph or SavedModel at "):
        combine([(missing, None), (missing, None)], tmp_path / "x.npz", str(tmp_path / "o"))


def test_no_command_writes_its_output_in_or_below_a_directory_a_model_is_read_from(made, capfd, tmp_path):
    """add-class, combine, merge-heads, add-head and remove-head wrote an --out inside a model's directory
    (add-head --out DIR/sub changed DIR, which they say is not changed; merge-heads tasks/ --out tasks/merged made
    the next merge-heads tasks/ read the merged model as a task); retrain and learn-task refused it."""
    root = made["root"]
    tasks = tmp_path / "tasks"
    for n, s in (("a", 0), ("b", 1)):
        _model(tasks / n, s)
    code, out, err = cli(capfd, "merge-heads", tasks / "a", tasks / "b", "--features", "features", "--out",
                         tmp_path / "v" / "1", "--no-verify", "--group-backbones")
    assert code == 0, err

    def refused(where, *args):
        code, out, err = cli(capfd, *args)
        assert code == 2 and err.count("\n") == 1, err
        assert err.endswith(f"is inside {os.path.realpath(where)}, a directory the model is read from; the output "
                            "may not go in or below one: choose a directory elsewhere\n"), err
    refused(made["ab"], "add-class", made["ab"], "--data", root / "few.npz", "--name", "n2", "--out",
            os.path.join(made["ab"], "x"))
    refused(made["c"], "combine", "--model", made["ab"], "--model", made["c"], "--features", "", "--features",
            "features", "--data", root / "x.npz", "--out", os.path.join(made["c"], "x"), "--quiet")
    refused(tasks, "merge-heads", tasks, "--features", "features", "--out", tasks / "merged")
    refused(tmp_path / "v" / "1", "add-head", tmp_path / "v" / "1", made["c"], "--out", tmp_path / "v" / "1" / "x")
    refused(made["c"], "add-head", tmp_path / "v" / "1", made["c"], "--out", os.path.join(made["c"], "x"))
    refused(tmp_path / "v" / "1", "remove-head", tmp_path / "v" / "1", "a", "--out", tmp_path / "v" / "1" / "x")
    for bad in (tasks / "merged", tmp_path / "v" / "1" / "x", os.path.join(made["ab"], "x"),
                os.path.join(made["c"], "x")):
        assert not os.path.exists(bad)
