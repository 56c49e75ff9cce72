"""Task models that share a backbone, built the way their users built them, for tests/test_heads*.py.

Every builder trains nothing: weights are drawn from a seeded generator, so a backbone seed gives
the same backbone weights in every task model and a head seed gives the head. Nothing here is
part of the library.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


def _dense(x, w, b, name, act=None, resource=False):
    with tf1.variable_scope(name, use_resource=resource):
        kv = tf1.get_variable("weights", initializer=tf.constant(w))
        bv = tf1.get_variable("biases", initializer=tf.constant(b))
        y = tf.matmul(x, kv) + bv
        return act(y) if act else y


def mlp_weights(seed, sizes):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 0.5, (a, b)).astype(np.float32), rng.normal(0, 0.1, (b,)).astype(np.float32))
            for a, b in zip(sizes, sizes[1:])]


def tf1_task(directory, classes, head_seed, *, backbone_seed=0, hidden=(), kind="checkpoint", resource=False,
             in_dim=12, feat=8, perturb=None, extra_op=False, head="dense", labels=None):
    """A TF1 classifier: x[in_dim] -> hidden1 (relu) -> hidden2 (tanh, the features) -> head layers ->
    output/logits -> probabilities (softmax). Saved as ``kind``: checkpoint (Saver, with a loss and
    a train op as a training script leaves them), frozen (.pb), saved_model (TF1 builder).
    ``perturb``: ``(layer index, delta)`` added to one backbone kernel; ``extra_op``: a relu6 more in
    the backbone; ``head``: ``dense``, ``branch`` (a leaky relu between two dense layers: not a dense
    stack) or ``skip`` (the head also reads hidden1: not a head); ``labels``: written to labels.txt.
    Returns the model's path."""
    os.makedirs(directory, exist_ok=True)
    bb = mlp_weights(backbone_seed, [in_dim, 16, feat])
    if perturb is not None:
        bb[perturb[0]] = (bb[perturb[0]][0] + perturb[1], bb[perturb[0]][1])
    head_w = mlp_weights(head_seed, [feat, *hidden, classes])
    if labels:
        with open(os.path.join(directory, "labels.txt"), "w") as fh:
            fh.write("\n".join(labels) + "\n")
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, in_dim], name="x")
        y = tf1.placeholder(tf.int64, [None], name="y")
        h = _dense(x, *bb[0], "hidden1", tf.nn.relu, resource)
        if extra_op:
            h = tf.nn.relu6(h)
        f = _dense(h, *bb[1], "hidden2", tf.tanh, resource)
        for i, (w, b) in enumerate(head_w[:-1]):
            f = _dense(f, w, b, f"head/hidden{i}", tf.nn.relu, resource)
        if head == "branch":
            w, b = mlp_weights(head_seed + 7, [feat, feat])[0]
            f = tf.nn.leaky_relu(_dense(f, w, b, "head/extra", None, resource), alpha=0.1)
        if head == "skip":
            w, b = mlp_weights(head_seed + 7, [16, feat])[0]
            f = f + _dense(h, w, b, "head/skip", None, resource)
        logits = _dense(f, *head_w[-1], "output", None, resource)
        logits = tf.identity(logits, name="logits")
        probs = tf.nn.softmax(logits, name="probabilities")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), name="loss")
        train = tf1.train.GradientDescentOptimizer(0.1).minimize(loss)
        del train
        saver = tf1.train.Saver()
        with tf1.Session(graph=g) as s:
            s.run(tf1.global_variables_initializer())
            if kind == "checkpoint":
                return saver.save(s, os.path.join(directory, "model.ckpt"), global_step=1)
            if kind == "frozen":
                gd = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["probabilities"])
                path = os.path.join(directory, "frozen.pb")
                with open(path, "wb") as f:
                    f.write(gd.SerializeToString())
                return path
            path = os.path.join(directory, "saved_model")
            b = tf1.saved_model.Builder(path)
            sig = tf1.saved_model.signature_def_utils.predict_signature_def({"x": x}, {"probabilities": probs})
            b.add_meta_graph_and_variables(s, ["serve"], signature_def_map={"serving_default": sig})
            b.save()
            return path


def run_tf1(path, x, output="probabilities:0", input="x:0"):
    """The model's own output, run with TensorFlow's own loaders (not graphsurgeon's)."""
    g = tf.Graph()
    with tf1.Session(graph=g) as s:
        if path.endswith(".pb"):
            gd = tf1.GraphDef()
            with open(path, "rb") as f:
                gd.ParseFromString(f.read())
            with g.as_default():
                tf.graph_util.import_graph_def(gd, name="")
        elif os.path.isdir(path):
            with g.as_default():
                tf1.saved_model.load(s, ["serve"], path)
        else:
            with g.as_default():
                tf1.train.import_meta_graph(path + ".meta").restore(s, path)
        return s.run(g.get_tensor_by_name(output), {g.get_tensor_by_name(input): x})


def keras_task(path, classes, head_seed, *, backbone_seed=0, kind="h5", text=False, hidden=0):
    """A tf_keras classifier as the seed's answer builds one: Conv2D -> BatchNormalization ->
    GlobalAveragePooling2D(name='penultimate_layer') -> [Dense(hidden, relu)] -> Dense(classes, softmax),
    or for ``text``: Embedding -> GlobalAveragePooling1D(name='penultimate_layer') -> Dense. Backbone
    weights come from ``backbone_seed``, the head's from ``head_seed``. Saved as ``.h5`` or a
    Keras-made SavedModel (``kind='saved_model'``). Returns ``(path, model)``."""
    import tf_keras as K

    rng = np.random.default_rng(backbone_seed)
    if text:
        inp = K.Input((6,), dtype="int32", name="tokens")
        x = K.layers.Embedding(50, 8, name="embed")(inp)
        x = K.layers.GlobalAveragePooling1D(name="penultimate_layer")(x)
        backbone = ["embed"]
    else:
        inp = K.Input((8, 8, 3), name="data")
        x = K.layers.Conv2D(4, 3, activation="relu", padding="same", name="conv")(inp)
        x = K.layers.BatchNormalization(name="bn")(x)
        x = K.layers.MaxPooling2D(2, name="pool")(x)
        x = K.layers.GlobalAveragePooling2D(name="penultimate_layer")(x)
        backbone = ["conv", "bn"]
    if hidden:
        x = K.layers.Dense(hidden, activation="relu", name="head_hidden")(x)
    x = K.layers.Dropout(0.5, name="drop")(x)
    out = K.layers.Dense(classes, activation="softmax", name="task")(x)
    m = K.Model(inp, out)
    for layer in m.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        r = rng if layer.name in backbone else np.random.default_rng(head_seed + hash(layer.name) % 1000)
        new = [r.normal(0, 0.5, w.shape).astype(w.dtype) for w in ws]
        if layer.name == "bn":
            new[3] = np.abs(new[3]) + 0.5  # a variance
        layer.set_weights(new)
    m.save(path)
    return path, m
