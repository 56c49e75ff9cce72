"""Compute one shard's rows: load its inputs, distort the copies, run the frozen subgraph in batches.

The same code runs in a local ``cache`` run and in each worker of a distributed one, so both
write the same bytes: a shard's rows are batched from its first row, ``batch_size`` at a time
(the last batch padded to a batch the graph fixes), and copy ``k`` of an image is distorted by
parameters drawn from ``(seed, its content key, k)``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from graphsurgeon._src.cache.checks import check_values
from graphsurgeon._src.determinism import rows_not_examples
from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.storage import cacheshards, datasets


@dataclasses.dataclass
class TaskInputs:
    """What a worker needs to compute a shard: per row, the loader's ref, a name for messages,
    the content key and the copy number (all picklable)."""

    shard: int
    refs: list
    names: list
    keys: np.ndarray   # V32
    augs: np.ndarray   # uint16

    def __len__(self):
        return len(self.refs)

    def keys_record(self) -> np.ndarray:
        rec = np.empty(len(self), cacheshards.KEY_DTYPE)
        rec["key"], rec["aug"] = self.keys, self.augs
        return rec


def task_inputs(source, task) -> TaskInputs:
    """The inputs of ``task`` (a :class:`~graphsurgeon._src.cache.plan.Task`) from ``source``."""
    return TaskInputs(task.shard, source.refs(task.examples), source.names(task.examples),
                      source.keys[task.examples], task.augs)


@dataclasses.dataclass
class Distortions:
    """retrain.py's distortions (``datasets.distortion``) with their seed."""

    params: dict
    seed: int

    def draw(self, keys: np.ndarray, augs: np.ndarray) -> list:
        """One distortion per row (None for copy 0), from ``(seed, content key, copy)``."""
        return [None if a == 0 else datasets.distortion(
            self.params, np.random.default_rng([self.seed, int.from_bytes(bytes(k)[:8], "big"), int(a)]))
            for k, a in zip(keys, augs)]


class Computer:
    """Runs the tensor ``cut`` over rows in batches (see the module docstring) into a reused buffer.

    Args:
      model: the restored model (its session runs the subgraph).
      cut: the cached tensor (a ``tf.Tensor``); feeder: a :class:`graphsurgeon._src.feeds.Feeder` for its input.
      batch_size: rows per ``session.run``; dtype: the stored dtype.
      distortions: a :class:`Distortions`, or None when no copies are made.
      buffers: shard buffers used in turn (2: a shard can be written while the next is computed).
    """

    def __init__(self, model, cut, feeder, batch_size: int, dtype: str, distortions=None, buffers: int = 1):
        self.model, self.cut, self.feeder = model, cut, feeder
        self.batch_size, self.dtype, self.distortions = batch_size, np.dtype(dtype), distortions
        self._bufs, self._turn = [None] * buffers, 0  # shard buffers, reused (fresh memory costs page faults)

    def batch(self, loader, inputs: TaskInputs, start: int):
        """``(inputs, activations)`` of rows ``start .. start + batch_size`` of ``inputs``."""
        sl = slice(start, start + self.batch_size)
        dist = self.distortions.draw(inputs.keys[sl], inputs.augs[sl]) if self.distortions else None
        x = loader.load(inputs.refs[sl], inputs.names[sl], dist)
        feed, n = self.feeder.feed(x)
        act = self.model.session.run(self.cut, feed)
        wrong = rows_not_examples(self.model, self.cut, self.feeder, feed, act)
        if wrong:
            raise ConfigError(f"tensor {wrong}, and a cache stores one row per example; cache a tensor where axis 0 "
                              "is the batch")
        return x, act[:n]

    def check_values(self, loader, inputs: TaskInputs, **allow) -> dict:
        """:func:`~graphsurgeon._src.cache.checks.check_values` on the first batch of ``inputs``
        (``allow``: its ``allow_random`` and ``allow_batch_dependent``)."""
        x, act = self.batch(loader, inputs, 0)
        return check_values(self.model, self.cut, self.feeder, x, act, **allow)

    def rows(self, loader, inputs: TaskInputs, progress=None) -> np.ndarray:
        """Every row of ``inputs``, stored dtype, as a view of the next reused buffer (valid until
        ``buffers`` more calls); ``progress(n)`` is called after each batch."""
        turn, self._turn = self._turn, (self._turn + 1) % len(self._bufs)
        buf = self._bufs[turn]
        for start in range(0, len(inputs), self.batch_size):
            _, act = self.batch(loader, inputs, start)
            if buf is None or len(buf) < len(inputs) or buf.shape[1:] != act.shape[1:]:
                buf = self._bufs[turn] = np.empty((len(inputs),) + act.shape[1:], self.dtype)
            buf[start:start + len(act)] = act
            if progress is not None:
                progress(len(act))
        return buf[:len(inputs)]
