"""Data and original models for example 05, from scikit-learn's bundled digits (8×8, 1,797 images).

    python digits_tasks.py OUT [--seed S] [--epochs N]

writes into OUT:

* ``digits04.npz``, ``digits59.npz``, ``digits58.npz``, ``digits08_unlabelled.npz``,
  ``digits08.npz``, ``digit9_10.npz``: inputs ``x`` [N, 64] in [0, 1], labels ``y`` (in each file's
  own class order), ``split`` (train 70 % / test 30 %, stratified, from ``--seed``) and ``classes``;
* ``digits04/``, ``digits58/``: legacy TF1 models (raw ``tf.compat.v1`` ops, reference variables,
  ``tf.train.Saver``) trained on digits 0–4 and 5–8: ``x`` → ``hidden1`` (64, relu) → ``hidden2``
  (32, relu; the features) → ``output`` → ``probabilities``, with ``labels.txt``;
* ``digits09/``: the same network trained jointly on digits 0–8 (9 classes), the reference of the
  many-to-one comparison.

Nothing here is part of graphsurgeon: it stands in for models and data someone already has.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
FEATURES = "hidden2/Relu"


def digits():
    """scikit-learn's digits: ``x`` [1797, 64] float32 in [0, 1], ``y`` int64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def split(y: np.ndarray, seed: int, test: float = 0.3) -> np.ndarray:
    """A stratified train/test split of ``y``: ``"train"``/``"test"`` per example."""
    rng = np.random.default_rng(seed)
    out = np.array(["train"] * len(y), dtype=object)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        out[idx[: int(round(test * len(idx)))]] = "test"
    return out.astype(str)


def save_task(path: str, x, y, parts, classes) -> str:
    np.savez(path, x=x, y=y, split=parts, classes=np.array([str(c) for c in classes]))
    return path


def _dense(x, units, scope, seed, act=True):
    with tf1.variable_scope(scope, use_resource=False):
        w = tf1.get_variable("weights", [x.shape[-1], units], initializer=tf1.glorot_uniform_initializer(seed=seed))
        b = tf1.get_variable("biases", [units], initializer=tf1.zeros_initializer())
        y = tf.nn.bias_add(tf.matmul(x, w), b)
        return tf.nn.relu(y) if act else y


def train_model(directory: str, x, y, classes, *, epochs: int = 40, seed: int = 0, lr: float = 0.01) -> str:
    """Train the legacy MLP on ``(x, y)`` and save it with ``Saver`` into ``directory`` (+ ``labels.txt``)."""
    os.makedirs(directory, exist_ok=True)
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(seed)
        X = tf1.placeholder(tf.float32, (None, 64), name="x")
        Y = tf1.placeholder(tf.int64, (None,), name="y")
        h = _dense(X, 64, "hidden1", seed)
        h = _dense(h, 32, "hidden2", seed + 1)
        logits = _dense(h, len(classes), "output", seed + 2, act=False)
        tf.nn.softmax(logits, name="probabilities")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=Y, logits=logits))
        step = tf1.train.AdamOptimizer(lr).minimize(loss)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            rng = np.random.default_rng(seed)
            for _ in range(epochs):
                order = rng.permutation(len(y))
                for i in range(0, len(y), 32):
                    s.run(step, {X: x[order[i:i + 32]], Y: y[order[i:i + 32]]})
            tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"), global_step=epochs)
    with open(os.path.join(directory, "labels.txt"), "w") as f:
        f.write("".join(f"{c}\n" for c in classes))
    return directory


def make(out: str, seed: int = 0, epochs: int = 40) -> dict:
    """Write every file of the example into ``out``; returns their paths by name."""
    os.makedirs(out, exist_ok=True)
    x, y = digits()
    parts = split(y, seed)
    p = {}
    for name, keep, offset in (("digits04", y < 5, 0), ("digits59", y >= 5, 5), ("digits58", (y >= 5) & (y < 9), 5),
                               ("digits08", y < 9, 0)):
        classes = [int(c) for c in np.unique(y[keep])]
        p[name] = save_task(os.path.join(out, f"{name}.npz"), x[keep], y[keep] - offset, parts[keep], classes)
    keep = y < 9
    np.savez(os.path.join(out, "digits08_unlabelled.npz"), x=x[keep & (parts == "train")])
    p["digits08_unlabelled"] = os.path.join(out, "digits08_unlabelled.npz")
    nines = np.flatnonzero((y == 9) & (parts == "train"))
    few = np.random.default_rng(seed + 9).choice(nines, 10, replace=False)
    p["digit9_10"] = save_task(os.path.join(out, "digit9_10.npz"), x[few], np.zeros(10, np.int64),
                               np.array(["train"] * 10), [9])
    for name, classes in (("digits04", range(5)), ("digits58", range(5, 9)), ("digits08", range(9))):
        with np.load(p[name]) as d:
            tr = d["split"] == "train"
            model = "digits09" if name == "digits08" else name
            p[model + "_model"] = train_model(os.path.join(out, model), d["x"][tr], d["y"][tr], list(classes),
                                              epochs=epochs, seed=seed)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    for name, path in make(args.out, args.seed, args.epochs).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
