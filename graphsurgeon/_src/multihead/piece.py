"""Graph pieces: part of a model's graph with its weights lifted out.

A *piece* is a GraphDef that computes one tensor (``output``) from one placeholder (``input``)
and in which every weight — a variable (``VariableV2``, ``VarHandleOp``) or a floating-point
constant of rank ≥ 1 (what freezing turns variables into) — is a placeholder named like the
weight. Values live beside the piece, so pieces of different models are compared op by op and
weight by weight, and a piece is rebuilt in another graph with
``import_graph_def(input_map={weight: tensor})`` (no private TensorFlow API)::

    model graph               backbone piece             head piece
    output                                               output
      |                                                    |
    dense (W2 b2)   split at                             dense (W2 b2 placeholders)
      |             features  ==>  features                |
    encoder (W1)                     |                   graphsurgeon/features (placeholder)
      |                            encoder (W1 placeholder)
    input                            |
                                   input
"""
from __future__ import annotations

import contextlib
import dataclasses
import types

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, types_pb2

from graphsurgeon._src import determinism, subgraph
from graphsurgeon._src.errors import MergeHeadsError
from graphsurgeon._src.feeds import Feeder
from graphsurgeon._src.storage.session import assign, fed_variable, new_session

tf1 = tf.compat.v1

FEATURES = "graphsurgeon/features"  # the placeholder a head piece reads its features from
REF_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "AutoReloadVariable"})
_IGNORED_ATTRS = frozenset({"_class", "_output_shapes", "shared_name", "container", "debug_name",
                            "_has_manual_control_dependencies", "allowed_devices"})
_FLOAT_TYPES = frozenset({types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF, types_pb2.DT_BFLOAT16})


@dataclasses.dataclass(frozen=True)
class Weight:
    """A weight of a piece: ``dtype`` and ``shape`` of its value; ``handle`` if its placeholder
    stands for a resource variable's handle rather than its value; ``source`` is ``"variable"``
    (values in a checkpoint) or ``"constant"`` (values in the graph)."""

    name: str
    dtype: str
    shape: tuple
    handle: bool = False
    source: str = "variable"


@dataclasses.dataclass
class Piece:
    """A GraphDef computing ``output`` from ``input`` (tensor names) with weights as placeholders."""

    graph_def: graph_pb2.GraphDef
    input: str
    output: str
    weights: dict

    def by_name(self) -> dict:
        return {n.name: n for n in self.graph_def.node}


def tensor_name(name: str) -> str:
    """``'a'`` -> ``'a:0'``; ``'a:1'`` unchanged."""
    return name if ":" in name else name + ":0"


def _to_placeholder(node, dtype_enum: int, shape_proto) -> None:
    name = node.name
    node.Clear()
    node.name, node.op = name, "Placeholder"
    node.attr["dtype"].type = dtype_enum
    node.attr["shape"].shape.CopyFrom(shape_proto)


def lift(graph_def, output: str, input: str) -> tuple[Piece, dict]:
    """The piece of ``graph_def`` computing ``output`` from placeholder ``input``, and
    ``{name: ndarray}`` of the constants lifted into weights. ``graph_def`` is not changed."""
    gd = subgraph.extract_sub_graph(graph_def, [output])
    weights, constants = {}, {}
    for node in gd.node:
        node.attr.pop("_class", None)
        if node.op in REF_VARIABLE_OPS or node.op == "VarHandleOp":
            dtype = tf.as_dtype(node.attr["dtype"].type).base_dtype
            shape = tf.TensorShape(node.attr["shape"].shape)
            handle = node.op == "VarHandleOp"
            weights[node.name] = Weight(node.name, dtype.name, tuple(shape.as_list()), handle)
            _to_placeholder(node, types_pb2.DT_RESOURCE if handle else dtype.as_datatype_enum,
                            tf.TensorShape([]).as_proto() if handle else shape.as_proto())
        elif node.op == "Const" and node.attr["dtype"].type in _FLOAT_TYPES \
                and len(node.attr["value"].tensor.tensor_shape.dim) >= 1:
            value = tf.make_ndarray(node.attr["value"].tensor)
            constants[node.name] = value
            weights[node.name] = Weight(node.name, value.dtype.name, value.shape, False, "constant")
            _to_placeholder(node, node.attr["dtype"].type, tf.TensorShape(value.shape).as_proto())
    return Piece(with_defaults(gd), tensor_name(input), tensor_name(output), weights), constants


def with_defaults(graph_def):
    """``graph_def`` with every op's default attributes written out (imported and exported again), so
    a graph saved with ``strip_default_attrs`` compares equal to one saved without."""
    scratch = tf.Graph()
    with scratch.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    out = scratch.as_graph_def()
    out.versions.CopyFrom(graph_def.versions)
    return out


def _consumers_outside(gd, inside: set, by_name) -> list[tuple[str, str]]:
    """``[(node, input)]`` of nodes in ``inside`` reading a node outside it."""
    out = []
    for n in gd.node:
        if n.name in inside:
            out.extend((n.name, i) for i in n.input if subgraph.node_name(i) not in inside
                       and subgraph.node_name(i) in by_name)
    return out


def split(piece: Piece, features: str, where: str) -> tuple[Piece, Piece]:
    """Split ``piece`` at tensor ``features`` into a backbone piece (input -> features) and a
    head piece (``FEATURES`` placeholder -> output).

    Raises:
      MergeHeadsError: the head reads a tensor of the backbone other than ``features`` (it is not a
        head), ``features`` is the output itself or not below it, or the features are not floating point.
    """
    features = tensor_name(features)
    gd, by_name = piece.graph_def, piece.by_name()
    fop = subgraph.node_name(features)
    if fop == subgraph.node_name(piece.output):
        raise MergeHeadsError(f"{where}: the model's output {piece.output} is the features tensor itself "
                              f"(features={features}); there is no head above it")
    above = subgraph.upstream(gd, [piece.output], by_name)
    if fop not in above:
        raise MergeHeadsError(f"{where}: the model's output {piece.output} is not computed from features={features}; "
                              "name an output above the features with output=")
    below = subgraph.upstream(gd, [features], by_name)
    head_nodes = above - below
    copied = set()
    for node, inp in _consumers_outside(gd, head_nodes, by_name):
        src = subgraph.node_name(inp)
        if tensor_name(inp.lstrip("^")) == features or inp == "^" + fop:
            continue
        if by_name[src].op == "Const" and src not in piece.weights and not by_name[src].input:
            copied.add(src)
            continue
        raise MergeHeadsError(
            f"{where}: op '{node}' above features={features} reads '{inp.lstrip('^')}', which lies below it; "
            "a head must read only the features (choose a features= tensor above every op the head reads)")
    backbone_gd = subgraph.extract_sub_graph(gd, [features])
    backbone = Piece(backbone_gd, piece.input, features,
                     {n: w for n, w in piece.weights.items() if n in below})
    return backbone, _head_piece(piece, features, head_nodes | copied)


def _head_piece(piece: Piece, features: str, keep: set) -> Piece:
    spec = tensor_spec(Piece(piece.graph_def, piece.input, features, piece.weights), features)
    fop = subgraph.node_name(features)
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(piece.graph_def.versions)
    out.library.CopyFrom(piece.graph_def.library)
    ph = out.node.add()
    ph.name, ph.op = FEATURES, "Placeholder"
    ph.attr["dtype"].type = spec[0].as_datatype_enum
    ph.attr["shape"].shape.CopyFrom(spec[1].as_proto())
    for n in piece.graph_def.node:
        if n.name in keep:
            node = out.node.add()
            node.CopyFrom(n)
            node.input[:] = [_rewire(i, features, fop) for i in n.input]
    weights = {n: w for n, w in piece.weights.items() if n in keep}
    return Piece(out, FEATURES + ":0", piece.output, weights)


def _rewire(inp: str, features: str, fop: str) -> str:
    if inp == "^" + fop:
        return "^" + FEATURES
    return FEATURES if tensor_name(inp) == features else inp


TWO_CLASSES = "graphsurgeon/two_classes"  # the ops that serve a one-output sigmoid branch head as two classes


def two_class_logits(piece: Piece, sigmoid) -> Piece:
    """``piece`` with ops that turn ``sigmoid``'s input ``z`` (a ``[batch, 1]`` logit; ``sigmoid`` is the
    ``Sigmoid`` node) into the logits ``[0, z]`` of two classes, whose softmax is ``[1 − sigmoid(z),
    sigmoid(z)]``; the new piece's output is those logits (``graphsurgeon/two_classes/logits:0``)."""
    gd = graph_pb2.GraphDef()
    gd.CopyFrom(piece.graph_def)
    z, dtype = sigmoid.input[0], sigmoid.attr["T"]
    zeros = gd.node.add(name=f"{TWO_CLASSES}/zeros", op="ZerosLike", input=[z])
    zeros.attr["T"].CopyFrom(dtype)
    axis = gd.node.add(name=f"{TWO_CLASSES}/axis", op="Const")
    axis.attr["dtype"].type = types_pb2.DT_INT32
    axis.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(1, tf.int32))
    logits = gd.node.add(name=f"{TWO_CLASSES}/logits", op="ConcatV2", input=[zeros.name, z, axis.name])
    logits.attr["N"].i = 2
    logits.attr["T"].CopyFrom(dtype)
    logits.attr["Tidx"].type = types_pb2.DT_INT32
    return Piece(gd, piece.input, f"{logits.name}:0", piece.weights)


def input_spec(piece: Piece) -> tuple:
    """``(tf.DType, tf.TensorShape)`` of ``piece``'s input placeholder, as its node declares them."""
    node = next(n for n in piece.graph_def.node if n.name == subgraph.node_name(piece.input))
    return tf.as_dtype(node.attr["dtype"].type), tf.TensorShape(node.attr["shape"].shape)


def input_placeholder(piece: Piece, name: str) -> tf.Tensor:
    """A placeholder ``name`` in the current graph for ``piece``'s input: its dtype and shape (:func:`input_spec`)
    but any batch size (an unknown rank stays unknown).

    Raises:
      MergeHeadsError: the input is a scalar (rank 0): it has no axis 0 to hold a batch (:func:`refuse_scalar`).
    """
    dtype, shape = input_spec(piece)
    refuse_scalar(shape, f"the input {piece.input}")
    return tf1.placeholder(dtype, [None] + shape.as_list()[1:] if shape.rank is not None else None, name=name)


def refuse_scalar(shape: tf.TensorShape, what: str, where: str = "", instead: str = "") -> None:
    """Refuse a tensor of rank 0 fed or read as a batch of examples: ``WHERE: WHAT is a scalar (shape []): its
    examples come in batches along axis 0, and a scalar has none; INSTEAD`` (``where`` and ``instead`` when given).

    Raises:
      MergeHeadsError: ``shape`` has rank 0.
    """
    if shape.rank == 0:
        raise MergeHeadsError(f"{where + ': ' if where else ''}{what} is a scalar (shape []): its examples come in "
                              f"batches along axis 0, and a scalar has none{'; ' + instead if instead else ''}")


def tensor_spec(piece: Piece, tensor: str) -> tuple:
    """``(tf.DType, tf.TensorShape)`` of ``tensor`` in ``piece``, as TensorFlow infers them (a
    resource weight lifted into a placeholder is fed a variable handle of its dtype and shape, so
    that the shapes of its reads are known). The tensor is taken from what the import returns: a handle
    takes its weight's name, so TensorFlow renames the imported ops whose names are taken (the weight's
    placeholder) or are a taken scope (``combined/logits`` beside a weight ``combined/logits/kernel``)."""
    gd = subgraph.extract_sub_graph(piece.graph_def, [tensor])
    kept = {n.name for n in gd.node}
    scratch = tf.Graph()
    with scratch.as_default():
        handles = {w.name + ":0": tf.raw_ops.VarHandleOp(dtype=tf.as_dtype(w.dtype), shape=w.shape,
                                                         shared_name=w.name, name=w.name)
                   for w in piece.weights.values() if w.handle and w.name in kept}
        t, = tf.graph_util.import_graph_def(gd, name="", input_map=handles or None,
                                            return_elements=[tensor_name(tensor)])
    return t.dtype, t.shape


def bind(piece: Piece, read, scope: str) -> tuple[dict, list]:
    """``(input_map, values)`` binding ``piece``'s weights in the current graph: each to a new resource variable
    ``SCOPE/NAME`` (``input_map``'s ``NAME:0`` is its handle for a handle weight, else its value), and ``values``
    ``[(variable, value read with read(NAME))]`` for :func:`graphsurgeon._src.storage.session.assign` (no
    weight's value is a constant of the GraphDef: :func:`graphsurgeon._src.storage.session.fed_variable`)."""
    input_map, values = {}, []
    for name, w in piece.weights.items():
        value = np.asarray(read(name))
        var = fed_variable(f"{scope}/{name}", value.shape, value.dtype)
        values.append((var, value))
        input_map[name + ":0"] = var.handle if w.handle else var.value()
    return input_map, values


PROBE_SCOPE = "graphsurgeon/probe"  # the probe's own ops: the input, the weights' variables


def imported(piece: Piece, read, output: str = "") -> tuple:
    """``(graph, input, output, values)``: ``piece`` imported under its own op names on a placeholder
    ``graphsurgeon/probe/inputs`` (``…/features`` for a head piece) of its input's dtype and any batch, returning
    ``output`` (a tensor name; by default the piece's), its weights bound by :func:`bind` to variables
    ``graphsurgeon/probe/values/NAME``; ``values`` as :func:`bind` gives them."""
    graph = tf.Graph()
    with graph.as_default():
        x = input_placeholder(piece, f"{PROBE_SCOPE}/{'features' if piece.input == FEATURES + ':0' else 'inputs'}")
        bound, values = bind(piece, read, f"{PROBE_SCOPE}/values")
        out, = tf.graph_util.import_graph_def(piece.graph_def, input_map={piece.input: x, **bound},
                                              return_elements=[tensor_name(output or piece.output)], name="")
    return graph, x, out, values


@dataclasses.dataclass
class Probed:
    """What :func:`probed` found: ``model`` (``graph``, ``session``, ``tensor``: what
    :mod:`graphsurgeon._src.determinism` takes), ``input`` (the placeholder fed), ``feeder`` (feeds it alone),
    ``output`` (the tensor probed); ``values``: ``output`` on the rows probed, and ``probe``: what
    :func:`graphsurgeon._src.determinism.probe` found there, every check it ran as it found it (both None when no
    rows were given). Judging it is the caller's: a head, to which nothing a batch could reorder adds, is judged by
    :func:`graphsurgeon._src.determinism.exactly`."""

    model: types.SimpleNamespace
    input: tf.Tensor
    feeder: Feeder
    output: tf.Tensor
    values: np.ndarray | None = None
    probe: determinism.Probe | None = None


@contextlib.contextmanager
def probed(piece: Piece, read, x, *, output: str = ""):
    """Import ``piece`` (:func:`imported`: weights read with ``read(NAME)``, ``output`` returned) into a graph and
    a session of its own, run ``output`` on the rows ``x`` and probe it there
    (:func:`graphsurgeon._src.determinism.probe`: twice, with its random ops fed two far-apart draws if the runs
    agree within its tolerance, then the first row alone if neither differed). Yields a :class:`Probed` while the
    session is open (``x`` None: nothing runs; the caller may)."""
    graph, inp, out, values = imported(piece, read, output)
    with new_session(graph) as sess:
        assign(sess, values)
        model = types.SimpleNamespace(graph=graph, session=sess, tensor=graph.get_tensor_by_name)
        found = Probed(model, inp, Feeder(model, inp, {}), out)
        if x is not None:
            found.values = sess.run(out, {inp: x})
            found.probe = determinism.probe(model, out, found.feeder, x, first=found.values)
        yield found


def check_placeholders(piece: Piece, where: str, what: str) -> None:
    """Every ``Placeholder`` of ``piece`` must be its input or a weight.

    Raises:
      MergeHeadsError: names the other placeholder.
    """
    fed = subgraph.node_name(piece.input)
    for n in piece.graph_def.node:
        if n.op == "Placeholder" and n.name != fed and n.name not in piece.weights:
            raise MergeHeadsError(f"{where}: the {what} reads placeholder '{n.name}' besides its input "
                                  f"{piece.input}; only the input is fed (make it a "
                                  "PlaceholderWithDefault, or cut above it)")


def order(piece: Piece) -> list[str]:
    """Node names in depth-first post-order from the output, inputs in order (cycles of TF 1.x
    loops are cut at the first node seen again): the same sequence for the same architecture."""
    by_name = piece.by_name()
    root = subgraph.node_name(piece.output)
    seen, out, stack = {root}, [], [(root, iter(by_name[root].input))]
    while stack:
        name, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            stack.pop()
            out.append(name)
            continue
        src = subgraph.node_name(nxt)
        if src not in seen and src in by_name:
            seen.add(src)
            stack.append((src, iter(by_name[src].input)))
    return out


_TRANSPARENT_OPS = ("Identity", "ReadVariableOp")


def structure(piece: Piece) -> list[tuple[str, tuple]]:
    """``[(node name, signature)]`` in :func:`order`: a signature holds the op type, its attributes
    (not names, devices or colocation) and which earlier positions it reads; weights are
    ``("weight", dtype, shape)`` and the input ``("input", dtype, shape)``, so two models of one
    architecture give equal signatures whatever their names. ``Identity`` and ``ReadVariableOp``
    are looked through, so reference and resource variables compare equal."""
    by_name = piece.by_name()
    fed = subgraph.node_name(piece.input)

    def source(inp: str) -> str:
        name = subgraph.node_name(inp)
        while name in by_name and by_name[name].op in _TRANSPARENT_OPS and by_name[name].input \
                and name not in piece.weights:
            name = subgraph.node_name(by_name[name].input[0])
        return name

    names = [n for n in order(piece) if by_name[n].op not in _TRANSPARENT_OPS or n in piece.weights]
    pos = {n: i for i, n in enumerate(names)}
    out = []
    for name in names:
        node = by_name[name]
        if name in piece.weights:
            w = piece.weights[name]
            sig = ("weight", w.dtype, w.shape)
        elif name == fed:
            sig = ("input", node.attr["dtype"].type, node.attr["shape"].SerializeToString(deterministic=True))
        else:
            attrs = tuple((k, node.attr[k].SerializeToString(deterministic=True))
                          for k in sorted(node.attr) if k not in _IGNORED_ATTRS)
            reads = tuple((pos.get(source(i)), i.startswith("^"), "" if subgraph.node_name(i) != source(i)
                           else i.partition(":")[2]) for i in node.input)
            sig = (node.op, attrs, reads)
        out.append((name, sig))
    return out


def describe(node) -> str:
    """``'encoder/MatMul' (MatMul)`` for messages."""
    return f"'{node.name}' ({node.op})"
