"""Run a retraining: data or cache in, the training graph, the loop, the export and its records."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from graphsurgeon._src import train
from graphsurgeon._src.errors import ConfigError, DataError
from graphsurgeon._src.export import export
from graphsurgeon._src.feeds import Feeder, batch_size_for
from graphsurgeon._src.retrain.checks import check_head_input
from graphsurgeon._src.retrain.config import RetrainConfig, training_settings
from graphsurgeon._src.retrain.data import (
    ArrayExamples,
    check_data,
    check_out_dir,
    class_names,
    open_cache,
    with_cache_settings,
)
from graphsurgeon._src.retrain.setup import Setup, build, picture
from graphsurgeon._src.storage import datasets, files
from graphsurgeon._src.storage.events import ScalarWriter
from graphsurgeon._src.storage.graphviz import can_draw, write_svg
from graphsurgeon._src.storage.session import assign
from graphsurgeon._src.storage.staging import StagingDir, check_destination, publish
from graphsurgeon._src.storage.writer import check_replaceable, write_json, write_text

tf1 = tf.compat.v1
# what a run writes in out_dir: these entries are replaced as a whole, other files there are kept
OUTPUTS = ("checkpoint", "saved_model", "labels.txt", "plan.json", "metrics.json", "surgery.dot", "surgery.svg", "logs")


@dataclasses.dataclass
class RetrainResult:
    """What :func:`retrain` did: per-epoch ``history``, final ``metrics`` per split, the ``plan``, the
    ``export`` (:class:`graphsurgeon.ExportResult`), the built ``setup``, the training
    ``settings`` used (see :func:`graphsurgeon._src.retrain.config.training_settings`) and what
    the check of the tensor the head reads found (``head_input``, a
    :class:`graphsurgeon._src.retrain.checks.HeadInput`)."""

    history: list
    metrics: dict
    plan: object
    export: object
    setup: object
    settings: dict = dataclasses.field(default_factory=dict)
    head_input: object = None


@dataclasses.dataclass
class _Examples:
    """What training is fed: the batches, the tensor they go into and how each batch is fed."""

    batches: object          # ArrayExamples or CacheExamples
    fed: tf.Tensor           # the input, or the cached tensor
    infer: Feeder            # feeds for evaluation
    train: Feeder            # feeds while training
    classes: list | None     # class names the data carries
    reader: object = None    # the CacheReader, when training from a cache


@dataclasses.dataclass
class _Objective:
    """The loss, accuracy and train ops added to the model's graph, and the feed of a batch."""

    loss: tf.Tensor
    accuracy: tf.Tensor
    stage_ops: list          # [(first epoch, train op)]
    labels: tf.Tensor
    weights: tf.Tensor


def retrain(cfg: RetrainConfig, data=None, out_dir: str = "", *, cache: str | None = None, progress: bool = True,
            overwrite: bool = False, logdir: str | None = None) -> RetrainResult:
    """Build (see :func:`~graphsurgeon._src.retrain.setup.build`), train and export.

    Args:
      data: a :class:`graphsurgeon.Dataset` or a path (``.npz`` / image folder); not with ``cache`` (a cache
        holds the examples it was made from: giving both is refused).
      out_dir: receives ``checkpoint/``, ``saved_model/``, ``labels.txt``, ``plan.json``,
        ``metrics.json``, ``surgery.dot`` (and ``surgery.svg`` when Graphviz's ``dot`` is on PATH)
        and TensorBoard scalars and graph under ``logs/`` (or ``logdir``). It may not be, or lie
        inside, the model's own directory. Everything but ``logdir`` is written into a staging
        directory beside it and moved into place at the end, so a run that fails leaves ``out_dir``
        as it was (or absent). In an existing ``out_dir`` those entries are replaced as a whole (an old
        ``surgery.svg`` or ``logs/`` too); other files there are kept.
      logdir: TensorBoard's directory instead of ``out_dir/logs``. Unlike ``out_dir`` it is not
        staged: scalars are written there while training, so a run that fails leaves the events
        it wrote (the curves up to the failure).
      overwrite: replace a model (``checkpoint/``, ``saved_model/``) already in ``out_dir``;
        without it such an ``out_dir`` is refused before anything trains.
      cache: a bottleneck cache directory (``graphsurgeon cache``): its activations are fed at the
        cached tensor, so only the layers above it run while training. The cache must come from this
        model (same frozen subgraph and values) and no trainable variable may lie below it. ``cfg.input``
        and ``cfg.feeds`` left out are taken from what the cache was made with
        (:func:`~graphsurgeon._src.retrain.data.with_cache_settings`), and a line of
        ``setup.notes`` names what was taken.

    Before anything trains, the tensor the head reads is run on the first training batch with the
    feeds the export keeps (:func:`~graphsurgeon._src.retrain.checks.check_head_input`): twice,
    and its first example alone.

    Raises:
      PlanError: shape mismatches or missing variables; ConfigError, DataError, CacheError: bad
      settings, data or cache (ConfigError: both ``data`` and ``cache`` given, or ``out_dir`` cannot
      be written: a file above it, no permission, a read-only file system); RandomTensorError: the
      head's input differs between two runs on one batch (dropout with keep_prob baked in), unless
      ``cfg.allow_random``; BatchDependentError: an example's value changes with its batch-mates,
      unless ``cfg.allow_batch_dependent``.
    """
    _check_request(cfg, data, cache, out_dir)  # the settings first, before anything is read
    cfg, taken, meta = with_cache_settings(cfg, cache) if cache else (cfg, None, None)
    # the graph, head and trainable patterns checked before out_dir; out_dir before the values are read
    setup = build(cfg, values=True, meta_graph=meta, before_values=lambda: _check_out(cfg, out_dir, overwrite))
    setup.notes += [taken] if taken else []
    batch_size = batch_size_for(cfg.batch_size, setup.fixed_batch, 32, f"the graph of {cfg.model}")
    examples = _examples(cfg, setup, data, cache, batch_size)
    head_input = _check_head_input(cfg, setup, examples)
    new = set(setup.head.variables if setup.head else ())
    head_only = set(setup.plan.trainable) <= new and len(setup.stages) == 1
    settings = training_settings(cfg, head_only=head_only, cached=examples.reader is not None)
    objective = _objective(setup, settings)
    try:
        history, metrics, result = _run_into(out_dir, cfg, setup, examples, objective, settings, cache=cache,
                                             logdir=logdir, progress=progress)
    finally:
        if examples.reader is not None:
            examples.reader.close()
    return RetrainResult(history, metrics, setup.plan, result, setup, settings, head_input)


def _check_request(cfg, data, cache, out_dir) -> None:
    """Refuse, before anything is read, settings :func:`retrain` cannot honour: no ``out_dir``, both ``data``
    and ``cache``, numbers out of range, a ``head`` that is not ``CUT:N_CLASSES``, neither ``head`` nor
    ``output`` (nothing to train)."""
    if not out_dir:
        raise ConfigError("no output directory given (out_dir=DIR)")
    if cache and data is not None:
        given = os.fspath(data) if isinstance(data, (str, os.PathLike)) else "(a Dataset)"
        raise ConfigError(f"data={given} and cache={cache}: give one, not "
                          "both (a cache holds the examples it was made from); to train on new data, cache it "
                          "first with generate_cache, or leave out cache= to train from the data")
    cfg.check()
    if not cfg.head_spec() and not cfg.output and cfg.model:  # (build refuses no model)
        raise ConfigError("nothing to train: give head=CUT:N_CLASSES (a new head on the tensor CUT) or "
                          "output=TENSOR (existing logits to fine-tune)")


def _check_out(cfg, out_dir, overwrite) -> None:
    """Refuse an ``out_dir`` in the model's directory, not a directory, not writable, or holding a model
    without ``overwrite`` (after the settings and the graph are checked, before the values are read)."""
    check_out_dir(cfg, out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"out_dir={out_dir} exists and is not a directory")
    check_destination(out_dir, f"out_dir={out_dir}")
    check_replaceable(out_dir, overwrite)


def _run_into(out_dir: str, cfg, setup: Setup, examples: _Examples, objective: _Objective, settings: dict, *,
              cache, logdir, progress):
    """Train and write the run's outputs (``OUTPUTS``) into a staging directory beside ``out_dir``,
    then move them into place (:func:`graphsurgeon._src.storage.staging.publish`); a run that fails
    leaves ``out_dir`` as it was. Returns ``(history, metrics, ExportResult)`` (paths in ``out_dir``)."""
    real = os.path.realpath(out_dir)
    with StagingDir(os.path.dirname(real), "retrain") as tmp:
        work = files.make_dir(os.path.join(tmp, "out"))
        _write_picture(setup, examples, work)
        history, metrics = _train(setup, examples, objective, settings, logdir or os.path.join(work, "logs"), progress)
        names = class_names(examples.classes, setup.logits.shape.as_list()[-1])
        result = _export(setup, names, work)
        write_json(os.path.join(work, "plan.json"), setup.plan.to_dict())
        write_json(os.path.join(work, "metrics.json"), {"version": 1, "history": history, "metrics": metrics,
                                                        "settings": settings, "config": dataclasses.asdict(cfg),
                                                        "cache": cache})
        publish(work, real, OUTPUTS, os.path.join(tmp, "old"))
    moved = {k: os.path.join(out_dir, os.path.relpath(getattr(result, k), work)) for k in ("checkpoint", "saved_model")}
    return history, metrics, dataclasses.replace(result, **moved)


def _examples(cfg: RetrainConfig, setup: Setup, data, cache, batch_size: int) -> _Examples:
    """The training examples: a cache fed at its tensor, or data (loaded if a path) fed at the input."""
    model = setup.model
    if cache:
        reader, batches = open_cache(setup, cache, batch_size, cfg.seed, image_scale=cfg.image_scale)
        fed = model.tensor(reader.cut)
        # placeholders above the cached tensor (keep_prob) are fed as from the data; those below are not run
        return _Examples(batches, fed, Feeder(model, fed, setup.feeds, setup.fixed_batch),
                         Feeder(model, fed, setup.train_feeds, setup.fixed_batch), reader.classes, reader)
    if data is None:
        raise ConfigError("give training data (data=PATH) or a bottleneck cache (cache=DIR)")
    where = "data"
    if not isinstance(data, datasets.Dataset):
        shape = setup.input.shape.as_list() if setup.input.shape.rank is not None else []
        where = f"data {data}"
        data = datasets.load(data, image_size=shape[1:3] if len(shape) == 4 else None, scale=cfg.image_scale)
    check_data(data, setup.input, setup.logits.shape.as_list()[-1], where)
    if not len(data.part("train")[1]):
        raise DataError("the data has no training examples")
    return _Examples(ArrayExamples(data, batch_size, cfg.seed), setup.input,
                     Feeder(model, setup.input, setup.feeds, setup.fixed_batch),
                     Feeder(model, setup.input, setup.train_feeds, setup.fixed_batch), data.classes)


def _check_head_input(cfg: RetrainConfig, setup: Setup, examples: _Examples):
    """:func:`check_head_input` on the first training batch (a refusal closes the cache's reader)."""
    try:
        return check_head_input(cfg, setup, examples.infer, examples.batches.first(), examples.reader)
    except Exception:
        if examples.reader is not None:
            examples.reader.close()
        raise


def _objective(setup: Setup, settings: dict) -> _Objective:
    """Add the loss (padding rows of a fixed-size batch weigh nothing), the accuracy and one train
    op per unfreezing stage to the model's graph; initialize the new optimizer slots only."""
    model = setup.model
    with model.graph.as_default():
        labels = tf1.placeholder(tf.int64, [None], name="graphsurgeon/labels")
        weights = tf1.placeholder_with_default(tf.ones_like(labels, tf.float32), [None], name="graphsurgeon/weights")
        total = tf.maximum(tf.reduce_sum(weights), 1.0)
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=setup.logits)
        loss = tf.math.divide(tf.reduce_sum(weights * xent), total, name="graphsurgeon/loss")
        hits = tf.cast(tf.equal(tf.argmax(setup.logits, 1), labels), tf.float32)
        acc = tf.math.divide(tf.reduce_sum(weights * hits), total, name="graphsurgeon/accuracy")
        before = set(tf1.global_variables())
        variables = model.variables
        stage_ops, optimizers = [], {}  # optimizers shared by the stages: slots carry over
        for k, (epoch, mults) in enumerate(setup.stages):
            upd = [model.graph.get_operation_by_name(n) for n in setup.stage_updates[k]]
            op = train.build_train_op(loss, variables, mults, optimizer=settings["optimizer"], lr=settings["lr"],
                                      update_ops=upd, name=f"graphsurgeon/train_stage{k}", optimizers=optimizers)
            stage_ops.append((epoch, op))
        slots = sorted(set(tf1.global_variables()) - before, key=lambda v: v.name)
        model.session.run([v.initializer for v in slots])
    return _Objective(loss, acc, stage_ops, labels, weights)


def _feed_of(examples: _Examples, objective: _Objective):
    """``(x, y, training) -> feed dict``: padded to a fixed batch, padding rows at weight 0."""
    def feed_of(x, y, training):
        feed, n = (examples.train if training else examples.infer).feed(x)
        rows = len(feed[examples.fed])
        if n == len(y) and rows == n:
            return {**feed, objective.labels: y}
        w = np.zeros(rows, np.float32)
        w[:n] = 1.0
        return {**feed, objective.labels: np.take(y, np.arange(rows) % n), objective.weights: w}
    return feed_of


def _train(setup: Setup, examples: _Examples, objective: _Objective, settings: dict, logdir: str, progress: bool):
    """Fit, then evaluate every split; TensorBoard gets the graph, per-epoch and final scalars."""
    model, batches = setup.model, examples.batches
    trainable = [model.variables[n] for n in setup.plan.trainable]
    snapshot = (lambda: model.session.run(trainable), lambda state: assign(model.session, zip(trainable, state)))
    feed_of = _feed_of(examples, objective)
    writer = ScalarWriter(logdir)
    try:
        writer.graph(model.graph.as_graph_def())
        history = train.fit(model.session, objective.stage_ops, objective.loss, objective.accuracy, feed_of,
                            batches.train(), batches.steps(), batches.split("validation"), epochs=settings["epochs"],
                            writer=writer, patience=settings["patience"], snapshot=snapshot, progress=progress)
        metrics = {}
        for split in ("train", "validation", "test"):
            split_batches = batches.split(split)
            ev = (train.evaluate(model.session, objective.loss, objective.accuracy, feed_of, split_batches())
                  if split_batches else {})
            if ev:
                metrics[split] = ev
                writer.scalars(len(history), {f"final/{split}_accuracy": ev["accuracy"]})
    finally:
        writer.close()
    return history, metrics


def _write_picture(setup: Setup, examples: _Examples, out_dir: str) -> None:
    dot = picture(setup, cache=examples.reader.cut if examples.reader is not None else None)
    write_text(os.path.join(out_dir, "surgery.dot"), dot)
    if can_draw():
        write_svg(dot, os.path.join(out_dir, "surgery.svg"))


def _export(setup: Setup, names: list, out_dir: str):
    """The SavedModel and checkpoint (inputs -> logits, probabilities, classes) and labels.txt."""
    with setup.model.graph.as_default():
        classes = tf.gather(tf.constant(names), tf.argmax(setup.logits, 1), name="graphsurgeon/classes")
    result = export(setup.model, out_dir, inputs={"inputs": setup.input},
                    outputs={"logits": setup.logits, "probabilities": setup.probabilities, "classes": classes},
                    feeds=setup.feeds)
    write_text(os.path.join(out_dir, "labels.txt"), "".join(n + "\n" for n in names))
    return result
