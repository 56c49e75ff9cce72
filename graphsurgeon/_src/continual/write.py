"""Write what a method learned as a new many-heads version::

    DIR/saved_model.pb, variables/, parts/, tasks.json     as merge-heads writes them, so
                                                           serving, restore, add-head and
                                                           remove-head read it; tasks.json
                                                           gains a "continual" record
    DIR/continual/masks.npz | fisher.npz                   the method's state, stamped with the
                                                           fingerprint of the weights it is for
    DIR/continual/metrics.json                             settings, history, accuracies, bytes

The graph is built by :func:`graphsurgeon._src.multihead.build.build`: a task picks its head, and
its backbone group; masked methods give each task a group whose piece applies the task's mask.
Everything is written into a temporary directory beside ``DIR``, the variables are read back bit
for bit, every task's served output is compared with its own head on probe inputs, and only then
is the directory renamed into place.
"""
from __future__ import annotations

import json
import os

import numpy as np

from graphsurgeon._src.continual.common import Learned
from graphsurgeon._src.multihead import build as builder
from graphsurgeon._src.multihead import layout
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.multihead import verify as verifier
from graphsurgeon._src.storage import multihead_files as files
from graphsurgeon._src.storage.files import make_dir, tree_bytes
from graphsurgeon._src.storage.state_files import fingerprint, write_arrays

STATE_DIR = "continual"
METRICS_FILE = os.path.join(STATE_DIR, "metrics.json")


def _backbones(learned: Learned) -> tuple[list, dict, list]:
    """Multihead backbones, the backbone shard ``{variable: value}``, values per group."""
    backbones, shard, per_group = [], {}, []
    for g in learned.groups:
        backbones.append(specs.Backbone(g.piece, dict(g.names), fingerprint(g.values)))
        for w, var in g.names.items():
            shard[var] = g.values[w]
        per_group.append(dict(g.values))
    return backbones, shard, per_group


def write_version(out: str, net, learned: Learned, record, *, uncompared=()) -> tuple[dict, dict]:
    """Write ``learned`` at ``out`` (which must not exist). ``record(directory)`` is called on the
    written (not yet renamed) version and returns what ``continual/metrics.json`` holds. Every task's
    served output but those of the tasks named in ``uncompared`` (heads accepted as random; every task
    when the backbone was: its outputs differ call to call) is compared with its own head on probe
    inputs. Returns ``(tasks.json, that record)``.

    Raises:
      ConfigError: ``out`` exists; MergeHeadsError: a task's served output differs from its head.
    """
    backbones, shard, per_group = _backbones(learned)
    head_values = {}
    for r in specs.routes(learned.tasks):
        head_values.update(specs.stack_values(r) if r.kind == "stack" else specs.branch_values(r.tasks[0]))
    built = builder.build(backbones, learned.tasks, {**layout.dtypes_of(shard), **layout.dtypes_of(head_values)})
    meta = layout.meta_graph(built)
    multihead = net.kind == "multihead"
    tab = layout.table(backbones, learned.tasks, features=net.features, input=net.input,
                       model_version=(_model_version(net) + 1) if multihead else 1,
                       previous=os.path.relpath(os.path.abspath(net.source), os.path.dirname(os.path.abspath(out)))
                       if multihead else None, next_id=max([net.next_id] + [t.id + 1 for t in learned.tasks]))
    tab["continual"] = learned.state
    tmp = files.new_version_dir(out)
    try:
        layout.write(tmp, meta, shard, head_values, tab, {**layout.parts(backbones, learned.tasks), **learned.parts})
        files.verify_values(os.path.join(tmp, files.VARIABLES_PREFIX), {**head_values, **shard})
        compared = [t for t in learned.tasks if t.name not in set(uncompared)]
        if compared:
            verifier.check(tmp, backbones, per_group, compared)
        make_dir(os.path.join(tmp, STATE_DIR))
        for name, (arrays, stamp) in sorted(learned.arrays.items()):
            write_arrays(os.path.join(tmp, STATE_DIR, name), arrays, stamp)
        metrics = record(tmp)
        files.write_bytes(os.path.join(tmp, METRICS_FILE), (json.dumps(metrics, indent=2, default=str) + "\n").encode())
        files.commit_version(tmp, out)
    finally:
        files.discard(tmp)
    return tab, metrics


def predict(directory: str, x: np.ndarray, task_ids, batch_size: int = 512) -> dict:
    """Serve ``x`` through the many-heads SavedModel at ``directory`` (``serving_default``, loaded with
    ``tf.compat.v1.saved_model.load``): ``{"logits", "probabilities", "classes"}`` per example;
    ``task_ids`` is one id for every example or one per example."""
    ids = np.broadcast_to(np.asarray(task_ids, np.int64), (len(x),))
    sess, meta = files.load_saved_model(directory)
    out = {"logits": [], "probabilities": [], "classes": []}
    with sess:
        sig, g = meta.signature_def["serving_default"], sess.graph
        feed_x, feed_id = (g.get_tensor_by_name(sig.inputs[k].name) for k in ("inputs", "task_id"))
        fetch = {k: g.get_tensor_by_name(sig.outputs[k].name) for k in out}
        for i in range(0, len(x), batch_size):
            got = sess.run(fetch, {feed_x: x[i:i + batch_size], feed_id: ids[i:i + batch_size]})
            for k in out:
                out[k].append(got[k])
    return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in out.items()}


def accuracy(directory: str, task_id: int, x: np.ndarray, y: np.ndarray) -> float | None:
    """Top-1 accuracy of task ``task_id`` of the model at ``directory`` on ``(x, y)`` (None if empty)."""
    if not len(y):
        return None
    return float((predict(directory, x, task_id)["probabilities"].argmax(1) == y).mean())


def _model_version(net) -> int:
    return int(files.read_tasks(net.source).get("model_version", 1))


def directory_bytes(path: str) -> int:
    """Bytes of every file under ``path``."""
    return tree_bytes(path)
