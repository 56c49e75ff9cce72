"""The verbs: merge task models that share a backbone into one multi-head SavedModel, and make
new versions of it with a task added or removed.

::

    merged = merge_heads(["tasks/*"], "encoder/features", "serving/text/1")
    add_task("serving/text/1", "new_task/model.ckpt-900")       # writes serving/text/2
    remove_task("serving/text/2", "sentiment")                  # writes serving/text/3
"""
from __future__ import annotations

import dataclasses
import os

from graphsurgeon._src.errors import ConfigError, MergeHeadsError
from graphsurgeon._src.mixins import Report, agree, counted, series
from graphsurgeon._src.multihead import build as builder
from graphsurgeon._src.multihead import compare, layout, load
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.multihead import verify as verifier
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage import multihead_files as files
from graphsurgeon._src.storage.paths import refuse_output_inside, retrain_model
from graphsurgeon._src.storage.staging import check_destination


@dataclasses.dataclass
class MergeResult(Report):
    """What was written: the version ``directory``, its ``tasks`` (``tasks.json`` entries), backbone
    ``groups`` (``[{"group", "tasks", "checksum"}]``), ``differences`` between backbone groups (see
    :meth:`compare.Grouper.differences`), ``bytes`` (``saved_model``: saved_model.pb + variables;
    ``backbone``: one backbone's weights; ``heads``: the sum of the heads' own weights),
    ``max_abs_diff`` found by verification (None if not verified), whether shard 0 (the
    backbone data) was hard-linked from the previous version, and ``notes``: a sentence when
    ``allow_batch_dependent`` accepted features that depend on their batch-mates, worded as retrain's, or
    when no run checked them (an input without probe values); for :func:`remove_task`, what became of the
    removed task's id and name."""

    directory: str
    tasks: list
    groups: list
    differences: list
    bytes: dict
    max_abs_diff: float | None
    linked_backbone: bool = False
    notes: list = dataclasses.field(default_factory=list)

    def format_text(self) -> str:
        """A short report: the tasks (all of them up to 20), bytes, backbone groups, verification."""
        lines = [f"{self.directory}: {counted(len(self.tasks), 'task')}, {counted(len(self.groups), 'backbone group')}"]
        shown = self.tasks if len(self.tasks) <= 20 else self.tasks[:3] + self.tasks[-2:]
        for i, t in enumerate(shown):
            if len(self.tasks) > 20 and i == 3:
                lines.append(f"  … {len(self.tasks) - 5} more")
            h = t["head"]
            how = f"stack {h['stack']}" if h["kind"] == "dense" else "branch"
            lines.append(f"  task {t['id']:<4} {t['name']:<24} {t['num_classes']:>3} classes  {how:<8} "
                         f"{t['output']:<13} backbone {t['backbone_group']}  <- {t['source']}"
                         + (" (a one-output sigmoid model: its output is column 1)" if t.get("sigmoid") else ""))
        b = self.bytes
        lines.append(f"SavedModel {b['saved_model']:,} bytes = {b['saved_model'] / (b['backbone'] + b['heads']):.3f} x "
                     f"(backbone {b['backbone']:,} + heads {b['heads']:,})"
                     + ("; backbone data linked from the previous version" if self.linked_backbone else ""))
        if self.max_abs_diff is not None:  # 'within 0 of' for an exact match: say it is equal
            how = f"within {self.max_abs_diff:.2g} of its own head" if self.max_abs_diff else "equal to its own head's"
            lines.append(f"verified: every task's output {how} on probe inputs")
        return "\n".join(lines + self.notes)


def _label_fn(names):
    return lambda i: f"{i} ({names[i]})" if len(names) <= 20 else str(i)


class _Reader:
    """Reads task models one at a time, checking each backbone against the first model's (architecture)
    and grouping its weights, so that memory holds one model's backbone weights per group."""

    def __init__(self, names, atol: float):
        self.names, self.atol = names, atol
        self.ref, self.grouper, self.group_of, self.heads, self.models = None, None, [], [], []

    def add(self, m, allow_batch_dependent: bool) -> str | None:
        """Read ``m``'s backbone weights and head; returns the note of a head ``allow_batch_dependent`` accepted
        (:func:`graphsurgeon._src.multihead.verify.check_head_batch`), else None."""
        if self.ref is None:
            self.ref = m
            self.grouper = compare.Grouper([a for a, _ in compare.check_architecture(m.backbone, m.path, m.backbone,
                                                                                    m.path)], self.atol)
        pairs = compare.check_architecture(self.ref.backbone, self.ref.path, m.backbone, m.path)
        self.group_of.append(self.grouper.add(len(self.group_of), m.values([b for _, b in pairs])))
        self.heads.append(specs.head_of(m.head, m.read, m.path))
        self.models.append(m)
        return verifier.check_head_batch(self.heads[-1], m.head, m.read, m.path, "merge models whose heads do not "
                                         "depend on the other examples in a batch", allow_batch_dependent)

    def backbones(self, group: bool):
        """``(backbones, values per group, differences)``.

        Raises:
          MergeHeadsError: weights differ and ``group`` is False.
        """
        diffs, order = self.grouper.differences(), self.grouper.names
        if diffs and not group:
            raise MergeHeadsError(f"backbone weights differ (atol {self.atol:g}): "
                                  f"{compare.report(diffs, order, _label_fn(self.names))}; pass group_backbones=True "
                                  "to build one backbone per group, or a larger atol= to accept differences this "
                                  "small")
        backbones, values = [], []
        for k, g in enumerate(self.grouper.groups):
            prefix = "" if k == 0 else f"backbone_{k}/"
            backbones.append(specs.Backbone(self.ref.backbone, {n: prefix + n for n in order}, g.checksum))
            values.append(dict(zip(order, g.values)))
        return backbones, values, diffs


def _write_version(out: str, backbones, tasks, backbone_shard, backbone_values, *, features, input, model_version,
                   previous, next_id: int, do_verify: bool):
    """Build, write, verify and rename into place; returns ``(linked, max diff, table)``."""
    head_values = {}
    for r in specs.routes(tasks):
        head_values.update(specs.stack_values(r) if r.kind == "stack" else specs.branch_values(r.tasks[0]))
    if isinstance(backbone_shard, dict):
        stored = backbone_shard
    else:  # a previous version's shard 0, linked: what it must still hold
        stored = {n: backbone_shard[2].read(n) for n in backbone_shard[1]}
    dtypes = layout.dtypes_of(stored)
    built = builder.build(backbones, tasks, {**dtypes, **layout.dtypes_of(head_values)})
    meta = layout.meta_graph(built)
    tab = layout.table(backbones, tasks, features=features, input=input, model_version=model_version,
                       previous=previous, next_id=next_id)
    tmp = files.new_version_dir(out)
    try:
        linked = layout.write(tmp, meta, backbone_shard[:2] if isinstance(backbone_shard, tuple) else backbone_shard,
                              head_values, tab, layout.parts(backbones, tasks))
        files.verify_values(os.path.join(tmp, files.VARIABLES_PREFIX), {**head_values, **stored})
        worst = verifier.check(tmp, backbones, backbone_values, tasks, skip="; pass verify=False to skip it") \
            if do_verify else None
        files.commit_version(tmp, out)
    finally:
        files.discard(tmp)
    return linked, worst, tab


def merge_heads(models, features: str, out: str, *, input: str | None = None, output: str | None = None,
                task_names=None, atol: float = 0.0, group_backbones: bool = False, tags=("serve",),
                verify: bool = True, allow_batch_dependent: bool = False, progress: bool = False) -> MergeResult:
    """Merge task models that share a backbone into one multi-head model at ``out``.

    Args:
      models: paths, globs or directories of task models (see :func:`load.expand`).
      features: the tensor (or, for Keras models, the layer) where the backbone ends.
      out: the version directory to write (must not exist): a SavedModel with ``tasks.json``.
      input, output: the models' input and output tensors, when they cannot be told from the graph.
      task_names: one name per model (default: from the paths, see :func:`load.default_names`).
      atol: backbone weights within this of the first model's count as equal.
      group_backbones: when backbones differ, build one per group instead of refusing.
      verify: compare every task's output of the written model with its own head on probe inputs.
      allow_batch_dependent: accept features whose value for an example changes with the other examples of
        its batch (batch norm in training mode), checked on the first model as retrain checks its cut, on 64
        probe inputs (:func:`graphsurgeon._src.multihead.verify.check_batch`; for an input dtype without probe
        values, such as complex, by the graph's ops alone), and heads whose output does (each model's head that
        is not a dense stack, on 64 probe features: :func:`graphsurgeon._src.multihead.verify.check_head_batch`);
        the result's ``notes`` say so, and say when no run checked the features.

    Raises:
      MergeHeadsError: see the module's bad-input rules; nothing is written at ``out``.
      BatchDependentError: the features or a head depend on their batch-mates (examples of different tasks
        share a batch), unless ``allow_batch_dependent``; nothing is written at ``out``.
    """
    if os.path.lexists(out):
        raise ConfigError(f"{out} exists; merged models are written to a new directory (choose another out=)")
    check_destination(out, f"out={out}")  # before any model is read
    paths = load.expand(models)
    given = [models] if isinstance(models, (str, os.PathLike)) else list(models)  # (a directory of models too)
    refuse_output_inside(out, [*paths, *map(os.fspath, given)], f"out={out}")
    names = list(task_names) if task_names is not None else load.default_names(paths)
    if len(names) != len(paths):
        raise MergeHeadsError(f"{len(names)} task names for {len(paths)} models")
    load.check_names(names, "task names")
    reader, bar = _Reader(names, atol), Progress(len(paths), "reading task models", "models", enabled=progress)
    notes = []
    for p in paths:
        m = load.load(p, features, input=input, output=output, tags=tags)
        if reader.ref is None:  # the others have its architecture (checked as they are read)
            notes = [n for n in [verifier.check_batch(m.backbone, m.read, f"{m.path}: features",
                                                    "give features=TENSOR {}", allow_batch_dependent,
                                                    head_kept=True)] if n]
        notes += [n for n in [reader.add(m, allow_batch_dependent)] if n]
        bar.update(1)
    backbones, bb_values, diffs = reader.backbones(group_backbones)
    tasks = [specs.Task(i, names[i], _classes(m, h), m.path, reader.group_of[i], h)
             for i, (m, h) in enumerate(zip(reader.models, reader.heads))]
    bar.close()  # after every check of the input: an error stays one line
    shard = {bb.names[n]: v for bb, vals in zip(backbones, bb_values) for n, v in vals.items()}
    linked, worst, tab = _write_version(out, backbones, tasks, shard, bb_values, features=features, input=input,
                                        model_version=1, previous=None, next_id=len(tasks), do_verify=verify)
    return _result(out, tab, backbones, diffs, worst, linked, bb_values, tasks, notes=notes)


def _classes(model, head: specs.Head) -> list:
    if model.labels is None:
        return [str(i) for i in range(head.num_classes)]
    if len(model.labels) != head.num_classes:
        raise MergeHeadsError(f"{model.path}: labels.txt names {len(model.labels)} classes; the head has "
                              f"{head.num_classes}")
    return model.labels


def _result(out, tab, backbones, diffs, worst, linked, bb_values, tasks, *, notes=()) -> MergeResult:
    sm = os.path.join(out, "saved_model.pb")
    var_dir = os.path.join(out, "variables")
    size = os.path.getsize(sm) + sum(os.path.getsize(os.path.join(var_dir, f)) for f in os.listdir(var_dir)
                                     if not f.endswith(".meta"))
    nbytes = {"saved_model": size, "backbone": sum(v.nbytes for v in bb_values[0].values()),
              "heads": sum(t.head.nbytes() for t in tasks)}
    groups = [{"group": b["group"], "tasks": b["tasks"], "checksum": b["checksum"]} for b in tab["backbones"]]
    return MergeResult(out, tab["tasks"], groups, diffs, nbytes, worst, linked, list(notes))


def next_version_dir(model_dir: str) -> str:
    """The directory of the version after ``model_dir``: when its name is a version number (TF
    Serving's layout, ``models/text/1``), the next free number beside it (``models/text/2``), a path
    relative when ``model_dir`` is (as an ``out`` given is reported as given).

    Raises:
      ConfigError: ``model_dir``'s name is not a number (then the caller must say where).
    """
    parent, base = os.path.split(os.path.normpath(model_dir))
    if not base.isdigit():
        raise ConfigError(f"{os.path.abspath(model_dir)}: its name is not a version number; say where the new "
                          "version goes (out=DIR)")
    taken = [int(os.path.basename(v)) for v in layout.versions_beside(model_dir)]
    return os.path.join(parent, str(max(taken, default=int(base)) + 1))


def _stored(model_dir: str):
    """A version's table, backbones, tasks, shard-0 description and backbone values per group."""
    tab, backbones, tasks, reader = layout.read(model_dir)
    names = sorted({v for bb in backbones for v in bb.names.values()})
    shard = (os.path.join(model_dir, files.VARIABLES_PREFIX), names, reader)
    values = [{n: reader.read(v) for n, v in bb.names.items()} for bb in backbones]
    return tab, backbones, tasks, shard, values


def _previous(model_dir: str, out: str) -> str:
    return os.path.relpath(os.path.abspath(model_dir), os.path.dirname(os.path.abspath(out)))


def add_task(model_dir: str, model: str, out: str | None = None, *, name: str | None = None,
             output: str | None = None, atol: float = 0.0, tags=("serve",), verify: bool = True,
             allow_batch_dependent: bool = False) -> MergeResult:
    """Write a new version of the merged model at ``model_dir`` with ``model``'s head added as a new
    task, whose id is :func:`layout.next_id` (``model_dir``'s ``next_id``, raised above every id the versions
    beside it gave: ids are never given again, not even a removed task's; the new version's ``next_id`` is one
    more). The backbone's data file is
    hard-linked (copied across file systems), not rewritten; ``model_dir`` is not changed.

    Args:
      model: one task model, as :func:`merge_heads` takes it (``retrain``'s output directory gives
        its ``saved_model/``).
      out: the new version's directory (default: :func:`next_version_dir`).
      name: the task's name (default: from the path, see :func:`load.default_names`).
      allow_batch_dependent: accept the model's features or head though they depend on their batch-mates,
        checked as :func:`merge_heads` checks them; the result's ``notes`` say so.

    Raises:
      MergeHeadsError: the model's backbone differs from every backbone of ``model_dir`` (architecture,
        or weights beyond ``atol``), the name is taken, ``model_dir``'s ``next_id`` is not above every id, or a
        version beside it has a ``tasks.json`` that cannot be read.
      WrongPathKindError: ``model`` is a retrain output directory that also holds checkpoint prefixes.
      BatchDependentError: the model's features or head depend on their batch-mates, unless
        ``allow_batch_dependent``.
    """
    tab, backbones, tasks, shard, bb_values = _stored(model_dir)
    new_id = layout.next_id(tab, model_dir)
    out = out or next_version_dir(model_dir)
    refuse_output_inside(out, [model_dir, model], f"out={out}")
    model = retrain_model(model) or model  # as merge_heads reads it: retrain's saved_model/
    m = load.load(model, tab["features"], input=tab.get("input"), output=output, tags=tags)
    note = verifier.check_batch(m.backbone, m.read, f"{m.path}: features", "merge the models again at a tensor {}",
                                allow_batch_dependent, head_kept=True)
    group = _matching_group(m, backbones, bb_values, atol, model_dir)
    name = name or load.default_names([model])[0]
    load.check_names([t.name for t in tasks] + [name], f"{model_dir} + {model}", "name")
    head = specs.head_of(m.head, m.read, m.path)
    head_note = verifier.check_head_batch(head, m.head, m.read, m.path, "add a model whose head does not depend on "
                                          "the other examples in a batch", allow_batch_dependent)
    tasks.append(specs.Task(new_id, name, _classes(m, head), m.path, group, head))
    linked, worst, new_tab = _write_version(out, backbones, tasks, shard, bb_values, features=tab["features"],
                                            input=tab.get("input"), model_version=tab["model_version"] + 1,
                                            previous=_previous(model_dir, out), next_id=new_id + 1,
                                            do_verify=verify)
    return _result(out, new_tab, backbones, [], worst, linked, bb_values, tasks, notes=[n for n in [note, head_note] if n])


def _matching_group(m, backbones, bb_values, atol: float, model_dir: str) -> int:
    diffs = []
    for g, bb in enumerate(backbones):
        pairs = compare.check_architecture(bb.piece, model_dir, m.backbone, m.path)
        grouper = compare.Grouper([a for a, _ in pairs], atol)
        grouper.add(-1, [bb_values[g][a] for a, _ in pairs])
        if grouper.add(0, m.values([b for _, b in pairs])) == 0:
            return g
        d, = grouper.differences()  # the model's weights against group g's: what differs, from what
        verb = agree(len(d["tensors"]), "differs", "differ")
        diffs.append(f"its {compare.summarize(d['tensors'], grouper.names)} {verb} from backbone group {g}'s "
                     f"({compare.how_much(d)})")
    raise MergeHeadsError(f"{m.path}: its backbone weights differ from every backbone of {model_dir} "
                          f"(atol {atol:g}): {'; '.join(diffs)}")


def remove_task(model_dir: str, task, out: str | None = None, *, verify: bool = True) -> MergeResult:
    """Write a new version of the merged model at ``model_dir`` without ``task`` (a task name, or an id
    when no task has that name). Other tasks keep their ids, and the new version keeps ``model_dir``'s
    ``next_id`` (:func:`layout.next_id`: raised above every id the versions beside it gave), so the removed task's id is not given to a task added later; the
    backbone's data file is hard-linked, not rewritten; ``model_dir`` is not changed.

    The result's ``notes`` say that requests for the removed task now fail, that ``model_dir`` still holds
    it, and the id the next task added gets (:func:`add_task` and learn-task give it).

    Raises:
      MergeHeadsError: no such task, it is the only one, ``model_dir``'s ``next_id`` is not above every id, or
        a version beside it has a ``tasks.json`` that cannot be read.
    """
    tab, backbones, tasks, shard, bb_values = _stored(model_dir)
    next_id = layout.next_id(tab, model_dir)
    out = out or next_version_dir(model_dir)
    refuse_output_inside(out, [model_dir], f"out={out}")
    gone = [t for t in tasks if t.name == str(task)] or [t for t in tasks if str(task).isdigit() and t.id == int(task)]
    if not gone:
        known = series((f"{t.id} {t.name}" for t in tasks), 8, count="task")
        raise MergeHeadsError(f"{model_dir}: no task '{task}' (tasks by id and name: {known})")
    if len(tasks) == 1:
        raise MergeHeadsError(f"{model_dir}: '{task}' is the only task; a merged model needs at least one")
    tasks = [t for t in tasks if t is not gone[0]]
    linked, worst, new_tab = _write_version(out, backbones, tasks, shard, bb_values, features=tab["features"],
                                            input=tab.get("input"), model_version=tab["model_version"] + 1,
                                            previous=_previous(model_dir, out), next_id=next_id,
                                            do_verify=verify)
    return _result(out, new_tab, backbones, [], worst, linked, bb_values, tasks,
                   notes=[_removed_note(gone[0], next_id, model_dir)])


def _removed_note(t: specs.Task, next_id: int, model_dir: str) -> str:
    """What a user of the new version should know of removed task ``t``: which requests now fail, where it is
    still held, and that its id is not given again (the next task added gets ``next_id``)."""
    return (f"task {t.id} '{t.name}' removed: a request for it (task_id {t.id}, or task '{t.name}') now fails; "
            f"{model_dir} still holds it; its id is not given again (the next task added gets {next_id})")

