"""Train op construction: which variables train, at which learning rate, and when.

Freezing is simply not listing a variable in ``var_list`` (TF-Slim's rule): the
train op is built from ``optimizer.compute_gradients(loss, var_list=trainable)``
and ``apply_gradients``. Layers at a learning-rate multiplier get their own
optimizer (so Adam's per-variable step sizes scale correctly, which scaling
gradients would not do). Progressive unfreezing builds one train op per stage up
front, so every optimizer slot exists and is initialized before the first step.
"""
from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import tensorflow as tf

from graphsurgeon._src import select, subgraph
from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.mixins import agree, counted, series
from graphsurgeon._src.progress import Progress

tf1 = tf.compat.v1

OPTIMIZERS = {
    "sgd": lambda lr: tf1.train.GradientDescentOptimizer(lr),
    "momentum": lambda lr: tf1.train.MomentumOptimizer(lr, 0.9),
    "adam": lambda lr: tf1.train.AdamOptimizer(lr),
    "rmsprop": lambda lr: tf1.train.RMSPropOptimizer(lr),
}


@dataclasses.dataclass
class Stage:
    """From ``epoch`` on, the variables matching ``patterns`` train at ``lr_mult``."""

    epoch: int
    patterns: list
    lr_mult: float = 1.0


def parse_lr_mult(items) -> list[tuple[str, float]]:
    """``['hidden3=0.1', ...]`` or ``{'hidden3': 0.1}`` -> ``[('hidden3', 0.1), ...]``."""
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    out = []
    for item in items or ():
        pat, sep, val = str(item).rpartition("=")
        try:
            mult = float(val)
        except ValueError:
            mult = None
        if not sep or not pat or mult is None or mult < 0:
            raise ConfigError(f"learning-rate multiplier '{item}': expected PATTERN=FACTOR such as hidden3=0.1")
        out.append((pat, mult))
    return out


def parse_stage(item) -> Stage:
    """``'3:hidden3=0.1'`` / ``{'epoch': 3, 'scopes': [...], 'lr_mult': 0.1}`` -> :class:`Stage`."""
    if isinstance(item, Stage):
        return item
    if isinstance(item, dict):
        try:
            pats = item.get("scopes", item.get("patterns"))
            return Stage(int(item["epoch"]), select.as_list(pats), float(item.get("lr_mult", 1.0)))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"unfreeze stage {item!r}: expected epoch, scopes and optional lr_mult") from None
    epoch, sep, rest = str(item).partition(":")
    pat, _, mult = rest.partition("=")
    try:
        return Stage(int(epoch), [pat], float(mult) if mult else 1.0)
    except ValueError:
        raise ConfigError(f"unfreeze stage '{item}': expected EPOCH:PATTERN[=LR_MULT] such as 3:hidden3=0.1") from None


def multipliers(names, lr_mult) -> dict[str, float]:
    """``{name: multiplier}`` for ``names``: the one its matching ``(pattern, mult)`` gives, default 1.

    Raises:
      ConfigError: two patterns match one name with different multipliers (no order decides).
    """
    out, given = {n: 1.0 for n in names}, {}
    for pat, mult in parse_lr_mult(lr_mult):
        for n in select.match(pat, names, allow_empty=True):
            if n in given and given[n][1] != mult:
                raise ConfigError(f"lr_mult='{given[n][0]}={given[n][1]:g}' and lr_mult='{pat}={mult:g}' both match "
                                  f"{n}, with different multipliers; give each variable one: narrow a pattern so "
                                  f"that it leaves {n} out")
            given[n] = (pat, mult)
            out[n] = mult
    return out


def stage_sets(trainable, stages, all_names, trainable_names=None) -> list[tuple[int, dict]]:
    """``[(first epoch, {name: mult})]`` for the initial set and every unfreezing stage.
    ``trainable_names`` (the graph's TRAINABLE_VARIABLES) limits what a stage can unfreeze."""
    current = dict(trainable)
    out = [(0, dict(current))]
    for st in sorted(stages, key=lambda s: s.epoch):
        for n in select.match(st.patterns, all_names, arg="unfreeze"):
            if trainable_names and n not in trainable_names:
                continue
            current.setdefault(n, st.lr_mult)
        out.append((st.epoch, dict(current)))
    return out


def trains_from(stages) -> dict[str, int]:
    """``{name: the epoch it starts training in}`` of the variables of ``stages`` (:func:`stage_sets`),
    counted from 1 as the training history counts them: a stage of ``--unfreeze 3:PAT`` starts in epoch 4."""
    out = {}
    for first, mults in stages:
        for n in mults:
            out.setdefault(n, first + 1)
    return out


def check_lr_mult(lr_mult, stages, names) -> None:
    """Refuse a multiplier that would change nothing: each ``lr_mult`` pattern must match, among
    ``names``, a variable that trains from the first epoch (``stages[0]``, see :func:`stage_sets`).

    Raises:
      PatternError: a pattern matches no name.
      ConfigError: a pattern matches only variables that do not train, or only ones an unfreeze stage
        starts (that stage sets their multiplier).
    """
    first, later = set(stages[0][1]), set(stages[-1][1]) - set(stages[0][1])
    for pat, mult in parse_lr_mult(lr_mult):
        hits = select.match(pat, names, arg="lr_mult")
        if any(h in first for h in hits):
            continue
        late = [h for h in hits if h in later]
        if late:
            raise ConfigError(f"lr_mult='{pat}={mult:g}': {pat} matches only variables that start training at an "
                              f"unfreeze stage ({shown(late)}); that stage sets their multiplier: give it there "
                              f"(unfreeze=EPOCH:{pat}={mult:g})")
        raise ConfigError(f"lr_mult='{pat}={mult:g}': {pat} matches only variables that do not train ({shown(hits)}); "
                          f"make them train (trainable={pat}) or leave the multiplier out")


def lr_mult_notes(lr_mult, stages, names, left_out=()) -> list[str]:
    """One sentence per ``lr_mult`` pattern that matches, among ``names``, variables it sets no
    multiplier for: ones that never train (ignored), and ones an unfreeze stage starts (that stage
    sets theirs); and, among ``left_out`` (the variables a cut left out of the graph), ones it
    ignores too. :func:`check_lr_mult` has refused a pattern that matches only such variables.
    ``stages``: see :func:`stage_sets`."""
    first, every = set(stages[0][1]), set(stages[-1][1])
    notes = []
    for pat, mult in parse_lr_mult(lr_mult):
        hits = select.match(pat, names, allow_empty=True)
        frozen = [h for h in hits if h not in every]
        late = [h for h in hits if h in every and h not in first]
        cut = select.match(pat, left_out, allow_empty=True)
        parts = ([f"it ignores the {len(frozen)} it matches that {agree(len(frozen), 'does', 'do')} not train "
                  f"({shown(frozen)})"] if frozen else []) \
            + ([f"it ignores the {len(cut)} it matches that the cut leaves out of the graph ({shown(cut)})"]
               if cut else []) \
            + ([f"the {len(late)} it matches that an unfreeze stage starts ({shown(late)}) "
                f"{agree(len(late), 'takes', 'take')} that stage's multiplier"] if late else [])
        if parts:
            n = sum(h in first for h in hits)
            notes.append(f"lr_mult='{pat}={mult:g}' sets the multiplier of the {counted(n, 'variable')} it matches "
                         f"that {agree(n, 'trains', 'train')} from the first epoch; {'; '.join(parts)}")
    return notes


def shown(names) -> str:
    """Up to four of ``names``, with `` …`` when there are more (for messages)."""
    return series(names, 4)


def update_ops_for(graph, trainable_names, trainable_patterns=()) -> list:
    """The graph's ``UPDATE_OPS`` (batch-norm moving statistics) that belong to trainable layers.

    An update op is kept when every variable it assigns lies in a scope that holds a trainable
    variable or matches a trainable pattern; so frozen layers' moving statistics never change.
    """
    with graph.as_default():
        ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    if not ops:
        return []
    gd = graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    var_ops = {n.name for n in gd.node if n.op in subgraph.VARIABLE_OPS}
    parents = {n.rsplit("/", 1)[0] for n in trainable_names}
    preds = [select.compile_pattern(p) for p in trainable_patterns]
    kept = []
    for op in ops:
        op = op if isinstance(op, tf.Operation) else op.op
        # The variables it assigns: the first input of every Assign* op it runs.
        moving = sorted({subgraph.node_name(by_name[u].input[0]) for u in subgraph.upstream(gd, [op.name], by_name)
                         if by_name[u].op.startswith("Assign") and by_name[u].input
                         and subgraph.node_name(by_name[u].input[0]) in var_ops})
        if moving and all(t.rsplit("/", 1)[0] in parents or any(p(t) for p in preds) for t in moving):
            kept.append(op)
    return kept


def build_train_op(loss, variables: dict, mults: dict, *, optimizer: str = "sgd", lr: float = 0.01,
                   update_ops=(), name: str = "train", optimizers: dict | None = None):
    """One train op: for each distinct multiplier, ``compute_gradients(loss, var_list=group)`` and
    ``apply_gradients`` with an optimizer at ``lr * mult``; ``update_ops`` run first.

    Args:
      variables: ``{name: tf.Variable}``.
      mults: ``{name: multiplier}`` of the variables that train; nothing else gets a gradient.
      optimizers: ``{multiplier: optimizer}`` shared between calls (progressive unfreezing builds
        one train op per stage): a variable keeps its slots (Adam's moments, momentum) from one
        stage to the next instead of starting them over. Filled in as needed.
    """
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer '{optimizer}'; expected one of {', '.join(OPTIMIZERS)}")
    groups = {}
    for n, m in sorted(mults.items()):
        if m > 0:
            groups.setdefault(m, []).append(variables[n])
    applies = []
    optimizers = {} if optimizers is None else optimizers
    with v1_control_flow(loss.graph), tf.control_dependencies(list(update_ops)):
        for m, var_list in sorted(groups.items()):
            with tf1.variable_scope(f"{name}_lr{m:g}"):
                if m not in optimizers:
                    optimizers[m] = OPTIMIZERS[optimizer](lr * m)
                opt = optimizers[m]
                grads = opt.compute_gradients(loss, var_list=var_list)
                missing = [v.name for g, v in grads if g is None]
                if missing:
                    raise ConfigError(
                        f"no gradient flows from the loss to {series(missing, 4)}; "
                        f"{agree(len(missing), 'it does', 'they do')} not feed the logits being trained "
                        f"({agree(len(missing), 'is it', 'are they')} above the cut?)"
                    )
                applies.append(opt.apply_gradients(grads))
    return tf.group(*applies, name=name)


@contextlib.contextmanager
def v1_control_flow(graph):
    """Build gradients through a TF 1.x while loop (``Enter``/``Exit`` ops, as ``dynamic_rnn``
    made them) with TF 1.x control flow: TensorFlow 2's default builds TensorArray gradients the
    v2 way, which cannot read a v1 loop's TensorArrays. The process-wide switch
    (``tf.compat.v1.disable_control_flow_v2``) is restored on exit."""
    v1_loops = any(op.type in ("Enter", "RefEnter") for op in graph.get_operations())
    was_v2 = tf1.control_flow_v2_enabled()
    if v1_loops and was_v2:
        tf1.disable_control_flow_v2()
    try:
        yield
    finally:
        if v1_loops and was_v2:
            tf1.enable_control_flow_v2()


def steps_per_epoch(n: int, batch_size: int) -> int:
    """How many minibatches :func:`batches` makes of ``n`` examples: ``ceil(n / batch_size)`` (the last may be
    short)."""
    return -(-n // batch_size)


def batches(n: int, batch_size: int, rng: "np.random.Generator | None"):
    """Index arrays of minibatches over ``range(n)``; shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def array_batches(x, y, batch_size: int, seed: int = 0):
    """``epoch -> iterator of (x, y)`` over in-memory arrays, shuffled by ``default_rng(seed + epoch)``."""
    def it(epoch):
        for idx in batches(len(y), batch_size, np.random.default_rng(seed + epoch)):
            yield x[idx], y[idx]
    return it


def evaluate(session, loss, accuracy, feed_of, batch_iter) -> dict:
    """Mean loss and accuracy over the ``(x, y)`` batches of ``batch_iter`` ({} if it is empty)."""
    tot_loss = tot_acc = 0.0
    n = 0
    for x, y in batch_iter:
        l, a = session.run([loss, accuracy], feed_of(x, y, training=False))
        tot_loss += float(l) * len(y)
        tot_acc += float(a) * len(y)
        n += len(y)
    return {"loss": tot_loss / n, "accuracy": tot_acc / n, "examples": n} if n else {}


def fit(session, stage_ops, loss, accuracy, feed_of, train_batches, steps: int, validation=None, *, epochs: int,
        writer=None, patience: int = 0, snapshot=None, progress: bool = True) -> list[dict]:
    """Run the training loop, with one progress display for the whole run (epochs x batches).

    Args:
      stage_ops: ``[(first epoch, train op)]``; the op of the latest stage begun runs.
      feed_of: ``(x, y, training) -> feed_dict``.
      train_batches: ``epoch -> iterator of (x, y)``; ``steps`` batches per epoch (for progress).
      validation: ``() -> iterator of (x, y)``, or None.
      writer: a :class:`graphsurgeon._src.storage.events.ScalarWriter` or None.
      patience: stop after this many epochs without a better validation result (higher accuracy,
        or equal accuracy and lower loss; 0: never stop early), then restore the best epoch's
        values through ``snapshot``.
      snapshot: ``(save() -> state, load(state))`` used for early stopping.

    Returns:
      One dict per epoch: epoch, train loss/accuracy, validation loss/accuracy.
    """
    history, best, best_state, waited = [], None, None, 0
    bar = Progress(epochs * steps, "training", "batches", enabled=progress)
    try:
        for epoch in range(epochs):
            row = _epoch(session, stage_ops, loss, accuracy, feed_of, train_batches, epoch, bar)
            ev = evaluate(session, loss, accuracy, feed_of, validation()) if validation else {}
            if ev:
                row.update({"validation_loss": ev["loss"], "validation_accuracy": ev["accuracy"]})
            history.append(row)
            bar.update(0, epoch=f"{epoch + 1}/{epochs}", **{k: v for k, v in row.items() if k != "epoch"})
            if writer is not None:
                writer.scalars(epoch + 1, {k.replace("_", "/", 1): v for k, v in row.items() if k != "epoch"})
            if patience and ev:
                score = _score(ev["accuracy"], ev["loss"])
                if best is None or score > best:
                    best, waited = score, 0
                    best_state = snapshot[0]() if snapshot else None
                else:
                    waited += 1
                    if waited >= patience:
                        bar.set_total(bar.done)
                        break
    finally:
        bar.close()
    if best_state is not None and snapshot:
        snapshot[1](best_state)
    return history


def _score(accuracy: float, loss: float) -> tuple:
    """What early stopping maximizes: validation accuracy, then lower validation loss."""
    return (accuracy, -loss)


def best_epoch(history: list) -> int | None:
    """The epoch (1-based) whose trained values :func:`fit` with ``patience`` keeps: the first with the
    best validation score; None when no epoch was validated."""
    scored = [(_score(h["validation_accuracy"], h["validation_loss"]), -i) for i, h in enumerate(history)
              if "validation_accuracy" in h]
    return -max(scored)[1] + 1 if scored else None


def _epoch(session, stage_ops, loss, accuracy, feed_of, train_batches, epoch, bar) -> dict:
    """One pass over the training batches with the train op of the stage ``epoch`` is in."""
    op = [o for start, o in stage_ops if start <= epoch][-1]
    tl = ta = 0.0
    n = 0
    for x, y in train_batches(epoch):
        _, l, a = session.run([op, loss, accuracy], feed_of(x, y, training=True))
        tl += float(l) * len(y)
        ta += float(a) * len(y)
        n += len(y)
        bar.update(1)
    return {"epoch": epoch + 1, "train_loss": tl / max(1, n), "train_accuracy": ta / max(1, n)}
