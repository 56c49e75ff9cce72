"""Re-initialize layers in place: keep their ops, give their variables fresh values."""
from __future__ import annotations

import numpy as np

from graphsurgeon._src import select
from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.storage.session import assign
from graphsurgeon._src.surgery.plan import is_optimizer_state


def fresh_value(name: str, shape, dtype, rng: np.random.Generator) -> np.ndarray:
    """Zeros for optimizer state (``w/Adam``, ``w/Momentum``: a fresh start of the optimizer),
    Glorot-uniform for kernels (rank >= 2), ones for batch-norm ``gamma`` and ``moving_variance``,
    zeros otherwise."""
    shape = tuple(shape)
    leaf = name.rsplit("/", 1)[-1]
    if is_optimizer_state(name):
        return np.zeros(shape, dtype)
    if len(shape) >= 2:
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(dtype)
    if leaf in ("gamma", "moving_variance"):
        return np.ones(shape, dtype)
    return np.zeros(shape, dtype)


def reinitialize(model, patterns, *, seed: int = 0) -> list[str]:
    """Give the variables matching ``patterns`` fresh values (see :func:`fresh_value`),
    assigned by feeding each variable's initial-value tensor (no new ops, no constants).
    Optimizer slots under a matched scope (restored with ``restore_optimizer``) are matched too
    and zeroed, never drawn.

    Side effects: changes those variables' values in ``model.session`` and marks
    them ``reinitialized`` in ``model.status``.

    Returns:
      The sorted names re-initialized.

    Raises:
      PatternError: a pattern matches no variable.
      ConfigError: the model has no session.
    """
    if model.session is None:
        raise ConfigError("reinitialize needs a restored model with a session (restore(..., values=True))")
    variables = model.variables
    names = select.match(patterns, variables)
    rng = np.random.default_rng(seed)
    assign(model.session, [(variables[n], fresh_value(n, variables[n].shape.as_list(),
                                                       variables[n].dtype.base_dtype.as_numpy_dtype, rng))
                            for n in names])
    for n in names:
        model.status[n] = "reinitialized"
    return names
