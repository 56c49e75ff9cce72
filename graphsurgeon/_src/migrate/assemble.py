"""Phase 5: write the planned tensors as a V2 checkpoint (through :mod:`storage.bundle_writer`).

A tensor copied from a V2 source either keeps its bytes where they are (``link``: the source's
data files become shards of the destination, hard-linked, and only the index is new) or has
them copied into the destination's one new data file. Every other tensor (casts, joined
partitions, V1 sources, the TF2 object graph) is written into that file as it is computed,
in chunks of at most 8 MiB when its source is a V2 checkpoint (a few at a time: see
:class:`Converter`), so memory stays near a few chunks whatever the tensor's size. TensorFlow checks crc32c on read; each tensor written here gets the
crc32c of its bytes, and the source's bytes are checked against theirs as they are read.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import tensor_bundle_pb2

from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage import bundle
from graphsurgeon._src.storage.bundle_data import read_chunks
from graphsurgeon._src.storage.bundle_writer import BundleWriter


def should_link(tensors: list, link: bool | None) -> bool:
    """False when the destination copies no tensor of a V2 source unchanged (a V1 source's tensors, casts
    of every tensor): there is nothing to link. Otherwise ``link`` if given, else True when it uses every
    byte of each V2 source it copies from (pure renames, keeps of everything, merges), so linking costs
    no space."""
    if not any(p.source.kind == "v2" and p.action == "copy" for p in tensors):
        return False
    if link is not None:
        return link
    used = {}
    for p in tensors:
        if p.source.kind != "v2":
            continue
        if p.action != "copy":
            return False
        used.setdefault(id(p.source), (p.source, set()))[1].update((p.source_key, *p.slices))
    return all(keys == set(src.entries) for src, keys in used.values())


def bytes_to_write(tensors: list, *, link: bool) -> int:
    """How many bytes :func:`assemble` writes into the new data file (linked tensors cost none)."""
    return sum(p.nbytes for p in tensors if not (link and p.action == "copy" and p.source.kind == "v2"))


def assemble(tensors: list, prefix: str, *, link: bool, progress: Progress | None = None,
             read_back: frozenset = frozenset(), preview=None) -> list[str]:
    """Write checkpoint ``prefix`` holding ``tensors`` (PlannedTensors); returns the files written, index
    last. ``progress`` (counting MiB, see :func:`bytes_to_write`) is advanced as tensors are written.
    The new data file holds the tensors largest first, so that the disk starts writing at once
    while the small ones, each costing more per byte, are still to come; except that the numeric
    tensors computed here whose destination names are in ``read_back`` come right after the
    largest tensor, each having its bytes read from the disk into the page cache as soon as they
    are written (see :class:`~graphsurgeon._src.storage.bundle_data.DataWriter`), and
    ``preview(writer, them)`` (if given: PlannedTensors) is called once the last of them is written,
    while the rest is still to be written (see :meth:`BundleWriter.preview`)."""
    w = BundleWriter(prefix, expected_bytes=bytes_to_write(tensors, link=link))
    converter, meter = Converter(), _Meter(progress)
    order = sorted(tensors, key=lambda p: -p.nbytes)
    early = [p for p in order[1:] if p.new in read_back and _computed(p)]
    order = order[:1] + early + [p for p in order[1:] if not (p.new in read_back and _computed(p))]
    try:
        for p in order:
            if p.action == "copy" and p.source.kind == "v2" and link:
                _link(w, p)
                continue
            if p.action == "copy" and p.source.kind == "v2":
                _copy(w, p)
            elif p.dtype == tf.string:
                w.write_value(p.new, _whole_value(p), tf.string)
            else:
                w.write(p.new, p.dtype, p.shape, meter.counted(_chunks(p, converter)), read_back=p.new in read_back)
                if preview is not None and early and p is early[-1]:
                    preview(w, early)
                continue
            meter.add(p.nbytes)
        return w.finish()
    except BaseException:
        w.abandon()
        raise
    finally:
        converter.close()


def _computed(p) -> bool:
    """Whether ``p`` is a numeric tensor computed here (written with :meth:`BundleWriter.write`)."""
    return not (p.action == "copy" and p.source.kind == "v2") and p.dtype != tf.string


class _Meter:
    """Advances a Progress counting MiB from the bytes written."""

    def __init__(self, progress: Progress | None):
        self.progress, self.bytes, self.shown = progress, 0, 0

    def add(self, n: int) -> None:
        self.bytes += n
        if self.progress is not None and (self.bytes >> 20) > self.shown:
            self.progress.update((self.bytes >> 20) - self.shown)
            self.shown = self.bytes >> 20

    def counted(self, chunks):
        for chunk in chunks:
            yield chunk
            self.add(chunk.nbytes)


def _keys(p) -> list[tuple[str, str]]:
    """``(source key, destination key)`` of a tensor and of its slices."""
    return [(p.source_key, p.new)] + [(k, bundle.rename_slice_key(k, p.new)) for k in p.slices]


def _clone(entry):
    e = tensor_bundle_pb2.BundleEntryProto()
    e.CopyFrom(entry)
    return e


def _link(w: BundleWriter, p) -> None:
    shards = w.link(p.source.prefix, p.source.num_shards)
    for key, new in _keys(p):
        e = _clone(p.source.entries[key])
        e.shard_id = shards[e.shard_id]
        w.add(new, e)


def _copy(w: BundleWriter, p) -> None:
    for key, new in _keys(p):
        e = p.source.entries[key]
        if e.slices:  # a partitioned variable's slice list: no bytes of its own
            meta = _clone(e)
            meta.shard_id = -1
            w.add(new, meta)
        else:
            w.copy(new, e, p.source.data_file(e))


def _chunks(p, converter: Converter):
    """The bytes of numeric tensor ``p`` as arrays of its destination dtype, part after part."""
    dst = np.dtype(p.dtype.as_numpy_dtype)
    for part in p.parts or (p,):
        src = part.source
        if src.kind != "v2":
            yield np.asarray(src.read(part.source_key)).astype(dst, copy=False)
            continue
        e = src.entries[part.source_key]
        src_dtype = np.dtype(tf.as_dtype(e.dtype).as_numpy_dtype)
        read = functools.partial(read_chunks, src.data_file(e), e.offset, e.size, crc=e.crc32c,
                                 what=f"tensor '{part.source_key}'", chunk_bytes=converter.chunk_bytes)
        yield from converter.converted(read, src_dtype, dst)


def _convert(piece) -> None:
    out, x = piece
    np.copyto(out, x, casting="unsafe")


# Casts TensorFlow's kernel does faster than numpy's astype (float32 to float16: 0.5 ms against 1.3 ms
# a MiB, measured), with the same bits for every float32 value but NaNs (TensorFlow writes one NaN,
# numpy keeps the sign and top payload bits): checked on all 2**32 float32 values. NaNs are
# therefore converted by numpy. Not float32 to bfloat16: ml_dtypes' astype is 3-7 times faster.
TF_CASTS = {(np.dtype(np.float32), np.dtype(tf.float16.as_numpy_dtype))}
TF_MIN_BYTES = 128 << 10  # a smaller chunk: numpy's astype beats TensorFlow's cost a call (0.07-0.1 ms)

TF_ALIGN = 64  # bytes: TensorFlow's EIGEN_MAX_ALIGN_BYTES, the alignment its kernels check


def _cast(x: np.ndarray, dst_dtype: np.dtype) -> np.ndarray:
    """``x.astype(dst_dtype)`` (a pair in :data:`TF_CASTS`), bit for bit: by numpy for ``x`` under
    :data:`TF_MIN_BYTES`, else by TensorFlow's kernel (:func:`_tf_cast`)."""
    return x.astype(dst_dtype) if x.nbytes < TF_MIN_BYTES else _tf_cast(x, dst_dtype)


def _tf_cast(x: np.ndarray, dst_dtype: np.dtype) -> np.ndarray:
    """``x.astype(dst_dtype)`` (a 2-byte float type), bit for bit, through TensorFlow's cast kernel.
    A writable ``x`` aligned as TensorFlow's kernels require is handed to TensorFlow without a copy
    (DLPack; an unaligned buffer would abort the process in the kernel), any other is copied; the
    result is a view of TensorFlow's output buffer (read through its 16-bit pattern, which a
    memoryview can carry)."""
    shared = x.flags.writeable and x.flags.c_contiguous and x.ctypes.data % TF_ALIGN == 0
    t = tf.experimental.dlpack.from_dlpack(x.__dlpack__()) if shared else tf.convert_to_tensor(x)
    out = np.asarray(memoryview(tf.bitcast(tf.cast(t, tf.as_dtype(dst_dtype)), tf.uint16))).view(dst_dtype)
    if len(x) and np.isnan(np.min(x)):  # min is NaN when any element is
        out = np.array(out)
        nan = np.isnan(x)
        out[nan] = x[nan].astype(dst_dtype)
    return out


class Converter:
    """Converts chunks of one dtype to another with the bits numpy's ``astype`` gives (round to
    nearest even): float32 to float16 through TensorFlow's cast kernel (chunks of at least 128 KiB),
    any other pair, and smaller chunks, with numpy. Up to ``workers`` threads (default: the cores, at most four) share the work:
    with TensorFlow, each maps and casts whole chunks, a few ahead of the one being written (a
    tensor of one chunk is mapped and cast by the caller's thread);
    with numpy (which releases the GIL while it casts), they split each chunk, converting it
    into one of two reused buffers, used in turn. Each result stays valid until the one after
    next is produced (what :class:`~graphsurgeon._src.storage.bundle_data.DataWriter` needs to
    write a chunk while the next one is converted)."""

    chunk_bytes = 8 << 20  # source bytes a chunk (measured: 4-8 MiB beat 2 and 16 MiB)

    def __init__(self, workers: int | None = None):
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        self._buffers = [np.empty(0, np.uint8), np.empty(0, np.uint8)]

    def converted(self, read, src_dtype: np.dtype, dst_dtype: np.dtype):
        """The chunks of a tensor of ``src_dtype`` as arrays of ``dst_dtype``. ``read(**options)``
        returns :func:`~graphsurgeon._src.storage.bundle_data.read_chunks` of its bytes, the
        options given: TensorFlow's casts are handed to it (``convert``) with this converter's
        threads, so each chunk of a tensor longer than one chunk is mapped and cast by one of them,
        up to ``workers`` chunks ahead, and the source's crc32c is still checked in order."""
        if src_dtype == dst_dtype:
            return read()
        if (src_dtype, dst_dtype) in TF_CASTS:
            return read(private=True, convert=lambda raw: _cast(raw.view(src_dtype), dst_dtype), pool=self.pool,
                        ahead=self.workers)
        return self._numpy_chunks(read(), src_dtype, dst_dtype)

    def _numpy_chunks(self, raw_chunks, src_dtype: np.dtype, dst_dtype: np.dtype):
        """Each raw chunk (a uint8 array) read as ``src_dtype``, converted to ``dst_dtype`` by numpy."""
        for raw in raw_chunks:
            x = raw.view(src_dtype)
            n = len(x) * dst_dtype.itemsize
            self._buffers.reverse()
            if len(self._buffers[0]) < n:
                self._buffers[0] = np.empty(n, np.uint8)
            out = self._buffers[0][:n].view(dst_dtype)
            step = -(-len(x) // self.workers)
            if self.pool is None or len(x) < (1 << 18):
                np.copyto(out, x, casting="unsafe")
            else:
                pieces = [(out[i:i + step], x[i:i + step]) for i in range(0, len(x), step)]
                list(self.pool.map(_convert, pieces))
            yield out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _whole_value(p) -> np.ndarray:
    """A string tensor's value (joined parts concatenated), read through TensorFlow."""
    values = [part.source.read(part.source_key) for part in p.parts or (p,)]
    return values[0] if len(values) == 1 else np.concatenate(values)
