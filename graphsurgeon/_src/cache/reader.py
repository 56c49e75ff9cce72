"""``CacheReader``: a cache's data set as minibatches, with memory bounded by a budget."""
from __future__ import annotations

import operator

import numpy as np
import tensorflow as tf

from graphsurgeon._src.cache import epochs
from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.mixins import Closing, counted, listed
from graphsurgeon._src.storage import cachefiles, cacheshards, shardfile
from graphsurgeon._src.storage.records import SPLIT_CODES


class CacheReader(Closing):
    """The examples of the data set a cache was last made for, as minibatches, with bounded memory.

    Only the manifest is read when the reader opens (its memory follows the number of shards,
    not of examples); the index of a shard's examples is read when that shard is. A split whose
    rows (as float32, and ``epochs.RESIDENT_ROW_BYTES`` more a row) fit in what is left of
    ``buffer_bytes``, leaving room for two windows of one row, is read once and kept while the
    reader is open, and shuffled exactly as in-memory training shuffles (so both see the same
    batches); a larger split is read, when shuffled (``batches(shuffle=True)``, as training reads
    it), in windows of rows cut across its shards, and otherwise (as evaluation reads it) one
    shard after another, a piece at a time (see :mod:`graphsurgeon._src.cache.epochs`).

    Memory: what the reader keeps (resident splits, the two window buffers and the bookkeeping of
    their rows) stays within ``buffer_bytes``, however large the cache and its shards. Beside it, a
    fixed overhead: a scratch buffer of ``epochs.PIECE_BYTES`` (8 MiB, or one row if a row is
    larger), a 1 MiB chunk while a shard's checksum is checked, and the index of one shard at a
    time while its rows are selected (about 50 bytes a row of that shard). :meth:`read` reads
    through a piece buffer of its own while it runs; it, :meth:`examples` and :meth:`labels` build
    arrays over the examples they return (``read`` selects them one shard's index at a time).
    ``buffer_bytes`` must hold two windows of one row (``2 x (stored row + epochs.ROW_BOOKKEEPING)``
    bytes); a buffer smaller than a shard is fine.

    With ``verify`` (the default), when the reader opens: every shard the data set needs exists
    with its keys file, has the size the manifest gives, and has an ``.npy`` header that holds the
    manifest's dtype and rows of its shape; the index file's header and size, and its table in
    the manifest make sense (each part as long as its split counts, the parts together as many
    rows per split as the data set has examples, with their distorted copies). These are O(shards)
    checks. The first time a shard is read (whole or in part), its sha256 over the whole file,
    before any of its rows are returned (that first read reads the whole file); when
    the index of a shard is read, its sha256, then its rows (split counts, rows inside the shard,
    example positions, copy numbers and labels inside the data set's).

    Attributes:
      cut: the cached tensor's name (the cut point); fingerprint, dtype (as stored), shape: from the manifest.
      classes: the class names the labels index (image folders' names, an ``.npz``'s ``classes``),
        or None when the data names none.
      data: where the data set came from and what it holds (examples, labels, sha256).
      stats: ``{"shard_reads", "bytes_read"}`` so far: reads of a shard's rows (whole or a piece),
        and the bytes read from shard files (the whole file on a checked first read).

    Raises:
      CacheError: ``buffer_bytes`` not an int (numpy's integers count; a float or a bool does not)
        or below that minimum, no manifest, a cache an interrupted run left incomplete, a damaged
        manifest, or (``verify``) files missing, of the wrong size or holding other arrays than the
        manifest says, or an index that does not make sense; naming the file and what was expected.
    """

    def __init__(self, directory: str, *, verify: bool = True, buffer_bytes: int = 256 << 20):
        manifest = cachefiles.read_manifest(directory)
        if manifest is None:
            raise CacheError(f"{directory}: no {cachefiles.MANIFEST}; not a cache (make one with generate_cache)")
        if not manifest["complete"]:
            raise CacheError(f"{directory}: incomplete (a run of generate_cache into it was interrupted after "
                             f"{counted(len(manifest['shards']), 'shard')}); run generate_cache again with the same arguments to "
                             "complete it")
        self.directory, self.manifest, self.buffer_bytes = directory, manifest, buffer_bytes
        self.fingerprint = manifest["fingerprint"]
        self.cut, self.dtype, self.shape = self.fingerprint["tensor"], manifest["dtype"], manifest["shape"]
        self.classes, self.data, self.copies = manifest["classes"], manifest["data"], manifest["copies"]
        table = manifest["examples"]
        used = {p["shard"] for p in table["parts"]}
        entries = [s for s in manifest["shards"] if s["shard"] in used]
        if verify:
            bad = cacheshards.check_shards(directory, entries, self.dtype, self.shape, full=False)
            if bad:
                raise CacheError(f"{directory}: {cacheshards.describe_bad(bad)}; {cacheshards.REPAIR_HINT}")
        self._index = cacheshards.ExamplesFile(directory, manifest, verify=verify)
        shards = {s["shard"]: shardfile.ShardFile(directory, s, self.dtype, self.shape, verify=verify)
                  for s in entries}
        buffer_bytes = _whole_bytes(directory, buffer_bytes)
        self._store = epochs.Store(self._index, table["parts"], shards, self.shape, buffer_bytes)
        if buffer_bytes < self._store.minimum():
            raise CacheError(f"{directory}: buffer_bytes={buffer_bytes!r}; the reader needs at least "
                             f"{self._store.minimum()} bytes for this cache's rows of {self._store.stored_row_bytes} "
                             f"bytes (two windows of one row and its bookkeeping, {epochs.ROW_BOOKKEEPING} bytes a row)")
        self.row_bytes = self._store.row_bytes
        self._active = None  # the batches() generator being consumed

    @property
    def stats(self) -> dict:
        return dict(self._store.stats)

    @property
    def label_range(self) -> tuple[int, int]:
        """The smallest and largest label of the data set."""
        lo, hi = self.data["labels"]
        return lo, hi

    def count(self, split: str) -> int:
        """Examples of ``split`` (distorted copies not counted)."""
        return int(self.data["splits"][_code(split)])

    def _first_rows(self, split: str | None, wanted: np.ndarray | None = None):
        """``(example, label, shard, row)`` of every undistorted example (of ``split``; with
        ``wanted``, a sorted array of positions, only of those), in data order."""
        cols = {k: [] for k in ("example", "label", "shard", "row")}
        for p in self._store.parts:
            if split is not None and not p["splits"][_code(split)]:
                continue
            r = self._index.part(p)
            r = r[(r["aug"] == 0) & ((r["split"] == _code(split)) if split is not None else True)]
            if wanted is not None:
                r = r[np.isin(r["example"], wanted)]
            for k in ("example", "label", "row"):
                cols[k].append(r[k].astype(np.int64))
            cols["shard"].append(np.full(len(r), p["shard"], np.int64))
        out = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in cols.items()}
        order = np.argsort(out["example"], kind="stable")
        return {k: v[order] for k, v in out.items()}

    def examples(self, split: str | None = None) -> np.ndarray:
        """Positions in the data (data order) of ``split``'s examples, or of every example."""
        return self._first_rows(split)["example"]

    def labels(self, split: str | None = None) -> np.ndarray:
        """Labels of ``split``'s examples (or of every example), in data order: indices into
        :attr:`classes` when the data names its classes."""
        return self._first_rows(split)["label"]

    def read(self, positions) -> np.ndarray:
        """Activations of the examples at data ``positions``, in that order, as float32 (undistorted;
        of each shard, the pieces that hold some of them, each once, through a buffer of
        ``epochs.PIECE_BYTES`` allocated for the call, so that an iteration in progress keeps its
        own).

        Raises:
          CacheError: a position the data set does not have.
        """
        positions = np.asarray(positions, np.int64).reshape(-1)
        rows = self._first_rows(None, np.unique(positions))
        at = np.searchsorted(rows["example"], positions)
        ok = (at < len(rows["example"])) & (rows["example"][np.minimum(at, len(rows["example"]) - 1)] == positions) \
            if len(rows["example"]) else np.zeros(len(positions), bool)
        if not ok.all():
            missing = list(dict.fromkeys(positions[~ok].tolist()))  # each once, in the order asked
            raise CacheError(f"{self.directory}: no example at {listed('position', missing, 5)} "
                             f"(the data set has {self.data['examples']})")
        out = np.empty((len(positions),) + tuple(self.shape), np.float32)
        epochs.gather(self._store, rows["shard"][at], rows["row"][at], out, epochs.new_piece_buffer(self._store))
        return out

    def batches(self, split: str, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                augmented: bool = True):
        """``(x, y)`` minibatches of ``split`` (see the class docstring for the order). With
        ``augmented``, each training example appears as one of its distorted copies (drawn from
        ``seed`` and ``epoch``) when the cache holds copies. One iteration at a time: starting a new
        one closes the one before."""
        if self._active is not None:
            self._active.close()
        if batch_size < 1:
            raise CacheError(f"batch_size must be >= 1, not {batch_size}")
        self._active = epochs.batches(self._store, _code(split), batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                      copies=self.copies, augmented=augmented)
        return self._active

    def dataset(self, split: str, batch_size: int, *, seed: int = 0, epochs: int = 1) -> tf.data.Dataset:
        """The same batches as a ``tf.data.Dataset`` of ``(x, y)``, one pass per epoch."""
        def gen():
            for e in range(epochs):
                yield from self.batches(split, batch_size, seed=seed, epoch=e)
        spec = (tf.TensorSpec([None] + list(self.shape), tf.float32), tf.TensorSpec([None], tf.int64))
        return tf.data.Dataset.from_generator(gen, output_signature=spec)

    def close(self):
        if self._active is not None:
            self._active.close()
            self._active = None
        self._store.close()


def _whole_bytes(directory: str, n) -> int:
    """``n`` as an int (numpy's integers too; not a bool or a float)."""
    try:
        if isinstance(n, bool):
            raise TypeError
        return operator.index(n)
    except TypeError:
        raise CacheError(f"{directory}: buffer_bytes={n!r}: expected a whole number of bytes (an int)") from None


def _code(split: str) -> int:
    if split not in SPLIT_CODES:
        raise CacheError(f"split '{split}': expected one of {', '.join(SPLIT_CODES)}")
    return SPLIT_CODES[split]
