"""Flatten a TF2 SavedModel (``tf.saved_model.save``, Keras' ``model.export``) into one
``tf.compat.v1`` graph, so that restore, inspect, plan, cache and retrain treat it as a TF1 graph.

A TF2 SavedModel keeps its computation in functions: its graph holds the signature's placeholders
(``serving_default_<input>``), one ``StatefulPartitionedCall`` per signature and a ``VarHandleOp`` per
variable. Flattening keeps what the serving signature computes, inlines every function into the
graph (:func:`graphsurgeon._src.tfinternal.inline_functions`), names the inlined ops as the model
named them (``StatefulPartitionedCall/StatefulPartitionedCall/model/dense/MatMul`` becomes
``model/dense/MatMul``), and either keeps the variables as ``tf.compat.v1`` resource variables of the
same names (values read from the SavedModel's checkpoint by :class:`graphsurgeon._src.storage.tf2values.SavedModelValues`,
which key belongs to which variable told by :func:`checkpoint_keys`) or freezes them into constants.
Signature input and output tensor names are unchanged.

::

    meta = flatten("exported/")                  # variables stay variables
    frozen = flatten("exported/", freeze=True)   # constants; frozen.graph_def is a frozen graph
"""
from __future__ import annotations

import re

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from graphsurgeon._src import rebind, subgraph, tfinternal
from graphsurgeon._src.errors import (
    CheckpointNotFoundError,
    GraphSurgeonError,
    SignatureNotFoundError,
    WrongPathKindError,
)
from graphsurgeon._src.mixins import agree, counted, listed
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.checkpoint import (
    read_meta_graph as read_saved_meta_graph,
)
from graphsurgeon._src.storage.paths import Source, resolve
from graphsurgeon._src.storage.session import fed_variable
from graphsurgeon._src.storage.tf2values import SavedModelValues, object_graph

tf1 = tf.compat.v1

SERVING = "serving_default"
INIT_OP_SIGNATURE = "__saved_model_init_op"
_CALL_SCOPE = re.compile(r"^(Stateful)?PartitionedCall(_\d+)?$")


def read_meta_graph(source: Source):
    """``source``'s MetaGraphDef as :func:`graphsurgeon._src.storage.checkpoint.read_meta_graph` reads
    it, except that a TF2 SavedModel is flattened (variables kept)."""
    if source.kind == "tf2_saved_model":
        return flatten_source(source)
    return read_saved_meta_graph(source)


def values(source: Source, variables, *, signature: str = SERVING) -> SavedModelValues:
    """A reader of the values of the flattened TF2 SavedModel's ``variables`` (names)."""
    saved = read_saved_meta_graph(source)
    return _values(saved, source, variables, signature)


def _values(saved, source: Source, variables, signature: str) -> SavedModelValues:
    where = source.export_dir
    if not source.prefix:
        raise CheckpointNotFoundError(f"{where}: the serving function reads {counted(len(variables), 'variable')} but there is "
                                      f"no variables checkpoint (expected {where}/variables/variables.index)")
    bound = bound_variables(saved, serving_signature(saved, where, signature))
    reader = CheckpointReader(source.prefix)  # the index is read once: for the object graph and the values
    keys = checkpoint_keys(saved.object_graph_def, object_graph(reader))
    missing = sorted(n for n in variables if keys.get(bound.get(n)) is None)
    if missing:
        n = len(missing)
        raise GraphSurgeonError(f"{where}: cannot tell which checkpoint value {listed('variable', missing, 5)} "
                                f"{agree(n, 'holds', 'hold')}: the SavedModel's object graph does not name "
                                f"{agree(n, 'it', 'them')}")
    nodes = saved.object_graph_def.nodes
    named = {key: nodes[node_id].variable.name for node_id, key in keys.items() if nodes[node_id].variable.name}
    return SavedModelValues(reader, {n: keys[bound[n]] for n in variables}, named)


def flatten(path, *, freeze: bool = False, tags=("serve",), signature: str = SERVING):
    """The serving function of the TF2 SavedModel at ``path`` as one ``tf.compat.v1`` MetaGraphDef.

    Args:
      path: the SavedModel directory.
      freeze: if True, variables become constants holding their values (the result's ``graph_def``
        is a frozen graph); otherwise they stay resource variables of the same names, and
        ``graphsurgeon.restore(path)`` gives their values.
      tags: the meta graph's tags.
      signature: the signature to flatten.

    Returns:
      A MetaGraphDef whose ``signature_def[signature]`` names the same input and output tensors
      as the SavedModel's.

    Raises:
      WrongPathKindError: ``path`` is not a TF2 SavedModel.
      SignatureNotFoundError: it has no such signature; the message lists those it has.
    """
    source = resolve(path, tags)
    if source.kind != "tf2_saved_model":
        raise WrongPathKindError(f"{path} is a {source.kind.replace('_', ' ')}, not a TF2 SavedModel "
                                 "(one written by tf.saved_model.save or Keras' model.export)")
    return flatten_source(source, freeze=freeze, signature=signature)


def flatten_source(source: Source, *, freeze: bool = False, signature: str = SERVING):
    """:func:`flatten` on a resolved ``source``."""
    saved = read_saved_meta_graph(source)
    sig = serving_signature(saved, source.export_dir, signature)
    inputs = [sig.inputs[k].name for k in sorted(sig.inputs)]
    outputs = [sig.outputs[k].name for k in sorted(sig.outputs)]
    pruned = subgraph.extract_sub_graph(saved.graph_def, [subgraph.node_name(t) for t in outputs])
    calls = {n.name for n in pruned.node if n.op in tfinternal.CALL_OPS}
    inlined = tfinternal.inline_functions(pruned, inputs + outputs)
    # the functions' dead ends (a Shape nothing reads) go; the signature's inputs stay even if unread
    inlined = subgraph.extract_sub_graph(inlined, [subgraph.node_name(t) for t in outputs + inputs])
    flat = short_names(inlined, calls)
    variables = handle_variables(flat)
    if freeze:
        reader = _values(saved, source, variables, signature) if variables else None
        meta = tf1.MetaGraphDef()
        meta.graph_def.CopyFrom(freeze_handles(flat, reader.read if reader else None, where=source.export_dir))
    else:
        bound = bound_variables(saved, sig)
        trainable = {n: saved.object_graph_def.nodes[bound[n]].variable.trainable if n in bound else True
                     for n in variables}
        meta = with_variables(flat, variables, trainable, where=source.export_dir)
    meta.signature_def[signature].CopyFrom(sig)
    return meta


def serving_signature(meta, where: str, key: str = SERVING):
    """The SignatureDef ``key`` of ``meta``.

    Raises:
      SignatureNotFoundError: naming the signatures ``meta`` has (the init-op pseudo-signature aside).
    """
    if key in meta.signature_def:
        return meta.signature_def[key]
    keys = sorted(k for k in meta.signature_def if k != INIT_OP_SIGNATURE)
    if keys:
        raise SignatureNotFoundError(
            f"{where}: the SavedModel has no serving signature '{key}'; its signatures: {', '.join(keys)}")
    raise SignatureNotFoundError(
        f"{where}: the SavedModel has no serving signature '{key}' and no other signature (only functions); "
        "save it with tf.saved_model.save(obj, dir, signatures=...) or Keras' model.export(dir)")


def short_names(graph_def, calls) -> graph_pb2.GraphDef:
    """Rename the ops inlined from the call ops ``calls``: ``C/StatefulPartitionedCall/model/x`` ->
    ``model/x`` (the call scopes dropped), unless the short name is taken. Colocation hints (``_class``
    attributes, which name ops) are dropped. Returns a new GraphDef."""
    names = {n.name for n in graph_def.node}
    rename = {}
    for n in graph_def.node:
        head, _, rest = n.name.partition("/")
        if head not in calls or not rest:
            continue
        parts = rest.split("/")
        while len(parts) > 1 and _CALL_SCOPE.match(parts[0]):
            parts = parts[1:]
        new = "/".join(parts)
        if new not in names and new not in rename.values():
            rename[n.name] = new
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    for n in out.node:
        n.name = rename.get(n.name, n.name)
        if "_class" in n.attr:
            del n.attr["_class"]
        for i, inp in enumerate(n.input):
            ctrl = inp.startswith("^")
            op, sep, idx = inp.lstrip("^").partition(":")
            if op in rename:
                n.input[i] = ("^" if ctrl else "") + rename[op] + sep + idx
    return out


def handle_variables(graph_def) -> dict:
    """``{VarHandleOp name: (shape, tf.DType)}`` of ``graph_def``."""
    return {n.name: (tuple(tf.TensorShape(n.attr["shape"].shape).as_list()), tf.as_dtype(n.attr["dtype"].type))
            for n in graph_def.node if n.op == "VarHandleOp"}


def bound_variables(saved, sig) -> dict:
    """``{VarHandleOp name: object graph node id}`` of the variables the signature's call ops capture:
    a call's last inputs are the handles its function captures, in the order of that function's
    ``bound_inputs`` in the SavedModel's object graph."""
    graph_def = saved.graph_def
    wanted = subgraph.upstream(graph_def, [sig.outputs[k].name for k in sig.outputs])
    functions = saved.object_graph_def.concrete_functions
    out = {}
    for n in graph_def.node:
        fn = n.attr["f"].func.name if n.op in tfinternal.CALL_OPS and n.name in wanted else None
        if fn and fn in functions and functions[fn].bound_inputs:
            bound = list(functions[fn].bound_inputs)
            for handle, node_id in zip(n.input[-len(bound):], bound):
                out[subgraph.node_name(handle)] = node_id
    return out


def checkpoint_keys(saved_objects, checkpoint_objects) -> dict:
    """``{object graph node id: checkpoint key}`` of every variable: the SavedModel's object graph and the
    checkpoint's are walked together from their roots by child names (as ``tf.saved_model.load`` matches
    them), and a variable's key is its ``VARIABLE_VALUE`` attribute."""
    pairs, stack = {0: 0}, [0]
    while stack:
        s = stack.pop()
        ckpt_children = {c.local_name: c.node_id for c in checkpoint_objects.nodes[pairs[s]].children}
        for child in saved_objects.nodes[s].children:
            if child.local_name in ckpt_children and child.node_id not in pairs:
                pairs[child.node_id] = ckpt_children[child.local_name]
                stack.append(child.node_id)
    out = {}
    for node_id, ckpt_id in pairs.items():
        if saved_objects.nodes[node_id].WhichOneof("kind") == "variable":
            for a in checkpoint_objects.nodes[ckpt_id].attributes:
                if a.name == "VARIABLE_VALUE":
                    out[node_id] = a.checkpoint_key
    return out


def with_variables(graph_def, variables: dict, trainable: dict, *, where: str):
    """A MetaGraphDef of ``graph_def`` with each ``VarHandleOp`` replaced by a ``tf.compat.v1`` resource
    variable of the same name, shape and dtype (zeros initializer; values come from a checkpoint); every
    other op keeps its name (:func:`graphsurgeon._src.rebind.import_with_variables`). A control input on
    a handle orders nothing: it is dropped."""
    def maker(name):
        shape, dtype = variables[name]
        return lambda: fed_variable(name, shape, dtype, trainable=trainable.get(name, True)).handle

    return rebind.import_with_variables(graph_def, {n: maker(n) for n in variables}, where=where, what="flattened")


def freeze_handles(graph_def, read, *, where: str) -> graph_pb2.GraphDef:
    """A copy of ``graph_def`` whose variable reads (``ReadVariableOp`` of a ``VarHandleOp``, directly
    or through ``Identity``) are constants holding ``read(variable name)``, without the handles.

    Raises:
      GraphSurgeonError: an op other than a read uses a variable (an embedding lookup's
        ``ResourceGather``, an assignment); keep the variables (``freeze=False``) for such graphs.
    """
    by_name = {n.name: n for n in graph_def.node}
    var_of = {n.name: n.name for n in graph_def.node if n.op == "VarHandleOp"}
    changed = True
    while changed:  # Identity chains of handles (the inlined functions' argument nodes)
        changed = False
        for n in graph_def.node:
            if n.op == "Identity" and n.name not in var_of and subgraph.node_name(n.input[0]) in var_of:
                var_of[n.name] = var_of[subgraph.node_name(n.input[0])]
                changed = True
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for n in graph_def.node:
        if n.name in var_of:
            continue
        users = [var_of[subgraph.node_name(i)] for i in n.input if not i.startswith("^") and subgraph.node_name(i) in var_of]
        node = out.node.add()
        node.CopyFrom(n)
        node.ClearField("input")  # control inputs on a handle go with the handle
        node.input.extend(i for i in n.input if not (i.startswith("^") and subgraph.node_name(i) in var_of))
        if not users:
            continue
        if n.op != "ReadVariableOp":
            raise GraphSurgeonError(f"{where}: op '{n.name}' ({n.op}) uses variable '{users[0]}' other than by reading "
                                    "it; such a graph cannot be frozen: keep its variables (freeze=False)")
        value = read(users[0])
        node.ClearField("input")
        node.input.extend(i for i in n.input if i.startswith("^") and subgraph.node_name(i) not in var_of)
        node.op = "Const"
        node.ClearField("attr")
        node.attr["dtype"].type = by_name[n.name].attr["dtype"].type
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return out
