"""Combine trained classifiers into one over the union of their classes (seed 002, stage 1)::

    inputs ──┬─► A's backbone (frozen, scope A/) ──► A's features ─┐
             └─► B's backbone (frozen, scope B/) ──► B's features ─┴─► concat ─► new head
                                                                        combined/features   (A's classes, then B's)

The models may differ in architecture; they must read one input (same dtype and shape). The new head is
trained on the concatenated features, computed once (the backbones are frozen), either

* from labels (``data`` with ``x`` and ``y``, labels in the union's order), or
* **without labels** (``data`` with ``x`` only), from the models themselves as teachers. How the
  teachers' confidences are balanced is ``balance``:

  - ``"prior"`` (the default): the softmax over all the teachers' logits side by side, each of the union's classes
    shifted by an offset, the offsets chosen so that the targets' mean over ``data`` equals ``prior`` (the classes'
    frequencies in ``data``; equal by default): a teacher that also claims the other teacher's inputs gives its
    classes more than their share, and the offsets take that share back from the inputs it is least sure of (Saerens
    et al. 2002's prior adjustment, with the prior given instead of estimated). This assumes ``data`` holds the
    union's classes in about the proportions of ``prior``; where it does not, the offsets misplace inputs.
  - ``"logits"``: the same softmax without offsets. A teacher's share of the target grows with its log-sum-exp
    (energy): a model usually gives larger logits to inputs like the ones it was trained on, so the teacher
    whose domain the input is from tends to win.
  - ``"confidence"``: each teacher's softmax over its own classes, weighted by how certain it is,
    ``w = 1 − H(p) / log(number of its classes)`` (0 for a uniform answer, 1 for a one-hot one), the
    weighted sum normalized (an input every teacher is unsure of, weights summing to less than 1e-6,
    gets a uniform target).
  - ``"equal"``: the teachers' softmaxes averaged. (The targets are computed in :mod:`graphsurgeon._src.continual.targets`.)

  On example 05's digits (A: 0–4, B: 5–8) each teacher also answers confidently on the other's digits, so a target can
  go to the wrong teacher: ``benchmarks/README.md`` has the measured accuracies of ``prior`` and ``logits`` (and of
  ``prior`` on data whose classes are not equally frequent); with ``confidence`` or ``equal`` a target often splits
  between the right class and one of the other teacher's (one run: 0.68 test accuracy, against 0.93 with ``logits``).

Neither teacher can say "not mine": a softmax always sums to 1, so an input from neither domain gets a confident
answer from one of the teachers, and the combined model has no "none of these" class — every input gets one of the
union's classes, whichever the head trained on the teachers' targets ranks first. Thresholding ``probabilities`` is
one way to reject such inputs (how well depends on the models).
"""
from __future__ import annotations

import dataclasses
import os
import re
import time

import numpy as np
import tensorflow as tf

from graphsurgeon._src import export_dir
from graphsurgeon._src.continual.common import fit
from graphsurgeon._src.continual.graph import TrainGraph, Wording, check_features, check_head, feature_width
from graphsurgeon._src.continual.network import value_piece
from graphsurgeon._src.continual.targets import class_prior, listed, teacher_targets
from graphsurgeon._src.errors import ConfigError, ContinualError, DataError
from graphsurgeon._src.mixins import Report, series
from graphsurgeon._src.multihead import load
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.multihead.piece import input_spec
from graphsurgeon._src.retrain.config import DEFAULTS
from graphsurgeon._src.storage import datasets, files
from graphsurgeon._src.storage.paths import refuse_output_inside

BALANCES = ("prior", "logits", "confidence", "equal")
FEATURES = "combined/features"
WEIGHT_DECAY = 0.01  # teachers' targets are wrong where one claims the other's inputs: fit less (example 05)


@dataclasses.dataclass
class Teacher:
    """One model being combined: its scope ``name``, backbone piece (value form), head, classes,
    ``values`` of its backbone weights and the model as read (``source``)."""

    name: str
    path: str
    backbone: object
    head: specs.Head
    classes: list
    values: dict
    source: object


@dataclasses.dataclass
class CombineResult(Report):
    """What :func:`combine` wrote: ``directory``, the union's ``classes``, ``mode`` (``"labels"`` or
    ``"teachers"``), ``metrics`` of the written model, ``seconds`` spent training and ``notes``: one
    sentence per random part ``allow_random`` accepted (a model's features or head), or per batch-dependent part
    ``allow_batch_dependent`` accepted (a model's features or head), worded as retrain's."""

    directory: str
    classes: list
    mode: str
    metrics: dict
    seconds: float
    notes: list = dataclasses.field(default_factory=list)

    def format_text(self) -> str:
        how = "from labels" if self.mode == "labels" else "without labels, from the models' own outputs"
        lines = [f"{self.directory}: {len(self.classes)} classes ({series(self.classes, 12)}), "
                 f"head trained {how} in {self.seconds:.1f} s"]
        lines += [f"  {k}: {v:.4f}" for k, v in self.metrics.items() if isinstance(v, float)]
        return "\n".join(lines + list(self.notes or ()))


def scope_names(paths: list, names=None) -> list[str]:
    """Scopes for the models: ``names`` or their default task names, made valid TensorFlow scope names.

    Raises:
      ContinualError: not one name per model (given names: each non-empty), or two would share a scope.
    """
    raw = list(names) if names is not None else load.default_names(paths)
    if len(raw) != len(paths) or (names is not None and not all(str(n).strip() for n in raw)):
        raise ContinualError(f"names= gives {len(raw)} ({', '.join(map(str, raw))}) for {len(paths)} models "
                            f"({', '.join(paths)}): expected one non-empty name per model")
    out = [re.sub(r"[^A-Za-z0-9_.\-]", "_", n).lstrip("_.-") or f"model_{i}" for i, n in enumerate(raw)]
    if len(set(out)) != len(out):
        raise ContinualError(f"models {', '.join(paths)} would share a scope ({', '.join(out)}); "
                             + ("give names=" if names is None else "give each model its own name in names="))
    return out


def with_features(models: list) -> list:
    """``models`` (``[(path, features)]``) with each features None or ``''`` replaced by the features tensor
    the model's ``model.json`` names (``combine`` and ``add-class`` write one: ``combined/features:0``).

    Raises:
      ConfigError: a model given without features has no ``model.json`` naming them.
    """
    out = []
    for path, features in models:
        features = features or export_dir.read_record(path).get("features")
        if not features:
            raise ConfigError(f"{path} has no {export_dir.RECORD} naming its features (combine and add-class write "
                              "one): give its features tensor in models=[(path, TENSOR)]")
        out.append((path, features))
    return out


def read_teachers(models: list, *, input=None, names=None, tags=("serve",)) -> list[Teacher]:
    """Read ``models`` (``[(path, features tensor)]``), checking they read one input.

    Raises:
      ContinualError: fewer than two models, or inputs of different dtype or shape (naming both).
    """
    if len(models) < 2:
        raise ContinualError(f"combine needs two or more models, got {len(models)}")
    scopes = scope_names([p for p, _ in models], names)
    out = []
    for scope, (path, features) in zip(scopes, models):
        m = load.load(path, features, input=input, tags=tags)
        head = specs.head_of(m.head, m.read, path)
        classes = m.labels if m.labels is not None else [f"{scope}:{i}" for i in range(head.num_classes)]
        if len(classes) != head.num_classes:
            raise ContinualError(f"{path}: labels.txt names {len(classes)} classes; the head has {head.num_classes}")
        piece = value_piece(m.backbone, path)
        feature_width(piece, path)
        values = {w: np.asarray(m.read(w)) for w in piece.weights}
        out.append(Teacher(scope, path, piece, head, list(classes), values, m))
    check_inputs(out)
    return out


def check_inputs(teachers: list[Teacher]) -> None:
    """Raise :class:`ContinualError` unless every model's input has the first one's dtype and shape."""
    def describe(t):
        dtype, shape = input_spec(t.backbone)
        return dtype, (shape.as_list()[1:] if shape.rank is not None else None)
    first = describe(teachers[0])
    for t in teachers[1:]:
        got = describe(t)
        if got != first:
            raise ContinualError(
                f"the models read different inputs: {teachers[0].path} takes {first[0].name} {first[1]} at "
                f"'{teachers[0].backbone.input}', {t.path} takes {got[0].name} {got[1]} at '{t.backbone.input}'; "
                "combined models share one input")


def union_classes(teachers: list[Teacher]) -> list[str]:
    """The models' classes in order; a name two models share is qualified with each model's scope. A model
    without class names has ``SCOPE:0``, ``SCOPE:1``, …, whose numbers count as names here: another model's
    class ``0`` (a ``labels.txt`` of numbers, as retrain writes for data without class names) is ``ITS_SCOPE:0``."""
    raw = [[str(i) if c == f"{t.name}:{i}" else c for i, c in enumerate(t.classes)] for t in teachers]
    every = [r for names in raw for r in names]
    return [c if c != r or every.count(r) == 1 else f"{t.name}:{c}"
            for t, names in zip(teachers, raw) for c, r in zip(t.classes, names)]


def _data(path):
    """``(x, y or None, split)``: labelled data through :func:`datasets.load`, or an ``.npz`` of ``x`` only."""
    path = os.fspath(path)
    if path.endswith(".npz") and os.path.isfile(path):
        z = files.read_npz(path)
        if "y" not in z:
            if "x" not in z:
                raise DataError(f"{path}: no array 'x' (it has {', '.join(z) or 'none'})")
            x = z["x"]
            return x, None, np.array(["train"] * len(x))
    d = datasets.load(path)
    return d.x, d.y, d.split


@dataclasses.dataclass
class _Built:
    """The combining graph: input, teachers' probabilities, features, the new head's logits, and its
    objective on soft ``target`` [N, classes] with the features fed at ``features``."""

    tg: TrainGraph
    x: tf.Tensor
    teacher_logits: list
    features: tf.Tensor
    logits: tf.Tensor
    target: tf.Tensor
    loss: tf.Tensor
    accuracy: tf.Tensor
    op: object


def _graph(teachers: list[Teacher], num_classes: int, settings: dict, seed: int) -> _Built:
    """Every backbone frozen, their features concatenated, a new head and its train op."""
    tg = TrainGraph(seed)
    with tg.graph.as_default():
        x = tg.placeholder(teachers[0].backbone, "inputs")
        feats, teacher_logits = [], []
        for k, t in enumerate(teachers):
            bound = {w: tg.new(f"{t.name}/{w}", v) for w, v in t.values.items()}
            f = tg.backbone(t.backbone, x, bound, f"{t.name}/net")
            teacher_logits.append(tg.logits(specs.Task(k, t.name, t.classes, t.path, 0, t.head), f))
            feats.append(tf.cast(f, tf.float32))
        features = tf.concat(feats, axis=1, name=FEATURES)
        width = int(features.shape[-1])
        limit = np.sqrt(6.0 / (width + num_classes))
        kernel = np.random.default_rng(seed + 7).uniform(-limit, limit, (width, num_classes)).astype(np.float32)
        kernel = tg.new("combined/logits/kernel", kernel)
        logits = tf.nn.bias_add(tf.matmul(features, kernel),
                                tg.new("combined/logits/bias", np.zeros(num_classes, np.float32)),
                                name="combined/logits")
        target, loss, acc = soft_objective(logits, num_classes)
        loss = loss + settings["weight_decay"] * tf.reduce_sum(tf.square(kernel))
        op = tg.train_op(loss, {"combined/logits/kernel": 1.0, "combined/logits/bias": 1.0}, settings, "combine/train")
    tg.start()
    return _Built(tg, x, teacher_logits, features, logits, target, loss, acc, op)


def soft_objective(logits, num_classes: int):
    """``(target placeholder, mean soft cross-entropy, accuracy against the target's top class)``."""
    target = tf.compat.v1.placeholder(tf.float32, [None, num_classes], name="graphsurgeon/target")
    loss = tf.reduce_mean(-tf.reduce_sum(target * tf.nn.log_softmax(logits), axis=1))
    acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), tf.argmax(target, 1)), tf.float32))
    return target, loss, acc


def run_batches(session, fetches, tensor, x: np.ndarray, batch_size: int = 256) -> list:
    """``fetches`` (a list) run over ``x`` fed at ``tensor`` in batches, each result concatenated."""
    out = [[] for _ in fetches]
    for i in range(0, len(x), batch_size):
        for k, v in enumerate(session.run(fetches, {tensor: x[i:i + batch_size]})):
            out[k].append(v)
    return [np.concatenate(o) for o in out]


def combine(models: list, data, out_dir: str, *, input: str | None = None, names=None, balance: str = "prior",
            prior=None, epochs: int | None = None, lr: float | None = None, weight_decay: float = WEIGHT_DECAY,
            batch_size: int = 32, seed: int = 0, tags=("serve",), allow_random: bool = False,
            allow_batch_dependent: bool = False, progress: bool = True) -> CombineResult:
    """Combine ``models`` (``[(path, features tensor)]``, None or ``''`` for ``model.json``'s: :func:`with_features`)
    into one classifier written at ``out_dir`` (see :mod:`graphsurgeon._src.export_dir`); nothing read is changed.

    Args:
      data: an ``.npz`` with ``x`` and ``y`` (train the head on labels) or ``x`` only (train it on the models' own
        outputs), or a labelled image folder.
      input: the input tensor, when a model's features read more than one placeholder.
      names: the models' scopes (default: their directories' names).
      balance, prior: without labels, how the models' answers make the targets (see the module docstring);
        ``prior`` (with ``balance="prior"`` only) weighs the union's classes, in order (default: equal).
      epochs, lr: default to retrain's settings for a head trained on fixed features (300, 0.003).
      weight_decay: ``weight_decay · Σ kernel²`` is added to the loss (see :data:`WEIGHT_DECAY`).
      allow_random, allow_batch_dependent: accept features (without labels, a model's head too: its teacher)
        whose values differ between runs on one batch (dropout with ``keep_prob`` baked in), or that change
        with their batch-mates (batch norm in training mode), checked as retrain checks its cut, on the
        first examples of ``data`` (a head fed their features); the result's ``notes`` say so.

    Raises:
      ContinualError: fewer than two models, inputs that differ (naming both), two models with one scope.
      ConfigError: a setting out of range, ``out_dir`` exists or is in a model given as a directory, no features nor ``model.json``.
      RandomTensorError, BatchDependentError: a model's features (or, without labels, head) are random, or depend
        on their batch-mates (subclasses of ConfigError), unless ``allow_random`` / ``allow_batch_dependent``.
      DataError: data without ``x``, or labels outside the union's classes.
    """
    settings, epochs = _settings(balance, prior, out_dir, [p for p, _ in models], epochs, lr, batch_size, weight_decay)
    models = with_features(models)
    teachers = read_teachers(models, input=input, names=names, tags=tags)
    classes = union_classes(teachers)
    if balance == "prior":
        prior = class_prior(prior, len(classes))
    x, y, split, notes = _checked_data(data, teachers, classes, allow_random, allow_batch_dependent)
    start = time.perf_counter()
    b = _graph(teachers, len(classes), settings, seed)
    try:
        got = run_batches(b.tg.session, [b.features, *b.teacher_logits], b.x, x)
        feats, teacher_logits = got[0], got[1:]
        targets = (np.eye(len(classes), dtype=np.float32)[y] if y is not None
                   else teacher_targets(teacher_logits, balance, prior))
        f_tr, t_tr = feats[split == "train"], targets[split == "train"]
        history = fit(b.tg, [(0, b.op)], b.loss, b.accuracy,
                      lambda rows, yb, training: {b.features: f_tr[rows], b.target: t_tr[rows]},
                      t_tr.argmax(1), epochs=epochs, batch_size=batch_size, seed=seed, progress=progress)
        seconds = time.perf_counter() - start
        record = {"kind": "combine", "features": f"{FEATURES}:0", "classes": classes, "balance": balance,
                  "prior": prior.tolist() if balance == "prior" and y is None else None,
                  "mode": "labels" if y is not None else "teachers",
                  "data": os.path.abspath(os.fspath(data)), "epochs": epochs, "lr": settings["lr"],
                  "weight_decay": weight_decay,
                  "models": [{"path": t.path, "scope": t.name, "features": m[1], "classes": t.classes}
                             for t, m in zip(teachers, models)], "last_epoch": history[-1] if history else None}
        metrics = {}
        export_dir.write(b.tg.graph, b.tg.session, b.x, b.logits, classes, out_dir, record,
                         check=lambda d: metrics.update(_measure(d, x, y, split, targets)))
    finally:
        b.tg.close()
    return CombineResult(out_dir, classes, record["mode"], metrics, seconds, notes)


def _checked_data(data, teachers: list[Teacher], classes: list, allow_random: bool, allow_batch_dependent: bool):
    """``(x, y or None, split, notes)`` of ``data`` (:func:`_data`), ``x`` in the models' input dtype, once its
    labels fit the union and each model's features passed retrain's randomness and batch-dependence checks on it
    (:func:`check_features`) and, without labels, each model's head on those features the same checks
    (:func:`check_head`: its answers are the targets); ``notes``: what ``allow_random`` and
    ``allow_batch_dependent`` accepted."""
    x, y, split = _data(data)
    x = x.astype(input_spec(teachers[0].backbone)[0].as_numpy_dtype, copy=False)
    if y is not None and (y.min() < 0 or y.max() >= len(classes)):
        raise DataError(f"{data}: labels range over {int(y.min())}..{int(y.max())}; the union has "
                        f"{len(classes)} classes ({series(classes, 10)})")
    notes = []
    for t in teachers:
        features = check_features(t.backbone, t.values, x, Wording(f"{t.path}: features",
                                                                   "give features=TENSOR below {them}"),
                                  allow_random, allow_batch_dependent=allow_batch_dependent)
        notes.append(features.note)
        if y is None:
            notes.append(check_head(
                specs.Task(0, t.name, t.classes, t.path, 0, t.head), features.values, Wording(
                    f"{t.path}: the head, its output", "give features=TENSOR above {them}",
                    "the targets the new head learns from are one draw of its answers",
                    so="the targets the new head learns from would be one draw of its answers",
                    batch_instead="give the data labels (y) to train on instead of the models' answers",
                    batch_so="the targets the new head learns from would depend on which examples share a batch",
                    batch_consequence="the targets the new head learns from depend on which examples shared a batch"),
                allow_random, allow_batch_dependent=allow_batch_dependent).note)
    return x, y, split, [n for n in notes if n]


def _settings(balance: str, prior, out_dir: str, paths: list, epochs, lr, batch_size: int,
              weight_decay) -> tuple[dict, int]:
    """``(optimizer settings, epochs)``, checking every setting.

    Raises:
      ConfigError: a setting out of range or that does not apply, ``out_dir`` exists or is in or below a
        model of ``paths`` given as a directory (:func:`refuse_output_inside`).
    """
    if balance not in BALANCES:
        raise ConfigError(f"balance={balance!r}: expected one of {', '.join(BALANCES)}")
    if prior is not None and balance != "prior":
        raise ConfigError(f"prior={listed(prior)}: used with balance='prior' only (got balance={balance!r})")
    if os.path.lexists(out_dir):
        raise ConfigError(f"{out_dir} exists; combine writes a new directory (choose another out_dir=)")
    refuse_output_inside(out_dir, paths, f"out_dir={out_dir}")
    settings = dict(DEFAULTS["head_from_cache"], weight_decay=weight_decay, **({"lr": lr} if lr is not None else {}))
    epochs = settings["epochs"] if epochs is None else epochs
    if epochs < 1 or not settings["lr"] > 0 or batch_size < 1:
        raise ConfigError(f"epochs={epochs}, lr={settings['lr']}, batch_size={batch_size}: expected >= 1, > 0, >= 1")
    if not (np.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"weight_decay={weight_decay}: expected a number >= 0")
    return settings, epochs


def _measure(directory: str, x, y, split, targets) -> dict:
    p = export_dir.predict(directory, x)
    out = {}
    if y is not None:
        for s in ("train", "validation", "test"):
            m = split == s
            if m.any():
                out[f"{s}_accuracy"] = float((p.argmax(1)[m] == y[m]).mean())
    else:
        out["agreement_with_teachers"] = float((p.argmax(1) == targets.argmax(1)).mean())
    return out
