"""The phases that decide a migration, over one record (:class:`PlannedTensor`):

    plan (names through the rules) -> casts -> joined partitions -> a stale object graph left out -> TF2 keys

Each phase takes the planned tensors and returns new ones; nothing here writes a file.
"""
from __future__ import annotations

import dataclasses
import os
import re

import tensorflow as tf

from graphsurgeon._src import select
from graphsurgeon._src.errors import ConfigError, MigrateError, PatternError
from graphsurgeon._src.migrate.rules import CAST_DTYPES, Rules, argument, plan_names
from graphsurgeon._src.migrate.sources import SourceCheckpoint
from graphsurgeon._src.mixins import series
from graphsurgeon._src.rules import is_optimizer_state
from graphsurgeon._src.storage import objectgraph

ACTIONS = ("copy", "cast", "join")
_PART_RE = re.compile(r"^(.*)/part_(\d+)$")


@dataclasses.dataclass(frozen=True, eq=False)
class PlannedTensor:
    """One tensor of the destination.

    Attributes:
      source: the checkpoint its bytes come from (a join: its first part's).
      old: its name as the rules saw it (for ``from_format='tf2'``, its variable's name).
      new: its key in the destination.
      dtype: its dtype in the destination.
      shape: its shape in the destination.
      action: ``"copy"`` (the source's bytes unchanged), ``"cast"`` (converted to ``dtype``) or
        ``"join"`` (``parts`` concatenated along the first axis).
      key: its key in the source when that differs from ``old``.
      parts: a join's parts (PlannedTensors), in order.
      slices: a TF1 partitioned variable's slice keys in the source (copied as they are).
    """

    source: SourceCheckpoint
    old: str
    new: str
    dtype: tf.DType
    shape: tuple
    action: str = "copy"
    key: str = ""
    parts: tuple = ()
    slices: tuple = ()

    @property
    def source_key(self) -> str:
        return self.key or self.old

    @property
    def nbytes(self) -> int:
        n = self.dtype.size if self.dtype != tf.string else 1
        for d in self.shape:
            n *= d
        return n


def planned(source: SourceCheckpoint, old: str, new: str, key: str = "") -> PlannedTensor:
    """A tensor copied from ``source`` (its key ``key`` or ``old``) to ``new``."""
    dtype, shape = source.dtype_shape(key or old)
    return PlannedTensor(source, old, new, dtype, shape, key=key if key != old else "",
                         slices=source.slices(key or old))


def plan(main: SourceCheckpoint, merges=(), rules: Rules | None = None, *, from_tf2: bool = False) -> list:
    """Phase 1: the rules on ``main``'s names; each ``(source, prefix)`` of ``merges`` whole under its prefix.

    Raises:
      MigrateError: a rule matches nothing, names collide, a TF2 source is not object-based or
        holds several variables of one name, or nothing is left (the rules leave none of ``main``'s
        tensors, and nothing is merged).
    """
    rules = rules or Rules()
    out, taken, labels = [], {}, source_labels(main, merges)
    for i, (src, prefix) in enumerate([(main, "")] + list(merges)):
        keys = tf2_variable_keys(src) if (from_tf2 and i == 0) else {n: n for n in src.names()}
        mapping = plan_names(sorted(keys), rules, keys=keys) if i == 0 else {n: prefix + n for n in sorted(keys)}
        for old, new in mapping.items():
            if new in taken:
                raise MigrateError(f"'{new}' comes from {_clash(taken[new], (src, i, prefix), labels)}; give that merge "
                                   f"{'another' if prefix else 'a'} prefix, or add a rule that renames one of them")
            taken[new] = (src, i, prefix)
            out.append(planned(src, old, new, keys[old]))
    if not out:
        raise MigrateError(f"{main.path}: the rules leave none of its tensors; there is nothing to write")
    return out


def _clash(first: tuple, second: tuple, labels: dict) -> str:
    """Where a name two sources give comes from: ``both a and b``, or, when ``first`` and ``second`` (each
    ``(source, index, prefix)``, index 0 for the main source) are one checkpoint, ``a twice: the same checkpoint
    is given as the source and as a merge without a prefix``."""
    if os.path.abspath(first[0].prefix) != os.path.abspath(second[0].prefix):
        return f"both {labels[id(first[0])]} and {labels[id(second[0])]}"

    def role(index, prefix):
        return "the source" if index == 0 else ("a merge without a prefix" if not prefix else f"a merge under {prefix}")

    roles = role(*first[1:]), role(*second[1:])
    given = f"twice as {roles[0]}" if roles[0] == roles[1] else f"as {roles[0]} and as {roles[1]}"
    return f"{second[0].path} twice: the same checkpoint is given {given}"


def tf2_variable_keys(src: SourceCheckpoint) -> dict:
    """``{variable name: checkpoint key}`` of a TF2 object-based checkpoint.

    Raises:
      MigrateError: no object graph, or several keys hold variables of one name.
    """
    pairs = objectgraph.variable_keys(src.prefix) if src.kind == "v2" else None
    if pairs is None:
        raise MigrateError(f"{src.path}: no {objectgraph.OBJECT_GRAPH_KEY}; not a TF2 object-based checkpoint "
                           "(from_format='tf2' reads only those)")
    by_name = {}
    for key, name in pairs:
        by_name.setdefault(name, []).append(key)
    shared = {n: ks for n, ks in by_name.items() if len(ks) > 1}
    if shared:
        name, keys = min(shared.items())
        raise MigrateError(f"{src.path}: {len(keys)} variables are named '{name}' ({series(keys, 3)}); "
                           "TF2 variables made without name= share one. Read the "
                           "checkpoint by its keys instead (from_format='tf1') and rename them")
    return {n: ks[0] for n, ks in by_name.items()}


def apply_casts(tensors: list, rules: Rules) -> list:
    """Phase 2: floating-point tensors whose source name a ``cast`` rule matches get its dtype (the last
    matching rule wins); the other tensors a rule matches (an int64 ``global_step``, a TF2 object graph's
    string) are copied as they are, as ``'**'`` matches them beside the floats.

    Raises:
      PatternError: a cast pattern matches no planned tensor.
      MigrateError: it matches no floating-point tensor, or a floating-point one saved in slices.
    """
    for rule in rules.cast:
        pred = select.compile_pattern(rule[0])
        matched = [p for p in tensors if pred(p.old)]
        if not matched:
            near = select.closest(rule[0], [p.old for p in tensors])
            raise PatternError(f"cast: pattern '{rule[0]}' matches no tensor; closest scopes: {', '.join(near) or '(none)'}")
        if not any(p.dtype.is_floating for p in matched):
            raise MigrateError(_no_float(rule, matched))
    out = []
    for p in tensors:
        rule = rules.cast_of(p.old)
        if rule is None or not p.dtype.is_floating:
            out.append(p)
            continue
        if p.slices:
            raise MigrateError(_sliced(p, "cast"))
        target = CAST_DTYPES[rule[1]]
        out.append(p if p.dtype == target else dataclasses.replace(p, dtype=target, action="cast"))
    return out


def _no_float(rule: tuple, matched: list) -> str:
    """A cast rule that matches only tensors that are not floating point: ``'global_step' is int64``."""
    said = series((f"'{p.old}' is {p.dtype.name}" for p in matched), 3)
    among = f" (no float tensor among the {len(matched)} it matches)" if len(matched) > 1 else ""
    return f"{argument('cast', rule)}: {said}{among}; only float tensors are cast"


def join_partitions(tensors: list) -> list:
    """Phase 3: ``name/part_0`` … ``name/part_N`` (destination names) become one tensor ``name``,
    their values concatenated along the first axis.

    Raises:
      MigrateError: parts missing from the sequence, a tensor already named ``name``, parts that
        differ beyond the first axis or in dtype, scalars, or parts saved in slices.
    """
    groups = {}
    for p in tensors:
        m = _PART_RE.match(p.new)
        if m:
            groups.setdefault(m.group(1), []).append((int(m.group(2)), p))
    names = {p.new for p in tensors}
    joined = {}
    for base, parts in sorted(groups.items()):
        parts.sort(key=lambda kp: kp[0])
        _check_parts(base, parts, names)
        ps = tuple(p for _, p in parts)
        rows = sum(p.shape[0] for p in ps)
        joined[base] = PlannedTensor(ps[0].source, ps[0].old, base, ps[0].dtype, (rows, *ps[0].shape[1:]), "join",
                                     key=ps[0].key, parts=ps)
    part_names = {p.new for j in joined.values() for p in j.parts}
    return [p for p in tensors if p.new not in part_names] + list(joined.values())


def _check_parts(base: str, parts: list, names: set) -> None:
    if [k for k, _ in parts] != list(range(len(parts))):
        raise MigrateError(f"partitions of '{base}' are {[k for k, _ in parts]}; expected part_0..part_N")
    if base in names:
        raise MigrateError(f"'{base}' exists beside its partitions; cannot join them into it")
    ps = [p for _, p in parts]
    if any(p.slices for p in ps):
        raise MigrateError(_sliced(ps[0], "merge_partitions=True"))
    if any(len(p.shape) == 0 for p in ps):
        raise MigrateError(f"partitions of '{base}' are scalars; there is no axis to join them along")
    shapes = {p.shape[1:] for p in ps}
    if len(shapes) != 1:
        raise MigrateError(f"partitions of '{base}' differ beyond their first axis: {sorted(shapes)}")
    dtypes = {p.dtype.name for p in ps}
    if len(dtypes) != 1:
        raise MigrateError(f"partitions of '{base}' have different dtypes ({', '.join(sorted(dtypes))}); "
                           "cast all of them or none")


def without_stale_object_graph(tensors: list, main: SourceCheckpoint, *, from_tf2: bool,
                               to_tf2: bool) -> tuple[list, list]:
    """Phase 3b, for a source read by its keys (not ``from_tf2``, which copies variables only): its object
    graph (``_CHECKPOINTABLE_OBJECT_GRAPH``, copied as a tensor) is carried over only when it and every key
    it names are copied unchanged under their own names, so that it describes the destination. Else (a
    key it names is renamed, dropped, cast or joined, or ``to_tf2``, which writes an object graph of its
    own) it is left out: returns ``(tensors without it, [its key])``, and the destination is a name-based
    checkpoint; ``(tensors, [])`` otherwise.

    Raises:
      CorruptCheckpointError: the object graph does not parse.
    """
    graph = None if from_tf2 else next((p for p in tensors if p.source is main and p.old == objectgraph.OBJECT_GRAPH_KEY),
                                       None)
    if graph is None:
        return tensors, []
    intact = {p.old for p in tensors if p.source is main and p.new == p.old and p.action == "copy"}
    if not to_tf2 and objectgraph.named_keys(main.prefix) | {graph.old} <= intact:
        return tensors, []
    return [p for p in tensors if p is not graph], [graph.old]


def to_tf2_keys(tensors: list) -> tuple[list, list]:
    """Phase 4: destination names become the keys ``tf.train.Checkpoint(vars={name: variable})``
    writes; returns ``(tensors, extra)``, ``extra`` being the object graph and ``save_counter``
    (from a memory source).

    Raises:
      ConfigError: eager execution is disabled in this process.
      MigrateError: a tensor is saved in slices.
    """
    if not tf.executing_eagerly():
        raise ConfigError("to='tf2' needs eager execution (TensorFlow 2's default); it is disabled in this process")
    for p in tensors:
        if p.slices:
            raise MigrateError(_sliced(p, "to='tf2'"))
    keys, extras = objectgraph.checkpoint_layout({p.new: p.dtype for p in tensors})
    layout = SourceCheckpoint.in_memory("(TF2 object graph)", extras)
    extra = [planned(layout, k, k) for k in sorted(extras)]
    return [dataclasses.replace(p, new=keys[p.new]) for p in tensors], extra


def dropped_of(tensors: list, main: SourceCheckpoint, *, from_tf2: bool = False) -> list:
    """The names of ``main`` that the rules left out (``drop``, ``keep``, presets), sorted: every name
    :func:`plan` saw there (for ``from_tf2``, its variables' names) that no planned tensor comes from."""
    names = tf2_variable_keys(main) if from_tf2 else main.names()
    used = {part.old for p in tensors for part in (p.parts or (p,)) if part.source is main}
    return sorted(set(names) - used)


def not_variables_of(main: SourceCheckpoint) -> list:
    """The keys of TF2 object-based checkpoint ``main`` that hold no variable's value, sorted: its object
    graph (``_CHECKPOINTABLE_OBJECT_GRAPH``), ``save_counter`` and any other object state; a migration
    ``from_tf2`` reads variables only, so none of these is carried over."""
    return sorted(set(main.names()) - set(tf2_variable_keys(main).values()))


def optimizer_state_of(tensors: list, main: SourceCheckpoint) -> list:
    """The destination names of the planned tensors whose key in ``main`` holds optimizer state (see
    :func:`graphsurgeon._src.rules.is_optimizer_state`: a TF2 object-based checkpoint's ``.OPTIMIZER_SLOT`` slots
    and ``optimizer/...`` keys, such as its iterations and learning rate), sorted."""
    return sorted({p.new for p in tensors for part in p.parts or (p,)
                   if part.source is main and is_optimizer_state(part.source_key)})


def source_keys_of(tensors: list) -> dict:
    """``{source path: {old name: its key in the source}}`` for the planned tensors whose old name is not
    their source's key (variables' names of a TF2 source), old names sorted; sources without any are absent."""
    out = {}
    for p in tensors:
        for part in p.parts or (p,):
            if part.key:
                out.setdefault(part.source.path, {})[part.old] = part.key
    return {path: dict(sorted(m.items())) for path, m in out.items()}


def source_labels(main: SourceCheckpoint, merges=()) -> dict:
    """``{id(source): its name in a result}`` for ``main`` and each ``(source, prefix)`` of ``merges``: the
    path as the caller gave it, or, for a path given before (a checkpoint merged into itself, or merged
    twice), ``PATH:PREFIX/`` as ``--merge`` takes it (``PATH:`` without a prefix), so that no two share one."""
    labels, seen = {id(main): main.path}, {main.path}
    for src, prefix in merges:
        labels[id(src)] = f"{src.path}:{prefix}" if src.path in seen else src.path
        seen.add(labels[id(src)])
    return labels


def mapping_of(tensors: list, sources: list, labels: dict | None = None) -> dict:
    """``{source: {old name: new name}}``, old names sorted; a joined part maps to the joined tensor. A
    source is named by ``labels`` (from :func:`source_labels`), else by its path."""
    name = (lambda s: labels[id(s)]) if labels else (lambda s: s.path)
    out = {name(s): {} for s in sources}
    for p in tensors:
        for part in p.parts or (p,):
            out.setdefault(name(part.source), {})[part.old] = p.new
    return {path: dict(sorted(m.items())) for path, m in out.items()}


def _sliced(p: PlannedTensor, what: str) -> str:
    return (f"'{p.old}': saved in slices (a TF1 partitioned variable); renames, drops, keeps and merges keep it, "
            f"but {what} does not handle slices yet")
