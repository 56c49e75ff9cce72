"""PackNet (Mallya & Lazebnik 2018, arXiv 1711.05769), after arunmallya/packnet
(``/work/shared/REFERENCES.md`` §1).

Every backbone kernel (rank ≥ 2) has a ``uint8`` owner map: 0 = free, k = the k-th packed task.
Task k runs with the weights of tasks ≤ k (``1 <= owner <= k``); biases and other weights are
frozen after the first task (PackNet's ``nobias-nobn`` default); heads are never pruned.

* Packing a plain model (its one task becomes task 1): each kernel keeps its largest weights, a
  fraction ``prune_first`` (default 0.5, PackNet's for ImageNet) is freed and zeroed; with
  ``old_data`` the kept weights and the task's head retrain for ``retrain_epochs``. This step
  changes the first task's outputs, once; :func:`pack_first` reports how many weights it pruned and,
  with ``old_data``, the task's accuracy before (``learn-task``'s result adds the accuracy after).
* Learning task k: only free weights (and the new head) train, for ``epochs``; then, per kernel,
  the fraction ``prune`` (default 0.75) of the weights the task took with the smallest magnitude
  (k = round(fraction · count), ``|w| <= cutoff`` pruned, as ``prune.py``) is freed again and
  zeroed; the rest becomes task k's and retrains for ``retrain_epochs`` at ``lr × 0.1`` (PackNet:
  1e-3 then 1e-4), pruned weights held at zero. Weights of tasks < k never change: their outputs
  stay the same, bit for bit.

The owner maps are variables of the written checkpoint and are kept in ``continual/masks.npz``,
stamped with the fingerprint of the weights they were made with.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from graphsurgeon._src.continual import masks, network
from graphsurgeon._src.continual.common import Group, Learned, accuracy, fit, head_bytes, measured_part, stream
from graphsurgeon._src.continual.graph import TrainGraph
from graphsurgeon._src.errors import ContinualError
from graphsurgeon._src.storage import multihead_files as files
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.state_files import fingerprint, read_arrays

tf1 = tf.compat.v1
FILE = "masks.npz"
OWNER_VARIABLE = "packnet/owner/"
BASE_PART = "continual_base.pb"


def prune(values: np.ndarray, eligible: np.ndarray, fraction: float) -> np.ndarray:
    """Which of the ``eligible`` weights PackNet prunes: with k = round(fraction · count), every
    eligible weight whose magnitude is at most the k-th smallest eligible magnitude."""
    k = int(round(fraction * int(eligible.sum())))
    if k == 0:
        return np.zeros(values.shape, bool)
    cutoff = np.partition(np.abs(values[eligible]), k - 1)[k - 1]
    return eligible & (np.abs(values) <= cutoff)


def read_state(net, kernels: list) -> dict:
    """``{kernel: owner map}`` of a PackNet model, from ``continual/masks.npz`` (refused if made for
    other weights) and checked against the checkpoint's own owner variables."""
    path = os.path.join(net.source, "continual", FILE)
    owner = read_arrays(path, net.fingerprint, "PackNet masks")
    reader = CheckpointReader(os.path.join(net.source, files.VARIABLES_PREFIX))
    for w in kernels:
        if w not in owner or owner[w].shape != net.values[w].shape:
            raise ContinualError(f"{path}: no owner map of shape {list(net.values[w].shape)} for '{w}'")
        if not np.array_equal(reader.read(OWNER_VARIABLE + w), owner[w]):
            raise ContinualError(f"{path}: its owner map of '{w}' differs from the checkpoint's; the file does not "
                                 "belong to this model")
    return {w: owner[w] for w in kernels}


def _train(net, values, free: dict, task, xy, *, epochs: int, lr: float, cfg, progress: bool):
    """Train the ``free`` entries of the kernels (``{kernel: bool}``) and ``task``'s head on ``xy``;
    every other weight stays as in ``values``. Returns ``(values, head, history)``."""
    tg = TrainGraph(cfg.seed)
    with tg.graph.as_default():
        bound, trained = {}, []
        for w in sorted(net.backbone.weights):
            var = tg.new(f"backbone/{w}", values[w])
            if w in free:
                fixed, open_ = tg.new(f"packnet/fixed/{w}", values[w]), tg.new(f"packnet/free/{w}", free[w])
                bound[w] = tf.where(open_, var, fixed)
                trained.append(w)
            else:
                bound[w] = var
        s = stream(tg, net.backbone, bound, task, "packnet")
        op = tg.train_op(s.loss, {**{f"backbone/{w}": 1.0 for w in trained}, **{n: 1.0 for n in tg.head(task)}},
                         {"optimizer": cfg.optimizer, "lr": lr}, "train")
    tg.start()
    try:
        x, y = xy
        history = fit(tg, [(0, op)], s.loss, s.accuracy, lambda rows, yb, training: {s.x: x[rows], s.y: yb}, y,
                      epochs=epochs, batch_size=cfg.batch_size, seed=cfg.seed, progress=progress)
        got = tg.values([f"backbone/{w}" for w in trained])
        head = tg.head_values(task)
    finally:
        tg.close()
    out = dict(values)
    for w in trained:
        out[w] = np.where(free[w], got[f"backbone/{w}"], values[w])
    return out, head, history


def pack_first(net, kernels: list, cfg, old: dict, progress: bool):
    """Make a plain model's one task PackNet's task 1: ``(owner, values, task, history, report)``; ``report`` is
    :attr:`graphsurgeon._src.continual.common.Learned.packed_first`: how many of the kernels' weights were pruned
    and, with old data for the task, its accuracy before packing on that data's test split (all of it when it
    has none), else None."""
    first = net.tasks[0]
    values, owner = dict(net.values), {}
    report = {"task": first.name, "kernel_weights": sum(int(values[w].size) for w in kernels), "pruned": 0,
              "pruned_fraction": 0.0, "accuracy_before": None, "examples": None}
    if first.name in old:
        x, y = measured_part(old[first.name])
        if len(y):
            report.update(accuracy_before=accuracy(net, net.values, first, x, y), examples=len(y))
    for w in kernels:
        pruned = prune(values[w], np.ones(values[w].shape, bool), cfg.prune_first)
        owner[w] = np.where(pruned, 0, 1).astype(np.uint8)
        values[w] = np.where(pruned, np.zeros_like(values[w]), values[w])
        report["pruned"] += int(pruned.sum())
    report["pruned_fraction"] = report["pruned"] / max(report["kernel_weights"], 1)
    history = []
    if first.name in old and cfg.retrain_value():
        values, head, history = _train(net, values, {w: owner[w] == 1 for w in kernels}, first,
                                       old[first.name].part("train"), epochs=cfg.retrain_value(), lr=cfg.lr * 0.1,
                                       cfg=cfg, progress=progress)
        first = dataclasses.replace(first, head=head)
    return owner, values, first, history, report


def learn(net, data, task, cfg, old: dict, progress: bool) -> Learned:
    """Learn ``task`` in the weights left free; see the module docstring."""
    kernels = network.kernels(net)
    if not kernels:
        raise ContinualError(f"{net.source}: the backbone has no kernels (weights of rank >= 2) to pack tasks into")
    extra, report = {}, None
    if net.state.get("method") == "packnet":
        owner, values, order, tasks, history = read_state(net, kernels), dict(net.values), \
            list(net.state["order"]), list(net.tasks), []
    else:
        owner, values, first, history, report = pack_first(net, kernels, cfg, old, progress)
        order, tasks = [first.name], [first]
        extra["owner_maps"] = sum(o.nbytes for o in owner.values())
    k = len(order) + 1
    if k > 255:
        raise ContinualError(f"{net.source}: PackNet's uint8 owner maps hold at most 255 tasks")
    if not any((owner[w] == 0).any() for w in kernels):
        raise ContinualError(f"{net.source}: no free weights left for a new task (every weight belongs to a task)")
    xy = data.part("train")
    free = {w: owner[w] == 0 for w in kernels}
    values, head, h1 = _train(net, values, free, task, xy, epochs=cfg.epochs, lr=cfg.lr, cfg=cfg, progress=progress)
    for w in kernels:
        pruned = prune(values[w], free[w], cfg.prune)
        owner[w] = np.where(free[w] & ~pruned, np.uint8(k), owner[w]).astype(np.uint8)
        values[w] = np.where(pruned, np.zeros_like(values[w]), values[w])
    task = dataclasses.replace(task, head=head)
    values, head, h2 = _train(net, values, {w: owner[w] == k for w in kernels}, task, xy,
                              epochs=cfg.retrain_value(), lr=cfg.lr * 0.1, cfg=cfg, progress=progress)
    task = dataclasses.replace(task, head=head)
    return _learned(net, cfg, kernels, owner, values, order=order + [task.name], tasks=tasks + [task],
                    history=history + h1 + h2, extra=extra, packed_first=report)


def _learned(net, cfg, kernels, owner, values, *, order, tasks, history, extra, packed_first) -> Learned:
    base = net.backbone
    owner_values = {masks.OWNER_PREFIX + w: owner[w] for w in kernels}
    names = {**{w: w for w in base.weights}, **{masks.OWNER_PREFIX + w: OWNER_VARIABLE + w for w in kernels}}
    groups = [Group(masks.packnet_piece(base, kernels, j + 1), names, {**values, **owner_values})
              for j in range(len(order))]
    by_name = {t.name: t for t in tasks}
    placed = [dataclasses.replace(by_name[n], backbone=j) for j, n in enumerate(order)]
    state = {"method": "packnet", "order": order, "kernels": kernels, "prune": cfg.prune,
             "prune_first": cfg.prune_first, "masks_file": f"continual/{FILE}",
             "base": masks.base_record(base, f"{files.PARTS_DIR}/{BASE_PART}")}
    new = placed[-1]
    return Learned(groups, placed, state, arrays={FILE: (owner, fingerprint(values))},
                   parts={BASE_PART: base.graph_def.SerializeToString(deterministic=True)}, history=history,
                   extra_bytes={"head": head_bytes(new.head), **extra}, packed_first=packed_first)
