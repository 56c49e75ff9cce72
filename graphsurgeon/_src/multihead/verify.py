"""Check a written merged model against its tasks' own heads.

The reference is computed without any of the merged model's machinery: each backbone group's
piece runs once on probe inputs, and each task's head runs on those features as a plain graph
(a dense head as ``MatMul``, ``BiasAdd`` and its activation per layer, as the task model itself
computes it; a branch head as its own piece). The written SavedModel, loaded back, must give every
task's output (its ``probabilities`` if the model ends in a softmax, else its ``logits``) within
tolerance of the reference.
"""
from __future__ import annotations

import types

import numpy as np
import tensorflow as tf

from graphsurgeon._src import determinism
from graphsurgeon._src.errors import BatchDependentError, MergeHeadsError
from graphsurgeon._src.feeds import Feeder
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.storage.multihead_files import load_saved_model
from graphsurgeon._src.storage.session import new_session

tf1 = tf.compat.v1

PROBE_TEXT = ["", "great movie", "the plot was thin but the acting was superb", "zq xv unknown words 42"]
_ACT = {"linear": tf.identity, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "tanh": tf.tanh, "sigmoid": tf.sigmoid,
        "elu": tf.nn.elu, "selu": tf.nn.selu, "softplus": tf.math.softplus}


def probe(dtype: tf.DType, shape, n: int = 4, seed: int = 0, *, skip: str = "") -> np.ndarray:
    """``n`` probe examples for an input of ``dtype`` and static ``shape`` (unknown sizes: 3);
    ``skip`` ends the error's sentence (how the caller can do without them)."""
    rng = np.random.default_rng(seed)
    dims = [n] + [d if d is not None else 3 for d in (shape.as_list()[1:] if shape.rank else [])]
    if dtype == tf.string:
        words = PROBE_TEXT * (int(np.prod(dims)) // len(PROBE_TEXT) + 1)
        return np.array(words[: int(np.prod(dims))], dtype=object).reshape(dims)
    if dtype.is_floating:
        return rng.normal(size=dims).astype(dtype.as_numpy_dtype)
    if dtype.is_integer:
        return rng.integers(0, 2, size=dims).astype(dtype.as_numpy_dtype)
    if dtype == tf.bool:
        return rng.integers(0, 2, size=dims).astype(bool)
    raise MergeHeadsError(f"cannot make probe inputs of dtype {dtype.name} to verify the written model{skip}")


def check_batch(piece: pieces.Piece, read, what: str, instead: str, allow_batch_dependent: bool) -> str | None:
    """Retrain's batch-dependence check on ``piece``'s output (the features), fed 64 :func:`probe` inputs (none
    made for an input dtype it has none for: not checked): :func:`graphsurgeon._src.determinism.probe` runs them,
    then the first alone (not when two runs differ: a random output). Returns None when its value does not
    change, else the note of ``allow_batch_dependent`` (:func:`graphsurgeon._src.determinism.batch_accepted`,
    retrain's wording).

    Raises:
      BatchDependentError: the first probe input alone gives other values than in its batch (batch norm in
        training mode), unless ``allow_batch_dependent``: retrain's refusal
        (:func:`graphsurgeon._src.determinism.batch_refusal`), ``what`` naming the piece, ``instead`` where to cut.
    """
    dtype, shape = pieces.tensor_spec(piece, piece.input)
    try:
        x = probe(dtype, shape, 64)
    except MergeHeadsError:
        return None
    graph, inp, out, init = pieces.imported(piece, read, None, dtype, scope="")  # the model's own names
    with new_session(graph) as sess:
        sess.run(init)
        model = types.SimpleNamespace(graph=graph, session=sess, tensor=graph.get_tensor_by_name)
        if not determinism.probe(model, out, Feeder(model, inp, {}), x).batch_dependent:
            return None
        if not allow_batch_dependent:
            raise BatchDependentError(determinism.batch_refusal(model, out, inp, what, instead,
                                                                first="the first probe input"))
        return determinism.batch_accepted(model, out, inp, what)


def _input_spec(backbone: specs.Backbone):
    node = next(n for n in backbone.piece.graph_def.node if n.name == backbone.piece.input.split(":")[0])
    return tf.as_dtype(node.attr["dtype"].type), tf.TensorShape(node.attr["shape"].shape)


def _feed_weights(piece, values: dict, scope: str):
    """``input_map`` entries binding a piece's weights to constants (or resource variables)."""
    out = {}
    for name, w in piece.weights.items():
        value = values[name]
        if w.handle:
            var = tf1.get_variable(f"{scope}/{name}", initializer=tf.constant(value), use_resource=True)
            out[name + ":0"] = var.handle
        else:
            out[name + ":0"] = tf.constant(value)
    return out


def reference(backbones, backbone_values: list, tasks, x: np.ndarray) -> dict:
    """``{task id: its own output on probe inputs x}``; ``backbone_values[b]`` is ``{piece weight:
    ndarray}`` of backbone group ``b``."""
    graph = tf.Graph()
    fetch = {}
    with graph.as_default():
        xin = tf.constant(x)
        feats = []
        for b, bb in enumerate(backbones):
            input_map = {bb.piece.input: xin, **_feed_weights(bb.piece, backbone_values[b], f"ref_backbone_{b}")}
            feats.append(tf.graph_util.import_graph_def(bb.piece.graph_def, input_map=input_map,
                                                        return_elements=[bb.piece.output], name=f"ref_backbone_{b}")[0])
        for t in tasks:
            fetch[t.id] = _head_output(t, feats[t.backbone])
        init = tf1.global_variables_initializer()
    with new_session(graph) as sess:
        sess.run(init)
        return sess.run(fetch)


def _head_output(task: specs.Task, features):
    head = task.head
    if head.kind == "dense":
        x = features
        for k, b, act in head.layers:
            x = tf.matmul(x, tf.constant(k))
            if b is not None:
                x = tf.nn.bias_add(x, tf.constant(b))
            x = _ACT[act](x)
        return tf.nn.softmax(x) if head.final == "softmax" else x
    scope = f"ref_task_{task.id}"
    input_map = {head.piece.input: features, **_feed_weights(head.piece, head.values, scope)}
    logits, = tf.graph_util.import_graph_def(head.piece.graph_def, input_map=input_map,
                                             return_elements=[head.logits], name=scope)
    return tf.nn.softmax(logits) if head.final == "softmax" else logits


def check(export_dir: str, backbones, backbone_values: list, tasks, *, rtol: float = 1e-5,
          atol: float = 1e-6, skip: str = "") -> float:
    """Load ``export_dir`` and compare every task's output with :func:`reference` on probe inputs;
    returns the largest absolute difference.

    Raises:
      MergeHeadsError: a task's output differs by more than ``atol + rtol * |reference|``, or the
        input's dtype has no probe values (``skip`` ends that message: how to do without).
    """
    x = probe(*_input_spec(backbones[0]), skip=skip)
    expected = reference(backbones, backbone_values, tasks, x)
    sess, meta = load_saved_model(export_dir)
    worst = 0.0
    with sess:
        sig = meta.signature_def["serving_default"]
        g = sess.graph
        feed_x = g.get_tensor_by_name(sig.inputs["inputs"].name)
        feed_id = g.get_tensor_by_name(sig.inputs["task_id"].name)
        outs = {k: g.get_tensor_by_name(sig.outputs[k].name) for k in ("logits", "probabilities")}
        xs = np.concatenate([x] * len(tasks))
        ids = np.repeat([t.id for t in tasks], len(x)).astype(np.int64)
        got = sess.run(outs, {feed_x: xs, feed_id: ids})
    for i, t in enumerate(tasks):
        key = "probabilities" if t.head.final == "softmax" else "logits"
        mine = got[key][i * len(x):(i + 1) * len(x), : t.head.num_classes]
        ref = np.asarray(expected[t.id], np.float64)
        diff = np.abs(mine - ref)
        worst = max(worst, float(diff.max(initial=0.0)))
        if not np.all(diff <= atol + rtol * np.abs(ref)):
            raise MergeHeadsError(f"verification failed: task {t.id} ({t.name}) of the written model differs from its "
                                  f"own head by up to {float(diff.max()):.3g} on probe inputs; nothing was written")
    return worst
