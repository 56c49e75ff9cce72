"""What a tensor must not depend on to be cached, and what cannot train from a cache of it.

* Random ops (dropout with ``keep_prob`` baked in, noise): values differ every run.
* Batch-mates (batch statistics, batch norm in training mode): an example's value depends on
  how the data was batched.
* Variables below the cached tensor: they never run while training from the cache.

The first two are found as :mod:`graphsurgeon._src.determinism` finds them for ``retrain``'s
head (:func:`check_values`): the tensor is run on the first batch to compute with the cache's
feeds, twice (and, when the runs agree, with its random ops fed two far-apart draws), then its
first example alone; a random op that the feeds make harmless (``keep_prob`` fed 1.0) passes.
What a run found, and its flags accepted, is recorded in the manifest (:func:`record`), so that
``retrain --cache`` can refuse a cache whose rows are random or depend on their batch.
"""
from __future__ import annotations

from graphsurgeon._src import select, subgraph
from graphsurgeon._src.determinism import (
    batch_unchecked,
    below_phrase,
    feed_hint,
    feeds_text,
    mixing,
    ops_phrase,
    probe,
    random_guess,
    random_ops_upstream,
    random_phrase,
)
from graphsurgeon._src.errors import BatchDependentError, RandomTensorError
from graphsurgeon._src.mixins import counted

# the manifest's record of what the runs found (key "checks"): True found (and accepted by the
# run's flag), False checked and not found, None not checked; no key: made before the record
UNKNOWN = {"random": None, "batch_dependent": None}


def check_values(model, t, feeder, x, act, *, allow_random: bool, allow_batch_dependent: bool) -> dict:
    """Run ``t`` on batch ``x`` (``act``: its values there, already computed) as the module
    docstring says; return ``{"random", "batch_dependent"}`` as found (None: not checked: a batch
    of one row, or a random tensor, whose runs differ anyway) and ``examples``, the rows of ``x``.

    Raises:
      RandomTensorError: the runs differ, unless ``allow_random``.
      BatchDependentError: the first example's value changes when it is run alone (or repeated to
        the batch the graph fixes), unless ``allow_batch_dependent``: cached values would then
        depend on how the data happened to be batched.
    """
    p = probe(model, t, feeder, x, first=act)
    if p.random and not allow_random:
        ops = random_ops_upstream(model, t.name)
        raise RandomTensorError(
            f"tensor '{t.name}' {random_phrase(p)}{feeds_text(feeder.values)}: it depends on "
            f"{ops_phrase(ops)}{random_guess(model, ops, feeder)}, so its values cannot be cached; cache a tensor "
            f"{below_phrase(ops)}{feed_hint(feeder.values, ops)}, or pass allow_random=True")
    if p.batch_dependent and not allow_batch_dependent:
        because = mixing(model, t.name, feeder.input)
        raise BatchDependentError(
            f"tensor '{t.name}' depends on the other examples in its batch ({because.cause}), so cached values would "
            f"depend on how the data was batched; cache a tensor {because.instead}, or pass "
            "allow_batch_dependent=True")
    return {"random": p.random, "batch_dependent": p.batch_dependent, "examples": len(x)}


def record(previous: dict | None, found: dict | None) -> dict:
    """The manifest's ``checks`` after a run that found ``found`` (None: it computed no row, so ran
    nothing) in a cache whose manifest was ``previous`` (None: a new cache). Both describe one
    tensor under one fingerprint, so a finding of this run stands for the rows stored before it;
    what a run found true stays true (two runs of a random tensor may agree by chance), and what this
    run did not check (a first batch of one row) keeps what an earlier run found."""
    old = UNKNOWN if previous is None else previous.get("checks", UNKNOWN)
    if found is None:
        return dict(old)
    return {k: True if old[k] or found[k] else old[k] if found[k] is None else found[k] for k in UNKNOWN}


def unchecked_notes(cut: str, checks: dict, found: dict | None) -> list[str]:
    """One sentence when the record ``checks`` (see :func:`record`) holds a check not run on the tensor
    ``cut``, saying why, given what this run ``found`` (None: it computed no row). Whether a random tensor
    depends on its batch-mates is never checked (its runs differ anyway), and not noted."""
    if checks["random"] is None:
        return [batch_unchecked(f"the cached tensor '{cut}'", "this run computed no row, and the cache's manifest "
                                "records no run that checked it", random=True)]
    if checks["batch_dependent"] is not None or checks["random"]:
        return []
    why = (f"the first batch this run computed holds {counted(found['examples'], 'example')}" if found is not None
           else "this run computed no row, and the run that computed its rows did not check it")
    return [batch_unchecked(f"the cached tensor '{cut}'", f"{why}; the manifest records it as not checked")]


def check_recorded(directory: str, cut: str, checks: dict, *, allow_random: bool,
                   allow_batch_dependent: bool) -> None:
    """Refuse to extend a cache whose ``checks`` (see :func:`record`) say its tensor is random or
    depends on its batch-mates without the flag that accepted it (this run's own check may have
    passed by chance, or have run nothing)."""
    for key, allowed, what in (("random", allow_random, "random (its values differ between runs on one batch)"),
                               ("batch_dependent", allow_batch_dependent, "dependent on its batch-mates")):
        if checks[key] and not allowed:
            error = RandomTensorError if key == "random" else BatchDependentError
            raise error(f"{directory}: an earlier run into this cache found tensor '{cut}' {what} and its manifest "
                        f"records it (that run passed allow_{key}=True); pass allow_{key}=True to extend the cache, "
                        "or choose another out_dir=DIR")


def variables_below(model, cut: str, names) -> list[str]:
    """Variables among ``names`` that the tensor ``cut`` depends on (they cannot train from a cache of it)."""
    gd = model.graph.as_graph_def()
    up = subgraph.upstream(gd, [cut])
    return sorted(n for n in names if select.normalize_name(n) in up)
