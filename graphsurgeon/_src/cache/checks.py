"""What a tensor must not depend on to be cached, and what cannot train from a cache of it.

* Random ops (dropout with ``keep_prob`` baked in, noise): values differ every run.
* Batch-mates (batch statistics, batch norm in training mode): an example's value depends on
  how the data was batched.
* Variables below the cached tensor: they never run while training from the cache.

The first two are found as :mod:`graphsurgeon._src.determinism` finds them for ``retrain``'s
head; a cache refuses any random op upstream (a graph scan), not only one that changes values.
"""
from __future__ import annotations

import tensorflow as tf

from graphsurgeon._src import select, subgraph
from graphsurgeon._src.determinism import mixing_phrase, probe, random_ops_upstream
from graphsurgeon._src.errors import BatchDependentError, RandomTensorError


def check_batch_independent(model, t, feeder, x, act) -> None:
    """Raise :class:`BatchDependentError` if ``t``'s value for the first example of batch ``x``
    (``act[0]``) changes when that example is run with other batch-mates (alone, or repeated to the
    batch the graph fixes): cached values would then depend on how the data happened to be batched."""
    if not probe(model, t, feeder, x, first=act, random=False).batch_dependent:
        return
    because = mixing_phrase(model, t.name, feeder.input.op.name)
    raise BatchDependentError(
        f"tensor '{t.name}' depends on the other examples in its batch ({because}: batch statistics such as "
        "tf.nn.moments or batch norm in training mode), so cached values would depend on how the data was "
        "batched; cache a tensor below them, or pass allow_batch_dependent=True"
    )


def variables_below(model, cut: str, names) -> list[str]:
    """Variables among ``names`` that the tensor ``cut`` depends on (they cannot train from a cache of it)."""
    gd = model.graph.as_graph_def()
    up = subgraph.upstream(gd, [cut])
    return sorted(n for n in names if select.normalize_name(n) in up)


def check_not_random(model, cut: tf.Tensor, allow_random: bool) -> list[str]:
    """The random ops the tensor at the cut (``cut``) depends on; raise :class:`RandomTensorError` if
    there are any and ``allow_random`` is False."""
    rand = random_ops_upstream(model, cut.name)
    if rand and not allow_random:
        raise RandomTensorError(
            f"tensor '{cut.name}' depends on random op(s) {', '.join(rand[:3])} (dropout with keep_prob baked "
            "in?): its values differ every run and cannot be cached; cache a tensor below them, or pass "
            "allow_random=True if a feed makes them deterministic"
        )
    return rand
