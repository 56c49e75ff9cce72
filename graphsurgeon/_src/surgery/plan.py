"""The plan: what happens to every variable, decided before anything runs.

Statuses:

* ``restored`` — in the new graph and read from the checkpoint;
* ``reinitialized`` — in the graph and in the checkpoint, but initialized anew
  (excluded from the restore, or re-initialized in place);
* ``new`` — created by surgery (a new head), initialized;
* ``dropped`` — in the checkpoint, not in the new model (old head, optimizer
  slots, ``global_step``, layers above the cut);
* ``missing`` — in the graph, not in the checkpoint, not new;
* ``shape_mismatch`` — in both, with different shapes (the classic "Assign
  requires shapes of both tensors to match").

Everything here works on names and shapes; nothing touches a session or disk.

>>> p = make_plan({"w": ((2, 3), "float32"), "head/k": ((3, 2), "float32")},
...               {"w": ((2, 3), "float32"), "w/Adam": ((2, 3), "float32"), "out": ((3, 5), "float32")},
...               new=["head/k"], trainable=["head/k"])
>>> p.by_status("restored"), p.by_status("new"), p.by_status("dropped"), p.trainable
(['w'], ['head/k'], ['out', 'w/Adam'], ['head/k'])
"""
from __future__ import annotations

import dataclasses
import json
import re

from graphsurgeon._src.errors import ConfigError, PlanError
from graphsurgeon._src.mixins import counted, series
from graphsurgeon._src.rules import Rules, is_optimizer_state, optimizer_state_kind

STATUSES = ("restored", "reinitialized", "new", "dropped", "missing", "shape_mismatch")

@dataclasses.dataclass
class VariablePlan:
    """What happens to one variable."""

    name: str
    shape: tuple
    dtype: str
    status: str
    trainable: bool = False
    checkpoint_name: str | None = None
    checkpoint_shape: tuple | None = None
    lr_mult: float | None = None
    checkpoint_dtype: str | None = None
    trains_from: int | None = None  # the epoch it starts training in (1: the first); None when it does not train

    @property
    def train_word(self) -> str:
        """The plan's train column: ``yes``, ``no``, or ``from N`` for a variable an unfreeze stage starts."""
        if not self.trainable:
            return "no"
        return f"from {self.trains_from}" if (self.trains_from or 1) > 1 else "yes"

    @property
    def cast(self) -> bool:
        """True when a restored value would be cast from the checkpoint's dtype to the graph's."""
        return self.status == "restored" and self.checkpoint_dtype not in (None, self.dtype)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        d["checkpoint_shape"] = list(self.checkpoint_shape) if self.checkpoint_shape is not None else None
        return d


@dataclasses.dataclass
class Plan:
    """A list of :class:`VariablePlan` (sorted by name, numbers by value: :func:`natural_key`) plus the
    update ops that would run, and ``notes``: sentences on what the graph alone shows about the run
    (random ops or batch statistics below the cut, a batch the graph fixes)."""

    variables: list
    update_ops: list = dataclasses.field(default_factory=list)
    inputs: list = dataclasses.field(default_factory=list)
    outputs: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    features: dict | None = None  # a new head's input: Head.features_report() (None without a head)

    def by_status(self, status: str) -> list[str]:
        return [v.name for v in self.variables if v.status == status]

    @property
    def trainable(self) -> list[str]:
        return [v.name for v in self.variables if v.trainable]

    def restore_map(self) -> dict[str, str]:
        """``{graph variable name: checkpoint name}`` of the restored variables."""
        return {v.name: v.checkpoint_name for v in self.variables if v.status == "restored"}

    def problems(self) -> list[str]:
        """Human-readable reasons this plan cannot run (empty when it can)."""
        out = []
        for v in self.variables:
            if v.status == "shape_mismatch":
                out.append(
                    f"{v.name}: graph shape {list(v.shape)} but checkpoint '{v.checkpoint_name}' has "
                    f"{list(v.checkpoint_shape)} (drop it from the restore, or replace the layer with a new head)"
                )
        return out

    def check(self, allow_missing: bool = False, allow_cast: bool = False) -> None:
        """Raise :class:`PlanError` if the plan cannot run: shape mismatches, variables the checkpoint
        lacks (unless ``allow_missing``), values of another dtype (unless ``allow_cast``)."""
        probs = self.problems()
        if not allow_cast:
            probs += [f"{v.name}: the checkpoint holds {v.checkpoint_dtype} but the graph's variable is {v.dtype} "
                      "(pass allow_cast=True to cast it)" for v in self.variables if v.cast]
        if not allow_missing:
            probs += [
                f"{v.name}: not in the checkpoint (pass allow_missing=True to initialize it)"
                for v in self.variables if v.status == "missing"
            ]
        if probs:
            raise PlanError(f"{counted(len(probs), 'variable')} cannot be restored: "
                            f"{series(probs, 6, sep='; ')}")

    def to_dict(self) -> dict:
        counts = {s: len(self.by_status(s)) for s in STATUSES}
        counts["cast"] = sum(v.cast for v in self.variables)
        return {
            "version": 1,
            "variables": [v.to_dict() for v in self.variables],
            "counts": counts,
            "trainable": self.trainable,
            "update_ops": list(self.update_ops),
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "notes": list(self.notes),
            "features": self.features,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def format_text(self) -> str:
        slots = [v for v in self.variables if v.status in ("dropped", "reinitialized") and is_optimizer_state(v.name)]
        width = max([len(v.name) for v in self.variables if v not in slots] + [8] + ([len(_OLD_STATE)] if slots else []))
        tw = max([len(v.train_word) for v in self.variables] + [5])
        lines = [f"{'variable':<{width}}  {'status':<14} {'train':<{tw}} shape"]
        for v in self.variables:
            if v in slots:
                continue
            extra = ""
            if v.checkpoint_name and v.checkpoint_name != v.name:
                extra = f"  <- {v.checkpoint_name}"
            if v.status == "shape_mismatch":
                extra += f"  (checkpoint {list(v.checkpoint_shape)})"
            if v.cast:
                extra += f"  (cast from {v.checkpoint_dtype})"
            if v.lr_mult not in (None, 1.0) and v.trainable:
                extra += f"  lr x{v.lr_mult:g}"
            lines.append(f"{v.name:<{width}}  {v.status:<14} {v.train_word:<{tw}} {list(v.shape)}{extra}")
        for status in ("dropped", "reinitialized"):
            group = [v for v in slots if v.status == status]
            if group:
                lines.append(f"{_OLD_STATE:<{width}}  {status:<14} {'no':<{tw}} {len(group)} variables "
                             f"({_state_parts([v.name for v in group])})")
        counts = ", ".join(f"{len(self.by_status(s))} {s}" for s in STATUSES if self.by_status(s))
        later = sum(v.train_word.startswith("from") for v in self.variables)
        lines.append(f"-- {len(self.variables)} variables{': ' + counts if counts else ''}; {len(self.trainable)} trainable"
                     + (f" ({later} from a later epoch, the one their train column names)" if later else ""))
        if self.update_ops:
            lines.append(f"-- update ops that run while training: {', '.join(self.update_ops)}")
        if self.features:
            lines.append(_features_line(self.features))
        lines += [f"-- note: {n}" for n in self.notes]
        return "\n".join(lines)


_OLD_STATE = "(old optimizer state)"


def natural_key(name: str) -> list:
    """Sort key that orders numbered names by number: ``Variable_2`` before ``Variable_10``.

    >>> sorted(["Variable_10", "Variable", "Variable_2", "w/Adam_1", "w/Adam"], key=natural_key)
    ['Variable', 'Variable_2', 'Variable_10', 'w/Adam', 'w/Adam_1']
    """
    return [int(p) if k % 2 else p for k, p in enumerate(re.split(r"(\d+)", name))]


def _state_parts(names) -> str:
    """``'20 Adam slots, beta1_power, beta2_power'``: what old optimizer state ``names`` hold, by kind
    (accumulators by name, of more than four the first four and their count: ``'beta1_power, beta1_power_1,
    beta1_power_2, beta2_power … (6 accumulators)'``; a TF2 checkpoint's keys counted as ``'3 TF2 optimizer keys'``)."""
    kinds = [optimizer_state_kind(n) for n in names]
    parts = [counted(kinds.count(k), f"{k} slot") for k in sorted(set(kinds) - {"accumulator", "global_step", "TF2 key"})]
    if "TF2 key" in kinds:
        parts.append(counted(kinds.count("TF2 key"), "TF2 optimizer key"))
    acc = sorted((n for n, k in zip(names, kinds) if k == "accumulator"), key=natural_key)
    if acc:
        parts.append(series(acc, 4, count="accumulator"))
    return ", ".join(parts + [n for n, k in zip(names, kinds) if k == "global_step"])


def _features_line(f: dict) -> str:
    """``-- the head reads MaxPool_9:0 [5, 5, 16] -> avg over 5×5 -> 16 features``; pooled axes of sizes the graph
    leaves unknown are named by number: ``rnn/transpose:0 [?, 65] -> avg over axis 1 (a size set at run time)``,
    ``[?, 5, 8] -> avg over axes 1, 2 (?×5; ? a size set at run time)``."""
    dims = [("?" if d is None else str(d)) for d in f["shape"]]
    how = {"avg": f" -> avg over {_pooled(dims[:-1])}", "flatten": " -> flattened"}.get(f["pool"], "")
    n = f["features"]
    return f"-- the head reads {f['cut']} [{', '.join(dims)}]{how} -> {'? features' if n is None else counted(n, 'feature')}"


def _pooled(dims: list) -> str:
    """The axes ``dims`` (sizes as text, past the batch) the head averages over: ``5×5``, or by number when a size
    is unknown (``?``)."""
    if "?" not in dims:
        return "×".join(dims)
    if len(dims) == 1:
        return "axis 1 (a size set at run time)"
    return f"axes {', '.join(str(i) for i in range(1, len(dims) + 1))} ({'×'.join(dims)}; ? a size set at run time)"


def checkpoint_names(graph_names, entries, rules: Rules | None = None) -> dict:
    """``{graph name: checkpoint name}`` of ``graph_names`` under ``rules``' ``rename``,
    ``map_scope`` and preset rules, which map checkpoint names to graph names; a graph name no
    checkpoint name maps to reads its own name.

    >>> checkpoint_names(["enc/w", "b"], {"old/w": 0, "b": 0}, Rules(map_scope=[("old/", "enc/")]))
    {'enc/w': 'old/w', 'b': 'b'}

    Raises:
      PlanError: a ``rename`` or ``map_scope`` rule matches no checkpoint name, or two checkpoint
        names map to one graph name.
    """
    rules = rules or Rules()
    inverse = {}
    if rules.rename or rules.map_scope or rules.presets:
        rules.check_names(entries, error=PlanError)
        for ck in sorted(entries):
            graph_name = rules.new_name(ck)
            if graph_name != ck:
                if graph_name in inverse:
                    raise PlanError(f"checkpoint tensors '{inverse[graph_name]}' and '{ck}' would both restore "
                                    f"'{graph_name}'; add a rule that tells them apart")
                inverse[graph_name] = ck
    return {g: inverse.get(g, g) for g in graph_names}


def _variable_plan(name, info, entries, ck, *, new, fresh, reinit, trainable, lr_mult, trains_from) -> VariablePlan:
    """One graph variable's fate: new, restored, reinitialized (``fresh``), missing or shape mismatch;
    ``ck`` is the checkpoint name it reads."""
    shape, dtype = tuple(info[0]), info[1]
    full_shape = tuple(info[3]) if len(info) > 2 else shape
    vp = VariablePlan(name, shape, dtype, "missing", trainable, lr_mult=lr_mult,
                      trains_from=(trains_from or 1) if trainable else None)
    if new:
        vp.status = "new"
    elif ck in entries:
        vp.checkpoint_name, vp.checkpoint_shape, vp.checkpoint_dtype = ck, tuple(entries[ck][0]), entries[ck][1]
        vp.status = "reinitialized" if fresh else "shape_mismatch" if vp.checkpoint_shape != full_shape else "restored"
    elif fresh:
        vp.status = "reinitialized" if reinit else "new"
    return vp


def make_plan(graph_vars: dict, entries: dict, *, rules: Rules | None = None, restore_optimizer: bool = True,
              new=(), reinit=(), trainable=(), lr_mult=None, trains_from=None, update_ops=(), inputs=(),
              outputs=()) -> Plan:
    """Decide every variable's fate.

    Args:
      graph_vars: ``{name: (shape tuple, dtype name)}`` of the new graph's variables.
        A partitioned variable's part maps to ``(shape, dtype, full_name, full_shape, var_offset)``.
      entries: ``{checkpoint name: (shape, dtype name)}``.
      rules: a :class:`~graphsurgeon._src.rules.Rules`: ``keep`` / ``drop`` (and the
        ``optimizer-slots`` preset) choose which checkpoint tensors are restored (graph variables
        that would read the others are initialized anew); ``rename`` / ``map_scope`` and preset
        renames map checkpoint names to graph names. ``cast`` and ``merge`` are refused.
      restore_optimizer: if False, optimizer slots and ``global_step`` are neither restored nor
        kept in the graph's restore set.
      new: names of variables created by surgery.
      reinit: names to initialize anew although the checkpoint has them.
      trainable: names that train.
      lr_mult: ``{name: multiplier}``.
      trains_from: ``{name: the epoch it starts training in}`` (1, the first, when not given).

    Returns:
      A :class:`Plan`; it does not raise on mismatches (see :meth:`Plan.check`).

    Raises:
      ConfigError: ``rules`` holds ``cast`` or ``merge``.
      PatternError: a ``keep`` or ``drop`` pattern matches no checkpoint name.
      PlanError: a ``rename`` or ``map_scope`` rule matches no checkpoint name, or two checkpoint
        names map to one graph name.
    """
    rules = rules or Rules()
    for what in ("cast", "merge"):
        if getattr(rules, what):
            raise ConfigError(f"rules {what}={getattr(rules, what)!r}: {what} is a migration setting; restore "
                              "does not take it" + (" (allow_cast=True casts restored values)" if what == "cast" else ""))
    new, reinit, trainable = set(new), set(reinit), set(trainable)
    lr_mult, trains_from = lr_mult or {}, trains_from or {}
    full = {n: info[2] if len(info) > 2 else n for n, info in graph_vars.items()}
    reads = checkpoint_names(sorted(set(full.values())), entries, rules)
    chosen = set(rules.chosen(sorted(entries))) if (rules.keep or rules.drop or rules.presets) else set(entries)
    fresh = {n for n in graph_vars if n in reinit or (reads[full[n]] in entries and reads[full[n]] not in chosen)
             or (not restore_optimizer and is_optimizer_state(n))}
    plans = [_variable_plan(name, graph_vars[name], entries, reads[full[name]], new=name in new,
                            fresh=name in fresh, reinit=name in reinit, trainable=name in trainable,
                            lr_mult=lr_mult.get(name), trains_from=trains_from.get(name))
             for name in sorted(graph_vars)]
    used = {v.checkpoint_name for v in plans if v.checkpoint_name}
    for ck in sorted(set(entries) - used):
        shape, dtype = entries[ck][0], entries[ck][1]
        plans.append(VariablePlan(ck, tuple(shape), dtype, "dropped", False, checkpoint_name=ck,
                                  checkpoint_shape=tuple(shape), checkpoint_dtype=dtype))
    plans.sort(key=lambda v: natural_key(v.name))
    return Plan(plans, sorted(update_ops), list(inputs), list(outputs))
