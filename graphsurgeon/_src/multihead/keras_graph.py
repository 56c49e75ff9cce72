"""Rebuild a Keras model's inference graph from its config with raw TensorFlow ops.

The result is a :class:`~graphsurgeon._src.multihead.piece.Piece` like any TF1 model's: the input
placeholder is named after the input layer, every weight is a placeholder named
``<layer>/<weight>`` (``dense_1/kernel``), the input is ``<input layer>/input:0`` and every
layer's output is ``<layer>/output:0``, so
``--features penultimate_layer`` names a layer. Only the layers in :data:`SUPPORTED` are
rebuilt; Keras itself is not imported. Inference only: dropout and noise layers are identities,
batch normalization uses its moving statistics.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphsurgeon._src.errors import MergeHeadsError
from graphsurgeon._src.multihead.piece import Piece, Weight
from graphsurgeon._src.storage.keras_files import KerasFile

tf1 = tf.compat.v1

_ACTIVATIONS = {
    "linear": tf.identity, None: tf.identity, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "sigmoid": tf.sigmoid,
    "tanh": tf.tanh, "softmax": tf.nn.softmax, "elu": tf.nn.elu, "selu": tf.nn.selu, "softplus": tf.math.softplus,
    "softsign": tf.nn.softsign, "swish": tf.nn.silu, "silu": tf.nn.silu, "gelu": tf.nn.gelu, "exponential": tf.exp,
}
_IDENTITY_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                    "GaussianDropout", "AlphaDropout", "ActivityRegularization")
_MERGE_LAYERS = {"Add": tf.add_n, "Average": lambda xs: tf.add_n(xs) / len(xs),
                 "Multiply": lambda xs: _fold(tf.multiply, xs), "Maximum": lambda xs: _fold(tf.maximum, xs),
                 "Minimum": lambda xs: _fold(tf.minimum, xs), "Subtract": lambda xs: tf.subtract(xs[0], xs[1])}
_POOL = {"MaxPooling1D": "MAX", "MaxPooling2D": "MAX", "AveragePooling1D": "AVG", "AveragePooling2D": "AVG"}
_GLOBAL_POOL = {"GlobalAveragePooling1D": (tf.reduce_mean, 1), "GlobalAveragePooling2D": (tf.reduce_mean, 2),
                "GlobalMaxPooling1D": (tf.reduce_max, 1), "GlobalMaxPooling2D": (tf.reduce_max, 2)}
SUPPORTED = sorted(["InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "Softmax", "Flatten", "Reshape",
                    "Conv1D", "Conv2D", "BatchNormalization", "Embedding", "Concatenate", *_IDENTITY_LAYERS,
                    *_MERGE_LAYERS, *_POOL, *_GLOBAL_POOL])


def _fold(fn, xs):
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


def output_name(layer: str) -> str:
    """The tensor holding a rebuilt layer's output."""
    return f"{layer}/output:0"


def input_name(layer: str) -> str:
    """The placeholder of a rebuilt input layer."""
    return f"{layer}/input:0"


def _activation(name, where: str, layer: str):
    if isinstance(name, dict):
        name = name.get("config", {}).get("name", name.get("class_name"))
    if name not in _ACTIVATIONS:
        raise MergeHeadsError(f"{where}: layer '{layer}' uses activation '{name}', which merge-heads cannot "
                              f"rebuild; supported: {', '.join(sorted(k for k in _ACTIVATIONS if k))}")
    return _ACTIVATIONS[name]


def _layers(config: dict, where: str) -> tuple[list, list, list]:
    """``(layers, input layer names, output layer names)`` of a Sequential or Functional config;
    each layer gets ``inputs``: the names of the layers it reads."""
    kind, cfg = config.get("class_name"), config.get("config", {})
    if kind == "Sequential":
        layers = [dict(layer) for layer in cfg.get("layers", [])]
        if layers and layers[0]["class_name"] != "InputLayer":
            first = layers[0]["config"]
            shape = first.get("batch_input_shape") or cfg.get("build_input_shape")
            if shape is None:
                raise MergeHeadsError(f"{where}: the Sequential model records no input shape")
            layers.insert(0, {"class_name": "InputLayer", "config": {
                "name": "input", "batch_input_shape": shape, "dtype": first.get("dtype", "float32")}})
        for prev, layer in zip(layers, layers[1:]):
            layer["inputs"] = [prev["config"]["name"]]
        names = [layer["config"]["name"] for layer in layers]
        return layers, names[:1], names[-1:]
    if kind not in ("Functional", "Model"):
        raise MergeHeadsError(f"{where}: a Keras '{kind}' model; merge-heads rebuilds Sequential and Functional "
                              "models only")
    layers = []
    for layer in cfg.get("layers", []):
        inbound = layer.get("inbound_nodes", [])
        if len(inbound) > 1:
            raise MergeHeadsError(f"{where}: layer '{layer['config']['name']}' is called {len(inbound)} times "
                                  "(shared layers are not supported)")
        layers.append({**layer, "inputs": [ref[0] for ref in (inbound[0] if inbound else [])]})
    return layers, [r[0] for r in cfg.get("input_layers", [])], [r[0] for r in cfg.get("output_layers", [])]


def rebuild(kfile: KerasFile, where: str) -> tuple[Piece, dict]:
    """The model's inference graph as a piece, and ``{weight name: ndarray}``.

    Raises:
      MergeHeadsError: a layer type or setting that is not supported, several inputs or outputs,
        or weights that do not match the config.
    """
    layers, ins, outs = _layers(kfile.config, where)
    if len(ins) != 1 or len(outs) != 1:
        raise MergeHeadsError(f"{where}: the Keras model has {len(ins)} inputs and {len(outs)} outputs; "
                              "merge-heads needs one of each")
    for layer in layers:
        if layer["class_name"] not in SUPPORTED:
            raise MergeHeadsError(f"{where}: layer '{layer['config']['name']}' is a {layer['class_name']}, which "
                                  f"merge-heads cannot rebuild; supported: {', '.join(SUPPORTED)}")
    graph, values, weights = tf.Graph(), {}, {}
    with graph.as_default():
        params = {}
        for lname, ws in sorted(kfile.weights.items()):  # placeholders first: their names stay exact
            for wname, value in sorted(ws.items()):
                value = np.asarray(value)
                name = f"{lname}/{wname}"
                params.setdefault(lname, {})[wname] = tf1.placeholder(tf.as_dtype(value.dtype), value.shape, name=name)
                values[name] = value
                weights[name] = Weight(name, value.dtype.name, value.shape)
        tensors = {}
        for layer in layers:
            name = layer["config"]["name"]
            with tf.name_scope(name + "/"):
                y = _build(layer, [tensors[i] for i in layer["inputs"]], params.get(name, {}), where)
            tensors[name] = tf.identity(y, name=f"{name}/output")
    gd = graph.as_graph_def()
    for node in gd.node:
        node.attr.pop("_class", None)  # colocation with weights: they are placeholders here
    return Piece(gd, input_name(ins[0]), output_name(outs[0]), weights), values


def _need(params: dict, key: str, layer: str, where: str):
    if key not in params:
        raise MergeHeadsError(f"{where}: layer '{layer}' has no '{key}' weight in the file")
    return params[key]


def _build(layer: dict, xs: list, p: dict, where: str):
    kind, cfg = layer["class_name"], layer["config"]
    name = cfg["name"]
    if kind == "InputLayer":
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        return tf1.placeholder(tf.as_dtype(cfg.get("dtype") or "float32"), [None] + list(shape[1:]), name="input")
    if kind in _MERGE_LAYERS:
        return _MERGE_LAYERS[kind](xs)
    if kind == "Concatenate":
        return tf.concat(xs, axis=cfg.get("axis", -1))
    x = xs[0]
    if kind in _IDENTITY_LAYERS:
        return tf.identity(x)
    if kind in ("Dense", "Activation"):
        if kind == "Dense":
            k = _need(p, "kernel", name, where)
            x = tf.matmul(x, k) if x.shape.rank == 2 else tf.tensordot(x, k, [[x.shape.rank - 1], [0]])
            if cfg.get("use_bias", True):
                x = tf.nn.bias_add(x, _need(p, "bias", name, where))
        return _activation(cfg.get("activation"), where, name)(x)
    return _build_other(kind, cfg, x, p, where)


def _build_other(kind: str, cfg: dict, x, p: dict, where: str):
    name = cfg["name"]
    if kind in ("Conv1D", "Conv2D"):
        if cfg.get("groups", 1) != 1 or cfg.get("data_format", "channels_last") != "channels_last" \
                or cfg.get("padding") not in ("valid", "same"):
            raise MergeHeadsError(f"{where}: layer '{name}': only channels_last, groups=1, valid/same padding "
                                  "convolutions are rebuilt")
        x = tf.nn.convolution(x, _need(p, "kernel", name, where), strides=cfg.get("strides", 1),
                              padding=cfg["padding"].upper(), dilations=cfg.get("dilation_rate", 1))
        if cfg.get("use_bias", True):
            x = tf.nn.bias_add(x, _need(p, "bias", name, where))
        return _activation(cfg.get("activation"), where, name)(x)
    if kind in _POOL:
        size = cfg["pool_size"]
        return tf.nn.pool(x, size if isinstance(size, list) else [size], _POOL[kind],
                          strides=cfg.get("strides") or size, padding=cfg.get("padding", "valid").upper())
    if kind in _GLOBAL_POOL:
        fn, dims = _GLOBAL_POOL[kind]
        return fn(x, axis=list(range(1, dims + 1)), keepdims=bool(cfg.get("keepdims", False)))
    if kind == "Flatten":
        return tf.reshape(x, [-1, int(np.prod(x.shape.as_list()[1:]))])
    if kind == "Reshape":
        return tf.reshape(x, [-1] + list(cfg["target_shape"]))
    if kind == "Embedding":
        if cfg.get("mask_zero"):
            raise MergeHeadsError(f"{where}: layer '{name}' sets mask_zero; masks are not rebuilt")
        ids = x if x.dtype in (tf.int32, tf.int64) else tf.cast(x, tf.int32)
        return tf.nn.embedding_lookup(_need(p, "embeddings", name, where), ids)
    if kind == "BatchNormalization":
        return _batch_norm(cfg, x, p, where)
    return _activation_layer(kind, cfg, x, where)


def _activation_layer(kind: str, cfg: dict, x, where: str):
    name = cfg["name"]
    if kind == "Softmax":
        return tf.nn.softmax(x, axis=cfg.get("axis", -1))
    if kind == "LeakyReLU":
        return tf.nn.leaky_relu(x, alpha=cfg.get("alpha", 0.3))
    if cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold"):
        return tf.nn.relu(x)
    raise MergeHeadsError(f"{where}: layer '{name}' (ReLU) sets max_value, negative_slope or threshold; not rebuilt")


def _batch_norm(cfg: dict, x, p: dict, where: str):
    name, rank = cfg["name"], x.shape.rank
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, rank - 1):
        raise MergeHeadsError(f"{where}: layer '{name}' normalizes axis {axis}; only the last axis is rebuilt")
    mean, var = _need(p, "moving_mean", name, where), _need(p, "moving_variance", name, where)
    gamma, beta, eps = p.get("gamma"), p.get("beta"), cfg.get("epsilon", 1e-3)
    if rank == 4 and cfg.get("fused") is not False:  # what Keras runs for 4-D inputs
        ones = tf.ones_like(mean) if gamma is None else gamma
        zeros = tf.zeros_like(mean) if beta is None else beta
        y, _, _ = tf1.nn.fused_batch_norm(x, ones, zeros, mean=mean, variance=var, epsilon=eps, is_training=False)
        return y
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)
