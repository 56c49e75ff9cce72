"""Sessions and the variables of a live graph: the only place graphsurgeon creates a session or
sets a variable's value."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphsurgeon._src.select import normalize_name

tf1 = tf.compat.v1


def new_session(graph: tf.Graph, threads: int = 0) -> "tf1.Session":
    """A ``tf.compat.v1.Session`` on ``graph``; ``threads`` 0 lets TF choose."""
    config = tf1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    config.allow_soft_placement = True
    return tf1.Session(graph=graph, config=config)


FEED_CHUNK_BYTES = 256 << 20


def variables_by_name(graph: tf.Graph) -> dict:
    """``{name: tf.Variable}`` of ``graph``'s global variables, sorted by name (``'w'``, not ``'w:0'``)."""
    with graph.as_default():
        vs = tf1.global_variables()
    return {normalize_name(v.name): v for v in sorted(vs, key=lambda v: v.name)}


def assign(session, values) -> None:
    """Set variables to values by feeding each variable's initial-value tensor and running its
    initializer: no constants in the GraphDef, no new ops. ``values`` is an iterable of
    ``(tf.Variable, array)`` pairs (read lazily: one run's worth is in memory at a time); values are
    cast to each variable's dtype and fed in runs of at most 256 MiB."""
    ops, feed, size = [], {}, 0
    for v, value in values:
        value = np.asarray(value, dtype=v.dtype.base_dtype.as_numpy_dtype)
        feed[v.initializer.inputs[1]] = value
        ops.append(v.initializer)
        size += value.nbytes
        if size >= FEED_CHUNK_BYTES:
            session.run(ops, feed)
            ops, feed, size = [], {}, 0
    if ops:
        session.run(ops, feed)


def fed_variable(name: str, shape, dtype, *, trainable: bool = False) -> tf.Variable:
    """A resource variable ``name`` in the current graph (its name taken from the root variable scope), of ``shape``
    and ``dtype`` (a ``tf.DType`` or what ``tf.as_dtype`` takes: a value's ``.dtype``) and initialized to zeros, in
    ``TRAINABLE_VARIABLES`` when ``trainable``: its value is set by :func:`assign` (fed, not a constant of the
    GraphDef; only the zeros initializer's constants are) or restored from a checkpoint."""
    with tf1.variable_scope("", use_resource=True):
        return tf1.get_variable(name, shape, tf.as_dtype(dtype), tf1.zeros_initializer(), trainable=trainable)


def save_checkpoint(session, prefix: str, global_step=None) -> str:
    """Save every global variable of ``session``'s graph with ``tf.compat.v1.train.Saver`` at
    ``prefix`` (``-global_step`` appended when given), meta graph and ``checkpoint`` state file
    included, as TF1 training scripts did; returns the checkpoint prefix written."""
    with session.graph.as_default():
        saver = tf1.train.Saver()
    return saver.save(session, prefix, global_step=global_step)


def serve(saved_model: str, signature: str = "serving_default", **inputs) -> dict:
    """Call ``signature`` of the SavedModel at ``saved_model`` as TensorFlow Serving does
    (``tf.saved_model.load``, eager) on ``inputs``; returns ``{output name: ndarray}``."""
    fn = tf.saved_model.load(saved_model).signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
