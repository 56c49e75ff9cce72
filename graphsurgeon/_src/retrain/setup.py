"""Build a retraining graph: restore pruned to the cut, add the head, decide what trains and when."""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from graphsurgeon._src import picture as picture_mod
from graphsurgeon._src import select, train, weights
from graphsurgeon._src.errors import ConfigError, PatternError
from graphsurgeon._src.feeds import Feeder, find_input, fixed_batch, parse_feeds, unread_feed
from graphsurgeon._src.mixins import agree
from graphsurgeon._src.restore import graph_variable_info, load, restore
from graphsurgeon._src.retrain.checks import plan_notes
from graphsurgeon._src.retrain.config import RetrainConfig
from graphsurgeon._src.surgery import add_head, make_plan, reinitialize

tf1 = tf.compat.v1


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
    notes: list = dataclasses.field(default_factory=list)  # what the settings leave unsaid (train.lr_mult_notes)


def _check_classes(cfg: RetrainConfig, logits) -> None:
    """Refuse logits of one class: a softmax over one class has nothing to learn."""
    if logits.shape.as_list()[-1:] == [1]:
        raise ConfigError(f"{'head=' + cfg.head if cfg.head else 'output=' + cfg.output}: 1 class; a softmax over "
                          "one class has nothing to learn (loss 0, no gradient), and retrain trains a softmax: give 2 "
                          "or more classes (a yes/no sigmoid output: a new head on the layer below it, head=CUT:2)")


def _reinit(cfg: RetrainConfig, model) -> list:
    """The names of the variables ``cfg.reinit`` matches, drawn again instead of restored (a pattern matching
    none is refused by :func:`select.match`, naming the closest scopes)."""
    return select.match(cfg.reinit, model.variables, arg="reinit") if cfg.reinit else []


def build(cfg: RetrainConfig, *, values: bool = True, meta_graph=None, before_values=None) -> Setup:
    """Restore ``cfg.model`` pruned to what the cut needs, add the head, decide what trains; with
    ``values=False`` nothing is read and no session is made (the dry-run plan). Without ``head`` or
    ``output`` the whole graph is restored and the plan says, for every variable, whether it is restored (or,
    matched by ``reinit``, reinitialized) and whether it would train (``trainable`` patterns), as
    ``tf_slim.get_variables_to_restore(exclude=...)`` would restore it (``drop`` patterns here). ``meta_graph``: ``cfg.model``'s, read already (see ``restore``).
    ``before_values``: called once the graph, head and plan are made (every pattern checked), before the values
    are read (retrain checks its output directory there), with a cut or without.
    """
    if not cfg.model:
        raise ConfigError("no model given (model=PATH, or model = '...' in the plan file)")
    cfg.check()
    spec = cfg.head_spec()
    cut = spec[0] if spec else cfg.output
    if not cut:
        return _build_without_cut(cfg, values, before_values)
    keep = [cut] + ([cfg.input] if cfg.input else [])
    # The graph, head and plan come first; values are then loaded in one pass (new head included).
    rules = cfg.rules()
    model = restore(cfg.model, tags=cfg.tags, outputs=keep, inputs=[cfg.input] if cfg.input else None,
                    rules=rules, restore_optimizer=cfg.restore_optimizer, values=False, meta_graph=meta_graph)
    feeds, train_feeds = parse_feeds(cfg.feeds), parse_feeds(cfg.train_feeds)
    inp, extra = find_input(model, cfg.input, cut, feeds, train_feeds)
    for name in sorted(set(feeds) | set(train_feeds)):
        if name not in extra:
            raise unread_feed(cut, name, extra, inp.op.name, train=name not in feeds)
    fixed = fixed_batch(inp, model.tensor(cut))
    # a placeholder_with_default given only in train_feeds runs with its default outside training
    feeds, train_feeds = {n: feeds[n] for n in extra if n in feeds}, {n: {**feeds, **train_feeds}[n] for n in extra}
    Feeder(model, inp, feeds, fixed)  # every feed fits its placeholder
    Feeder(model, inp, train_feeds, fixed)
    _refuse_left_out(cfg, model, cut)
    reinit = _reinit(cfg, model)
    if spec:
        head = add_head(model, spec[0], spec[1], hidden=cfg.head_hidden, activation=cfg.head_activation,
                        kernel_initializer=cfg.head_initializer, scope=cfg.head_scope, pool=cfg.pool, seed=cfg.seed)
        logits, probs = head.logits, head.probabilities
    else:
        head = None
        logits = model.tensor(cfg.output)
        with model.graph.as_default():
            probs = tf.nn.softmax(logits, name="graphsurgeon_probabilities")
    _check_classes(cfg, logits)
    new = head.variables if head else []
    final, stage_sets, stage_updates = _trainable(cfg, model, new)
    upd = stage_updates[-1]
    plan = make_plan(graph_variable_info(model.graph), _entries(model), rules=rules,
                     restore_optimizer=cfg.restore_optimizer, new=new, reinit=reinit,
                     trainable=final, lr_mult=final, trains_from=train.trains_from(stage_sets),
                     update_ops=[o.name for o in upd], inputs=[inp.name],
                     outputs=[logits.name, probs.name])
    notes = train.lr_mult_notes(cfg.lr_mult, stage_sets, list(model.variables), left_out=model.left_out)
    plan.notes = plan_notes(cfg, model, cut, inp, fixed) + notes
    plan.features = head.features_report() if head else None
    model.plan = plan
    _read_values(cfg, model, reinit, values, before_values)
    return Setup(model, plan, inp, logits, probs, head, stage_sets, extra, cut=cut,
                 feeds=feeds, train_feeds=train_feeds,
                 fixed_batch=fixed, stage_updates=[[o.name for o in u] for u in stage_updates], notes=notes)


def _read_values(cfg: RetrainConfig, model, reinit: list, values: bool, before_values) -> None:
    """:func:`build`'s last step: ``before_values()`` (when given), then with ``values`` the values read and the
    ``reinit`` variables drawn again."""
    if before_values is not None:
        before_values()
    if values:
        load(model, allow_missing=cfg.allow_missing, allow_cast=cfg.allow_cast, allow_unsafe_ops=cfg.allow_unsafe_ops)
        if reinit:
            reinitialize(model, reinit, seed=cfg.seed)


def _refuse_left_out(cfg: RetrainConfig, model, cut: str) -> None:
    """Refuse a ``trainable``, ``reinit``, ``unfreeze`` or ``lr_mult`` pattern that matches no variable of
    the graph pruned to ``cut`` but some the pruning left out (``model.left_out``), naming up to four
    of them (a pattern that matches neither is refused later, naming the closest scopes).

    Raises:
      PatternError: naming the argument, the pattern, the variables and what to do.
    """
    names = list(model.variables)
    stages = [train.parse_stage(st) for st in cfg.unfreeze]
    given = [("trainable", p, p) for p in cfg.trainable] + [("reinit", p, p) for p in cfg.reinit] \
        + [("unfreeze", f"{st.epoch}:{p}" + (f"={st.lr_mult:g}" if st.lr_mult != 1 else ""), p)
           for st in stages for p in st.patterns] \
        + [("lr_mult", f"{p}={m:g}", p) for p, m in train.parse_lr_mult(cfg.lr_mult)]
    for arg, item, pattern in given:
        hits = select.match(pattern, model.left_out, allow_empty=True)
        if hits and not select.match(pattern, names, allow_empty=True):
            source = f" from '{cfg.input}'" if cfg.input else ""
            below = "; input= a tensor below them" if cfg.input else ""
            raise PatternError(
                f"{arg}='{item}': {'pattern ' + repr(pattern) + ' ' if item != pattern else ''}matches only "
                f"variables the cut leaves out ({len(hits)}: "
                f"{train.shown(hits)}): the graph is pruned to what '{cut}' needs{source}; cut above them (head= or "
                f"output= a tensor that reads them{below}) or leave the pattern out")


def _entries(model) -> dict:
    return {n: (e.shape, e.dtype.name) for n, e in (model.reader.entries.items() if model.reader else ())}


def _refuse_constants(cfg, model, names: list) -> None:
    """Refuse a ``trainable`` pattern that matches none of ``names`` (the model's variables) but weight-like
    constants of its graph: a frozen graph thawed in part, whose other weights stayed constants."""
    constants = None
    for p in cfg.trainable:
        if select.match(p, names, allow_empty=True):
            continue
        constants = weights.weight_constants(model.graph.as_graph_def()) if constants is None else constants
        hits = select.match(p, constants, allow_empty=True)
        if hits:
            n = len(hits)
            raise ConfigError(f"trainable={p}: matches no variable of {cfg.model} but "
                              f"{agree(n, 'a weight-like constant', 'weight-like constants')} of its graph "
                              f"({train.shown(hits)}), which cannot train; thaw {agree(n, 'it', 'them')} too: thaw the "
                              f"frozen graph again with {agree(n, 'its scope', 'their scopes')} added, and train from "
                              "its output")


def _trainable(cfg, model, new):
    """``(final {name: lr multiplier}, stage sets, update ops)`` of what trains."""
    names = list(model.variables)
    if cfg.trainable and model.source.kind == "frozen" and not set(names) - set(new):
        raise ConfigError(f"trainable={' '.join(cfg.trainable)}: {cfg.model} holds no variables (a frozen graph: its "
                          "weights are constants), so nothing of it can train; turn the weights to train into variables "
                          f"first: graphsurgeon.thaw({cfg.model!r}, {list(cfg.trainable)!r}, out_dir), then restore "
                          "out_dir")
    _refuse_constants(cfg, model, [n for n in names if n not in new])
    chosen = select.match(cfg.trainable, [n for n in names if n not in new], arg="trainable") if cfg.trainable else []
    # Only variables in TRAINABLE_VARIABLES get gradients (batch-norm moving statistics are not);
    # those move through the update ops of trainable layers instead.
    with model.graph.as_default():
        in_collection = {select.normalize_name(v.name) for v in tf1.trainable_variables()}
    if in_collection:
        chosen = [n for n in chosen if n in in_collection]
    mults = train.multipliers(sorted(set(chosen) | set(new)), cfg.lr_mult)
    stages = [train.parse_stage(s) for s in cfg.unfreeze]
    stage_sets = train.stage_sets(mults, stages, names, in_collection)
    train.check_lr_mult(cfg.lr_mult, stage_sets, names)
    final = stage_sets[-1][1]
    # each stage runs the update ops (batch-norm moving statistics) of its own trainable layers only
    ordered = sorted(stages, key=lambda st: st.epoch)
    stage_updates = [train.update_ops_for(model.graph, set(mults),
                                          list(cfg.trainable) + [p for st in ordered[:k] for p in st.patterns])
                     for k, (_, mults) in enumerate(stage_sets)]
    return final, stage_sets, stage_updates


def _build_without_cut(cfg: RetrainConfig, values: bool, before_values) -> Setup:
    """The whole graph restored: every variable's restore status (``reinit``'s drawn again) and trainability,
    nothing new; then :func:`_read_values` (``before_values``, then the values), as :func:`build` ends with a cut."""
    rules = cfg.rules()
    model = restore(cfg.model, tags=cfg.tags, rules=rules, restore_optimizer=cfg.restore_optimizer, values=False)
    reinit = _reinit(cfg, model)
    final, stage_sets, stage_updates = _trainable(cfg, model, [])
    upd = stage_updates[-1]
    plan = make_plan(graph_variable_info(model.graph), _entries(model), rules=rules,
                     restore_optimizer=cfg.restore_optimizer, reinit=reinit, trainable=final, lr_mult=final,
                     trains_from=train.trains_from(stage_sets), update_ops=[o.name for o in upd],
                     inputs=model.inputs, outputs=model.outputs)
    plan.notes = train.lr_mult_notes(cfg.lr_mult, stage_sets, list(model.variables))
    model.plan = plan
    _read_values(cfg, model, reinit, values, before_values)
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
