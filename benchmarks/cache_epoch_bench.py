"""One epoch of ``retrain --cache`` ÷ the same head on the same activations in RAM (issue 14).

Both sides run ``graphsurgeon._src.train.fit`` for one epoch exactly as ``retrain`` does (the
training batches, then the validation pass), with a new 10-class head (Adam, as retrain's
head-only default) over a 2048-wide bottleneck (inception_v3's PreLogits width). The cache side
reads through ``retrain``'s own ``CacheExamples`` and a ``CacheReader`` with its default 256 MB
buffer; the cache is 4× larger than that buffer. The RAM side holds the same activations as
arrays and uses ``train.array_batches``. One warm-up each, then interleaved repeats; the ratio
is of median throughputs. Goal >= 0.8.

    python benchmarks/cache_epoch_bench.py [--rows 131072] [--repeats 5]
"""
import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from graphsurgeon._src import train  # noqa: E402
from graphsurgeon._src.cache import CacheReader, generate  # noqa: E402
from graphsurgeon._src.retrain.data import CacheExamples  # noqa: E402

from cache_bench import expand_model  # noqa: E402 (benchmarks/ is the script's folder)

tf1 = tf.compat.v1
WIDTH, BATCH = 2048, 256


def head():
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, WIDTH])
        y = tf1.placeholder(tf.int64, [None])
        w = tf1.get_variable("w", [WIDTH, 10], initializer=tf1.zeros_initializer())
        b = tf1.get_variable("b", [10], initializer=tf1.zeros_initializer())
        logits = tf.matmul(x, w) + b
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
        op = tf1.train.AdamOptimizer(0.003).minimize(loss)
        sess = tf1.Session(graph=g)
        sess.run(tf1.global_variables_initializer())
    return sess, op, loss, acc, (lambda xb, yb, training: {x: xb, y: yb})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=131072, help="examples (131072 x 2048 float32 = 1 GiB)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--buffer-mb", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        prefix = expand_model(d, WIDTH, "expand")
        x = np.random.default_rng(2).normal(size=(args.rows, 16)).astype(np.float32)
        np.savez(os.path.join(d, "wide.npz"), x=x, y=np.arange(args.rows) % 10)
        cache = os.path.join(d, "cache")
        generate(prefix, "features", os.path.join(d, "wide.npz"), cache, batch_size=1024, progress=False)
        size = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache))
        reader = CacheReader(cache, buffer_bytes=args.buffer_mb << 20)
        ram = {s: (reader.read(reader.examples(s)), reader.labels(s)) for s in ("train", "validation")}
        sess, op, loss, acc, feed_of = head()
        cached = CacheExamples(reader, BATCH, 0)
        steps = cached.steps()

        def from_cache():
            return train.fit(sess, [(0, op)], loss, acc, feed_of, cached.train(), steps, cached.split("validation"),
                             epochs=1, progress=False)

        def from_ram():
            (xt, yt), (xv, yv) = ram["train"], ram["validation"]
            return train.fit(sess, [(0, op)], loss, acc, feed_of, train.array_batches(xt, yt, BATCH, 0), steps,
                             lambda: train.array_batches(xv, yv, BATCH)(0), epochs=1, progress=False)

        n = reader.count("train") + reader.count("validation")
        times = {"cache": [], "ram": []}
        from_cache(), from_ram()  # warm-ups, one each
        for _ in range(args.repeats):
            for name, fn in (("cache", from_cache), ("ram", from_ram)):
                gc.collect()
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["ram"] / med["cache"]  # throughput ratio: cache ÷ RAM
        print(f"cache {size / 2**20:.0f} MB ({args.rows} rows x {WIDTH} float32), reader buffer {args.buffer_mb} MB "
              f"({size / (args.buffer_mb << 20):.1f}x); one epoch as retrain runs it (train + validation, {n} rows):")
        print(f"  from the cache {n / med['cache']:.0f} ex/s, from RAM {n / med['ram']:.0f} ex/s (medians of "
              f"{args.repeats}, interleaved) -> ratio {ratio:.2f} (goal >= 0.8); reads {reader.stats}")
        print(json.dumps({"times_s": times, "ratio": ratio, "cache_mb": size / 2**20, "buffer_mb": args.buffer_mb}))
        reader.close()
        sess.close()


if __name__ == "__main__":
    main()
