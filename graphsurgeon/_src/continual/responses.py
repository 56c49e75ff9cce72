"""LwF's recorded responses: what the old heads answer on the new task's inputs, stored as a
bottleneck cache (``.npy`` shards, shard indexes and ``manifest.json``, the format
:class:`graphsurgeon._src.cache.CacheReader` reads).

The cached tensor is the old heads' logits side by side (``manifest["tasks"]`` says which columns
belong to which task). Examples are keyed by content (the data's keys), so a second run over the
same data computes nothing and new examples compute only themselves. The fingerprint is the
backbone piece's GraphDef, the sha256 of the backbone's and the old heads' weights, and the tasks;
a cache with another fingerprint is refused.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from graphsurgeon._src.continual.graph import TrainGraph
from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage import files, responsefiles
from graphsurgeon._src.storage.state_files import fingerprint as values_fingerprint

TENSOR = "lwf/old_logits:0"
SHARD_ROWS = 4096


def fingerprint(net, tasks) -> dict:
    heads = {}
    for t in tasks:
        h = t.head
        layers = h.layers if h.kind == "dense" else sorted(h.values.items())
        for i, item in enumerate(layers):
            for j, v in enumerate(item):
                if isinstance(v, np.ndarray):
                    heads[f"{t.name}/{i}/{j}"] = v
    return {"graph": hashlib.sha256(net.backbone.graph_def.SerializeToString(deterministic=True)).hexdigest(),
            "variables": {"backbone": net.fingerprint, "heads": values_fingerprint(heads)},
            "tensor": TENSOR, "input": net.backbone.input,
            "tasks": [[t.name, t.head.num_classes] for t in tasks]}


def _compute(net, tasks, x: np.ndarray, progress: bool, batch_size: int = 256) -> np.ndarray:
    tg = TrainGraph()
    with tg.graph.as_default():
        bound = {w: tg.new(f"backbone/{w}", v) for w, v in net.values.items()}
        xin = tg.placeholder(net.backbone, "x")
        feats = tg.backbone(net.backbone, xin, bound, "backbone_graph")
        logits = [tg.logits(t, feats) for t in tasks]
    tg.start()
    out, bar = [], Progress(len(x), "recording old heads", "examples", enabled=progress)
    try:
        for i in range(0, len(x), batch_size):
            out.append(np.concatenate(tg.session.run(logits, {xin: x[i:i + batch_size]}), axis=1))
            bar.update(len(x[i:i + batch_size]))
    finally:
        bar.close()
        tg.close()
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, sum(t.head.num_classes for t in tasks)))


def record(net, tasks: list, x: np.ndarray, keys: list, directory: str, *, progress: bool = True) -> dict:
    """``{task name: logits [len(x), classes]}`` of ``tasks``' heads (on ``net``'s backbone) for the
    examples ``x`` (content keys ``keys``), read from the cache in ``directory`` and computed into
    it where missing.

    Raises:
      CacheError: ``directory`` holds a cache with another fingerprint, or a damaged shard.
    """
    fp = fingerprint(net, tasks)
    files.make_dir(directory)
    responsefiles.remove_leftovers(directory)
    manifest = responsefiles.read_manifest(directory)
    widths = [t.head.num_classes for t in tasks]
    if manifest is None:
        manifest = {"version": responsefiles.VERSION, "fingerprint": fp, "preprocessing": {"source": "arrays"},
                    "dtype": "float32", "shape": [sum(widths)], "classes": None, "augment": None, "shards": [],
                    "tasks": fp["tasks"]}
    elif manifest.get("fingerprint") != fp:
        raise CacheError(f"{directory} holds responses recorded from another model or other heads; it is not "
                         "reused: choose another cache= directory")
    bad = responsefiles.check_shards(directory, manifest["shards"])
    if bad:
        raise CacheError(f"{directory}: shard(s) {', '.join(bad)} do not match their checksums; delete the cache")
    where = {}
    for e in manifest["shards"]:
        for r, k in enumerate(responsefiles.read_index(directory, e)["key"]):
            where[k] = (e["file"], r)
    missing = list(dict.fromkeys(k for k in keys if k not in where))
    if missing:
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        values = _compute(net, tasks, x[[first[k] for k in missing]], progress)
        for s0 in range(0, len(missing), SHARD_ROWS):
            chunk = missing[s0:s0 + SHARD_ROWS]
            index = max((int(s["file"][6:11]) for s in manifest["shards"]), default=-1) + 1
            cols = {"key": chunk, "aug": [0] * len(chunk), "label": [0] * len(chunk), "split": ["train"] * len(chunk),
                    "source": [""] * len(chunk)}
            entry = responsefiles.write_shard(directory, index, values[s0:s0 + len(chunk)], cols)
            manifest["shards"].append(entry)
            responsefiles.write_manifest(directory, manifest)
            for r, k in enumerate(chunk):
                where[k] = (entry["file"], r)
    elif not os.path.exists(os.path.join(directory, responsefiles.MANIFEST)):
        responsefiles.write_manifest(directory, manifest)
    return _read(directory, keys, where, tasks, widths)


def _read(directory, keys, where, tasks, widths) -> dict:
    rows = np.zeros((len(keys), sum(widths)), np.float32)
    by_file = {}
    for i, k in enumerate(keys):
        f, r = where[k]
        by_file.setdefault(f, ([], []))
        by_file[f][0].append(i)
        by_file[f][1].append(r)
    for f, (dst, src) in by_file.items():
        rows[dst] = responsefiles.ShardFile(os.path.join(directory, f)).rows(np.array(src))
    edges = np.cumsum([0] + widths)
    return {t.name: rows[:, edges[i]:edges[i + 1]] for i, t in enumerate(tasks)}
