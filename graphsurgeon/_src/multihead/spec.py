"""What a merged multi-head model holds, independent of TensorFlow graphs: backbones, tasks and
their heads, and how the heads' weights are packed into the merged model's variables.

Heads that are dense stacks of one shape (same input width, hidden widths, activations; any
class count) share a *stack*: hidden layers are stacked into ``[T, in, out]`` variables, and the
output layers, whose class counts may differ, are packed end to end into one flat kernel and one
flat bias (no padding is stored; each example gathers its task's block and pads it, masked, to
the largest class count). Any other head is a *branch*: its own subgraph and variables.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from graphsurgeon._src import subgraph
from graphsurgeon._src.errors import MergeHeadsError
from graphsurgeon._src.multihead import dense
from graphsurgeon._src.multihead import piece as pieces

STACK_SCOPE = "heads/stack_{}"
BRANCH_SCOPE = "heads/task_{}"


@dataclasses.dataclass
class Head:
    """A task's head with its values.

    ``kind`` ``"dense"``: ``layers`` is ``[(kernel [in, out], bias [out] or None, activation)]``.
    ``kind`` ``"branch"``: ``piece`` (reads ``piece.input``, the features), ``values`` by weight name,
    ``logits`` the tensor before a final softmax (or the output). ``final`` is ``"softmax"`` when
    the model's own output is the softmax of the logits, or the sigmoid of one logit (served as the
    softmax of two, see :func:`head_of`), else ``"linear"``. ``sigmoid``: the head came from a model whose
    output is the sigmoid of one logit, so only column 1 of its probabilities is that model's own output.
    """

    kind: str
    num_classes: int
    final: str
    layers: list = dataclasses.field(default_factory=list)
    piece: pieces.Piece | None = None
    values: dict = dataclasses.field(default_factory=dict)
    logits: str = ""
    sigmoid: bool = False

    def key(self) -> tuple:
        """Dense heads with equal keys share a stack (branches are never stacked)."""
        k = self.layers[0][0]
        return (k.shape[0], k.dtype.str, tuple(lay[0].shape[1] for lay in self.layers[:-1]),
                tuple((lay[1] is not None, lay[2]) for lay in self.layers), self.final)

    def nbytes(self) -> int:
        if self.kind == "dense":
            return sum(k.nbytes + (b.nbytes if b is not None else 0) for k, b, _ in self.layers)
        return sum(v.nbytes for v in self.values.values())


@dataclasses.dataclass
class Backbone:
    """One backbone group: the reference piece, ``{piece weight: merged variable}`` and checksum."""

    piece: pieces.Piece
    names: dict
    checksum: str = ""


@dataclasses.dataclass
class Task:
    id: int
    name: str
    classes: list
    source: str
    backbone: int
    head: Head


@dataclasses.dataclass
class Route:
    """Examples of ``tasks`` (their order is the row order) run ``kind`` ``"stack"`` or ``"branch"``
    on backbone ``backbone``."""

    kind: str
    index: int
    backbone: int
    tasks: list


def head_of(head_piece: pieces.Piece, read, where: str) -> Head:
    """A :class:`Head` from a task model's head piece, values read with ``read(name)``. A head whose output
    is the sigmoid of one logit ``z`` (``[batch, 1]``: a binary classifier, a GAN's discriminator) becomes
    a two-class softmax head with logits ``[0, z]``: its classes are 0 and 1, and its probability of class
    1 is the model's own output (a dense head: :func:`two_classes`; another:
    :func:`graphsurgeon._src.multihead.piece.two_class_logits`).

    Raises:
      MergeHeadsError: the head's output is not ``[batch, classes]`` with a known class count. (Whether the
        head is random is probed by the commands: merge-heads and add-head in
        :func:`graphsurgeon._src.multihead.verify.check_head_batch`, the continual ones with ``--allow-random``.)
    """
    stack = dense.recognize(head_piece)
    if stack is not None:
        layers = [(np.asarray(read(lay.kernel)), None if lay.bias is None else np.asarray(read(lay.bias)),
                   lay.activation) for lay in stack.layers]
        final = stack.final
        if final == "linear" and layers[-1][2] == "sigmoid" and layers[-1][0].shape[1] == 1:
            layers[-1], final = two_classes(*layers[-1][:2]), "softmax"
            return Head("dense", 2, final, layers, sigmoid=True)
        return Head("dense", int(layers[-1][0].shape[1]), final, layers)
    by_name = head_piece.by_name()
    out = head_piece.output
    node = by_name[subgraph.node_name(out)]
    final, logits = ("softmax", node.input[0]) if node.op == "Softmax" else ("linear", out)
    sigmoid = node.op == "Sigmoid" and pieces.tensor_spec(head_piece, node.input[0])[1].as_list()[1:] == [1]
    if sigmoid:
        head_piece = pieces.two_class_logits(head_piece, node)
        final, logits = "softmax", head_piece.output
    _, shape = pieces.tensor_spec(head_piece, logits)
    if shape.rank != 2 or shape[-1] is None:
        raise MergeHeadsError(f"{where}: the head's output {logits} has shape {shape}; a head must give "
                              "[batch, classes] with a known class count; name such a tensor with output=")
    values = {n: np.asarray(read(n)) for n in head_piece.weights}
    return Head("branch", int(shape[-1]), final, piece=head_piece, values=values,
                logits=pieces.tensor_name(logits), sigmoid=sigmoid)


def two_classes(kernel: np.ndarray, bias: np.ndarray | None) -> tuple:
    """A one-output sigmoid layer (``kernel`` ``[in, 1]``, ``sigmoid(x·kernel + bias)``) as the linear
    layer of a two-class softmax head that serves the same: kernel ``[0, kernel]``, bias ``[0, bias]``,
    so its logits are ``[0, z]`` and their softmax ``[1 − sigmoid(z), sigmoid(z)]``."""
    k = np.concatenate([np.zeros_like(kernel), kernel], axis=1)
    b = None if bias is None else np.concatenate([np.zeros_like(bias), bias])
    return k, b, "linear"


def routes(tasks: list[Task]) -> list[Route]:
    """Stacks (dense heads of one key on one backbone) then branches, in task order."""
    stacks, out = {}, []
    for t in tasks:
        if t.head.kind == "dense":
            key = (t.backbone, t.head.key())
            if key not in stacks:
                stacks[key] = Route("stack", len(stacks), t.backbone, [])
                out.append(stacks[key])
            stacks[key].tasks.append(t)
        else:
            out.append(Route("branch", 0, t.backbone, [t]))
    return out


def stack_values(route: Route) -> dict:
    """``{merged variable name: ndarray}`` of a stack: hidden layers stacked, the output layer packed."""
    scope = STACK_SCOPE.format(route.index)
    heads = [t.head for t in route.tasks]
    out = {}
    for i in range(len(heads[0].layers) - 1):
        out[f"{scope}/layer_{i}/kernel"] = np.stack([h.layers[i][0] for h in heads])
        if heads[0].layers[i][1] is not None:
            out[f"{scope}/layer_{i}/bias"] = np.stack([h.layers[i][1] for h in heads])
    out[f"{scope}/logits/kernel"] = np.concatenate([h.layers[-1][0].ravel() for h in heads])
    if heads[0].layers[-1][1] is not None:
        out[f"{scope}/logits/bias"] = np.concatenate([h.layers[-1][1] for h in heads])
    return out


def packed_offsets(route: Route) -> tuple[np.ndarray, np.ndarray]:
    """Where each row's output kernel and bias start in the packed variables."""
    kernel = [h.layers[-1][0].size for h in (t.head for t in route.tasks)]
    bias = [h.num_classes for h in (t.head for t in route.tasks)]
    return (np.concatenate([[0], np.cumsum(kernel)[:-1]]).astype(np.int32),
            np.concatenate([[0], np.cumsum(bias)[:-1]]).astype(np.int32))


def unstack(route_info: dict, values: dict, rows: list[dict]) -> list[list]:
    """The inverse of :func:`stack_values`: each row's ``layers`` from a stack's variables.

    Args:
      route_info: ``{"scope", "activations", "bias"}`` of the stack (from tasks.json).
      values: the stack's variables by name.
      rows: ``[{"num_classes", "in"}]`` per row, in row order (``in``: the output layer's input width).
    """
    scope, acts, has_bias = route_info["scope"], route_info["activations"], route_info["bias"]
    n_hidden = len(acts) - 1
    koff = boff = 0
    out = []
    for r, row in enumerate(rows):
        layers = []
        for i in range(n_hidden):
            b = values[f"{scope}/layer_{i}/bias"][r] if has_bias[i] else None
            layers.append((values[f"{scope}/layer_{i}/kernel"][r], b, acts[i]))
        size = row["in"] * row["num_classes"]
        k = values[f"{scope}/logits/kernel"][koff:koff + size].reshape(row["in"], row["num_classes"])
        b = values[f"{scope}/logits/bias"][boff:boff + row["num_classes"]] if has_bias[-1] else None
        layers.append((k, b, acts[-1]))
        koff, boff = koff + size, boff + row["num_classes"]
        out.append(layers)
    return out


def branch_values(task: Task) -> dict:
    """``{merged variable name: ndarray}`` of a branch head."""
    scope = BRANCH_SCOPE.format(task.id)
    return {f"{scope}/{n}": v for n, v in task.head.values.items()}
