"""The demo's data: scikit-learn's bundled digits, placed at random positions on a larger canvas.

::

    8x8 digit  ->  12x12 canvas, at a random offset (0..4, 0..4)

    digits 0-4: the original model's task (each training image at a new position every batch)
    digits 5-9: the new task, each image at one fixed position; 80 per class held out as the test
                set, the rest is the pool the k labelled images per class are drawn from
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from graphsurgeon._src.storage import files

DIGIT = 8     # scikit-learn's digits are 8x8
CANVAS = 12   # the demo's images: a digit somewhere on a 12x12 canvas (8: centred, as scikit-learn gives them)
OLD_CLASSES = (0, 1, 2, 3, 4)
NEW_CLASSES = (5, 6, 7, 8, 9)


def digits():
    """scikit-learn's 1,797 8x8 digits, flattened and scaled to [0, 1]: ``(x [N, 64] float32, y [N] int64)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def random_offsets(n: int, rng: np.random.Generator, canvas: int = CANVAS) -> np.ndarray:
    """``[n, 2]`` (row, column) offsets of a digit on the canvas, uniform over every position."""
    return rng.integers(0, canvas - DIGIT + 1, size=(n, 2))


def place(x: np.ndarray, offsets: np.ndarray, canvas: int = CANVAS) -> np.ndarray:
    """Flattened 8x8 digits ``x`` pasted on blank ``canvas`` x ``canvas`` images at ``offsets``,
    flattened: ``[N, canvas * canvas]``."""
    n = len(x)
    out = np.zeros((n, canvas, canvas), np.float32)
    rows = offsets[:, 0, None, None] + np.arange(DIGIT)[None, :, None]
    cols = offsets[:, 1, None, None] + np.arange(DIGIT)[None, None, :]
    out[np.arange(n)[:, None, None], rows, cols] = x.reshape(n, DIGIT, DIGIT)
    return out.reshape(n, canvas * canvas)


def split_per_class(y: np.ndarray, classes, n_first: int, rng: np.random.Generator):
    """``(first, rest)`` index arrays: ``n_first`` random indices of each class, and the others."""
    first, rest = [], []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        first.append(idx[:n_first])
        rest.append(idx[n_first:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(rest))


@dataclasses.dataclass
class OldTask:
    """Digits 0-4: what the original model learns. ``x`` are 8x8 digits (placed anew every batch)."""

    x: np.ndarray
    y: np.ndarray
    train: np.ndarray      # indices the original model trains on
    held_out: np.ndarray   # indices it never sees, to measure it
    held_out_offsets: np.ndarray
    canvas: int = CANVAS

    def batch(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The digits ``idx``, each at a new random place on the canvas."""
        return place(self.x[idx], random_offsets(len(idx), rng, self.canvas), self.canvas)

    def held_out_images(self) -> np.ndarray:
        return place(self.x[self.held_out], self.held_out_offsets, self.canvas)


@dataclasses.dataclass
class NewTask:
    """Digits 5-9 relabelled 0-4, each on the canvas at one fixed position."""

    x: np.ndarray          # [N, canvas * canvas]
    y: np.ndarray          # 0-4 (digit - 5)
    test: np.ndarray       # indices of the test set: never in any training set
    pool: np.ndarray       # indices the labelled training images are drawn from
    canvas: int = CANVAS
    classes: tuple = tuple(str(c) for c in NEW_CLASSES)

    def sample(self, k, seed: int) -> np.ndarray:
        """Indices of ``k`` random pool images per class (``k='all'``: the whole pool), drawn by ``seed``."""
        if k == "all":
            return self.pool.copy()
        rng = np.random.default_rng([seed, int(k)])
        return np.sort(np.concatenate([rng.choice(self.pool[self.y[self.pool] == c], int(k), replace=False)
                                       for c in range(len(self.classes))]))

    def check_disjoint(self, train: np.ndarray) -> None:
        """Raise ``AssertionError`` if a training image is in the test set, by index or by content."""
        if np.intersect1d(train, self.test).size or content_keys(self.x[train]) & content_keys(self.x[self.test]):
            raise AssertionError("a training image is in the test set")

    def npz(self, path: str, train: np.ndarray) -> None:
        """Write ``path``: the ``train`` images (split ``train``) and the test set (split ``test``), with
        class names, in the ``.npz`` layout ``graphsurgeon retrain --data`` and ``cache --data`` read."""
        self.check_disjoint(train)
        idx = np.concatenate([train, self.test])
        split = np.array(["train"] * len(train) + ["test"] * len(self.test))
        files.write_npz(path, x=self.x[idx], y=self.y[idx], split=split, classes=np.array(self.classes))


def tasks(canvas: int = CANVAS, *, test_per_class: int = 80, held_out_per_class: int = 36, seed: int = 0):
    """``(OldTask, NewTask)`` from scikit-learn's digits on ``canvas`` x ``canvas`` images; every
    choice (splits, places) is drawn from ``seed``."""
    if not DIGIT <= canvas <= 32:
        raise ValueError(f"canvas must be {DIGIT}..32 pixels, not {canvas}")
    x, y = digits()
    rng = np.random.default_rng(seed)
    old = np.isin(y, OLD_CLASSES)
    ox, oy = x[old], y[old]
    nx, ny = x[~old], y[~old] - NEW_CLASSES[0]
    held_out, train = split_per_class(oy, OLD_CLASSES, held_out_per_class, rng)
    test, pool = split_per_class(ny, range(len(NEW_CLASSES)), test_per_class, rng)
    # the places come after the splits, so every canvas size has the same splits
    places = random_offsets(len(held_out) + len(nx), rng, canvas)
    old_task = OldTask(ox, oy, train, held_out, places[:len(held_out)], canvas)
    new_task = NewTask(place(nx, places[len(held_out):], canvas), ny, test, pool, canvas)
    return old_task, new_task


def content_keys(x: np.ndarray) -> set:
    """sha1 of each image's bytes."""
    return {hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest() for row in x}

