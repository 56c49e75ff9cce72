"""Learning without Forgetting (Li & Hoiem 2016, arXiv 1606.09282), after the official code's defaults
(``/work/shared/REFERENCES.md`` §3):

1. Before training, the original network runs over the new task's training inputs and each old
   head's logits are recorded — into a bottleneck cache (:mod:`~graphsurgeon._src.continual.responses`).
2. Warm-up: ``warmup_epochs`` epochs with the backbone frozen, only the new head training (the
   official run continues from such a frozen-backbone run; arunmallya/packnet's ``lwf.py`` uses 5).
3. Then the backbone, the old heads and the new head train together on
   ``loss = new-task cross-entropy + λ · Σ_old softened cross-entropy at temperature T``
   (T = 2, λ = 1; no T² factor), the old heads' targets being the recorded logits.

No old data is needed: the new task's inputs stand in for it.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from graphsurgeon._src.continual import responses
from graphsurgeon._src.continual.common import Group, Learned, fit, head_bytes, soft_cross_entropy, stream
from graphsurgeon._src.continual.graph import TrainGraph
from graphsurgeon._src.continual.transfer import backbone_variables, bound_values
from graphsurgeon._src.storage import files, model_dir

tf1 = tf.compat.v1


def learn(net, data, task, cfg, old: dict, progress: bool) -> Learned:
    """Learn ``task`` with LwF; see the module docstring."""
    x, y = data.part("train")
    olds = [t for t in net.tasks if t.name != task.name]
    scratch = None if cfg.cache else files.new_temp_dir("graphsurgeon-lwf-")
    try:
        recorded = responses.record(net, olds, x, cfg.cache or scratch, progress=progress)
    finally:
        if scratch:
            model_dir.discard(scratch)
    tg = TrainGraph(cfg.seed)
    with tg.graph.as_default():
        names = backbone_variables(tg, net)
        s = stream(tg, net.backbone, bound_values(tg, names), task, "new")
        targets = {t.name: tf1.placeholder(tf.float32, [None, t.head.num_classes], name=f"lwf/target_{t.id}")
                   for t in olds}
        distill = tf.add_n([soft_cross_entropy(targets[t.name], tg.logits(t, s.features), cfg.temperature)
                            for t in olds]) if olds else 0.0
        loss = s.loss + cfg.lam_value() * distill
        head = {n: 1.0 for n in tg.head(task)}
        full = {**{n: cfg.backbone_lr_mult for t in olds for n in tg.head(t)},
                **{n: cfg.backbone_lr_mult for n in names.values()}, **head}
        optimizers = {}
        warm = tg.train_op(s.loss, head, cfg.settings(), "warmup", optimizers)
        main = tg.train_op(loss, full, cfg.settings(), "train", optimizers)
    tg.start()
    try:
        stages = [(0, warm), (cfg.warmup_epochs, main)] if cfg.warmup_epochs else [(0, main)]
        history = fit(tg, stages, loss, s.accuracy,
                      lambda rows, yb, training: {s.x: x[rows], s.y: yb,
                                                  **{targets[t.name]: recorded[t.name][rows] for t in olds}},
                      y, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, progress=progress)
        got = tg.values(names.values())
        values = {w: got[n] for w, n in names.items()}
        heads = {t.name: tg.head_values(t) for t in olds}
        learned_head = tg.head_values(task)
    finally:
        tg.close()
    tasks = [dataclasses.replace(t, backbone=0, head=heads[t.name]) for t in olds]
    tasks.append(dataclasses.replace(task, head=learned_head))
    state = {"method": "lwf", "temperature": cfg.temperature, "lam": cfg.lam_value(), "warmup_epochs": cfg.warmup_epochs}
    return Learned([Group(net.original, {w: w for w in values}, values)], tasks, state, history=history,
                   extra_bytes={"head": head_bytes(learned_head)})
