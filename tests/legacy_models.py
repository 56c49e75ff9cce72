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
    """A legacy conv net on RGB images: input 'images' [None, size, size, 3] -> conv1 -> 'pool' -> 'logits' (3).
    Saved as ``directory/model/convnet.ckpt`` (its own folder: outputs may go anywhere else in ``directory``)."""
    directory = os.path.join(directory, "model")
    os.makedirs(directory, exist_ok=True)
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


def _save(graph, session, directory, name):
    with graph.as_default():
        return tf1.train.Saver().save(session, os.path.join(directory, name))


def v1_rnn_adam(directory, steps=5):
    """A ``dynamic_rnn``-style net in TF 1.x control flow (``while_loop`` over a TensorArray),
    trained with Adam: like the 2018 char-rnn, its while context also names the gradient ops
    (stack pushes) the optimizer added inside the loop. Input ``seq`` [None, 6, 4] -> ``rnn``
    (kernel, bias) -> ``outputs`` [None, 6, 5] -> ``dense`` logits per step."""
    was_v2 = tf1.control_flow_v2_enabled()
    tf1.disable_control_flow_v2()
    try:
        g = tf.Graph()
        with g.as_default():
            tf1.set_random_seed(0)
            x = tf1.placeholder(tf.float32, [None, 6, 4], name="seq")
            y = tf1.placeholder(tf.int64, [None], name="labels")
            with tf1.variable_scope("rnn", use_resource=False):
                w = tf1.get_variable("kernel", [4 + 5, 5], initializer=tf1.glorot_uniform_initializer(seed=0))
                b = tf1.get_variable("bias", [5], initializer=tf1.zeros_initializer())
            xs = tf.transpose(x, [1, 0, 2])
            ta_in = tf.TensorArray(tf.float32, size=6).unstack(xs)
            ta_out = tf.TensorArray(tf.float32, size=6)

            def body(t, h, ta):
                h = tf.tanh(tf.matmul(tf.concat([ta_in.read(t), h], 1), w) + b)
                return t + 1, h, ta.write(t, h)

            _, _, ta = tf1.while_loop(lambda t, h, ta: t < 6, body,
                                      [tf.constant(0), tf.zeros([tf.shape(x)[0], 5]), ta_out])
            outputs = tf.transpose(ta.stack(), [1, 0, 2], name="outputs")
            pooled = tf.reduce_mean(outputs, 1)
            logits = fully_connected(pooled, 3, "dense", activation=None)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            train = tf1.train.AdamOptimizer(0.01).minimize(loss)
            rng = np.random.default_rng(0)
            xv = rng.normal(size=(16, 6, 4)).astype(np.float32)
            with tf1.Session() as s:
                s.run(tf1.global_variables_initializer())
                for _ in range(steps):
                    s.run(train, {x: xv, y: (xv[:, 0, 0] > 0).astype(np.int64)})
                return _save(g, s, directory, "rnn.ckpt")
    finally:
        if was_v2:
            tf1.enable_control_flow_v2()


def fixed_batch_mlp(directory, batch=50, with_moments=False, with_state=False):
    """An MLP whose input placeholder fixes the batch (``x`` [batch, 12]) as 2017 course code did.
    ``hidden`` -> (``moments`` batch norm over the batch if ``with_moments``) -> ``features`` -> logits.
    With ``with_state`` a second placeholder ``state`` [None, 6] (an RNN's initial state) is added
    into ``features``."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [batch, 12], name="x")
        h = fully_connected(x, 6, "hidden", activation=None)
        if with_moments:
            mean, var = tf.nn.moments(h, [0])
            h = tf.nn.batch_normalization(h, mean, var, None, None, 1e-3)
        if with_state:
            s0 = tf1.placeholder(tf.float32, [None, 6], name="state")
            h = h + s0
        feats = tf.nn.relu(h, name="features")
        fully_connected(feats, 3, "logits", activation=None)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return _save(g, s, directory, "mlp.ckpt")


def queue_fed_net(directory, batch=20):
    """An input-queue graph (as ``numpy_input_fn`` built them): placeholders fill a FIFOQueue, the
    model reads ``fifo_queue_DequeueMany:1`` [batch, 12]; no placeholder feeds the model itself."""
    g = tf.Graph()
    with g.as_default():
        ids = tf1.placeholder(tf.int64, [None], name="enqueue/ids")
        xs = tf1.placeholder(tf.float32, [None, 12], name="enqueue/x")
        q = tf1.FIFOQueue(1000, [tf.int64, tf.float32], shapes=[[], [12]])
        q.enqueue_many([ids, xs], name="enqueue/op")
        _, x = q.dequeue_many(batch)
        h = fully_connected(tf.reshape(x, [batch, 12]), 6, "hidden")
        logits = fully_connected(h, 3, "logits", activation=None)
        tf.nn.softmax(logits, name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return _save(g, s, directory, "queue.ckpt")


def two_copies_net(directory):
    """A re-run notebook: two copies of a net, each with its own input placeholder
    (``Placeholder`` -> ``Relu``; ``Placeholder_1`` -> ``Relu_1``), auto-named variables."""
    g = tf.Graph()
    with g.as_default():
        for _ in range(2):
            x = tf1.placeholder(tf.float32, [None, 12])
            w = tf1.Variable(tf1.truncated_normal([12, 6], seed=0))
            tf.nn.relu(tf.matmul(x, w))
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return _save(g, s, directory, "copies.ckpt")


def tf10_style_meta(prefix):
    """Rewrite ``prefix.meta`` as TF 1.0/1.1 wrote it: placeholder shapes only in ``_output_shapes``
    (the ``shape`` attr empty) and GraphDef producer 21. Returns the prefix."""
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    with open(prefix + ".meta", "rb") as f:
        meta.ParseFromString(f.read())
    g = tf.Graph()
    with g.as_default():
        tf1.train.import_meta_graph(meta)
        shaped = g.as_graph_def(add_shapes=True)
    meta.graph_def.CopyFrom(shaped)
    meta.graph_def.versions.producer = 21
    for n in meta.graph_def.node:
        if n.op == "Placeholder":
            n.attr["shape"].shape.Clear()
    with open(prefix + ".meta", "wb") as f:
        f.write(meta.SerializeToString())
    return prefix
