"""Which constants of a graph are weights: the graph query behind ``inspect``'s weight-like
constants and ``thaw``'s choice of what to turn back into variables. Reads GraphDefs only.

A constant is weight-like when it is a floating-point tensor of rank >= 1 that reaches, directly or
through ``Identity`` / ``Cast`` ops (``weights/read``, a float16 weight cast up), a weight input of an
op that takes weights: the filter of a convolution, either operand of ``MatMul``, the right operand
of a batched matmul, the bias of ``BiasAdd``, the scale, offset, mean and variance of a batch
normalization, or the table of a ``Gather``.
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
PASS_THROUGH = frozenset({"Identity", "Cast"})
_FLOATS = frozenset({tf.float16, tf.bfloat16, tf.float32, tf.float64})


def _float_shape(node):
    """The static shape of a floating-point ``Const`` node as a list, else None."""
    if node.op != "Const" or tf.as_dtype(node.attr["dtype"].type) not in _FLOATS:
        return None
    return [d.size for d in node.attr["value"].tensor.tensor_shape.dim]


def weight_constants(graph_def) -> dict:
    """``{constant name: {"shape", "dtype", "consumers"}}`` of the weight-like constants of
    ``graph_def`` (see the module docstring), in graph order; ``consumers`` are the sorted op types
    whose weight inputs they feed."""
    readers = collections.defaultdict(list)  # op name -> [(consumer node, input position)]
    for n in graph_def.node:
        for k, i in enumerate(n.input):
            if not i.startswith("^"):
                readers[node_name(i)].append((n, k))
    out = {}
    for n in graph_def.node:
        shape = _float_shape(n)
        if not shape:  # not a float constant, or a scalar
            continue
        consumers, seen, stack = set(), set(), [n.name]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            for consumer, k in readers[name]:
                if consumer.op in PASS_THROUGH:
                    stack.append(consumer.name)
                elif k in WEIGHT_INPUTS.get(consumer.op, ()):
                    consumers.add(consumer.op)
        if consumers:
            out[n.name] = {"shape": shape, "dtype": tf.as_dtype(n.attr["dtype"].type).name,
                           "consumers": sorted(consumers)}
    return out
