"""Read-only queries and pruning on graph protos (no session, no disk).

A *view* of a model is defined by the tensors it must compute; everything
else (old heads, training ops, the Saver, other copies of the net left in the
graph by re-run notebook cells) is pruned with ``extract_sub_graph`` and the
MetaGraphDef's collections are filtered to what remains, so
``import_meta_graph`` recreates exactly the kept variables.
"""
from __future__ import annotations

import collections

import tensorflow as tf
from tensorflow.core.framework import graph_pb2, variable_pb2
from tensorflow.core.protobuf import control_flow_pb2, meta_graph_pb2

from graphsurgeon._src.select import normalize_name

tf1 = tf.compat.v1

VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp", "AutoReloadVariable"})
_VARIABLE_COLLECTIONS = frozenset({
    tf1.GraphKeys.GLOBAL_VARIABLES, tf1.GraphKeys.TRAINABLE_VARIABLES, tf1.GraphKeys.LOCAL_VARIABLES,
    tf1.GraphKeys.MODEL_VARIABLES, tf1.GraphKeys.MOVING_AVERAGE_VARIABLES, tf1.GraphKeys.METRIC_VARIABLES,
})
_CONTEXT_COLLECTIONS = {"while_context": control_flow_pb2.WhileContextDef, "cond_context": control_flow_pb2.CondContextDef}
def node_name(name: str) -> str:
    """``'^a'``, ``'a:1'``, ``'a'`` -> ``'a'``."""
    return normalize_name(name.lstrip("^"))


def upstream(graph_def, names, by_name=None, *, name_of=node_name) -> set[str]:
    """Names of the nodes ``names`` depend on (inputs and control inputs), themselves included.
    ``by_name`` ({name: node}) may stand for ``graph_def`` (a function body's nodes, whose inputs
    ``name_of`` turns into node names)."""
    by_name = {n.name: n for n in graph_def.node} if by_name is None else by_name
    seen, stack = set(), [name_of(n) for n in names]
    while stack:
        n = stack.pop()
        if n in seen or n not in by_name:
            continue
        seen.add(n)
        stack.extend(name_of(i) for i in by_name[n].input)
    return seen


def _loop_boundary(ctx) -> set[str]:
    """Enter and Exit ops of a while context and of every loop nested in it."""
    out = {node_name(n) for n in list(ctx.loop_exit_names) + list(ctx.loop_enter_names)}
    for nested in ctx.nested_contexts:
        if nested.WhichOneof("ctxt") == "while_ctxt":
            out |= _loop_boundary(nested.while_ctxt)
    return out


def extract_sub_graph(graph_def, names):
    """A GraphDef with the nodes ``names`` need (in their original order), plus the
    function library and versions; ``graph_def`` is not changed."""
    keep = upstream(graph_def, names)
    out = type(graph_def)()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    out.node.extend(n for n in graph_def.node if n.name in keep)
    return out


def variable_defs(meta: meta_graph_pb2.MetaGraphDef) -> dict[str, variable_pb2.VariableDef]:
    """``{variable name: VariableDef}`` from the global (and local) variable collections."""
    out = {}
    for key in (tf1.GraphKeys.GLOBAL_VARIABLES, tf1.GraphKeys.LOCAL_VARIABLES):
        if key in meta.collection_def:
            for raw in meta.collection_def[key].bytes_list.value:
                vd = variable_pb2.VariableDef()
                vd.ParseFromString(raw)
                out[normalize_name(vd.variable_name)] = vd
    return out


def _variable_nodes(vd: variable_pb2.VariableDef) -> list[str]:
    names = [vd.variable_name, vd.initializer_name, vd.snapshot_name]
    return [node_name(n) for n in names if n]


def prune_meta_graph(meta: meta_graph_pb2.MetaGraphDef, outputs, *, extra_nodes=(), keep_update_ops: bool = True,
                     keep_variables=None) -> meta_graph_pb2.MetaGraphDef:
    """A copy of ``meta`` holding only what computes ``outputs``.

    Variables upstream of ``outputs`` (plus ``keep_variables``) are kept with
    their initializer and read ops; batch-norm ``UPDATE_OPS`` of kept variables
    are kept when ``keep_update_ops``. Collections are filtered to what remains;
    signatures are dropped; the old ``saver_def`` is kept but names pruned ops, so the Saver
    ``import_meta_graph`` returns for it must not be used. ``meta`` is not changed.
    """
    gd = meta.graph_def
    wanted = upstream(gd, list(outputs) + list(extra_nodes))
    vdefs = variable_defs(meta)
    kept_vars = {n for n, vd in vdefs.items() if node_name(vd.variable_name) in wanted}
    kept_vars |= {normalize_name(v) for v in (keep_variables or ()) if normalize_name(v) in vdefs}
    dest = set(wanted)
    for n in kept_vars:
        dest.update(_variable_nodes(vdefs[n]))
    if keep_update_ops and tf1.GraphKeys.UPDATE_OPS in meta.collection_def:
        by_name = {n.name: n for n in gd.node}
        var_of_op = {node_name(vd.variable_name): v for v, vd in vdefs.items()}
        for u in meta.collection_def[tf1.GraphKeys.UPDATE_OPS].node_list.value:
            u = node_name(u)
            if u not in by_name:
                continue
            # An update op belongs to the kept model if every variable it touches is kept.
            touched = {var_of_op[o] for o in upstream(gd, [u], by_name) if o in var_of_op}
            if touched and touched <= kept_vars:
                dest.add(u)
    # A kept TF 1.x while loop keeps all its Enter and Exit ops: import_meta_graph rebuilds
    # the WhileContext from the collection and needs every one it names.
    if "while_context" in meta.collection_def:
        reached = upstream(gd, dest)
        for raw in meta.collection_def["while_context"].bytes_list.value:
            ctx = control_flow_pb2.WhileContextDef()
            ctx.ParseFromString(raw)
            if node_name(ctx.pivot_name) in reached:
                dest.update(_loop_boundary(ctx))
    pruned_gd = extract_sub_graph(gd, dest)
    out = meta_graph_pb2.MetaGraphDef()
    out.meta_info_def.CopyFrom(meta.meta_info_def)
    out.graph_def.CopyFrom(pruned_gd)
    if meta.HasField("saver_def"):
        # Kept so that import_meta_graph does not build a new Saver over every variable
        # (a third of the import time on inception_v3); the Saver it returns is never used.
        out.saver_def.CopyFrom(meta.saver_def)
    _filter_collections(meta, out, {n.name for n in pruned_gd.node}, kept_vars)
    return out


def _filter_collections(src, dst, present: set[str], kept_vars: set[str]) -> None:
    for key, col in src.collection_def.items():
        kind = col.WhichOneof("kind")
        if kind == "node_list":
            vals = [v for v in col.node_list.value if node_name(v) in present]
            if vals:
                dst.collection_def[key].node_list.value.extend(vals)
        elif kind == "bytes_list" and key in _VARIABLE_COLLECTIONS:
            vals = []
            for raw in col.bytes_list.value:
                vd = variable_pb2.VariableDef()
                vd.ParseFromString(raw)
                if normalize_name(vd.variable_name) in kept_vars:
                    vals.append(raw)
            if vals:
                dst.collection_def[key].bytes_list.value.extend(vals)
        elif kind == "bytes_list" and key in _CONTEXT_COLLECTIONS:
            vals = []
            for raw in col.bytes_list.value:
                ctx = _CONTEXT_COLLECTIONS[key]()
                ctx.ParseFromString(raw)
                if prune_context(ctx, present):
                    vals.append(ctx.SerializeToString(deterministic=True))
            if vals:
                dst.collection_def[key].bytes_list.value.extend(vals)
        elif kind in ("int64_list", "float_list"):
            dst.collection_def[key].CopyFrom(col)
        # Other bytes collections (savers, summaries' protos, queue runners) name
        # ops that were pruned; they are dropped.


def _context_required(ctx) -> list[str]:
    """Names ``import_meta_graph`` looks up to rebuild a control-flow context."""
    if isinstance(ctx, control_flow_pb2.WhileContextDef):
        names = [ctx.pivot_name, ctx.pivot_for_pred_name, ctx.pivot_for_body_name,
                 *ctx.loop_exit_names, *ctx.loop_enter_names]
        if ctx.maximum_iterations_name:
            names.append(ctx.maximum_iterations_name)
        return names
    return [ctx.pred_name, ctx.pivot_name]


def prune_context(ctx, present: set[str]) -> bool:
    """Make a ``WhileContextDef`` / ``CondContextDef`` consistent with the nodes in ``present``.

    Values (and external values) that name pruned ops are removed, nested contexts are pruned
    the same way, and a nested context whose pivot, predicate, enters or exits are gone is
    removed. ``ctx`` is changed in place.

    Returns:
      False if the context itself cannot be rebuilt (a name it needs is pruned or empty): the
      caller drops it.
    """
    if not all(n and node_name(n) in present for n in _context_required(ctx)):
        return False
    values = ctx.values_def
    external = {k: v for k, v in values.external_values.items()
                if node_name(k) in present and node_name(v) in present}
    kept = sorted(v for v in values.values if node_name(v) in present)
    values.ClearField("values")
    values.values.extend(kept)
    values.ClearField("external_values")
    for k in sorted(external):
        values.external_values[k] = external[k]
    nested = []
    for n in ctx.nested_contexts:
        inner = n.while_ctxt if n.WhichOneof("ctxt") == "while_ctxt" else n.cond_ctxt
        if prune_context(inner, present):
            nested.append(n)
    del ctx.nested_contexts[:]
    ctx.nested_contexts.extend(nested)
    return True


def placeholders(graph_def) -> list:
    """The ``Placeholder`` nodes of ``graph_def`` (not ``PlaceholderWithDefault``)."""
    return [n for n in graph_def.node if n.op == "Placeholder"]


# The last GraphDef producer version (TensorFlow <= 1.1) whose empty placeholder ``shape`` attr means
# an unknown shape; later versions write that as ``unknown_rank`` and read an empty one as a scalar.
LEGACY_PRODUCER = 21


def placeholder_shape(node, producer: int):
    """A placeholder's static shape as a list (None for unknown dimensions), or None if its rank is
    unknown. TF <= 1.1 graphs (``producer``, the GraphDef's ``versions.producer``, <= 21) store an
    unknown shape as an empty ``shape`` attr, the real one at most in ``_output_shapes``: that one is
    used when the ``shape`` attr says nothing, and without it the shape is unknown (a scalar's is
    ``[]``, in a later graph)."""
    shape = node.attr["shape"].shape if "shape" in node.attr else None
    legacy = shape is None or (not shape.unknown_rank and not shape.dim)
    if legacy and "_output_shapes" in node.attr and node.attr["_output_shapes"].list.shape:
        shape = node.attr["_output_shapes"].list.shape[0]
    elif legacy and producer <= LEGACY_PRODUCER:
        return None
    if shape is None or shape.unknown_rank:
        return None
    return [d.size if d.size >= 0 else None for d in shape.dim]


def fix_legacy_placeholder_shapes(graph_def) -> list[str]:
    """Give placeholders whose shape lives only in ``_output_shapes`` (TF <= 1.1) that shape, so
    that TensorFlow 2 sees ``[None, 32, 32, 1]`` instead of an unknown or scalar shape. Changes
    ``graph_def`` in place; returns the names of the placeholders changed, sorted."""
    changed = []
    for n in graph_def.node:
        if n.op != "Placeholder":
            continue
        shape = n.attr["shape"].shape if "shape" in n.attr else None
        if shape is not None and (shape.unknown_rank or shape.dim):
            continue
        dims = placeholder_shape(n, graph_def.versions.producer)
        if dims is None or not dims:
            continue
        n.attr["shape"].shape.CopyFrom(tf.TensorShape(dims).as_proto())
        changed.append(n.name)
    return sorted(changed)


def loop_nodes(graph_def) -> set[str]:
    """Names of nodes inside a TF 1.x while loop's frame (reachable from an ``Enter`` without
    passing an ``Exit``): their outputs cannot be fetched from outside the loop."""
    consumers = collections.defaultdict(list)
    for n in graph_def.node:
        for i in n.input:
            consumers[node_name(i)].append(n)
    inside, stack = set(), [n.name for n in graph_def.node if n.op in ("Enter", "RefEnter")]
    while stack:
        name = stack.pop()
        if name in inside:
            continue
        inside.add(name)
        for c in consumers[name]:
            if c.op not in ("Exit", "RefExit") and c.name not in inside:
                stack.append(c.name)
    return inside


def replace_with_placeholder(graph_def, tensor: str, dtype: tf.DType, shape) -> str:
    """Make ``tensor`` a placeholder: its readers read a new ``Placeholder`` of ``dtype`` and
    ``shape`` instead (output 0 of an op whose other outputs nothing reads becomes a placeholder
    of the same name). Changes ``graph_def`` in place.

    Returns:
      The placeholder's tensor name.
    """
    op, _, idx = tensor.partition(":")
    k = int(idx or 0)
    by_name = {n.name: n for n in graph_def.node}
    node = by_name[op]
    if node.op == "Placeholder":
        return f"{op}:0"
    reads = {i.partition(":")[2] or "0" for n in graph_def.node for i in n.input
             if not i.startswith("^") and i.partition(":")[0] == op}
    if k == 0 and reads <= {"0"}:
        name = op
        node.Clear()
        node.name, node.op = name, "Placeholder"
    else:
        name, j = f"{op}_output{k}", 0
        while name in by_name:
            j += 1
            name = f"{op}_output{k}_{j}"
        node = graph_def.node.add()
        node.name, node.op = name, "Placeholder"
        targets = {f"{op}:{k}"} | ({op} if k == 0 else set())
        for n in graph_def.node:
            for i, inp in enumerate(n.input):
                if inp in targets:
                    n.input[i] = name
    node.attr["dtype"].type = tf.as_dtype(dtype).as_datatype_enum
    node.attr["shape"].shape.CopyFrom(tf.TensorShape(shape).as_proto())
    return f"{name}:0"


def without_nodes(graph_def, names) -> graph_pb2.GraphDef:
    """A copy of ``graph_def`` (its versions and function library too) without the nodes ``names``;
    control inputs naming them are dropped, data inputs from them are kept (to be mapped on import)."""
    names = set(names)
    rest = graph_pb2.GraphDef()
    rest.versions.CopyFrom(graph_def.versions)
    rest.library.CopyFrom(graph_def.library)
    for n in graph_def.node:
        if n.name not in names:
            node = rest.node.add()
            node.CopyFrom(n)
            node.ClearField("input")
            node.input.extend(i for i in n.input if not (i.startswith("^") and i[1:] in names))
    return rest
