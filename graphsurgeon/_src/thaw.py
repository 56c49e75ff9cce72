"""Thaw a frozen graph: turn chosen weight-like constants back into variables, so that the upper
layers of a frozen ``.pb`` (retrain.py's Inception graph is the type) can be fine-tuned.

::

    result = thaw("frozen/graph.pb", ["hidden3", "output"], "thawed/")
    model = graphsurgeon.restore("thawed/")   # the thawed constants are variables, the rest constants

The thawed graph computes what the frozen one computes: each chosen ``Const`` becomes a resource
variable of the same name, dtype and shape whose value, saved in ``DIR/model.ckpt``, is the
constant's, bit for bit; its readers read the variable instead. Nothing else changes.
"""
from __future__ import annotations

import dataclasses
import itertools
import os

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from graphsurgeon._src import rebind, select, weights
from graphsurgeon._src.errors import (
    ConfigError,
    PatternError,
    WrongPathKindError,
)
from graphsurgeon._src.storage.checkpoint import read_meta_graph
from graphsurgeon._src.storage.checkpointdir import write_checkpoint_dir
from graphsurgeon._src.storage.paths import resolve
from graphsurgeon._src.storage.session import fed_variable
from graphsurgeon._src.storage.staging import check_destination

tf1 = tf.compat.v1


@dataclasses.dataclass
class ThawResult:
    """What :func:`thaw` did.

    Attributes:
      checkpoint: the prefix written (``DIR/model.ckpt``; its meta graph is ``DIR/model.ckpt.meta``).
      variables: ``{name: shape}`` of the constants that became variables, sorted by name.
      nbytes: the bytes of their values.
      constants_left: how many of the graph's weight-like constants were left as constants (its other
        constants, such as shapes, axes and scalars, are not counted).
    """

    checkpoint: str
    variables: dict
    nbytes: int
    constants_left: int

    def to_dict(self) -> dict:
        return {"version": 1, "checkpoint": self.checkpoint, "meta_graph": self.checkpoint + ".meta",
                "variables": {k: list(v) for k, v in self.variables.items()}, "bytes": self.nbytes,
                "constants_left": self.constants_left}


def thaw(graph_path, scopes, out_dir, *, overwrite: bool = False) -> ThawResult:
    """Turn the weight-like constants of the frozen graph ``graph_path`` that ``scopes`` match into
    variables; write their values as a checkpoint at ``out_dir`` with the graph's meta graph beside it.

    Args:
      graph_path: a frozen GraphDef (``.pb`` / ``.pbtxt``); it is only read.
      scopes: patterns (:mod:`graphsurgeon._src.select`) matched against the names of the weight-like
        constants (:mod:`graphsurgeon._src.weights`; ``graphsurgeon inspect`` lists them).
      out_dir: the directory to write (``model.ckpt.*``, ``model.ckpt.meta``, ``checkpoint``); a new
        directory beside the graph is fine, but not the graph's path, its own directory nor one that
        holds it (replacing it would delete the graph).
      overwrite: replace an existing ``out_dir``.

    Raises:
      WrongPathKindError: ``graph_path`` is not a frozen GraphDef.
      PatternError: a pattern matches no weight-like constant; the message names the closest scopes.
      ConfigError: ``out_dir`` exists (without ``overwrite``), is the graph, is or holds the graph's directory, or
        cannot be written (a file above it, no permission, a read-only file system).
    """
    source = resolve(graph_path)
    if source.kind != "frozen":  # (a file of another name is taken for a V1 checkpoint, whatever it holds)
        what = ("is not a .pb or .pbtxt file" if source.kind == "checkpoint" and os.path.isfile(graph_path)
                else f"is a {source.kind.replace('_', ' ')}, not a frozen GraphDef")
        raise WrongPathKindError(f"{graph_path} {what}; thaw reads a .pb or .pbtxt graph whose weights are constants")
    graph_def = read_meta_graph(source).graph_def
    candidates = weights.weight_constants(graph_def)
    if not select.as_list(scopes):
        raise ConfigError("scopes=: name the scopes to thaw (graphsurgeon inspect lists the weight-like constants)")
    if not candidates:
        raise PatternError(f"{graph_path} has no weight-like constants (float constants feeding MatMul, Conv2D, "
                           "BiasAdd, batch normalization or Gather weight inputs, a layer's bias added "
                           "with Add, or a per-channel scale or offset on a layer's output) to thaw")
    chosen = select.match(scopes, candidates, what="weight-like constant")
    _check_out_dir(out_dir, source.graph_path)
    check_destination(out_dir, f"out_dir={out_dir}")
    meta, values = thaw_graph(graph_def, chosen, where=graph_path)
    prefix = write_checkpoint_dir(meta, values, out_dir, overwrite=overwrite)
    return ThawResult(prefix, {n: tuple(values[n].shape) for n in chosen}, sum(v.nbytes for v in values.values()),
                      len(candidates) - len(chosen))


def _check_out_dir(out_dir: str, graph_path: str) -> None:
    """Refuse an ``out_dir`` that is the graph itself, its directory or one that holds it: writing it
    replaces the whole directory (with ``overwrite``), which would delete the graph. A new directory
    beside the graph is fine. The graph's directory is taken both as named and with links resolved."""
    out = os.path.realpath(out_dir)
    named = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(graph_path))), os.path.basename(graph_path))
    for graph in dict.fromkeys([named, os.path.realpath(graph_path)]):  # as named first
        home = os.path.dirname(graph)
        if out == graph:
            raise ConfigError(f"out_dir={out_dir} is the graph {graph}; thaw writes a whole directory and would "
                              f"replace the graph with it: name a new directory, such as {_unused(home)}")
        if out == home:
            raise ConfigError(f"out_dir={out_dir} is the graph's directory {home}; thaw writes a whole directory and "
                              f"would replace the graph with it: name a new directory, such as {_unused(home)}")
        if home.startswith(os.path.join(out, "")):
            raise ConfigError(f"out_dir={out_dir} holds the graph {graph}; thaw writes a whole directory and would "
                              "replace the graph with it: name a new directory that does not hold the graph")


def _unused(home: str) -> str:
    """A directory to suggest beside the graph that does not exist: ``HOME/thawed``, else ``HOME/thawed_2``, …"""
    return next(p for p in (os.path.join(home, "thawed" + (f"_{k}" if k > 1 else "")) for k in itertools.count(1))
                if not os.path.lexists(p))


def thaw_graph(graph_def, names, *, where: str = "graph"):
    """``(MetaGraphDef, {name: value})``: ``graph_def`` with the ``Const`` nodes ``names`` replaced by
    resource variables of the same names (zeros initializer; their values are returned, for a
    checkpoint); every other op keeps its name (:func:`graphsurgeon._src.rebind.import_with_variables`).
    Their readers read a ``ReadVariableOp`` of their own under ``NAME/`` (``NAME/ReadVariableOp`` unless
    that name is taken); control dependencies and colocation hints (``_class``) naming
    them are dropped."""
    names = set(names)
    by_name = {n.name: n for n in graph_def.node}
    values = {n: tf.make_ndarray(by_name[n].attr["value"].tensor) for n in sorted(names)}
    rest = graph_pb2.GraphDef()
    rest.CopyFrom(graph_def)
    for node in rest.node:
        _drop_colocation(node, names)

    def maker(name):
        def make():
            v = fed_variable(name, values[name].shape, values[name].dtype, trainable=True)
            with tf1.name_scope(name + "/"):
                return v.value()
        return make

    meta = rebind.import_with_variables(rest, {n: maker(n) for n in values}, where=where, what="thawed")
    return meta, values


def _drop_colocation(node, names) -> None:
    """Remove ``loc:@NAME`` colocation hints for ``names`` from ``node`` (in place)."""
    if "_class" not in node.attr:
        return
    kept = [c for c in node.attr["_class"].list.s if c.decode("utf-8", "replace")[len("loc:@"):] not in names]
    if kept:
        del node.attr["_class"].list.s[:]
        node.attr["_class"].list.s.extend(kept)
    else:
        del node.attr["_class"]
