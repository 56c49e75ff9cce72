"""Checkpoint migration on a >= 500 MB checkpoint (TF-Slim vgg_16, 553 MB), measured in one run.

* rename-only (every tensor renamed) ÷ ``cp`` of its data file          goal <= 0.2
* cast to float16 ÷ ``cp`` of its data file                              goal <= 2
* peak RSS of the cast beside the migration guide's load-everything approach
  (``convert_tf1_to_tf2``: a ``tf.Variable`` per tensor, then ``tf.train.Checkpoint.save``),
  each in a fresh process (VmHWM of that process).

    python benchmarks/migrate_bench.py
"""
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, ROOT)

CHILD = r"""
import os, sys, time
sys.path.insert(0, {root!r})
import tensorflow as tf
mode, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
if mode == "graphsurgeon-cast":
    from graphsurgeon._src.migrate import Rules, migrate
    migrate(src, dst, Rules(cast=[("re:.*", "float16")]))
elif mode == "graphsurgeon-rename":
    from graphsurgeon._src.migrate import Rules, migrate
    migrate(src, dst, Rules(presets=["strip-scope=vgg_16"]))
elif mode == "guide":  # the TF migration guide's convert_tf1_to_tf2
    reader = tf.train.load_checkpoint(src)
    variables = {{k: tf.Variable(reader.get_tensor(k)) for k in reader.get_variable_to_dtype_map()}}
    tf.train.Checkpoint(vars=variables).save(dst)
elapsed = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(elapsed, int(hwm) / 1024)
"""


def child(mode, src, dst):
    p = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT), mode, src, dst], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(p.stderr[-3000:])
    t, hwm = p.stdout.strip().splitlines()[-1].split()
    return float(t), float(hwm)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    from legacy_models import slim_vgg_16

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        prefix = slim_vgg_16(d)
        data = glob.glob(prefix + ".data-*")[0]
        size_mb = os.path.getsize(data) / 2**20
        from graphsurgeon._src.migrate import Rules, migrate

        cp, rename, cast = [], [], []
        for k in range(3):
            cp.append(timed(lambda: shutil.copyfile(data, os.path.join(d, f"copy{k}"))))
            os.remove(os.path.join(d, f"copy{k}"))
            rename.append(timed(lambda: migrate(prefix, os.path.join(d, f"renamed{k}"),
                                                Rules(presets=["strip-scope=vgg_16"]))))
            cast.append(timed(lambda: migrate(prefix, os.path.join(d, f"half{k}"), Rules(cast=[("re:.*", "float16")]))))
            for f in glob.glob(os.path.join(d, f"half{k}*")):
                os.remove(f)
        c, r, h = statistics.median(cp), statistics.median(rename), statistics.median(cast)
        print(f"vgg_16 checkpoint: data file {size_mb:.0f} MB; medians of 3 interleaved runs")
        print(f"  cp of the data file             {c:.3f} s")
        print(f"  rename every tensor (verified)  {r:.3f} s   -> {r / c:.3f} x cp (goal <= 0.2)")
        print(f"  cast all to float16 (verified)  {h:.3f} s   -> {h / c:.2f} x cp (goal <= 2)")
        t_gs, rss_gs = child("graphsurgeon-cast", prefix, os.path.join(d, "rss_half"))
        t_guide, rss_guide = child("guide", prefix, os.path.join(d, "rss_guide", "ckpt"))
        print(f"  peak RSS, cast to float16 in a fresh process: graphsurgeon {rss_gs:.0f} MB ({t_gs:.1f} s); "
              f"migration guide's load-everything convert_tf1_to_tf2 {rss_guide:.0f} MB ({t_guide:.1f} s)")
        print(json.dumps({"data_mb": size_mb, "cp_s": c, "rename_s": r, "cast_s": h, "rename_over_cp": r / c,
                          "cast_over_cp": h / c, "rss_graphsurgeon_mb": rss_gs, "rss_guide_mb": rss_guide}))


if __name__ == "__main__":
    main()
