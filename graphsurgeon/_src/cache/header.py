"""What cached activations depend on, and what changed between two caches' settings.

A cache's *header* (the part of its manifest that decides whether its rows can be reused):

* ``fingerprint`` — the frozen subgraph's GraphDef (sha256), the sha256 of every variable value
  it reads, the tensor and input names, and every feed (``keep_prob``, ``is_training``, any
  placeholder value): dtype, shape and sha256 of the value as fed;
* ``tensor_dtype`` and ``shape`` — the cached tensor's dtype and static shape in the model;
* ``preprocessing`` — how a record becomes an input (image size, pixel scale, TFRecord features);
* ``dtype`` — how rows are stored (float32 or float16);
* ``augment`` — the distortion settings and seed of the distorted copies, once any were made.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from graphsurgeon._src import subgraph
from graphsurgeon._src.mixins import listed
from graphsurgeon._src.storage import cachefiles


def fingerprint(model, cut: str, input_name: str, feeds: dict) -> dict:
    """The fingerprint of the tensor ``cut`` computed from ``input_name`` with placeholder values
    ``feeds`` (the cut's name is stored under the key ``tensor``, as caches have always stored it)."""
    gd = subgraph.extract_sub_graph(model.graph.as_graph_def(), [cut])
    for n in gd.node:  # placement does not change values
        n.device = ""
    var_ops = sorted(n.name for n in gd.node if n.op in subgraph.VARIABLE_OPS)
    # Restored variables hold exactly the checkpoint's bytes: hash those (no session run, which on a
    # large graph costs a Grappler pass); anything else is read from the session.
    from_ckpt = {n: model.checkpoint_names[n] for n in var_ops
                 if n in model.checkpoint_names and model.status.get(n) == "restored" and model.reader is not None}
    others = [n for n in var_ops if n not in from_ckpt]
    values = model.values(others) if others else {}

    def digest(n):
        v = model.reader.read(from_ckpt[n]) if n in from_ckpt else values[n]
        return hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()

    return {
        "graph": hashlib.sha256(gd.SerializeToString(deterministic=True)).hexdigest(),
        "variables": {n: digest(n) for n in var_ops},
        "tensor": model.tensor(cut).name,
        "input": input_name,
        "feeds": {n: feed_digest(model, n, v) for n, v in sorted(feeds.items())},
    }


def feed_digest(model, name: str, value) -> dict:
    """``{dtype, shape, sha256[, value]}`` of ``value`` as placeholder ``name`` receives it (cast to
    its dtype; the value itself is kept when it has at most four elements, for messages)."""
    t = model.tensor(name)
    v = np.asarray(value)
    if t.dtype.is_numpy_compatible and np.dtype(t.dtype.as_numpy_dtype).kind in "biuf":
        v = v.astype(t.dtype.as_numpy_dtype)
        raw = np.ascontiguousarray(v).tobytes()
    else:  # strings: their text
        raw = json.dumps(np.asarray(v, str).tolist()).encode()
    out = {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": hashlib.sha256(raw).hexdigest()}
    if v.size <= 4 and v.dtype.kind in "biuf":
        out["value"] = v.tolist()
    return out


def header(fp: dict, cut, preprocessing: dict, dtype: str, augment: dict | None) -> dict:
    """The header of a cache of ``cut`` (the ``tf.Tensor`` at the cut) with fingerprint ``fp``."""
    return {"version": cachefiles.VERSION, "fingerprint": fp, "tensor_dtype": cut.dtype.base_dtype.name,
            "shape": [int(d) if d is not None else None for d in cut.shape.as_list()[1:]],
            "preprocessing": preprocessing, "dtype": dtype, "augment": augment}


def differences(old: dict, new: dict, keys=("tensor_dtype", "shape", "preprocessing", "dtype")) -> list[str]:
    """What differs between two headers, one phrase each (``feed keep_prob 1.0 -> 0.5``)."""
    out = []
    ofp, nfp = old["fingerprint"], new["fingerprint"]
    for key, word in (("tensor", "cut"), ("input", "input")):  # the manifest's key for the cut is "tensor"
        if ofp[key] != nfp[key]:
            out.append(f"{word} {ofp[key]} -> {nfp[key]}")
    for name in sorted(set(ofp["feeds"]) | set(nfp["feeds"])):
        a, b = ofp["feeds"].get(name), nfp["feeds"].get(name)
        if a != b:
            out.append(f"feed {name} {_shown(a)} -> {_shown(b)}")
    changed = sorted(n for n in set(ofp["variables"]) | set(nfp["variables"])
                     if ofp["variables"].get(n) != nfp["variables"].get(n))
    if changed:
        out.append(f"values of frozen {listed('variable', changed, 5)}")
    if ofp["graph"] != nfp["graph"] and not changed:
        out.append("the frozen subgraph's ops")
    for key in keys:
        if old.get(key) != new.get(key):
            out.append(f"{key} {old.get(key)} -> {new.get(key)}")
    return out


def _shown(d: dict | None) -> str:
    if d is None:
        return "(not fed)"
    if "value" in d:
        return json.dumps(d["value"])
    return f"{d['dtype']}{d['shape']} sha256 {d['sha256'][:12]}"


def augment_differences(old: dict | None, new: dict | None) -> list[str]:
    """How two distortion settings differ (``seed 5 -> 6``); nothing if either is None."""
    if old is None or new is None:
        return []
    return [f"{k} {old.get(k)} -> {new.get(k)}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
