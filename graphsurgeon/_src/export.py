"""Export the new model: a checkpoint + meta graph that :func:`graphsurgeon._src.restore`
reads again, and a SavedModel with a ``serving_default`` signature.

The exported graph holds only what computes the outputs: the frozen layers, the
retrained layers and the new head. Old heads, labels, the loss, training ops and
optimizer slots are pruned. Extra placeholders the outputs need (``keep_prob``,
``is_training``) become ``PlaceholderWithDefault`` with the value given in
``feeds``, so a server feeds only the inputs; a ``PlaceholderWithDefault`` given in ``feeds`` takes
that value as its default. Reference variables become resource variables
(:func:`to_resource_variables`), unless an op of the exported graph needs the reference itself.

Inputs keep their static shapes: from a graph that fixes the batch (``[100, 784]``) the
SavedModel's signature declares batches of exactly that size, and ``Session.run`` (so
``saved_model_cli run``) refuses others; ``tf.saved_model.load``'s function does not check it
(``retrain`` says so in its summary).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, tensor_pb2, variable_pb2

from graphsurgeon._src import select, subgraph
from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.mixins import agree
from graphsurgeon._src.restore import INPUTS_COLLECTION, OUTPUTS_COLLECTION
from graphsurgeon._src.storage.writer import write_model

tf1 = tf.compat.v1


@dataclasses.dataclass
class ExportResult:
    """Where the model was written and what it holds."""

    checkpoint: str
    saved_model: str
    variables: list
    inputs: dict
    outputs: dict


def _tensor_name(t) -> str:
    name = t.name if hasattr(t, "name") else str(t)
    return name if ":" in name else name + ":0"


def export_meta_graph(model, inputs: dict, outputs: dict, feeds=None):
    """A pruned MetaGraphDef of ``model`` computing ``outputs`` from ``inputs``, its reference variables made
    resource variables (:func:`to_resource_variables`).

    Args:
      inputs: ``{signature key: tensor or name}``.
      outputs: ``{signature key: tensor or name}``.
      feeds: ``{placeholder name: value}`` for placeholders other than the inputs (their defaults; a
        ``placeholder_with_default`` named here gets the value as its default instead of its own).

    Raises:
      TensorNotFoundError: an input or output is not a tensor of the model.
      ConfigError: an output needs a placeholder that is neither an input nor has a default, or no
        output is computed from an input.
    """
    for name in [*inputs.values(), *outputs.values()]:
        model.tensor(name)  # names the closest ops when there is no such tensor
    inputs = {k: _tensor_name(v) for k, v in inputs.items()}
    outputs = {k: _tensor_name(v) for k, v in outputs.items()}
    feeds = {select.normalize_name(k): v for k, v in (feeds or {}).items()}
    with model.graph.as_default():
        meta = tf1.train.export_meta_graph(graph=model.graph, clear_devices=True)
    input_ops = {select.normalize_name(n) for n in inputs.values()}
    batch_of = model.tensor(next(iter(inputs.values()))) if inputs else None
    for node in list(meta.graph_def.node):  # before pruning, which drops the old default if nothing else reads it
        if node.op == "PlaceholderWithDefault" and node.name in feeds and node.name not in input_ops:
            _to_placeholder_with_default(meta.graph_def, node, feeds[node.name], batch_of)
    pruned = subgraph.prune_meta_graph(meta, list(outputs.values()), keep_update_ops=False)
    kept = {node.name for node in pruned.graph_def.node}
    unread = {k: v for k, v in inputs.items() if select.normalize_name(v) not in kept}
    if unread:
        raise ConfigError(f"inputs={unread}: no output ({', '.join(outputs.values())}) is computed from "
                          f"{agree(len(unread), 'it', 'them')}; leave {agree(len(unread), 'it', 'them')} "
                          "out of inputs=")
    for node in list(pruned.graph_def.node):
        if node.op != "Placeholder" or node.name in input_ops:
            continue
        if node.name not in feeds:
            raise ConfigError(
                f"the outputs need placeholder '{node.name}' ({tf.as_dtype(node.attr['dtype'].type).name}) besides "
                f"the inputs; give its inference value in feeds={{'{node.name}': VALUE}}"
            )
        _to_placeholder_with_default(pruned.graph_def, node, feeds[node.name], batch_of)
    for key, names in ((INPUTS_COLLECTION, inputs.values()), (OUTPUTS_COLLECTION, outputs.values())):
        pruned.collection_def[key].node_list.value.extend(names)
    to_resource_variables(pruned)
    return pruned, inputs, outputs


# ops that read a reference variable's value (Identity: the ``v/read`` snapshot) or set it (its initializer)
_READS, _SETS = ("Identity",), ("Assign",)


def to_resource_variables(meta) -> bool:
    """Turn the reference variables (``VariableV2``) of an inference graph into resource variables of
    the same names, in place: ``VarHandleOp`` ``v``, its ``v/read`` a ``ReadVariableOp`` and its
    initializer an ``AssignVariableOp``, the ``VariableDef``s marked ``is_resource``. A SavedModel of
    reference variables loads with ``tf.saved_model.load`` too, but logs a warning per variable per
    function. Returns False, changing nothing, when an op other than those reads a reference variable
    (an op that needs the reference itself, as training ops do)."""
    gd = meta.graph_def
    refs = {n.name: n for n in gd.node if n.op in ("VariableV2", "Variable")}
    users = [(n, i) for n in gd.node for i in n.input if subgraph.node_name(i) in refs and not i.startswith("^")]
    if not refs or any(n.op not in _READS + _SETS or n.input[0] != i for n, i in users):
        return bool(not refs)
    for node in refs.values():
        dtype, shape = node.attr["dtype"], node.attr["shape"]
        node.op = "VarHandleOp"
        node.attr.clear()
        node.attr["dtype"].CopyFrom(dtype)
        node.attr["shape"].CopyFrom(shape)
        node.attr["shared_name"].s = node.name.encode()
    for node, _ in users:
        dtype = attr_value_pb2.AttrValue(type=refs[subgraph.node_name(node.input[0])].attr["dtype"].type)
        colocation = node.attr["_class"] if "_class" in node.attr else None
        node.op = "ReadVariableOp" if node.op in _READS else "AssignVariableOp"
        node.attr.clear()
        node.attr["dtype"].CopyFrom(dtype)
        if colocation is not None:
            node.attr["_class"].CopyFrom(colocation)
    for key in (tf1.GraphKeys.GLOBAL_VARIABLES, tf1.GraphKeys.TRAINABLE_VARIABLES, tf1.GraphKeys.LOCAL_VARIABLES,
                tf1.GraphKeys.MODEL_VARIABLES):
        if key in meta.collection_def:
            raw = meta.collection_def[key].bytes_list.value
            for k, vd in enumerate(raw):
                var = variable_pb2.VariableDef.FromString(vd)
                if subgraph.node_name(var.variable_name) in refs:
                    var.is_resource = True
                    raw[k] = var.SerializeToString()
    return True


def _to_placeholder_with_default(graph_def, node, value, batch_of=None) -> None:
    """Turn placeholder ``node`` into a ``PlaceholderWithDefault`` of ``value``. A value that must
    grow with the batch (an RNN's initial state ``[None, 160]`` from a scalar or a ``[160]`` array)
    becomes ``broadcast_to(value, [batch of batch_of, 160])``, so a server feeding only the inputs
    gets the same values training and evaluation fed."""
    dtype = tf.as_dtype(node.attr["dtype"].type)
    dims = subgraph.placeholder_shape(node, graph_def.versions.producer)
    arr = np.asarray(value, dtype=dtype.as_numpy_dtype)
    per_batch = dims is not None and dims and dims[0] is None and batch_of is not None and not (
        arr.ndim == len(dims) and arr.shape[0] != 1)
    if per_batch:
        if any(d is None for d in dims[1:]) and arr.ndim < len(dims):
            raise ConfigError(f"placeholder '{node.name}' has shape {dims}; its default {list(arr.shape)} cannot "
                              "fill the unknown dimensions: give a value of the full shape")
        base = arr[0] if arr.ndim == len(dims) else arr
        default = _batch_broadcast(graph_def, node.name, base, dims, batch_of)
    else:
        if any(n.name == node.name + "/default" for n in graph_def.node):
            raise ConfigError(f"cannot add the default of '{node.name}': an op '{node.name}/default' exists")
        const = graph_def.node.add()
        const.name = node.name + "/default"
        const.op = "Const"
        const.attr["dtype"].type = dtype.as_datatype_enum
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr))
        default = const.name
    shape = node.attr["shape"]
    node.op = "PlaceholderWithDefault"
    del node.input[:]
    node.input.append(default)
    node.attr.clear()
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["shape"].CopyFrom(shape if shape.shape.dim or shape.shape.unknown_rank else
                                attr_value_pb2.AttrValue(shape=tensor_pb2.TensorProto().tensor_shape))


def _batch_broadcast(graph_def, name: str, base: np.ndarray, dims, batch_of: tf.Tensor) -> str:
    """Append to ``graph_def`` the ops of ``broadcast_to(base, [batch of batch_of] + dims[1:])``
    (built in a scratch graph, then wired to ``batch_of``); returns the result's tensor name."""
    scope = f"{name}/graphsurgeon_default"
    scratch = tf.Graph()
    with scratch.as_default():
        src = tf1.placeholder(batch_of.dtype, batch_of.shape, name="batch_source")
        with tf.name_scope(scope + "/"):
            n = tf.shape(src, out_type=tf.int32)[:1]
            tail = list(base.shape) if base.ndim == len(dims) - 1 else list(dims[1:])
            target = tf.concat([n, tf.constant(tail, tf.int32)], 0) if tail else n
            out = tf.broadcast_to(tf.constant(base), target, name="value")
    taken = {n.name for n in graph_def.node}
    for n in scratch.as_graph_def().node:
        if n.name == "batch_source":
            continue
        if n.name in taken:
            raise ConfigError(f"cannot add the default of '{name}': an op '{n.name}' exists")
        n.input[:] = [batch_of.name if i in ("batch_source", "batch_source:0") else i for i in n.input]
        graph_def.node.add().CopyFrom(n)
    return out.name


def export(model, out_dir: str, *, inputs: dict, outputs: dict, feeds=None, overwrite: bool = False,
           verify: bool = True) -> ExportResult:
    """Write ``out_dir/checkpoint/model.ckpt`` (+ ``.meta``) and ``out_dir/saved_model``.

    Each is written under a temporary name in ``out_dir`` and renamed into place when
    complete; the written checkpoint is read back and compared bit for bit with the
    session's values unless ``verify`` is False. The model and its session are not changed.

    Raises:
      TensorNotFoundError, ConfigError: see :func:`export_meta_graph`; ConfigError: an output exists
        and ``overwrite`` is False.
    """
    meta, inputs, outputs = export_meta_graph(model, inputs, outputs, feeds)
    kept = sorted(subgraph.variable_defs(meta))
    values = model.values(kept)
    ckpt, sm = write_model(meta, values, inputs, outputs, out_dir, overwrite=overwrite, verify=verify)
    return ExportResult(ckpt, sm, kept, inputs, outputs)
