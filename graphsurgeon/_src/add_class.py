"""Add one class to a classifier from a few examples of it (seed 002, stage 2)::

    inputs ─► backbone (frozen) ─► features ─┬─► old kernel, bias (frozen) ─► old classes' logits ─┐
                                             └─► new column (trains)      ─► the new class's logit ─┴─► concat

The model is one written by ``combine`` or ``add-class`` (its ``model.json`` names the features),
or any model given with ``features`` whose last layer is one dense layer. Each added class is a
block of its own (its own matmul and bias), so adding classes one after another keeps every
earlier logit's bytes too. Only the new class's column of the last layer trains; the
old classes' logits are computed by the same ops on the same values as before, so they are
unchanged bit for bit, and the new class is the last index. What changes for an old input is
only whether the new logit now beats them.

The new column learns from two sets at once (full batch, Adam): the few examples of the new
class (every example in ``data``; labels in the file are not used), whose target is the new
class, and *reference* inputs, whose target is the model's own softmax over the old classes
(the new class 0) — the inputs the model should keep answering as before. The loss weighs the
few examples together ``balance`` (default 0.1) and the reference inputs ``1 − balance``: a
larger ``balance`` recognizes more of the new class and changes more old answers. The reference defaults
to the data ``combine`` trained the model on (recorded in ``model.json``); with neither, give
``reference``.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from graphsurgeon._src import export_dir
from graphsurgeon._src.combine import FEATURES, run_batches
from graphsurgeon._src.continual.graph import TrainGraph, Wording, check_features, feature_width
from graphsurgeon._src.continual.network import value_piece
from graphsurgeon._src.continual.targets import softmax
from graphsurgeon._src.determinism import RANDOM_OPS, dropout_example, ops_phrase
from graphsurgeon._src.errors import ConfigError, ContinualError, DataError
from graphsurgeon._src.mixins import Report, agree, series
from graphsurgeon._src.multihead import load
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.multihead.piece import input_spec
from graphsurgeon._src.storage import datasets, files
from graphsurgeon._src.storage.paths import refuse_output_inside

tf1 = tf.compat.v1
LOGITS = "combined/logits"


@dataclasses.dataclass
class AddClassResult(Report):
    """What :func:`add_class` wrote: ``directory``, all ``classes`` (the new one last), ``metrics``
    (``new_class_recall`` on the few examples, ``reference_unchanged``: the fraction of reference
    inputs whose top class is still the one the model gave before), ``seconds`` of training and ``notes``:
    a sentence when ``allow_random`` accepted random features, or ``allow_batch_dependent`` features that depend on
    the other examples of their batch, worded as retrain's."""

    directory: str
    classes: list
    metrics: dict
    seconds: float
    notes: list = dataclasses.field(default_factory=list)

    def format_text(self) -> str:
        m = self.metrics
        return (f"{self.directory}: class '{self.classes[-1]}' added as index {len(self.classes) - 1} "
                f"({len(self.classes)} classes) in {self.seconds:.1f} s\n"
                f"  new class recognized on {m['new_class_recall']:.0%} of its examples; "
                f"{m['reference_unchanged']:.1%} of {m['reference_examples']} reference inputs keep their class"
                + "".join(f"\n{n}" for n in self.notes or ()))


def _inputs(path, what: str) -> np.ndarray:
    path = os.fspath(path)
    if path.endswith(".npz") and os.path.isfile(path):
        z = files.read_npz(path)
        if "x" not in z:
            raise DataError(f"{what} {path}: no array 'x' (it has {', '.join(z) or 'none'})")
        return z["x"]
    return datasets.load(path).x


def add_class(model: str, data, name: str, out_dir: str, *, features: str | None = None,
              output: str | None = None, reference=None, steps: int = 300, lr: float = 0.01, balance: float = 0.1,
              seed: int = 0, tags=("serve",), allow_random: bool = False,
              allow_batch_dependent: bool = False) -> AddClassResult:
    """Write ``model`` with class ``name`` added (learned from ``data``) at ``out_dir``; the model and
    the data are not changed. See the module docstring.

    Args:
      features: the tensor the last layer reads (default: ``model.json``'s ``features``).
      output: the last layer's output, the logits (default: ``combine``'s and ``add-class``'s logits,
        else told from the graph as ``merge_heads`` tells it).
      reference: inputs whose answers are kept (default: ``model.json``'s ``data``).
      steps, lr: full-batch Adam steps and learning rate for the new column.
      balance: the loss's weight on the new class's examples (0 < balance < 1).
      allow_random: accept features whose values differ between runs on one batch (dropout with
        ``keep_prob`` baked in): checked as retrain checks its cut, on the first examples of ``data``.
      allow_batch_dependent: accept features whose value for an example changes with the other examples of
        its batch (batch norm in training mode), checked the same way: the first example alone.

    Raises:
      ConfigError: ``out_dir`` exists or is in or below the model given as a directory, no features or
        reference known, a setting out of range.
      RandomTensorError: the features are random (a subclass of ConfigError), unless ``allow_random``.
      BatchDependentError: the features depend on the other examples of their batch (a subclass of
        ConfigError), unless ``allow_batch_dependent``.
      ContinualError: ``name`` is already a class; the last layer is not one dense layer.
      DataError: the data do not fit the model's input.
    """
    _check_settings(model, name, out_dir, steps, lr, balance)
    src = _Original.read(model, name, features, output, reference, tags)
    dtype, shape = input_spec(src.piece)
    few = _fit(_inputs(data, "data"), dtype, shape, "data", src.piece)
    ref = _fit(_inputs(src.reference, "reference"), dtype, shape, "reference", src.piece)
    if not len(few):
        raise DataError(f"data {data}: no examples of the new class")
    note = check_features(src.piece, src.values, few, Wording(f"{model}: features", "give features=TENSOR below {them}"),
                          allow_random, allow_batch_dependent=allow_batch_dependent).note
    start = time.perf_counter()
    tg = TrainGraph(seed)
    try:
        net = _build(tg, src, seed, lr)
        tg.start()
        before = _train(tg, net, few, ref, steps, balance)
        seconds = time.perf_counter() - start
        names = list(src.classes) + [name]
        metrics = {}

        def check(directory):
            p_few = export_dir.predict(directory, few)
            p_ref = export_dir.predict(directory, ref)
            metrics.update(new_class_recall=float((p_few.argmax(1) == len(src.classes)).mean()),
                           reference_unchanged=float((p_ref.argmax(1) == before).mean()),
                           reference_examples=int(len(ref)))
        rec = {"kind": "add-class", "features": f"{FEATURES}:0", "classes": names, "from": os.path.abspath(model),
               "new_class": name, "examples": os.path.abspath(os.fspath(data)),
               "data": os.path.abspath(os.fspath(src.reference)), "steps": steps, "lr": lr, "blocks": net.block_vars}
        export_dir.write(tg.graph, tg.session, net.x, net.logits, names, out_dir, rec, check=check)
    finally:
        tg.close()
    return AddClassResult(out_dir, names, metrics, seconds, [note] if note else [])


def _check_settings(model, name, out_dir, steps, lr, balance) -> None:
    if os.path.lexists(out_dir):
        raise ConfigError(f"{out_dir} exists; add-class writes a new directory (choose another out_dir=)")
    if not name or not name.strip() or "\n" in name:
        raise ConfigError(f"name={name!r}: the new class needs a name (one line)")
    if not isinstance(steps, int) or steps < 1 or not np.isfinite(lr) or lr <= 0:
        raise ConfigError(f"steps={steps}, lr={lr}: expected an integer >= 1 and a number > 0")
    if not np.isfinite(balance) or not 0.0 < balance < 1.0:
        raise ConfigError(f"balance={balance}: expected the new examples' weight, 0 < balance < 1")
    refuse_output_inside(out_dir, [model], f"out_dir={out_dir}")


@dataclasses.dataclass
class _Original:
    """What add-class reads from the model: its backbone piece and values, its last layer's blocks,
    its class names and the reference inputs' path."""

    piece: object
    values: dict
    blocks: list
    classes: list
    reference: str

    @classmethod
    def read(cls, model, name, features, output, reference, tags) -> "_Original":
        record = export_dir.read_record(model)
        features = features or record.get("features")
        if not features:
            raise ConfigError(f"{model} has no {export_dir.RECORD} naming its features: give features=TENSOR "
                              "(the tensor the last layer reads)")
        output = output or (LOGITS if record.get("kind") in ("combine", "add-class") else None)
        m = load.load(model, features, output=output, tags=tags)
        blocks = _blocks(m, record, model, features)
        num_classes = sum(k.shape[1] for k, _ in blocks)
        classes = m.labels if m.labels is not None else [str(i) for i in range(num_classes)]
        if name in classes:
            raise ContinualError(f"{model} already has a class '{name}' (classes: {series(classes, 12)})")
        ref_path = reference or record.get("data")
        if not ref_path:
            raise ConfigError(f"{model}: no reference inputs recorded; give reference=DATA (inputs whose answers "
                              "the model should keep)")
        piece = value_piece(m.backbone, model)
        feature_width(piece, model)
        return cls(piece, {w: np.asarray(m.read(w)) for w in piece.weights}, blocks, list(classes), ref_path)


@dataclasses.dataclass
class _Net:
    x: object
    feats: object
    old: object
    logits: object
    target: object
    weight: object
    op: object
    block_vars: list


def _build(tg: TrainGraph, src: _Original, seed: int, lr: float) -> _Net:
    """The backbone (fixed), the old blocks (fixed) and the new class's column (trained) in ``tg``."""
    width, dtype_k = src.blocks[0][0].shape[0], src.blocks[0][0].dtype
    with tg.graph.as_default():
        x = tg.placeholder(src.piece, "inputs")
        bound = {w: tg.new(f"backbone/{w}", v) for w, v in src.values.items()}
        feats = tf.identity(tg.backbone(src.piece, x, bound, "backbone/net"), name=FEATURES)
        block_vars, parts = [], []
        for i, (k, b) in enumerate(src.blocks + [(None, None)]):
            kn, bn = (f"{LOGITS}/kernel", f"{LOGITS}/bias") if i == 0 else (f"{LOGITS}/kernel_{i}",
                                                                             f"{LOGITS}/bias_{i}")
            if k is None:  # the new class's column
                limit = np.sqrt(6.0 / (width + 1))
                k = np.random.default_rng(seed + 11).uniform(-limit, limit, (width, 1)).astype(dtype_k)
                b = np.zeros(1, dtype_k)
            block_vars.append([kn, bn])
            parts.append(tf.nn.bias_add(tf.matmul(feats, tg.new(kn, k)), tg.new(bn, b)))
        old = parts[0] if len(parts) == 2 else tf.concat(parts[:-1], axis=1)
        logits = tf.concat(parts, axis=1, name=LOGITS)
        num_out = sum(k.shape[1] for k, _ in src.blocks) + 1
        target = tf1.placeholder(tf.float32, [None, num_out], name="graphsurgeon/target")
        weight = tf1.placeholder(tf.float32, [None], name="graphsurgeon/weight")
        per = -tf.reduce_sum(target * tf.nn.log_softmax(tf.cast(logits, tf.float32)), axis=1)
        loss = tf.reduce_sum(weight * per)
        op = tg.train_op(loss, {block_vars[-1][0]: 1.0, block_vars[-1][1]: 1.0},
                         {"optimizer": "adam", "lr": lr}, "add_class/train")
    return _Net(x, feats, old, logits, target, weight, op, block_vars)


def _train(tg: TrainGraph, net: _Net, few, ref, steps: int, balance: float) -> np.ndarray:
    """Full-batch steps on the new examples (target: the new class) and the reference inputs
    (target: the old answers, the new class at 0); returns the reference's old top classes."""
    f_few, = run_batches(tg.session, [net.feats], net.x, few)
    f_ref, l_ref = run_batches(tg.session, [net.feats, net.old], net.x, ref)
    num_out = int(net.target.shape[1])
    t_ref = np.concatenate([softmax(l_ref), np.zeros((len(ref), 1))], axis=1).astype(np.float32)
    t_few = np.zeros((len(few), num_out), np.float32)
    t_few[:, -1] = 1.0
    feed = {net.feats: np.concatenate([f_few, f_ref]), net.target: np.concatenate([t_few, t_ref]),
            net.weight: np.concatenate([np.full(len(few), balance / len(few)),
                                        np.full(len(ref), (1 - balance) / max(1, len(ref)))]).astype(np.float32)}
    for _ in range(steps):
        tg.session.run(net.op, feed)
    return l_ref.argmax(1)


def _fit(x: np.ndarray, dtype, shape, what: str, piece) -> np.ndarray:
    want = shape.as_list()[1:] if shape.rank else None
    got = list(x.shape[1:])
    if want is not None and (len(want) != len(got) or any(w not in (None, g) for w, g in zip(want, got))):
        raise DataError(f"{what}: examples have shape {got} but the model's input {piece.input} takes {want}")
    return x.astype(dtype.as_numpy_dtype, copy=False)


def _blocks(m, record: dict, model: str, features: str) -> list:
    """The last layer as ``[(kernel, bias)]`` column blocks: one for a dense layer, one more per
    class added by add-class (each block its own matmul, so earlier logits keep their bytes)."""
    if record.get("kind") == "add-class":
        return [(np.asarray(m.read(k)), np.asarray(m.read(b))) for k, b in record["blocks"]]
    head = specs.head_of(m.head, m.read, model)
    if head.kind != "dense" or len(head.layers) != 1 or head.layers[0][2] != "linear":
        rand = sorted(n.name for n in m.head.graph_def.node if n.op in RANDOM_OPS)
        held = f" and holds {ops_phrase(rand)}{dropout_example(rand)}" if rand else ""
        above = f": give features=TENSOR above {agree(len(rand), 'it', 'them')}" if rand else ""
        raise ContinualError(f"{model}: the layer after {features} is not one dense layer{held}; add-class extends "
                             f"a single linear layer with a column{above}")
    kernel, bias, _ = head.layers[0]
    return [(kernel, bias if bias is not None else np.zeros(kernel.shape[1], kernel.dtype))]
