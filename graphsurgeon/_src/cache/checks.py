"""What a tensor must not depend on to be cached, and what cannot train from a cache of it.

* Random ops (dropout with ``keep_prob`` baked in, noise): values differ every run.
* Batch-mates (batch statistics, batch norm in training mode): an example's value depends on
  how the data was batched.
* Variables below the cached tensor: they never run while training from the cache.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphsurgeon._src import select, subgraph
from graphsurgeon._src.errors import ConfigError

# Ops whose output differs run to run: a tensor that depends on one cannot be cached.
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "Multinomial", "RandomGamma", "RandomPoisson", "RandomPoissonV2", "RandomCrop", "ParameterizedTruncatedNormal",
})


def random_ops_upstream(model, cut: str) -> list[str]:
    """Names of random ops (dropout's mask, noise) that the tensor ``cut`` depends on."""
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    return sorted(n for n in subgraph.upstream(gd, [cut], by_name) if by_name[n].op in RANDOM_OPS)


# Reductions that mix the examples of a batch when they reduce over its first axis.
_REDUCTIONS = frozenset({"Mean", "Sum", "Max", "Min", "Prod", "All", "Any", "EuclideanNorm"})
_BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})


def batch_mixing_ops(model, cut: str, input_op: str) -> list[str]:
    """Ops between ``input_op`` and the tensor ``cut`` that mix the examples of a batch: reductions over
    axis 0 (``tf.nn.moments`` over the batch) and batch norm in training mode. Names, sorted."""
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    up = subgraph.upstream(gd, [cut], by_name)
    out = []
    for name in sorted(up):
        node = by_name[name]
        if node.op in _BATCH_NORMS and node.attr["is_training"].b:
            fed = input_op in subgraph.upstream(gd, [node.input[0]], by_name)
        elif node.op in _REDUCTIONS and len(node.input) > 1:
            axes = by_name.get(subgraph.node_name(node.input[1]))
            if axes is None or axes.op != "Const":
                continue
            values = tf.make_ndarray(axes.attr["value"].tensor).reshape(-1)
            fed = 0 in values and input_op in subgraph.upstream(gd, [node.input[0]], by_name)
        else:
            continue
        if fed:
            out.append(name)
    return out


def check_batch_independent(model, t, feeder, x, act) -> None:
    """Raise :class:`ConfigError` if ``t``'s value for the first example of batch ``x`` (``act[0]``)
    changes when that example is run with other batch-mates (alone, or repeated to the batch the
    graph fixes): cached values would then depend on how the data happened to be batched."""
    if len(x) < 2:
        return
    feed, _ = feeder.feed(x[:1])
    alone = model.session.run(t, feed)[0]
    a, b = np.asarray(act[0], np.float64), np.asarray(alone, np.float64)
    if a.shape == b.shape and np.allclose(a, b, rtol=1e-3, atol=1e-5 * (1.0 + np.abs(a).max(initial=0.0))):
        return
    ops = batch_mixing_ops(model, t.name, feeder.input.op.name)
    because = f"through {', '.join(ops[:3])}" if ops else "its value for an example changes with its batch-mates"
    raise ConfigError(
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
    """The random ops the tensor at the cut (``cut``) depends on; raise :class:`ConfigError` if there
    are any and ``allow_random`` is False."""
    rand = random_ops_upstream(model, cut.name)
    if rand and not allow_random:
        raise ConfigError(
            f"tensor '{cut.name}' depends on random op(s) {', '.join(rand[:3])} (dropout with keep_prob baked "
            "in?): its values differ every run and cannot be cached; cache a tensor below them, or pass "
            "allow_random=True if a feed makes them deterministic"
        )
    return rand
