"""Do retrain's default settings train a head as well as a convex solver does?

For each model: cache the cut tensor over scikit-learn's digits (resized to the model's input),
train a new 10-class head from the cache with `retrain`'s defaults (nothing tuned), and fit
scikit-learn's LogisticRegression (defaults, max_iter=5000) on the same cached features and the
same train split; both are scored on the same held-out test split. Goal: defaults within 2
points of LogisticRegression.

Models: seed 004's MLP (trained here on digits 0-4, as example 01 does) and, when
../shared/realmodels is present, the 2017 traffic-sign LeNet (fc1 `Elu_2`), the five-copy
LeNet (`Relu_18`) and the GAN discriminator (`Relu_1`).

    python benchmarks/defaults_bench.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

import graphsurgeon as gs  # noqa: E402

tf1 = tf.compat.v1
REAL = os.path.join(ROOT, "..", "shared", "realmodels")


def digits(size=None, channels=1, flat=False, low=0.0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images[:, :, :, None].astype(np.float32) / 16.0
    if size:
        with tf.Graph().as_default(), tf1.Session() as s:
            x = s.run(tf1.image.resize_bilinear(x, [size, size]))
    x = np.repeat(x, channels, -1) if channels > 1 else x
    x = x * (1.0 - low) + low
    return (x.reshape(len(x), -1) if flat else x).astype(np.float32), d.target.astype(np.int64)


def seed004_model(tmp):
    from graphsurgeon._src.demo import digits as flat_digits
    from graphsurgeon._src.demo import train_mlp

    x, y = flat_digits()
    _, prefix = train_mlp(x[y < 5], y[y < 5], 5, epochs=20, seed=0, save_to=os.path.join(tmp, "mlp", "model.ckpt"))
    return prefix


def compare(name, model, cut, x, y, tmp):
    from sklearn.linear_model import LogisticRegression

    from graphsurgeon._src.cache import CacheReader

    data = os.path.join(tmp, f"{name}.npz")
    np.savez(data, x=x, y=y)
    cache = os.path.join(tmp, f"{name}-cache")
    gs.generate_cache(model, cut, data, cache, progress=False)
    res = gs.retrain(gs.RetrainConfig(model=model, head=f"{cut}:10"), None, os.path.join(tmp, f"{name}-out"),
                     cache=cache, progress=False)
    with CacheReader(cache) as r:
        def part(split):
            pos = r.examples(split)
            return r.read(pos).reshape(len(pos), -1), r.labels(split)
        (xtr, ytr), (xte, yte) = part("train"), part("test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(max_iter=5000).fit(xtr, ytr).score(xte, yte)
    ours = res.metrics["test"]["accuracy"]
    print(f"{name:<12} {cut:<14} {len(ytr):>5} {len(yte):>5}  {ours:.4f}  {lr:.4f}  {100 * (ours - lr):+6.2f}  "
          f"{len(res.history)} epochs")
    return ours, lr


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="defaults-bench-")
    print(f"{'model':<12} {'cut':<14} {'train':>5} {'test':>5}  {'ours':>6}  {'logreg':>6}  {'points':>6}")
    rows = [compare("seed004_mlp", seed004_model(tmp), "hidden2/Relu", *digits(flat=True), tmp)]
    if os.path.isdir(REAL):
        rows.append(compare("lenet_noyin", os.path.join(REAL, "lenet_noyin"), "Elu_2", *digits(32), tmp))
        rows.append(compare("lenet_maesla", os.path.join(REAL, "lenet_maesla"), "Relu_18", *digits(32, 3), tmp))
        rows.append(compare("gan_chadpro", os.path.join(REAL, "gan_chadpro"), "Relu_1",
                            *digits(28, flat=True, low=-1.0), tmp))
    worst = min(100 * (o - lr) for o, lr in rows)
    print(f"worst: {worst:+.2f} points (goal >= -2)")


if __name__ == "__main__":
    main()
