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

from graphsurgeon._src.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NoMetaGraphError,
    UnregisteredOpError,
)
from graphsurgeon._src.mixins import counted, series
from graphsurgeon._src.storage import bundle
from graphsurgeon._src.storage.files import read_bytes
from graphsurgeon._src.storage.paths import Source, checkpoint_files

tf1 = tf.compat.v1

# dtypes whose entries hold exactly (number of elements) x (item size) bytes
_FIXED_SIZE = frozenset(tf.as_dtype(d) for d in (
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128", "bool", "int8", "int16", "int32",
    "int64", "uint8", "uint16", "uint32", "uint64", "qint8", "quint8", "qint16", "quint16", "qint32"))
MAX_SHARDS = 100_000
CONCURRENT_BYTES = 1 << 20  # see CheckpointReader.read


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


def read_checked_index(prefix: str):
    """``(header, {name: BundleEntryProto})`` of V2 checkpoint ``prefix``, checked so that TensorFlow's
    reader (which aborts the process or allocates whatever an entry declares) never sees a bad index.

    Checks, without reading tensor bytes: the table's structure and block checksums
    (:func:`bundle.read_index`); a little-endian header naming 1..100000 shards; for every tensor, a
    UTF-8 name (slice keys of partitioned variables excepted), a known non-reference dtype, a shape of
    dimensions >= 0, a shard id below the shard count, a byte size equal to elements x item size for
    fixed-size dtypes (at least one byte per element for strings), and bytes ``[offset, offset + size)``
    inside its data file, which must exist.

    Raises:
      CorruptCheckpointError: naming the index or data file, the tensor and what was expected.
    """
    path = prefix + ".index"
    header, entries = bundle.read_index(prefix)
    if header.endianness != header.LITTLE:
        raise CorruptCheckpointError(f"{path}: the header says big-endian data; only little-endian checkpoints "
                                     "(what TensorFlow writes on x86 and ARM) are read")
    n_shards = header.num_shards
    if not 1 <= n_shards <= MAX_SHARDS:
        raise CorruptCheckpointError(f"{path}: the header names {n_shards} data shards; expected 1 to {MAX_SHARDS}")
    sizes = {}
    for name, e in entries.items():
        shown, dtype, dims = _check_entry(path, name, e)
        if e.slices:  # the full entry of a variable saved in slices holds no bytes itself
            continue
        _check_extent(prefix, shown, e, dtype, dims, n_shards, sizes)
    return header, entries


def _check_entry(path: str, name: str, e):
    """``(name as shown in messages, dtype, dims)`` of index entry ``e``, after checking its name,
    dtype and shape."""
    sliced = bundle.slice_key_name(name) is not None
    shown = name if sliced else _shown(name)
    if not sliced and shown != name:
        raise CorruptCheckpointError(f"{path}: tensor name {shown} is not valid UTF-8; TensorFlow cannot read "
                                     "it by name (migrate reads the index but cannot rename it either)")
    try:
        dtype = tf.as_dtype(e.dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.base_dtype != dtype:  # DT_*_REF codes (> 100)
        raise CorruptCheckpointError(f"{path}: tensor '{shown}' has dtype code {e.dtype}, which is not a "
                                     "TensorFlow value dtype")
    dims = [d.size for d in e.shape.dim]
    if e.shape.unknown_rank or any(d < 0 for d in dims):
        raise CorruptCheckpointError(f"{path}: tensor '{shown}' declares shape "
                                     f"{'unknown' if e.shape.unknown_rank else dims}; expected sizes >= 0")
    return shown, dtype, dims


def _check_extent(prefix: str, shown: str, e, dtype, dims, n_shards: int, sizes: dict) -> None:
    """Entry ``e``'s shard id, byte size (against dtype x shape) and bytes inside its data file;
    ``sizes`` caches the data files' sizes."""
    path = prefix + ".index"
    if e.shard_id >= n_shards:
        raise CorruptCheckpointError(f"{path}: tensor '{shown}' lies in data shard {e.shard_id}, but the "
                                     f"header names {counted(n_shards, 'shard')}")
    count = 1
    for d in dims:
        count *= d
    if dtype in _FIXED_SIZE and e.size != count * dtype.size:
        raise CorruptCheckpointError(
            f"{path}: tensor '{shown}' declares {dtype.name} {dims} ({count * dtype.size} bytes) but its "
            f"entry holds {e.size} bytes")
    if dtype == tf.string and count > e.size:  # every string takes at least its one-byte length
        raise CorruptCheckpointError(
            f"{path}: tensor '{shown}' declares {count} strings ({dims}) but its entry holds {e.size} bytes")
    data = bundle.data_file(prefix, e.shard_id, n_shards)
    if data not in sizes:
        try:
            sizes[data] = os.path.getsize(data)
        except OSError:
            raise CorruptCheckpointError(f"{data}: data shard is missing (the index {path} names "
                                         f"{counted(n_shards, 'shard')})") from None
    if e.offset + e.size > sizes[data]:
        raise CorruptCheckpointError(
            f"{data}: tensor '{shown}' lies at bytes {e.offset}..{e.offset + e.size}, past the end of the "
            f"file ({sizes[data]} bytes): the data file is truncated or the index damaged")


def _shown(name: str) -> str:
    """``name`` as text: itself if it is valid UTF-8, else a bytes literal."""
    raw = name.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return repr(raw)


class CheckpointReader:
    """Names, shapes and values of a checkpoint, with errors that name the file.

    Opening reads only the index (a V2 index is checked first, see :func:`read_checked_index`).
    :meth:`read` reads one tensor.

    ``concurrent``: read tensors, where that is possible, so that other Python threads run meanwhile
    (TensorFlow's reader holds the GIL for the whole read, stalling every other thread of the
    process): a tensor of at least ``CONCURRENT_BYTES`` (1 MiB) of a V2 checkpoint, with no slice
    list, read in eager mode, is read by TensorFlow's ``RestoreV2`` op (the same bundle reader, run
    with the GIL released; it opens the bundle anew, about 0.8 ms, more than a smaller tensor stalls
    the others) and returned as a view of the op's output (not to be written to); any other as
    without ``concurrent``.
    """

    def __init__(self, prefix: str, *, concurrent: bool = False):
        self.prefix = prefix
        self.concurrent = concurrent
        files = checkpoint_files(prefix)
        if not files:
            raise CheckpointNotFoundError(f"no checkpoint at prefix {prefix} (no {prefix}.index)")
        self._v2 = read_checked_index(prefix) if files[0] == prefix + ".index" else None
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

    @property
    def index(self) -> tuple | None:
        """``(header, {name: BundleEntryProto})`` of a V2 checkpoint's index, as opening read and checked it
        (:func:`read_checked_index`); None for a V1 checkpoint."""
        return self._v2

    def read(self, name: str) -> np.ndarray:
        """The value of tensor ``name`` (see ``concurrent`` above).

        Raises:
          CorruptCheckpointError: the data file is truncated or damaged.
        """
        try:
            entry = self._v2[1].get(name) if self.concurrent and self._v2 is not None else None
            if entry is not None and entry.size >= CONCURRENT_BYTES and not entry.slices:
                if tf.executing_eagerly():
                    return np.asarray(tf.raw_ops.RestoreV2(prefix=self.prefix, tensor_names=[name], shape_and_slices=[""],
                                                           dtypes=[self.entries[name].dtype])[0])
            return self._reader.get_tensor(name)
        except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as e:
            if self._v2 is not None and name in self._v2[1]:  # the one data file holding the tensor
                data = [bundle.data_file(self.prefix, self._v2[1][name].shard_id, self._v2[0].num_shards)]
            else:
                data = [f for f in checkpoint_files(self.prefix) if ".data-" in f] or [self.prefix]
            raise CorruptCheckpointError(
                f"{', '.join(data)}: cannot read tensor '{name}' ({_first_line(e)}); "
                "the data file is truncated or damaged"
            ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    return text[0] if len(text[0]) <= 200 else text[0][:200].rsplit(" ", 1)[0] + " …"  # not cut inside a word


def read_meta_graph(source: Source) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef of ``source`` (a frozen GraphDef is wrapped in one).

    Raises:
      NoMetaGraphError: a checkpoint without a ``.meta`` file.
      CorruptCheckpointError: the graph file cannot be parsed or holds no nodes.
    """
    if source.kind == "frozen":
        meta = meta_graph_pb2.MetaGraphDef()
        meta.graph_def.CopyFrom(_parse(source.graph_path, graph_pb2.GraphDef, "a GraphDef"))
        return _not_empty(meta, source.graph_path)
    if source.kind in ("saved_model", "tf2_saved_model"):  # a TF2 one as saved: graphsurgeon._src.tf2 flattens it
        return _not_empty(_saved_model_meta_graph(source), source.export_dir)
    if not source.meta_path:
        raise NoMetaGraphError(
            f"checkpoint {source.prefix} has no {source.prefix}.meta graph; build the model in Python, then call "
            "graphsurgeon.restore(prefix, graph=your_graph) to restore into it by variable name "
            "(graphsurgeon inspect shows the checkpoint's names)"
        )
    return _not_empty(_parse(source.meta_path, meta_graph_pb2.MetaGraphDef, "a MetaGraphDef (.meta)"), source.meta_path)


def _not_empty(meta, path: str):
    """A graph file without a single node (a zero-byte file parses as one) is refused."""
    if not meta.graph_def.node:
        raise CorruptCheckpointError(f"{path}: holds no graph (0 nodes); the file is empty, truncated or not a "
                                     "TensorFlow graph")
    return meta


def _parse(path: str, proto_cls, what: str):
    proto = proto_cls()
    data = read_bytes(path, CheckpointNotFoundError)
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

    Returns:
      The Saver TensorFlow's import made (``tf1.train.import_meta_graph`` makes one: over the meta
      graph's ``saver_def`` ops, or with ops of its own over every variable when it has none), or None.

    Raises:
      UnregisteredOpError: the graph uses an op type this TensorFlow lacks; names the op
        and ``where`` it came from.
    """
    try:
        with graph.as_default():
            if meta.collection_def or meta.HasField("saver_def"):
                return tf1.train.import_meta_graph(meta, clear_devices=True)
            tf.graph_util.import_graph_def(meta.graph_def, name="")
            return None
    except tf.errors.NotFoundError as e:
        m = re.search(r"Op type not registered '([^']+)'", str(e))
        if not m:
            raise
        op = m.group(1)
        users = [n.name for n in meta.graph_def.node if n.op == op]
        raise UnregisteredOpError(
            f"{where}: op type '{op}' (used by {series(users, 3)}) is not registered in TensorFlow "
            f"{tf.__version__}; import the library that defines it (tf.load_op_library) before restoring, "
            "or cut the graph below it"
        ) from None


def saver_of(graph: tf.Graph, meta, imported, variables: dict):
    """A Saver of ``variables`` (``{name: variable}``, all of ``graph``'s) to save ``graph`` with: the one
    :func:`import_meta_graph` made with ops of its own (``meta`` had no ``saver_def``), so that the
    graph does not get a second set of save ops, else a new one (``save_1/`` beside an imported
    ``save/``)."""
    if imported is not None and not meta.HasField("saver_def"):
        return imported
    with graph.as_default():
        return tf1.train.Saver(var_list=[variables[n] for n in sorted(variables)], save_relative_paths=True)
