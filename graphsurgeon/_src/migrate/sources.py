"""The checkpoints a migration reads: V2 bundles (bytes addressable in their data files),
V1 files (values through TensorFlow's reader only) and values held in memory."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import tensor_bundle_pb2

from graphsurgeon._src.errors import MigrateError
from graphsurgeon._src.storage import bundle
from graphsurgeon._src.storage.checkpoint import CheckpointReader, read_checked_index
from graphsurgeon._src.storage.paths import resolve


@dataclasses.dataclass(eq=False)
class SourceCheckpoint:
    """One checkpoint a migration takes tensors from.

    Attributes:
      path: as the caller named it (the key of ``MigrationResult.mapping``).
      prefix: its checkpoint prefix ("" for values in memory).
      kind: ``"v2"`` (an index over data files), ``"v1"`` (one file read by TensorFlow) or
        ``"memory"`` (``values``).
      entries: ``{key: BundleEntryProto}`` of a V2 index, slice keys included.
      num_shards: data shards of a V2 checkpoint.
      values: ``{key: (ndarray, tf.DType)}`` of a memory source.
    """

    path: str
    prefix: str
    kind: str
    entries: dict = dataclasses.field(default_factory=dict)
    num_shards: int = 0
    values: dict = dataclasses.field(default_factory=dict)
    _reader: CheckpointReader | None = None

    @classmethod
    def in_memory(cls, what: str, values: dict) -> SourceCheckpoint:
        return cls(what, "", "memory", values=values)

    def names(self) -> list[str]:
        """Its tensors' keys, sorted; a partitioned variable saved in slices counts once (by name)."""
        if self.kind == "v2":
            return sorted(k for k in self.entries if bundle.slice_key_name(k) is None)
        if self.kind == "memory":
            return sorted(self.values)
        return sorted(self.reader().entries)

    def dtype_shape(self, key: str) -> tuple[tf.DType, tuple]:
        if self.kind == "v2":
            e = self.entries[key]
            return tf.as_dtype(e.dtype), tuple(d.size for d in e.shape.dim)
        if self.kind == "memory":
            value, dtype = self.values[key]
            return dtype, tuple(np.shape(value))
        e = self.reader().entries[key]
        return e.dtype, tuple(e.shape)

    def slices(self, key: str) -> tuple[str, ...]:
        """The slice keys of a partitioned variable saved in slices (V2 only), else ()."""
        if self.kind != "v2" or not self.entries[key].slices:
            return ()
        return tuple(sorted(k for k in self.entries if bundle.slice_key_name(k) == key))

    def data_file(self, entry) -> str:
        return bundle.data_file(self.prefix, entry.shard_id, self.num_shards)

    def reader(self) -> CheckpointReader:
        """TensorFlow's reader of this checkpoint (opened once)."""
        if self._reader is None:
            self._reader = CheckpointReader(self.prefix)
        return self._reader

    def read(self, key: str) -> np.ndarray:
        """The value of tensor ``key`` read through TensorFlow (which checks V2 bytes against their crc32c)."""
        if self.kind == "memory":
            return self.values[key][0]
        return self.reader().read(key)


def source_prefix(path: str) -> str:
    """The checkpoint prefix ``path`` names (a prefix, a checkpoint directory, a SavedModel).

    Raises:
      MigrateError: ``path`` holds no variable values beside its graph (a frozen graph, a meta graph
        without its checkpoint, a SavedModel without a checkpoint in ``variables/``).
    """
    s = resolve(path)
    if not s.prefix:
        raise MigrateError(f"{path}: holds no variable values beside its graph (a frozen graph, a meta graph without "
                           "its checkpoint or a SavedModel without a checkpoint in variables/)")
    return s.prefix


def open_checkpoint(path: str) -> SourceCheckpoint:
    """Open checkpoint ``path``: a V2 index is read and its data files checked for presence and
    length; a V1 file is opened by TensorFlow's reader.

    Raises:
      CorruptCheckpointError: the index is damaged, a data file is missing or truncated.
      MigrateError: no variable values at ``path`` (see :func:`source_prefix`), or a V2 checkpoint written
        big-endian.
    """
    prefix = source_prefix(path)
    if not os.path.isfile(prefix + ".index"):
        src = SourceCheckpoint(path, prefix, "v1")
        src.reader()
        return src
    if bundle.read_index(prefix)[0].endianness != tensor_bundle_pb2.BundleHeaderProto.LITTLE:
        raise MigrateError(f"{prefix}.index: written on a big-endian machine; only little-endian checkpoints are migrated")
    header, entries = read_checked_index(prefix)  # what the restore path checks before TensorFlow reads it
    bundle.check_data_files(prefix, header, entries)
    return SourceCheckpoint(path, prefix, "v2", entries=entries, num_shards=header.num_shards)
