"""Digests of an array's rows, and retrain.py's hash split of rows named by their SHA-1, computed a
block of rows at a time.

A row's digest is the hash of its bytes in C order (what ``hashlib.<name>(row.tobytes())`` gives);
digests are returned as one numpy array of fixed-size byte values (``V20`` for SHA-1, ``V32`` for
SHA-256), so a data set of millions of rows holds no Python object per row. One hash call per row
is unavoidable (``hashlib`` hashes one message at a time); each reads a slice of one contiguous
buffer, and the Python objects of a block (``BLOCK`` rows) are dropped before the next.
"""
from __future__ import annotations

import hashlib

import numpy as np

BLOCK = 1 << 16  # rows hashed per block: bounds the Python objects alive at once
MAX_NUM_IMAGES_PER_CLASS = 2 ** 27 - 1  # retrain.py's constant, so splits match it
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def row_digests(x: np.ndarray, name: str = "sha256") -> np.ndarray:
    """``hashlib.<name>(row.tobytes()).digest()`` of every row of ``x`` (``x[i]`` for each ``i``), as
    an ``[N]`` array of ``V<digest size>``."""
    new = getattr(hashlib, name)
    size = new().digest_size
    n = len(x)
    out = np.empty(n, f"V{size}")
    if not n:
        return out
    x = np.ascontiguousarray(x)
    width = x.nbytes // n
    flat = memoryview(x.reshape(-1).view(np.uint8)) if x.size else memoryview(b"")
    dest = out.view(np.uint8)
    for a in range(0, n, BLOCK):
        b = min(a + BLOCK, n)
        if width:
            digests = b"".join([new(flat[i:i + width]).digest() for i in range(a * width, b * width, width)])
        else:
            digests = new().digest() * (b - a)
        dest[a * size:b * size] = np.frombuffer(digests, np.uint8)
    return out


def hex_digits(digests: np.ndarray) -> np.ndarray:
    """The lowercase hex spelling of each of ``digests`` (``V<k>``) as ASCII bytes: ``[N, 2k]`` uint8
    (row ``i`` is ``bytes(digests[i]).hex().encode()``)."""
    k = digests.dtype.itemsize
    u8 = digests.view(np.uint8).reshape(len(digests), k)
    out = np.empty((len(digests), k, 2), np.uint8)
    out[..., 0], out[..., 1] = _HEX[u8 >> 4], _HEX[u8 & 15]
    return out.reshape(len(digests), 2 * k)


def hex_strings(digests: np.ndarray) -> list[str]:
    """``bytes(d).hex()`` of each of ``digests``, as a list of ``str``."""
    out = []
    for a in range(0, len(digests), BLOCK):
        ascii_ = hex_digits(digests[a:a + BLOCK])
        out.extend(ascii_.view(f"S{ascii_.shape[1]}").reshape(-1).astype(f"U{ascii_.shape[1]}").tolist())
    return out


def hex_name_splits(digests: np.ndarray, validation_pct: float, test_pct: float) -> np.ndarray:
    """retrain.py's ``which_set`` of rows named by the hex spelling of ``digests`` (the SHA-1 of
    their bytes), as codes: 0 train, 1 validation, 2 test (``uint8 [N]``).

    The same as ``datasets.which_split(bytes(d).hex(), ...)`` for each digest: a hex name holds no
    ``_nohash_`` suffix, and the SHA-1 of the name taken modulo ``2**27`` is its last 27 bits.
    """
    codes = np.empty(len(digests), np.uint8)
    for a in range(0, len(digests), BLOCK):
        names = np.ascontiguousarray(hex_digits(digests[a:a + BLOCK]))
        low = row_digests(names, "sha1").view(np.uint8).reshape(len(names), 20)[:, 16:]
        h = low.copy().view(">u4").reshape(-1) & np.uint32(MAX_NUM_IMAGES_PER_CLASS)
        pct = h.astype(np.float64) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)
        codes[a:a + len(names)] = np.where(pct < validation_pct, 1, np.where(pct < validation_pct + test_pct, 2, 0))
    return codes
