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
from tensorflow.core.framework import variable_pb2
from tensorflow.core.protobuf import control_flow_pb2, meta_graph_pb2

from graphsurgeon.select import normalize_name

tf1 = tf.compat.v1

VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp", "AutoReloadVariable"})
_VARIABLE_COLLECTIONS = frozenset({
    tf1.GraphKeys.GLOBAL_VARIABLES, tf1.GraphKeys.TRAINABLE_VARIABLES, tf1.GraphKeys.LOCAL_VARIABLES,
    tf1.GraphKeys.MODEL_VARIABLES, tf1.GraphKeys.MOVING_AVERAGE_VARIABLES, tf1.GraphKeys.METRIC_VARIABLES,
})
_CONTEXT_COLLECTIONS = {"while_context": control_flow_pb2.WhileContextDef, "cond_context": control_flow_pb2.CondContextDef}
# Ops whose outputs are never a model's output (bookkeeping, training, saving).
_NOT_OUTPUT_OPS = frozenset({
    "NoOp", "Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp", "SaveV2", "Save",
    "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "Const",
    "IsVariableInitialized", "VarIsInitializedOp", "ApplyGradientDescent", "ApplyAdam", "ResourceApplyAdam",
    "ResourceApplyGradientDescent", "ApplyMomentum", "ResourceApplyMomentum", "Placeholder",
    "PlaceholderWithDefault", "ScalarSummary", "HistogramSummary", "MergeSummary", "Pack", "ReadVariableOp",
}) | VARIABLE_OPS
_BOOKKEEPING_SCOPES = ("save", "gradients", "train", "init", "report_uninitialized", "Adam", "GradientDescent")


def node_name(name: str) -> str:
    """``'^a'``, ``'a:1'``, ``'a'`` -> ``'a'``."""
    return normalize_name(name.lstrip("^"))


def upstream(graph_def, names, by_name=None) -> set[str]:
    """Names of the nodes ``names`` depend on (inputs and control inputs), themselves included."""
    by_name = by_name or {n.name: n for n in graph_def.node}
    seen, stack = set(), [node_name(n) for n in names]
    while stack:
        n = stack.pop()
        if n in seen or n not in by_name:
            continue
        seen.add(n)
        stack.extend(node_name(i) for i in by_name[n].input)
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
                if node_name(ctx.pivot_name) in present:
                    vals.append(raw)
            if vals:
                dst.collection_def[key].bytes_list.value.extend(vals)
        elif kind in ("int64_list", "float_list"):
            dst.collection_def[key].CopyFrom(col)
        # Other bytes collections (savers, summaries' protos, queue runners) name
        # ops that were pruned; they are dropped.


def placeholders(graph_def) -> list:
    """The ``Placeholder`` nodes of ``graph_def`` (not ``PlaceholderWithDefault``)."""
    return [n for n in graph_def.node if n.op == "Placeholder"]


def likely_outputs(graph_def) -> list[str]:
    """Tensors that look like a model's outputs, best guesses first: the logits fed to a
    softmax cross-entropy, softmax / sigmoid outputs, then float tensors nothing consumes
    that depend on a placeholder and are not bookkeeping (loss, training, saving)."""
    by_name = {n.name: n for n in graph_def.node}
    consumed = collections.Counter(node_name(i) for n in graph_def.node for i in n.input)
    ph = {n.name for n in placeholders(graph_def)}
    logits, probs, sinks = [], [], []
    for n in graph_def.node:
        if n.name.startswith(("save/", "gradients", "report_uninitialized")) or n.name.split("/")[0] in _BOOKKEEPING_SCOPES:
            continue
        if n.op in ("SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"):
            src = n.input[0] if n.input else ""
            logits.append(src if ":" in src else src + ":0")
        elif n.op in ("Softmax", "Sigmoid") and ph & upstream(graph_def, [n.name], by_name):
            probs.append(n.name + ":0")
        elif (not consumed[n.name] and n.op not in _NOT_OUTPUT_OPS and _is_float(n)
              and ph & upstream(graph_def, [n.name], by_name) and "loss" not in n.name.lower()):
            sinks.append(n.name + ":0")
    out = []
    for t in logits + probs + sorted(sinks):
        if t not in out:
            out.append(t)
    return out


def _is_float(node) -> bool:
    for key in ("T", "dtype", "out_type"):
        if key in node.attr and node.attr[key].type:
            return tf.as_dtype(node.attr[key].type).is_floating
    return False
