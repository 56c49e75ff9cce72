"""``learn_task``: read a model, learn a new task with one method, write a new many-heads version.

::

    cfg = LearnConfig(model="runs/digits04/", features="hidden2/Relu", task="digits59", method="lwf")
    result = learn_task(cfg, "digits59.npz", "serving/digits/2")
"""
from __future__ import annotations

import dataclasses
import os
import time

from graphsurgeon._src.continual import common, ewc, lwf, network, packnet, piggyback, transfer, write
from graphsurgeon._src.continual.config import MASKED, LearnConfig
from graphsurgeon._src.continual.graph import Wording, check_features, check_head
from graphsurgeon._src.errors import ConfigError, ContinualError, DataError
from graphsurgeon._src.mixins import Report, counted
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.retrain.data import check_out_dir, class_names
from graphsurgeon._src.storage import datasets

METHODS = {"feature-extraction": transfer, "fine-tune": transfer, "joint": transfer, "lwf": lwf, "ewc": ewc,
           "packnet": packnet, "piggyback": piggyback}
# what each method needs of the old tasks' data: never, always, or only in some cases
OLD_DATA = {"feature-extraction": "no", "fine-tune": "no", "joint": "yes", "lwf": "no",
            "ewc": "a Fisher file, or N old examples once", "packnet": "no (optional, to retrain a plain "
            "model's pruned weights)", "piggyback": "no"}


@dataclasses.dataclass
class LearnResult(Report):
    """What :func:`learn_task` did: the written ``directory``, the ``method``, the new ``task``'s
    ``tasks.json`` entry, every task's entry, ``metrics`` (accuracies of the written model: ``new``, the new
    task per split of its data, ``old``, each old task with ``old_data`` on that data's test split, and
    ``examples``, how many examples each was measured on: ``{"new": {split: n}, "old": {task: n}}``),
    per-epoch ``history``, ``extra_bytes`` the new task adds (by kind), ``old_fisher_bytes``: with ewc, the bytes
    of the old tasks' Fisher information this run computed from old data and stored beside the new task's (None
    with the other methods, when it computed none, and when it folded it into the one online entry), ``bytes`` of the directory, the
    ``seconds`` the method took (reading the data, recording, training, Fisher; not writing) and ``notes``:
    one sentence per random part ``allow_random`` accepted (the features, an old head), and per batch-dependent
    part ``allow_batch_dependent`` accepted (the features, an old head), worded as retrain's, and with ewc one
    naming the old tasks whose Fisher information it computed; ``packed_first``:
    when packnet packed a plain model's own task first, what that did to it: ``task``, ``kernel_weights`` (the
    backbone kernels' weights), ``pruned`` (how many of them were zeroed), ``pruned_fraction``, and with old data
    for that task ``accuracy_before`` (the model read, before packing) and ``accuracy_after`` (the written
    model) on that data's test split (all of it when it has none) of ``examples`` examples, else None (not
    measured); None for every other run; ``mask_off``: with piggyback, how many of the backbone kernels' weights
    the new task's mask drops: ``task``, ``kernel_weights``, ``off``, ``off_fraction`` (when none, a note says so
    and names ``mask_lr``); None for the other methods."""

    directory: str
    method: str
    task: dict
    tasks: list
    metrics: dict
    history: list
    extra_bytes: dict
    old_fisher_bytes: int | None
    bytes: int
    seconds: float
    notes: list = dataclasses.field(default_factory=list)
    packed_first: dict | None = None
    mask_off: dict | None = None

    def format_text(self) -> str:
        counts = self.metrics.get("examples", {})
        acc = ", ".join(f"{k} {v:.4f}{_of(counts.get('new', {}).get(k))}" for k, v in self.metrics.get("new", {}).items())
        lines = [f"learned task '{self.task['name']}' (id {self.task['id']}, {self.task['num_classes']} classes) with "
                 f"{self.method} in {self.seconds:.1f} s: accuracy {acc or 'not measured'}"]
        for name, v in self.metrics.get("old", {}).items():
            lines.append(f"  old task '{name}': accuracy {v:.4f}{_of(counts.get('old', {}).get(name))} after learning "
                         "the new one")
        if self.packed_first:
            lines.append(_packed_text(self.packed_first))
        if self.mask_off:
            m = self.mask_off
            lines.append(f"  new task '{m['task']}' masked: {m['off']:,} of the backbone kernels' {m['kernel_weights']:,} "
                         f"weights off ({m['off_fraction']:.3f})")
        extra = ", ".join(f"{k} {v:,}" for k, v in self.extra_bytes.items())
        old = self.old_fisher_bytes
        lines.append(f"{self.directory}: {len(self.tasks)} tasks, {self.bytes:,} bytes; the new task adds {extra} bytes"
                     + (f"; the old tasks' Fisher information computed in this run adds {old:,} bytes" if old else ""))
        return "\n".join(lines + list(self.notes or ()))


def _packed_text(p: dict) -> str:
    """The line that says what packnet's packing did to a plain model's own task."""
    head = (f"  old task '{p['task']}' packed first: {p['pruned']:,} of its backbone kernels' {p['kernel_weights']:,} "
            f"weights pruned to zero ({p['pruned_fraction']:.3f})")
    if p.get("accuracy_before") is None:
        return head + "; its accuracy before and after was not measured (no old data given for it)"
    after = "not measured" if p.get("accuracy_after") is None else f"{p['accuracy_after']:.4f}"
    return head + f"; accuracy {p['accuracy_before']:.4f} before, {after} after{_of(p.get('examples'))}"


def _of(n: int | None) -> str:
    """`` (of 38 examples)``; ``''`` when the count is not known (a record written before counts were kept)."""
    return "" if n is None else f" (of {counted(n, 'example')})"


def learn_task(cfg: LearnConfig, data, out_dir: str, *, progress: bool = True) -> LearnResult:
    """Learn task ``cfg.task`` from ``data`` (an ``.npz`` or image folder with labels) on ``cfg.model``
    with ``cfg.method``, and write the model with the task added at ``out_dir`` (see
    :mod:`graphsurgeon._src.continual.write`). Neither the model nor the data is changed.

    Raises:
      ConfigError: a setting out of range, ``out_dir`` exists or lies in the model's directory.
      ContinualError: the task name exists (without ``replace``), the method cannot follow the
        model's earlier method, masks or a Fisher file made for another model.
      RandomTensorError: the backbone's features differ between runs on one batch of the data's
        training examples (dropout with ``keep_prob`` baked in; checked as retrain checks its cut), or
        an old task's head does on those examples' features (dropout above the features), unless
        ``cfg.allow_random`` (a subclass of ConfigError); a backbone it accepts so is not compared with
        the written model's served outputs, which differ call to call, nor is a task whose head it
        accepts so, and the result's ``notes`` say what it accepted.
      BatchDependentError: the first of those examples alone gives other features than in its batch (batch
        norm in training mode; checked as retrain checks its cut), or its features alone give an old task's head
        another output than in their batch (a batch norm in training mode above the features: in the written
        model, a task's examples share a batch with other tasks'), unless ``cfg.allow_batch_dependent`` (a
        subclass of ConfigError); the result's ``notes`` then say so.
      DataError: the data does not fit the model's input.
    """
    cfg.check()
    if not out_dir:
        raise ConfigError("no output directory given (out_dir=DIR)")
    if os.path.lexists(out_dir):
        raise ConfigError(f"{out_dir} exists; learn-task writes a new directory (choose another out_dir=)")
    check_out_dir(cfg, out_dir)
    net = network.read(cfg.model, features=cfg.features, input=cfg.input, output=cfg.output,
                       task_name=cfg.old_task, tags=cfg.tags)
    _check_method(net, cfg)
    replaces = _check_name(net, cfg)
    dataset = _load(data, net, "data")
    notes, random_features, random_heads = _check_random(net, cfg, dataset.part("train")[0], replaces)
    old = _old_data(net, cfg)
    names = class_names(dataset.classes, len(dataset.classes) if dataset.classes else int(dataset.y.max()) + 1)
    task = common.new_task(net, cfg.task, names, os.fspath(data), cfg.seed, replaces)
    start = time.perf_counter()
    learned = METHODS[cfg.method].learn(net, dataset, task, cfg, old, progress)
    seconds = time.perf_counter() - start

    def record(directory: str) -> dict:
        return {"version": 1, "method": cfg.method, "config": dataclasses.asdict(cfg), "seconds": seconds,
                "accuracy": measure(directory, net, task, dataset, old), "history": learned.history,
                "extra_bytes": learned.extra_bytes, "old_fisher_bytes": learned.old_fisher_bytes,
                "old_data_needed": OLD_DATA[cfg.method]}

    tab, rec = write.write_version(out_dir, net, learned, record,
                                   uncompared={t.name for t in learned.tasks} if random_features else random_heads)
    entry = next(t for t in tab["tasks"] if t["name"] == cfg.task)
    packed = learned.packed_first
    if packed is not None:  # its accuracy after: the written model's, on the data its accuracy before was
        after = rec["accuracy"]["old"].get(packed["task"]) if packed["accuracy_before"] is not None else None
        packed = {**{k: v for k, v in packed.items() if k != "examples"}, "accuracy_after": after,
                  "examples": packed["examples"]}
    return LearnResult(out_dir, cfg.method, entry, tab["tasks"], rec["accuracy"], learned.history,
                       learned.extra_bytes, learned.old_fisher_bytes, write.directory_bytes(out_dir), seconds,
                       notes + learned.notes, packed, learned.mask_off)


def _check_random(net, cfg: LearnConfig, x, replaces) -> tuple[list, bool, set]:
    """Retrain's randomness and batch-dependence probe on the features (on ``x``, the training split) and on each
    old task's head (fed the features; the task ``replaces`` is not kept, so not checked): ``(notes, random
    features, names of the tasks whose head is random)``, a note per random part ``cfg.allow_random`` accepted
    (with LwF, saying that its recorded targets are one draw of the answers) and per batch-dependent part
    ``cfg.allow_batch_dependent`` accepted.

    Raises:
      RandomTensorError: the features or an old head are random, unless ``cfg.allow_random``.
      BatchDependentError: the features or an old head depend on the other examples of their batch, unless
        ``cfg.allow_batch_dependent``.
    """
    plain = net.kind == "plain"

    def lwf(whose: str, of: str) -> str:  # LwF records the old heads' answers once: its targets
        return f"; LwF's targets for {whose} are one draw of {of}, recorded once on the training inputs" \
            if cfg.method == "lwf" else ""

    features = check_features(net.backbone, net.values, x, Wording(
        f"{net.source}: features", "give features=TENSOR below {them}" if plain else
        "learn on a model whose features do not depend on {them}", "the written model's answers differ call to call, "
        "and they are not compared with its heads'" + lwf("the old heads", "their answers"),
        batch_instead="give features=TENSOR {}" if plain else "learn on a model whose features do not depend on the "
        "other examples in a batch", batch_head_kept=plain), cfg.allow_random,
        allow_batch_dependent=cfg.allow_batch_dependent)
    notes, random_heads = [features.note] if features.note else [], set()
    for t in net.tasks:
        if replaces is not None and t.name == replaces.name:
            continue
        head = check_head(t, features.values, Wording(
            f"{net.source}: the old head of task '{t.name}', its output", "give features=TENSOR above {them}" if plain
            else "learn on a model whose heads do not depend on {them}", f"the written model's answers for task "
            f"'{t.name}' differ call to call, and they are not compared with its head's" + lwf("it", "its answers"),
            batch_instead="learn on a model whose heads do not depend on the other examples in a batch"),
            cfg.allow_random, allow_batch_dependent=cfg.allow_batch_dependent)
        if head.note:
            notes.append(head.note)
        if head.random:
            random_heads.add(t.name)
    return notes, features.random, random_heads


def measure(directory: str, net, task, dataset, old: dict) -> dict:
    """Accuracies of the model written at ``directory``: the new task on each split of its data, each
    old task with data on that data's test split (all of it when it has none)."""
    parts = {split: dataset.part(split) for split in ("train", "validation", "test")}
    new = {split: write.accuracy(directory, task.id, *xy) for split, xy in parts.items()}
    counts = {split: len(parts[split][1]) for split, v in new.items() if v is not None}
    olds, old_counts = {}, {}
    for name, d in old.items():
        t = net.task(name)
        if t is not None and name != task.name:
            x, y = common.measured_part(d)
            olds[name], old_counts[name] = write.accuracy(directory, t.id, x, y), len(y)
    return {"new": {k: v for k, v in new.items() if v is not None}, "old": olds,
            "examples": {"new": counts, "old": old_counts}}


def _check_method(net, cfg: LearnConfig) -> None:
    before = net.state.get("method")
    if before in MASKED and cfg.method != before:
        raise ContinualError(f"{net.source} was built with {before}: its tasks keep their weights through "
                             f"{before}'s masks; learn the next task with method='{before}'")
    if cfg.method == "packnet" and before != "packnet" and len(net.tasks) > 1:
        raise ContinualError(f"{net.source} has {len(net.tasks)} tasks sharing every backbone weight; packnet "
                             "packs tasks one at a time from a model with one task")


def _check_name(net, cfg: LearnConfig):
    """The task ``cfg.task`` replaces (with ``replace``), or None."""
    taken = net.task(cfg.task)
    if taken is None:
        return None
    if not cfg.replace:
        raise ContinualError(f"{net.source} already has a task '{cfg.task}' (tasks: "
                             f"{', '.join(t.name for t in net.tasks)}); pass replace=True to learn it again")
    if cfg.method == "packnet" or len(net.tasks) == 1:
        raise ContinualError(f"task '{cfg.task}' cannot be replaced in {net.source}: "
                             + ("packnet's weights belong to the tasks that trained them" if cfg.method == "packnet"
                                else "it is the model's only task"))
    return taken


def _load(path, net, what: str):
    data = path if isinstance(path, datasets.Dataset) else datasets.load(os.fspath(path))
    dtype, shape = pieces.input_spec(net.backbone)
    want = shape.as_list()[1:] if shape.rank else None
    got = list(data.x.shape[1:])
    if want is not None and (len(want) != len(got) or any(w not in (None, g) for w, g in zip(want, got))):
        raise DataError(f"{what}: examples have shape {got} but the model's input {net.backbone.input} takes {want}")
    if len(data.y) and data.y.min() < 0:
        raise DataError(f"{what}: negative labels")
    if not len(data.part("train")[1]):
        raise DataError(f"{what}: no training examples")
    data.x = data.x.astype(dtype.as_numpy_dtype, copy=False)
    return data


def _old_data(net, cfg: LearnConfig) -> dict:
    """``{old task name: Dataset}`` from ``cfg.old_data``; a key ``""`` means the model's one task."""
    out = {}
    for name, path in (cfg.old_data or {}).items():
        if not name:
            if len(net.tasks) != 1:
                raise ConfigError(f"{net.source} has {len(net.tasks)} tasks: give each old_data= its task's name "
                                  f"(old_data={{'TASK': PATH}}; tasks: {', '.join(t.name for t in net.tasks)})")
            name = net.tasks[0].name
        t = net.task(name)
        if t is None:
            raise ConfigError(f"old_data={{'{name}': PATH}}: {net.source} has no such task "
                              f"({', '.join(t.name for t in net.tasks)})")
        d = _load(path, net, f"old_data={path}")
        if len(d.y) and d.y.max() >= t.head.num_classes:
            raise DataError(f"old_data={path}: labels reach {int(d.y.max())} but task '{name}' has "
                            f"{t.head.num_classes} classes")
        out[name] = d
    return out

