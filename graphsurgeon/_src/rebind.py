"""Import a GraphDef with some of its nodes replaced by ``tf.compat.v1`` variables of the same names,
every other node keeping its exact name.

Creating the variables first and importing the graph onto them (``input_map``) renames graph ops:
TensorFlow uniquifies an imported op whose name is taken as a scope, so the op ``logits`` beside
the variable ``logits/kernel`` came back as ``logits_1``. Here the graph is imported first, into an
empty graph (no name can be taken), with each replaced node's readers reading a stand-in; the
variables are made afterwards under their own names (their other ops, such as ``NAME/Assign``, take
names that are free); the readers are then moved from the stand-ins to the variables in the exported
GraphDef, and the stand-ins dropped.

::

    meta = import_with_variables(graph_def, {"logits/kernel": make_kernel}, where="frozen.pb", what="thawed")
"""
from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from graphsurgeon._src import subgraph
from graphsurgeon._src.errors import GraphSurgeonError

tf1 = tf.compat.v1


def import_with_variables(graph_def, makers: dict, *, where: str, what: str):
    """A MetaGraphDef of ``graph_def`` in which each node named in ``makers`` is a variable.

    Args:
      graph_def: the graph; each node ``makers`` names has one output (a ``Const``, a ``VarHandleOp``);
        control inputs naming them are dropped.
      makers: ``{node name: make}``; ``make()``, called in the new graph outside any name scope, creates
        the variable named as the node and returns the tensor the node's readers are to read instead
        (a read of the variable, or its handle).
      where, what: for messages (``'{where}: the {what} graph cannot be built (...)'``).

    Returns:
      A MetaGraphDef (variables in its collections) whose other ops are ``graph_def``'s, under their names.

    Raises:
      GraphSurgeonError: the graph cannot be imported, or a variable cannot take its node's name.
    """
    names = sorted(makers)
    taken = {n.name for n in graph_def.node}
    stand_in = {}
    for name in names:
        stand_in[name] = _free(f"{name}/stand_in", taken)
        taken.add(stand_in[name])
    rest = _with_stand_ins(graph_def, stand_in)
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.graph_util.import_graph_def(rest, name="")
        except ValueError as e:
            raise GraphSurgeonError(f"{where}: the {what} graph cannot be built ({str(e).splitlines()[0][:200]})") from None
        reads = {}
        for name in names:
            reads[name] = makers[name]()
            if not _is_variable(graph, name):
                raise GraphSurgeonError(f"{where}: the {what} graph cannot be built (the variable '{name}' could not "
                                        "take its name: an op of the graph takes it, letters' case aside)")
        graph_def_out = graph.as_graph_def(add_shapes=True)
        _move_readers(graph_def_out, {stand_in[n]: reads[n].name for n in names})
        return tf1.train.export_meta_graph(graph=graph, graph_def=graph_def_out)


def _is_variable(graph, name: str) -> bool:
    try:
        return graph.get_operation_by_name(name).type == "VarHandleOp"
    except KeyError:
        return False


def _free(base: str, taken: set) -> str:
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def _with_stand_ins(graph_def, stand_in: dict) -> graph_pb2.GraphDef:
    """``graph_def`` with each node ``n`` of ``stand_in`` replaced by its stand-in ``stand_in[n]``: a
    ``Placeholder`` of a ``Const``'s dtype and shape, or a copy of any other node; data inputs from
    ``n`` read the stand-in, control inputs on ``n`` are dropped."""
    rest = subgraph.without_nodes(graph_def, stand_in)
    for node in graph_def.node:
        if node.name in stand_in:
            new = rest.node.add()
            if node.op == "Const":
                new.op = "Placeholder"
                new.attr["dtype"].type = node.attr["dtype"].type
                new.attr["shape"].shape.CopyFrom(node.attr["value"].tensor.tensor_shape)
            else:
                new.CopyFrom(node)
                del new.input[:]
            new.name = stand_in[node.name]
    _move_readers(rest, {n: s + ":0" for n, s in stand_in.items()}, drop=False)
    return rest


def _move_readers(graph_def, to: dict, *, drop: bool = True) -> None:
    """In place: data inputs from the nodes ``to`` names (their output 0) read the tensor ``to[node]``
    instead; with ``drop``, those nodes are removed."""
    for node in graph_def.node:
        for i, inp in enumerate(node.input):
            op, _, index = inp.partition(":")
            if op in to and index in ("", "0"):
                tensor = to[op]
                node.input[i] = tensor[:-2] if tensor.endswith(":0") else tensor
    if drop:
        kept = [n for n in graph_def.node if n.name not in to]
        del graph_def.node[:]
        graph_def.node.extend(kept)
