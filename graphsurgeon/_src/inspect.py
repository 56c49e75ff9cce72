"""Inspect a checkpoint or graph: variables with shape, dtype and bytes, grouped by
scope; for graphs, ops per scope and the likely input and output tensors.
Reads names, shapes, index entries and graph protos (and a TF2 checkpoint's object graph), no variable's value:
which tensors a TF2 SavedModel's serving function does not read are second copies of those it reads is told from
their index entries (see :func:`_aliases`)."""
from __future__ import annotations

import collections
import re

import tensorflow as tf

from graphsurgeon._src import guess, safety, subgraph, tf2, weights
from graphsurgeon._src.errors import ConfigError, NoMetaGraphError
from graphsurgeon._src.select import natural_key
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.objectgraph import OBJECT_GRAPH_KEY
from graphsurgeon._src.storage.paths import resolve
from graphsurgeon._src.surgery.plan import is_optimizer_state

_PART_RE = re.compile(r"/part_\d+$")


def kind_of(name: str) -> str:
    """``optimizer`` (slots, ``beta1_power``, ``global_step``), ``partition`` (``x/part_N``) or ``model``."""
    if is_optimizer_state(name):
        return "optimizer"
    if _PART_RE.search(name):
        return "partition"
    return "model"


def _check_depth(depth) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"depth={depth!r}: expected an integer >= 1 (how many name components make a scope: "
                          "1 groups hidden1/weights under hidden1)")


def inspect(path: str, *, tags=("serve",), depth: int = 1) -> dict:
    """A report on ``path`` (any form :func:`graphsurgeon._src.restore` accepts).

    Returns:
      ``{"version": 1, "path", "kind", "checkpoint", "object_graph", "variables": [{name, shape, dtype, bytes, kind}],
      "scopes": {scope: {variables, bytes, optimizer_bytes}}, "total_bytes", "graph": {...} or None}``;
      ``object_graph`` is True when the checkpoint is TF2 object-based (it holds ``_CHECKPOINTABLE_OBJECT_GRAPH``, as
      a TF2 SavedModel's does): that tensor is not a variable, so ``variables``, ``scopes`` and ``total_bytes`` leave
      it out. ``unread`` (``[{name, shape, dtype, bytes, kind}]``, ``kind`` ``optimizer``, ``alias`` or ``other``)
      holds a TF2 SavedModel's checkpoint tensors that its serving function does not read, by their keys (a Keras
      model's optimizer state, ``optimizer/_variables/1/.ATTRIBUTES/VARIABLE_VALUE``, and metrics), the object graph
      apart; an ``alias`` (Keras 3's ``model.export`` saves each variable again under ``_all_variables/N``) is a
      second copy of a variable the serving function reads, whose graph name its ``of`` gives: the SavedModel's
      object graph names it as that variable, and its checkpoint index entry has the same dtype, shape, size and
      crc32c (no variable's value is read); ``variables``, ``scopes`` and ``total_bytes`` leave them out; ``[]`` for any other
      ``path``. Scopes are the first ``depth`` components of each name; names sort naturally (``Variable_2`` before ``Variable_10``). ``graph``
      holds ``ops``, ``ops_per_scope``, ``inputs`` and ``outputs`` (the likely ones, all of them: ``[{name, dtype,
      shape}]`` and names), ``op_types`` (the 15 most common, with their counts), ``unsafe_ops`` (``[{name, op}]``,
      see :func:`graphsurgeon._src.safety.unsafe_ops`) and ``signatures`` (a SavedModel's or meta graph's: ``{key:
      {method, inputs: {k: {name, dtype, shape}}, outputs}}``) and ``weight_constants`` (``[{name, shape, dtype,
      consumers}]``, see :mod:`graphsurgeon._src.weights`: what ``thaw`` can turn into variables). A TF2 SavedModel
      is reported as restore flattens it: its variables under their graph names, its graph with the functions
      inlined.

    Raises:
      ConfigError: ``depth`` is not an integer >= 1.
    """
    _check_depth(depth)
    source = resolve(path, tags)
    flat = tf2.read_meta_graph(source) if source.kind == "tf2_saved_model" else None
    object_graph, variables, unread = _variables(source, flat)
    report = {"version": 1, "path": path, "kind": source.kind, "checkpoint": source.prefix,
              "object_graph": object_graph, "variables": variables, "unread": unread, "scopes": {}, "total_bytes": 0,
              "graph": None}
    report["scopes"], report["total_bytes"] = _scopes(variables, depth), sum(v["bytes"] for v in variables)
    try:
        meta = flat if flat is not None else tf2.read_meta_graph(source)
    except NoMetaGraphError:
        meta = None
    if meta is not None:
        gd = meta.graph_def
        ops = collections.Counter("/".join(n.name.split("/")[:depth]) if "/" in n.name else "(root)" for n in gd.node)
        report["graph"] = {
            "ops": len(gd.node),
            "ops_per_scope": dict(sorted(ops.items(), key=lambda kv: natural_key(kv[0]))),
            "inputs": [_input(gd, t) for t in guess.likely_inputs(gd)],
            "outputs": guess.likely_outputs(gd),
            "op_types": dict(collections.Counter(n.op for n in gd.node).most_common(15)),
            "unsafe_ops": [{"name": n, "op": op} for n, op in safety.unsafe_ops(meta)],
            "signatures": {k: _signature(meta.signature_def[k]) for k in sorted(meta.signature_def)},
            "weight_constants": [{"name": k, **v} for k, v in weights.weight_constants(gd).items()],
        }
        if not source.prefix:
            vdefs = subgraph.variable_defs(meta)
            report["graph"]["variables"] = sorted(vdefs, key=natural_key)
    return report


def _scopes(variables: list, depth: int) -> dict:
    """``{scope: {variables, bytes, optimizer_bytes}}`` of ``variables``, scopes sorted naturally."""
    scopes = {}
    for v in variables:
        s = scopes.setdefault("/".join(v["name"].split("/")[:depth]), {"variables": 0, "bytes": 0, "optimizer_bytes": 0})
        s["variables"] += 1
        s["bytes"] += v["bytes"]
        if v["kind"] == "optimizer":
            s["optimizer_bytes"] += v["bytes"]
    return dict(sorted(scopes.items(), key=lambda kv: natural_key(kv[0])))


def _variables(source, flat) -> tuple[bool, list, list]:
    """``(object_graph, variables, unread)`` of ``source``'s checkpoint as ``[{name, shape, dtype, bytes, kind}]``,
    the object graph of a TF2 checkpoint left out of both (a TF2 SavedModel's: its variables by their graph
    names, and in ``unread`` by their keys the tensors its serving function does not read)."""
    if not source.prefix:
        return False, [], []
    served = tf2.values(source, tf2.handle_variables(flat.graph_def)) if flat is not None else None
    reader = served.reader if served is not None else CheckpointReader(source.prefix)  # one read of the index
    entries = dict(reader.entries)
    object_graph = entries.pop(OBJECT_GRAPH_KEY, None) is not None
    unread = []
    if served is not None:
        read = {served.key(name) for name in served.entries}
        unread = _listed([e for key, e in entries.items() if key not in read],
                         lambda name: "optimizer" if is_optimizer_state(name) else "other")
        for v, of in zip(unread, _aliases(reader.index, [v["name"] for v in unread], served)):
            if of is not None:
                v.update(kind="alias", of=of)
        entries = served.entries
    return object_graph, _listed(entries.values(), kind_of), unread


def _aliases(index, keys: list, served) -> list:
    """For each of ``keys`` (tensors the serving function does not read), the graph name of the variable it is
    a second copy of, or None: the SavedModel's object graph gives it the name of a variable the serving function
    reads (``served.object_names``), and its entry in the checkpoint's ``index`` (``(header, {key:
    BundleEntryProto})``, :attr:`CheckpointReader.index`) has that variable's dtype, shape, size and crc32c (Keras
    3's ``model.export`` saves each variable twice, the second time under ``_all_variables/N``). No value is read;
    all None for a V1 checkpoint (``index`` None)."""
    if index is None:
        return [None] * len(keys)
    entries, name_of = index[1], served.object_names
    read = {}
    for graph_name in served.entries:
        read.setdefault(name_of.get(served.key(graph_name)), []).append(graph_name)
    out = []
    for key in keys:
        candidates = read.get(name_of[key], []) if key in name_of else []
        out.append(next((g for g in candidates if _same_entry(entries[key], entries[served.key(g)])), None))
    return out


def _same_entry(a, b) -> bool:
    """Index entries ``a`` and ``b`` declare the same dtype, shape, size and crc32c."""
    return a.dtype == b.dtype and a.shape == b.shape and a.size == b.size and a.crc32c == b.crc32c


def _listed(entries, kind) -> list:
    return [{"name": e.name, "shape": list(e.shape), "dtype": e.dtype.name, "bytes": e.nbytes, "kind": kind(e.name)}
            for e in sorted(entries, key=lambda e: natural_key(e.name))]


def _signature(sig) -> dict:
    """A SignatureDef as ``{method, inputs: {key: {name, dtype, shape}}, outputs: {...}}``."""
    def info(t):
        shape = None if t.tensor_shape.unknown_rank else [d.size if d.size >= 0 else None for d in t.tensor_shape.dim]
        return {"name": t.name, "dtype": tf.as_dtype(t.dtype).name if t.dtype else None, "shape": shape}

    return {"method": sig.method_name, "inputs": {k: info(sig.inputs[k]) for k in sorted(sig.inputs)},
            "outputs": {k: info(sig.outputs[k]) for k in sorted(sig.outputs)}}


def _input(graph_def, tensor: str) -> dict:
    """``{name, dtype, shape}`` of an input tensor: a placeholder's declared shape (TF <= 1.1's
    ``_output_shapes`` where that is the only record), or a pipeline op's recorded output shape."""
    op, _, idx = tensor.partition(":")
    node = next(n for n in graph_def.node if n.name == op)
    k = int(idx or 0)
    if node.op == "Placeholder":
        return {"name": tensor, "dtype": tf.as_dtype(node.attr["dtype"].type).name,
                "shape": subgraph.placeholder_shape(node, graph_def.versions.producer)}
    types = node.attr["component_types"].list.type or node.attr["output_types"].list.type
    dtype = tf.as_dtype(types[k]).name if k < len(types) else None
    shapes = node.attr["_output_shapes"].list.shape if "_output_shapes" in node.attr else []
    shape = None
    if k < len(shapes) and not shapes[k].unknown_rank:
        shape = [d.size if d.size >= 0 else None for d in shapes[k].dim]
    return {"name": tensor, "dtype": dtype, "shape": shape}
