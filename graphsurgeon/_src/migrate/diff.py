"""Compare two checkpoints by name, dtype, shape, crc32c and, where those cannot tell, value."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphsurgeon._src.migrate.sources import open_checkpoint


def diff(a: str, b: str) -> dict:
    """Compare two checkpoints: ``added``, ``removed``, ``renamed`` (``{old: new}``: the one removed and the one
    added tensor of a dtype, shape and crc32c; V2 checkpoints only), ``ambiguous`` (``[{"removed": [...], "added":
    [...]}]``: removed and added tensors of one dtype, shape and crc32c, more than one on a side, such as
    zero-initialized biases of one shape, so which became which cannot be told; they stay in ``added`` and
    ``removed``), ``changed`` (``{name: max abs difference}``, None for non-numeric tensors), ``dtype_changed`` and
    ``shape_changed`` (``{name: [a, b]}``).

    Raises:
      CheckpointNotFoundError, CorruptCheckpointError, MigrateError: a path holds no readable checkpoint.
    """
    sa, sb = open_checkpoint(a), open_checkpoint(b)
    ea, eb = _signatures(sa), _signatures(sb)
    only_a = sorted(set(ea) - set(eb))
    only_b = sorted(set(eb) - set(ea))
    renamed, ambiguous = _pairs(only_a, only_b, ea, eb)
    out = {"added": sorted(set(only_b) - set(renamed.values())), "removed": sorted(set(only_a) - set(renamed)),
           "renamed": renamed, "ambiguous": ambiguous, "changed": {}, "dtype_changed": {}, "shape_changed": {}}
    for n in sorted(set(ea) & set(eb)):
        (da, sha, _, ca), (db, shb, _, cb) = ea[n], eb[n]
        if da != db:
            out["dtype_changed"][n] = [da, db]
        elif sha != shb:
            out["shape_changed"][n] = [list(sha), list(shb)]
        elif ca is None or cb is None or ca != cb:
            va, vb = sa.read(n), sb.read(n)
            if np.asarray(va).tobytes() != np.asarray(vb).tobytes():
                numeric = np.asarray(va).dtype.kind in "fiu"
                d = np.abs(va.astype(np.float64) - vb.astype(np.float64)).max() if numeric else None
                out["changed"][n] = None if d is None else float(d)
    return out


def _pairs(only_a: list, only_b: list, ea: dict, eb: dict) -> tuple[dict, list]:
    """``(renamed, ambiguous)``: of the removed (``only_a``) and added (``only_b``) names of one signature with a
    crc32c, a pair when there is one of each, else a group when there are some of each."""
    groups = {}
    for side, names, sigs in ((0, only_a, ea), (1, only_b, eb)):
        for n in names:
            if sigs[n][3] is not None:
                groups.setdefault(ea_key(sigs[n]), ([], []))[side].append(n)
    renamed, ambiguous = {}, []
    for removed, added in groups.values():
        if len(removed) == len(added) == 1:
            renamed[removed[0]] = added[0]
        elif removed and added:
            ambiguous.append({"removed": removed, "added": added})
    return dict(sorted(renamed.items())), sorted(ambiguous, key=lambda g: g["removed"])


def ea_key(signature: tuple) -> tuple:
    """The part of a signature two tensors must share to count as renamed."""
    return signature[0], tuple(signature[1]), signature[2], signature[3]


def _signatures(src) -> dict:
    """``{name: (dtype name, shape, bytes, crc32c or None)}``: crc32c from a V2 index; None for
    V1 checkpoints and for variables saved in slices (compared by value)."""
    out = {}
    for n in src.names():
        dtype, shape = src.dtype_shape(n)
        crc = src.entries[n].crc32c if src.kind == "v2" and not src.entries[n].slices else None
        size = src.entries[n].size if src.kind == "v2" else int(np.prod(shape, dtype=np.int64)) * tf.as_dtype(dtype).size
        out[n] = (tf.as_dtype(dtype).name, shape, size, crc)
    return out
