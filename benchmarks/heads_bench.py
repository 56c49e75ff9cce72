"""Many heads, one model: 200 text classifiers merged, measured side by side in one run.

* bytes: merged SavedModel ÷ (backbone + Σ heads)                         goal <= 1.02
  beside 200 separate SavedModels and the all-heads multi-output model
* latency of one single-example request: 200-head ÷ 1-head merged model   goal <= 1.1
  beside the all-heads model and a task's own SavedModel
* throughput: a batch of 256 mixing all 200 tasks ÷ a single-task batch   goal >= 0.8
* load: 8 threads x 5,000 single-example requests, mixed tasks, against the loaded merged
  SavedModel: errors, p50, p99
* design: head-only cost of the three ways to run "the example's own head" on precomputed
  features (gather per example, partition by task, all heads then pick)

The task models come from examples/04_many_heads/make_tasks.py (text backbone with an embedding of
``--buckets`` hashed tokens). Every model is served through a ``tf.compat.v1`` session on the
SavedModel loaded with ``tf.compat.v1.saved_model.load`` (``session.make_callable``), as a C++
server would run it; timings interleave the models, median of repeats.

    python benchmarks/heads_bench.py [--tasks 200] [--buckets 32768] [--quick]
"""
import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples", "04_many_heads"))

import make_tasks  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from graphsurgeon._src.multihead.merge import merge_heads  # noqa: E402

tf1 = tf.compat.v1


def dir_bytes(path, skip=(".meta",)):
    """Bytes of a SavedModel as a server loads it: saved_model.pb and variables/ (not variables.meta)."""
    total = os.path.getsize(os.path.join(path, "saved_model.pb"))
    var = os.path.join(path, "variables")
    return total + sum(os.path.getsize(os.path.join(var, f)) for f in os.listdir(var) if not f.endswith(skip))


def tree_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def save_saved_model(sess, graph, path, inputs, outputs):
    with graph.as_default():
        b = tf1.saved_model.Builder(path)
        sig = tf1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
        b.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
        b.save()


def separate_saved_model(prefix, path):
    """A task model (checkpoint + meta graph) as its own SavedModel: text -> probabilities."""
    g = tf.Graph()
    with tf1.Session(graph=g) as s:
        with g.as_default():
            tf1.train.import_meta_graph(prefix + ".meta").restore(s, prefix)
        save_saved_model(s, g, path, {"inputs": g.get_tensor_by_name("text:0")},
                         {"probabilities": g.get_tensor_by_name("head/probabilities:0")})


def all_heads_model(prefixes, buckets, path):
    """The seed answer's structure: one backbone, every head computed, one output per task."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.string, [None], name="text")
        feats = make_tasks.backbone(x, buckets)
        outs, heads = {}, []
        for t in range(len(prefixes)):
            r = tf.train.load_checkpoint(prefixes[t])
            k, b = r.get_tensor("head/logits/kernel"), r.get_tensor("head/logits/bias")
            logits = make_tasks._dense(feats, k.shape[1], f"task_{t:03d}")
            outs[f"task_{t:03d}"] = tf.nn.softmax(logits)
            heads.append((k, b))
        with tf1.Session(graph=g) as s:
            r0 = tf.train.load_checkpoint(prefixes[0])
            for v in tf1.global_variables():
                name = v.op.name
                if name.startswith("encoder/"):
                    v.load(r0.get_tensor(name), s)
                else:
                    t = int(name.split("/")[0][5:])
                    v.load(heads[t][0] if name.endswith("kernel") else heads[t][1], s)
            save_saved_model(s, g, path, {"inputs": x}, outs)


class Served:
    """A SavedModel in its own session; ``call(feeds)`` runs its serving_default signature."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.sess = tf1.Session(graph=self.graph, config=tf1.ConfigProto(intra_op_parallelism_threads=2,
                                                                         inter_op_parallelism_threads=2))
        with self.graph.as_default():
            meta = tf1.saved_model.load(self.sess, ["serve"], path)
        sig = meta.signature_def["serving_default"]
        self.keys = sorted(sig.inputs)
        feeds = [self.graph.get_tensor_by_name(sig.inputs[k].name) for k in self.keys]
        fetches = [self.graph.get_tensor_by_name(sig.outputs[k].name) for k in sorted(sig.outputs)]
        self.call = self.sess.make_callable(fetches, feeds)


def per_call(model, requests, repeats):
    """Median seconds per call over ``repeats`` passes of ``requests`` (lists of feed values)."""
    out = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        for r in requests:
            model.call(*r)
        out.append((time.perf_counter() - t) / len(requests))
    return out


def interleaved(models: dict, requests: dict, rounds: int, repeats: int = 1) -> dict:
    times = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            times[k] += per_call(m, requests[k], repeats)
    return {k: statistics.median(v) for k, v in times.items()}


def load_test(model, texts, ids, threads=8, per_thread=5000):
    """``threads`` threads, ``per_thread`` single-example requests each, mixed tasks; returns latencies and errors."""
    lat, errors, lock = [], [], threading.Lock()
    want = model.expected

    def worker(k):
        rng = np.random.default_rng(k)
        mine = []
        for _ in range(per_thread):
            t = int(rng.integers(len(ids)))
            start = time.perf_counter()
            try:
                out = model.call(np.array([texts[t]], object), np.array([ids[t]], np.int64))
                ok = int(out[2][0]) == want[t]  # num_classes of the requested task
            except Exception as e:  # noqa: BLE001 - every failure counts
                ok = False
                with lock:
                    errors.append(repr(e)[:200])
            mine.append(time.perf_counter() - start)
            if not ok and len(errors) < 1000:
                with lock:
                    errors.append(f"task {ids[t]}: wrong num_classes")
        with lock:
            lat.extend(mine)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return np.array(lat), errors, time.perf_counter() - t0


def design_graphs(T, F, C, B_max=256):
    """Three head-only graphs on features [B, F] and task ids [B] over T heads of C classes."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(T, F, C)).astype(np.float32)
    out = {}
    for kind in ("gather", "partition", "all"):
        g = tf.Graph()
        with g.as_default():
            f = tf1.placeholder(tf.float32, [None, F])
            ids = tf1.placeholder(tf.int32, [None])
            W = tf1.get_variable("w", initializer=tf.constant(w), use_resource=True)
            if kind == "gather":
                y = tf.squeeze(tf.matmul(f[:, None, :], tf.gather(W, ids)), 1)
            elif kind == "partition":
                parts = tf.dynamic_partition(f, ids, T)
                idx = tf.dynamic_partition(tf.range(tf.shape(f)[0]), ids, T)
                y = tf.dynamic_stitch(idx, [tf.matmul(parts[t], W[t]) for t in range(T)])
            else:
                every = tf.einsum("bf,tfc->btc", f, W)
                y = tf.gather(every, ids, axis=1, batch_dims=1)
            sess = tf1.Session(graph=g)
            sess.run(tf1.global_variables_initializer())
        m = Served.__new__(Served)
        m.call = sess.make_callable(y, [f, ids])
        out[kind] = m
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--buckets", type=int, default=32768)
    p.add_argument("--quick", action="store_true", help="fewer repeats and load requests (a smoke run)")
    args = p.parse_args(argv)
    T, rounds = args.tasks, 3 if args.quick else 7
    per_thread = 300 if args.quick else 5000
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        t0 = time.perf_counter()
        make_tasks.main([d, "--tasks", str(T), "--buckets", str(args.buckets)])
        prefixes = [tf.train.latest_checkpoint(os.path.join(d, "tasks", f"task_{t:03d}")) for t in range(T)]
        print(f"made {T} task models in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        merged = merge_heads([os.path.join(d, "tasks")], "encoder/features", os.path.join(d, "merged", "1"))
        print(f"merge-heads: {time.perf_counter() - t0:.1f} s for {T} models (verified: max |Δ| "
              f"{merged.max_abs_diff:.2g})")
        one = merge_heads([prefixes[0]], "encoder/features", os.path.join(d, "one", "1"))
        all_heads_model(prefixes, args.buckets, os.path.join(d, "all_heads"))
        own0 = os.path.join(d, "own_000")
        separate_saved_model(prefixes[0], own0)
        sizes = bytes_figures(d, merged, prefixes, own0)
        models = {"merged": Served(merged.directory), "one": Served(one.directory),
                  "all_heads": Served(os.path.join(d, "all_heads")), "own": Served(own0)}
        latency_and_throughput(d, models, T, rounds)
        design(T, rounds)
        queries = [line.split("\t") for line in open(os.path.join(d, "queries.txt"), encoding="utf-8")]
        texts, ids = [q[1] for q in queries], [int(q[0]) for q in queries]
        models["merged"].expected = [t["num_classes"] for t in merged.tasks]
        models["merged"].call(np.array(texts[:1], object), np.array(ids[:1], np.int64))
        lat, errors, wall = load_test(models["merged"], texts, ids, per_thread=per_thread)
        print(f"load: 8 threads x {per_thread} requests = {len(lat)} in {wall:.1f} s ({len(lat) / wall:.0f} req/s); "
              f"errors {len(errors)}; latency p50 {np.percentile(lat, 50) * 1e3:.2f} ms, "
              f"p99 {np.percentile(lat, 99) * 1e3:.2f} ms")
        for e in errors[:3]:
            print("  error:", e)
        del sizes


def bytes_figures(d, merged, prefixes, own0):
    b = merged.bytes
    sm = dir_bytes(merged.directory)
    base = b["backbone"] + b["heads"]
    separate = 0
    for t, prefix in enumerate(prefixes):  # each written, measured, removed
        path = os.path.join(d, "separate")
        separate_saved_model(prefix, path)
        separate += dir_bytes(path)
        shutil.rmtree(path)
    all_heads = dir_bytes(os.path.join(d, "all_heads"))
    print(f"weights: backbone {b['backbone']:,} B + {len(prefixes)} heads {b['heads']:,} B = {base:,} B")
    print(f"bytes ÷ (backbone + Σ heads): merged SavedModel {sm:,} B = {sm / base:.4f}  (whole directory with "
          f"tasks.json, parts/, variables.meta: {tree_bytes(merged.directory):,} B = "
          f"{tree_bytes(merged.directory) / base:.4f}); {len(prefixes)} separate SavedModels {separate:,} B = "
          f"{separate / base:.1f}; all-heads multi-output model {all_heads:,} B = {all_heads / base:.4f}; "
          f"one task's own SavedModel {dir_bytes(own0):,} B")
    return sm, separate, all_heads


def latency_and_throughput(d, models, T, rounds):
    queries = [line.split("\t") for line in open(os.path.join(d, "queries.txt"), encoding="utf-8")]
    texts = [q[1] for q in queries]
    rng = np.random.default_rng(0)
    picks = rng.integers(0, T, 200)
    single = {"merged": [(np.array([texts[t]], object), np.array([t], np.int64)) for t in picks],
              "one": [(np.array([texts[t]], object), np.array([0], np.int64)) for t in picks],
              "all_heads": [(np.array([texts[t]], object),) for t in picks],
              "own": [(np.array([texts[t]], object),) for t in picks]}
    for k, m in models.items():  # warm up: the first runs optimize the graph
        for r in single[k][:20]:
            m.call(*r)
    lat = interleaved(models, single, rounds)
    print("latency of one single-example request (median of medians, ms): " + ", ".join(
        f"{k} {v * 1e3:.3f}" for k, v in lat.items()))
    print(f"  200-head ÷ 1-head merged = {lat['merged'] / lat['one']:.3f}; all-heads ÷ 1-head merged = "
          f"{lat['all_heads'] / lat['one']:.2f}; 200-head merged ÷ the task's own SavedModel = "
          f"{lat['merged'] / lat['own']:.3f}")
    batch = np.array([texts[t] for t in rng.integers(0, T, 256)], object)
    mixed = rng.permutation(np.arange(256) % T).astype(np.int64)
    runs = {"mixed": models["merged"], "single": models["merged"], "all_heads": models["all_heads"]}
    reqs = {"mixed": [(batch, mixed)] * 5, "single": [(batch, np.full(256, 7, np.int64))] * 5,
            "all_heads": [(batch,)] * 5}
    for k in runs:
        runs[k].call(*reqs[k][0])
    thr = {k: 256 / v for k, v in interleaved_keys(runs, reqs, rounds).items()}
    print(f"throughput, batch of 256 (examples/s): mixing all {T} tasks {thr['mixed']:.0f}, one task "
          f"{thr['single']:.0f}, all-heads model {thr['all_heads']:.0f}; mixed ÷ single = "
          f"{thr['mixed'] / thr['single']:.3f}")


def interleaved_keys(runs, reqs, rounds):
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, m in runs.items():
            times[k] += per_call(m, reqs[k], 1)
    return {k: statistics.median(v) for k, v in times.items()}


def design(T, rounds):
    """Head-only cost on precomputed features: the three ways to run each example's own head."""
    F, C = make_tasks.FEATURES, 5
    graphs = design_graphs(T, F, C)
    rng = np.random.default_rng(1)
    f1, f256 = rng.normal(size=(1, F)).astype(np.float32), rng.normal(size=(256, F)).astype(np.float32)
    one = [(f1, np.array([int(t)], np.int32)) for t in rng.integers(0, T, 200)]
    mixed = [(f256, rng.permutation(np.arange(256) % T).astype(np.int32))] * 20
    for m in graphs.values():
        m.call(*one[0])
        m.call(*mixed[0])
    lat = interleaved(graphs, {k: one for k in graphs}, rounds)
    thr = interleaved(graphs, {k: mixed for k in graphs}, rounds)
    print(f"design, heads only ({T} heads of {F}x{C}), one example (µs): " + ", ".join(
        f"{k} {v * 1e6:.0f}" for k, v in lat.items()) + "; batch of 256 mixed (µs): " + ", ".join(
        f"{k} {v * 1e6:.0f}" for k, v in thr.items()))


if __name__ == "__main__":
    main()
