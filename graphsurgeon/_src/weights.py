"""Which constants of a graph are weights: the graph query behind ``inspect``'s weight-like
constants and ``thaw``'s choice of what to turn back into variables. Reads GraphDefs only.

A constant is weight-like when it is a floating-point tensor of rank >= 1 that reaches, directly or
through ``Identity`` / ``Cast`` / ``Enter`` ops (``weights/read``, a float16 weight cast up, a weight
read inside a TF 1.x ``while_loop``), a weight input of an
op that takes weights: the filter of a convolution, either operand of ``MatMul``, the right operand
of a batched matmul, the bias of ``BiasAdd``, the scale, offset, mean and variance of a batch
normalization, or the table of a ``Gather``; or that reaches one with the data input of
``Reshape`` / ``Transpose`` ops on the way as well (a kernel ``tf.tensordot`` lays out for its
matmul: TensorFlow 1.x's dense layer on a sequence). A bias added with a plain ``Add`` / ``AddV2``
(``tf.matmul(x, w) + b``) is weight-like too: a 1-D floating-point constant that reaches, directly
or through ``Identity`` / ``Cast`` / ``Enter``, an operand of an ``Add`` / ``AddV2`` whose other operand is the output (directly or through
``Identity`` / ``Cast`` / ``Enter``) of a matmul or convolution that takes a weight-like constant.

So is a per-channel scale or offset applied elementwise (a batch normalization written out by hand,
``tf.nn.batch_normalization`` on ``tf.nn.moments``): a 1-D floating-point constant of shape ``[C]``,
C >= 2, that reaches, the same way and then through ``Mul`` / ``Add`` / ``AddV2`` / ``Sub`` ops
(``rsqrt(variance + epsilon) * scale``, ``offset - mean * inv``), an operand of a ``Mul`` / ``Add`` /
``AddV2`` / ``Sub`` / ``BiasAdd`` whose other operand is a weighted layer's output of C channels or
what such elementwise ops (and ``Identity`` / ``Cast``) make of it before any other op (an
activation, a pooling) reads it. A layer's channels are the last dimension its weight gives it:
a matmul's columns (rows with ``transpose_b``), a batched matmul's last dimension (``adj_y``: the
one before it), the output channels of an NHWC / NDHWC convolution's filter; each of the N parts of
an even ``Split`` of a layer's output along its last axis has C / N (an LSTM cell's four gates: so a
peephole LSTM's ``w_f_diag`` / ``w_i_diag`` / ``w_o_diag``, multiplied by the cell state and added
to a gate, are per-channel). Scalars (an epsilon, a ``keep_prob``), integer constants (shapes,
axes) and a ``[1]`` vector are never per-channel.
"""
from __future__ import annotations

import collections

import tensorflow as tf

from graphsurgeon._src.subgraph import node_name

# op type -> the input positions that take weights
WEIGHT_INPUTS = {
    "MatMul": (0, 1), "BatchMatMul": (1,), "BatchMatMulV2": (1,), "BatchMatMulV3": (1,),
    "Conv2D": (1,), "Conv3D": (1,), "DepthwiseConv2dNative": (1,), "Conv2DBackpropInput": (1,),
    "Conv3DBackpropInputV2": (1,), "BiasAdd": (1,), "BiasAddV1": (1,),
    "FusedBatchNorm": (1, 2, 3, 4), "FusedBatchNormV2": (1, 2, 3, 4), "FusedBatchNormV3": (1, 2, 3, 4),
    "BatchNormWithGlobalNormalization": (1, 2, 3, 4), "Gather": (0,), "GatherV2": (0,),
}
# the ops whose output a plain Add may add a bias to: matmuls and convolutions
LAYERS = frozenset(op for op in WEIGHT_INPUTS if "MatMul" in op or "Conv" in op)
PLAIN_ADDS = frozenset({"Add", "AddV2"})
# elementwise ops through which a per-channel vector reaches a layer's output (and a layer's output
# keeps its channels through), and the ops that may apply it to that output
ELEMENTWISE = frozenset({"Mul", "Add", "AddV2", "Sub"})
APPLY_PER_CHANNEL = ELEMENTWISE | {"BiasAdd"}
PASS_THROUGH = frozenset({"Identity", "Cast", "Enter"})
# ops that lay a weight out anew for a matmul (``tf.tensordot``, which TensorFlow 1.x's dense layer
# used on inputs of rank 3 or more): followed, through their data input, only to find a weight input
RESHAPES = frozenset({"Reshape", "Transpose"})
# the rank of a layer's output, where its op fixes it (a batched matmul's does not)
RANKS = {"MatMul": 2, "Conv2D": 4, "DepthwiseConv2dNative": 4, "Conv2DBackpropInput": 4, "Conv3D": 5,
         "Conv3DBackpropInputV2": 5}
_FLOATS = frozenset({tf.float16, tf.bfloat16, tf.float32, tf.float64})


def _float_shape(node):
    """The static shape of a floating-point ``Const`` node as a list, else None."""
    if node.op != "Const" or tf.as_dtype(node.attr["dtype"].type) not in _FLOATS:
        return None
    return [d.size for d in node.attr["value"].tensor.tensor_shape.dim]


def _reached(name, readers, *, reshaped: bool = False):
    """``[(consumer node, input position)]``: the inputs that ``name`` reaches directly or through
    ``Identity`` / ``Cast`` / ``Enter`` ops (and, ``reshaped``, through the data input of
    ``Reshape`` / ``Transpose`` ops)."""
    out, seen, stack = [], set(), [name]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        for consumer, k in readers[n]:
            if consumer.op in PASS_THROUGH or (reshaped and k == 0 and consumer.op in RESHAPES):
                stack.append(consumer.name)
            else:
                out.append((consumer, k))
    return out


def _source(name, by_name):
    """The node behind ``name`` once ``Identity`` / ``Cast`` / ``Enter`` ops are passed (None when absent)."""
    node = by_name.get(node_name(name))
    while node is not None and node.op in PASS_THROUGH and node.input:
        node = by_name.get(node_name(node.input[0]))
    return node


def _weighted_layer(node, by_name, weighted) -> bool:
    """Whether ``node`` is a matmul or convolution one of whose weight inputs comes from ``weighted``."""
    if node is None or node.op not in LAYERS:
        return False
    sources = [_source(node.input[j], by_name) for j in WEIGHT_INPUTS[node.op] if j < len(node.input)]
    return any(s is not None and s.name in weighted for s in sources)


def _bias_add(reached, by_name, weighted) -> str | None:
    """The op type of the plain add through which a 1-D constant reaching the inputs ``reached`` is
    the bias of a weighted layer (:func:`_weighted_layer`), else None."""
    for consumer, k in reached:
        if consumer.op in PLAIN_ADDS and len(consumer.input) == 2 and _weighted_layer(
                _source(consumer.input[1 - k], by_name), by_name, weighted):
            return consumer.op
    return None


def _channels(node, by_name, weighted) -> int | None:
    """The last dimension of the output of ``node`` when it is a matmul or convolution whose weight
    (its input 1) comes from ``weighted``, read from that weight's shape; else None (also for a
    channels-first convolution, whose channels are not last)."""
    if node.op not in LAYERS or len(node.input) < 2:
        return None
    w = _source(node.input[1], by_name)
    shape = _float_shape(w) if w is not None and w.name in weighted else None
    if not shape or len(shape) < 2:
        return None
    if node.op == "MatMul":
        return shape[0] if node.attr["transpose_b"].b else shape[1]
    if "MatMul" in node.op:
        return shape[-2] if node.attr["adj_y"].b else shape[-1]
    if "data_format" in node.attr and not node.attr["data_format"].s.endswith(b"C"):
        return None
    if node.op == "DepthwiseConv2dNative":
        return shape[2] * shape[3]
    return shape[-2] if "Backprop" in node.op else shape[-1]


def _split_channels(node, k, c, rank, by_name) -> int | None:
    """C / N when ``node`` is a ``Split`` into N parts whose data input (``k`` == 1) is a layer output
    of ``c`` channels, split along its last axis (-1, or ``rank`` - 1 where the rank is known); else None."""
    dim = by_name.get(node_name(node.input[0])) if node.op == "Split" and k == 1 else None
    if dim is None or dim.op != "Const" or dim.attr["value"].tensor.tensor_shape.dim:
        return None
    axis, parts = int(tf.make_ndarray(dim.attr["value"].tensor)), node.attr["num_split"].i
    if axis not in {-1, rank - 1} or parts < 1 or c % parts:
        return None
    return c // parts


def _layer_outputs(graph_def, readers, by_name, weighted) -> dict:
    """``{node name: C}``: the outputs of the weighted layers of C >= 2 channels (:func:`_channels`)
    and what ``Identity`` / ``Cast`` and elementwise ``Mul`` / ``Add`` / ``AddV2`` / ``Sub`` /
    ``BiasAdd`` ops make of them, up to the first other op; an even ``Split`` of one along its last
    axis into N parts (an LSTM cell's four gates) is a layer output of C / N channels."""
    out = {}
    stack = [(n.name, c, RANKS.get(n.op, 0)) for n in graph_def.node
             if (c := _channels(n, by_name, weighted) or 0) >= 2]
    while stack:
        name, c, rank = stack.pop()
        if name in out:
            continue
        out[name] = c
        for r, k in readers[name]:
            if r.op in PASS_THROUGH | APPLY_PER_CHANNEL:
                stack.append((r.name, c, rank))
            elif (part := _split_channels(r, k, c, rank, by_name) or 0) >= 2:
                stack.append((r.name, part, rank))
    return out


def _per_channel(name, reached, readers, layer_outputs, shape) -> set:
    """The op types that apply the constant ``name`` of ``shape`` [C] (reaching the inputs
    ``reached``), directly or through elementwise ops, to a layer output of C channels
    (:func:`_layer_outputs`); empty when none does."""
    found, frontier, seen = set(), list(reached), {name}
    while frontier:
        consumer, k = frontier.pop()
        if consumer.name in seen or consumer.op not in APPLY_PER_CHANNEL or len(consumer.input) != 2:
            continue
        seen.add(consumer.name)
        other = layer_outputs.get(node_name(consumer.input[1 - k]))
        if other == shape[0]:
            found.add(consumer.op)
        elif other is None and consumer.op in ELEMENTWISE:
            frontier.extend(_reached(consumer.name, readers))
    return found


def weight_constants(graph_def) -> dict:
    """``{constant name: {"shape", "dtype", "consumers"}}`` of the weight-like constants of
    ``graph_def`` (see the module docstring), in graph order; ``consumers`` are the sorted op types
    whose weight inputs they feed (``Add`` / ``AddV2`` for a bias added with a plain add; for a
    per-channel scale or offset, the elementwise ops that apply it to a layer's output)."""
    readers = collections.defaultdict(list)  # op name -> [(consumer node, input position)]
    for n in graph_def.node:
        for k, i in enumerate(n.input):
            if not i.startswith("^"):
                readers[node_name(i)].append((n, k))
    by_name = {n.name: n for n in graph_def.node}
    consumers, reached = {}, {}
    for n in graph_def.node:
        shape = _float_shape(n)
        if not shape:  # not a float constant, or a scalar
            continue
        reached[n.name] = _reached(n.name, readers)
        consumers[n.name] = {c.op for c, k in _reached(n.name, readers, reshaped=True)
                             if k in WEIGHT_INPUTS.get(c.op, ())}
    weighted = {name for name, ops in consumers.items() if ops}
    layer_outputs = _layer_outputs(graph_def, readers, by_name, weighted)
    for name in reached:
        shape = _float_shape(by_name[name])
        if len(shape) == 1:
            add = _bias_add(reached[name], by_name, weighted)
            consumers[name] |= ({add} if add else set()) | _per_channel(name, reached[name], readers,
                                                                         layer_outputs, shape)
    return {n.name: {"shape": _float_shape(n), "dtype": tf.as_dtype(n.attr["dtype"].type).name,
                     "consumers": sorted(consumers[n.name])}
            for n in graph_def.node if consumers.get(n.name)}
