"""Does a tensor give each example one value? Two ways it may not, and how each is found.

* *Random*: it depends on random ops (dropout's mask, noise), so two runs on the same batch
  differ. A graph scan names the random ops upstream (:func:`random_ops_upstream`), but only a
  run tells whether the feeds make them harmless: dropout whose ``keep_prob`` placeholder is fed
  1.0 (or is a ``placeholder_with_default(1.0)``) still holds a ``RandomUniform`` op and gives
  the same values every run.
* *Batch-dependent*: an example's value changes with the other examples of its batch (batch
  statistics: ``tf.nn.moments`` over the batch, batch norm in training mode). Found by running
  the batch's first example alone (repeated to the batch a graph fixes) and comparing;
  :func:`batch_mixing_ops` names the ops likely responsible.

:func:`probe` runs both checks on one batch: the same batch twice, then its first example alone.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from graphsurgeon._src import subgraph

# Ops whose output differs run to run.
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "Multinomial", "RandomGamma", "RandomPoisson", "RandomPoissonV2", "RandomCrop", "ParameterizedTruncatedNormal",
})
# Reductions that mix the examples of a batch when they reduce over its first axis.
_REDUCTIONS = frozenset({"Mean", "Sum", "Max", "Min", "Prod", "All", "Any", "EuclideanNorm"})
_BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})


def random_ops_upstream(model, tensor: str) -> list[str]:
    """Names of the random ops (dropout's mask, noise) that ``tensor`` depends on, sorted."""
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    return sorted(n for n in subgraph.upstream(gd, [tensor], by_name) if by_name[n].op in RANDOM_OPS)


def batch_mixing_ops(model, tensor: str, input_op: str) -> list[str]:
    """Ops between ``input_op`` and ``tensor`` that may mix the examples of a batch: reductions over
    axis 0 (``tf.nn.moments`` over the batch; also ones that change no example's values, such as
    ``dynamic_rnn``'s longest sequence of the batch) and batch norm in training mode. Names, sorted."""
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    up = subgraph.upstream(gd, [tensor], by_name)
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


@dataclasses.dataclass
class Probe:
    """What :func:`probe` found about ``tensor`` (its name) on one batch of ``examples`` rows.

    ``random``: two runs on the batch differed (None: not checked). ``batch_dependent``: the first
    example's value changed when run alone (None: not checked: a batch of one row, or a random tensor,
    whose runs differ anyway)."""

    tensor: str
    examples: int
    random: bool | None
    batch_dependent: bool | None


def same(a, b) -> bool:
    """True when two values of a tensor agree to float32 rounding of a different batch or order of
    summation (relative 1e-3, absolute 1e-5 of the larger magnitude)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-3, atol=1e-5 * (1.0 + np.abs(a).max(initial=0.0))))


def probe(model, t, feeder, x, *, first=None, random: bool = True) -> Probe:
    """Run tensor ``t`` on batch ``x`` (fed by ``feeder``, a :class:`graphsurgeon._src.feeds.Feeder`,
    with its other placeholders' values): twice when ``random`` (do the runs agree?), then the
    first example alone (padded to a batch the graph fixes by repeating it: does its value change?).
    ``first``: ``t``'s values on ``x`` when already computed (one run fewer)."""
    feed, n = feeder.feed(x)
    run = (lambda f: model.session.run(t, f))
    a = run(feed)[:n] if first is None else first
    differs = not same(a, run(feed)[:n]) if random else None
    dependent = None
    if len(x) >= 2 and not differs:
        alone, _ = feeder.feed(x[:1])
        dependent = not same(a[0], run(alone)[0])
    return Probe(t.name, len(x), differs, dependent)


def mixing_phrase(model, tensor: str, input_op: str) -> str:
    """How ``tensor`` depends on its batch-mates, for messages: the ops likely responsible, or a
    statement of what was seen."""
    ops = batch_mixing_ops(model, tensor, input_op)
    return f"through {', '.join(ops[:3])}" if ops else "its value for an example changes with its batch-mates"
