"""The three baselines of the seed's table, on one shared backbone::

    feature-extraction   backbone frozen; the new head trains          old tasks unchanged
    fine-tune            backbone trains at lr × backbone_lr_mult      old heads untouched: they
                         with the new head                              read features that moved
    joint                backbone, old heads and new head train on      needs the old data
                         a batch of every task per step

Every method here writes one backbone group: the original backbone piece with the new values.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from graphsurgeon._src.continual.common import Group, Learned, fit, head_bytes, stream
from graphsurgeon._src.continual.graph import TrainGraph


def backbone_variables(tg: TrainGraph, net, scope: str = "backbone") -> dict:
    """A variable per backbone weight, set to its value: ``{weight: variable name}``."""
    names = {w: f"{scope}/{w}" for w in sorted(net.backbone.weights)}
    for w, n in names.items():
        tg.variable(n, net.values[w])
    return names


def bound_values(tg: TrainGraph, names: dict) -> dict:
    return {w: tg.read(n) for w, n in names.items()}


def old_streams(tg: TrainGraph, net, bound: dict, old: dict, skip: str) -> dict:
    """A stream per old task that has data (but ``skip``): ``{task name: (task, stream, dataset)}``."""
    out = {}
    for t in net.tasks:
        if t.name in old and t.name != skip:
            out[t.name] = (t, stream(tg, net.backbone, bound, t, f"old_{t.id}"), old[t.name])
    return out


def old_batches(olds: dict, batch_size: int, seed: int):
    """``() -> {stream x: rows, stream y: labels}`` drawing one random training batch per old task."""
    rng = np.random.default_rng(seed + 17)
    parts = [(s, *d.part("train")) for _, s, d in olds.values()]

    def draw() -> dict:
        feed = {}
        for s, x, y in parts:
            idx = rng.integers(0, len(y), size=min(batch_size, len(y)))
            feed[s.x], feed[s.y] = x[idx], y[idx]
        return feed
    return draw


def learn(net, data, task, cfg, old: dict, progress: bool) -> Learned:
    """Feature extraction, fine-tuning or joint training (``cfg.method``) of ``task`` on ``data``."""
    tg = TrainGraph(cfg.seed)
    with tg.graph.as_default():
        names = backbone_variables(tg, net)
        bound = bound_values(tg, names)
        s = stream(tg, net.backbone, bound, task, "new")
        olds = old_streams(tg, net, bound, old, task.name) if cfg.method == "joint" else {}
        mults = {n: 1.0 for n in tg.head(task)}
        loss = s.loss
        if cfg.method != "feature-extraction":
            mults.update({n: cfg.backbone_lr_mult for n in names.values()})
        if cfg.method == "joint":
            for t, so, _ in olds.values():
                loss = loss + so.loss
                mults.update({n: cfg.backbone_lr_mult for n in tg.head(t)})
        op = tg.train_op(loss, mults, cfg.settings(), "train")
    tg.start()
    try:
        x, y = data.part("train")
        draw = old_batches(olds, cfg.batch_size, cfg.seed) if cfg.method == "joint" else (lambda: {})
        history = fit(tg, [(0, op)], loss, s.accuracy,
                      lambda rows, yb, training: {s.x: x[rows], s.y: yb, **draw()}, y,
                      epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, progress=progress)
        got = tg.values(names.values())
        values = {w: got[n] for w, n in names.items()}
        heads = {t.name: tg.head_values(t) if cfg.method == "joint" and t.name in olds else t.head
                 for t in net.tasks}
        learned_head = tg.head_values(task)
    finally:
        tg.close()
    tasks = [dataclasses.replace(t, backbone=0, head=heads[t.name]) for t in net.tasks if t.name != task.name]
    tasks.append(dataclasses.replace(task, head=learned_head))
    return Learned([Group(net.original, {w: w for w in values}, values)], tasks, {"method": cfg.method},
                   history=history, extra_bytes={"head": head_bytes(learned_head)})
