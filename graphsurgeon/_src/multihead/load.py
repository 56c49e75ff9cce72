"""Read task models as merge-heads takes them: paths expanded, each model read as a piece
(input -> output, weights lifted out) split at the features into backbone and head.

Formats: TF1 checkpoints with a ``.meta`` graph, frozen GraphDefs, TF1 SavedModels (through
:mod:`graphsurgeon._src.storage`), and Keras ``.h5`` files and Keras-made SavedModels (read by
:mod:`graphsurgeon._src.storage.keras_files`, rebuilt by
:mod:`graphsurgeon._src.multihead.keras_graph`).
"""
from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from graphsurgeon._src import guess, select, subgraph
from graphsurgeon._src.errors import (
    CheckpointNotFoundError,
    MergeHeadsError,
    TensorNotFoundError,
)
from graphsurgeon._src.mixins import listed
from graphsurgeon._src.multihead import keras_graph
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.restore import INPUTS_COLLECTION, OUTPUTS_COLLECTION
from graphsurgeon._src.storage.checkpoint import CheckpointReader, read_meta_graph
from graphsurgeon._src.storage.files import read_lines
from graphsurgeon._src.storage.keras_files import is_keras_path, read_keras
from graphsurgeon._src.storage.paths import SAVED_MODEL_FILES, resolve, retrain_model, retrain_saved_model

_MODEL_FILES = (".h5", ".hdf5", ".pb", ".pbtxt", ".meta")
LABELS_FILE = "labels.txt"


@dataclasses.dataclass
class TaskModel:
    """One task model, read.

    Attributes:
      path: as given; ``kind``: ``checkpoint``, ``frozen``, ``saved_model`` or ``keras``.
      backbone, head: its pieces (input -> features, features -> output).
      read: weight name -> ndarray (from the checkpoint, the graph's constants or the Keras file).
      labels: class names from a ``labels.txt`` beside the model, or None.
    """

    path: str
    kind: str
    backbone: pieces.Piece
    head: pieces.Piece
    read: Callable
    labels: list | None = None

    def values(self, names) -> list:
        return [self.read(n) for n in names]


def _is_model_dir(path: str) -> bool:
    if any(os.path.isfile(os.path.join(path, f)) for f in SAVED_MODEL_FILES + ("checkpoint",)):
        return True
    return len(glob.glob(os.path.join(glob.escape(path), "*.index"))) == 1


def _models_in(directory: str, depth: int = 1) -> list[str]:
    """Models in a directory: model directories, checkpoint prefixes and model files in it, the
    ``saved_model/`` of each ``retrain`` output directory in it, and each sub-directory that holds
    exactly one model (``tasks/sentiment/frozen.pb``)."""
    out = []
    for name in sorted(os.listdir(directory), key=select.natural_key):
        p = os.path.join(directory, name)
        if os.path.isdir(p):
            retrained = retrain_model(p)  # refuses one that also holds checkpoint prefixes
            if _is_model_dir(p) or is_keras_path(p):
                out.append(p)
            elif retrained:
                out.append(retrained)
            elif depth > 0:
                inner = _models_in(p, depth - 1)
                out += inner if len(inner) == 1 else []
        elif name.endswith(".index"):
            out.append(p.removesuffix(".index"))
        elif name.endswith(_MODEL_FILES) and not (name.endswith(".meta") and os.path.isfile(p[:-5] + ".index")):
            out.append(p)
    return out


def expand(specs) -> list[str]:
    """Model paths from ``specs``: a glob gives its matches, ``retrain``'s output directory (holding
    ``checkpoint/`` and ``saved_model/``) its ``saved_model/``, another directory that is not itself a
    model the models in it (model directories, checkpoint prefixes, ``.meta``, ``.pb``, ``.h5``,
    retrain outputs, and sub-directories holding exactly one model), anything else is one model.
    Order: as given, each expansion sorted naturally.

    Raises:
      MergeHeadsError: no models at all, or a glob or directory that holds none.
      WrongPathKindError: a retrain output directory that also holds checkpoint prefixes (see
        :func:`graphsurgeon._src.storage.paths.retrain_model`).
    """
    out = []
    for spec in select.as_list(specs):
        if glob.has_magic(spec):
            found = sorted(glob.glob(spec), key=select.natural_key)
            found = [f[: -len(".index")] if f.endswith(".index") else f for f in found]
            found = [retrain_model(f) or f for f in found]
        elif retrain_model(spec):
            found = [retrain_model(spec)]
        elif os.path.isdir(spec) and not _is_model_dir(spec):
            found = _models_in(spec)
        else:
            found = [spec]
        if not found:
            raise MergeHeadsError(f"{spec}: matches no model (expected checkpoint prefixes, .meta, .pb, .h5 files or "
                                  "model directories)")
        out += [f for f in found if f not in out]
    if not out:
        raise MergeHeadsError("no models given; merge-heads needs at least one task model")
    return out


def default_names(paths: list[str]) -> list[str]:
    """Task names from paths. Of several models, each lying at most one directory below the models'
    common directory is named by the first path component below it, without a model file extension
    (``tasks/sentiment/model.ckpt-900`` -> ``sentiment``, ``tasks/topic.h5`` -> ``topic``); each lying
    deeper takes its own name (models far apart: ``/data/zoo/gan`` and ``/home/me/runs/ganB``); if two
    names are then the same, every model is named by the first path component below the common
    directory. A model's own name, and a single model's name: its file's (``sentiment.h5`` ->
    ``sentiment``), its directory's if it is one, or that of the directory holding it if it is a
    checkpoint prefix (``sentiment/model.ckpt-900`` -> ``sentiment``), or of the retrain output
    holding it as ``saved_model/`` or ``checkpoint/model.ckpt``. A retrain output directory counts as
    its ``saved_model/`` (what :func:`expand` gives for it), so it is named after itself: ``runs/b``
    beside ``a`` is ``b``, not ``runs``."""
    full = [os.path.abspath(retrain_saved_model(p) or p) for p in paths]
    if len(full) == 1:
        return [_single_name(full[0])]
    common = os.path.commonpath(full)
    common = os.path.dirname(common) if common in full else common
    below = _names_below(full, common)
    names = [b if len(os.path.relpath(p, common).split(os.sep)) <= 2 else _single_name(p) for p, b in zip(full, below)]
    return names if len(set(names)) == len(names) else below


def _single_name(p: str) -> str:
    run = os.path.dirname(os.path.dirname(p))  # a retrain output holding p in checkpoint/
    if retrain_saved_model(os.path.dirname(p)) == p:
        return os.path.basename(os.path.dirname(p))
    if os.path.dirname(p) == os.path.join(run, "checkpoint") and retrain_saved_model(run):
        return os.path.basename(run)
    checkpoint = not os.path.isdir(p) and not p.endswith(_MODEL_FILES) and os.path.dirname(p) != os.getcwd()
    return _names_below([p], os.path.dirname(os.path.dirname(p)) if checkpoint else os.path.dirname(p))[0]


def _names_below(full: list[str], common: str) -> list[str]:
    """Each path's first component below ``common``, without a model file extension."""
    names = []
    for p in full:
        first = os.path.relpath(p, common).split(os.sep)[0]
        for ext in _MODEL_FILES:
            first = first.removesuffix(ext)
        names.append(first)
    return names


def check_names(names: list[str], what: str, arg: str = "task_names") -> None:
    """Raise :class:`MergeHeadsError` on an empty or duplicate task name; the message points at the
    argument ``arg`` that gives the names."""
    seen, dups = set(), []
    for n in names:
        if not n or not n.strip():
            raise MergeHeadsError(f"{what}: an empty task name")
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    if dups:
        raise MergeHeadsError(f"{what}: duplicate {listed('task name', map(repr, dups), 5)}; every task "
                              f"needs its own name (see {arg}=)")


def read_names_file(path: str, count: int) -> list[str]:
    """Task names, one per line, for ``count`` models (blank lines are skipped)."""
    try:
        names = [line.strip() for line in read_lines(path) if line.strip()]
    except OSError as e:
        raise CheckpointNotFoundError(f"{path}: {e.strerror}") from None
    if len(names) != count:
        raise MergeHeadsError(f"{path}: {len(names)} task names for {count} models; give one name per model, "
                              "in the models' order")
    check_names(names, path)
    return names


def _labels(path: str) -> list | None:
    base = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    candidates = [os.path.join(base, LABELS_FILE)]
    if os.path.basename(base) in ("saved_model", "checkpoint"):  # retrain's layout
        candidates.append(os.path.join(os.path.dirname(base), LABELS_FILE))
    for c in candidates:
        if os.path.isfile(c):
            return [line for line in read_lines(c) if line.strip()]
    return None


def load(path: str, features: str, *, input=None, output=None, tags=("serve",)) -> TaskModel:
    """Read one task model and split it at ``features``.

    Raises:
      TensorNotFoundError: ``features`` (or ``input``/``output``) is not in the model; names the model.
      MergeHeadsError: no single input or output can be found, the head is not a head, or the input or the
        features are a scalar (rank 0: no batch axis).
    """
    if path.endswith(".keras"):
        raise MergeHeadsError(f"{path}: a Keras 3 .keras file; graphsurgeon reads tf_keras .h5 files and Keras-made "
                              "SavedModels (save the model with tf_keras as .h5 or as a SavedModel directory)")
    if is_keras_path(path):
        piece, read, feats = _load_keras(path, features, input, output)
        kind = "keras"
    else:
        piece, read, kind, feats = _load_graph(path, features, input, output, tags)
    backbone, head = pieces.split(piece, feats, path)
    pieces.refuse_scalar(pieces.input_spec(backbone)[1], f"the input {backbone.input}", path,
                         "give input=TENSOR, a tensor with a batch axis")
    pieces.refuse_scalar(pieces.input_spec(head)[1], f"features={feats}", path,
                         "give features=TENSOR, a tensor with a batch axis")
    pieces.check_placeholders(backbone, path, "backbone")
    pieces.check_placeholders(head, path, "head")
    return TaskModel(path, kind, backbone, head, read, _labels(path))


def _load_keras(path, features, input, output):
    piece, values = keras_graph.rebuild(read_keras(path), path)
    layers = {n.name[: -len("/output")] for n in piece.graph_def.node if n.name.endswith("/output")}

    def tensor(name, arg):
        return _check(piece.graph_def, keras_graph.output_name(name) if name in layers else name, path, arg)

    feats = tensor(features, "features")
    if input and pieces.tensor_name(input) != piece.input and input != piece.input.rsplit("/", 1)[0]:
        raise MergeHeadsError(f"{path}: input={input} is not the Keras model's input ({piece.input}); a Keras "
                              "model is fed at its input layer")
    if output:
        out = tensor(output, "output")
        gd = subgraph.extract_sub_graph(piece.graph_def, [out])
        kept = {n.name for n in gd.node}
        piece = pieces.Piece(gd, piece.input, out, {n: w for n, w in piece.weights.items() if n in kept})
    return piece, values.__getitem__, feats


def _check(graph_def, name: str, where: str, arg: str) -> str:
    """``name`` as a tensor name, if ``graph_def`` has its op (``arg``: the argument that named it)."""
    op = subgraph.node_name(name)
    nodes = [n.name for n in graph_def.node]
    if op not in nodes:
        near = select.closest(op, nodes)
        raise TensorNotFoundError(f"{where}: {arg}={name} is not a tensor of this model; closest: "
                                  f"{', '.join(near)}")
    return pieces.tensor_name(name)


def _load_graph(path, features, input, output, tags):
    source = resolve(path, tags)
    meta = read_meta_graph(source)
    gd = meta.graph_def
    subgraph.fix_legacy_placeholder_shapes(gd)
    feats = _check(gd, features, path, "features")
    if input:
        input = _as_input(gd, _check(gd, input, path, "input"), path)
    else:
        needed = subgraph.upstream(gd, [feats])
        phs = [n.name for n in subgraph.placeholders(gd) if n.name in needed]
        pipes = [] if phs else guess.pipeline_outputs(gd, needed)
        if pipes:
            raise MergeHeadsError(f"{path}: features={feats} reads no placeholder: its data comes from "
                                  f"{', '.join(pipes)} (an input queue or dataset); name the tensor to feed with "
                                  f"input={pipes[0]}")
        if len(phs) != 1:
            raise MergeHeadsError(f"{path}: features={feats} reads {len(phs)} placeholders "
                                  f"({', '.join(phs) or 'none'}); name the input with input=")
        input = phs[0] + ":0"
    output = _check(gd, output, path, "output") if output else _choose_output(meta, feats, input, path)
    piece, constants = pieces.lift(gd, output, input)
    reader = CheckpointReader(source.prefix) if source.prefix else None

    def read(name: str) -> np.ndarray:
        if name in constants:
            return constants[name]
        if reader is None or name not in reader.entries:
            raise MergeHeadsError(f"{path}: no value for variable '{name}' in "
                                  f"{source.prefix or 'the model (no checkpoint beside it)'}")
        return reader.read(name)

    return piece, read, source.kind, feats


def _as_input(gd, tensor: str, where: str) -> str:
    node = next(n for n in gd.node if n.name == subgraph.node_name(tensor))
    if node.op == "Placeholder":
        return tensor
    dtype, shape = pieces.tensor_spec(pieces.Piece(gd, "", tensor, {}), tensor)
    if subgraph.node_name(tensor) in subgraph.loop_nodes(gd):
        raise MergeHeadsError(f"{where}: input={tensor} is inside a while loop")
    return subgraph.replace_with_placeholder(gd, tensor, dtype, shape)


def _declared_outputs(meta) -> list[str]:
    col, out = meta.collection_def, []
    if OUTPUTS_COLLECTION in col and INPUTS_COLLECTION in col:
        out += list(col[OUTPUTS_COLLECTION].node_list.value)
    for key in ("serving_default", *sorted(meta.signature_def)):
        if key in meta.signature_def:
            out += [t.name for _, t in sorted(meta.signature_def[key].outputs.items())]
    return out or guess.likely_outputs(meta.graph_def)


def _choose_output(meta, features: str, input: str, where: str) -> str:
    """The model's output: of its declared (or likely) outputs, the floating-point ones computed
    from ``features`` and ``input`` alone, the one computed from all the others (probabilities over
    logits)."""
    gd = meta.graph_def
    by_name = {n.name: n for n in gd.node}
    fop, iop = subgraph.node_name(features), subgraph.node_name(input)
    cands = []
    for t in _declared_outputs(meta):
        t = pieces.tensor_name(t)
        if subgraph.node_name(t) not in by_name or t in cands or subgraph.node_name(t) == fop:
            continue
        up = subgraph.upstream(gd, [t], by_name)
        if fop in up and all(n.name == iop for n in subgraph.placeholders(gd) if n.name in up):
            cands.append(t)
    if cands:
        scratch = tf.Graph()
        with scratch.as_default():
            tf.graph_util.import_graph_def(subgraph.extract_sub_graph(gd, cands), name="")
        cands = [t for t in cands if scratch.get_tensor_by_name(t).dtype.is_floating]
    last = [t for t in cands if all(subgraph.node_name(o) in subgraph.upstream(gd, [t], by_name) for o in cands)]
    if len(last) != 1:
        raise MergeHeadsError(f"{where}: cannot tell the model's output above features={features} "
                              f"(candidates: {', '.join(cands) or 'none'}); name it with output=")
    return last[0]
