"""Generating a cache of 10 million rows: throughput, and whether it holds as the cache grows (issue 14).

The model is a cheap stand-in at the width of seed 004's MLP bottleneck (``hidden2/Relu``, 100
floats): a frozen layer 4 -> 100 (ReLU) saved with ``Saver``, so that what is measured is the
generator (content keys, batches, shard files, manifest updates), not inference. ``generate`` runs
as ``graphsurgeon cache`` runs it (float32 rows, shards of 4,096 rows, made durable 16 at a time by
``ShardBatch``). The time each batch of shards becomes durable (synced and renamed into place) is
recorded: the throughput of the first million rows (from the first shards made durable, so
restoring the model and planning are not in it) and of the last million are compared. Within each
span the main thread's computing (``task_inputs`` and ``Computer.rows``) and the writer thread's
shard writes (``ShardBatch.write`` and ``flush`` calls) are timed apart (they overlap: a shard is
written while the next is computed), and the seconds spent in ``fsync`` within the span (shards',
the directory's and manifests': waiting for the device).

In the same run, after the generator (not interleaved with it), the disk alone: the same number of
shards of the same size written by ``ShardBatch`` (hashed, fsync'd, renamed; nothing computed)
into a fresh directory, and the same first/last ratio of its rows a second. When the generator is
bound by its writes, its ratio cannot be better than the disk's.

Goal: last million within 10% of the first.

    python benchmarks/cache_gen_scale_bench.py [--examples 10000000] [--batch-size 4096]

Disk: about 4.6 GB for 10M rows (400 bytes a row, 34 bytes of content key, 15 of index) plus the
160 MB input; ``BENCH_DIR`` chooses where (default: the system's temporary directory).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from graphsurgeon._src.cache import compute, generate, generation  # noqa: E402
from graphsurgeon._src.storage import cachefiles  # noqa: E402
from graphsurgeon._src.storage.shardbatch import ShardBatch  # noqa: E402

tf1 = tf.compat.v1
WIDTH, INPUTS = 100, 4


def model(d):
    """A frozen layer INPUTS -> WIDTH (ReLU): the MLP's bottleneck width at almost no inference cost."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, INPUTS], name="X")
        with tf1.variable_scope("expand", use_resource=False):
            w = tf1.get_variable("weights", [INPUTS, WIDTH], initializer=tf1.glorot_uniform_initializer(seed=0))
        tf.nn.relu(tf.matmul(x, w), name="features")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(d, "model", "m.ckpt"))


def recorded(log, fn, rows_of):
    """``fn`` wrapped to append ``(time after the call, rows, seconds in the call)`` to ``log``."""
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        log.append((time.perf_counter(), rows_of(args), time.perf_counter() - t))
        return out
    return wrapper


def recorded_batches(writes, durable):
    """Wrap ``ShardBatch.write`` and ``flush``: each write call (its own flush included) appends
    ``(time after the call, rows, seconds)`` to ``writes``; each flush, called by ``write`` or by the
    generator at the end, appends ``(time after the flush, rows it made durable, seconds)`` to
    ``durable``. Returns the originals."""
    write, flush, inside = ShardBatch.write, ShardBatch.flush, []

    def write_(self, shard, array, keys):
        t = time.perf_counter()
        inside.append(1)
        try:
            return write(self, shard, array, keys)
        finally:
            inside.pop()
            writes.append((time.perf_counter(), len(array), time.perf_counter() - t))

    def flush_(self):
        t = time.perf_counter()
        out = flush(self)
        durable.append((time.perf_counter(), sum(e["rows"] for e in out), time.perf_counter() - t))
        if not inside:  # the generator's last flush, not one inside a write
            writes.append((durable[-1][0], 0, durable[-1][2]))
        return out

    ShardBatch.write, ShardBatch.flush = write_, flush_
    return write, flush


def span(shards, lo, hi):
    """``(rows, start, end)``: from the end of the shard that ends at or after row ``lo`` to the end of
    the one ending at ``hi``."""
    ends = np.cumsum([r for _, r, _ in shards])
    times = np.array([t for t, _, _ in shards])
    a, b = np.searchsorted(ends, lo), min(np.searchsorted(ends, hi), len(ends) - 1)
    return ends[b] - ends[a], times[a], times[b]


def within(log, start, end):
    """Seconds of the calls in ``log`` that ended in ``(start, end]``."""
    return sum(s for t, _, s in log if start < t <= end)


def reset_peak_rss():
    """Reset the kernel's peak RSS of this process (VmHWM), so the peak measured is generate's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    return int([line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]) / 1024


def disk_alone(d, n_shards, rows, keys):
    """``[(time after the call, rows made durable, seconds)]`` of ``n_shards`` shard writes of ``rows`` and
    ``keys`` by the generator's writer (``ShardBatch``), for each call that made shards durable."""
    out = os.path.join(d, "disk")
    os.makedirs(out)
    log, batch = [], ShardBatch(out)
    for i in range(n_shards + 1):
        t = time.perf_counter()
        done = batch.write(i, rows, keys) if i < n_shards else batch.flush()
        if done:
            log.append((time.perf_counter(), sum(e["rows"] for e in done), time.perf_counter() - t))
    shutil.rmtree(out)
    return log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=10_000_000)
    ap.add_argument("--batch-size", type=int, default=4096)
    args = ap.parse_args()
    n = args.examples
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        need = n * (WIDTH * 4 + 34 + 15) + n * INPUTS * 4 * 2
        free = shutil.disk_usage(d).free
        if need > free * 0.9:
            sys.exit(f"needs about {need / 2**30:.1f} GiB in {d}, {free / 2**30:.1f} GiB free; use --examples")
        prefix = model(d)
        x = np.random.default_rng(0).normal(size=(n, INPUTS)).astype(np.float32)
        np.savez(os.path.join(d, "data.npz"), x=x, y=np.arange(n) % 10)
        del x
        shards, writes, manifests, interims, computing, syncs = [], [], [], [], [], []
        batch_originals = recorded_batches(writes, shards)
        originals = (cachefiles.write_manifest, generation.interim_manifest, compute.Computer.rows,
                     generation.task_inputs, os.fsync)
        cachefiles.write_manifest = recorded(manifests, originals[0], lambda a: len(a[1]["shards"]))
        generation.interim_manifest = recorded(interims, originals[1], lambda a: len(a[1]))
        compute.Computer.rows = recorded(computing, originals[2], lambda a: len(a[2]))
        generation.task_inputs = recorded(computing, originals[3], lambda a: 0)
        os.fsync = recorded(syncs, originals[4], lambda a: 0)
        reset_peak_rss()
        try:
            t = time.perf_counter()
            generate(prefix, "features", os.path.join(d, "data.npz"), os.path.join(d, "cache"),
                     batch_size=args.batch_size, progress=False)
            total = time.perf_counter() - t
        finally:
            (cachefiles.write_manifest, generation.interim_manifest, compute.Computer.rows, generation.task_inputs,
             os.fsync) = originals
            ShardBatch.write, ShardBatch.flush = batch_originals
        peak = peak_rss_mb()
        cache = os.path.join(d, "cache")
        size = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache))
        manifest_kb = os.path.getsize(os.path.join(cache, cachefiles.MANIFEST)) / 1024
        one = os.path.join(cache, cachefiles.shard_name(0))
        rows, keys = np.load(one), np.load(os.path.join(cache, cachefiles.keys_name(0)))
        shutil.rmtree(cache)
        disk = disk_alone(d, sum(1 for _, r, _ in writes if r), rows, keys)
        million = min(1_000_000, n // 10)
        parts = {}
        for name, (rows, a, b) in (("first", span(shards, 0, million)), ("last", span(shards, n - million, n))):
            parts[name] = {"rows": int(rows), "s": b - a, "ex_per_s": rows / (b - a), "shard_writes_s": within(writes, a, b),
                           "fsync_s": within(syncs, a, b),
                           "computing_s": within(computing, a, b),
                           "manifest_writes_s": within(manifests, a, b), "manifest_building_s": within(interims, a, b)}
        first, last = parts["first"]["ex_per_s"], parts["last"]["ex_per_s"]
        disk_rows = sum(r for _, r, _ in disk)
        (r0, a0, b0), (r1, a1, b1) = span(disk, 0, million), span(disk, disk_rows - million, disk_rows)
        disk_first, disk_last = r0 / (b0 - a0), r1 / (b1 - a1)
        result = {"examples": n, "width": WIDTH, "total_s": total, "ex_per_s": n / total,
                  "first_from_first_shard_s": shards[0][0] - t, "rows_compared": million,
                  "first_ex_per_s": first, "last_ex_per_s": last, "last_over_first": last / first, "parts": parts,
                  "shards": sum(1 for _, r, _ in writes if r), "durable_batches": len(shards),
                  "shard_write_s_mean": float(np.mean([s for _, _, s in writes])),
                  "manifest_writes": len(manifests),
                  "manifest_write_s_first_last": [manifests[0][2], manifests[-1][2]],
                  "manifest_kb": manifest_kb,
                  "cache_mb": size / 2**20, "peak_rss_mb": peak, "disk_alone_first_ex_per_s": disk_first,
                  "disk_alone_last_ex_per_s": disk_last, "disk_alone_last_over_first": disk_last / disk_first}
        print(f"{n:,} rows x {WIDTH} float32 ({size / 2**30:.2f} GiB, {result['shards']} shards) in {total:.1f} s: "
              f"{n / total:,.0f} rows/s overall (first shards durable {result['first_from_first_shard_s']:.1f} s "
              f"after the start)")
        print(f"  first {million:,} rows {first:,.0f} rows/s, last {million:,} rows {last:,.0f} rows/s: "
              f"last/first {last / first:.3f} (goal within 10%)")
        for name, p in parts.items():
            print(f"  {name} {p['rows']:,} rows: {p['s']:.2f} s; computing {p['computing_s']:.2f} s (main thread), "
                  f"writing shards {p['shard_writes_s']:.2f} s (writer thread; fsync {p['fsync_s']:.2f} s of all "
                  f"writes), building manifests "
                  f"{p['manifest_building_s']:.3f} s, writing them {p['manifest_writes_s']:.3f} s")
        print(f"  {len(manifests)} manifest writes ({manifests[0][2] * 1000:.1f} ms the first, "
              f"{manifests[-1][2] * 1000:.1f} ms the last; {result['manifest_kb']:.0f} KB at the end); "
              f"peak RSS during generate {peak:.0f} MB")
        print(f"  the disk alone, {result['shards']} shard writes of the same bytes: first {million:,} rows {disk_first:,.0f} "
              f"rows/s, last {disk_last:,.0f} rows/s: last/first {disk_last / disk_first:.3f}")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
