"""The embedded demo (``graphsurgeon demo``): does a legacy TF1 model help when the new task has
few labels?

1. :mod:`~graphsurgeon._src.demo.lenet` trains the original model the 2017 way: a small conv net
   (raw ``tf.compat.v1`` ops, reference variables, ``tf.train.Saver``) on scikit-learn's digits 0-4,
   placed at random on a 12x12 canvas (:mod:`~graphsurgeon._src.demo.data`).
2. The new task is digits 5-9 with k labelled images per class, tested on 400 images no run
   trains on.
3. :mod:`~graphsurgeon._src.demo.curve` measures the learning curve: a new head from a bottleneck
   cache, the head plus ``fc1`` fine-tuned at a lower rate, and the same network from scratch, for
   k in 1, 2, 5, 10, 20, all, over several seeds (:mod:`~graphsurgeon._src.demo.report` prints it,
   as JSON too, and draws it when matplotlib is installed).
4. One ``graphsurgeon.retrain`` run is exported, and the SavedModel is served and checked against
   the retrained graph (:mod:`~graphsurgeon._src.demo.main`).

``train_mlp``, ``digits`` and ``LAYERS`` build seed 004's MLP for example 01 and
``benchmarks/defaults_bench.py``.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphsurgeon._src.demo.data import digits
from graphsurgeon._src.demo.main import EXPORTED, Result, run
from graphsurgeon._src.storage.session import new_session, save_checkpoint

tf1 = tf.compat.v1

LAYERS = (("hidden1", 64), ("hidden2", 48), ("hidden3", 32))  # example 01 sets seed 004's widths here

__all__ = ["EXPORTED", "LAYERS", "Result", "digits", "run", "train_mlp"]


def _dense(x, units, scope, act=True, seed=0):
    with tf1.variable_scope(scope, use_resource=False):
        w = tf1.get_variable("weights", [x.shape[-1], units], initializer=tf1.glorot_uniform_initializer(seed=seed))
        b = tf1.get_variable("biases", [units], initializer=tf1.zeros_initializer())
        y = tf.nn.bias_add(tf.matmul(x, w), b)
        return tf.nn.relu(y) if act else y


def train_mlp(x, y, n_classes, *, epochs, seed, lr=1e-2, save_to=None, eval_sets=()):
    """Train seed 004's legacy-style MLP (``LAYERS``) from scratch; optionally save it with ``Saver``.

    Returns ``(accuracies on eval_sets, checkpoint prefix or None)``.
    """
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(seed)
        X = tf1.placeholder(tf.float32, (None, 64), name="X")
        Y = tf1.placeholder(tf.int64, (None,), name="y")
        h = X
        for i, (scope, units) in enumerate(LAYERS):
            h = _dense(h, units, scope, seed=seed + i)
        logits = _dense(h, n_classes, "output", act=False, seed=seed + 9)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=Y, logits=logits), name="loss")
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), Y), tf.float32), name="accuracy")
        train = tf1.train.AdamOptimizer(lr).minimize(loss, global_step=tf1.train.get_or_create_global_step())
        with new_session(g) as s:
            s.run(tf1.global_variables_initializer())
            rng = np.random.default_rng(seed)
            for _ in range(epochs):
                order = rng.permutation(len(y))
                for i in range(0, len(y), 32):
                    idx = order[i:i + 32]
                    s.run(train, {X: x[idx], Y: y[idx]})
            accs = [float(s.run(acc, {X: ex, Y: ey})) for ex, ey in eval_sets]
            prefix = save_checkpoint(s, save_to, global_step=epochs) if save_to else None
    return accs, prefix
