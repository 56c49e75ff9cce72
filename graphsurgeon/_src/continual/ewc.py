"""Elastic Weight Consolidation (Kirkpatrick et al. 2017) and online EWC (Schwarz et al. 2018), after
Avalanche's ``EWCPlugin`` and van de Ven's ``continual-learning`` (``/work/shared/REFERENCES.md`` §4).

* Importance: the diagonal Fisher information of a task at the weights θ* it ended with, from N of its
  examples, one at a time: ``F = mean over examples of (∂ log p(label | x) / ∂θ)²``, the label being
  the example's own (``empirical``, as Avalanche) or drawn from the model's prediction (``sampled``,
  van de Ven's ``'sample'``). Only backbone weights are counted: old heads do not train.
* Penalty while learning a new task: ``λ · Σ_tasks Σ_i (F_i / F̄) · (θ_i − θ*_i)²`` (Avalanche's form,
  no ½), F̄ the mean of that task's F over every backbone weight. Dividing by F̄ makes λ
  scale-free: the raw Fisher's mean of example 05's digits 0–4 MLP was 5e-9 to 2e-8 when it
  was trained 40 epochs (its predictions on its own data nearly one-hot) and 6e-5 to 1e-3 when
  trained 8 epochs (seeds 0–2), so a fixed λ on the raw Fisher means something else for every
  model. With the division, λ = 1 pulls a weight of
  average importance back like an L2 penalty of weight 1. The default λ = 0.1 was measured on
  example 05 (``benchmarks/README.md``: λ = 1 and more kept the old task but learned the new one
  much less well, 0.01 kept less of the old task). A Fisher that is 0 everywhere gives no penalty.
* Online mode (for more than two tasks): one ``F* ← γ·F* + F_new`` and θ* the latest weights; the
  penalty uses ``γ·F*/F̄*`` (F̄* the mean of F*); γ = 1 by default.

The Fisher information is stored with the checkpoint in ``continual/fisher.npz``, stamped with the
fingerprint of the weights it was taken at; a file made for other weights is refused.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from graphsurgeon._src.continual.common import Group, Learned, fit, head_bytes, stream
from graphsurgeon._src.continual.graph import TrainGraph
from graphsurgeon._src.continual.transfer import backbone_variables, bound_values
from graphsurgeon._src.errors import ContinualError
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage.state_files import fingerprint, read_arrays

tf1 = tf.compat.v1
FILE = "fisher.npz"
ONLINE = "online"
_SEP = "\x1f"


def fisher(net, values: dict, task, x: np.ndarray, y: np.ndarray, *, samples: int, labels: str, seed: int,
           progress: bool = False) -> dict:
    """``{weight: F}``: the diagonal Fisher information of ``task`` at backbone ``values``, from the
    first ``samples`` examples of a seeded shuffle of ``(x, y)``."""
    order = np.random.default_rng(seed + 23).permutation(len(y))[:samples]
    x, y = x[order], y[order]
    tg = TrainGraph(seed)
    with tg.graph.as_default():
        bound = {w: tg.new(f"backbone/{w}", values[w]) for w in sorted(values)}
        s = stream(tg, net.backbone, bound, task, "fisher")
        log_p = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=s.y, logits=s.logits)
        grads = tf.gradients(tf.reduce_sum(log_p), [bound[w] for w in sorted(values)])
        probs = tf.nn.softmax(s.logits)
    tg.start()
    total = {w: np.zeros(values[w].shape, np.float64) for w in values}
    bar = Progress(len(y), "Fisher information", "examples", enabled=progress)
    try:
        if labels == "sampled":
            p = np.concatenate([tg.session.run(probs, {s.x: x[i:i + 256]}) for i in range(0, len(y), 256)])
            rng = np.random.default_rng(seed + 29)
            y = np.array([rng.choice(p.shape[1], p=row / row.sum()) for row in p.astype(np.float64)], np.int64)
        for i in range(len(y)):
            for w, g in zip(sorted(values), tg.session.run(grads, {s.x: x[i:i + 1], s.y: y[i:i + 1]})):
                total[w] += np.square(np.asarray(g, np.float64))
            bar.update(1)
    finally:
        bar.close()
        tg.close()
    return {w: (total[w] / max(1, len(y))).astype(np.float32) for w in total}


def mean_fisher(f: dict) -> float:
    """F̄: the mean of ``f`` over every weight it covers (0 when it covers none)."""
    n = sum(v.size for v in f.values())
    return float(sum(np.sum(v, dtype=np.float64) for v in f.values()) / n) if n else 0.0


def to_arrays(entries: dict) -> dict:
    """``{key: (F, θ*)}`` (key: a task name, or ``"online"``) as flat arrays for a state file."""
    out = {}
    for key, (f, theta) in entries.items():
        for w in f:
            out[_SEP.join(("F", key, w))] = f[w]
            out[_SEP.join(("theta", key, w))] = theta[w]
    return out


def from_arrays(arrays: dict) -> dict:
    """The inverse of :func:`to_arrays`."""
    entries = {}
    for name, v in arrays.items():
        kind, key, w = name.split(_SEP)
        entries.setdefault(key, ({}, {}))[0 if kind == "F" else 1][w] = v
    return entries


def read_file(path: str, net) -> dict:
    """The entries of a Fisher file made for ``net``'s weights.

    Raises:
      ContinualError: the file is missing, unreadable, or was made for other weights, or it covers
        other weights than ``net``'s backbone.
    """
    entries = from_arrays(read_arrays(path, net.fingerprint, "Fisher information"))
    for key, (f, _) in entries.items():
        if set(f) != set(net.values) or any(f[w].shape != net.values[w].shape for w in f):
            raise ContinualError(f"{path}: the Fisher information of '{key}' covers other weights than "
                                 f"{net.source}'s backbone")
    return entries


def old_entries(net, cfg, old: dict, progress: bool) -> tuple[dict, list]:
    """``({task name or "online": (F, θ*)}, [names of the tasks computed here])`` covering every old task:
    from ``cfg.fisher``, else the model's own ``continual/fisher.npz``, then computed from ``old`` data for
    tasks still missing.

    Raises:
      ContinualError: an old task with neither a Fisher entry nor data.
    """
    own = os.path.join(net.source, "continual", FILE)
    path = cfg.fisher or (own if net.state.get("method") == "ewc" else None)
    entries = read_file(path, net) if path else {}
    covered = set(net.state.get("online_tasks", [])) if ONLINE in entries else set()
    todo = [t for t in net.tasks if not (t.name in entries or t.name in covered or t.name == cfg.task)]
    missing = [t.name for t in todo if t.name not in old]  # all named before any Fisher is computed
    if missing:
        raise ContinualError(f"no Fisher information for old task{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(n) for n in missing)} of {net.source}: give fisher=FILE (the "
                             "continual/fisher.npz an ewc run wrote for these weights) or old_data="
                             f"{{{', '.join(repr(n) + ': PATH' for n in missing)}}} to compute it")
    for t in todo:
        f = fisher(net, net.values, t, *old[t.name].part("train"), samples=cfg.fisher_samples,
                   labels=cfg.fisher_labels, seed=cfg.seed, progress=progress)
        entries[t.name] = (f, dict(net.values))
    return entries, [t.name for t in todo]


def learn(net, data, task, cfg, old: dict, progress: bool) -> Learned:
    """Learn ``task`` with the EWC penalty; see the module docstring."""
    entries, computed = old_entries(net, cfg, old, progress)
    if cfg.online and len(entries) > 1:  # fold separate entries into one, θ* the model's weights
        entries = {ONLINE: ({w: sum(f[w] for f, _ in entries.values()) for w in net.values}, dict(net.values))}
    scale = cfg.gamma if ONLINE in entries else 1.0
    tg = TrainGraph(cfg.seed)
    with tg.graph.as_default():
        names = backbone_variables(tg, net)
        bound = bound_values(tg, names)
        s = stream(tg, net.backbone, bound, task, "new")
        terms = []
        for i, (key, (f, theta)) in enumerate(sorted(entries.items())):
            unit = scale / mean_fisher(f) if mean_fisher(f) > 0 else 0.0
            for w in sorted(f):
                fv = tg.new(f"ewc/{i}/F/{w}", (f[w] * unit).astype(np.float32))
                tv = tg.new(f"ewc/{i}/theta/{w}", theta[w])
                terms.append(tf.reduce_sum(fv * tf.square(bound[w] - tv)))
        penalty = tf.add_n(terms) if terms else tf.constant(0.0)
        loss = s.loss + cfg.lam_value() * penalty
        mults = {**{n: cfg.backbone_lr_mult for n in names.values()}, **{n: 1.0 for n in tg.head(task)}}
        op = tg.train_op(loss, mults, cfg.settings(), "train")
    tg.start()
    try:
        x, y = data.part("train")
        history = fit(tg, [(0, op)], loss, s.accuracy, lambda rows, yb, training: {s.x: x[rows], s.y: yb}, y,
                      epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, progress=progress)
        got = tg.values(names.values())
        values = {w: got[n] for w, n in names.items()}
        learned_head = tg.head_values(task)
    finally:
        tg.close()
    done = dataclasses.replace(task, head=learned_head)
    f_new = fisher(net, values, done, x, y, samples=cfg.fisher_samples, labels=cfg.fisher_labels, seed=cfg.seed,
                   progress=progress)
    return _learned(net, cfg, done, values, entries, f_new, history, computed)


def _learned(net, cfg, done, values, entries, f_new, history, computed) -> Learned:
    online_tasks = []
    if cfg.online:
        base = entries.get(ONLINE, next(iter(entries.values()), None))
        f = {w: cfg.gamma * base[0][w] + f_new[w] for w in f_new} if base else f_new
        kept = {ONLINE: (f, values)}
        online_tasks = [t.name for t in net.tasks if t.name != done.name] + [done.name]
        extra = 0 if net.state.get("online") else 2 * sum(v.nbytes for v in values.values())
    else:
        kept = {**{k: v for k, v in entries.items() if k != done.name}, done.name: (f_new, values)}
        extra = 2 * sum(v.nbytes for v in values.values())
    # the old tasks' Fisher computed here: stored beside the new task's, or folded into the online entry
    old_bytes = None if cfg.online or not computed else sum(
        sum(a.nbytes for a in f.values()) + sum(a.nbytes for a in theta.values())
        for k, (f, theta) in kept.items() if k in computed)
    tasks = [dataclasses.replace(t, backbone=0) for t in net.tasks if t.name != done.name] + [done]
    state = {"method": "ewc", "lam": cfg.lam_value(), "online": cfg.online, "gamma": cfg.gamma,
             "fisher_samples": cfg.fisher_samples, "fisher_labels": cfg.fisher_labels,
             "fisher_file": f"continual/{FILE}", "online_tasks": online_tasks}
    return Learned([Group(net.original, {w: w for w in values}, values)], tasks, state,
                   arrays={FILE: (to_arrays(kept), fingerprint(values))}, history=history,
                   extra_bytes={"head": head_bytes(done.head), "fisher": extra}, old_fisher_bytes=old_bytes,
                   notes=[_computed_note(computed, cfg.online)] if computed else [])


def _computed_note(computed: list, online: bool) -> str:
    """What this run did with the old tasks' Fisher information it computed from their old data."""
    tasks = f"old task{'s' if len(computed) > 1 else ''} {', '.join(repr(n) for n in computed)}"
    done = "folded into the one online entry" if online else "stored beside the new task's"
    return f"the Fisher information of {tasks} was computed from old data and {done} in continual/{FILE}"
