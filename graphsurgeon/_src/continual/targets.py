"""Soft targets over the union of several teachers' classes, for ``combine`` (the balances are described in
:mod:`graphsurgeon._src.combine`)."""
from __future__ import annotations

import numpy as np

from graphsurgeon._src.errors import ConfigError, ContinualError


def listed(weights) -> str:
    """Values as given, comma-separated: a number in the shortest form that reads back the same
    (``1,0.5,1000``), anything :class:`float` cannot read as its ``repr`` (``'x',1``)."""
    return ",".join(_shortest(w) for w in weights)


def _shortest(value) -> str:
    try:
        return repr(float(value)).removesuffix(".0")
    except (TypeError, ValueError):
        return repr(value)


def certainty(p: np.ndarray) -> np.ndarray:
    """``1 − H(p) / log(C)`` per row of probabilities ``p`` [N, C] (1 when C is 1)."""
    if p.shape[1] < 2:
        return np.ones(len(p))
    h = -np.sum(np.where(p > 0, p * np.log(np.clip(p, 1e-30, 1.0)), 0.0), axis=1)
    return np.clip(1.0 - h / np.log(p.shape[1]), 0.0, 1.0)


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def prior_offsets(z: np.ndarray, prior: np.ndarray, *, tol: float = 1e-6, max_iter: int = 5000,
                  give_up: float = 1e-3) -> np.ndarray:
    """Offsets ``b`` [C] such that the mean over the rows of ``softmax(z + b)`` is ``prior`` [C]
    (positive, summing to 1), by the fixed point ``b ← b − log(mean / prior)`` from ``b = 0``; ``b``
    is shifted to sum to 0. Stops when no class's mean is off by more than a factor ``1 ± tol``; after
    ``max_iter`` steps (peaked logits converge slowly) one off by at most ``1 ± give_up`` is accepted.

    Raises:
      ContinualError: a class's mean still off by more than ``give_up`` (naming its column).
    """
    z = np.asarray(z, np.float64)
    log_prior, b = np.log(np.asarray(prior, np.float64)), np.zeros(z.shape[1])
    for _ in range(max_iter):
        s = z + b
        log_p = s - np.logaddexp.reduce(s, axis=1, keepdims=True)
        gap = np.logaddexp.reduce(log_p, axis=0) - np.log(len(z)) - log_prior
        if np.max(np.abs(gap)) < tol:
            break
        b -= gap
    else:
        worst = int(np.argmax(np.abs(gap)))
        if abs(gap[worst]) > give_up:
            raise ContinualError(
                f"balance='prior': after {max_iter} steps the mean target of class {worst} of the union is still "
                f"{np.expm1(gap[worst]):+.2%} off its prior (logits too peaked); pass balance='logits'")
    return b - b.mean()


def teacher_targets(logits: list, balance: str, prior=None) -> np.ndarray:
    """Targets over the union from each teacher's logits (see :mod:`graphsurgeon._src.combine`); ``prior``
    is used by ``"prior"`` (default: equal)."""
    if balance in ("logits", "prior"):
        z = np.concatenate(logits, axis=1)
        if balance == "prior" and len(z):
            z = z + prior_offsets(z, class_prior(prior, z.shape[1]))
        return softmax(z).astype(np.float32)
    probs = [softmax(z) for z in logits]
    weights = [certainty(p) if balance == "confidence" else np.ones(len(p)) for p in probs]
    target = np.concatenate([w[:, None] * p for w, p in zip(weights, probs)], axis=1)
    total = target.sum(axis=1, keepdims=True)
    uniform = np.full_like(target, 1.0 / target.shape[1])
    return np.where(total > 1e-6, target / np.maximum(total, 1e-12), uniform).astype(np.float32)


def class_prior(prior, num_classes: int) -> np.ndarray:
    """``prior`` (weights, one per class of the union) normalized to sum to 1; equal when None.

    Raises:
      ConfigError: not one positive finite weight per class (a value that is not a number included).
    """
    if prior is None:
        return np.full(num_classes, 1.0 / num_classes)
    try:
        p = np.asarray(prior, np.float64).ravel()
    except (TypeError, ValueError):  # a value that is not a number
        p = None
    if p is None or len(p) != num_classes or not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ConfigError(f"prior={listed(np.ravel(np.asarray(prior, object)))}: expected {num_classes} positive "
                          "weights, one per class of the union (A's classes, then B's)")
    return p / p.sum()
