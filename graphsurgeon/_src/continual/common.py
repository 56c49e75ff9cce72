"""What every method shares: the new task, a stream of labelled examples through the backbone and a
head, the training loop over row indices, and the record a method hands to the writer."""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from graphsurgeon._src import train
from graphsurgeon._src.continual.graph import TrainGraph, feature_width, new_head
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.multihead import spec as specs

tf1 = tf.compat.v1


@dataclasses.dataclass
class Group:
    """One backbone group of the written model: a piece, ``{piece weight: variable name}`` and
    ``{piece weight: value}``."""

    piece: pieces.Piece
    names: dict
    values: dict


@dataclasses.dataclass
class Learned:
    """What a method produced, for :func:`graphsurgeon._src.continual.write.write_version`.

    Attributes:
      groups: backbone groups; ``tasks``: every task (old and new) with its group and head values.
      state: the ``continual`` record of ``tasks.json``.
      arrays: ``{file name under continual/: ({name: ndarray}, fingerprint)}`` (masks, Fisher).
      parts: extra graph pieces ``{file name under parts/: GraphDef bytes}``.
      history: per-epoch training records; ``extra_bytes``: what the new task adds to the model
        (its head, masks and state), by kind; ``old_fisher_bytes``: the bytes of the old tasks' Fisher
        information ewc computed in this run and stored beside the new task's (None when none was stored so).
        notes: sentences for the result's notes (what was computed).
      packed_first: PackNet's, when it packed a plain model's own task first (pruning its kernels):
        ``{"task", "kernel_weights", "pruned", "pruned_fraction", "accuracy_before", "examples"}``, the last
        two None without old data for that task (:func:`graphsurgeon._src.continual.packnet.pack_first`).
      mask_off: Piggyback's: how many of the backbone kernels' weights the new task's mask drops,
        ``{"task", "kernel_weights", "off", "off_fraction"}`` (:func:`graphsurgeon._src.continual.piggyback.mask_off`).
    """

    groups: list
    tasks: list
    state: dict
    arrays: dict = dataclasses.field(default_factory=dict)
    parts: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)
    extra_bytes: dict = dataclasses.field(default_factory=dict)
    old_fisher_bytes: int | None = None
    packed_first: dict | None = None
    mask_off: dict | None = None
    notes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Stream:
    """Labelled examples of one task through the backbone and that task's head."""

    x: tf.Tensor
    y: tf.Tensor
    features: tf.Tensor
    logits: tf.Tensor
    loss: tf.Tensor
    accuracy: tf.Tensor


def new_task(net, name: str, classes: list, source: str, seed: int, replaces=None) -> specs.Task:
    """The task being learned: ``net.next_id`` (or the id of the task it replaces), a new head."""
    width = feature_width(net.backbone, net.source)
    task_id = replaces.id if replaces is not None else net.next_id
    return specs.Task(task_id, name, list(classes), source, 0, new_head(width, len(classes), seed + 101))


def stream(tg: TrainGraph, piece, bound: dict, task: specs.Task, name: str) -> Stream:
    """Placeholders ``name/x``, ``name/y``, the backbone on them and ``task``'s mean cross-entropy."""
    x = tg.placeholder(piece, f"{name}/x")
    with tg.graph.as_default():
        y = tf1.placeholder(tf.int64, [None], name=f"{name}/y")
    feats = tg.backbone(piece, x, bound, f"{name}/backbone")
    logits = tg.logits(task, feats)
    with tg.graph.as_default():
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
    return Stream(x, y, feats, logits, loss, acc)


def measured_part(data) -> tuple:
    """``(x, y)`` an old task's data measures it on: its test split, all of it when it has none."""
    return data.part("test") if len(data.part("test")[1]) else (data.x, data.y)


def accuracy(net, values: dict, task: specs.Task, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``task`` (its head) on ``net``'s backbone with weights ``values``, on ``(x, y)`` (not
    empty), run in batches of ``batch_size``."""
    tg = TrainGraph()
    try:
        s = stream(tg, net.backbone, {w: tg.new(f"backbone/{w}", values[w]) for w in sorted(net.backbone.weights)},
                   task, "measure")
        tg.start()
        right = sum(int((tg.session.run(s.logits, {s.x: x[i:i + batch_size]}).argmax(1) == y[i:i + batch_size]).sum())
                    for i in range(0, len(y), batch_size))
    finally:
        tg.close()
    return right / len(y)


def soft_cross_entropy(target_logits, logits, temperature: float):
    """Mean over examples of −Σ softmax(target/T)·log softmax(logits/T): LwF's distillation loss
    (the official code's softened cross-entropy; no T² factor)."""
    target = tf.nn.softmax(target_logits / temperature)
    return tf.reduce_mean(-tf.reduce_sum(target * tf.nn.log_softmax(logits / temperature), axis=1))


def fit(tg: TrainGraph, stage_ops: list, loss, accuracy, feed_of, labels: np.ndarray, *, epochs: int,
        batch_size: int, seed: int, progress: bool, first_epoch: int = 0) -> list:
    """:func:`graphsurgeon._src.train.fit` over row indices: each batch is ``(rows, labels[rows])``
    and ``feed_of(rows, y, training)`` builds its feed. ``stage_ops`` is ``[(first epoch, op)]``."""
    if epochs < 1:
        return []
    rows = np.arange(len(labels))
    batches = train.array_batches(rows, labels, batch_size, seed + first_epoch * 7919)
    steps = train.steps_per_epoch(len(labels), batch_size)
    history = train.fit(tg.session, stage_ops, loss, accuracy, feed_of, batches, steps, None, epochs=epochs,
                        progress=progress)
    for row in history:
        row["epoch"] += first_epoch
    return history


def head_bytes(head: specs.Head) -> int:
    return int(head.nbytes())
