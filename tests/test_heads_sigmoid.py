"""merge-heads, add-head and remove-head on one-output sigmoid models (binary classifiers, a GAN's
discriminator): such a head is served as two classes, logits [0, z], probabilities [1 - sigmoid(z),
sigmoid(z)] equal to the model's own sigmoid, classes '0'/'1' by argmax; a dense head and a branch alike."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from heads_models import mlp_weights, run_tf1, tf1_task

from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task
from graphsurgeon._src.continual.write import predict
from graphsurgeon._src.multihead.merge import add_task, merge_heads, remove_task

from helpers import ROOT, cli

tf1 = tf.compat.v1
REAL = os.path.join(ROOT, "..", "shared", "realmodels")


def sigmoid_task(directory, head_seed, *, branch=False):
    """tf1_task's backbone (x[12] -> hidden1 relu -> hidden2 tanh, the features, backbone seed 0), then
    one logit ``output/logit`` and ``probability`` = its sigmoid; ``branch``: a leaky relu layer first
    (not a dense stack). Returns the checkpoint prefix."""
    os.makedirs(directory)
    bb = mlp_weights(0, [12, 16, 8])
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 12], name="x")
        h = x
        for (w, b), name, act in zip(bb, ("hidden1", "hidden2"), (tf.nn.relu, tf.tanh)):
            with tf1.variable_scope(name):
                h = act(tf.matmul(h, tf1.get_variable("weights", initializer=w))
                        + tf1.get_variable("biases", initializer=b))
        if branch:
            w, b = mlp_weights(head_seed + 7, [8, 8])[0]
            with tf1.variable_scope("head/extra"):
                h = tf.nn.leaky_relu(tf.matmul(h, tf1.get_variable("weights", initializer=w))
                                     + tf1.get_variable("biases", initializer=b), alpha=0.1)
        (w, b), = mlp_weights(head_seed, [8, 1])
        with tf1.variable_scope("output"):
            z = tf.add(tf.matmul(h, tf1.get_variable("weights", initializer=w * 4)),
                       tf1.get_variable("biases", initializer=b), name="logit")
        tf.sigmoid(z, name="probability")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))


def _check_sigmoid_task(directory, model, task_id, x):
    own = run_tf1(model, x, output="probability:0")[:, 0]
    z = run_tf1(model, x, output="output/logit:0")[:, 0]
    got = predict(directory, x, task_id)
    p, logits = got["probabilities"][:, :2], got["logits"][:, :2]
    np.testing.assert_allclose(p[:, 1], own, rtol=0, atol=1e-6)
    np.testing.assert_allclose(p[:, 0], 1 - own, rtol=0, atol=1e-6)
    assert np.all(logits[:, 0] == 0)
    np.testing.assert_allclose(logits[:, 1], z, rtol=1e-5, atol=1e-5)
    want = np.where(z > 0, b"1", b"0")
    assert list(got["classes"]) == list(want) and {b"0", b"1"} <= set(want)


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    root = tmp_path_factory.mktemp("sigmoid")
    models = {"soft": tf1_task(str(root / "tasks" / "soft"), 3, head_seed=5),
              "dense": sigmoid_task(root / "tasks" / "dense", 11),
              "branch": sigmoid_task(root / "tasks" / "branch", 13, branch=True)}
    res = merge_heads([str(root / "tasks")], "hidden2/Tanh", str(root / "1"))
    x = np.random.default_rng(3).normal(size=(64, 12)).astype(np.float32)
    return root, models, res, x


def test_merged_sigmoid_heads_serve_two_classes_equal_to_the_models_own_sigmoid(merged):
    root, models, res, x = merged
    tab = json.load(open(root / "1" / "tasks.json"))
    by_name = {t["name"]: t for t in tab["tasks"]}
    assert [by_name[n]["num_classes"] for n in ("branch", "dense", "soft")] == [2, 2, 3]
    assert [by_name[n]["classes"] for n in ("branch", "dense")] == [["0", "1"], ["0", "1"]]
    assert {by_name[n]["output"] for n in by_name} == {"probabilities"}
    # tasks.json marks the tasks whose own output is column 1 (the old one said only "probabilities")
    assert [by_name[n]["sigmoid"] for n in ("branch", "dense", "soft")] == [True, True, False]
    lines = {line.split()[2]: line for line in res.format_text().splitlines() if line.startswith("  task ")}
    assert lines["dense"].endswith(" (a one-output sigmoid model: its output is column 1)")
    assert lines["branch"].endswith(" (a one-output sigmoid model: its output is column 1)")
    assert lines["soft"].endswith(str(root / "tasks" / "soft"))
    assert by_name["dense"]["head"]["kind"] == "dense" and by_name["branch"]["head"]["kind"] == "branch"
    for name in ("dense", "branch"):
        _check_sigmoid_task(str(root / "1"), models[name], by_name[name]["id"], x)
    soft = predict(str(root / "1"), x, by_name["soft"]["id"])["probabilities"][:, :3]
    np.testing.assert_allclose(soft, run_tf1(models["soft"], x), atol=1e-6)


def test_add_head_and_remove_head_keep_a_sigmoid_head_as_two_classes(merged):
    root, models, _, x = merged
    more = sigmoid_task(root / "more" / "late", 17)
    add_task(str(root / "1"), more, str(root / "2"))
    tab = json.load(open(root / "2" / "tasks.json"))
    late = next(t for t in tab["tasks"] if t["name"] == "late")
    assert late["num_classes"] == 2 and late["classes"] == ["0", "1"]
    _check_sigmoid_task(str(root / "2"), more, late["id"], x)
    remove_task(str(root / "2"), "dense", str(root / "3"))
    tab = json.load(open(root / "3" / "tasks.json"))
    ids = {t["name"]: t["id"] for t in tab["tasks"]}
    assert "dense" not in ids
    _check_sigmoid_task(str(root / "3"), more, ids["late"], x)
    _check_sigmoid_task(str(root / "3"), models["branch"], ids["branch"], x)
    assert {t["name"]: t["sigmoid"] for t in tab["tasks"]} == {"soft": False, "branch": True, "late": True}


def test_learn_task_keeps_the_sigmoid_mark_of_old_tasks(merged):
    root, _, _, x = merged
    np.savez(root / "xy.npz", x=x, y=np.arange(len(x)) % 2)
    cfg = LearnConfig(model=str(root / "1"), task="new", method="lwf", epochs=1, warmup_epochs=0)  # old heads train
    res = learn_task(cfg, str(root / "xy.npz"), str(root / "learned"), progress=False)
    assert {t["name"]: t["sigmoid"] for t in res.tasks} == {"branch": True, "dense": True, "soft": False,
                                                           "new": False}


@pytest.mark.skipif(not os.path.isdir(REAL), reason="../shared/realmodels is not here (a user's clone)")
def test_merge_heads_on_the_real_gan_discriminator_serves_its_sigmoid_as_two_classes(tmp_path, capfd):
    from sklearn.datasets import load_digits

    gan = os.path.join(REAL, "gan_chadpro")
    code, out, err = cli(capfd, "merge-heads", gan, "--features", "Relu_1", "--input", "x", "--output", "Sigmoid",
                         "--out", tmp_path / "1")
    assert code == 0, err
    assert out.startswith(f"{tmp_path / '1'}: 1 task, 1 backbone group\n")  # not '1 tasks, 1 backbone group(s)'
    assert "gan_chadpro                2 classes  stack 0  probabilities backbone 0  <- " \
           f"{gan} (a one-output sigmoid model: its output is column 1)\n" in out
    images = load_digits().images[:100, :, :, None].astype(np.float32) / 16.0
    with tf.Graph().as_default(), tf1.Session() as s:  # MNIST-sized, pixels in [-1, 1] as the GAN was trained
        x = (s.run(tf1.image.resize_bilinear(images, [28, 28])).reshape(100, 784) * 2 - 1).astype(np.float32)
    own = run_tf1(os.path.join(gan, "model.ckpt"), x, output="Sigmoid:0")[:, 0]
    got = predict(str(tmp_path / "1"), x, 0)
    np.testing.assert_allclose(got["probabilities"][:, 1], own, rtol=0, atol=1e-6)
    assert np.all(got["logits"][:, 0] == 0)
    assert list(got["classes"]) == list(np.where(own > 0.5, b"1", b"0"))
    assert {b"0", b"1"} == set(got["classes"])
