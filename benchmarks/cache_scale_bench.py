"""A cache of 10 million examples: opening it and reading one epoch, memory and time (issue 14).

The cache is written directly in the cache format (shards of ``--shard-size`` rows, their key
files, the data set's index and the manifest, through ``storage.cacheshards``), without running a
model: what is measured is the reader. A fresh process then opens it (``CacheReader``) and reads
one epoch of the training split and one pass over the validation split, as ``retrain --cache``
does each epoch, sampling its resident memory (``/proc/self/statm``) after every batch.

Goals: opening <= 1 s; resident memory beyond the reader's buffer <= 64 MB over the epoch.

    python benchmarks/cache_scale_bench.py [--examples 10000000] [--width 8] [--buffer-mb 64]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402

from graphsurgeon._src.storage import cachefiles, cacheshards  # noqa: E402

SPLITS = (0.8, 0.1, 0.1)


def build(directory: str, n: int, width: int, shard_size: int) -> dict:
    """Write a complete cache of ``n`` examples (float16 rows of ``width``), one split per shard as
    the generator lays them out; returns its size and how long writing took."""
    t = time.perf_counter()
    os.makedirs(directory, exist_ok=True)
    counts = [int(n * f) for f in SPLITS]
    counts[0] += n - sum(counts)
    rng = np.random.default_rng(0)
    entries, shard_of = [], []
    example, shard = 0, 0
    view = np.empty(n, cacheshards.EXAMPLE_DTYPE)
    for code, count in enumerate(counts):
        for a in range(0, count, shard_size):
            rows = min(shard_size, count - a)
            acts = rng.standard_normal((rows, width), dtype=np.float32).astype(np.float16)
            keys = np.zeros(rows, cacheshards.KEY_DTYPE)
            keys["key"] = np.frombuffer(b"".join(hashlib.sha256(b"%d" % (example + i)).digest() for i in range(rows)),
                                        "V32")
            entries.append(cacheshards.write_shard(directory, shard, acts, keys))
            sl = slice(example, example + rows)
            view["example"][sl], view["aug"][sl], view["row"][sl] = np.arange(example, example + rows), 0, np.arange(rows)
            view["label"][sl], view["split"][sl] = np.arange(example, example + rows) % 10, code
            shard_of.append(np.full(rows, shard, np.int64))
            example, shard = example + rows, shard + 1
    shards = np.concatenate(shard_of)
    examples = cacheshards.write_examples(directory, view, shards)
    head = {"version": cachefiles.VERSION,
            "fingerprint": {"graph": "0" * 64, "variables": {}, "tensor": "features:0", "input": "x:0", "feeds": {}},
            "tensor_dtype": "float32", "shape": [width], "preprocessing": {"kind": "npz"}, "dtype": "float16",
            "augment": None}
    manifest = dict(head, shards=entries, complete=True, examples=examples, classes=None, copies=0,
                    data={"kind": "npz", "path": "synthetic", "examples": n, "splits": counts, "labels": [0, 9],
                          "sha256": "0" * 64})
    cachefiles.write_manifest(directory, manifest)
    size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
    return {"build_s": time.perf_counter() - t, "shards": len(entries), "cache_mb": size / 2**20,
            "manifest_kb": os.path.getsize(os.path.join(directory, cachefiles.MANIFEST)) / 1024}


CHILD = r"""
import gc, json, os, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from graphsurgeon._src.cache import CacheReader
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
gc.collect()
before = rss_mb()  # Python, numpy, TensorFlow (the reader's module imports it)
t = time.perf_counter()
reader = CacheReader({cache!r}, buffer_bytes={buffer})
open_s = time.perf_counter() - t
after_open = rss_mb()
top, seen, t = after_open, {{}}, time.perf_counter()
for split, shuffle in (("train", True), ("validation", False)):
    seen[split] = 0
    for x, y in reader.batches(split, 4096, shuffle=shuffle, seed=0, epoch=0):
        seen[split] += len(y)
        top = max(top, rss_mb())
epoch_s = time.perf_counter() - t
print(json.dumps({{"open_s": open_s, "rss_before_mb": before, "rss_after_open_mb": after_open,
                  "rss_max_mb": top, "epoch_s": epoch_s, "seen": seen, "counts": {{s: reader.count(s) for s in seen}},
                  "stats": reader.stats}}))
"""


def measure(cache: str, buffer_mb: int) -> dict:
    code = CHILD.format(root=os.path.join(HERE, ".."), cache=cache, buffer=buffer_mb << 20)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=10_000_000)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--shard-size", type=int, default=4096)
    ap.add_argument("--buffer-mb", type=int, default=64)
    ap.add_argument("--dir", help="where to build the cache (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        cache = os.path.join(d, "cache")
        b = build(cache, args.examples, args.width, args.shard_size)
        print(f"built {args.examples:,} examples x {args.width} float16 in {b['shards']} shards: "
              f"{b['cache_mb']:.0f} MB, manifest {b['manifest_kb']:.0f} KB ({b['build_s']:.0f} s)", flush=True)
        m = measure(cache, args.buffer_mb)
        beyond = m["rss_max_mb"] - m["rss_before_mb"] - args.buffer_mb
        assert m["seen"] == m["counts"], m
        print(f"open {m['open_s']:.3f} s (goal <= 1 s); RSS before opening {m['rss_before_mb']:.0f} MB, after opening "
              f"{m['rss_after_open_mb']:.0f} MB (+{m['rss_after_open_mb'] - m['rss_before_mb']:.1f}), highest over "
              f"one training epoch + one validation pass {m['rss_max_mb']:.0f} MB: "
              f"{beyond:.1f} MB beyond the {args.buffer_mb} MB buffer (goal <= 64 MB)")
        print(f"epoch + validation: {m['epoch_s']:.1f} s for {sum(m['seen'].values()):,} rows; "
              f"{m['stats']['shard_reads']} shard reads, {m['stats']['bytes_read'] / 2**20:.0f} MB read")
        print(json.dumps({"build": b, "reader": m, "beyond_buffer_mb": beyond}, indent=1))


if __name__ == "__main__":
    main()
