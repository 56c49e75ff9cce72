"""How a cache's rows become minibatches within a memory budget: three ways to read a split.

* **Resident** — a split whose rows (with their distorted copies) fit in what is left of the
  budget is read once and kept; each epoch shuffles it exactly as in-memory training shuffles
  (``train.batches`` with ``default_rng(seed + epoch)``), so both see the same batches.
* **Windowed** (training, too large) — the split's shards in an order shuffled every epoch, a
  window of shards of about half the remaining budget at a time, the next window read in the
  background while this one trains; rows shuffled within the window (the few left over from the
  previous window, fewer than a batch, go first). A window's shards are read into one buffer so
  that each shard's rows start on a whole row of it: a batch is one gather from that buffer.
* **Streamed** (evaluation, too large) — one shard at a time, in order, into one reused buffer.

A resident split is never evicted: evaluating the validation split does not push the training
split out. Memory: the budget, plus up to two shards (a window always holds whole shards).
"""
from __future__ import annotations

import concurrent.futures

import numpy as np

from graphsurgeon._src import train
from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.storage.records import SPLIT_CODES

TRAIN = SPLIT_CODES["train"]
# bytes per row a window holds besides the row itself: its position and label, their shuffled
# copies and the permutation (8 each), and room for its index entry (15) while it is selected
ROW_BOOKKEEPING = 56


def choose(rows: np.ndarray, code: int, copies: int, augmented: bool, seed: int, epoch: int) -> np.ndarray:
    """Which index ``rows`` an epoch reads for split ``code``: each example once — copy 0, or for
    training examples with distorted copies (``augmented``), the copy drawn from ``(seed, epoch,
    example)``."""
    mask = rows["split"] == code
    if code != TRAIN or not augmented or not copies:
        return mask & (rows["aug"] == 0)
    return mask & (rows["aug"] == 1 + _mix(seed, epoch, rows["example"]) % copies)


def _mix(seed: int, epoch: int, examples: np.ndarray) -> np.ndarray:
    """splitmix64 of ``(seed, epoch, example)``, vectorized."""
    with np.errstate(over="ignore"):
        offset = np.uint64((seed * 0x9E3779B97F4A7C15 + epoch * 0xD1B54A32D192ED03) % 2 ** 64)
        z = examples.astype(np.uint64) + offset
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))).astype(np.int64) & 0x7FFFFFFFFFFFFFFF


class Store:
    """A cache's shards, index and memory budget (see the module docstring).

    Args:
      index: the :class:`~graphsurgeon._src.storage.cacheshards.ExamplesFile`; parts: its parts.
      shards: ``{shard number: ShardFile}``; shape: a row's shape; budget: bytes.
    """

    def __init__(self, index, parts: list, shards: dict, shape, budget: int):
        self.index, self.parts, self.shards, self.shape, self.budget = index, parts, shards, tuple(shape), budget
        self.row_bytes = int(np.prod(self.shape, dtype=np.int64)) * 4  # float32 in memory
        self.resident = {}     # split code -> (index rows sorted by example, activations)
        self.buffers = []      # the windowed reader's two read buffers
        self.scratch = None    # one shard, for resident loads and streamed passes
        self.stats = {"shard_reads": 0, "bytes_read": 0}

    def used(self) -> int:
        return sum(a.nbytes for _, a in self.resident.values()) + sum(b.nbytes for b in self.buffers)

    def parts_of(self, code: int) -> list:
        return [p for p in self.parts if p["splits"][code]]

    def rows_of(self, code: int) -> int:
        return sum(p["splits"][code] for p in self.parts)

    def read(self, shard: int, buffer: np.ndarray) -> np.ndarray:
        f = self.shards[shard]
        self.stats["shard_reads"] += 1
        self.stats["bytes_read"] += f.nbytes
        return f.read_into(buffer)

    def scratch_for(self, nbytes: int) -> np.ndarray:
        """A buffer of at least ``nbytes``: an idle window buffer if one is large enough."""
        for b in self.buffers:
            if len(b) >= nbytes:
                return b
        if self.scratch is None or len(self.scratch) < nbytes:
            self.scratch = np.empty(nbytes, np.uint8)
        return self.scratch

    def close(self) -> None:
        self.resident, self.buffers, self.scratch = {}, [], None


def batches(store: Store, code: int, batch_size: int, *, shuffle: bool, seed: int, epoch: int, copies: int,
            augmented: bool):
    """``(x, y)`` minibatches of split ``code``, read the way the split's size allows."""
    def pick(rows):
        return choose(rows, code, copies, augmented, seed, epoch)

    if code not in store.resident and store.rows_of(code) * store.row_bytes <= store.budget - store.used():
        store.resident[code] = _load(store, code)
    if code in store.resident:
        return _resident(store.resident[code], pick, batch_size, np.random.default_rng(seed + epoch) if shuffle else None)
    if shuffle:
        return _windowed(store, code, pick, batch_size, np.random.default_rng(seed + epoch))
    return _streamed(store, code, pick, batch_size)


def _load(store: Store, code: int):
    """Every index row of split ``code`` (sorted by example and copy) and its activations."""
    rows, parts = [], []
    for p in store.parts_of(code):
        r = store.index.part(p)
        rows.append(r[r["split"] == code])
        parts.append(np.full(len(rows[-1]), p["shard"], np.int64))
    rows, shard_of = np.concatenate(rows), np.concatenate(parts)
    order = np.lexsort((rows["aug"], rows["example"]))
    rows, shard_of = rows[order], shard_of[order]
    acts = np.empty((len(rows),) + store.shape, np.float32)
    for s in np.unique(shard_of):
        m = np.flatnonzero(shard_of == s)
        arr = store.read(int(s), store.scratch_for(store.shards[int(s)].nbytes))
        acts[m] = arr[rows["row"][m]]
    return rows, acts


def _resident(resident, pick, batch_size: int, rng):
    rows, acts = resident
    sel = np.flatnonzero(pick(rows))
    labels = rows["label"].astype(np.int64)
    for idx in train.batches(len(sel), batch_size, rng):
        yield acts[sel[idx]], labels[sel[idx]]


def _windows(store: Store, parts: list, size: int) -> list:
    """Consecutive ``parts`` grouped into windows of about ``size`` bytes, counting what each shard
    takes in a window's buffer (:func:`_window_bytes`) and the bookkeeping of its rows while a window
    is consumed (``ROW_BOOKKEEPING`` a row)."""
    out, window, total = [], [], 0
    for p in parts:
        window.append(p)
        total += _window_bytes(store, [p]) + p["count"] * ROW_BOOKKEEPING
        if total >= size:
            out.append(window)
            window, total = [], 0
    return out + ([window] if window else [])


def _window_bytes(store: Store, window: list) -> int:
    """Buffer bytes a window takes when every shard's rows start on a whole row of the buffer."""
    f = store.shards[window[0]["shard"]]
    return sum((_header_rows(store.shards[p["shard"]]) + store.shards[p["shard"]].shape[0]) * f.row_bytes
               for p in window)


def _header_rows(f) -> int:
    """Whole rows of the buffer a shard file's header takes when its rows start on a whole row."""
    return -(-f.offset // f.row_bytes)


def _selected(store: Store, p: dict, pick) -> tuple[np.ndarray, np.ndarray]:
    """``(rows in the shard, labels)`` of the examples of part ``p`` an epoch reads.

    Raises:
      CacheError: the index names a row the shard does not hold.
    """
    r = store.index.part(p)
    r = r[pick(r)]
    rows = r["row"].astype(np.int64)
    held = store.shards[p["shard"]].shape[0]
    if len(rows) and rows.max() >= held:
        raise CacheError(f"{store.shards[p['shard']].path}: the data set's index names row {int(rows.max())} but the "
                         f"shard holds {held} rows; run generate_cache again")
    return rows, r["label"].astype(np.int64)


def _read_window(store: Store, window: list, buffer: np.ndarray, pick):
    """``(positions, labels)`` of a window's selected rows, its shards read into ``buffer`` so that
    every shard's rows start on a whole row of the buffer: the rows are ``rows_of(buffer)[positions]``."""
    positions, labels, slot = [], [], 0
    for p in window:
        f = store.shards[p["shard"]]
        rows, y = _selected(store, p, pick)
        slot += _header_rows(f)
        store.read(p["shard"], buffer[slot * f.row_bytes - f.offset:])
        positions.append(slot + rows)
        labels.append(y)
        slot += f.shape[0]
    return np.concatenate(positions), np.concatenate(labels)


def _rows_of(store: Store, buffer: np.ndarray) -> np.ndarray:
    """``buffer`` as an array of stored rows."""
    f = next(iter(store.shards.values()))
    n = len(buffer) // f.row_bytes
    return buffer[:n * f.row_bytes].view(f.dtype).reshape((n,) + store.shape)


def _windowed(store: Store, code: int, pick, batch_size: int, rng):
    parts = store.parts_of(code)
    parts = [parts[i] for i in rng.permutation(len(parts))]
    windows = _windows(store, parts, max(1, (store.budget - store.used() + sum(b.nbytes for b in store.buffers)) // 2))
    biggest = max(_window_bytes(store, w) for w in windows)
    if len(store.buffers) < 2 or len(store.buffers[0]) < biggest:
        store.buffers = []  # kept for the reader's life: fresh memory costs page faults every epoch
        store.buffers = [np.empty(biggest, np.uint8), np.empty(biggest, np.uint8)]
    views = [_rows_of(store, b) for b in store.buffers]
    carry = None  # (x, y) rows left over from the previous window
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_read_window, store, windows[0], store.buffers[0], pick)
        try:
            for k in range(len(windows)):
                positions, labels = pending.result()
                pending = (pool.submit(_read_window, store, windows[k + 1], store.buffers[(k + 1) % 2], pick)
                           if k + 1 < len(windows) else None)
                carry = yield from _batches_of(views[k % 2], positions, labels, carry, batch_size, rng,
                                               last=pending is None)
        finally:
            if pending is not None:
                concurrent.futures.wait([pending])


def _batches_of(rows: np.ndarray, positions, labels, carry, batch_size: int, rng, *, last: bool):
    """Batches of ``rows[positions]`` (shuffled by ``rng``, or in order when it is None), the rows
    carried over from before first; returns the rows left over (a copy), or None. Each batch is
    one gather from ``rows`` into a new array (float32)."""
    if rng is not None:
        perm = rng.permutation(len(labels))
        positions, labels = positions[perm], labels[perm]
    start = 0
    if carry is not None:
        start = min(batch_size - len(carry[1]), len(labels))
        x, y = np.concatenate([carry[0], _float32(rows[positions[:start]])]), np.concatenate([carry[1], labels[:start]])
        if len(y) < batch_size and not last:
            return x, y
        yield x, y
    full = len(labels) if last else start + (len(labels) - start) // batch_size * batch_size
    for b in range(start, full, batch_size):
        yield _float32(rows[positions[b:b + batch_size]]), labels[b:b + batch_size]
    return (_float32(rows[positions[full:]]), labels[full:]) if full < len(labels) else None


def _float32(x: np.ndarray) -> np.ndarray:
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _streamed(store: Store, code: int, pick, batch_size: int):
    """One shard at a time, in order: full batches, the rest carried to the next shard."""
    carry = None
    for p in store.parts_of(code):
        rows, labels = _selected(store, p, pick)
        arr = store.read(p["shard"], store.scratch_for(store.shards[p["shard"]].nbytes))
        carry = yield from _batches_of(arr, rows, labels, carry, batch_size, None, last=False)
    if carry is not None:
        yield carry
