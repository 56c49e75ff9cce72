"""Legacy TF1 models, built the way their users built them, for the tests.

Each builder makes a fresh graph with raw ``tf.compat.v1`` ops and reference
variables (as TF 1.x created them), trains it a few steps, and saves it with
``tf.train.Saver``. Nothing here is part of the library.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


def fully_connected(x, units, scope, activation=tf.nn.relu):
    """contrib's ``fully_connected`` names: ``scope/weights``, ``scope/biases``."""
    with tf1.variable_scope(scope, use_resource=False):
        w = tf1.get_variable("weights", [x.shape[-1], units], initializer=tf1.glorot_uniform_initializer(seed=1))
        b = tf1.get_variable("biases", [units], initializer=tf1.zeros_initializer())
        y = tf.nn.bias_add(tf.matmul(x, w), b)
        return activation(y) if activation else y


def seed004_mlp(directory, n=256, steps=5, optimizer="sgd", extra_copy=False, keep_prob=None):
    """Seed 004's MLP: X[500] -> hidden1 300 -> hidden2 100 -> hidden3 50 -> output 5, trained and
    saved with ``Saver`` as ``directory/model.ckpt-<steps>``. Returns the prefix and the data."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 500)).astype(np.float32)
    yv = (x[:, :5].argmax(1)).astype(np.int64)
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(0)
        X = tf1.placeholder(tf.float32, shape=(None, 500), name="X")
        y = tf1.placeholder(tf.int64, shape=(None), name="y")
        h1 = fully_connected(X, 300, "hidden1")
        h2 = fully_connected(h1, 100, "hidden2")
        if keep_prob is not None:
            kp = tf1.placeholder(tf.float32, (), name="keep_prob")
            h2 = tf1.nn.dropout(h2, keep_prob=kp)
        h3 = fully_connected(h2, 50, "hidden3")
        logits = fully_connected(h3, 5, "output", activation=None)
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        loss = tf.reduce_mean(xent, name="loss")
        if extra_copy:  # a re-run notebook cell: a second copy of the first layer
            fully_connected(X, 300, "hidden1_1")
        opt = (tf1.train.AdamOptimizer(1e-3) if optimizer == "adam" else tf1.train.GradientDescentOptimizer(0.01))
        gstep = tf1.train.get_or_create_global_step()
        train = opt.minimize(loss, global_step=gstep)
        saver = tf1.train.Saver()
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            feed = {X: x, y: yv}
            if keep_prob is not None:
                feed[kp] = keep_prob
            for _ in range(steps):
                s.run(train, feed)
            prefix = saver.save(s, os.path.join(directory, "model.ckpt"), global_step=steps)
    return prefix, x, yv


def use_legacy_keras():
    """tf-slim's batch norm needs tf-keras; with TF 2.21 it also needs this alias."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras
    import tf_keras.src.legacy_tf_layers
    sys.modules["tf_keras.legacy_tf_layers"] = tf_keras.src.legacy_tf_layers


def _saved_slim_net(directory, filename, build, size, meta=True):
    """Build a TF-Slim net with ``build(images)`` in a fresh graph, initialize it and save it with
    ``Saver`` as the model zoo's checkpoints were. Returns the prefix."""
    use_legacy_keras()
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, size, size, 3], name="input")
        build(x)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, filename), write_meta_graph=meta)


def slim_inception_v3(directory, size=299, num_classes=1001):
    """TF-Slim inception_v3 (``directory/inception_v3.ckpt`` + ``.meta``). Returns the prefix."""
    def build(x):
        import tf_slim as slim
        from tf_slim.nets import inception_v3

        with slim.arg_scope(inception_v3.inception_v3_arg_scope()):
            inception_v3.inception_v3(x, num_classes=num_classes, is_training=False)
    return _saved_slim_net(directory, "inception_v3.ckpt", build, size)


def slim_restore_set(exclude, size=299):
    """The names slim's ``get_variables_to_restore(exclude=...)`` gives on a fresh inception_v3."""
    use_legacy_keras()
    import tf_slim as slim
    from tf_slim.nets import inception_v3

    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, size, size, 3], name="input")
        with slim.arg_scope(inception_v3.inception_v3_arg_scope()):
            inception_v3.inception_v3(x, num_classes=1001, is_training=False)
        return sorted(v.op.name for v in slim.get_variables_to_restore(exclude=exclude))


def tiny_convnet(directory, size=8):
    """A legacy conv net on RGB images: input 'images' [None, size, size, 3] -> conv1 -> 'pool' -> 'logits' (3)."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, size, size, 3], name="images")
        with tf1.variable_scope("conv1", use_resource=False):
            w = tf1.get_variable("weights", [3, 3, 3, 4], initializer=tf1.glorot_uniform_initializer(seed=0))
            b = tf1.get_variable("biases", [4], initializer=tf1.zeros_initializer())
        h = tf.nn.relu(tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME") + b)
        pool = tf.reduce_mean(h, [1, 2], name="pool")
        fully_connected(pool, 3, "logits", activation=None)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, "convnet.ckpt"))


def slim_vgg_16(directory, num_classes=1000):
    """TF-Slim vgg_16 (553 MB, like the model zoo's vgg_16.ckpt; no meta graph). Returns the prefix."""
    def build(x):
        import tf_slim as slim
        from tf_slim.nets import vgg

        with slim.arg_scope(vgg.vgg_arg_scope()):
            vgg.vgg_16(x, num_classes=num_classes, is_training=False)
    return _saved_slim_net(directory, "vgg_16.ckpt", build, 224, meta=False)
