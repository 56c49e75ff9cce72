"""Cache generation on Apache Beam's DirectRunner (2 worker processes) ÷ the local generator.

Both build the same cache (seed 004's MLP, ``hidden2/Relu``) from the same ``.npz`` into fresh
directories, interleaved, and the bytes are compared. The Beam side includes starting its
workers, which each import TensorFlow and restore the model once (``DoFn.setup``); its fixed cost
is reported separately from its marginal rate (two data sizes).

    python benchmarks/cache_beam_bench.py [--rows 200000] [--repeats 2]
"""
import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import numpy as np  # noqa: E402

from graphsurgeon._src.cache import generate  # noqa: E402

from legacy_models import seed004_mlp  # noqa: E402


def tree(d):
    return {n: hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest() for n in sorted(os.listdir(d))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        prefix, x, _ = seed004_mlp(d)
        sizes = (args.rows // 4, args.rows)
        for n in sizes:
            big = np.random.default_rng(0).standard_normal((n, x.shape[1]), dtype=np.float32)
            np.savez(os.path.join(d, f"d{n}.npz"), x=big, y=(big[:, 7] > 0).astype(np.int64))
        times = {(r, n): [] for r in ("local", "beam") for n in sizes}
        for k in range(args.repeats):
            for n in sizes:
                for runner in ("local", "beam"):
                    out = os.path.join(d, f"{runner}{n}_{k}")
                    t = time.perf_counter()
                    generate(prefix, "hidden2/Relu", os.path.join(d, f"d{n}.npz"), out, batch_size=256,
                             shard_size=4096, progress=False, runner=runner)
                    times[runner, n].append(time.perf_counter() - t)
                a, b = tree(os.path.join(d, f"local{n}_{k}")), tree(os.path.join(d, f"beam{n}_{k}"))
                assert a == b, "the Beam cache differs from the local one"
                for runner in ("local", "beam"):
                    shutil.rmtree(os.path.join(d, f"{runner}{n}_{k}"))
        med = {key: statistics.median(v) for key, v in times.items()}
        small, large = sizes
        for r in ("local", "beam"):
            marginal = (large - small) / (med[r, large] - med[r, small])
            print(f"{r}: {small} rows {med[r, small]:.1f} s, {large} rows {med[r, large]:.1f} s; marginal "
                  f"{marginal:.0f} rows/s, fixed {med[r, small] - small / marginal:.1f} s")
        print(f"beam (DirectRunner, 2 workers) ÷ local at {large} rows, end to end: "
              f"{med['local', large] / med['beam', large]:.2f} (throughput ratio; byte-identical caches)")


if __name__ == "__main__":
    main()
