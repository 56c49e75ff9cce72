"""LwF's recorded responses: what the old heads answer on the new task's inputs, stored as a
bottleneck cache in format 2 (``.npy`` shards with their content keys, the data set's index and
``manifest.json``; :mod:`graphsurgeon._src.storage.cachefiles`), written with the cache's own
phases (:func:`~graphsurgeon._src.cache.plan.make_plan`, :func:`~graphsurgeon._src.cache.commit.commit`)
and read back with :class:`graphsurgeon._src.cache.CacheReader`.

The cached tensor is the old heads' logits side by side (``manifest["tasks"]`` says which columns
belong to which task). Rows are keyed by content (the sha256 of each input row), so a second run
over the same data computes nothing and new examples compute only themselves. The fingerprint is
the backbone piece's GraphDef, the sha256 of the backbone's and the old heads' weights, and the
tasks; a cache with another fingerprint is refused, and so is one whose shards or keys no longer
match their checksums.
"""
from __future__ import annotations

import hashlib

import numpy as np

from graphsurgeon._src.cache import CacheReader
from graphsurgeon._src.cache.commit import commit, final_manifest
from graphsurgeon._src.cache.compute import task_inputs
from graphsurgeon._src.cache.plan import Known, make_plan
from graphsurgeon._src.cache.state import interim_manifest
from graphsurgeon._src.continual.graph import TrainGraph
from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage import cachefiles, cacheshards, files, records
from graphsurgeon._src.storage.state_files import fingerprint as values_fingerprint

TENSOR = "lwf/old_logits:0"
SHARD_ROWS = 4096
PREPROCESSING = {"source": "arrays"}


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
            "tensor": TENSOR, "input": net.backbone.input, "feeds": {},
            "tasks": [[t.name, t.head.num_classes] for t in tasks]}


def header(fp: dict) -> dict:
    """The cache header of responses with fingerprint ``fp`` (float32 logits of ``fp["tasks"]``)."""
    return {"version": cachefiles.VERSION, "fingerprint": fp, "tensor_dtype": "float32",
            "shape": [sum(n for _, n in fp["tasks"])], "preprocessing": PREPROCESSING, "dtype": "float32",
            "augment": None, "tasks": fp["tasks"]}


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


def record(net, tasks: list, x: np.ndarray, directory: str, *, progress: bool = True) -> dict:
    """``{task name: logits [len(x), classes]}`` of ``tasks``' heads (on ``net``'s backbone) for the
    examples ``x``, read from the cache in ``directory`` and computed into it where missing.

    Side effects: creates ``directory``; removes temporary files an interrupted run left there and
    files of the cache's own name patterns its manifest does not list.

    Raises:
      CacheError: ``directory`` holds a cache with another fingerprint, a damaged manifest, or a
        shard or keys file that does not match its checksum.
    """
    widths = [t.head.num_classes for t in tasks]
    if not len(x):
        return {t.name: np.zeros((0, w), np.float32) for t, w in zip(tasks, widths)}
    head = header(fingerprint(net, tasks))
    source = records.RecordSource("npz", records.content_keys(x), np.zeros(len(x), np.int64),
                                  np.full(len(x), records.SPLIT_CODES["train"], np.uint8), None, PREPROCESSING,
                                  {"kind": "arrays"}, {"kind": "npz"}, _loader=records.Loader("npz", array=x))
    files.make_dir(directory)
    with cachefiles.lock(directory):
        entries = _stored(directory, head)
        known = Known([cacheshards.read_keys(directory, e) for e in entries], [e["shard"] for e in entries])
        plan = make_plan(source, 0, known, SHARD_ROWS, max((e["shard"] for e in entries), default=-1) + 1)
        entries += _compute_shards(net, tasks, source, plan, directory, head, entries, progress)
        commit(directory, final_manifest(directory, head, entries, plan, source, 0))
        with CacheReader(directory) as reader:
            rows = reader.read(np.arange(len(x)))
    edges = np.cumsum([0] + widths)
    return {t.name: rows[:, edges[i]:edges[i + 1]] for i, t in enumerate(tasks)}


def _stored(directory: str, head: dict) -> list:
    """The shard entries of the responses already in ``directory`` (checked in full)."""
    cachefiles.remove_leftovers(directory)
    previous = cachefiles.read_manifest(directory)
    if previous is None:
        cachefiles.remove_unreferenced(directory, {"shards": []})
        return []
    if any(previous.get(k) != v for k, v in head.items()):
        raise CacheError(f"{directory} holds responses recorded from another model or other heads; it is not "
                         "reused: choose another cache= directory")
    cachefiles.remove_unreferenced(directory, previous)
    bad = cacheshards.check_shards(directory, previous["shards"], previous["dtype"], previous["shape"])
    if bad:
        raise CacheError(f"{directory}: {cacheshards.describe_bad(bad)}; delete the cache")
    return list(previous["shards"])


def _compute_shards(net, tasks, source, plan, directory, head, entries, progress) -> list:
    """Compute the plan's rows (all in one pass, batched from the first) and write them as its
    shards, the manifest listing each as it is written."""
    if not plan.tasks:
        return []
    x = source.load(np.concatenate([t.examples for t in plan.tasks]))
    values, new, at = _compute(net, tasks, x, progress), [], 0
    for task in plan.tasks:
        rows, at = values[at:at + len(task)], at + len(task)
        new.append(cacheshards.write_shard(directory, task.shard, rows, task_inputs(source, task).keys_record()))
        cachefiles.write_manifest(directory, interim_manifest(head, entries + new, None))
    return new
