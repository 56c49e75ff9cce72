"""Load labelled data: ``.npz`` files and retrain.py's image-folder layout.

Splits are decided by hashing, as retrain.py did: an image's split comes from the
SHA-1 of its file name (ignoring any ``_nohash_`` suffix), an ``.npz`` row's from
the SHA-1 of its bytes; adding examples never moves old ones between splits.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re

import numpy as np
import tensorflow as tf

from graphsurgeon._src.errors import DataError
from graphsurgeon._src.mixins import counted, listed
from graphsurgeon._src.storage.files import read_npz
from graphsurgeon._src.storage.imagefolders import list_image_folder
from graphsurgeon._src.storage.rowhash import MAX_NUM_IMAGES_PER_CLASS, hex_name_splits, hex_strings, row_digests
from graphsurgeon._src.storage.session import new_session

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class Dataset:
    """Examples with integer labels and a split per example.

    Attributes:
      x: inputs, ``[N, ...]`` float32 (images decoded and resized).
      y: int64 labels ``[N]``.
      split: ``[N]`` strings from :data:`SPLITS`.
      keys: ``[N]`` stable identifiers (file path relative to the root, or row hash).
      classes: class names (folder names, or an ``.npz``'s optional ``classes`` array), or None.
    """

    x: np.ndarray
    y: np.ndarray
    split: np.ndarray
    keys: list
    classes: list | None = None

    def part(self, split: str):
        """``(x, y)`` of one split."""
        m = self.split == split
        return self.x[m], self.y[m]

    def __len__(self):
        return len(self.y)


# the files of a model (graphs, checkpoints, Keras files), which a user may give as data by mistake
_MODEL_SUFFIXES = (".pb", ".pbtxt", ".meta", ".index", ".h5", ".keras", ".ckpt")
RETRAIN_FORMATS = "an .npz (arrays x and y) or an image folder (one sub-folder of images per class)"
CACHE_FORMATS = ("an .npz (arrays x and y), an image folder (one sub-folder of images per class) or TFRecord "
                 "files of tf.train.Example")


def check_not_a_model_file(path: str, formats: str) -> None:
    """Raise :class:`DataError` if ``path`` is named as a model's file (a graph, a checkpoint's index
    or data, a Keras file), saying the data formats expected (``formats``)."""
    name = os.path.basename(path)
    if name.endswith(_MODEL_SUFFIXES) or ".data-0" in name:
        raise DataError(f"data {path}: a model file (a graph or a checkpoint), not data; expected {formats}")


def which_split(key: str, validation_pct: float, test_pct: float) -> str:
    """retrain.py's ``which_set``: a stable split from the hash of a name."""
    hash_name = re.sub(r"_nohash_.*$", "", key)
    h = int(hashlib.sha1(os.fsencode(hash_name)).hexdigest(), 16)  # a name's own bytes, UTF-8 or not
    pct = (h % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)
    if pct < validation_pct:
        return "validation"
    if pct < validation_pct + test_pct:
        return "test"
    return "train"


def load(path: str, *, image_size=None, scale: str = "unit", validation_pct: float = 10.0,
         test_pct: float = 10.0) -> Dataset:
    """Load an ``.npz`` (arrays ``x``, ``y``, optional ``split``) or an image folder.

    Raises:
      DataError: missing path, a model's file (a graph or a checkpoint), missing arrays, lengths that
        differ, non-integer labels, a class folder without images, an image that cannot be decoded;
        naming the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"data {path}: no such file or directory (expected an .npz file or an image folder)")
    if os.path.isdir(path):
        return load_image_folder(path, image_size=image_size, scale=scale, validation_pct=validation_pct,
                                 test_pct=test_pct)
    check_not_a_model_file(path, RETRAIN_FORMATS)
    return load_npz(path, validation_pct=validation_pct, test_pct=test_pct)


def load_npz(path: str, *, validation_pct: float = 10.0, test_pct: float = 10.0) -> Dataset:
    """The examples of an ``.npz`` (see :func:`load`).

    Raises:
      DataError: naming the file: a damaged file or header, ``x`` or ``y`` missing, ``x`` a single
        value or not numbers, ``y`` not one integer class id per row, no rows, rows that differ in
        number, a NaN or infinite value in ``x`` (naming its row), a malformed ``split`` or ``classes``.
    """
    x, y, split, classes = read_npz_examples(path)
    sha1 = row_digests(x, "sha1")
    if split is None:
        split = split_names(hex_name_splits(sha1, validation_pct, test_pct))
    return Dataset(x, y.astype(np.int64), split, hex_strings(sha1), classes)


def read_npz_examples(path: str) -> tuple:
    """``(x, y, split, classes)`` of an ``.npz``, checked as :func:`load_npz` describes: ``x`` float32,
    ``y`` as stored, ``split`` the file's own array of split names (None when it has none), ``classes``
    a list of names or None."""
    arrays = read_npz(path)
    for k in ("x", "y"):
        if k not in arrays:
            raise DataError(f"{path}: no array '{k}' (it has {', '.join(sorted(arrays)) or 'none'}); expected x and y")
    y = arrays["y"]
    x = npz_x(arrays, path)
    if y.ndim != 1 or not _integral(y):
        raise DataError(f"{path}: y must be a 1-D array of integer class ids, got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} rows but y has {len(y)}")
    if not len(x):
        raise DataError(f"{path}: no examples (x and y have 0 rows)")
    split = None
    if "split" in arrays:
        split = arrays["split"].astype(str)
        codes = split_codes(split)
        if split.ndim != 1 or len(split) != len(y):
            raise DataError(f"{path}: 'split' must hold one of {SPLITS} per row (it has shape {list(split.shape)} for "
                            f"{counted(len(y), 'row')})")
        bad = [repr(str(s)) for s in np.unique(split[codes == 255])]
        if bad:
            raise DataError(f"{path}: 'split' must hold one of {SPLITS} per row (found {listed('value', bad, 3, count=True)})")
    classes = None
    if "classes" in arrays:
        names = arrays["classes"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{path}: 'classes' must be a 1-D array of class names (strings), got {names.dtype} "
                            f"{names.shape}")
        classes = [str(c) for c in names.astype(str)]
    return x, y, split, classes


def split_codes(split: np.ndarray) -> np.ndarray:
    """The code of each of ``split`` (names from :data:`SPLITS`) as ``uint8``: its index in
    :data:`SPLITS`, 255 for a name that is not one."""
    codes = np.full(split.shape, 255, np.uint8)
    for i, name in enumerate(SPLITS):
        codes[split == name] = i
    return codes


def split_names(codes: np.ndarray) -> np.ndarray:
    """The split names of ``codes`` as ``np.array`` makes them from a list of names: strings as wide
    as the longest name present."""
    width = max((len(SPLITS[c]) for c in np.unique(codes)), default=1)
    return np.array(SPLITS, f"U{width}")[codes]


def npz_x(arrays: dict, path: str) -> np.ndarray:
    """``arrays["x"]`` as float32, refused (naming ``path``) when it is a single value, not numbers, or
    holds a NaN or an infinity."""
    x = arrays["x"]
    if x.ndim == 0:
        raise DataError(f"{path}: x is a single {x.dtype} value; expected one row per example (shape [N, ...])")
    if x.dtype.kind not in "biuf":
        what = "strings" if x.dtype.kind in "SU" else "not numbers"
        raise DataError(f"{path}: x holds {x.dtype} ({what}); expected numbers, one row per example")
    x = x.astype(np.float32, copy=False) if x.dtype != np.float32 else x
    _check_finite(x, path)
    return x


def _integral(y: np.ndarray) -> bool:
    if y.dtype.kind in "biu":
        return True
    return y.dtype.kind == "f" and bool(np.all(np.isfinite(y))) and bool(np.all(np.mod(y, 1) == 0))


def _check_finite(x: np.ndarray, path: str, rows: int = 1 << 16) -> None:
    """Raise :class:`DataError` naming the first row of ``x`` that holds a NaN or an infinity (read in
    blocks of ``rows`` rows, so the check needs little memory beyond ``x``)."""
    if not x.size:
        return
    for start in range(0, len(x), rows):
        block = x[start:start + rows].reshape(min(rows, len(x) - start), -1)
        ok = np.isfinite(block)
        if not ok.all():
            r, c = np.argwhere(~ok)[0]
            what = "NaN" if np.isnan(block[r, c]) else "an infinity"
            count = int(np.count_nonzero(~np.isfinite(x)))
            raise DataError(f"{path}: x holds {what} at row {start + r} ({count} values that are not finite in all, "
                            "as float32); expected finite numbers")


def load_image_folder(root: str, *, image_size=None, scale: str = "unit", validation_pct: float = 10.0,
                      test_pct: float = 10.0) -> Dataset:
    """Decode and resize every image of retrain.py's layout (``root/<class>/<image>``)."""
    if image_size is None:
        raise DataError(f"{root}: an image folder needs the model's input height and width (pass input=TENSOR)")
    classes, files = list_image_folder(root)
    decode = ImageDecoder(image_size, scale)
    try:
        x = np.stack([decode(os.path.join(root, rel)) for rel, _ in files])
    finally:
        decode.close()
    y = np.array([c for _, c in files], dtype=np.int64)
    split = np.array([which_split(os.path.basename(rel), validation_pct, test_pct) for rel, _ in files])
    return Dataset(x, y, split, [rel for rel, _ in files], classes)


AUGMENT_DEFAULTS = {"flip_left_right": True, "random_crop": 10.0, "random_scale": 10.0, "random_brightness": 10.0}


def distortion(params: dict, rng: np.random.Generator):
    """retrain.py's distortions drawn from ``rng``: ``(flip, box, brightness)``.

    ``random_crop`` and ``random_scale`` (percent) give a crop box of relative size
    ``1 / (margin * scale)`` at a random place; ``random_brightness`` (percent) a
    multiplier in ``[1 - b, 1 + b]``.
    """
    flip = bool(params.get("flip_left_right")) and rng.random() < 0.5
    margin = 1.0 + params.get("random_crop", 0.0) / 100.0
    scale = margin * rng.uniform(1.0, 1.0 + params.get("random_scale", 0.0) / 100.0)
    size = 1.0 / scale
    y0, x0 = rng.uniform(0.0, 1.0 - size, size=2)
    b = params.get("random_brightness", 0.0) / 100.0
    return flip, [float(y0), float(x0), float(y0 + size), float(x0 + size)], float(rng.uniform(1.0 - b, 1.0 + b))


class ImageDecoder:
    """Decode an image (file path or bytes) and resize it to ``(height, width)`` with 3 channels,
    optionally distorted (flip, crop box, brightness) as retrain.py did.

    ``scale``: ``unit`` -> [0, 1], ``inception`` -> [-1, 1], ``raw`` -> [0, 255].
    Resizing is bilinear over a crop box (the whole image when undistorted), so cached
    and live inputs go through the same op.
    """

    SCALES = {"unit": (1 / 255.0, 0.0), "inception": (2 / 255.0, -1.0), "raw": (1.0, 0.0)}

    def __init__(self, image_size, scale: str = "unit"):
        if scale not in self.SCALES:
            raise DataError(f"unknown image scale '{scale}'; expected one of {', '.join(self.SCALES)}")
        mul, add = self.SCALES[scale]
        tf1 = tf.compat.v1
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._bytes = tf1.placeholder(tf.string, [])
            self._box = tf1.placeholder_with_default([0.0, 0.0, 1.0, 1.0], [4])
            self._flip = tf1.placeholder_with_default(False, [])
            self._bright = tf1.placeholder_with_default(1.0, [])
            img = tf.cast(tf.io.decode_image(self._bytes, channels=3, expand_animations=False), tf.float32)
            img = tf.image.crop_and_resize(img[None], self._box[None], [0], list(image_size))[0]
            img = tf.cond(self._flip, lambda: tf.reverse(img, [1]), lambda: img)
            img = tf.clip_by_value(img * self._bright, 0.0, 255.0)
            self._out = img * mul + add
        self._sess = new_session(self._graph, threads=1)
        self._errors = (tf.errors.InvalidArgumentError, tf.errors.UnknownError)

    def __call__(self, path_or_bytes, distort=None, name: str | None = None) -> np.ndarray:
        if isinstance(path_or_bytes, bytes):
            data, name = path_or_bytes, name or "image"
        else:
            name = path_or_bytes
            try:
                with open(path_or_bytes, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise DataError(f"{path_or_bytes}: cannot read image ({e.strerror})") from None
        feed = {self._bytes: data}
        if distort is not None:
            flip, box, bright = distort
            feed.update({self._flip: flip, self._box: box, self._bright: bright})
        try:
            return self._sess.run(self._out, feed)
        except self._errors:
            raise DataError(f"{name}: cannot decode as an image (jpeg, png, gif or bmp expected)") from None

    def close(self):
        self._sess.close()
