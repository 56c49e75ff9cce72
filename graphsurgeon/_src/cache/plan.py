"""Which rows a cache run computes, into which shards, and the data set's index that points at them.

Rows are keyed by content: ``(sha256 of the input, copy number)``, copy 0 being the example
itself and copies 1..K its distorted versions (training examples only). A row already stored is
reused wherever it is; each distinct new content is computed once, however many examples carry
it. New rows are grouped by split (train, then validation, then test; data order within), so a
pass over one split reads that split's shards, and cut into shards of ``shard_size`` rows
numbered after the existing ones: the same data always gives the same shards.

Every example keeps its own label and split in the index, even when its content is shared with
another example (a duplicate row, the same image in two folders).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from graphsurgeon._src.storage import cacheshards
from graphsurgeon._src.storage.records import SPLIT_CODES

TRAIN = SPLIT_CODES["train"]
ITEM = np.dtype("V34")  # the bytes of a cacheshards.KEY_DTYPE record: key (32) + copy (2)


@dataclasses.dataclass
class Task:
    """One new shard: the examples and copy numbers of its rows, in row order."""

    shard: int
    examples: np.ndarray
    augs: np.ndarray

    def __len__(self):
        return len(self.examples)


@dataclasses.dataclass
class Plan:
    """What a run computes (``tasks``) and the index of the data set (``view``, one row per
    example and copy, sorted by shard; ``view_shards`` holds each row's shard)."""

    tasks: list
    view: np.ndarray
    view_shards: np.ndarray
    reused: int

    @property
    def computed(self) -> int:
        return sum(len(t) for t in self.tasks)


class Known:
    """The rows stored in a cache's shards, looked up by content."""

    def __init__(self, keys: list, shards: list):
        """``keys``: one ``KEY_DTYPE`` array per shard in ``shards``."""
        items = np.concatenate([k.view(ITEM) for k in keys]) if keys else np.zeros(0, ITEM)
        shard = np.concatenate([np.full(len(k), s, np.int64) for k, s in zip(keys, shards)]) if keys \
            else np.zeros(0, np.int64)
        row = np.concatenate([np.arange(len(k), dtype=np.int64) for k in keys]) if keys else np.zeros(0, np.int64)
        order = np.argsort(items, kind="stable")
        self.items, self.shard, self.row = items[order], shard[order], row[order]

    def __len__(self):
        return len(self.items)

    def lookup(self, items: np.ndarray):
        """``(found, shard, row)`` for each of ``items`` (``ITEM``)."""
        pos = np.searchsorted(self.items, items)
        pos = np.minimum(pos, max(len(self.items) - 1, 0))
        found = (self.items[pos] == items) if len(self.items) else np.zeros(len(items), bool)
        return found, np.where(found, self.shard[pos] if len(self) else 0, -1), \
            np.where(found, self.row[pos] if len(self) else 0, -1)


def item_keys(keys: np.ndarray, augs: np.ndarray) -> np.ndarray:
    """``ITEM`` values of contents ``keys`` (``V32``) at copies ``augs``."""
    rec = np.empty(len(keys), cacheshards.KEY_DTYPE)
    rec["key"], rec["aug"] = keys, augs
    return rec.view(ITEM)


def distinct_items(items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(distinct, first, inverse)`` as ``np.unique(items, return_index=True, return_inverse=True)``
    gives them (``items[first] == distinct``, ``distinct[inverse] == items``, ``first`` each value's
    first occurrence), the distinct values in some order.

    Sorted by a 64-bit mix of each item's first key bytes and its copy number (an integer sort,
    several times faster than sorting 34-byte values); if two different items share a mix, by the
    whole items (``np.unique``).
    """
    n = len(items)
    if n < 2:
        return items.copy(), np.arange(n), np.zeros(n, np.int64)
    u8 = items.view(np.uint8).reshape(n, ITEM.itemsize)
    mix = u8[:, :8].copy().view("<u8").reshape(-1) ^ (u8[:, 32:34].copy().view("<u2").reshape(-1).astype(np.uint64)
                                                      * np.uint64(0x9E3779B97F4A7C15))
    order = np.argsort(mix, kind="stable")
    mix = mix[order]
    same = np.flatnonzero(mix[1:] == mix[:-1])  # neighbours sharing a mix: the same item, unless it collides
    if np.any(items[order[same]] != items[order[same + 1]]):
        distinct, first, inverse = np.unique(items.view(f"S{ITEM.itemsize}"), return_index=True, return_inverse=True)
        return distinct.view(ITEM), first, inverse.reshape(-1)
    starts = np.ones(n, bool)
    starts[same + 1] = False
    inverse = np.empty(n, np.int64)
    inverse[order] = np.cumsum(starts) - 1
    first = order[starts]  # a stable sort keeps each item's first occurrence first
    return items[first], first, inverse


def expand(splits: np.ndarray, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """``(example, copy)`` of every row the data set needs, in data order: each example's copy 0,
    then copies 1..``copies`` of training examples."""
    per = 1 + np.where(splits == TRAIN, copies, 0).astype(np.int64)
    examples = np.repeat(np.arange(len(splits), dtype=np.int64), per)
    starts = np.repeat(np.cumsum(per) - per, per)
    return examples, (np.arange(len(examples)) - starts).astype(np.uint16)


def make_plan(source, copies: int, known: Known, shard_size: int, first_shard: int) -> Plan:
    """The plan of a run over ``source`` (a :class:`~graphsurgeon._src.storage.records.RecordSource`)."""
    examples, augs = expand(source.splits, copies)
    keys = source.keys if len(examples) == len(source.keys) else source.keys[examples]  # no copies: no gather
    items = item_keys(keys, augs)
    distinct, first, inverse = distinct_items(items)
    del items, keys
    found, shard, row = known.lookup(distinct)
    del distinct
    pending = _by_split_then_data_order(np.flatnonzero(~found), first, source.splits[examples])
    split_of = source.splits[examples[first[pending]]]
    tasks, next_shard = [], first_shard
    for code in range(3):
        group = pending[split_of == code]
        for a in range(0, len(group), shard_size):
            chunk = group[a:a + shard_size]
            shard[chunk], row[chunk] = next_shard, np.arange(len(chunk))
            tasks.append(Task(next_shard, examples[first[chunk]], augs[first[chunk]]))
            next_shard += 1
    inverse = inverse.reshape(-1)
    view = np.empty(len(examples), cacheshards.EXAMPLE_DTYPE)
    view["example"], view["aug"], view["row"] = examples, augs, row[inverse]
    view["label"], view["split"] = source.labels[examples], source.splits[examples]
    rows_shard = shard[inverse]
    order = np.argsort(rows_shard, kind="stable")
    return Plan(tasks, view[order], rows_shard[order], int(np.count_nonzero(found)))


def _by_split_then_data_order(pending: np.ndarray, first: np.ndarray, row_splits: np.ndarray) -> np.ndarray:
    """``pending`` (indices of distinct items) ordered by the split of each one's first row, then by
    that row's place (``np.lexsort((first[pending], split))``, in linear time: ``first`` values are
    distinct row numbers, so placing them is a sort by data order)."""
    at = np.full(len(row_splits), -1, np.int64)
    at[first[pending]] = pending
    pending = at[at >= 0]
    return pending[np.argsort(row_splits[first[pending]], kind="stable")]
