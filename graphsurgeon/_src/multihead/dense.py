"""Recognize heads that are stacks of dense layers, so that many of them can be stacked.

A dense stack is, from the features up: ``MatMul`` by a weight, an optional bias (``BiasAdd``,
``Add`` or ``AddV2`` with a rank-1 weight), an optional activation; repeated; optionally a
final ``Softmax``. ``Identity`` ops between them are skipped. This is what the TF1 layers API's ``dense``,
TF-Slim's ``fully_connected``, hand-written ``tf.matmul(x, w) + b`` and Keras ``Dense`` layers
rebuilt by :mod:`graphsurgeon._src.multihead.keras_graph` look like. Any other head is merged
as a branch of its own.
"""
from __future__ import annotations

import dataclasses

from graphsurgeon._src import subgraph
from graphsurgeon._src.multihead.piece import Piece

# op type -> activation name used in the merged graph
ACTIVATIONS = {"Relu": "relu", "Relu6": "relu6", "Tanh": "tanh", "Sigmoid": "sigmoid", "Elu": "elu",
               "Selu": "selu", "Softplus": "softplus"}
_BIAS_OPS = ("BiasAdd", "Add", "AddV2")


@dataclasses.dataclass(frozen=True)
class DenseLayer:
    """One layer: weight names of its kernel (``[in, out]``) and bias (or None), and its activation."""

    kernel: str
    bias: str | None
    activation: str


@dataclasses.dataclass(frozen=True)
class DenseStack:
    """Layers from the features up; ``final`` is ``"softmax"`` when the output is a softmax of the
    last layer (``logits`` then names the tensor before it) and ``"linear"`` otherwise."""

    layers: tuple
    final: str
    logits: str

    def key(self, shapes: dict) -> tuple:
        """What must agree for heads to share stacked variables: the input width, every layer's
        bias and activation, every width but the last (the class count), the final op, dtype."""
        dims = [shapes[layer.kernel] for layer in self.layers]
        return (dims[0][0], tuple(d[1] for d in dims[:-1]), tuple((lay.bias is not None, lay.activation)
                                                                 for lay in self.layers), self.final)


def _skip_identity(by_name, tensor: str) -> str:
    while True:
        node = by_name.get(subgraph.node_name(tensor))
        if node is None or node.op != "Identity" or not node.input:
            return tensor
        tensor = node.input[0]


def _weight_of(piece: Piece, by_name, tensor: str) -> str | None:
    """The weight a tensor reads directly (through ``Identity`` and ``ReadVariableOp``), or None."""
    tensor = _skip_identity(by_name, tensor)
    name = subgraph.node_name(tensor)
    node = by_name.get(name)
    if node is not None and node.op == "ReadVariableOp":
        name = subgraph.node_name(_skip_identity(by_name, node.input[0]))
    w = piece.weights.get(name)
    return name if w is not None else None


def _layer(piece: Piece, by_name, tensor: str):
    """``(DenseLayer, its input tensor)`` for the layer producing ``tensor``, or None."""
    node = by_name[subgraph.node_name(_skip_identity(by_name, tensor))]
    activation = "linear"
    if node.op in ACTIVATIONS:
        activation = ACTIVATIONS[node.op]
        node = by_name[subgraph.node_name(_skip_identity(by_name, node.input[0]))]
    bias = None
    if node.op in _BIAS_OPS and len(node.input) == 2:
        if node.op == "BiasAdd" and node.attr["data_format"].s not in (b"", b"NHWC"):
            return None
        for a, b in ((0, 1), (1, 0)):
            w = _weight_of(piece, by_name, node.input[b])
            if w is not None and len(piece.weights[w].shape) == 1:
                bias, node = w, by_name[subgraph.node_name(_skip_identity(by_name, node.input[a]))]
                break
        if bias is None:
            return None
    if node.op != "MatMul" or node.attr["transpose_a"].b or node.attr["transpose_b"].b:
        return None
    kernel = _weight_of(piece, by_name, node.input[1])
    if kernel is None or len(piece.weights[kernel].shape) != 2:
        return None
    if bias is not None and piece.weights[bias].shape[0] != piece.weights[kernel].shape[1]:
        return None
    return DenseLayer(kernel, bias, activation), node.input[0]


def recognize(head: Piece) -> DenseStack | None:
    """The dense stack ``head`` (a head piece) is, or None if it is anything else."""
    by_name = head.by_name()
    out = _skip_identity(by_name, head.output)
    final, logits = "linear", out
    node = by_name[subgraph.node_name(out)]
    if node.op == "Softmax":
        final, logits = "softmax", node.input[0]
    layers, tensor = [], logits
    start = subgraph.node_name(head.input)
    for _ in range(64):
        found = _layer(head, by_name, tensor)
        if found is None:
            return None
        layer, tensor = found
        layers.insert(0, layer)
        if subgraph.node_name(_skip_identity(by_name, tensor)) == start:
            used = {w for lay in layers for w in (lay.kernel, lay.bias) if w}
            return DenseStack(tuple(layers), final, logits) if used == set(head.weights) else None
    return None
