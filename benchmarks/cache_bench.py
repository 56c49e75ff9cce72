"""Bottleneck cache benchmarks; every ratio is measured against its baseline in the same run.

1. Generation throughput ÷ a plain batched ``sess.run`` of the same subgraph on the same data
   (slim inception_v3; both include restoring the model).            goal >= 0.95
2. Generation ÷ a retrain.py-style generator (two ``sess.run`` per example, one text file of
   comma-joined floats per example), seed 004's MLP, 100k examples.     goal >= 20x
   (the retrain.py style is timed on a slice and compared by throughput; inception too)
3. One training epoch of a new head from the cache ÷ the same head on the same activations
   held in RAM (goal >= 0.8); ÷ retrain.py-style reading and parsing a text file per sample
   per step (goal >= 50x); ÷ running the frozen layers every step.
4. Peak RSS while training one epoch from a cache several times larger than a memory budget.

    python benchmarks/cache_bench.py [--quick] [--only 4] [--dir DIR]

``--only`` runs some measurements (comma-separated; 3 runs 2 first, whose cache it reads);
``--dir`` keeps measurement 4's cache there and reuses it when it is already complete.
"""
import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import graphsurgeon as gs  # noqa: E402
from graphsurgeon._src import train  # noqa: E402
from graphsurgeon._src.cache import CacheReader, generate  # noqa: E402

tf1 = tf.compat.v1


def timed(fn):
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# ---- 1. generation vs plain batched sess.run ------------------------------------------------

def plain_batched_run(prefix, tensor, npz, batch_size):
    """The baseline: restore with Saver, load the same .npz, one sess.run per batch, keep the outputs."""
    g = tf.Graph()
    with g.as_default():
        saver = tf1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
        t = g.get_tensor_by_name(tensor + ":0")
        inp = g.get_tensor_by_name("input:0")
        with tf1.Session(graph=g) as s:
            saver.restore(s, prefix)
            x = np.load(npz)["x"]
            return np.concatenate([s.run(t, {inp: x[i:i + batch_size]}) for i in range(0, len(x), batch_size)])


def bench_generation_inception(d, n_small, n_big, size, batch_size):
    """End to end at ``n_big`` images, and throughput as the marginal rate between ``n_small`` and
    ``n_big`` images (what each extra image costs), for both sides."""
    from legacy_models import slim_inception_v3

    prefix = slim_inception_v3(d, size=size)
    x = np.random.default_rng(0).uniform(-1, 1, size=(n_big, size, size, 3)).astype(np.float32)
    paths = {}
    for n in (n_small, n_big):
        paths[n] = os.path.join(d, f"x{n}.npz")
        np.savez(paths[n], x=x[:n], y=np.zeros(n, np.int64))
    tensor = "InceptionV3/InceptionV3/Mixed_7c/concat"
    plain_batched_run(prefix, tensor, paths[n_small], batch_size)  # warm-up
    times = {}
    for n in (n_small, n_big):
        tb, tg = [], []
        for k in range(2):
            tb.append(timed(lambda: plain_batched_run(prefix, tensor, paths[n], batch_size))[0])
            out = os.path.join(d, f"cache{n}_{k}")
            tg.append(timed(lambda: generate(prefix, tensor, paths[n], out, batch_size=batch_size, progress=False))[0])
        times[n] = (min(tb), min(tg))
    (b0, g0), (b1, g1) = times[n_small], times[n_big]
    return {"examples": n_big, "size": size, "plain_s": b1, "graphsurgeon_s": g1, "end_to_end_ratio": b1 / g1,
            "plain_marginal_ex_per_s": (n_big - n_small) / (b1 - b0),
            "graphsurgeon_marginal_ex_per_s": (n_big - n_small) / (g1 - g0),
            "throughput_ratio": (b1 - b0) / (g1 - g0), "fixed_overhead_s": (g0 - b0),
            "prefix": prefix, "tensor": tensor, "npz": paths[n_big]}


# ---- 2. generation vs retrain.py style ------------------------------------------------------

def retrain_py_style_generate(prefix, input_name, tensor, x, out_dir, preprocess="Identity"):
    """retrain.py's cache_bottlenecks: per example, one sess.run to prepare the input and one for the
    bottleneck, then the values written as one comma-joined text file."""
    os.makedirs(out_dir, exist_ok=True)
    g = tf.Graph()
    with g.as_default():
        saver = tf1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
        inp = g.get_tensor_by_name(input_name)
        t = g.get_tensor_by_name(tensor)
        raw = tf1.placeholder(tf.float32, inp.shape)
        prepared = tf.identity(raw)
        with tf1.Session(graph=g) as s:
            saver.restore(s, prefix)
            for i in range(len(x)):
                v = s.run(prepared, {raw: x[i:i + 1]})
                b = s.run(t, {inp: v})
                with open(os.path.join(out_dir, f"{i}.txt"), "w") as f:
                    f.write(",".join(str(val) for val in np.squeeze(b)))


def bench_generation_vs_retrain_py(d, n, slice_n):
    from legacy_models import seed004_mlp

    prefix, _, _ = seed004_mlp(os.path.join(d, "mlp"))
    x = np.random.default_rng(0).normal(size=(n, 500)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(os.path.join(d, "mlp.npz"), x=x, y=y)
    t_gs, _ = timed(lambda: generate(prefix, "hidden2/Relu", os.path.join(d, "mlp.npz"), os.path.join(d, "mlp_cache"),
                                     batch_size=256, progress=False))
    t_rp, _ = timed(lambda: retrain_py_style_generate(prefix, "X:0", "hidden2/Relu:0", x[:slice_n],
                                                      os.path.join(d, "mlp_txt")))
    rate_gs, rate_rp = n / t_gs, slice_n / t_rp
    return {"examples": n, "graphsurgeon_s": t_gs, "graphsurgeon_ex_per_s": rate_gs,
            "retrain_py_slice": slice_n, "retrain_py_s": t_rp, "retrain_py_ex_per_s": rate_rp,
            "ratio": rate_gs / rate_rp, "prefix": prefix, "x": x, "y": y}


def bench_generation_vs_retrain_py_inception(gen, d, slice_n):
    x = np.load(gen["npz"])["x"][:slice_n]
    t_rp, _ = timed(lambda: retrain_py_style_generate(gen["prefix"], "input:0", gen["tensor"] + ":0", x,
                                                      os.path.join(d, "inc_txt")))
    rate_gs = gen["examples"] / gen["graphsurgeon_s"]
    return {"retrain_py_slice": slice_n, "retrain_py_ex_per_s": slice_n / t_rp, "graphsurgeon_ex_per_s": rate_gs,
            "ratio": rate_gs / (slice_n / t_rp)}


# ---- 3. one training epoch ------------------------------------------------------------------

def head_graph(prefix, batch_size):
    cfg = gs.RetrainConfig(model=prefix, head="hidden3/Relu:2", trainable=["hidden3"], batch_size=batch_size)
    setup = gs.build(cfg)
    m = setup.model
    with m.graph.as_default():
        labels = tf1.placeholder(tf.int64, [None])
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=setup.logits))
        before = set(tf1.global_variables())
        op = gs.build_train_op(loss, m.variables, {n: 1.0 for n in setup.plan.trainable}, lr=0.01)
        m.session.run([v.initializer for v in set(tf1.global_variables()) - before])
    return setup, m, labels, op


def bench_epoch(d, gen2, batch_size, slice_steps):
    prefix = gen2["prefix"]
    cache_dir = os.path.join(d, "mlp_cache")
    setup, m, labels, op = head_graph(prefix, batch_size)
    bott = m.tensor("hidden2/Relu")
    reader = CacheReader(cache_dir)
    rows = np.concatenate([reader.examples(s) for s in ("train", "validation", "test")])
    rows.sort()
    acts = reader.read(rows)  # the same activations in RAM
    labels_all = reader.labels()[rows]
    sess = m.session

    def from_cache():
        for xb, yb in reader.batches("train", batch_size, seed=0, epoch=0):
            sess.run(op, {bott: xb, labels: yb})
        return reader.count("train")

    train_rows = reader.examples("train")
    pos = {r: i for i, r in enumerate(rows)}
    idx_train = np.array([pos[r] for r in train_rows])

    def from_ram():
        xa, ya = acts[idx_train], labels_all[idx_train]
        for xb, yb in train.array_batches(xa, ya, batch_size, 0)(0):
            sess.run(op, {bott: xb, labels: yb})
        return len(ya)

    data = gs.load_data(os.path.join(d, "mlp.npz"))
    xl, yl = data.part("train")

    def live():
        for xb, yb in train.array_batches(xl, yl, batch_size, 0)(0):
            sess.run(op, {setup.input: xb, labels: yb})
        return len(yl)

    txt_dir = os.path.join(d, "mlp_txt")
    n_txt = len(os.listdir(txt_dir))

    def retrain_py_style():
        rng = np.random.default_rng(0)
        for _ in range(slice_steps):
            picks = rng.integers(0, n_txt, batch_size)
            xb = np.array([[float(v) for v in open(os.path.join(txt_dir, f"{i}.txt")).read().split(",")]
                           for i in picks], np.float32)
            sess.run(op, {bott: xb, labels: (xb[:, 0] > 0).astype(np.int64)})
        return slice_steps * batch_size

    from_cache(), from_ram()  # warm-up (first-run graph optimization)
    res = {}
    for name, fn in (("cache", from_cache), ("ram", from_ram), ("live", live), ("retrain_py", retrain_py_style)):
        best = None
        for _ in range(2 if name != "retrain_py" else 1):
            t, n = timed(fn)
            rate = n / t
            best = rate if best is None else max(best, rate)
        res[name + "_ex_per_s"] = best
    reader.close()
    m.close()
    res["cache_over_ram"] = res["cache_ex_per_s"] / res["ram_ex_per_s"]
    res["cache_over_retrain_py"] = res["cache_ex_per_s"] / res["retrain_py_ex_per_s"]
    res["cache_over_live"] = res["cache_ex_per_s"] / res["live_ex_per_s"]
    return res


def bench_epoch_wide(d, rows, width, batch_size, slice_steps):
    """A 2048-wide bottleneck (inception_v3's PreLogits width): cache vs RAM vs retrain.py style."""
    prefix = expand_model(d, width, "wide")
    x = np.random.default_rng(2).normal(size=(rows, 16)).astype(np.float32)
    np.savez(os.path.join(d, "wide.npz"), x=x, y=np.arange(rows) % 2, split=np.array(["train"] * rows))
    cache = os.path.join(d, "wide_cache")
    generate(prefix, "features", os.path.join(d, "wide.npz"), cache, batch_size=1024, progress=False)
    reader = CacheReader(cache)
    acts = reader.read(reader.examples("train"))
    labels_all = reader.labels("train")
    txt = os.path.join(d, "wide_txt")
    os.makedirs(txt)
    for i in range(min(rows, 2000)):
        with open(os.path.join(txt, f"{i}.txt"), "w") as f:
            f.write(",".join(str(v) for v in acts[i]))
    g = tf.Graph()
    with g.as_default():
        xb_t = tf1.placeholder(tf.float32, [None, width])
        yb_t = tf1.placeholder(tf.int64, [None])
        w = tf1.get_variable("w", [width, 2])
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb_t, logits=tf.matmul(xb_t, w)))
        op = tf1.train.GradientDescentOptimizer(0.01).minimize(loss)
        sess = tf1.Session(graph=g)
        sess.run(tf1.global_variables_initializer())

    def from_cache():
        for xb, yb in reader.batches("train", batch_size):
            sess.run(op, {xb_t: xb, yb_t: yb})
        return rows

    def from_ram():
        for xb, yb in train.array_batches(acts, labels_all, batch_size, 0)(0):
            sess.run(op, {xb_t: xb, yb_t: yb})
        return rows

    def retrain_py_style():
        rng = np.random.default_rng(0)
        for _ in range(slice_steps):
            picks = rng.integers(0, min(rows, 2000), batch_size)
            xb = np.array([[float(v) for v in open(os.path.join(txt, f"{i}.txt")).read().split(",")] for i in picks],
                          np.float32)
            sess.run(op, {xb_t: xb, yb_t: picks % 2})
        return slice_steps * batch_size

    from_cache(), from_ram()
    res = {}
    for name, fn in (("cache", from_cache), ("ram", from_ram), ("retrain_py", retrain_py_style)):
        t, n = timed(fn)
        res[name + "_ex_per_s"] = n / t
    reader.close()
    sess.close()
    res["cache_over_ram"] = res["cache_ex_per_s"] / res["ram_ex_per_s"]
    res["cache_over_retrain_py"] = res["cache_ex_per_s"] / res["retrain_py_ex_per_s"]
    return res


def expand_model(d, width, name):
    """A frozen layer 16 -> ``width`` (ReLU) saved with Saver: a stand-in bottleneck of any width."""
    g = tf.Graph()
    with g.as_default():
        X = tf1.placeholder(tf.float32, [None, 16], name="X")
        with tf1.variable_scope("expand", use_resource=False):
            w = tf1.get_variable("weights", [16, width], initializer=tf1.glorot_uniform_initializer(seed=0))
        tf.nn.relu(tf.matmul(X, w), name="features")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(d, name, "m.ckpt"))


# ---- 4. peak RSS ----------------------------------------------------------------------------

RSS_CHILD = r"""
import json, os, sys
sys.path.insert(0, {root!r})
import numpy as np, tensorflow as tf
from graphsurgeon._src.cache import CacheReader
tf1 = tf.compat.v1
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
width = {width}
g = tf.Graph()
with g.as_default():
    x = tf1.placeholder(tf.float32, [None, width]); y = tf1.placeholder(tf.int64, [None])
    w = tf1.get_variable("w", [width, 2]); loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.matmul(x, w)))
    op = tf1.train.GradientDescentOptimizer(0.01).minimize(loss)
    s = tf1.Session(graph=g); s.run(tf1.global_variables_initializer())
s.run(op, {{x: np.zeros((256, width), np.float32), y: np.zeros(256, np.int64)}})
before = round(rss_mb(), 1)  # TensorFlow, the graph and a session that has run a step
reader = CacheReader({cache!r}, verify=False, buffer_bytes={buffer})
n = reader.count("train"); samples = []; seen = 0; top = 0.0
for xb, yb in reader.batches("train", 256):
    s.run(op, {{x: xb, y: yb % 2}}); seen += len(yb)
    top = max(top, rss_mb())
    if len(samples) < 10 and seen >= (len(samples) + 1) * n / 10:
        samples.append(round(rss_mb(), 1))
# (ru_maxrss is not used: Linux carries it over from the parent across fork and exec)
print(json.dumps({{"before_reader_mb": before, "samples_mb": samples, "max_during_epoch_mb": round(top, 1)}}))
"""


def bench_rss(d, rows, width, budget_mb):
    cache = os.path.join(d, "rss_cache")
    try:
        CacheReader(cache, verify=False).close()  # already built (--dir)
    except gs.CacheError:
        prefix = expand_model(d, width, "expand")
        x = np.random.default_rng(0).normal(size=(rows, 16)).astype(np.float32)
        np.savez(os.path.join(d, "rss.npz"), x=x, y=np.arange(rows) % 2)
        generate(prefix, "features", os.path.join(d, "rss.npz"), cache, batch_size=4096, shard_size=32768,
                 progress=False)
    size_mb = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache)) / 2**20
    child = RSS_CHILD.format(root=os.path.join(HERE, ".."), cache=cache, width=width, buffer=budget_mb << 20)
    p = subprocess.run([sys.executable, "-c", child],
                       capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out.update({"cache_mb": size_mb, "budget_mb": budget_mb})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not the recorded figures)")
    ap.add_argument("--only", default="1,2,3,4", help="measurements to run, comma-separated (3 runs 2 first)")
    ap.add_argument("--dir", help="where to keep measurement 4's cache (reused when complete)")
    args = ap.parse_args()
    q, only = args.quick, {int(k) for k in args.only.split(",")}
    report = {}
    with tempfile.TemporaryDirectory() as d:
        if 1 in only or 2 in only:
            gen = bench_generation_inception(d, n_small=16 if q else 32, n_big=48 if q else 160,
                                             size=107 if q else 299, batch_size=16 if q else 32)
            print(f"1. generation, inception_v3 {gen['size']}x{gen['size']}, Mixed_7c: throughput (marginal rate) "
                  f"plain batched sess.run {gen['plain_marginal_ex_per_s']:.1f} ex/s, graphsurgeon cache "
                  f"{gen['graphsurgeon_marginal_ex_per_s']:.1f} ex/s -> ratio {gen['throughput_ratio']:.2f} "
                  "(goal >= 0.95)")
            print(f"   end to end at {gen['examples']} images: {gen['plain_s']:.2f} s vs {gen['graphsurgeon_s']:.2f} s "
                  f"(ratio {gen['end_to_end_ratio']:.2f}; fixed overhead {gen['fixed_overhead_s']:.2f} s: restore, "
                  "fingerprint, atomic writes)")
            report["generation"] = gen
        if 2 in only or 3 in only:
            gen2 = bench_generation_vs_retrain_py(d, n=10000 if q else 100000, slice_n=500 if q else 3000)
            print(f"2. generation, seed 004 MLP hidden2, {gen2['examples']} examples: graphsurgeon "
                  f"{gen2['graphsurgeon_ex_per_s']:.0f} ex/s, retrain.py style {gen2['retrain_py_ex_per_s']:.0f} ex/s "
                  f"(timed on {gen2['retrain_py_slice']}) -> {gen2['ratio']:.0f}x (goal >= 20x)")
            report["vs_retrain_py"] = gen2
        if 2 in only:
            inc = bench_generation_vs_retrain_py_inception(gen, d, slice_n=8 if q else 24)
            print(f"   inception_v3: graphsurgeon {inc['graphsurgeon_ex_per_s']:.1f} ex/s, retrain.py style "
                  f"{inc['retrain_py_ex_per_s']:.1f} ex/s -> {inc['ratio']:.1f}x")
            report["vs_retrain_py_inception"] = inc
        if 3 in only:
            ep = bench_epoch(d, gen2, batch_size=256, slice_steps=4 if q else 20)
            print(f"3. one epoch, new head + hidden3 on hidden2 activations: cache {ep['cache_ex_per_s']:.0f} ex/s, "
                  f"RAM {ep['ram_ex_per_s']:.0f} ex/s, live frozen layers {ep['live_ex_per_s']:.0f} ex/s, "
                  f"retrain.py style {ep['retrain_py_ex_per_s']:.0f} ex/s")
            print(f"   cache/RAM {ep['cache_over_ram']:.2f} (goal >= 0.8), cache/retrain.py "
                  f"{ep['cache_over_retrain_py']:.0f}x (goal >= 50x), cache/live {ep['cache_over_live']:.2f}x")
            wide = bench_epoch_wide(d, rows=5000 if q else 50000, width=2048, batch_size=256,
                                    slice_steps=2 if q else 8)
            print(f"   2048-wide bottleneck (inception PreLogits width): cache {wide['cache_ex_per_s']:.0f} ex/s, RAM "
                  f"{wide['ram_ex_per_s']:.0f} ex/s, retrain.py style {wide['retrain_py_ex_per_s']:.0f} ex/s -> "
                  f"cache/RAM {wide['cache_over_ram']:.2f}, cache/retrain.py {wide['cache_over_retrain_py']:.0f}x")
            report["epoch"], report["epoch_2048"] = ep, wide
        if 4 in only:
            if args.dir:
                os.makedirs(args.dir, exist_ok=True)
            rss = bench_rss(args.dir or d, rows=20000 if q else 400000, width=1024, budget_mb=256)
            growth = rss["max_during_epoch_mb"] - rss["before_reader_mb"]
            print(f"4. one epoch from a {rss['cache_mb']:.0f} MB cache with a reader buffer (memory budget) of "
                  f"{rss['budget_mb']} MB: RSS before opening it {rss['before_reader_mb']} MB (TensorFlow, graph, "
                  f"session), at each tenth of the epoch {rss['samples_mb']} MB; highest growth (sampled every batch) "
                  f"{growth:.0f} MB")
            report["rss"] = rss
    report = {k: {a: b for a, b in v.items() if isinstance(b, (int, float, str, list))} for k, v in report.items()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
