"""What a cache directory already holds, checked against the run that wants to extend it."""
from __future__ import annotations

import dataclasses

from graphsurgeon._src.cache.header import augment_differences, differences
from graphsurgeon._src.cache.plan import Known
from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.storage import cachefiles, cacheshards


@dataclasses.dataclass
class State:
    """The shards a run builds on.

    Attributes:
      previous: the manifest found (None for a new cache).
      entries: the shard entries kept (all of them, unless ``--repair`` dropped damaged ones).
      repaired: names of damaged shards whose rows are computed again.
      augment: the distortion settings of the stored copies (the header's ``augment``).
      known: the stored rows by content; first_shard: the number of the next new shard.
    """

    previous: dict | None
    entries: list
    repaired: list
    augment: dict | None
    known: Known
    first_shard: int


def open_state(directory: str, head: dict, repair: bool) -> State:
    """Check the cache in ``directory`` against ``head`` (this run's header) and load its keys.

    Side effects: removes temporary files a killed run left, and shard or index files the
    manifest does not list (names matching the cache's own patterns only). With ``repair``,
    damaged shards are dropped from the manifest (written first) and their files deleted.

    Raises:
      CacheError: a cache made under other settings (naming what changed), distorted copies made
        with other distortion settings, damaged shards or a damaged index of the data set without
        ``repair``, a damaged manifest.
    """
    cachefiles.remove_leftovers(directory)
    previous = cachefiles.read_manifest(directory)
    if previous is None:
        cachefiles.remove_unreferenced(directory, {"shards": []})
        return State(None, [], [], head["augment"], Known([], []), 0)
    diff = differences(previous, head)
    if diff:
        raise CacheError(f"{directory} holds a cache made with other settings ({'; '.join(diff)}); it is not "
                         "reused: choose another out_dir=DIR or delete this one")
    aug = augment_differences(previous.get("augment"), head["augment"])
    if aug:
        raise CacheError(f"{directory}: its distorted copies were made with other distortion settings "
                         f"({'; '.join(aug)}); use those settings or another out_dir=DIR")
    cachefiles.remove_unreferenced(directory, previous)
    entries, repaired = _check_shards(directory, previous, head, repair)
    if previous["complete"] and not repair:  # with repair the index is rebuilt from the data, as on every run
        cacheshards.check_examples(directory, previous)
    known = Known([cacheshards.read_keys(directory, e) for e in entries], [e["shard"] for e in entries])
    first = max((s["shard"] for s in previous["shards"]), default=-1) + 1
    return State(previous, entries, repaired, previous.get("augment") or head["augment"], known, first)


def _check_shards(directory: str, previous: dict, head: dict, repair: bool):
    bad = cacheshards.check_shards(directory, previous["shards"], previous["dtype"], previous["shape"])
    if bad and not repair:
        raise CacheError(f"{directory}: {cacheshards.describe_bad(bad)}; run again with repair=True to recompute them")
    entries = [s for s in previous["shards"] if s["file"] not in bad]
    if bad:
        cachefiles.write_manifest(directory, interim_manifest(head, entries, previous.get("augment")))
        cachefiles.remove_shards(directory, [s for s in previous["shards"] if s["file"] in bad])
    return entries, sorted(bad)


def interim_manifest(head: dict, entries: list, augment: dict | None) -> dict:
    """The manifest while a run is under way: the shards so far, no index (``complete: false``)."""
    return dict(head, augment=augment, shards=sorted(entries, key=lambda s: s["shard"]), complete=False)
