"""Write a V2 checkpoint directly: data shards linked from other checkpoints, one new data
file for the bytes written here, and the index over both.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> w = BundleWriter(os.path.join(d, "ckpt"))
>>> w.write("x", tf.float32, (2,), [np.array([1.0, 2.0], np.float32)])
>>> [os.path.basename(f) for f in w.finish()]
['ckpt.data-00000-of-00001', 'ckpt.index']
>>> tf.train.load_checkpoint(os.path.join(d, "ckpt")).get_tensor("x")
array([1., 2.], dtype=float32)
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import versions_pb2
from tensorflow.core.protobuf import tensor_bundle_pb2

from graphsurgeon._src.storage import bundle
from graphsurgeon._src.storage.bundle_data import DataWriter, encode_strings

BUNDLE_VERSION = 1  # TensorFlow's kTensorBundleVersion


def new_entry(dtype, shape, *, shard_id=0, offset=0, size=0, crc32c=0) -> tensor_bundle_pb2.BundleEntryProto:
    """A ``BundleEntryProto`` for a tensor of ``dtype`` and ``shape`` stored at ``offset`` in a shard."""
    e = tensor_bundle_pb2.BundleEntryProto(dtype=tf.as_dtype(dtype).as_datatype_enum, shard_id=shard_id,
                                           offset=offset, size=size, crc32c=crc32c)
    for d in shape:
        e.shape.dim.add(size=int(d))
    return e


class BundleWriter:
    """Builds checkpoint ``prefix`` (which must not exist): :meth:`link` takes another
    checkpoint's data files whole (hard links, or copies across file systems) so its entries
    can point into them; :meth:`copy` and :meth:`write` append tensors to one new data file;
    :meth:`finish` names the shards and writes the index last."""

    def __init__(self, prefix: str, *, expected_bytes: int = 0):
        self.prefix = prefix
        self.expected_bytes = expected_bytes  # what the new data file should hold (a hint for its writer)
        self._linked = []   # (source prefix, its shard, its number of shards)
        self._shard_of = {}
        self._entries = {}  # key -> entry; own entries carry shard_id -1 until finish()
        self._data = None

    def link(self, source_prefix: str, num_shards: int) -> dict:
        """Make every data shard of checkpoint ``source_prefix`` a shard of this one; returns
        ``{source shard id: shard id here}`` (the same shards once linked are reused)."""
        out = {}
        for shard in range(num_shards):
            key = (os.path.abspath(source_prefix), shard)
            if key not in self._shard_of:
                self._shard_of[key] = len(self._linked)
                self._linked.append((source_prefix, shard, num_shards))
            out[shard] = self._shard_of[key]
        return out

    def add(self, key: str, entry) -> None:
        """An entry as given: one pointing into a linked shard (its ``shard_id`` from
        :meth:`link`), or one with no bytes (the slice list of a partitioned variable)."""
        self._entries[key] = entry

    def copy(self, key: str, entry, data_file: str) -> None:
        """Append the bytes ``entry`` locates in ``data_file`` unchanged (same crc32c)."""
        e = tensor_bundle_pb2.BundleEntryProto()
        e.CopyFrom(entry)
        e.offset = self._own().copy(data_file, entry.offset, entry.size)
        e.shard_id = -1
        self._entries[key] = e

    def write(self, key: str, dtype, shape, chunks, *, read_back: bool = False) -> None:
        """Append a numeric tensor from ``chunks`` (arrays of ``dtype`` whose bytes, in order, are
        the tensor's); its crc32c is computed as it is written. ``read_back``: its bytes are read
        from the disk into the page cache as soon as they are written (see
        :class:`~graphsurgeon._src.storage.bundle_data.DataWriter`)."""
        offset, size, crc = self._own().write(chunks, read_back=read_back)
        self._entries[key] = new_entry(dtype, shape, shard_id=-1, offset=offset, size=size, crc32c=crc)

    def write_value(self, key: str, value: np.ndarray, dtype) -> None:
        """Append a whole value (numeric or string)."""
        if tf.as_dtype(dtype) == tf.string:
            data, crc = encode_strings(value)
            offset, size, _ = self._own().write([data])
            self._entries[key] = new_entry(tf.string, np.shape(value), shard_id=-1, offset=offset, size=size,
                                           crc32c=crc)
        else:
            self.write(key, dtype, np.shape(value), [np.asarray(value, tf.as_dtype(dtype).as_numpy_dtype)])

    def preview(self, prefix: str, keys):
        """A checkpoint ``prefix`` holding only ``keys`` (tensors this writer has already put in its
        new data file with :meth:`write`), so they can be read before :meth:`finish`. Returns a
        function, to call from any thread, that waits until their bytes are in the file (see
        :meth:`~graphsurgeon._src.storage.bundle_data.DataWriter.wait_written`), then makes
        ``prefix``'s one data file a hard link to the new data file and writes its index (the same
        entries, as shard 0 of 1; not fsync'd: a preview is not kept), and returns True; or returns False, writing nothing, when the
        writer failed or was abandoned first."""
        entries = {}
        for key in keys:
            entries[key] = tensor_bundle_pb2.BundleEntryProto()
            entries[key].CopyFrom(self._entries[key])
            if entries[key].shard_id != -1:
                raise ValueError(f"'{key}' is not in the new data file")
            entries[key].shard_id = 0
        data, end = self._own(), self._own().size

        def make() -> bool:
            if not data.wait_written(end):
                return False
            os.link(data.path, bundle.data_file(prefix, 0, 1))
            bundle.write_index(prefix + ".index", _header(1), entries, sync=False)  # read at once, then deleted
            return True
        return make

    def _own(self) -> DataWriter:
        if self._data is None:
            self._data = DataWriter(self.prefix + ".data-new", expected_bytes=self.expected_bytes)
        return self._data

    def finish(self) -> list[str]:
        """Name the data shards (linked ones first, the new data file last), fsync the new
        file, write the index; returns the files written, the index last."""
        own = self._data is not None or not self._linked  # an empty checkpoint still has one data file
        n = len(self._linked) + own
        files = []
        for i, (src, shard, src_n) in enumerate(self._linked):
            files.append(bundle.data_file(self.prefix, i, n))
            link_or_copy(bundle.data_file(src, shard, src_n), files[-1])
        if own:
            files.append(bundle.data_file(self.prefix, n - 1, n))
            if self._data is None:
                DataWriter(self.prefix + ".data-new").close()
            else:
                self._data.close()
            os.replace(self.prefix + ".data-new", files[-1])
        for e in self._entries.values():
            if e.shard_id == -1:
                e.shard_id = n - 1
        bundle.write_index(self.prefix + ".index", _header(n), self._entries)
        return files + [self.prefix + ".index"]

    def abandon(self) -> None:
        """Close the new data file unsynced (its directory is about to be removed)."""
        if self._data is not None:
            self._data.abandon()


def moved_since_preview(prefix: str, preview: str, keys, *, index: tuple, preview_index: tuple) -> list[str]:
    """The ``keys`` that checkpoint ``prefix``'s index does not locate exactly where the index of
    ``preview`` (made by :meth:`BundleWriter.preview`) did: the same offset, size, crc32c, dtype and
    shape, in the same file (the preview's data file is a hard link to it). ``index`` and
    ``preview_index`` are those indexes as already read, ``(header, {name: BundleEntryProto})``
    (:attr:`graphsurgeon._src.storage.checkpoint.CheckpointReader.index`, or
    :func:`graphsurgeon._src.storage.bundle.read_index`)."""
    header, final = index
    _, early = preview_index
    linked = bundle.data_file(preview, 0, 1)
    moved = []
    for key in keys:
        a, b = final.get(key), early.get(key)
        same = a is not None and b is not None and (a.offset, a.size, a.crc32c, a.dtype, a.shape) == (
            b.offset, b.size, b.crc32c, b.dtype, b.shape) and os.path.samefile(
            bundle.data_file(prefix, a.shard_id, header.num_shards), linked)
        if not same:
            moved.append(key)
    return moved


def _header(num_shards: int) -> tensor_bundle_pb2.BundleHeaderProto:
    return tensor_bundle_pb2.BundleHeaderProto(num_shards=num_shards, endianness=tensor_bundle_pb2.BundleHeaderProto.LITTLE,
                                               version=versions_pb2.VersionDef(producer=BUNDLE_VERSION))


def link_or_copy(a: str, b: str, *, link: bool = True) -> str:
    """Hard-link ``a`` as ``b``, or copy it when ``link`` is False or linking fails (another
    file system); returns ``"linked"`` or ``"copied"``."""
    if link:
        try:
            os.link(a, b)
            return "linked"
        except OSError:
            pass
    shutil.copyfile(a, b)
    with open(b, "rb+") as f:
        os.fsync(f.fileno())
    return "copied"
