"""Piggyback (Mallya, Davis & Lazebnik 2018, arXiv 1801.06519), after arunmallya/piggyback
(``/work/shared/REFERENCES.md`` §2).

The backbone is frozen. For a new task every backbone kernel (rank ≥ 2) gets real-valued mask
scores, initialized to ``mask_init`` (0.01, ``mask_scale``); the forward pass uses the kernel
where its score is above ``threshold`` (0.005, ``DEFAULT_THRESHOLD``) and 0 elsewhere, and the
backward pass hands the scores the gradient the binary mask would get (straight-through:
``∂L/∂score = ∂L/∂w_eff · w``). Scores train with Adam at ``mask_lr`` (1e-4), the new head at ``lr``.
Biases are not masked; the head is a new linear layer. The result says how many kernel weights the
new task's mask drops (:func:`mask_off`), and a note says when none changed: Adam moves a score by
about ``mask_lr`` a step, so a score leaves 0.01 for 0.005 only after some 50 steps of one sign at
the default 1e-4 (the reference's runs have thousands of steps); until then the task runs on the
whole backbone, as feature-extraction would.

Each task's mask is stored packed at 1 bit per weight — in the checkpoint (the serving graph
unpacks it) and in ``continual/masks.npz``, stamped with the fingerprint of the frozen weights
(the reference code stores a byte per weight; the paper counts a bit). Tasks learned before
Piggyback keep the unmasked backbone; no task's weights ever change, so old tasks' outputs stay
the same, bit for bit.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from graphsurgeon._src import train
from graphsurgeon._src.continual import masks, network
from graphsurgeon._src.continual.common import Group, Learned, fit, head_bytes, stream
from graphsurgeon._src.continual.graph import TrainGraph
from graphsurgeon._src.errors import ContinualError
from graphsurgeon._src.mixins import counted
from graphsurgeon._src.storage import multihead_files as files
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.state_files import read_arrays

tf1 = tf.compat.v1
FILE = "masks.npz"
BASE_PART = "continual_base.pb"
_SEP = "\x1f"


def mask_variable(task, w: str) -> str:
    return f"piggyback/task_{task.id}/{w}"


def read_state(net, kernels: list) -> dict:
    """``{task name: {kernel: packed mask}}`` of a Piggyback model's masked tasks, from
    ``continual/masks.npz`` (refused if made for other weights), checked against the checkpoint."""
    path = os.path.join(net.source, "continual", FILE)
    arrays = read_arrays(path, net.fingerprint, "Piggyback masks")
    reader = CheckpointReader(os.path.join(net.source, files.VARIABLES_PREFIX))
    out = {}
    for name in net.state.get("masked", []):
        t = net.task(name)
        if t is None:  # removed with remove-head
            continue
        out[name] = {}
        for w in kernels:
            key = _SEP.join((name, w))
            if key not in arrays or not np.array_equal(arrays[key], reader.read(mask_variable(t, w))):
                raise ContinualError(f"{path}: the mask of task '{name}' on '{w}' is missing or differs from the "
                                     "checkpoint's; the file does not belong to this model")
            out[name][w] = arrays[key]
    return out


def straight_through(w, score, threshold: float):
    """``w`` where ``score > threshold``, else 0; the gradient to ``score`` is ``∂L/∂w_eff · w``."""
    kept = tf.where(score > threshold, w, tf.zeros_like(w))
    return kept + (score - tf.stop_gradient(score)) * w


def _train(net, task, kernels, xy, cfg, progress: bool):
    """Train mask scores and ``task``'s head: ``({kernel: bool mask}, head, history)``."""
    tg = TrainGraph(cfg.seed)
    with tg.graph.as_default():
        bound, scores = {}, {}
        for w in sorted(net.backbone.weights):
            v = tg.new(f"backbone/{w}", net.values[w])
            if w in kernels:
                scores[w] = f"piggyback/score/{w}"
                score = tg.new(scores[w], np.full(net.values[w].shape, cfg.mask_init, net.values[w].dtype))
                bound[w] = straight_through(v, score, cfg.threshold)
            else:
                bound[w] = v
        s = stream(tg, net.backbone, bound, task, "piggyback")
        mults = {**{n: cfg.mask_lr / cfg.lr for n in scores.values()}, **{n: 1.0 for n in tg.head(task)}}
        op = tg.train_op(s.loss, mults, cfg.settings(), "train")
    tg.start()
    try:
        x, y = xy
        history = fit(tg, [(0, op)], s.loss, s.accuracy, lambda rows, yb, training: {s.x: x[rows], s.y: yb}, y,
                      epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, progress=progress)
        got = tg.values(scores.values())
        head = tg.head_values(task)
    finally:
        tg.close()
    return {w: got[n] > cfg.threshold for w, n in scores.items()}, head, history


def mask_off(task, bits: dict, cfg, steps: int) -> tuple[dict, list]:
    """``({task, kernel_weights, off, off_fraction}, notes)``: how many of the backbone kernels' weights
    ``task``'s mask ``bits`` drops, and when none changed from where ``mask_init`` put them (all kept),
    a note naming ``mask_lr``, the setting that moves them, and the ``steps`` the run took."""
    total = sum(int(b.size) for b in bits.values())
    off = total - sum(int(b.sum()) for b in bits.values())
    report = {"task": task.name, "kernel_weights": total, "off": off, "off_fraction": off / total if total else 0.0}
    if off:
        return report, []
    need = (cfg.mask_init - cfg.threshold) / cfg.mask_lr
    return report, [f"no mask entry of task '{task.name}' changed in this run's {counted(steps, 'training step')}: "
                    f"every score starts at mask_init={cfg.mask_init:g}, above threshold={cfg.threshold:g}, and Adam "
                    f"at mask_lr={cfg.mask_lr:g} moves a score by about that much a step, so a weight is dropped only "
                    f"after some {need:.0f} steps of one sign; the task runs on the whole backbone, as "
                    "feature-extraction would; give a larger mask_lr= or more epochs="]


def learn(net, data, task, cfg, old: dict, progress: bool) -> Learned:
    """Learn ``task`` as a mask over the frozen backbone; see the module docstring."""
    kernels = network.kernels(net)
    if not kernels:
        raise ContinualError(f"{net.source}: the backbone has no kernels (weights of rank >= 2) to mask")
    packed = read_state(net, kernels) if net.state.get("method") == "piggyback" else {}
    bits, head, history = _train(net, task, kernels, data.part("train"), cfg, progress)
    steps = cfg.epochs * train.steps_per_epoch(len(data.part("train")[1]), cfg.batch_size)  # as fit takes them
    report, notes = mask_off(task, bits, cfg, steps)
    packed = {n: m for n, m in packed.items() if n != task.name}
    packed[task.name] = {w: masks.pack(bits[w]) for w in kernels}
    task = dataclasses.replace(task, head=head)
    tasks = [t for t in net.tasks if t.name != task.name] + [task]
    base = net.backbone
    groups, placed = [], []
    plain = [t for t in tasks if t.name not in packed]
    if plain:
        groups.append(Group(base, {w: w for w in base.weights}, dict(net.values)))
        placed += [dataclasses.replace(t, backbone=0) for t in plain]
    piece = masks.piggyback_piece(base, kernels)
    for t in (t for t in tasks if t.name in packed):
        names = {**{w: w for w in base.weights}, **{masks.BITS_PREFIX + w: mask_variable(t, w) for w in kernels}}
        values = {**net.values, **{masks.BITS_PREFIX + w: packed[t.name][w] for w in kernels}}
        groups.append(Group(piece, names, values))
        placed.append(dataclasses.replace(t, backbone=len(groups) - 1))
    placed.sort(key=lambda t: t.id)
    state = {"method": "piggyback", "kernels": kernels, "masked": [t.name for t in tasks if t.name in packed],
             "threshold": cfg.threshold, "mask_init": cfg.mask_init, "masks_file": f"continual/{FILE}",
             "base": masks.base_record(base, f"{files.PARTS_DIR}/{BASE_PART}"),
             "kept_fraction": {w: float(bits[w].mean()) for w in kernels}}
    arrays = {_SEP.join((n, w)): m for n, per in packed.items() for w, m in per.items()}
    return Learned(groups, placed, state, arrays={FILE: (arrays, net.fingerprint)},
                   parts={BASE_PART: base.graph_def.SerializeToString(deterministic=True)}, history=history,
                   extra_bytes={"head": head_bytes(head), "mask": sum(m.nbytes for m in packed[task.name].values())},
                   mask_off=report, notes=notes)
