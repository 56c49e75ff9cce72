"""Phase 6: check the written checkpoint against its sources before it is moved into place.

Levels:

* ``"sample"`` (the default): TensorFlow's own reader opens the new checkpoint; its keys are
  exactly the planned ones, and every tensor's dtype and shape equal what TensorFlow's reader
  of the source gives (the cast dtype for casts, the parts' rows added up for joins). The
  bytes of every tensor under 1 MiB, and of a seeded sample of the larger ones (up to 16 MiB of
  them in all; the smallest one when none fits), are read back through TensorFlow and
  compared with the source (``migrate`` has the blocks of those it wrote with direct I/O read from
  the disk into the page cache as soon as they were written, and TensorFlow reads them from
  there): by crc32c against the source index's crc32c for a tensor copied
  unchanged from a V2 checkpoint, byte for byte against the value recomputed from the source
  (read by TensorFlow, then cast or joined) for every other tensor.
  At this level the sampled numeric tensors computed into the new data file are checked while the
  rest of the checkpoint is written, through a preview of them (see :class:`EarlyCheck`).
  At this level the values recomputed from the source (as many as fit in 64 MiB, taken in the
  order they are checked) are computed while the checkpoint is being written, in a background thread
  with TensorFlow readers of its own, at the lowest CPU priority on Linux (see :class:`Prefetch`;
  any others are computed when their tensor is checked), and compared only once the checkpoint
  is complete.
* ``"full"``: the same, with every tensor's bytes compared byte for byte with the value
  recomputed from the source (each read whole through TensorFlow on both sides).
* ``"none"``: nothing is checked.
"""
from __future__ import annotations

import os
import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from graphsurgeon._src.errors import CorruptCheckpointError, GraphSurgeonError, MigrateError
from graphsurgeon._src.mixins import series
from graphsurgeon._src.storage.bundle import crc32c, mask
from graphsurgeon._src.storage.bundle_writer import moved_since_preview
from graphsurgeon._src.storage.checkpoint import CheckpointReader

LEVELS = ("none", "sample", "full")
SMALL_BYTES = 1 << 20
SAMPLE_BYTES = 16 << 20
SAMPLE_SEED = 0
PREFETCH_BYTES = 64 << 20


def sample(tensors: list) -> list:
    """The tensors whose bytes the ``"sample"`` level reads: every one under 1 MiB, and the larger
    ones taken in an order shuffled with a fixed seed while they add up to at most 16 MiB (the
    smallest larger one when none fits)."""
    small = [p for p in tensors if p.nbytes < SMALL_BYTES]
    large = sorted((p for p in tensors if p.nbytes >= SMALL_BYTES), key=lambda p: p.new)
    random.Random(SAMPLE_SEED).shuffle(large)
    chosen, total = [], 0
    for p in large:
        if total + p.nbytes <= SAMPLE_BYTES:
            chosen.append(p)
            total += p.nbytes
    if large and not chosen:
        chosen = [min(large, key=lambda p: (p.nbytes, p.new))]
    return small + chosen


class Prefetch:
    """The values the ``"sample"`` level compares bytes with (those not checked by crc32c),
    computed from the sources in a background thread while the checkpoint is written, taken in
    the order :func:`verify` checks them, each while their total stays within 64 MiB. The thread runs
    at nice 19 on Linux (see :func:`_lowest_priority`), opens TensorFlow readers of its own (a
    reader is not shared across threads), reads with them so that the writing threads run meanwhile
    (``CheckpointReader(concurrent=True)``) and stops at the first tensor it cannot read, recording
    the error for that tensor. :meth:`close` stops it
    and waits for it."""

    def __init__(self, tensors: list, level: str):
        chosen, total = [], 0
        for p in sample(tensors) if level == "sample" else []:
            if not _by_crc(p) and total + p.nbytes <= PREFETCH_BYTES:
                chosen.append(p)
                total += p.nbytes
        self._values, self._error = {}, None
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="graphsurgeon-verify") if chosen else None
        self._done = self._pool.submit(self._compute, chosen) if chosen else None

    def _compute(self, chosen: list) -> None:
        _lowest_priority()
        readers = {}

        def read(part):
            src = part.source
            if src.kind == "memory":
                return src.values[part.source_key][0]
            if id(src) not in readers:
                readers[id(src)] = CheckpointReader(src.prefix, concurrent=True)
            return readers[id(src)].read(part.source_key)

        for p in chosen:
            if self._stop.is_set():
                return
            try:
                self._values[p.new] = expected_value(p, read)
            except Exception as e:  # raised when ``p`` is checked, as computing it then would
                self._error = (p.new, e)
                return

    def computed(self) -> set[str]:
        """The keys of the values computed ahead and not yet taken (waits for the thread to finish)."""
        if self._done is not None:
            self._done.result()
        return set(self._values)

    def take(self, p) -> np.ndarray | None:
        """``p``'s value computed ahead (waiting for the thread to finish), or None if it was not;
        raises the error met computing it, if any. Each value is handed out once."""
        if self._done is None:
            return None
        self._done.result()
        if self._error is not None and self._error[0] == p.new:
            raise self._error[1]
        return self._values.pop(p.new, None)

    def close(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown()
        self._values.clear()


def _lowest_priority() -> None:
    """Run the calling thread at the lowest CPU priority (nice 19) where threads have their own
    (Linux), so that it takes only the CPU time the write leaves unused; elsewhere, do nothing."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass


class EarlyCheck:
    """The ``"sample"`` level's byte checks of the sampled tensors computed into the new data file,
    made while the rest of the checkpoint is written. :func:`~graphsurgeon._src.migrate.assemble.assemble`
    calls :meth:`start` once the last of them is written; a thread (at nice 19 on Linux) then waits
    until their bytes are in the file, has the writer make a preview checkpoint ``PREFIX.preview``
    holding only them (its data file a hard link to the new one), reads each back through
    TensorFlow's reader of the preview (so that the writing threads run meanwhile:
    ``CheckpointReader(concurrent=True)``) and compares it with the value recomputed from the source,
    recording the outcome. :func:`verify` takes those outcomes only after checking that the
    finished checkpoint's index locates each of these tensors exactly where the preview's did, in
    the same file; if the thread could not make or open the preview, :func:`verify` checks them
    itself. :meth:`close` waits for the thread."""

    def __init__(self, prefix: str, prefetch: Prefetch | None = None):
        self.prefix = prefix + ".preview"
        self._prefetch, self._outcomes, self._done, self._index = prefetch, {}, None, None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="graphsurgeon-verify-early")

    def start(self, writer, tensors: list) -> None:
        """Check ``tensors`` (written into ``writer``'s new data file) from now on, in the thread."""
        self._done = self._pool.submit(self._run, writer.preview(self.prefix, [p.new for p in tensors]), tensors)

    def _run(self, make, tensors: list) -> None:
        _lowest_priority()
        if not make():
            return
        out = CheckpointReader(self.prefix, concurrent=True)
        self._index = out.index
        for p in tensors:
            try:
                _check_bytes(out, p, by_crc=True, prefetch=self._prefetch)
                self._outcomes[p.new] = None
            except MigrateError as e:
                self._outcomes[p.new] = e

    def outcomes(self, out: CheckpointReader) -> dict:
        """``{name: None (the same bytes) or the MigrateError}`` of the tensors checked, once the checkpoint
        ``out`` reads is complete (waits for the thread); ``{}`` when the preview was not made or not read.

        Raises:
          MigrateError: ``out``'s index locates one of them elsewhere than the preview's did.
        """
        if self._done is None:
            return {}
        try:
            self._done.result()
        except (GraphSurgeonError, OSError):  # the preview not made or not read: verify() reads the tensors
            return {}
        if not self._outcomes:
            return {}
        moved = moved_since_preview(out.prefix, self.prefix, list(self._outcomes), index=out.index,
                                    preview_index=self._index)
        if moved:
            raise MigrateError(f"verification failed: the index of the written checkpoint locates '{moved[0]}' "
                               "elsewhere than where it was read back")
        return dict(self._outcomes)

    def close(self) -> None:
        self._pool.shutdown()


def verify(prefix: str, tensors: list, level: str = "sample", prefetch: Prefetch | None = None,
           early: EarlyCheck | None = None) -> None:
    """Check checkpoint ``prefix`` (just written) against the sources of ``tensors`` (PlannedTensors);
    ``prefetch`` (made before the checkpoint was written) holds values computed ahead, ``early`` the
    outcomes of the checks made while it was written (see :class:`EarlyCheck`).

    Raises:
      MigrateError: ``"verification failed: ..."`` naming the first tensor that differs.
    """
    if level == "none":
        return
    try:
        out = CheckpointReader(prefix)
    except GraphSurgeonError as e:
        raise MigrateError(f"verification failed: TensorFlow cannot open the written checkpoint ({e})") from None
    _check_keys(out, tensors)
    for p in tensors:
        _check_dtype_shape(out, p)
    checked = early.outcomes(out) if early is not None else {}
    for p in tensors if level == "full" else sample(tensors):
        if p.new in checked:
            if checked[p.new] is not None:
                raise checked[p.new]
            continue
        _check_bytes(out, p, by_crc=level != "full", prefetch=prefetch)


def _check_keys(out: CheckpointReader, tensors: list) -> None:
    want, got = {p.new for p in tensors}, set(out.entries)
    if want != got:
        missing, extra = sorted(want - got), sorted(got - want)
        raise MigrateError("verification failed: the written checkpoint "
                           + "; ".join(([f"lacks {series(missing, 3)}"] if missing else [])
                                       + ([f"also holds {series(extra, 3)}"] if extra else [])))


def expected_dtype_shape(p) -> tuple[tf.DType, tuple]:
    """What TensorFlow's reader of the source says ``p`` becomes: its dtype (or the cast's) and
    shape (a join: the parts' first axes added up)."""
    dims = []
    for part in p.parts or (p,):
        src = part.source
        if src.kind == "memory":
            value, dtype = src.values[part.source_key]
            dims.append((dtype, tuple(np.shape(value))))
        else:
            e = src.reader().entries[part.source_key]
            dims.append((e.dtype, tuple(e.shape)))
    dtype, shape = dims[0]
    if p.action in ("cast", "join"):
        dtype = p.dtype
    if p.action == "join":
        shape = (sum(s[0] for _, s in dims), *shape[1:])
    return dtype, shape


def _check_dtype_shape(out: CheckpointReader, p) -> None:
    dtype, shape = expected_dtype_shape(p)
    got = out.entries[p.new]
    if got.dtype != dtype:
        raise MigrateError(f"verification failed: '{p.new}' is {got.dtype.name}, expected {dtype.name}")
    if tuple(got.shape) != shape:
        raise MigrateError(f"verification failed: '{p.new}' has shape {list(got.shape)}, expected {list(shape)}")


def expected_value(p, read=None) -> np.ndarray:
    """``p``'s value recomputed from its source(s) read through TensorFlow: cast, or parts joined.
    ``read(part)`` reads one part (default: through its source's reader)."""
    read = read or (lambda part: part.source.read(part.source_key))
    values = [read(part) for part in p.parts or (p,)]
    value = values[0] if len(values) == 1 else np.concatenate(values)
    if p.action in ("cast", "join") and p.dtype != tf.string:
        value = np.asarray(value).astype(p.dtype.as_numpy_dtype)
    return value


def _by_crc(p) -> bool:
    """Whether the ``"sample"`` level checks ``p`` by crc32c (copied unchanged from a V2 checkpoint)."""
    return p.action == "copy" and p.source.kind == "v2" and not p.slices and p.dtype != tf.string


def _check_bytes(out: CheckpointReader, p, *, by_crc: bool, prefetch: Prefetch | None = None) -> None:
    try:
        got = out.read(p.new)
    except CorruptCheckpointError as e:
        raise MigrateError(f"verification failed: '{p.new}' does not read back ({e})") from None
    if by_crc and _by_crc(p):
        crc = mask(crc32c(np.ascontiguousarray(got).reshape(-1).view(np.uint8)))
        if crc != p.source.entries[p.source_key].crc32c:
            raise MigrateError(f"verification failed: the crc32c of '{p.new}' differs from that of "
                               f"'{p.source_key}' in {p.source.prefix}")
        return
    want = prefetch.take(p) if prefetch is not None else None
    want = expected_value(p) if want is None else want
    same = np.array_equal(got, want) if p.dtype == tf.string else _same_bytes(got, want)
    if not same:
        raise MigrateError(f"verification failed: the bytes of '{p.new}' differ from the value computed from "
                           f"'{p.source_key}' in {p.source.prefix or p.source.path}")


def _same_bytes(a: np.ndarray, b: np.ndarray, step: int = 1 << 24) -> bool:
    """Same dtype, shape and bytes (NaNs included), compared 16 MiB at a time."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    x = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    y = np.ascontiguousarray(b).reshape(-1).view(np.uint8)
    return all(np.array_equal(x[i:i + step], y[i:i + step]) for i in range(0, len(x), step))
