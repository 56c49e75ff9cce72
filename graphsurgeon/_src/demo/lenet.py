"""The demo's original model: a small LeNet-style conv net written the way TF 1.x users wrote one
in 2017 (raw ``tf.compat.v1`` ops, ``get_variable`` reference variables, ``tf.train.Saver``).

::

    images [None, 144] -> reshape 12x12x1      (on the default 12x12 canvas)
      conv1  3x3x16, relu, max-pool 2x2   -> 6x6x16
      conv2  3x3x32, relu, max-pool 2x2   -> 3x3x32
      flatten                             -> 288      (the fine-tuning arm's cache)
      fc1    288 -> 64, relu              -> fc1/Relu (the cut; the head arm's cache)
      logits 64 -> 5                         (dropped by the surgery)
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphsurgeon._src.demo.data import CANVAS, OldTask
from graphsurgeon._src.storage.session import new_session, save_checkpoint

tf1 = tf.compat.v1

INPUT = "images"
FLATTEN = "flatten"   # the output of the conv layers
CUT = "fc1/Relu"      # the top layer's output, below the old output layer
BODY = ("conv1", "conv2", "fc1")


def _variables(scope, shape, seed):
    w = tf1.get_variable("weights", shape, initializer=tf1.glorot_uniform_initializer(seed=seed))
    b = tf1.get_variable("biases", shape[-1:], initializer=tf1.zeros_initializer())
    return w, b


def _conv(x, channels, scope, seed):
    with tf1.variable_scope(scope, use_resource=False):
        w, b = _variables(scope, [3, 3, int(x.shape[-1]), channels], seed)
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME"), b))
        return tf.nn.max_pool2d(y, 2, 2, "VALID", name="pool")


def _dense(x, units, scope, seed, relu=True):
    with tf1.variable_scope(scope, use_resource=False):
        w, b = _variables(scope, [int(x.shape[-1]), units], seed)
        y = tf.nn.bias_add(tf.matmul(x, w), b)
        return tf.nn.relu(y) if relu else y


def build(n_classes: int, canvas: int = CANVAS, seed: int = 0):
    """The network in the default graph: ``(images placeholder, labels placeholder, logits)``."""
    images = tf1.placeholder(tf.float32, [None, canvas * canvas], name=INPUT)
    labels = tf1.placeholder(tf.int64, [None], name="labels")
    h = tf.reshape(images, [-1, canvas, canvas, 1])
    h = _conv(h, 16, "conv1", seed)
    h = _conv(h, 32, "conv2", seed + 1)
    h = tf.reshape(h, [-1, int(np.prod(h.shape[1:]))], name=FLATTEN)
    h = _dense(h, 64, "fc1", seed + 2)
    return images, labels, _dense(h, n_classes, "logits", seed + 3, relu=False)


def train_original(task: OldTask, save_to: str, *, steps: int = 1000, batch_size: int = 32, lr: float = 3e-3,
                   seed: int = 0, on_step=None):
    """Train the network on digits 0-4, each batch's digits at new random canvas positions, with Adam;
    save it with ``tf.train.Saver`` (checkpoint + meta graph, optimizer slots included, as 2017 runs did).

    Returns:
      ``(checkpoint prefix, accuracy on the held-out digits 0-4)``.
    """
    n_classes = len(np.unique(task.y))
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        images, labels, logits = build(n_classes, task.canvas, seed)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits),
                              name="loss")
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32), name="accuracy")
        step = tf1.train.get_or_create_global_step()
        train_op = tf1.train.AdamOptimizer(lr).minimize(loss, global_step=step)
        rng = np.random.default_rng(seed)
        y = task.y[task.train]
        with new_session(graph) as sess:
            sess.run(tf1.global_variables_initializer())
            for _ in range(steps):
                idx = rng.choice(len(y), batch_size, replace=False)
                sess.run(train_op, {images: task.batch(task.train[idx], rng), labels: y[idx]})
                if on_step is not None:
                    on_step()
            held = sess.run(accuracy, {images: task.held_out_images(), labels: task.y[task.held_out]})
            prefix = save_checkpoint(sess, save_to, global_step=steps)
    return prefix, float(held)
