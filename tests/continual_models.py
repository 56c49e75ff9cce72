"""The small classifiers the continual and heads tests build (test_continual_random*.py, test_continual_batch.py,
test_heads_random.py, test_learn_task_model_json.py, test_combine_class_names.py),
with whatever op they need placed below or above its features. Nothing here is part of the library."""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


def small_classifier(directory, *, below=None, above=None) -> str:
    """``x[6] -> hidden/w`` (relu) ``-> below(h) ->`` the features ``features`` ``-> above(f) -> output/w ->
    logits`` (3 classes) ``-> probabilities``, weights drawn with seed 0, saved as ``directory/model.ckpt``
    by a Saver. ``below`` and ``above`` (default: nothing) add ops in the graph being built, in that order."""
    os.makedirs(directory)
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 6], name="x")
        w1 = tf1.get_variable("hidden/w", initializer=rng.normal(0, 0.5, (6, 8)).astype(np.float32))
        h = tf.nn.relu(tf.matmul(x, w1))
        f = tf.identity(below(h) if below else h, name="features")
        w2 = tf1.get_variable("output/w", initializer=rng.normal(0, 0.5, (8, 3)).astype(np.float32))
        logits = tf.identity(tf.matmul(above(f) if above else f, w2), name="logits")
        tf.nn.softmax(logits, name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))
    return str(directory)


def small_data(root) -> dict:
    """``x.npz`` (40 rows), ``xy.npz`` (the same with labels 0/1) and ``few.npz`` (4 rows shifted by 3: a new
    class) in ``root``; their paths and ``root``."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    np.savez(root / "x.npz", x=x)
    np.savez(root / "xy.npz", x=x, y=rng.integers(0, 2, 40))
    np.savez(root / "few.npz", x=x[:4] + 3.0)
    return {"x": str(root / "x.npz"), "xy": str(root / "xy.npz"), "few": str(root / "few.npz"), "root": root}


def relu_classifier(directory, *, seed: int = 0, above=None, logits: bool = False, labels=None) -> str:
    """``x[6] ->`` the features ``hidden/Relu`` (weights ``hidden/w``) ``-> above(h) -> output/w ->`` (with
    ``logits`` an identity ``logits`` ->) ``probabilities`` (3 classes), weights drawn with ``seed``, saved as
    ``directory/model.ckpt`` by a Saver; ``labels``: the lines of a ``labels.txt`` beside it."""
    os.makedirs(directory)
    rng = np.random.default_rng(seed)
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 6], name="x")
        with tf1.variable_scope("hidden"):
            h = tf.nn.relu(tf.matmul(x, tf1.get_variable("w", initializer=rng.normal(0, .5, (6, 8)).astype(np.float32))))
        w2 = tf1.get_variable("output/w", initializer=rng.normal(0, 0.5, (8, 3)).astype(np.float32))
        out = tf.matmul(above(h) if above else h, w2)
        tf.nn.softmax(tf.identity(out, name="logits") if logits else out, name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))
    if labels:
        with open(os.path.join(directory, "labels.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(labels) + "\n")
    return str(directory)


def continual_command(command: str, model: str, other: str, data: dict) -> list:
    """The ``add-class``, ``combine`` (``model`` and ``other``) or ``learn-task`` command line the CLI tests run on
    features 'features' of ``model``, with :func:`small_data`'s files (``--out`` not given)."""
    return {"add-class": ["add-class", model, "--features", "features", "--output", "logits", "--data", data["few"],
                          "--name", "new", "--reference", data["x"], "--steps", "2"],
            "combine": ["combine", "--model", model, "--model", other, "--features", "features", "--data", data["x"],
                        "--epochs", "1", "--quiet"],
            "learn-task": ["learn-task", "--model", model, "--features", "features", "--data", data["xy"], "--task",
                           "new", "--method", "feature-extraction", "--epochs", "1", "--quiet"]}[command]
