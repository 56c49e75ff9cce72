"""Restore + plan + new head on TF-Slim inception_v3, against plain import_meta_graph + Saver.restore.

Both are measured in the same run, interleaved, on the same checkpoint (written
fresh to a temporary directory); the figure is the ratio of medians. Goal: <= 1.5.

    python benchmarks/restore_bench.py [--repeats 5] [--size 299]
"""
import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import tensorflow as tf  # noqa: E402

import graphsurgeon as gs  # noqa: E402

from legacy_models import slim_inception_v3  # noqa: E402

tf1 = tf.compat.v1


def baseline(prefix):
    g = tf.Graph()
    with g.as_default():
        saver = tf1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
        sess = tf1.Session(graph=g)
        saver.restore(sess, prefix)
    sess.close()


def graphsurgeon_way(prefix):
    cfg = gs.RetrainConfig(model=prefix, head="InceptionV3/InceptionV3/Mixed_7c/concat:7",
                           drop=["InceptionV3/Logits", "InceptionV3/AuxLogits"], trainable=["InceptionV3/Mixed_7c"])
    setup = gs.build(cfg)
    assert setup.plan.by_status("restored")
    setup.model.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=299)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        prefix = slim_inception_v3(d, size=args.size)
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 1e6
        baseline(prefix), graphsurgeon_way(prefix)  # warm-up: TF start-up, file cache
        times = {"baseline": [], "graphsurgeon": []}
        for _ in range(args.repeats):
            for name, fn in (("baseline", baseline), ("graphsurgeon", graphsurgeon_way)):
                gc.collect()  # the previous graphs' garbage is collected outside either timing
                t = time.perf_counter()
                fn(prefix)
                times[name].append(time.perf_counter() - t)
    b, g = statistics.median(times["baseline"]), statistics.median(times["graphsurgeon"])
    print(f"inception_v3 {args.size}x{args.size}, checkpoint {size_mb:.0f} MB, {args.repeats} interleaved repeats")
    print(f"  import_meta_graph + Saver.restore:        median {b:.3f} s")
    print(f"  graphsurgeon restore + plan + new head:   median {g:.3f} s")
    print(f"  ratio: {g / b:.2f}x (goal <= 1.5x)")
    print("  all times (s): baseline " + " ".join(f"{t:.2f}" for t in times["baseline"])
          + " | graphsurgeon " + " ".join(f"{t:.2f}" for t in times["graphsurgeon"]))


if __name__ == "__main__":
    main()
