"""Files that carry a continual-learning model's state beside its checkpoint: arrays (PackNet's and
Piggyback's masks, EWC's Fisher information) stamped with the *fingerprint* of the weights they were
made for, and read back only by a model with that fingerprint.

An array file is an ``.npz`` (written without pickle) holding ``names`` (the array names, in
order), ``a0``, ``a1``, … (the arrays) and ``fingerprint``. It is written under a temporary name,
flushed and renamed into place.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from graphsurgeon._src.errors import ContinualError


def fingerprint(values: dict) -> str:
    """sha256 over ``values`` (``{name: ndarray}``) in name order: each name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name in sorted(values):
        v = np.ascontiguousarray(values[name])
        h.update(f"{name}\0{v.dtype.str}\0{v.shape}\0".encode())
        h.update(v.tobytes())
    return h.hexdigest()


def write_arrays(path: str, arrays: dict, stamp: str) -> int:
    """Write ``arrays`` (``{name: ndarray}``) and ``stamp`` (a fingerprint) to ``path``; returns its size."""
    names = sorted(arrays)
    tmp = path + ".tmp"
    payload = {f"a{i}": np.ascontiguousarray(arrays[n]) for i, n in enumerate(names)}
    with open(tmp, "wb") as f:
        np.savez(f, names=np.array(names, dtype=str), fingerprint=np.array(stamp), **payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return os.path.getsize(path)


def read_arrays(path: str, expected: str, what: str) -> dict:
    """The arrays of ``path``, after checking that they were made for the weights whose fingerprint
    is ``expected``.

    Raises:
      ContinualError: ``path`` is missing, unreadable, or stamped with another fingerprint (a file
        copied from another model, or a model whose weights changed since).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            stamp = str(z["fingerprint"])
            arrays = {n: z[f"a{i}"] for i, n in enumerate(names)}
    except FileNotFoundError:
        raise ContinualError(f"{path}: missing; the model's {what} are kept there") from None
    except (OSError, ValueError, KeyError) as e:
        raise ContinualError(f"{path}: not a readable {what} file ({str(e).splitlines()[0][:100]})") from None
    if stamp != expected:
        raise ContinualError(f"{path}: {what} made for another model (fingerprint {stamp[:12]}…, this model's "
                             f"weights give {expected[:12]}…); they are refused")
    return arrays
