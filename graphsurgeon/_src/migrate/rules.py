"""The migration's view of the name rules: :class:`~graphsurgeon._src.rules.Rules` (shared with
``restore``) plus the TensorFlow dtypes a ``cast`` rule names."""
from __future__ import annotations

import tensorflow as tf

from graphsurgeon._src.rules import (
    CAST_DTYPE_NAMES,
    PRESETS,
    RNN_CELL_RENAMES,
    Rules,
    argument,
    plan_names,
)

CAST_DTYPES = {name: tf.as_dtype(name) for name in CAST_DTYPE_NAMES}

__all__ = ["CAST_DTYPES", "PRESETS", "RNN_CELL_RENAMES", "Rules", "argument", "plan_names"]
