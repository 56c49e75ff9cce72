"""Examples of a data set listed without loading them, and loaded in batches (for bottleneck caches).

A :class:`RecordSource` holds one row per example, in data order, as arrays:

* ``keys`` — the sha256 of the example's content (an image file's bytes, an ``.npz`` row's
  float32 bytes, a TFRecord feature's bytes), as 32-byte ``V32`` values;
* ``labels`` — class ids: indices into ``classes`` (image folders: the sorted sub-folder names;
  an ``.npz``'s optional ``classes`` array), or the data's own integers when it names no classes;
* ``splits`` — codes into :data:`SPLITS` (train 0, validation 1, test 2), as
  :mod:`graphsurgeon._src.storage.datasets` decides them (so live training splits the same way).

Inputs are loaded by a :class:`Loader`, which a worker process can open on its own from
:attr:`RecordSource.loader_spec` (a small picklable dict) and the picklable ``refs`` of the
examples it is given.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import re

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from graphsurgeon._src.errors import DataError
from graphsurgeon._src.storage import example_wire as wire
from graphsurgeon._src.storage.datasets import (
    CACHE_FORMATS,
    ImageDecoder,
    check_not_a_model_file,
    npz_x,
    read_npz,
    read_npz_examples,
    split_codes,
    which_split,
)
from graphsurgeon._src.storage.imagefolders import list_image_folder
from graphsurgeon._src.storage.rowhash import hex_name_splits, row_digests

SPLITS = ("train", "validation", "test")
SPLIT_CODES = {name: i for i, name in enumerate(SPLITS)}
KEY = np.dtype("V32")


@dataclasses.dataclass
class RecordSource:
    """One data set's examples, in data order (see the module docstring).

    Attributes:
      kind: ``npz``, ``images``, ``tfrecord-images`` or ``tfrecord-floats``.
      keys, labels, splits: one item per example.
      classes: class names, or None.
      preprocessing: everything that turns a record into an input array (part of a cache's key).
      identity: ``{"kind", "path"}``: where the data came from.
      loader_spec: how a worker opens a :class:`Loader` (:func:`open_loader`).
      example_shape: the shape of one loaded input array (``[height, width, 3]`` for images).
    """

    kind: str
    keys: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    classes: list | None
    preprocessing: dict
    identity: dict
    loader_spec: dict
    example_shape: tuple = ()
    _refs: object = None       # per example: a path, bytes or floats (None for npz: the row index is the ref)
    _names: object = None      # per example, for messages (None: derived from the index)
    _loader: object = None

    def __len__(self) -> int:
        return len(self.labels)

    def refs(self, indices):
        """What a :class:`Loader` needs to load examples ``indices`` (picklable): a list, or for an
        ``npz`` the row numbers as one int64 array."""
        if self._refs is None:
            return np.asarray(indices, np.int64)
        return [self._refs[int(i)] for i in indices]

    def names(self, indices):
        """How messages name examples ``indices`` (a file, ``row 17``, ``d.tfrecord#3``): a list, or
        for an ``npz`` a :class:`RowNames` (spelled when read)."""
        if self._names is None:
            return RowNames(np.asarray(indices, np.int64))
        return [self._names[int(i)] for i in indices]

    @property
    def loader(self) -> "Loader":
        if self._loader is None:
            self._loader = open_loader(self.loader_spec)
        return self._loader

    def load(self, indices, distortions=None) -> np.ndarray:
        """Input arrays of examples ``indices``; ``distortions[i]`` (or None) distorts image ``i``."""
        return self.loader.load(self.refs(indices), self.names(indices), distortions)

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None


@dataclasses.dataclass(frozen=True)
class RowNames:
    """The names ``row <i>`` of rows ``rows``, as a sequence spelled only when an item is read (a
    message needs one), so a shard's 4,096 names cost nothing."""

    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return RowNames(self.rows[i])
        return f"row {int(self.rows[i])}"


class Loader:
    """Input arrays from refs: rows of an array (``npz``), image files or encoded images (decoded,
    resized, optionally distorted), or float lists."""

    def __init__(self, kind: str, *, array=None, image_size=None, scale: str = "unit"):
        self.kind, self._array = kind, array
        self._decoder = ImageDecoder(image_size, scale) if kind in ("images", "tfrecord-images") else None

    def load(self, refs, names, distortions=None) -> np.ndarray:
        distortions = distortions if distortions is not None else [None] * len(refs)
        if self.kind == "npz":
            if any(d is not None for d in distortions):
                raise DataError("distortions (augment=K) need images (an image folder or TFRecord images)")
            refs = np.asarray(refs, np.int64)
            if len(refs) and refs[-1] - refs[0] == len(refs) - 1 and bool(np.all(np.diff(refs) == 1)):
                return self._array[refs[0]:refs[-1] + 1]  # consecutive rows: a view, no copy
            return self._array[refs]
        if self.kind == "tfrecord-floats":
            return np.stack(refs)
        return np.stack([self._decoder(r, d, name=n) for r, n, d in zip(refs, names, distortions)])

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None


def open_loader(spec: dict, array=None) -> Loader:
    """A :class:`Loader` from a source's ``loader_spec`` (``array``: an ``npz``'s rows, if already read)."""
    if spec["kind"] == "npz" and array is None:
        array = _npz_rows(spec["path"])
    return Loader(spec["kind"], array=array, image_size=spec.get("image_size"), scale=spec.get("scale", "unit"))


def _npz_rows(path: str) -> np.ndarray:
    """The rows of an ``.npz`` a worker loads, checked and converted as :func:`load_npz` does."""
    return npz_x(read_npz(path), path)


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _keys(digests: list) -> np.ndarray:
    return np.frombuffer(b"".join(digests), KEY) if digests else np.zeros(0, KEY)


def content_keys(rows: np.ndarray) -> np.ndarray:
    """The content keys (``KEY``: sha256 of each row's bytes, C order) of the rows of an array."""
    return row_digests(rows, "sha256")


def _codes(splits) -> np.ndarray:
    return np.array([SPLIT_CODES[str(s)] for s in splits], np.uint8)


def open_source(path: str, *, image_size=None, scale: str = "unit", validation_pct: float = 10.0,
                test_pct: float = 10.0, image_feature: str = "image/encoded",
                label_feature: str = "image/class/label") -> RecordSource:
    """A :class:`RecordSource` over an ``.npz``, an image folder or TFRecord files of ``tf.train.Example``.

    TFRecords: ``path`` is a file or a glob; ``image_feature`` holds encoded image bytes or a
    float list, ``label_feature`` an int64.

    Raises:
      DataError: as :func:`graphsurgeon._src.storage.datasets.load`, plus files that are not TFRecords
        (saying the formats expected), TFRecord features that are missing and labels that do not fit in
        32 bits.
    """
    path = os.fspath(path)
    pct = {"validation_pct": validation_pct, "test_pct": test_pct}
    if os.path.isdir(path):
        src = _image_folder(path, image_size, scale, pct)
    elif path.endswith(".npz"):
        src = _npz(path, pct)
    else:
        check_not_a_model_file(path, CACHE_FORMATS)
        src = _tfrecords(path, image_size, scale, pct, image_feature, label_feature)
    if len(src) and (src.labels.min() < 0 or src.labels.max() >= 2 ** 31):
        raise DataError(f"{path}: labels range over {src.labels.min()}..{src.labels.max()}; class ids are 0..2**31-1")
    return src


def _npz(path: str, pct: dict) -> RecordSource:
    """The examples of an ``.npz``, split as :func:`load_npz` splits them; per-row digests are
    computed into arrays (:mod:`rowhash`), with no Python object kept per row."""
    x, y, split, classes = read_npz_examples(path)
    x = np.ascontiguousarray(x)
    codes = split_codes(split) if split is not None else hex_name_splits(row_digests(x, "sha1"), **pct)
    spec = {"kind": "npz", "path": os.path.abspath(path)}
    src = RecordSource("npz", content_keys(x), y.astype(np.int64), codes, classes, {"kind": "npz"},
                       {"kind": "npz", "path": os.path.abspath(path)}, spec, tuple(x.shape[1:]))
    src._loader = open_loader(spec, array=x)
    return src


def _image_folder(root: str, image_size, scale: str, pct: dict) -> RecordSource:
    if image_size is None:
        raise DataError(f"{root}: an image folder needs the model's input height and width")
    classes, files = list_image_folder(root)
    digests, paths = [], []
    for rel, _ in files:
        full = os.path.join(root, rel)
        try:
            with open(full, "rb") as f:
                digests.append(_digest(f.read()))
        except OSError as e:
            raise DataError(f"{full}: cannot read image ({e.strerror})") from None
        paths.append(os.path.abspath(full))
    labels = np.array([label for _, label in files], np.int64)
    splits = _codes(which_split(os.path.basename(rel), **pct) for rel, _ in files)
    prep = {"kind": "images", "image_size": [int(s) for s in image_size], "scale": scale}
    spec = {"kind": "images", "image_size": prep["image_size"], "scale": scale}
    return RecordSource("images", _keys(digests), labels, splits, classes, prep,
                        {"kind": "images", "path": os.path.abspath(root)}, spec, (*prep["image_size"], 3), paths, paths)


def _tfrecords(path, image_size, scale, pct, image_feature, label_feature) -> RecordSource:
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    if not files or not all(os.path.isfile(f) for f in files):
        raise DataError(f"data {path}: no such file (expected .npz, an image folder or TFRecord files)")
    digests, labels, refs, names, kinds = [], [], [], [], set()
    for fname in files:
        for i, (kind, ref, label) in enumerate(_read_examples(fname, image_feature, label_feature)):
            payload = ref if kind == "tfrecord-images" else ref.tobytes()
            digests.append(_digest(payload))
            labels.append(label)
            kinds.add(kind)
            refs.append(ref)
            names.append(f"{os.path.basename(fname)}#{i}")
    if not refs:
        raise DataError(f"{path}: no records")
    if len(kinds) > 1:
        raise DataError(f"{path}: some records hold encoded images and others float lists; expected one kind")
    kind = kinds.pop()
    keys = _keys(digests)
    splits = hex_name_splits(keys, **pct)
    prep = {"kind": kind, "image_feature": image_feature, "label_feature": label_feature}
    spec = {"kind": kind}
    if kind == "tfrecord-images":
        if image_size is None:
            raise DataError(f"{path}: encoded images need the model's input height and width")
        prep.update({"image_size": [int(s) for s in image_size], "scale": scale})
        spec.update({"image_size": prep["image_size"], "scale": scale})
        shape = (*prep["image_size"], 3)
    else:
        shape = _float_shape(refs, names, image_feature)
    return RecordSource(kind, keys, np.array(labels, np.int64), splits, None, prep,
                        {"kind": kind, "path": os.path.abspath(path) if files == [path] else path}, spec, shape,
                        refs, names)


def _float_shape(refs: list, names: list, feature: str) -> tuple:
    """``(n,)``: the length every record's float list has.

    Raises:
      DataError: records whose lists differ in length, or a NaN or an infinity, naming the record.
    """
    for ref, name in zip(refs, names):
        if len(ref) != len(refs[0]):
            raise DataError(f"{name}: feature '{feature}' holds {len(ref)} floats, {names[0]} holds {len(refs[0])}; "
                            "every record's list must have the same length")
        if not np.isfinite(ref).all():
            raise DataError(f"{name}: feature '{feature}' holds NaN or an infinity; expected finite numbers")
    return (len(refs[0]),)


def _read_examples(fname: str, image_feature: str, label_feature: str):
    """``(kind, ref, label)`` of every ``tf.train.Example`` in TFRecord file ``fname`` (a name that is
    not UTF-8 is given to TensorFlow as its bytes)."""
    try:
        for i, raw in enumerate(tf.data.TFRecordDataset(os.fsencode(fname)).as_numpy_iterator()):
            feats = _parse_example(raw, f"{fname} record {i}").features.feature
            if image_feature not in feats or label_feature not in feats:
                raise DataError(f"{fname} record {i}: needs features '{image_feature}' and '{label_feature}' "
                                f"(it has {', '.join(sorted(feats)) or 'none'})")
            f = feats[image_feature]
            if f.bytes_list.value:
                kind, ref = "tfrecord-images", f.bytes_list.value[0]
            else:
                kind, ref = "tfrecord-floats", np.asarray(f.float_list.value, np.float32)
            labels = feats[label_feature].int64_list.value
            if len(labels) != 1:
                raise DataError(f"{fname} record {i}: feature '{label_feature}' must hold one int64 class id")
            yield kind, ref, int(labels[0])
    except tf.errors.OpError as e:
        first = (e.message or "").strip().splitlines()[:1]  # without TensorFlow's function and op names
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\(Is this even a TFRecord file\?\)|\s*\[Op:.*$", "", "".join(first))
        raise DataError(f"{fname}: not a readable TFRecord file ({reason[:120] or type(e).__name__}); expected "
                        f"{CACHE_FORMATS}") from None


def _parse_example(raw: bytes, where: str):
    """``tf.train.Example`` from a record's bytes.

    Raises:
      DataError: the bytes are not one, naming a feature name that is not UTF-8 when that is why.
    """
    try:
        return tf.train.Example.FromString(raw)
    except DecodeError:
        pass
    bad = [k for k in wire.feature_names(raw) if not _is_utf8(k)]
    if bad:
        raise DataError(f"{where}: feature name {bad[0]!r} is not UTF-8 (tf.train.Example's feature names are UTF-8 "
                        "strings)")
    raise DataError(f"{where}: not a tf.train.Example (protobuf cannot parse its {len(raw)} bytes)")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
