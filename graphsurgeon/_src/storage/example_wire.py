"""The feature names of a serialized ``tf.train.Example``, read from the protobuf wire format itself.

Protobuf refuses a whole record whose feature name (a map key, a ``string``) is not UTF-8,
without saying so; reading the names from the wire lets the error name the culprit. Only
``Example.features`` (field 1) → ``Features.feature`` (field 1, map entries) → the entry's key
(field 1) is followed; every other field is skipped.
"""
from __future__ import annotations


def feature_names(raw: bytes) -> list[bytes]:
    """The feature names of the ``tf.train.Example`` in ``raw``, as bytes; ``[]`` when the bytes
    are not valid protobuf wire format."""
    try:
        return [key for features in _fields(raw, 1) for entry in _fields(features, 1) for key in _fields(entry, 1)]
    except ValueError:
        return []


def _fields(buf: bytes, number: int) -> list[bytes]:
    """The values of length-delimited field ``number`` in message ``buf``.

    Raises:
      ValueError: ``buf`` is not valid wire format.
    """
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        kind = key & 7
        if kind == 0:
            _, i = _varint(buf, i)
        elif kind in (1, 5):
            i += 8 if kind == 1 else 4
        elif kind == 2:
            n, i = _varint(buf, i)
            if key >> 3 == number:
                out.append(bytes(buf[i:i + n]))
            i += n
        else:
            raise ValueError(f"wire type {kind}")
        if i > len(buf):
            raise ValueError("past the end")
    return out


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        value |= (b & 0x7F) << shift
        shift, i = shift + 7, i + 1
        if not b & 0x80:
            return value, i
