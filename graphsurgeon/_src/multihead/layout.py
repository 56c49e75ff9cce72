"""A merged model on disk: its task table (``tasks.json``), the graph pieces it is rebuilt from,
and writing a version directory (see :mod:`graphsurgeon._src.storage.multihead_files`).

Reading a version back gives the same backbones and tasks it was written from, so add-head and
remove-head build the next version from the previous one alone (the source models are not needed).
"""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from graphsurgeon._src.errors import MergeHeadsError
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.restore import INPUTS_COLLECTION, OUTPUTS_COLLECTION
from graphsurgeon._src.storage import multihead_files as files
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.files import make_dir
from graphsurgeon._src.storage.signatures import predict_signature

tf1 = tf.compat.v1
FORMAT = "graphsurgeon-multihead"
SIGNATURES = {"serving_default": ("inputs", "task_id"), "by_name": ("inputs", "task")}


def _weights(piece: pieces.Piece, names=None) -> list:
    return [{"name": w.name, "variable": (names or {}).get(w.name, w.name), "dtype": w.dtype, "shape": list(w.shape),
             "handle": w.handle, "source": w.source} for w in sorted(piece.weights.values(), key=lambda w: w.name)]


def _piece(model_dir: str, part: str, info: dict) -> pieces.Piece:
    weights = {w["name"]: pieces.Weight(w["name"], w["dtype"], tuple(w["shape"]), w["handle"], w["source"])
               for w in info["weights"]}
    return pieces.Piece(files.read_part(model_dir, os.path.basename(part)), info["input"], info["output"], weights)


def table(backbones, tasks, *, features: str, input, model_version: int, previous, next_id: int) -> dict:
    """The ``tasks.json`` of a version (``features`` and ``input`` as merge-heads was given them;
    ``next_id``: the id the next task added gets, above every id the version or one before it gave)."""
    routes = specs.routes(tasks)
    rows = {t.id: (r, i) for r in routes for i, t in enumerate(r.tasks)}
    out = {"format": FORMAT, "version": 1, "model_version": model_version, "previous": previous,
           "next_id": next_id, "features": features, "input": input,
           "max_classes": max(t.head.num_classes for t in tasks),
           "signatures": {k: {"inputs": list(v), "outputs": ["logits", "probabilities", "classes", "num_classes"]}
                          for k, v in SIGNATURES.items()},
           "backbones": [], "stacks": [], "tasks": []}
    for b, bb in enumerate(backbones):
        out["backbones"].append({"group": b, "part": f"{files.PARTS_DIR}/backbone_{b}.pb", "input": bb.piece.input,
                                 "output": bb.piece.output, "checksum": bb.checksum,
                                 "weights": _weights(bb.piece, bb.names),
                                 "tasks": [t.id for t in tasks if t.backbone == b]})
    for r in routes:
        if r.kind == "stack":
            layers = r.tasks[0].head.layers
            out["stacks"].append({"index": r.index, "scope": specs.STACK_SCOPE.format(r.index), "backbone": r.backbone,
                                  "activations": [a for _, _, a in layers],
                                  "bias": [b is not None for _, b, _ in layers],
                                  "final": r.tasks[0].head.final, "tasks": [t.id for t in r.tasks]})
    for t in tasks:
        out["tasks"].append(_task_entry(t, rows[t.id]))
    return out


def next_id(tab: dict, model_dir: str) -> int:
    """The id the next task added to the version at ``model_dir`` gets: its ``tasks.json``'s ``next_id``
    (ids are never given again, not even a removed task's), or, in a ``tasks.json`` written without
    one, the highest id + 1 (0 when it lists no task); and when ``model_dir``'s name is a version number
    (``models/text/1``), at least what every other version beside it (a numbered directory holding a
    ``tasks.json``, see :func:`versions_beside`) would give by the same rule, so that a task added to an
    older version never gets an id a newer one gave another task.

    Raises:
      MergeHeadsError: a task's id is not an integer, or ``next_id`` is not an integer above every task's
        id, in ``model_dir``'s ``tasks.json`` or in one beside it; a version beside ``model_dir`` whose
        ``tasks.json`` is not readable.
    """
    why = f" (read because a new task id must differ from every id the versions beside {model_dir} gave)"
    given = [_unused_id(tab, model_dir)]
    for version in versions_beside(model_dir):
        if version == os.path.abspath(model_dir) or not os.path.isfile(os.path.join(version, files.TASKS_FILE)):
            continue
        try:
            other = files.read_tasks(version)
        except MergeHeadsError as e:
            raise MergeHeadsError(f"{e}{why}") from None
        given.append(_unused_id(other, version, why))
    return max(given)


def versions_beside(model_dir: str) -> list[str]:
    """The entries of the directory holding ``model_dir`` (``model_dir`` among them) whose names are version
    numbers (TF Serving's layout, ``models/text/1``), as absolute paths, by number; [] when ``model_dir``'s own
    name is not a version number."""
    parent, base = os.path.split(os.path.abspath(model_dir))
    if not base.isdigit():
        return []
    names = sorted((n for n in os.listdir(parent) if n.isdigit()), key=lambda n: (int(n), n))
    return [os.path.join(parent, n) for n in names]


def _unused_id(tab: dict, version: str, why: str = "") -> int:
    """The lowest id the version at ``version`` (``tab``: its ``tasks.json``) neither gave nor keeps for later:
    its ``next_id``, or without one its highest id + 1 (0 when it lists no task: it gave no id).

    Raises:
      MergeHeadsError: naming the file, ``why`` appended: a task's id is not an integer; ``next_id`` is not an
        integer above every task's id.
    """
    path = os.path.join(version, files.TASKS_FILE)
    tasks = tab.get("tasks")
    ids = [t.get("id") if isinstance(t, dict) else None for t in tasks] if isinstance(tasks, list) else [None]
    if not all(_is_int(i) for i in ids):
        raise MergeHeadsError(f"{path}: tasks without integer ids (expected a list of tasks, each with an integer id){why}")
    top = max(ids, default=-1)
    n = tab.get("next_id", top + 1)
    if not _is_int(n) or n <= top:
        want = f"above every task's id (the highest is {top})" if ids else "of 0 or more (it lists no task)"
        raise MergeHeadsError(f"{path}: next_id is {n!r}; expected an integer {want}{why}")
    return n


def _is_int(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool)


def _task_entry(t: specs.Task, where) -> dict:
    route, row = where
    h = t.head
    entry = {"id": t.id, "name": t.name, "num_classes": h.num_classes, "classes": list(t.classes),
             "source": t.source, "backbone_group": t.backbone,
             "output": "probabilities" if h.final == "softmax" else "logits", "sigmoid": h.sigmoid}
    if h.kind == "dense":
        entry["head"] = {"kind": "dense", "stack": route.index, "row": row, "in": int(h.layers[0][0].shape[0]),
                         "units": [int(k.shape[1]) for k, _, _ in h.layers], "final": h.final}
    else:
        entry["head"] = {"kind": "branch", "part": f"{files.PARTS_DIR}/task_{t.id}.pb",
                         "scope": specs.BRANCH_SCOPE.format(t.id), "input": h.piece.input, "output": h.piece.output,
                         "logits": h.logits, "final": h.final, "weights": _weights(h.piece)}
    return entry


def parts(backbones, tasks) -> dict:
    """``{file name: GraphDef bytes}`` of the pieces a version is rebuilt from."""
    out = {f"backbone_{b}.pb": bb.piece.graph_def.SerializeToString(deterministic=True)
           for b, bb in enumerate(backbones)}
    for t in tasks:
        if t.head.kind == "branch":
            out[f"task_{t.id}.pb"] = t.head.piece.graph_def.SerializeToString(deterministic=True)
    return out


def read(model_dir: str):
    """``(table, backbones, tasks, reader)`` of a version directory; heads carry their values."""
    tab = files.read_tasks(model_dir)
    reader = CheckpointReader(os.path.join(model_dir, files.VARIABLES_PREFIX))
    backbones = []
    for info in tab["backbones"]:
        p = _piece(model_dir, info["part"], info)
        backbones.append(specs.Backbone(p, {w["name"]: w["variable"] for w in info["weights"]}, info["checksum"]))
    stacks = {s["index"]: s for s in tab["stacks"]}
    layers = {}
    for s in tab["stacks"]:
        entries = {t["id"]: t for t in tab["tasks"]}
        rows = [{"in": ([entries[i]["head"]["in"]] + entries[i]["head"]["units"])[-2],
                 "num_classes": entries[i]["num_classes"]} for i in s["tasks"]]
        names = [n for n in reader.entries if n.startswith(s["scope"] + "/")]
        values = {n: reader.read(n) for n in names}
        for i, lay in zip(s["tasks"], specs.unstack(s, values, rows)):
            layers[i] = lay
    tasks = []
    for e in tab["tasks"]:
        h = e["head"]
        if h["kind"] == "dense":
            head = specs.Head("dense", e["num_classes"], stacks[h["stack"]]["final"], layers[e["id"]],
                              sigmoid=e.get("sigmoid", False))
        else:
            p = _piece(model_dir, h["part"], h)
            head = specs.Head("branch", e["num_classes"], h["final"], piece=p, logits=h["logits"],
                              values={w: reader.read(f"{h['scope']}/{w}") for w in p.weights},
                              sigmoid=e.get("sigmoid", False))
        tasks.append(specs.Task(e["id"], e["name"], e["classes"], e["source"], e["backbone_group"], head))
    return tab, backbones, tasks, reader


def _signature(inputs: dict, outputs: dict, keys) -> object:
    return predict_signature(
        inputs={k: inputs[k] for k in keys}, outputs=outputs)


def meta_graph(built):
    """The merged graph's MetaGraphDef: saver, ``serve`` tag, both signatures, graphsurgeon's
    input/output collections; placeholders nothing reads (import leftovers) are dropped."""
    with built.graph.as_default():
        sigs = {k: _signature(built.inputs, built.outputs, v) for k, v in SIGNATURES.items()}
        meta = tf1.train.export_meta_graph(graph=built.graph, saver_def=built.saver.as_saver_def(),
                                           clear_devices=True, strip_default_attrs=True)
    used = {pieces.tensor_name(i.lstrip("^")).split(":")[0] for n in meta.graph_def.node for i in n.input}
    keep = [n for n in meta.graph_def.node if n.op != "Placeholder" or n.name in used
            or n.name.startswith("serving/")]
    del meta.graph_def.node[:]
    meta.graph_def.node.extend(keep)
    kept = {n.name for n in keep}
    for n in keep:  # colocation with a dropped placeholder
        if "_class" in n.attr and any(c.decode().removeprefix("loc:@") not in kept for c in n.attr["_class"].list.s):
            del n.attr["_class"]
    meta.meta_info_def.tags.append("serve")
    for k, sig in sigs.items():
        meta.signature_def[k].CopyFrom(sig)
    meta.collection_def[INPUTS_COLLECTION].node_list.value.extend(
        [built.inputs["inputs"].name, built.inputs["task_id"].name])
    meta.collection_def[OUTPUTS_COLLECTION].node_list.value.extend(
        [built.outputs[k].name for k in ("logits", "probabilities", "classes", "num_classes")])
    return meta


def write(tmp: str, meta, backbone_shard, head_values: dict, tab: dict, part_files: dict) -> bool:
    """Fill the temporary version directory ``tmp``.

    Args:
      backbone_shard: ``{name: ndarray}`` to write as shard 0, or ``(prefix, names)`` of a previous
        version whose shard 0 is linked.
    Returns:
      True if shard 0 was hard-linked from a previous version.
    """
    prefix = os.path.join(tmp, files.VARIABLES_PREFIX)
    make_dir(os.path.dirname(prefix))
    scratch = make_dir(os.path.join(tmp, ".scratch"))
    if isinstance(backbone_shard, dict):
        files.save_bundle(os.path.join(scratch, "backbone"), backbone_shard)
        first = (os.path.join(scratch, "backbone"), 0, None)
    else:
        first = (backbone_shard[0], files.BACKBONE_SHARD, set(backbone_shard[1]))
    files.save_bundle(os.path.join(scratch, "heads"), head_values)
    linked = files.join_shards(prefix, [first, (os.path.join(scratch, "heads"), 0, None)])
    files.discard(scratch)
    files.write_bytes(os.path.join(tmp, "saved_model.pb"), files.saved_model_bytes(meta))
    files.write_bytes(prefix + ".meta", meta.SerializeToString(deterministic=True))
    files.write_bytes(os.path.join(tmp, files.TASKS_FILE), (json.dumps(tab, indent=2) + "\n").encode("utf-8"))
    for name, data in sorted(part_files.items()):
        files.write_bytes(os.path.join(tmp, files.PARTS_DIR, name), data)
    return not isinstance(backbone_shard, dict) and linked[0]


def dtypes_of(values: dict) -> dict:
    """``{name: (dtype name, shape)}`` of arrays."""
    return {n: (np.asarray(v).dtype.name, tuple(np.shape(v))) for n, v in values.items()}
