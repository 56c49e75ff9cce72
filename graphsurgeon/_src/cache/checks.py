"""What a tensor must not depend on to be cached, and what cannot train from a cache of it.

* Random ops (dropout with ``keep_prob`` baked in, noise): values differ every run.
* Batch-mates (batch statistics, batch norm in training mode): an example's value depends on
  how the data was batched.
* Variables below the cached tensor: they never run while training from the cache.

The first two are found as :mod:`graphsurgeon._src.determinism` finds them for ``retrain``'s
head (:func:`check_values`): the tensor is run on the first batch to compute with the cache's
feeds, twice (and, when the runs agree, with its random ops fed two far-apart draws), then its
first example alone; a random op that the feeds make harmless (``keep_prob`` fed 1.0) passes.
"""
from __future__ import annotations

from graphsurgeon._src import select, subgraph
from graphsurgeon._src.determinism import (
    feed_hint,
    feeds_text,
    mixing_phrase,
    probe,
    random_ops_upstream,
    random_phrase,
)
from graphsurgeon._src.errors import BatchDependentError, RandomTensorError


def check_values(model, t, feeder, x, act, *, allow_random: bool, allow_batch_dependent: bool) -> dict:
    """Run ``t`` on batch ``x`` (``act``: its values there, already computed) as the module
    docstring says; return ``{"random", "batch_dependent"}`` as found (None: not checked: a batch
    of one row, or a random tensor, whose runs differ anyway).

    Raises:
      RandomTensorError: the runs differ, unless ``allow_random``.
      BatchDependentError: the first example's value changes when it is run alone (or repeated to
        the batch the graph fixes), unless ``allow_batch_dependent``: cached values would then
        depend on how the data happened to be batched.
    """
    p = probe(model, t, feeder, x, first=act)
    if p.random and not allow_random:
        raise RandomTensorError(
            f"tensor '{t.name}' {random_phrase(p)}{feeds_text(feeder.values)}: it depends on random op(s) "
            f"{', '.join(random_ops_upstream(model, t.name)[:3])} (dropout with keep_prob baked in?), so its values "
            f"cannot be cached; cache a tensor below them{feed_hint(feeder.values)}, or pass allow_random=True")
    if p.batch_dependent and not allow_batch_dependent:
        because = mixing_phrase(model, t.name, feeder.input.op.name)
        raise BatchDependentError(
            f"tensor '{t.name}' depends on the other examples in its batch ({because}: batch statistics such as "
            "tf.nn.moments or batch norm in training mode), so cached values would depend on how the data was "
            "batched; cache a tensor below them, or pass allow_batch_dependent=True")
    return {"random": p.random, "batch_dependent": p.batch_dependent}


def variables_below(model, cut: str, names) -> list[str]:
    """Variables among ``names`` that the tensor ``cut`` depends on (they cannot train from a cache of it)."""
    gd = model.graph.as_graph_def()
    up = subgraph.upstream(gd, [cut])
    return sorted(n for n in names if select.normalize_name(n) in up)
