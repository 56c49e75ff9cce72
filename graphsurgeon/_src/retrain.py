"""Retrain the top of a legacy model: restore, cut, new head, choose what trains, train, export.

The same :class:`RetrainConfig` drives the dry-run plan (:func:`plan`) and the run
(:func:`retrain`); the CLI and TOML plan files fill it in.
"""
from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import tensorflow as tf

from graphsurgeon._src import cache as cache_mod
from graphsurgeon._src import picture as picture_mod
from graphsurgeon._src import select, train
from graphsurgeon._src.errors import ConfigError, DataError
from graphsurgeon._src.feeds import Feeder, batch_size_for, find_input, fixed_batch, parse_feeds
from graphsurgeon._src.restore import graph_variable_info, load, restore
from graphsurgeon._src.export import export
from graphsurgeon._src.storage import datasets
from graphsurgeon._src.storage.events import ScalarWriter
from graphsurgeon._src.storage.graphviz import write_svg
from graphsurgeon._src.storage.paths import resolve
from graphsurgeon._src.storage.session import assign
from graphsurgeon._src.storage.writer import write_json, write_text
from graphsurgeon._src.surgery import add_head, make_plan, reinitialize

tf1 = tf.compat.v1


@dataclasses.dataclass
class RetrainConfig:
    """Every setting of a retraining run (CLI flags and TOML plan files map onto these fields).

    ``head`` is ``'TENSOR:N_CLASSES'`` (cut at TENSOR, new head with N classes); without it
    ``output`` names the existing logits to fine-tune. ``trainable`` patterns name the
    restored variables that train (the new head always trains); everything else is frozen.
    ``feeds`` are inference values for placeholders other than the input (``keep_prob``,
    ``is_training``), ``train_feeds`` their values while training. ``epochs``, ``lr``,
    ``optimizer`` and ``patience`` left None take the defaults of :func:`training_settings`.
    """

    model: str = ""
    head: str | None = None
    head_hidden: list = dataclasses.field(default_factory=list)
    head_activation: str = "relu"
    head_initializer: str = "glorot_uniform"
    head_scope: str = "head"
    output: str | None = None
    input: str | None = None
    trainable: list = dataclasses.field(default_factory=list)
    exclude: list = dataclasses.field(default_factory=list)
    reinit: list = dataclasses.field(default_factory=list)
    rename: dict = dataclasses.field(default_factory=dict)
    lr_mult: list = dataclasses.field(default_factory=list)
    unfreeze: list = dataclasses.field(default_factory=list)
    feeds: dict = dataclasses.field(default_factory=dict)
    train_feeds: dict = dataclasses.field(default_factory=dict)
    epochs: int | None = None      # None: see training_settings
    batch_size: int | None = None  # None: the batch the graph fixes, else 32
    lr: float | None = None
    optimizer: str | None = None
    seed: int = 0
    patience: int | None = None
    restore_optimizer: bool = False
    allow_missing: bool = False
    allow_cast: bool = False
    allow_unsafe_ops: bool = False
    tags: list = dataclasses.field(default_factory=lambda: ["serve"])
    image_scale: str = "unit"

    @classmethod
    def from_toml(cls, path: str, **overrides) -> "RetrainConfig":
        """Read a TOML plan file; keys are the field names (``lr-mult`` or ``lr_mult``);
        ``[[unfreeze]]`` tables hold ``epoch``, ``scopes``, ``lr_mult``. ``overrides`` that
        are not None win over the file."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"plan file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"plan file {path}: not valid TOML ({e})") from None
        data = {k.replace("-", "_"): v for k, v in data.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"plan file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data.update({k: v for k, v in overrides.items() if v not in (None, [], {})})
        return cls(**data)

    def head_spec(self):
        """``(tensor name, n_classes)`` or None."""
        if not self.head:
            return None
        tensor, sep, n = str(self.head).rpartition(":")
        if not sep or not tensor or not n.isdigit() or int(n) < 1:
            raise ConfigError(f"head '{self.head}': expected TENSOR:N_CLASSES such as hidden3/Relu:2")
        return tensor, int(n)


@dataclasses.dataclass
class Setup:
    """A built retraining graph: the restored model with its head, the plan, and the tensors to feed.

    Without a cut (no ``head`` and no ``output``) only ``model``, ``plan`` and ``stages`` are set:
    the plan of a plain restore.
    """

    model: object
    plan: object
    input: tf.Tensor | None
    logits: tf.Tensor | None
    probabilities: tf.Tensor | None
    head: object
    stages: list  # [(first epoch, {variable name: lr multiplier})], stage 0 first
    extra_placeholders: list
    cut: str | None = None
    feeds: dict = dataclasses.field(default_factory=dict)        # inference values of extra placeholders
    train_feeds: dict = dataclasses.field(default_factory=dict)  # their values while training
    fixed_batch: int | None = None                                 # the batch the static shapes fix
    stage_updates: list = dataclasses.field(default_factory=list)  # update op names per stage


def build(cfg: RetrainConfig, *, values: bool = True) -> Setup:
    """Restore ``cfg.model`` pruned to what the cut needs, add the head, decide what trains.

    Without ``head`` or ``output`` the whole graph is restored and the plan says, for every
    variable, whether it is restored and whether it would train (``trainable`` patterns), as
    ``tf_slim.get_variables_to_restore(exclude=...)`` would restore it.
    With ``values=False`` nothing is read and no session is made (the dry-run plan).
    """
    if not cfg.model:
        raise ConfigError("no model given (--model PATH or model = '...' in the plan file)")
    spec = cfg.head_spec()
    cut = spec[0] if spec else cfg.output
    if not cut:
        return _build_without_cut(cfg, values)
    keep = [cut] + ([cfg.input] if cfg.input else [])
    # The graph, head and plan come first; values are then loaded in one pass (new head included).
    model = restore(cfg.model, tags=cfg.tags, outputs=keep, inputs=[cfg.input] if cfg.input else None,
                    exclude=cfg.exclude or None, rename=cfg.rename, restore_optimizer=cfg.restore_optimizer,
                    values=False)
    feeds, train_feeds = parse_feeds(cfg.feeds), parse_feeds(cfg.train_feeds)
    inp, extra = find_input(model, cfg.input, cut, feeds)
    for name in sorted(set(feeds) | set(train_feeds)):
        if name not in extra:
            raise ConfigError(f"feed '{name}': '{cut}' does not read placeholder '{name}' (it reads "
                              f"{', '.join(extra) or 'no placeholder'} besides its input); drop that --feed")
    fixed = fixed_batch(inp, model.tensor(cut))
    Feeder(model, inp, {n: feeds[n] for n in extra}, fixed)  # every feed fits its placeholder
    Feeder(model, inp, {n: {**feeds, **train_feeds}[n] for n in extra}, fixed)
    reinit = select.match(cfg.reinit, model.variables) if cfg.reinit else []
    if spec:
        head = add_head(model, spec[0], spec[1], hidden=cfg.head_hidden, activation=cfg.head_activation,
                        kernel_initializer=cfg.head_initializer, scope=cfg.head_scope, seed=cfg.seed)
        logits, probs = head.logits, head.probabilities
    else:
        head = None
        logits = model.tensor(cfg.output)
        with model.graph.as_default():
            probs = tf.nn.softmax(logits, name="graphsurgeon_probabilities")
    new = head.variables if head else []
    final, stage_sets, stage_updates = _trainable(cfg, model, new)
    upd = stage_updates[-1]
    plan = make_plan(graph_variable_info(model.graph), _entries(model), exclude=cfg.exclude or None,
                     rename=cfg.rename, restore_optimizer=cfg.restore_optimizer, new=new, reinit=reinit,
                     trainable=final, lr_mult=final, update_ops=[o.name for o in upd], inputs=[inp.name],
                     outputs=[logits.name, probs.name])
    model.plan = plan
    if values:
        load(model, allow_missing=cfg.allow_missing, allow_cast=cfg.allow_cast, allow_unsafe_ops=cfg.allow_unsafe_ops)
        if reinit:
            reinitialize(model, reinit, seed=cfg.seed)
    return Setup(model, plan, inp, logits, probs, head, stage_sets, extra, cut=cut,
                 feeds={n: feeds[n] for n in extra}, train_feeds={n: {**feeds, **train_feeds}[n] for n in extra},
                 fixed_batch=fixed, stage_updates=[[o.name for o in u] for u in stage_updates])


def _entries(model) -> dict:
    return {n: (e.shape, e.dtype.name) for n, e in (model.reader.entries.items() if model.reader else ())}


def _trainable(cfg, model, new):
    """``(final {name: lr multiplier}, stage sets, update ops)`` of what trains."""
    names = list(model.variables)
    chosen = select.match(cfg.trainable, [n for n in names if n not in new]) if cfg.trainable else []
    # Only variables in TRAINABLE_VARIABLES get gradients (batch-norm moving statistics are not);
    # those move through the update ops of trainable layers instead.
    with model.graph.as_default():
        in_collection = {select.normalize_name(v.name) for v in tf1.trainable_variables()}
    if in_collection:
        chosen = [n for n in chosen if n in in_collection]
    mults = train.multipliers(sorted(set(chosen) | set(new)), cfg.lr_mult)
    stages = [train.parse_stage(s) for s in cfg.unfreeze]
    stage_sets = train.stage_sets(mults, stages, names, in_collection)
    final = stage_sets[-1][1]
    # each stage runs the update ops (batch-norm moving statistics) of its own trainable layers only
    ordered = sorted(stages, key=lambda st: st.epoch)
    stage_updates = [train.update_ops_for(model.graph, set(mults),
                                          list(cfg.trainable) + [p for st in ordered[:k] for p in st.patterns])
                     for k, (_, mults) in enumerate(stage_sets)]
    return final, stage_sets, stage_updates


def _build_without_cut(cfg: RetrainConfig, values: bool) -> Setup:
    """The whole graph restored: every variable's restore status and trainability, nothing new."""
    model = restore(cfg.model, tags=cfg.tags, exclude=cfg.exclude or None, rename=cfg.rename,
                    restore_optimizer=cfg.restore_optimizer, values=False)
    final, stage_sets, stage_updates = _trainable(cfg, model, [])
    upd = stage_updates[-1]
    plan = make_plan(graph_variable_info(model.graph), _entries(model), exclude=cfg.exclude or None,
                     rename=cfg.rename, restore_optimizer=cfg.restore_optimizer, trainable=final, lr_mult=final,
                     update_ops=[o.name for o in upd], inputs=model.inputs, outputs=model.outputs)
    model.plan = plan
    if values:
        load(model, allow_missing=cfg.allow_missing, allow_cast=cfg.allow_cast, allow_unsafe_ops=cfg.allow_unsafe_ops)
    return Setup(model, plan, None, None, None, None, stage_sets, [])


def picture(setup: Setup, *, cache: str | None = None, depth: int | None = None, max_nodes: int = 60) -> str:
    """Graphviz DOT text of ``setup``'s surgery (see :mod:`graphsurgeon._src.picture`)."""
    outputs = [setup.logits.name] if setup.logits is not None else setup.model.outputs
    inputs = [setup.input.name] if setup.input is not None else setup.model.inputs
    return picture_mod.to_dot(setup.model.graph.as_graph_def(), setup.plan, cut=setup.cut, cache=cache,
                              inputs=inputs, outputs=outputs, depth=depth, max_nodes=max_nodes)


def plan(cfg: RetrainConfig):
    """The dry-run :class:`graphsurgeon._src.surgery.Plan` of ``cfg``: nothing is read or run."""
    return build(cfg, values=False).plan


@dataclasses.dataclass
class RetrainResult:
    """What :func:`retrain` did: per-epoch ``history``, final ``metrics`` per split, the ``plan``, the
    ``export`` (:class:`graphsurgeon.ExportResult`), the built ``setup`` and the training
    ``settings`` used (see :func:`training_settings`)."""

    history: list
    metrics: dict
    plan: object
    export: object
    setup: object
    settings: dict = dataclasses.field(default_factory=dict)


class _ArraySource:
    """Training data held in memory, fed at the model's input."""

    def __init__(self, data, batch_size, seed):
        self.data, self.batch_size, self.seed = data, batch_size, seed

    def steps(self):
        return -(-len(self.data.part("train")[1]) // self.batch_size)

    def train(self):
        return train.array_batches(*self.data.part("train"), self.batch_size, self.seed)

    def split(self, name):
        x, y = self.data.part(name)
        return (lambda: train.array_batches(x, y, self.batch_size)(0)) if len(y) else None


class _CacheSource:
    """Training data from a bottleneck cache, fed at the cached tensor."""

    def __init__(self, reader, batch_size, seed):
        self.reader, self.batch_size, self.seed = reader, batch_size, seed

    def steps(self):
        return -(-self.reader.count("train") // self.batch_size)

    def train(self):
        return lambda epoch: self.reader.batches("train", self.batch_size, seed=self.seed, epoch=epoch)

    def split(self, name):
        if not self.reader.count(name):
            return None
        return lambda: self.reader.batches(name, self.batch_size, shuffle=False)


def _cache_source(setup, cache_dir, batch_size, seed):
    reader = cache_mod.CacheReader(cache_dir)
    cache_mod.check_matches(reader, setup.model)
    below = cache_mod.variables_below(setup.model, reader.tensor, setup.plan.trainable)
    if below:
        raise ConfigError(
            f"trainable variable(s) {', '.join(below[:4])} lie below the cached tensor '{reader.tensor}': they "
            "cannot train from the cache; cache a lower tensor or leave them frozen"
        )
    n_classes = setup.logits.shape.as_list()[-1]
    labels = reader.labels()
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{cache_dir}: labels range over {int(labels.min())}..{int(labels.max())} but the head "
                        f"has {n_classes} classes")
    if not reader.count("train"):
        raise DataError(f"{cache_dir}: the cache has no training examples")
    return reader, _CacheSource(reader, batch_size, seed)


def retrain(cfg: RetrainConfig, data=None, out_dir: str = "", *, cache: str | None = None, progress: bool = True,
            overwrite: bool = False, logdir: str | None = None) -> RetrainResult:
    """Build (see :func:`build`), train and export.

    Args:
      data: a :class:`graphsurgeon._src.storage.datasets.Dataset` or a path (``.npz`` / image folder);
        not needed with ``cache``.
      out_dir: receives ``checkpoint/``, ``saved_model/``, ``plan.json``, ``metrics.json`` and
        TensorBoard scalars under ``logs/`` (or ``logdir``).
      cache: a bottleneck cache directory (``graphsurgeon cache``): its activations are fed at the
        cached tensor, so only the layers above it run while training. The cache must come from this
        model (same frozen subgraph and values) and no trainable variable may lie below it.

    Raises:
      PlanError: shape mismatches or missing variables; ConfigError, DataError, CacheError: bad
      settings, data or cache.
    """
    if not out_dir:
        raise ConfigError("no output directory given (--out DIR)")
    _check_out_dir(cfg, out_dir)
    setup = build(cfg, values=True)
    if setup.logits is None:
        raise ConfigError("nothing to train: give --head TENSOR:N_CLASSES (a new head on TENSOR) or --output TENSOR "
                          "(existing logits to fine-tune)")
    model = setup.model
    reader = None
    batch_size = batch_size_for(cfg.batch_size, setup.fixed_batch, 32, f"the graph of {cfg.model}")
    if cache:
        reader, source = _cache_source(setup, cache, batch_size, cfg.seed)
        fed = model.tensor(reader.tensor)
        infer = train_ = Feeder(model, fed, {}, setup.fixed_batch)  # the cached tensor needs nothing below it
    else:
        if data is None:
            raise ConfigError("give training data (--data PATH) or a bottleneck cache (--cache DIR)")
        if not isinstance(data, datasets.Dataset):
            shape = setup.input.shape.as_list() if setup.input.shape.rank is not None else []
            size = shape[1:3] if len(shape) == 4 else None
            data = datasets.load(data, image_size=size, scale=cfg.image_scale)
        _check_data(data, setup.input, setup.logits.shape.as_list()[-1])
        if not len(data.part("train")[1]):
            raise DataError("the data has no training examples")
        source, fed = _ArraySource(data, batch_size, cfg.seed), setup.input
        infer = Feeder(model, fed, setup.feeds, setup.fixed_batch)
        train_ = Feeder(model, fed, setup.train_feeds, setup.fixed_batch)
    new = set(setup.head.variables if setup.head else ())
    head_only = set(setup.plan.trainable) <= new and len(setup.stages) == 1
    settings = training_settings(cfg, head_only=head_only, cached=reader is not None)
    with model.graph.as_default():
        labels = tf1.placeholder(tf.int64, [None], name="graphsurgeon/labels")
        # padding rows of a batch the graph fixes in size weigh nothing
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
        model.session.run([v.initializer for v in slots])  # new optimizer slots only

    def feed_of(x, y, training):
        feed, n = (train_ if training else infer).feed(x)
        if n == len(y) and len(feed[fed]) == n:
            return {**feed, labels: y}
        w = np.zeros(len(feed[fed]), np.float32)
        w[:n] = 1.0
        return {**feed, labels: np.take(y, np.arange(len(w)) % n), weights: w}

    trainable_vars = [variables[n] for n in setup.plan.trainable]

    def save_state():
        return model.session.run(trainable_vars)

    def load_state(state):
        assign(model.session, zip(trainable_vars, state))

    os.makedirs(out_dir, exist_ok=True)
    dot = picture(setup, cache=reader.tensor if reader is not None else None)
    write_text(os.path.join(out_dir, "surgery.dot"), dot)
    if shutil.which("dot"):
        write_svg(dot, os.path.join(out_dir, "surgery.svg"))
    writer = ScalarWriter(logdir or os.path.join(out_dir, "logs"))
    writer.graph(model.graph.as_graph_def())
    try:
        history = train.fit(model.session, stage_ops, loss, acc, feed_of, source.train(), source.steps(),
                            source.split("validation"), epochs=settings["epochs"], writer=writer,
                            patience=settings["patience"],
                            snapshot=(save_state, load_state), progress=progress)
        metrics = {}
        for split in ("train", "validation", "test"):
            batches = source.split(split)
            ev = train.evaluate(model.session, loss, acc, feed_of, batches()) if batches else {}
            if ev:
                metrics[split] = ev
                writer.scalars(len(history), {f"final/{split}_accuracy": ev["accuracy"]})
    finally:
        writer.close()
        if reader is not None:
            reader.close()
    names = class_names(reader.classes if reader is not None else data.classes, setup.logits.shape.as_list()[-1])
    with model.graph.as_default():
        classes = tf.gather(tf.constant(names), tf.argmax(setup.logits, 1), name="graphsurgeon/classes")
    result = export(model, out_dir, inputs={"inputs": setup.input},
                    outputs={"logits": setup.logits, "probabilities": setup.probabilities, "classes": classes},
                    defaults=setup.feeds, overwrite=overwrite)
    write_text(os.path.join(out_dir, "labels.txt"), "".join(n + "\n" for n in names))
    write_json(os.path.join(out_dir, "plan.json"), setup.plan.to_dict())
    write_json(os.path.join(out_dir, "metrics.json"), {"version": 1, "history": history, "metrics": metrics,
                                                       "settings": settings, "config": dataclasses.asdict(cfg),
                                                       "cache": cache})
    return RetrainResult(history, metrics, setup.plan, result, setup, settings)


# Defaults by what trains. A head alone on fixed features is a convex problem: train it to
# convergence (Adam over the whole epoch budget, which on cached features costs little). Early
# stopping on a small validation split stopped too soon there (benchmarks/defaults_bench.py:
# seed 004's MLP 0.876 with patience 30 against 0.917 trained through, LogisticRegression 0.912),
# so it is off unless --patience asks for it. Fine-tuning restored layers, which can overfit, gets
# a smaller rate and budget and stops after 5 epochs without a better validation accuracy.
DEFAULTS = {
    "head_from_cache": {"optimizer": "adam", "lr": 0.003, "epochs": 300, "patience": 0},
    "head_live": {"optimizer": "adam", "lr": 0.003, "epochs": 30, "patience": 0},
    "fine_tune": {"optimizer": "adam", "lr": 0.001, "epochs": 20, "patience": 5},
}


def training_settings(cfg: RetrainConfig, *, head_only: bool, cached: bool) -> dict:
    """``{optimizer, lr, epochs, patience, kind}``: ``cfg``'s own values, the rest from
    :data:`DEFAULTS` for ``kind`` ``head_from_cache`` (only new variables train, fed from a
    cache), ``head_live`` (only new variables train) or ``fine_tune`` (restored variables train).
    Early stopping needs a validation split; without one every epoch runs."""
    kind = "fine_tune" if not head_only else ("head_from_cache" if cached else "head_live")
    out = dict(DEFAULTS[kind], kind=kind)
    for key in ("optimizer", "lr", "epochs", "patience"):
        if getattr(cfg, key) is not None:
            out[key] = getattr(cfg, key)
    if out["epochs"] < 1 or out["lr"] < 0 or out["patience"] < 0:
        raise ConfigError(f"epochs must be >= 1, lr and patience >= 0 (got {out['epochs']}, {out['lr']}, "
                          f"{out['patience']})")
    return out


def class_names(names, n_classes: int) -> list[str]:
    """The head's class names: the data's (image folders' sub-folders, an ``.npz``'s ``classes``
    array, a cache's manifest), else ``"0"``, ``"1"``, ...

    Raises:
      ConfigError: the data names another number of classes than the head has.
    """
    if not names:
        return [str(i) for i in range(n_classes)]
    names = [str(n) for n in names]
    if len(names) != n_classes:
        raise ConfigError(f"the head has {n_classes} classes but the data names {len(names)} "
                          f"({', '.join(names[:5])}{' …' if len(names) > 5 else ''})")
    if any("\n" in n for n in names):
        raise ConfigError("a class name holds a line break; labels.txt has one name per line")
    return names


def _check_out_dir(cfg, out_dir: str) -> None:
    """Refuse an output directory that is, or lies inside, a directory the model is read from."""
    out = os.path.realpath(out_dir)
    for d in sorted({os.path.dirname(os.path.realpath(f)) for f in resolve(cfg.model, cfg.tags).files()}):
        if out == d or out.startswith(d + os.sep):
            raise ConfigError(f"--out {out_dir} is inside the model's directory {d}; graphsurgeon never writes "
                              "next to or over its source: choose a directory elsewhere")


def _check_data(data, inp, n_classes):
    want = inp.shape.as_list()[1:]
    got = list(data.x.shape[1:])
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got)):
        raise DataError(f"examples have shape {got} but input '{inp.name}' takes {want}")
    if len(data.y) and (data.y.min() < 0 or data.y.max() >= n_classes):
        raise DataError(f"labels range over {int(data.y.min())}..{int(data.y.max())} but the head has {n_classes} classes")
