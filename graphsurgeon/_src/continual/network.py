"""The network a task is learned on: one backbone (a graph piece and its weights' values) and the
heads of the tasks it already has, read from a plain model or from a many-heads model.

::

    plain model (checkpoint, frozen graph,      many-heads model (merge-heads, learn-task)
    SavedModel, Keras)                          tasks.json + SavedModel + parts/
          │  split at --features                       │  backbone piece, heads by task
          ▼                                            ▼
       Network: backbone piece (weights as value placeholders) + values + old tasks' heads

Resource-variable handles become values (each ``ReadVariableOp`` of a weight an ``Identity``), so a
weight can be bound to any tensor: a variable, a masked variable, a constant.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from graphsurgeon._src import export_dir
from graphsurgeon._src.errors import ConfigError, ContinualError
from graphsurgeon._src.multihead import layout, load
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.storage import multihead_files as files
from graphsurgeon._src.storage.state_files import fingerprint

tf1 = tf.compat.v1


@dataclasses.dataclass
class Network:
    """A backbone and its tasks.

    Attributes:
      source: the model's path. ``kind``: ``"plain"`` or ``"multihead"``.
      original: the backbone piece as read (resource handles kept); exported as is when a method
        leaves the architecture alone.
      backbone: the same piece in value form (see :func:`value_piece`).
      values: ``{weight: ndarray}`` of the backbone.
      tasks: the model's tasks (:class:`~graphsurgeon._src.multihead.spec.Task`, heads with values).
      features, input: where the backbone ends and what it is fed (tensor names as the model has them).
      state: the model's ``continual`` record from ``tasks.json`` (``{}`` for a plain model or one
        made by merge-heads).
      next_id: the id a new task gets: a many-heads model's ``next_id``
        (:func:`graphsurgeon._src.multihead.layout.next_id`: a removed task's id is not given again, nor one a
        version beside it gave), 1
        for a plain model (its one task is 0).
    """

    source: str
    kind: str
    original: pieces.Piece
    backbone: pieces.Piece
    values: dict
    tasks: list
    features: str
    input: str | None = None
    state: dict = dataclasses.field(default_factory=dict)
    next_id: int = 1

    @property
    def fingerprint(self) -> str:
        """sha256 of the backbone's weights (see :func:`graphsurgeon._src.storage.state_files.fingerprint`)."""
        return fingerprint(self.values)

    def task(self, name: str) -> specs.Task | None:
        return next((t for t in self.tasks if t.name == name), None)


def is_multihead(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, files.TASKS_FILE))


def read(path: str, *, features: str | None = None, input: str | None = None, output: str | None = None,
         task_name: str | None = None, tags=("serve",)) -> Network:
    """Read ``path``: a many-heads model directory (``tasks.json``), or any model ``merge-heads`` reads,
    split at ``features`` (default: the tensor its ``model.json`` names) into backbone and head (that model's one task is called ``task_name``, by
    default its directory's name).

    Raises:
      ConfigError: a plain model without ``features``; a many-heads model given ``features`` or
      ``input`` other than its own, or ``output`` or ``task_name`` (a plain model's); ContinualError: a
      many-heads model with several backbone groups that no continual method made; MergeHeadsError,
      TensorNotFoundError: see :func:`graphsurgeon._src.multihead.load.load`.
    """
    if is_multihead(path):
        net = _read_multihead(path)
        _refuse_plain_settings(net, features, input, output, task_name)
        return net
    features = features or export_dir.read_record(path).get("features")
    if not features:
        raise ConfigError(f"{path} is a plain model: say where its backbone ends with features=TENSOR "
                          f"(the tensor its head reads; combine and add-class name it in {export_dir.RECORD})")
    m = load.load(path, features, input=input, output=output, tags=tags)
    head = specs.head_of(m.head, m.read, path)
    classes = m.labels if m.labels is not None else [str(i) for i in range(head.num_classes)]
    if len(classes) != head.num_classes:
        raise ContinualError(f"{path}: labels.txt names {len(classes)} classes; the head has {head.num_classes}")
    name = task_name or load.default_names([path])[0]
    load.check_names([name], path)
    values = {w: np.asarray(m.read(w)) for w in sorted(m.backbone.weights)}
    task = specs.Task(0, name, list(classes), path, 0, head)
    return Network(path, "plain", m.backbone, value_piece(m.backbone, path), values, [task],
                   pieces.tensor_name(features), input)


def _refuse_plain_settings(net: Network, features, input, output, task_name) -> None:
    """A many-heads model's features, input, heads and task names are its own (``tasks.json``): a
    ``features`` or ``input`` naming another tensor, and ``output`` or ``task_name``, were ignored."""
    if features and pieces.tensor_name(features) != net.features:
        raise ConfigError(f"{net.source} is a many-heads model whose backbone ends at its features {net.features} "
                          f"(its tasks.json); features={features} names another tensor: leave features= out")
    if input and pieces.tensor_name(input) not in (net.input, net.original.input):
        raise ConfigError(f"{net.source} is a many-heads model whose backbone reads {net.input or net.original.input} "
                          f"(its tasks.json); input={input} names another tensor: leave input= out")
    given = [f"{k}={v}" for k, v in (("output", output), ("old_task", task_name)) if v]
    if given:
        raise ConfigError(f"{net.source} is a many-heads model, whose tasks keep their heads and names; "
                          f"{' and '.join(given)} name a plain model's output and task: leave them out")


def _read_multihead(path: str) -> Network:
    tab, backbones, tasks, reader = layout.read(path)
    state = tab.get("continual") or {}
    if state.get("base"):  # masked methods: the unmasked backbone is kept as a part of its own
        info = state["base"]
        weights = {w["name"]: pieces.Weight(w["name"], w["dtype"], tuple(w["shape"]), w["handle"], w["source"])
                   for w in info["weights"]}
        original = pieces.Piece(files.read_part(path, os.path.basename(info["part"])), info["input"],
                                info["output"], weights)
        values = {w["name"]: reader.read(w["variable"]) for w in info["weights"]}
    else:
        if len(backbones) != 1:
            raise ContinualError(f"{path}: {len(backbones)} backbone groups; a task is learned on one shared "
                                 "backbone (merge the tasks with one backbone first)")
        original = backbones[0].piece
        values = {w: reader.read(v) for w, v in backbones[0].names.items()}
    return Network(path, "multihead", original, value_piece(original, path), values, tasks, tab["features"],
                   tab.get("input"), state, layout.next_id(tab, path))


def value_piece(piece: pieces.Piece, where: str) -> pieces.Piece:
    """``piece`` with every resource-handle weight turned into a value weight: its placeholder takes
    the variable's dtype and shape and each ``ReadVariableOp`` of it becomes an ``Identity``.

    Raises:
      ContinualError: a handle is read by another op (``ResourceGather``, …): its value cannot be
        swapped for a tensor.
    """
    handles = {n: w for n, w in piece.weights.items() if w.handle}
    if not handles:
        return piece
    gd = tf1.GraphDef()
    gd.CopyFrom(piece.graph_def)
    for node in gd.node:
        if node.name in handles:
            w = handles[node.name]
            node.attr["dtype"].type = tf.as_dtype(w.dtype).as_datatype_enum
            node.attr["shape"].shape.CopyFrom(tf.TensorShape(list(w.shape)).as_proto())
            continue
        reads = [i for i in node.input if i.split(":")[0].lstrip("^") in handles and not i.startswith("^")]
        if not reads:
            continue
        if node.op != "ReadVariableOp":
            raise ContinualError(f"{where}: weight '{reads[0]}' is read by op '{node.name}' ({node.op}); only "
                                 "weights read whole (ReadVariableOp) can be trained or masked")
        dtype = node.attr["dtype"].type
        node.op = "Identity"
        node.attr.clear()
        node.attr["T"].type = dtype
    weights = {n: dataclasses.replace(w, handle=False) for n, w in piece.weights.items()}
    return pieces.Piece(gd, piece.input, piece.output, weights)


def kernels(net: Network) -> list[str]:
    """The backbone weights PackNet prunes and Piggyback masks: floating-point weights of rank ≥ 2
    (dense and convolution kernels, embeddings); biases and normalization parameters are left alone."""
    return [n for n in sorted(net.values) if net.values[n].ndim >= 2 and net.values[n].dtype.kind == "f"]
