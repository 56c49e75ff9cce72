"""The end of a cache run: the data set's index and the final manifest, and what the run did."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from graphsurgeon._src.storage import cachefiles, cacheshards


@dataclasses.dataclass
class CacheReport:
    """What a :func:`graphsurgeon._src.cache.generate` run did.

    Attributes:
      computed: rows computed; reused: rows of this data set found already stored.
      examples: rows the data set's index holds (examples, plus distorted copies of training images).
      unreferenced: stored rows that this data set does not use (kept, not read).
      changes: how the data set differs from the one the cache held before (examples, classes).
      checks: the manifest's record of the cut (``random``, ``batch_dependent``: true, false, or None
        when never checked), as :mod:`graphsurgeon._src.cache.checks` keeps it. notes: one sentence when
        that record holds a check as not run (a first batch of one example), saying why.
      seconds: the whole run's wall time (the model restored, the data indexed, the rows computed,
        the files committed). startup_seconds: with ``runner='beam'``, the part of it from the
        pipeline's start until the workers had written their first shard (starting the workers, each
        restoring the model, then that shard), as polled every quarter second (the pipeline's whole
        time when it ended before a shard was seen); None when no pipeline ran.
    """

    directory: str
    computed: int
    reused: int
    shards_written: int
    repaired: list
    seconds: float
    examples: int
    unreferenced: int = 0
    changes: list = dataclasses.field(default_factory=list)
    checks: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)
    startup_seconds: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def data_identity(source) -> dict:
    """Where the data came from and what it holds: examples (and per split), the range of its
    labels, and the sha256 over its class names and, per example in data order, content key,
    label and split."""
    h = hashlib.sha256(json.dumps(source.classes).encode())
    h.update(np.ascontiguousarray(source.keys).tobytes())
    h.update(source.labels.astype("<i8").tobytes())
    h.update(source.splits.astype("u1").tobytes())
    labels = [int(source.labels.min()), int(source.labels.max())]
    splits = [int(n) for n in np.bincount(source.splits, minlength=3)[:3]]
    return dict(source.identity, examples=len(source), splits=splits, labels=labels, sha256=h.hexdigest())


def final_manifest(directory: str, head: dict, entries: list, plan, source, copies: int) -> dict:
    """Write the index of ``source`` (``plan.view``) and return the manifest that lists it.

    The index file is named by its sha256, so writing it never changes a file the current
    manifest lists; the manifest is replaced afterwards, in one rename.
    """
    examples = cacheshards.write_examples(directory, plan.view, plan.view_shards)
    return dict(head, shards=sorted(entries, key=lambda s: s["shard"]), complete=True, examples=examples,
                data=data_identity(source), classes=source.classes, copies=int(copies))


def commit(directory: str, manifest: dict) -> None:
    """Replace the manifest (unless it holds these bytes) and delete files it no longer lists."""
    cachefiles.write_manifest(directory, manifest)
    cachefiles.remove_unreferenced(directory, manifest)


def unreferenced_rows(manifest: dict, plan) -> int:
    """Stored rows no example of the data set points at."""
    stored = sum(s["rows"] for s in manifest["shards"])
    used = np.unique(plan.view_shards.astype(np.int64) << 32 | plan.view["row"].astype(np.int64))
    return stored - len(used)


def changes(previous: dict | None, manifest: dict) -> list[str]:
    """How the data set in ``manifest`` differs from the one ``previous`` indexed."""
    if previous is None or not previous.get("complete") or previous["data"]["sha256"] == manifest["data"]["sha256"]:
        return []
    old, new = previous["data"], manifest["data"]
    out = [f"the data set changed ({new['examples']} examples, {old['examples']} before; the index follows it)"]
    if previous.get("classes") != manifest.get("classes"):
        out.append(f"classes {previous.get('classes')} -> {manifest.get('classes')} (labels follow the class names)")
    return out
