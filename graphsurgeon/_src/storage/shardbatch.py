"""Shards written in batches: the local generator's writer (group commit).

:func:`~graphsurgeon._src.storage.cacheshards.write_shard` makes each shard durable on its own:
two fsyncs and a directory fsync a shard. :class:`ShardBatch` writes the same files (the same
bytes under the same names) but makes them durable a batch at a time: each shard's two files are
written under their temporary names and their write-back is started at once; every ``size``
shards (and on :meth:`ShardBatch.flush`) the batch's files are fsync'd, renamed into place, and
the directory is fsync'd once. The device then writes one shard while the next ones are written,
and one directory sync covers the batch. An entry is returned only once its files are durable
under their final names, so a manifest never lists a shard that a crash could lose; a run killed
mid-batch leaves ``.tmp`` files, which the next run removes.
"""
from __future__ import annotations

import os

import numpy as np

from graphsurgeon._src.storage import cachefiles, cacheshards

BATCH_SHARDS = 16  # shards made durable together (measured: 16 shards of 1.6 MB, about 1.5x write_shard's pace)


class ShardBatch:
    """``batch.write(shard, rows, keys)`` returns the entries made durable by that call (none until
    ``size`` shards are pending); ``batch.flush()`` makes the rest durable and returns their entries;
    ``batch.close()`` closes what is still open (their ``.tmp`` files stay, as a killed run's do), as
    a failed flush does for its batch. Each entry is what ``write_shard`` returns for the same shard."""

    def __init__(self, directory: str, size: int = BATCH_SHARDS):
        self.directory, self.size = directory, size
        self._pending = []  # (entry, [(descriptor, temporary name, final name)])

    def write(self, shard: int, array: np.ndarray, keys: np.ndarray) -> list[dict]:
        names = (cachefiles.shard_name(shard), cachefiles.keys_name(shard))
        files, digests = [], []
        try:
            for name, value in zip(names, (array, keys.astype(cacheshards.KEY_DTYPE, copy=False))):
                fd, sha, size = cacheshards.start_npy(os.path.join(self.directory, cachefiles.temp_name(name)), value)
                files.append((fd, cachefiles.temp_name(name), name))
                digests.append((sha, size))
        except BaseException:
            for fd, _, _ in files:
                os.close(fd)
            raise
        entry = {"shard": int(shard), "file": names[0], "keys": names[1], "rows": int(array.shape[0]),
                 "bytes": digests[0][1], "sha256": digests[0][0], "keys_sha256": digests[1][0]}
        self._pending.append((entry, files))
        return self.flush() if len(self._pending) >= self.size else []

    def flush(self) -> list[dict]:
        """Make the pending shards durable and return their entries. If a sync fails, the whole batch is
        dropped (its files closed, left under their ``.tmp`` names) and the error raised: a file whose
        fsync failed may have lost its data, so no later flush renames it into place."""
        pending, self._pending = self._pending, []
        try:
            for _, files in pending:
                for j, (fd, tmp, final) in enumerate(files):
                    if fd is not None:
                        files[j] = (None, tmp, final)  # finish_npy closes it whatever happens
                        cacheshards.finish_npy(fd)
        except BaseException:
            self._close(pending)
            raise
        cachefiles.rename_into_place(self.directory, [(tmp, final) for _, files in pending for _, tmp, final in files])
        return [entry for entry, _ in pending]

    def close(self) -> None:
        self._close(self._pending)
        self._pending = []

    @staticmethod
    def _close(pending) -> None:
        for _, files in pending:
            for fd, _, _ in files:
                if fd is not None:
                    os.close(fd)
