"""Read checkpoints and graph files (MetaGraphDef, GraphDef, SavedModel)."""
from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf
from google.protobuf import message as _pb_message
from google.protobuf import text_format
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from graphsurgeon._src.errors import (CheckpointNotFoundError, CorruptCheckpointError, NoMetaGraphError,
                                     UnregisteredOpError)
from graphsurgeon._src.storage.paths import Source, checkpoint_files

tf1 = tf.compat.v1


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tensor of a checkpoint: its shape and dtype (no values)."""

    name: str
    shape: tuple
    dtype: tf.DType

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * (self.dtype.size if self.dtype != tf.string else 1)


class CheckpointReader:
    """Names, shapes and values of a checkpoint, with errors that name the file.

    Opening reads only the index. :meth:`read` reads one tensor.
    """

    def __init__(self, prefix: str):
        self.prefix = prefix
        files = checkpoint_files(prefix)
        if not files:
            raise CheckpointNotFoundError(f"no checkpoint at prefix {prefix} (no {prefix}.index)")
        try:
            self._reader = tf.train.load_checkpoint(prefix)
        except (tf.errors.OpError, ValueError, RuntimeError) as e:
            raise CorruptCheckpointError(
                f"{files[0]}: cannot read the checkpoint index ({_first_line(e)}); "
                "the file is truncated or not a TensorFlow checkpoint"
            ) from None
        shapes = self._reader.get_variable_to_shape_map()
        dtypes = self._reader.get_variable_to_dtype_map()
        self.entries = {n: Entry(n, tuple(shapes[n]), tf.as_dtype(dtypes[n])) for n in sorted(shapes)}

    def read(self, name: str) -> np.ndarray:
        """The value of tensor ``name``.

        Raises:
          CorruptCheckpointError: the data file is truncated or damaged.
        """
        try:
            return self._reader.get_tensor(name)
        except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as e:
            data = [f for f in checkpoint_files(self.prefix) if ".data-" in f] or [self.prefix]
            raise CorruptCheckpointError(
                f"{', '.join(data)}: cannot read tensor '{name}' ({_first_line(e)}); "
                "the data file is truncated or damaged"
            ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def read_meta_graph(source: Source) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef of ``source`` (a frozen GraphDef is wrapped in one).

    Raises:
      NoMetaGraphError: a checkpoint without a ``.meta`` file.
      CorruptCheckpointError: the graph file cannot be parsed.
    """
    if source.kind == "frozen":
        meta = meta_graph_pb2.MetaGraphDef()
        meta.graph_def.CopyFrom(_parse(source.graph_path, graph_pb2.GraphDef, "a GraphDef"))
        return meta
    if source.kind == "saved_model":
        return _saved_model_meta_graph(source)
    if not source.meta_path:
        raise NoMetaGraphError(
            f"checkpoint {source.prefix} has no {source.prefix}.meta graph; build the model in Python, then call "
            "graphsurgeon._src.restore(prefix, graph=your_graph) to restore into it by variable name "
            "(graphsurgeon inspect shows the checkpoint's names)"
        )
    return _parse(source.meta_path, meta_graph_pb2.MetaGraphDef, "a MetaGraphDef (.meta)")


def _parse(path: str, proto_cls, what: str):
    proto = proto_cls()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointNotFoundError(f"{path}: {e.strerror}") from None
    try:
        if path.endswith(".pbtxt"):
            text_format.Parse(data.decode("utf-8"), proto)
        else:
            proto.ParseFromString(data)
    except (_pb_message.DecodeError, text_format.ParseError, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(f"{path}: cannot parse as {what} ({_first_line(e)})") from None
    return proto


def _saved_model_meta_graph(source: Source) -> meta_graph_pb2.MetaGraphDef:
    name = "saved_model.pb" if os.path.isfile(os.path.join(source.export_dir, "saved_model.pb")) else "saved_model.pbtxt"
    path = os.path.join(source.export_dir, name)
    sm = _parse(path, saved_model_pb2.SavedModel, "a SavedModel")
    wanted = set(source.tags)
    available = [sorted(m.meta_info_def.tags) for m in sm.meta_graphs]
    for m in sm.meta_graphs:
        if set(m.meta_info_def.tags) == wanted:
            return m
    if len(sm.meta_graphs) == 1 and not source.tags:
        return sm.meta_graphs[0]
    raise CheckpointNotFoundError(
        f"{path}: no meta graph with tags {sorted(wanted)}; it has {available} (pass tags=...)"
    )


def import_meta_graph(meta, graph: tf.Graph, where: str = "graph"):
    """Import a MetaGraphDef (or a bare GraphDef wrapped in one) into ``graph``.

    Raises:
      UnregisteredOpError: the graph uses an op type this TensorFlow lacks; names the op
        and ``where`` it came from.
    """
    try:
        with graph.as_default():
            if meta.collection_def or meta.HasField("saver_def"):
                tf1.train.import_meta_graph(meta, clear_devices=True)
            else:
                tf.graph_util.import_graph_def(meta.graph_def, name="")
    except tf.errors.NotFoundError as e:
        m = re.search(r"Op type not registered '([^']+)'", str(e))
        if not m:
            raise
        op = m.group(1)
        users = [n.name for n in meta.graph_def.node if n.op == op][:3]
        raise UnregisteredOpError(
            f"{where}: op type '{op}' (used by {', '.join(users)}) is not registered in TensorFlow "
            f"{tf.__version__}; import the library that defines it (tf.load_op_library) before restoring, "
            "or cut the graph below it"
        ) from None
