"""Export the new model: a checkpoint + meta graph that :func:`graphsurgeon.restore`
reads again, and a SavedModel with a ``serving_default`` signature.

The exported graph holds only what computes the outputs: the frozen layers, the
retrained layers and the new head. Old heads, labels, the loss, training ops and
optimizer slots are pruned. Extra placeholders the outputs need (``keep_prob``,
``is_training``) become ``PlaceholderWithDefault`` with the value given in
``defaults``, so a server feeds only the inputs.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, tensor_pb2

from graphsurgeon import select, subgraph
from graphsurgeon.errors import ConfigError
from graphsurgeon.restore import INPUTS_COLLECTION, OUTPUTS_COLLECTION

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


def export_meta_graph(model, inputs: dict, outputs: dict, defaults=None):
    """A pruned MetaGraphDef of ``model`` computing ``outputs`` from ``inputs``.

    Args:
      inputs: ``{signature key: tensor or name}``.
      outputs: ``{signature key: tensor or name}``.
      defaults: ``{placeholder name: value}`` for placeholders other than the inputs.

    Raises:
      ConfigError: an output needs a placeholder that is neither an input nor has a default.
    """
    inputs = {k: _tensor_name(v) for k, v in inputs.items()}
    outputs = {k: _tensor_name(v) for k, v in outputs.items()}
    defaults = {select.normalize_name(k): v for k, v in (defaults or {}).items()}
    with model.graph.as_default():
        meta = tf1.train.export_meta_graph(graph=model.graph, clear_devices=True)
    pruned = subgraph.prune_meta_graph(meta, list(outputs.values()), keep_update_ops=False)
    input_ops = {select.normalize_name(n) for n in inputs.values()}
    for node in list(pruned.graph_def.node):
        if node.op != "Placeholder" or node.name in input_ops:
            continue
        if node.name not in defaults:
            raise ConfigError(
                f"the outputs need placeholder '{node.name}' ({tf.as_dtype(node.attr['dtype'].type).name}) besides "
                f"the inputs; give its inference value (feeds {{'{node.name}': value}} / --feed {node.name}=VALUE)"
            )
        _to_placeholder_with_default(pruned.graph_def, node, defaults[node.name])
    for key, names in ((INPUTS_COLLECTION, inputs.values()), (OUTPUTS_COLLECTION, outputs.values())):
        pruned.collection_def[key].node_list.value.extend(names)
    return pruned, inputs, outputs


def _to_placeholder_with_default(graph_def, node, value) -> None:
    dtype = tf.as_dtype(node.attr["dtype"].type)
    const = graph_def.node.add()
    const.name = node.name + "/default"
    const.op = "Const"
    const.attr["dtype"].type = dtype.as_datatype_enum
    arr = np.asarray(value, dtype=dtype.as_numpy_dtype)
    const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr))
    shape = node.attr["shape"]
    node.op = "PlaceholderWithDefault"
    del node.input[:]
    node.input.append(const.name)
    node.attr.clear()
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["shape"].CopyFrom(shape if shape.shape.dim or shape.shape.unknown_rank else
                                attr_value_pb2.AttrValue(shape=tensor_pb2.TensorProto().tensor_shape))


def export(model, out_dir: str, *, inputs: dict, outputs: dict, defaults=None, overwrite: bool = False,
           verify: bool = True) -> ExportResult:
    """Write ``out_dir/checkpoint/model.ckpt`` (+ ``.meta``) and ``out_dir/saved_model``.

    Each is written under a temporary name in ``out_dir`` and renamed into place when
    complete; the written checkpoint is read back and compared bit for bit with the
    session's values unless ``verify`` is False. The model and its session are not changed.

    Raises:
      ConfigError: see :func:`export_meta_graph`; an output exists and ``overwrite`` is False.
    """
    from graphsurgeon.storage.writer import write_model

    meta, inputs, outputs = export_meta_graph(model, inputs, outputs, defaults)
    kept = sorted(subgraph.variable_defs(meta))
    values = model.values(kept)
    ckpt, sm = write_model(meta, values, inputs, outputs, out_dir, overwrite=overwrite, verify=verify)
    return ExportResult(ckpt, sm, kept, inputs, outputs)
