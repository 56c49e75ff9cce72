"""Compare the backbones of task models: architecture op by op, weights by checksum and value.

Architectures must be equal (:func:`check_architecture`); weights are grouped
(:class:`Grouper`): a model joins the first group whose first model's weights it matches
(bit for bit, or every element within ``atol``), else it starts a new group.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from graphsurgeon._src.errors import MergeHeadsError
from graphsurgeon._src.mixins import agree, counted, plural, series
from graphsurgeon._src.multihead import piece as pieces


def check_architecture(ref: pieces.Piece, ref_where: str, other: pieces.Piece, where: str) -> list[tuple]:
    """``[(ref weight name, other weight name)]`` paired by position, if the two backbones are the
    same architecture.

    Raises:
      MergeHeadsError: one line naming the first differing op (walking from the features down).
    """
    a, b = pieces.structure(ref), pieces.structure(other)
    ref_nodes, other_nodes = ref.by_name(), other.by_name()
    for (na, sa), (nb, sb) in zip(a, b):
        if sa != sb:
            what = _what_differs(sa, sb)
            raise MergeHeadsError(
                f"backbones differ in architecture: {where} has op {_describe(other, nb, other_nodes)} where "
                f"{ref_where} has {_describe(ref, na, ref_nodes)}{f' ({what})' if what else ''}; only models "
                "that share one backbone architecture can be merged")
    if len(a) != len(b):
        longer, w, nodes = (a, ref_where, ref_nodes) if len(a) > len(b) else (b, where, other_nodes)
        extra = longer[min(len(a), len(b))][0]
        raise MergeHeadsError(f"backbones differ in architecture: {w} has op {_describe(None, extra, nodes)} "
                              f"the other has not ({len(a)} vs {len(b)} ops below the features)")
    wa = [n for n, _ in a if n in ref.weights]
    wb = [n for n, _ in b if n in other.weights]
    return list(zip(wa, wb))


def _describe(piece, name: str, nodes) -> str:
    w = piece.weights.get(name) if piece is not None else None
    if w is not None:
        return f"'{name}' (a weight, {list(w.shape)} {w.dtype})"
    return pieces.describe(nodes[name])


def _what_differs(sa: tuple, sb: tuple) -> str:
    if sa[0] != sb[0]:
        return ""
    if sa[0] == "weight":
        return "weight shapes or dtypes"
    if sa[0] == "input":
        return "input dtype or shape"
    if len(sa) > 1 and sa[1] != sb[1]:
        keys = sorted({k for k, v in set(sa[1]) ^ set(sb[1])})
        return "attribute " + ", ".join(keys)
    return "inputs"


@dataclasses.dataclass
class Group:
    """Tasks (indices) whose backbone weights match those of the group's first task."""

    tasks: list
    values: list  # the first task's weights, in the reference order
    checksum: str


def checksum(values) -> str:
    """sha256 over the weights' dtypes, shapes and bytes, in order."""
    h = hashlib.sha256()
    for v in values:
        h.update(f"{v.dtype.str}{v.shape}".encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def _close(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    if a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b):
        return True
    if atol <= 0 or a.shape != b.shape:
        return False
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0)) <= atol


class Grouper:
    """Feed each task's backbone weights (in the reference order) with :meth:`add`."""

    def __init__(self, names: list, atol: float = 0.0):
        self.names, self.atol, self.groups = list(names), float(atol), []

    def add(self, task: int, values: list) -> int:
        """Put ``task`` in a group; returns the group's index."""
        for k, g in enumerate(self.groups):
            if all(_close(a, b, self.atol) for a, b in zip(g.values, values)):
                g.tasks.append(task)
                return k
        self.groups.append(Group([task], [np.array(v, copy=True) for v in values], checksum(values)))
        return len(self.groups) - 1

    def differences(self) -> list[dict]:
        """Each group but the largest, against the largest: ``{"tasks", "tensors", "max_abs", "max_rel"}``
        (``tensors`` are the weights whose values differ by more than ``atol``)."""
        if len(self.groups) < 2:
            return []
        main = max(self.groups, key=lambda g: (len(g.tasks), -g.tasks[0]))
        out = []
        for g in sorted(self.groups, key=lambda g: g.tasks[0]):
            if g is main:
                continue
            tensors, max_abs, max_rel = [], 0.0, 0.0
            for name, a, b in zip(self.names, main.values, g.values):
                d = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
                if d > self.atol or (self.atol == 0 and not np.array_equal(a, b)):
                    tensors.append(name)
                    max_abs = max(max_abs, d)
                    scale = float(np.max(np.abs(a.astype(np.float64)), initial=0.0))
                    max_rel = max(max_rel, d / scale if scale else float("inf"))
            out.append({"tasks": list(g.tasks), "tensors": tensors, "max_abs": max_abs, "max_rel": max_rel})
        return out


def summarize(names: list, all_names: list, limit: int = 3) -> str:
    """``encoder/layer_2/*`` for a scope whose weights all differ, else the names; of more than ``limit``, the
    first ``limit``, `` …`` and how many weights differ (``a/w, b/*, c/w … (9 weights)``: a scope counts its
    weights)."""
    items = []
    for n in names:
        scope = os.path.dirname(n)
        whole = scope and all(m in names for m in all_names if os.path.dirname(m) == scope)
        item = f"{scope}/*" if whole else n
        if item not in items:
            items.append(item)
    return series(items, limit) + (f" ({counted(len(names), 'weight')})" if len(items) > limit else "")


def report(differences: list[dict], names: list, label=str) -> str:
    """One line: ``tasks 3, 17 differ from the rest in encoder/layer_2/* (max |Δ| 0.031, relative 0.2)``."""
    parts = []
    for d in differences:
        who = ", ".join(label(t) for t in d["tasks"])
        n = len(d["tasks"])
        parts.append(f"{plural('task', n)} {who} {agree(n, 'differs', 'differ')} from the rest in {summarize(d['tensors'], names)} "
                     f"({how_much(d)})")
    return "; ".join(parts)


def how_much(difference: dict) -> str:
    """``max |Δ| 0.031, relative 0.2``: the largest absolute and relative difference of a group's weights
    (:meth:`Grouper.differences`)."""
    return f"max |Δ| {difference['max_abs']:.3g}, relative {difference['max_rel']:.3g}"
