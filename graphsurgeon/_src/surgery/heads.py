"""Build a new head on any tensor of a restored model.

::

    before                              after
    output  (5 classes)                 output (dropped from restore and export)
      |                                 head/logits (2 classes, new)
    hidden3                               |
      |                 ==>             hidden3  <- the cut tensor
    hidden2                               |
     ...                                 ...
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from graphsurgeon._src import select
from graphsurgeon._src.errors import ConfigError

tf1 = tf.compat.v1

ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid, "elu": tf.nn.elu,
               "linear": None, "none": None}


def initializer(name: str, seed: int):
    """A ``tf.compat.v1`` initializer by name: glorot_uniform, glorot_normal, he_normal,
    truncated_normal (stddev 0.01), zeros, ones."""
    table = {
        "glorot_uniform": lambda: tf1.glorot_uniform_initializer(seed=seed),
        "glorot_normal": lambda: tf1.glorot_normal_initializer(seed=seed),
        "he_normal": lambda: tf1.variance_scaling_initializer(2.0, "fan_in", "truncated_normal", seed=seed),
        "truncated_normal": lambda: tf1.truncated_normal_initializer(stddev=0.01, seed=seed),
        "zeros": tf1.zeros_initializer,
        "ones": tf1.ones_initializer,
    }
    if name not in table:
        raise ConfigError(f"unknown initializer '{name}'; expected one of {', '.join(table)}")
    return table[name]()


@dataclasses.dataclass
class Head:
    """A head added by :func:`add_head`."""

    scope: str
    cut: tf.Tensor
    features: tf.Tensor
    logits: tf.Tensor
    probabilities: tf.Tensor
    variables: list
    pool: str = "none"  # how the cut became features: "none" (rank 2), "avg" or "flatten"

    def features_report(self) -> dict:
        """``{"cut", "shape", "pool", "features"}``: the cut tensor, its static shape past the batch
        dimension, how it became the head's features and their number (the plan's ``features``)."""
        return {"cut": self.cut.name, "shape": self.cut.shape.as_list()[1:], "pool": self.pool,
                "features": self.features.shape.as_list()[-1]}


def _features(t: tf.Tensor, pool: str) -> tuple[tf.Tensor, str]:
    """``(features, how)``: ``t`` as ``[batch, features]`` and how (``none``, ``avg`` or ``flatten``)."""
    if pool not in ("avg", "flatten"):
        raise ConfigError(f"pool must be 'avg' or 'flatten', not '{pool}'")
    rank = t.shape.rank
    if rank is None:
        raise ConfigError(f"tensor '{t.name}' has unknown rank; a head needs a [batch, features] or [batch, ..., C] tensor")
    if rank == 2:
        return t, "none"
    if rank < 2:
        raise ConfigError(f"tensor '{t.name}' has rank {rank}; a head needs a batch dimension and features")
    inner = t.shape.as_list()[1:]
    if pool == "flatten" or all(d == 1 for d in inner[:-1]):
        if any(d is None for d in inner):
            hint = "a head needs the last dimension known" if inner[-1] is None else "use pool='avg'"
            raise ConfigError(f"tensor '{t.name}' has unknown inner dimensions {inner}; {hint}")
        return tf.reshape(t, [-1, int(np.prod(inner))], name="flatten"), "flatten"
    return tf.reduce_mean(t, axis=list(range(1, rank - 1)), name="avg_pool"), "avg"


def add_head(model, cut, num_classes: int, *, hidden=(), activation: str = "relu", scope: str = "head",
             kernel_initializer: str = "glorot_uniform", bias_initializer: str = "zeros", pool: str = "avg",
             seed: int = 0) -> Head:
    """Build dense layers ``hidden`` then a ``num_classes`` output on tensor ``cut`` (the cut point).

    Layers are ``scope/dense_<i>/{kernel,bias}`` then ``scope/logits/{kernel,bias}``,
    built with ``tf.compat.v1.get_variable``. A rank > 2 tensor is average-pooled over its
    inner axes (``pool='avg'``: ``[5, 5, 16]`` gives 16 features) or flattened (``pool='flatten'``:
    400 features); one whose inner axes but the last are all 1 is flattened either way (the same
    values). :meth:`Head.features_report` says which was done.

    Side effects: adds ops and variables to ``model.graph``; if the model has a session,
    initializes the new variables there (nothing else is touched); records them as
    ``new`` in ``model.status`` and sets ``model.outputs`` to the head's logits and
    probabilities.

    Raises:
      TensorNotFoundError: ``cut`` is not in the graph.
      ConfigError: ``scope`` already exists, ``num_classes`` < 1, unknown activation or ``pool``.
    """
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes must be >= 1, not {num_classes}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation '{activation}'; expected one of {', '.join(ACTIVATIONS)}")
    cut_tensor = model.tensor(cut)
    scope = scope.strip("/")
    if any(op.name == scope or op.name.startswith(scope + "/") for op in model.graph.get_operations()):
        raise ConfigError(f"scope '{scope}' already exists in the graph; choose another head scope")
    if not cut_tensor.dtype.is_floating:
        raise ConfigError(f"tensor '{cut_tensor.name}' is {cut_tensor.dtype.name}; a head needs a float tensor")
    with model.graph.as_default():
        before = set(tf1.global_variables())
        with tf1.variable_scope(scope, use_resource=True):
            x, how = _features(cut_tensor, pool)
            for i, units in enumerate(hidden):
                x = _dense(x, int(units), f"dense_{i}", ACTIVATIONS[activation], kernel_initializer,
                           bias_initializer, seed + i)
            logits = _dense(x, int(num_classes), "logits", None, kernel_initializer, bias_initializer,
                            seed + len(hidden))
            probs = tf.nn.softmax(logits, name="probabilities")
        new = sorted(set(tf1.global_variables()) - before, key=lambda v: v.name)
        if model.session is not None:
            model.session.run([v.initializer for v in new])
    names = [select.normalize_name(v.name) for v in new]
    for n in names:
        model.status[n] = "new"
    model.outputs = [logits.name, probs.name]
    return Head(scope, cut_tensor, x, logits, probs, names, how)


def _dense(x, units, name, act, k_init, b_init, seed):
    with tf1.variable_scope(name):
        fan_in = x.shape.as_list()[-1]
        if fan_in is None:
            raise ConfigError(f"tensor '{x.name}' has an unknown feature size; a dense layer needs it")
        w = tf1.get_variable("kernel", [fan_in, units], initializer=initializer(k_init, seed))
        b = tf1.get_variable("bias", [units], initializer=initializer(b_init, seed))
        y = tf.nn.bias_add(tf.matmul(x, w), b)
        return act(y) if act else tf.identity(y, name="output")
