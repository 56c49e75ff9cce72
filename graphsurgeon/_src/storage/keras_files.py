"""Read Keras models as files: the model's config (JSON) and its weights by layer.

Two formats, both as ``tf_keras`` (Keras 2) writes them:

* ``.h5`` files (``model.save("m.h5")``): the ``model_config`` attribute and the
  ``model_weights/<layer>/`` groups, read with h5py (the ``keras`` extra);
* Keras-made SavedModels (``model.save("dir")``): ``keras_metadata.pb`` holds the config; the
  weights are read from ``variables/variables`` through the checkpoint's object graph
  (``root -> layer_with_weights-<i> -> kernel``, each layer named by its metadata), so names do
  not depend on name scopes.

Nothing here imports Keras. Weights come back as ``{layer name: {weight name: ndarray}}``
(``{"dense_1": {"kernel": ..., "bias": ...}}``).
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from graphsurgeon._src.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    MergeHeadsError,
)
from graphsurgeon._src.storage.bundle import get_varint
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.objectgraph import read_graph

try:
    import h5py
except ImportError:  # the optional "keras" extra
    h5py = None

KERAS_METADATA = "keras_metadata.pb"


@dataclasses.dataclass
class KerasFile:
    """A Keras model read from disk: ``config`` is the model's ``{"class_name", "config"}``;
    ``weights`` is ``{layer name: {weight name: ndarray}}``; ``path`` is the file or directory."""

    path: str
    config: dict
    weights: dict


def is_keras_path(path: str) -> bool:
    """True for an ``.h5``/``.hdf5`` file or a directory holding ``keras_metadata.pb``."""
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, KERAS_METADATA))
    return path.lower().endswith((".h5", ".hdf5"))


def read_keras(path: str) -> KerasFile:
    """Read a Keras ``.h5`` file or Keras-made SavedModel directory.

    Raises:
      CheckpointNotFoundError: nothing at ``path``.
      MergeHeadsError: h5py is missing, or the file holds no model config.
      CorruptCheckpointError: the file cannot be parsed.
    """
    if os.path.isdir(path):
        return _read_saved_model(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"no Keras model at {path}")
    return _read_h5(path)


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _read_h5(path: str) -> KerasFile:
    if h5py is None:
        raise MergeHeadsError(f"{path}: reading Keras .h5 files needs h5py: pip install 'tf1-graphsurgeon[keras]'")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CorruptCheckpointError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        if "model_config" not in f.attrs:
            raise MergeHeadsError(f"{path}: no model_config attribute; expected a whole model saved by "
                                  "tf_keras model.save('m.h5'), not save_weights")
        config = json.loads(_text(f.attrs["model_config"]))
        group = f["model_weights"] if "model_weights" in f else f
        weights = {}
        for layer in group:
            g = group[layer]
            names = [_text(n) for n in g.attrs.get("weight_names", [])]
            if names:
                weights[layer] = {n.split("/")[-1].split(":")[0]: np.asarray(g[n]) for n in names}
    return KerasFile(path, config, weights)


def _fields(data: bytes):
    """``(field number, wire type, value)`` of a serialized protobuf message (varints and
    length-delimited fields; what ``keras_metadata.pb`` uses)."""
    i = 0
    while i < len(data):
        key, i = get_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = get_varint(data, i)
        elif wire == 2:
            n, i = get_varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, value


def _metadata(path: str) -> dict:
    """``{node path: metadata JSON}`` of ``keras_metadata.pb`` (SavedMetadata: field 1 repeats
    SavedObject, whose field 3 is the node path, ``root`` or ``root.layer-2``, and field 5 the
    metadata)."""
    meta_path = os.path.join(path, KERAS_METADATA)
    with open(meta_path, "rb") as f:
        data = f.read()
    out = {}
    try:
        for field, _, node in _fields(data):
            if field == 1:
                parts = {k: v for k, w, v in _fields(node) if w == 2}
                out[parts[3].decode("utf-8")] = json.loads(parts[5].decode("utf-8"))
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(f"{meta_path}: cannot parse ({e})") from None
    if "root" not in out:
        raise CorruptCheckpointError(f"{meta_path}: no root object")
    return out


def _untuple(obj):
    """SavedModel metadata writes tuples as ``{"class_name": "__tuple__", "items": [...]}``."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__tuple__" and "items" in obj:
            return [_untuple(x) for x in obj["items"]]
        return {k: _untuple(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_untuple(x) for x in obj]
    return obj


def _read_saved_model(path: str) -> KerasFile:
    metadata = _metadata(path)
    root = _untuple(metadata["root"])
    if "config" not in root or "class_name" not in root:
        raise MergeHeadsError(f"{path}: {KERAS_METADATA} holds no model config (a subclassed model?); "
                              "only Sequential and Functional models can be read")
    config = {"class_name": root["class_name"], "config": root["config"]}
    reader = CheckpointReader(os.path.join(path, "variables", "variables"))
    graph = read_graph(reader.prefix, reader)
    if graph is None:
        raise MergeHeadsError(f"{path}: variables/variables has no object graph; not a Keras-made SavedModel")
    root_children = {c.local_name: c.node_id for c in graph.nodes[0].children}
    weights = {}
    for node_path, meta in metadata.items():
        local = node_path[len("root."):]
        if node_path.count(".") != 1 or not local.startswith(("layer-", "layer_with_weights-")) \
                or local not in root_children:
            continue
        found = {}
        for child in graph.nodes[root_children[local]].children:
            for attr in graph.nodes[child.node_id].attributes:
                if attr.name == "VARIABLE_VALUE":
                    found[child.local_name] = reader.read(attr.checkpoint_key)
        if found:
            weights[meta["name"]] = found
    return KerasFile(path, config, weights)
