"""Masks over backbone weights: bit packing, and the serving pieces that apply them.

A masked task is served by its own backbone group whose piece computes each masked weight from the
shared weight and the mask before the backbone runs::

    weight W (shared) ─┐
                       ├─ where(mask, W, 0) ─► the backbone as it was ─► features
    mask (per task)  ──┘

* PackNet: one ``uint8`` *owner* map per weight, shared by every task (0 = free, k = the k-th
  packed task); task k keeps ``1 <= owner <= k``: the constant k is baked into its piece.
* Piggyback: one mask per task and weight, packed 8 weights to a byte (``np.packbits``,
  little-endian bit order); the piece unpacks it with shifts.

``tf.where`` (not a product) leaves kept weights bit for bit and makes dropped ones +0.0.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from graphsurgeon._src.multihead import piece as pieces

tf1 = tf.compat.v1
OWNER_PREFIX = "graphsurgeon/packnet_owner/"
BITS_PREFIX = "graphsurgeon/piggyback_mask/"


def pack(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as ``uint8`` bytes, 1 bit per weight (little-endian bit order)."""
    return np.packbits(np.asarray(mask, bool).ravel(), bitorder="little")


def unpack(packed: np.ndarray, shape) -> np.ndarray:
    """The inverse of :func:`pack`."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.unpackbits(np.asarray(packed, np.uint8), count=n, bitorder="little").astype(bool).reshape(shape)


def unpack_op(packed, shape):
    """:func:`unpack` in the graph: ``packed`` (``uint8 [ceil(n/8)]``) -> ``bool`` of ``shape``."""
    n = int(np.prod(shape, dtype=np.int64))
    shifts = tf.constant(np.arange(8, dtype=np.uint8).reshape(1, 8))
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(tf.reshape(packed, [-1, 1]), shifts),
                                  tf.constant(1, tf.uint8))
    return tf.reshape(tf.cast(tf.reshape(bits, [-1])[:n], tf.bool), list(shape))


def owner_keep(owner, k: int):
    """PackNet: the weights task ``k`` runs with (``1 <= owner <= k``), from an owner map tensor."""
    return tf.logical_and(tf.greater_equal(owner, tf.constant(1, tf.uint8)),
                          tf.less_equal(owner, tf.constant(k, tf.uint8)))


@dataclasses.dataclass
class MaskSpec:
    """How a served piece masks weight ``weight``: ``extra`` placeholder name, its dtype and shape,
    and ``keep(placeholder) -> bool tensor``."""

    weight: str
    extra: str
    dtype: str
    shape: tuple
    keep: object


def masked_piece(base: pieces.Piece, specs: list[MaskSpec]) -> pieces.Piece:
    """A piece computing ``base``'s output with each weight of ``specs`` masked.

    ``base`` is in value form. The new piece has ``base``'s input and weights (as placeholders of
    the same names) and one more weight per spec (its mask); ``base`` itself is imported under
    ``net/``.
    """
    graph = tf.Graph()
    by_weight = {s.weight: s for s in specs}
    weights = dict(base.weights)
    with graph.as_default():
        x = tf1.placeholder(*pieces.input_spec(base), name=base.input.split(":")[0])
        input_map = {base.input: x}
        for name, w in sorted(base.weights.items()):
            t = tf1.placeholder(tf.as_dtype(w.dtype), list(w.shape), name=name)
            if name in by_weight:
                s = by_weight[name]
                extra = tf1.placeholder(tf.as_dtype(s.dtype), list(s.shape), name=s.extra)
                weights[s.extra] = pieces.Weight(s.extra, s.dtype, tuple(s.shape))
                t = tf.where(s.keep(extra), t, tf.zeros_like(t))
            input_map[name + ":0"] = t
        out, = tf.graph_util.import_graph_def(base.graph_def, input_map=input_map,
                                              return_elements=[base.output], name="net")
    return pieces.Piece(graph.as_graph_def(), x.name, out.name, weights)


def packnet_piece(base: pieces.Piece, kernels: list[str], k: int) -> pieces.Piece:
    """The piece of the k-th packed task: each kernel kept where ``1 <= owner <= k``."""
    return masked_piece(base, [MaskSpec(w, OWNER_PREFIX + w, "uint8", base.weights[w].shape,
                                        lambda owner, k=k: owner_keep(owner, k)) for w in kernels])


def piggyback_piece(base: pieces.Piece, kernels: list[str]) -> pieces.Piece:
    """A Piggyback task's piece: each kernel kept where its unpacked mask bit is 1."""
    specs = []
    for w in kernels:
        shape = base.weights[w].shape
        n = int(np.prod(shape, dtype=np.int64))
        specs.append(MaskSpec(w, BITS_PREFIX + w, "uint8", ((n + 7) // 8,),
                              lambda packed, shape=shape: unpack_op(packed, shape)))
    return masked_piece(base, specs)


def base_record(base: pieces.Piece, part: str) -> dict:
    """The ``continual.base`` entry of ``tasks.json``: where the unmasked piece is and its weights."""
    return {"part": part, "input": base.input, "output": base.output,
            "weights": [{"name": w.name, "variable": w.name, "dtype": w.dtype, "shape": list(w.shape),
                         "handle": w.handle, "source": w.source} for w in sorted(base.weights.values(),
                                                                              key=lambda w: w.name)]}
