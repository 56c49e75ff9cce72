"""Restore a legacy TF1 model: graph, session and variable values.

::

    model = restore("model.ckpt-1000")      # graph + session + values
    model.tensor("hidden2/Relu")
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from graphsurgeon._src import guess, safety, select, subgraph, tf2
from graphsurgeon._src.errors import (
    CheckpointNotFoundError,
    ConfigError,
    PlanError,
    TensorNotFoundError,
    UnsafeGraphError,
)
from graphsurgeon._src.mixins import agree, counted, series
from graphsurgeon._src.model import Model
from graphsurgeon._src.rules import Rules, is_optimizer_state
from graphsurgeon._src.storage.checkpoint import CheckpointReader, import_meta_graph
from graphsurgeon._src.storage.paths import resolve
from graphsurgeon._src.storage.session import assign, new_session, variables_by_name
from graphsurgeon._src.surgery.plan import make_plan

tf1 = tf.compat.v1

INPUTS_COLLECTION = "graphsurgeon_inputs"
OUTPUTS_COLLECTION = "graphsurgeon_outputs"


def graph_variable_info(graph: tf.Graph) -> dict:
    """``{name: (shape, dtype)}`` of the graph's global variables; one part of a partitioned variable
    maps to ``(shape, dtype, full_name, full_shape, var_offset)``."""
    out = {}
    with graph.as_default():
        for v in tf1.global_variables():
            name = select.normalize_name(v.name)
            shape = tuple(v.shape.as_list())
            dtype = v.dtype.base_dtype.name
            ssi = v.to_proto().save_slice_info_def
            if ssi.full_name:
                out[name] = (shape, dtype, ssi.full_name, tuple(ssi.full_shape), tuple(ssi.var_offset))
            else:
                out[name] = (shape, dtype)
    return out


def load_values(session, graph, reader: CheckpointReader, restore_map: dict, graph_info: dict) -> None:
    """Initialize every global variable of ``graph``: those in ``restore_map``
    (``{graph name: checkpoint name}``) from the checkpoint (see :func:`~graphsurgeon._src.storage.session.assign`),
    the others with their own initializers.

    Raises:
      PlanError: a restored value holds NaN (a diverged run, a damaged file): every output computed
        from it would be NaN, so it is refused, naming the tensor.
    """
    variables = variables_by_name(graph)
    fresh = [variables[n].initializer for n in variables if n not in restore_map]
    if fresh:
        session.run(fresh)

    def read(name):
        value = reader.read(restore_map[name])
        _check_no_nan(reader, restore_map[name], value)
        info = graph_info[name]
        if len(info) > 2:  # one part of a partitioned variable
            offset, shape = info[4], info[0]
            value = value[tuple(slice(o, o + s) for o, s in zip(offset, shape))]
        return value

    assign(session, ((variables[n], read(n)) for n in sorted(restore_map)))


def _check_no_nan(reader: CheckpointReader, name: str, value) -> None:
    value = np.asarray(value)
    if (value.dtype.kind in "fc" or value.dtype.name == "bfloat16") and np.isnan(value).any():
        n = int(np.isnan(value).sum())
        raise PlanError(f"checkpoint {reader.prefix}: tensor '{name}' holds {counted(n, 'NaN value')} of {value.size} (a "
                        "diverged run or a damaged file); every output computed from it would be NaN: restore "
                        f"another checkpoint, or drop it from the restore (rules=Rules(drop=['{name}'])) so that its "
                        "variable is initialized anew")


def restore(path, *, graph=None, tags=("serve",), rules: Rules | None = None, outputs=None, inputs=None,
            restore_optimizer: bool = True, allow_missing: bool = False, allow_cast: bool = False,
            allow_unsafe_ops: bool = False, values: bool = True, threads: int = 0, meta_graph=None, **replaced) -> Model:
    """Restore a model from a checkpoint prefix or directory, a ``.meta`` file, a frozen
    GraphDef, or a TF1 or TF2 SavedModel directory (a TF2 one's serving function is flattened into
    one graph by :mod:`graphsurgeon._src.tf2`; its variables keep their names and values).

    Args:
      path: where the model is (see :func:`graphsurgeon._src.storage.paths.resolve`).
      graph: a ``tf.Graph`` you built in Python; its variables are restored by name
        (for checkpoints without a ``.meta`` file). It is not copied: the returned
        model uses it.
      tags: SavedModel tags.
      rules: a :class:`graphsurgeon.Rules` on the checkpoint's names, as ``migrate`` takes them:
        ``keep`` / ``drop`` patterns (scope globs or ``re:``, matched on ``/`` boundaries) choose
        which checkpoint tensors are restored (graph variables that would read the others are
        initialized with their initializers); ``rename`` regex pairs, ``map_scope`` scope pairs
        and presets such as ``rnn-cell-names`` map checkpoint names to graph names. ``cast`` and
        ``merge`` are migration settings and are refused.
      outputs: tensor names to keep; if given the imported graph is pruned to what
        computes them (old heads, training ops and stray copies are dropped).
      inputs: tensor names to feed: any tensor (a queue's dequeue output, an inner layer) is
        replaced by a placeholder of its dtype and static shape, and what only computed it is
        pruned; ``model.tensor(name)`` then gives the placeholder (see ``Model.aliases``).
      restore_optimizer: if False, optimizer slots and ``global_step`` are initialized
        anew instead of restored.
      allow_missing: initialize graph variables the checkpoint lacks instead of raising.
      allow_cast: restore values whose checkpoint dtype differs from the variable's, cast
        (``plan`` reports each as "cast from ..."); without it that is a :class:`PlanError`.
      allow_unsafe_ops: run a graph holding file-system or Python-callback ops (see
        :func:`graphsurgeon._src.safety.unsafe_ops`); without it that is an :class:`UnsafeGraphError`.
      values: if False, build the graph and plan only: no session, nothing read.
      threads: session thread count (0: TensorFlow's default).
      meta_graph: ``path``'s MetaGraphDef as :func:`graphsurgeon._src.tf2.read_meta_graph` read it (changed in place).

    Returns:
      A :class:`graphsurgeon.Model`; ``model.plan`` holds the per-variable plan.

    Raises:
      CheckpointNotFoundError, WrongPathKindError, NoMetaGraphError, UnregisteredOpError,
      CorruptCheckpointError, PatternError (a ``keep`` / ``drop`` pattern matches no checkpoint
      name), PlanError (shape mismatch, missing variables, a ``rename`` / ``map_scope`` rule that
      matches no checkpoint name), ConfigError (``include`` / ``exclude`` / ``rename=`` given:
      ``rules`` replaced them).
    """
    _refuse_replaced(replaced)
    source = resolve(path, tags)
    imported = _import(source, inputs, outputs, meta_graph) if graph is None else _Imported(graph)
    graph = imported.graph
    info = graph_variable_info(graph)
    reader = _reader(source, info)
    entries = {n: (e.shape, e.dtype.name) for n, e in (reader.entries.items() if reader else ())}
    plan = make_plan(info, entries, rules=rules, restore_optimizer=restore_optimizer, inputs=imported.inputs,
                     outputs=imported.outputs)
    left_out = sorted(n for n in imported.variables if n not in info and not is_optimizer_state(n))
    model = Model(graph, None, source, {v.name: v.status for v in plan.variables if v.status != "dropped"},
                  plan.restore_map(), imported.inputs, imported.outputs, plan=plan, reader=reader,
                  aliases=imported.aliases, unsafe_ops=imported.unsafe_ops, left_out=left_out)
    return load(model, allow_missing=allow_missing, allow_cast=allow_cast, allow_unsafe_ops=allow_unsafe_ops,
                threads=threads) if values else model


_REPLACED = {"include": "rules=Rules(keep=[...])", "exclude": "rules=Rules(drop=[...])",
             "rename": "rules=Rules(map_scope=[('CKPT/', 'GRAPH/')]) or Rules(rename=[(REGEX, REPLACEMENT)])"}


def _refuse_replaced(replaced: dict) -> None:
    """A clear error for the arguments ``rules`` replaced; Python's own for any other."""
    for name in replaced:
        if name in _REPLACED:
            raise ConfigError(f"restore({name}=...): replaced by {_REPLACED[name]} (patterns and names of the "
                              "checkpoint's tensors)")
    if replaced:
        raise TypeError(f"restore() got an unexpected keyword argument '{next(iter(replaced))}'")


def _reader(source, info):
    """The checkpoint reader of ``source``, or None when the graph has no variables and ``source`` no
    name-based checkpoint (a graph cut below every variable still reads its checkpoint's index, so that
    the plan lists what it drops, as it does for any other cut)."""
    if not info and (source.kind == "tf2_saved_model" or not source.prefix):
        return None
    if source.kind == "tf2_saved_model":
        return tf2.values(source, list(info))
    if not source.prefix:
        expected = (os.path.join(source.export_dir, "variables", "variables") if source.export_dir
                    else source.meta_path[:-5] if source.meta_path else source.path)
        raise CheckpointNotFoundError(
            f"{source.path}: the graph has {len(info)} variables but there is no checkpoint data beside it "
            f"(expected {expected}.index)"
        )
    return CheckpointReader(source.prefix)


@dataclasses.dataclass
class _Imported:
    """A graph as :func:`_import` made it: its input and output names, ``aliases`` (see
    ``Model.aliases``), ``unsafe_ops`` and the names of every variable of the source graph, before
    pruning (a graph built in Python: none of these)."""

    graph: tf.Graph
    inputs: list = dataclasses.field(default_factory=list)
    outputs: list = dataclasses.field(default_factory=list)
    aliases: dict = dataclasses.field(default_factory=dict)
    unsafe_ops: list = dataclasses.field(default_factory=list)
    variables: list = dataclasses.field(default_factory=list)


def _import(source, inputs, outputs, meta=None) -> _Imported:
    """``source``'s graph (``meta``: its meta graph read already): legacy placeholder shapes fixed, ``inputs``
    turned into placeholders, pruned to ``outputs``."""
    meta = tf2.read_meta_graph(source) if meta is None else meta
    variables = [n.name for n in meta.graph_def.node if n.op in subgraph.VARIABLE_OPS]
    where = source.meta_path or source.graph_path or source.export_dir
    subgraph.fix_legacy_placeholder_shapes(meta.graph_def)
    aliases = {}
    for name in select.as_list(inputs):
        new = _as_placeholder(meta, _check_node(meta, name, where), where)
        if new != _full(name):
            aliases[_full(name)] = new
    if outputs:
        outputs = [_check_node(meta, o, where) for o in select.as_list(outputs)]
        meta = subgraph.prune_meta_graph(meta, outputs)
    graph = tf.Graph()
    import_meta_graph(meta, graph, where)
    if outputs:
        ins, outs = [n.name + ":0" for n in subgraph.placeholders(meta.graph_def)], [_full(o) for o in outputs]
    else:
        ins, outs = _signature_of(meta)
    return _Imported(graph, ins, outs, aliases, safety.unsafe_ops(meta), variables)


def load(model: Model, *, allow_missing: bool = False, allow_cast: bool = False, allow_unsafe_ops: bool = False,
         threads: int = 0) -> Model:
    """Carry out ``model.plan`` on a model built with ``restore(..., values=False)``: check it,
    open a session, read the restored variables and initialize all others (new heads
    included) in one pass.

    Side effects: sets ``model.session``; updates ``model.status`` and
    ``model.checkpoint_names`` from the plan. Returns ``model``.

    Raises:
      PlanError: shape mismatches, missing variables unless ``allow_missing``, dtype casts unless
        ``allow_cast``.
      UnsafeGraphError: the graph holds file-system or Python-callback ops, unless ``allow_unsafe_ops``.
      CorruptCheckpointError: a tensor cannot be read.
    """
    plan = model.plan
    plan.check(allow_missing=allow_missing, allow_cast=allow_cast)
    if not allow_unsafe_ops:
        found = model.unsafe_ops
        if found:
            n = len(found)
            raise UnsafeGraphError(
                f"{model.source.path if model.source else 'the graph'} holds {counted(n, 'op')} that "
                f"{agree(n, 'touches', 'touch')} files or {agree(n, 'runs', 'run')} Python: "
                f"{series((f'{name} ({op})' for name, op in found), 6)}; graphsurgeon "
                f"runs a graph only when you trust it: pass allow_unsafe_ops=True, or cut the graph below "
                f"{agree(n, 'it', 'them')}")
    info = graph_variable_info(model.graph)
    model.status = {v.name: v.status for v in plan.variables if v.status != "dropped"}
    model.checkpoint_names = plan.restore_map()
    model.session = new_session(model.graph, threads)
    if info:
        load_values(model.session, model.graph, model.reader, plan.restore_map(), info)
    return model


def _full(name: str) -> str:
    return name if ":" in name else name + ":0"


def _as_placeholder(meta, tensor: str, where: str) -> str:
    """Turn ``tensor`` of ``meta`` into a placeholder of its dtype and static shape (in place);
    returns the placeholder's tensor name."""
    gd = meta.graph_def
    op = subgraph.node_name(tensor)
    node = next(n for n in gd.node if n.name == op)
    if node.op == "Placeholder":
        if _full(tensor) != f"{op}:0":
            raise TensorNotFoundError(f"{where}: op '{op}' has no output '{tensor}' (a placeholder has one: '{op}:0')")
        return f"{op}:0"
    scratch = tf.Graph()
    with scratch.as_default():  # the tensor's dtype and shape as TensorFlow infers them
        tf.graph_util.import_graph_def(subgraph.extract_sub_graph(gd, [op]), name="")
    try:
        t = scratch.get_tensor_by_name(_full(tensor))
    except (KeyError, ValueError):
        raise TensorNotFoundError(f"{where}: op '{op}' has no output '{tensor}'") from None
    if op in subgraph.loop_nodes(gd):
        raise TensorNotFoundError(f"{where}: '{tensor}' is inside a while loop; an input must be outside it")
    if t.dtype != t.dtype.base_dtype:  # a variable itself (or an op passing its reference on), not a value
        raise TensorNotFoundError(
            f"{where}: '{tensor}' is a reference to variable state ({node.op}), not a value an input can replace; "
            f"name a tensor that reads it (such as '{op}/read:0' for a variable)")
    return subgraph.replace_with_placeholder(gd, _full(tensor), t.dtype, t.shape)


def _check_node(meta, name: str, where: str) -> str:
    name = str(getattr(name, "name", name))
    op = subgraph.node_name(name)
    if not any(n.name == op for n in meta.graph_def.node):
        near = select.closest(op, [n.name for n in meta.graph_def.node])
        raise TensorNotFoundError(f"{where}: no op '{op}' in the graph; closest: {', '.join(near)}")
    return name


def _signature_of(meta) -> tuple[list, list]:
    """Inputs and outputs: graphsurgeon's own collections, a SavedModel signature, or guesses."""
    col = meta.collection_def
    if INPUTS_COLLECTION in col and OUTPUTS_COLLECTION in col:
        return list(col[INPUTS_COLLECTION].node_list.value), list(col[OUTPUTS_COLLECTION].node_list.value)
    for key in ("serving_default", *sorted(meta.signature_def)):
        if key in meta.signature_def:
            sig = meta.signature_def[key]
            return ([sig.inputs[k].name for k in sorted(sig.inputs)], [sig.outputs[k].name for k in sorted(sig.outputs)])
    return ([n.name + ":0" for n in subgraph.placeholders(meta.graph_def)], guess.likely_outputs(meta.graph_def))
