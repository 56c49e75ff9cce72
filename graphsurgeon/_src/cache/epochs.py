"""How a cache's rows become minibatches within a memory budget: three ways to read a split.

* **Resident** — a split whose rows (as float32, with their distorted copies) fit in what is left
  of the budget, counted at ``RESIDENT_ROW_BYTES`` more a row, is read once and kept; each epoch
  shuffles it exactly as in-memory training shuffles (``train.batches`` with
  ``default_rng(seed + epoch)``), so both see the same batches.
* **Windowed** (training, too large) — the split's shards in an order shuffled every epoch, cut
  into windows of :meth:`Store.window_rows` rows (the last may hold fewer): half of what the
  resident splits leave of the budget, at a stored row plus ``ROW_BOOKKEEPING`` bytes a row. A
  window holds consecutive rows of that shard order, so a shard may end one window and start the next (or span
  several, if it is larger than a window); each piece of a shard is one contiguous read. The next
  window is read in the background while this one trains (two buffers); rows are shuffled within
  the window (the few left over from the previous window, fewer than a batch, go first); a batch
  is one gather from the window's buffer.
* **Streamed** (evaluation, too large) — one shard after another, in order, a piece at a time
  through one reused buffer (:meth:`Store.piece_buffer`); within a piece, rows come in index
  order, so a pass gives the index's order whenever it lists each shard's rows in ascending
  order, as ``generate`` writes them (examples with the same content share a row, and their
  later entries can point back).

A resident split is never evicted: evaluating the validation split does not push the training
split out.

Memory. The resident splits (their float32 rows and ``RESIDENT_ROW_BYTES`` a row) and the two
window buffers (at most ``window_rows`` stored rows each) with the bookkeeping of their rows
(``ROW_BOOKKEEPING`` a row) stay within the budget: a split is made resident only if it fits beside
what is there and still leaves room for two windows of one row (:meth:`Store.minimum`). Beside the
budget: the scratch piece buffer (``PIECE_BYTES``, or one stored row if larger), allocated only
when no window buffer of that size is there; while a shard's first read checks its sha256, a
chunk of ``CHECK_CHUNK`` (1 MiB; :mod:`graphsurgeon._src.storage.shardfile`); while one shard's
rows of an epoch are selected, its part of the index and the arrays made from it (about 50 bytes
a row of that shard: entry, masks, row numbers, labels); the rows carried from one window or piece
to the next (fewer than a batch) and the batches themselves (the caller's). A shard's size in bytes
never changes these bounds (a shard larger than a window or a piece is read in pieces); its number
of rows enters only through the selection of its index, about 50 bytes a row.
"""
from __future__ import annotations

import concurrent.futures

import numpy as np

from graphsurgeon._src import train
from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.storage.cacheshards import EXAMPLE_DTYPE
from graphsurgeon._src.storage.records import SPLIT_CODES

TRAIN = SPLIT_CODES["train"]
# bytes per row a window holds besides the row itself: its position and label, their shuffled
# copies and the permutation while it is consumed (8 each: 40); while it is read, the positions and
# labels of its pieces and their concatenation (32)
ROW_BOOKKEEPING = 56
# bytes per row a resident split holds besides the float32 row: its index entry (15, kept), and at
# most 49 more for what an epoch builds over the split (selection mask, positions, int64 labels, the
# permutation: 25; before the positions exist, the copy draw's 64-bit temporaries) or, while it is
# loaded, for its entries and their shard numbers being sorted (54 with the 15)
RESIDENT_ROW_BYTES = 64
# the scratch buffer's size, when no window buffer is there to read pieces through
PIECE_BYTES = 8 << 20


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
        first = next(iter(shards.values()), None)
        self.dtype = first.dtype if first is not None else np.dtype(np.float32)
        self.stored_row_bytes = first.row_bytes if first is not None else self.row_bytes
        self.resident = {}     # split code -> (index rows sorted by example, activations)
        self.buffers = []      # the windowed reader's two read buffers
        self.scratch = None    # PIECE_BYTES, for pieces when no window buffer is that large
        self.stats = {"shard_reads": 0, "bytes_read": 0}

    def resident_bytes(self) -> int:
        return sum(a.nbytes + len(r) * RESIDENT_ROW_BYTES for r, a in self.resident.values())

    def used(self) -> int:
        """Bytes counted against the budget: resident splits and window buffers."""
        return self.resident_bytes() + sum(b.nbytes for b in self.buffers)

    def minimum(self) -> int:
        """The smallest budget windows can work in: two windows of one row."""
        return 2 * (self.stored_row_bytes + ROW_BOOKKEEPING)

    def window_rows(self) -> int:
        """Rows a window holds: half of what the resident splits leave, at a stored row and its
        bookkeeping a row."""
        return (self.budget - self.resident_bytes()) // 2 // (self.stored_row_bytes + ROW_BOOKKEEPING)

    def fits(self, code: int) -> bool:
        """Whether split ``code`` can be made resident beside what is there, leaving room for two
        windows of one row."""
        need = self.rows_of(code) * (self.row_bytes + RESIDENT_ROW_BYTES)
        return need == 0 or need <= self.budget - self.used() - self.minimum()

    def parts_of(self, code: int) -> list:
        return [p for p in self.parts if p["splits"][code]]

    def rows_of(self, code: int) -> int:
        return sum(p["splits"][code] for p in self.parts)

    def read(self, shard: int, buffer: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start`` to ``stop`` of ``shard`` read into ``buffer``, as a view of it (stored dtype)."""
        f = self.shards[shard]
        stop = f.shape[0] if stop is None else stop
        self.stats["shard_reads"] += 1
        self.stats["bytes_read"] += f.nbytes if not f.verified else (stop - start) * f.row_bytes
        return f.read_rows(buffer, start, stop)

    def read_pieces(self, shard: int, buffer: np.ndarray, pieces: list):
        """``ShardFile.read_pieces`` of ``shard``, counted in the stats."""
        f = self.shards[shard]
        self.stats["shard_reads"] += len(pieces)
        self.stats["bytes_read"] += f.nbytes if not f.verified else sum(b - a for a, b in pieces) * f.row_bytes
        return f.read_pieces(buffer, pieces)

    def piece_buffer(self) -> np.ndarray:
        """The buffer pieces are read through when no window is being read: the first window
        buffer if it holds ``PIECE_BYTES``, else the scratch (``PIECE_BYTES`` or one stored row)."""
        if self.buffers and len(self.buffers[0]) >= PIECE_BYTES:
            return self.buffers[0]
        if self.scratch is None:
            self.scratch = new_piece_buffer(self)
        return self.scratch

    def close(self) -> None:
        self.resident, self.buffers, self.scratch = {}, [], None


def new_piece_buffer(store: Store) -> np.ndarray:
    """A buffer of ``PIECE_BYTES`` (whole stored rows), or of one stored row if that is larger."""
    return np.empty(max(PIECE_BYTES // store.stored_row_bytes, 1) * store.stored_row_bytes, np.uint8)


def batches(store: Store, code: int, batch_size: int, *, shuffle: bool, seed: int, epoch: int, copies: int,
            augmented: bool):
    """``(x, y)`` minibatches of split ``code``, read the way the split's size allows."""
    def pick(rows):
        return choose(rows, code, copies, augmented, seed, epoch)

    if code not in store.resident and store.fits(code):
        store.resident[code] = _load(store, code)
    if code in store.resident:
        return _resident(store.resident[code], pick, batch_size, np.random.default_rng(seed + epoch) if shuffle else None)
    if shuffle:
        return _windowed(store, code, pick, batch_size, np.random.default_rng(seed + epoch))
    return _streamed(store, code, pick, batch_size)


def gather(store: Store, shard_of: np.ndarray, rows: np.ndarray, out: np.ndarray, buffer: np.ndarray) -> None:
    """``out[i] = row rows[i] of shard shard_of[i]`` (converted to ``out``'s dtype), reading through
    ``buffer`` only the pieces of each shard that hold some of them, each once, in one pass over the
    file. A shard's first read checks the whole file after its last piece: ``out`` is complete and
    checked only when this returns.

    Raises:
      CacheError: a row the shard does not hold, or a shard that fails its check.
    """
    cap = len(buffer) // store.stored_row_bytes
    for s in np.unique(shard_of).tolist():
        m = np.flatnonzero(shard_of == s)
        want = rows[m].astype(np.int64)
        held = _check_rows(store, s, want)
        pieces = [(a, min(a + cap, held)) for a in range(0, held, cap) if np.any((want >= a) & (want < a + cap))]
        for a, b, arr in store.read_pieces(s, buffer, pieces):
            k = (want >= a) & (want < b)
            out[m[k]] = arr[want[k] - a]


def _check_rows(store: Store, shard: int, rows: np.ndarray) -> int:
    """The rows ``shard`` holds, after checking that ``rows`` are among them.

    Raises:
      CacheError: the index names a row the shard does not hold.
    """
    held = store.shards[shard].shape[0]
    if len(rows) and rows.max() >= held:
        raise CacheError(f"{store.shards[shard].path}: the data set's index names row {int(rows.max())} but the "
                         f"shard holds {held} rows; run generate_cache again")
    return held


def _load(store: Store, code: int):
    """Every index row of split ``code`` (sorted by example and copy) and its activations."""
    rows, shard_of = [], []
    for p in store.parts_of(code):
        r = store.index.part(p)
        rows.append(r[r["split"] == code])
        shard_of.append(np.full(len(rows[-1]), p["shard"], np.int64))
    if not rows:  # an empty split
        return np.zeros(0, EXAMPLE_DTYPE), np.empty((0,) + store.shape, np.float32)
    rows, shard_of = np.concatenate(rows), np.concatenate(shard_of)
    order = np.lexsort((rows["aug"], rows["example"]))
    rows, shard_of = rows[order], shard_of[order]
    del order
    acts = np.empty((len(rows),) + store.shape, np.float32)
    gather(store, shard_of, rows["row"], acts, store.piece_buffer())
    return rows, acts


def _resident(resident, pick, batch_size: int, rng):
    rows, acts = resident
    sel = np.flatnonzero(pick(rows))
    labels = rows["label"].astype(np.int64)
    for idx in train.batches(len(sel), batch_size, rng):
        yield acts[sel[idx]], labels[sel[idx]]


def _windows(store: Store, parts: list, cap: int) -> list:
    """Windows of ``cap`` consecutive rows of ``parts``' shards (the last may hold fewer): lists of
    ``(part, start, stop)``, a piece of one shard each."""
    out, window, room = [], [], cap
    for p in parts:
        held, a = store.shards[p["shard"]].shape[0], 0
        while a < held:
            b = min(held, a + room)
            window.append((p, a, b))
            room, a = room - (b - a), b
            if not room:
                out.append(window)
                window, room = [], cap
    return out + ([window] if window else [])


def _selected(store: Store, p: dict, pick, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rows in the shard, labels)`` of the examples of part ``p`` an epoch reads, in index
    order; only rows ``start`` to ``stop`` (default: all) of the shard.

    Raises:
      CacheError: the index names a row the shard does not hold.
    """
    r = store.index.part(p)
    r = r[pick(r)]
    rows = r["row"].astype(np.int64)
    _check_rows(store, p["shard"], rows)
    if start or stop is not None:
        keep = (rows >= start) & (rows < (store.shards[p["shard"]].shape[0] if stop is None else stop))
        return rows[keep], r["label"][keep].astype(np.int64)
    return rows, r["label"].astype(np.int64)


def _read_window(store: Store, window: list, buffer: np.ndarray, pick):
    """``(positions, labels)`` of a window's selected rows, its pieces read one after another into
    ``buffer``: the rows are ``rows_of(buffer)[positions]``."""
    positions, labels, slot = [], [], 0
    for p, a, b in window:
        rows, y = _selected(store, p, pick, a, b)
        store.read(p["shard"], buffer[slot * store.stored_row_bytes:], a, b)
        positions.append(slot + rows - a)
        labels.append(y)
        slot += b - a
    return np.concatenate(positions), np.concatenate(labels)


def _rows_of(store: Store, buffer: np.ndarray) -> np.ndarray:
    """``buffer`` as an array of stored rows."""
    n = len(buffer) // store.stored_row_bytes
    return buffer[:n * store.stored_row_bytes].view(store.dtype).reshape((n,) + store.shape)


def _windowed(store: Store, code: int, pick, batch_size: int, rng):
    """The epoch's windows, and buffers for them (kept for the reader's life: fresh memory costs
    page faults every epoch); then :func:`_window_batches`. An empty split: no buffers, no batches."""
    parts = store.parts_of(code)
    if not parts:
        return
    parts = [parts[i] for i in rng.permutation(len(parts))]
    windows = _windows(store, parts, store.window_rows())
    size = max(sum(b - a for _, a, b in w) for w in windows) * store.stored_row_bytes
    if len(store.buffers) < 2 or len(store.buffers[0]) < size:
        store.buffers = []
        store.buffers = [np.empty(size, np.uint8), np.empty(size, np.uint8)]
    yield from _window_batches(store, windows, pick, batch_size, rng)


def _window_batches(store: Store, windows: list, pick, batch_size: int, rng):
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
    """One shard after another, in order, a piece at a time: full batches, the rest carried on. An
    empty split: no piece buffer, no batches."""
    parts = store.parts_of(code)
    if not parts:
        return
    carry, buffer = None, store.piece_buffer()
    cap = len(buffer) // store.stored_row_bytes
    for p in parts:
        rows, labels = _selected(store, p, pick)
        held = store.shards[p["shard"]].shape[0]
        for a in range(0, held, cap):
            keep = (rows >= a) & (rows < a + cap) if held > cap else slice(None)
            arr = store.read(p["shard"], buffer, a, min(a + cap, held))
            carry = yield from _batches_of(arr, rows[keep] - a, labels[keep], carry, batch_size, None, last=False)
    if carry is not None:
        yield carry
