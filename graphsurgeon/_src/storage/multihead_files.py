"""Files of a merged multi-head model (see :mod:`graphsurgeon._src.multihead`).

A version directory is a SavedModel plus graphsurgeon's own files::

    DIR/saved_model.pb
    DIR/variables/variables.index
    DIR/variables/variables.data-00000-of-00002   shard 0: the backbone weights
    DIR/variables/variables.data-00001-of-00002   shard 1: the head weights
    DIR/variables/variables.meta                   the meta graph: variables/variables is also a
                                                   checkpoint graphsurgeon.restore reads
    DIR/tasks.json                                 the task table
    DIR/parts/*.pb                                 graph pieces add-head/remove-head rebuild from

Shard 0 is written once by merge-heads; a new version made by add-head or remove-head hard-links
it (copies it across file systems) and writes only shard 1, the index and the small files.
Everything is written into a temporary directory beside ``DIR`` and renamed into place.
"""
from __future__ import annotations

import json
import os
import shutil

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from graphsurgeon._src.errors import (
    CorruptCheckpointError,
    MergeHeadsError,
)
from graphsurgeon._src.mixins import series
from graphsurgeon._src.storage import bundle, model_dir
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.files import read_bytes
from graphsurgeon._src.storage.session import new_session

tf1 = tf.compat.v1

VARIABLES_PREFIX = os.path.join("variables", "variables")
TASKS_FILE = "tasks.json"
PARTS_DIR = "parts"
BACKBONE_SHARD, HEADS_SHARD, NUM_SHARDS = 0, 1, 2
_EMPTY = "graphsurgeon/empty"  # SaveV2 writes at least one tensor; an empty bundle drops it from its index


def save_bundle(prefix: str, values: dict) -> None:
    """Write ``{name: ndarray}`` as a one-shard V2 checkpoint at ``prefix`` with TensorFlow's
    ``SaveV2`` (an empty dict writes an empty bundle)."""
    names = sorted(values)
    graph = tf.Graph()
    with graph.as_default():
        feeds = {tf1.placeholder(tf.as_dtype(values[n].dtype), name=f"v{i}"): values[n] for i, n in enumerate(names)}
        save = tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names or [_EMPTY],
                                 shape_and_slices=[""] * max(len(names), 1),
                                 tensors=list(feeds) or [tf.constant(0, name="empty")])
    with new_session(graph) as sess:
        sess.run(save, feeds)
    if not names:  # SaveV2 needs one tensor; drop the stand-in from the index
        header, entries = bundle.read_index(prefix)
        entries.pop(_EMPTY, None)
        bundle.write_index(prefix + ".index", header, entries)


def link_or_copy(src: str, dst: str) -> bool:
    """Hard-link ``src`` at ``dst``, or copy it where links are impossible; True if linked."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False


def join_shards(dst_prefix: str, parts) -> list[bool]:
    """Make ``dst_prefix`` one checkpoint whose shard ``k`` is the data file of ``parts[k]``.

    Args:
      parts: ``[(prefix, shard, names or None)]``: shard ``shard`` of checkpoint ``prefix`` (its
        entries named in ``names``, or all of them) becomes shard ``k``; its data file is
        hard-linked (copied across file systems), never rewritten.

    Returns:
      For each part, whether its data file was linked.
    """
    header, entries, linked = None, {}, []
    for k, (prefix, shard, names) in enumerate(parts):
        h, es = bundle.read_index(prefix)
        bundle.check_data_files(prefix, h, es)
        header = header or h
        for name, e in es.items():
            if e.shard_id == shard and (names is None or name in names):
                e.shard_id = k
                entries[name] = e
        linked.append(link_or_copy(bundle.data_file(prefix, shard, h.num_shards),
                                   bundle.data_file(dst_prefix, k, len(parts))))
    header.num_shards = len(parts)
    bundle.write_index(dst_prefix + ".index", header, entries)
    return linked


def verify_values(prefix: str, values: dict) -> None:
    """Read ``prefix`` back: it must hold exactly ``values``' names, each bit for bit.

    Raises:
      CorruptCheckpointError: a tensor is missing, extra or different.
    """
    reader = CheckpointReader(prefix)
    extra = sorted(set(reader.entries) - set(values))
    missing = sorted(set(values) - set(reader.entries))
    if extra or missing:
        said = ([f"lacks {series(missing, 3)}"] if missing else []) + ([f"also holds {series(extra, 3)}"] if extra else [])
        raise CorruptCheckpointError(f"{prefix}: the written checkpoint {'; '.join(said)}")
    for name, expected in values.items():
        got = reader.read(name)
        if got.dtype != expected.dtype or got.shape != expected.shape or got.tobytes() != expected.tobytes():
            raise CorruptCheckpointError(f"{prefix}: '{name}' reads back different from what was written")


def saved_model_bytes(meta: meta_graph_pb2.MetaGraphDef) -> bytes:
    """A ``saved_model.pb`` holding ``meta`` (its tags and signatures set by the caller)."""
    sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    sm.meta_graphs.add().CopyFrom(meta)
    return sm.SerializeToString(deterministic=True)


write_bytes = model_dir.write_file  # into a temporary version directory, flushed to disk


new_version_dir = model_dir.new_dir  # a merged model's versions are written as every model directory is
commit_version = model_dir.commit
discard = model_dir.discard


def read_tasks(model_dir: str) -> dict:
    """The task table of a merged model directory.

    Raises:
      MergeHeadsError: no such directory, no ``tasks.json`` or not one graphsurgeon wrote.
    """
    path = os.path.join(model_dir, TASKS_FILE)
    if not os.path.isdir(model_dir):
        raise MergeHeadsError(f"{model_dir}: no such directory; expected a directory written by graphsurgeon "
                              "merge-heads")
    if not os.path.isfile(path):
        raise MergeHeadsError(f"{model_dir}: no {TASKS_FILE}; expected a directory written by "
                              "graphsurgeon merge-heads")
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except (OSError, ValueError) as e:
        raise MergeHeadsError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(table, dict) or table.get("format") != "graphsurgeon-multihead":
        raise MergeHeadsError(f"{path}: not a graphsurgeon-multihead task table")
    return table


def read_part(model_dir: str, name: str):
    """A graph piece (GraphDef) stored as ``parts/<name>`` in a merged model directory."""
    path = os.path.join(model_dir, PARTS_DIR, name)
    gd = tf1.GraphDef()
    gd.ParseFromString(read_bytes(path, MergeHeadsError, "; the merged model's parts are incomplete"))
    return gd


def load_saved_model(export_dir: str, threads: int = 0):
    """``(session, meta graph)`` of a SavedModel loaded with ``tf.compat.v1.saved_model.load``."""
    graph = tf.Graph()
    sess = new_session(graph, threads)
    with graph.as_default():
        meta = tf1.saved_model.load(sess, ["serve"], export_dir)
    return sess, meta
