"""Checkpoint migration on a >= 500 MB checkpoint (TF-Slim vgg_16, 553 MB), measured side by side in one run.

Interleaved repeats, medians, ratios of medians:

* cast every tensor to float16 (verified, fsync'd) ÷ ``cp`` of the data file, both with the
  source's data file dropped from the page cache (cold: ``posix_fadvise(DONTNEED)`` after an
  ``fsync``) and both with it read into the page cache just before (warm)        goal <= 2
* rename every tensor (verified) ÷ warm ``cp``                                   goal <= 0.2
* the disk's share: the bytes the cast writes (half the data file), written alone from memory as
  the cast's writer writes them (its stage size, stages and I/O threads: 8 MiB direct-I/O writes,
  two in flight) and fsync'd, ÷ warm ``cp``; and
  the warm cast ÷ that write                                                     no goal
* CPU steal while each step is timed (the share of the machine's CPU ticks, from ``/proc/stat``, that the
  hypervisor gave to others: a VM's host taking CPU slows the cast, which needs it, far more than ``cp``),
  medians                                                                          no goal
* the same cast of a checkpoint of many small tensors (TF-Slim inception_v3: 388 tensors, 104 MB, 365 of
  them under 1 MiB) ÷ warm ``cp`` of its data file, and without verification (``verify="none"``):
  what each tensor costs beside its bytes                                         no goal
* peak RSS (VmHWM of a fresh process) of the cast, beside TensorFlow alone (a fresh process that
  imports TensorFlow and graphsurgeon and opens the checkpoint) and the migration guide's
  load-everything ``convert_tf1_to_tf2``                                goal: TF + largest tensor + 150 MB

``cp`` is ``shutil.copyfile`` (copy_file_range / sendfile in the kernel) without fsync; the
migration fsyncs what it writes, so ``cp`` + fsync is printed too. Both are timed in this process
(TensorFlow already imported, no process start): a cast is one ``migrate()`` call, from opening
the source to the rename into place (each makes its own buffers). Dirty pages are flushed
(``os.sync``) outside every timing so one step's write-back does not land in the next.

    python benchmarks/migrate_bench.py [--repeats 5] [--checkpoint PREFIX] [--many PREFIX]
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

CHILD = r"""
import os, sys, time
sys.path.insert(0, {root!r})
import tensorflow as tf
from graphsurgeon._src.migrate import Rules, migrate
mode, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
if mode == "cast":
    migrate(src, dst, Rules(cast=[("re:.*", "float16")]))
elif mode == "tf-alone":  # what the process costs before any tensor is read
    tf.train.load_checkpoint(src)
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


def cache(path, warm):
    """Put ``path`` in the page cache (read it) or drop it from there."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if warm:
            while os.read(fd, 1 << 24):
                pass
        else:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def cpu_ticks():
    """``(steal, all)``: the machine's CPU ticks the hypervisor gave to others while this VM wanted them, and all
    ticks, from the first line of /proc/stat (Linux); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (ticks[7] if len(ticks) > 7 else 0), sum(ticks[:8])


def steal_pct(before, after):
    """Percent of the CPU ticks between two :func:`cpu_ticks` that were stolen (None without /proc/stat)."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return 100 * (after[0] - before[0]) / (after[1] - before[1])


def fsynced_copy(a, b):
    shutil.copyfile(a, b)
    fd = os.open(b, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def durable_write(path, size):
    """Write ``size`` bytes (rounded up to whole stages) as the cast's writer does: its stage size, number
    of stages and I/O threads (``DataWriter``), with direct I/O where the file system takes it, then
    fsync: what the cast's writing costs the disk alone."""
    from concurrent.futures import ThreadPoolExecutor

    from graphsurgeon._src.storage.bundle_data import DataWriter, _open_direct
    from graphsurgeon._src.storage.pages import aligned

    block, n = DataWriter.STAGE_BYTES, DataWriter.STAGES
    buffers = [aligned(block, populate=True) for _ in range(n)]
    for i, b in enumerate(buffers):
        b[:] = i + 1
    open(path, "xb").close()
    fd = _open_direct(path)
    fd = os.open(path, os.O_WRONLY) if fd is None else fd
    try:
        with ThreadPoolExecutor(DataWriter.IO_THREADS) as pool:
            list(pool.map(lambda i: os.pwrite(fd, buffers[i % n], i * block), range(-(-size // block))))
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(prefix):
    for f in glob.glob(prefix + "*"):
        os.remove(f)


def measure(prefix, data, d, repeats):
    from graphsurgeon._src.migrate import Rules, migrate

    steps = {
        "cp": lambda k: shutil.copyfile(data, os.path.join(d, f"copy{k}")),
        "cp+fsync": lambda k: fsynced_copy(data, os.path.join(d, f"copy{k}")),
        "cast": lambda k: migrate(prefix, os.path.join(d, f"half{k}"), Rules(cast=[("re:.*", "float16")])),
        "rename": lambda k: migrate(prefix, os.path.join(d, f"renamed{k}"), Rules(presets=["strip-scope=vgg_16"])),
        "write alone": lambda k: durable_write(os.path.join(d, f"written{k}"), os.path.getsize(data) // 2),
    }
    times = {f"{name} {temp}": [] for name in steps for temp in ("cold", "warm")}
    steal = {k: [] for k in times}
    for k in range(repeats):
        for temp in ("cold", "warm"):
            for name, step in steps.items():
                if name in ("rename", "write alone") and temp == "cold":
                    continue
                os.sync()
                cache(data, warm=temp == "warm")
                before = cpu_ticks()
                times[f"{name} {temp}"].append(timed(step, k))
                steal[f"{name} {temp}"].append(steal_pct(before, cpu_ticks()))
                for p in ("copy", "half", "renamed", "written"):
                    remove(os.path.join(d, f"{p}{k}"))
    medians = {k: statistics.median(v) for k, v in times.items() if v}
    stolen = {k: statistics.median(v) for k, v in steal.items() if v and None not in v}
    return medians, stolen


def measure_many(prefix, data, d, repeats):
    """Warm ``cp`` and the float16 cast (verified, and not) of a checkpoint of many tensors, interleaved; medians."""
    from graphsurgeon._src.migrate import Rules, migrate

    rules = Rules(cast=[("re:.*", "float16")])
    steps = {"cp": lambda k: shutil.copyfile(data, os.path.join(d, f"mcopy{k}")),
             "cast": lambda k: migrate(prefix, os.path.join(d, f"mhalf{k}"), rules),
             "cast unverified": lambda k: migrate(prefix, os.path.join(d, f"mraw{k}"), rules, verify="none")}
    times = {name: [] for name in steps}
    for k in range(repeats):
        for name, step in steps.items():
            os.sync()
            cache(data, warm=True)
            times[name].append(timed(step, k))
            for p in ("mcopy", "mhalf", "mraw"):
                remove(os.path.join(d, f"{p}{k}"))
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", help="an existing vgg_16 checkpoint prefix (default: build one)")
    ap.add_argument("--many", help="an existing TF-Slim inception_v3 checkpoint prefix (default: build one)")
    args = ap.parse_args()
    from legacy_models import slim_inception_v3, slim_vgg_16

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        prefix = args.checkpoint or slim_vgg_16(d)
        data = glob.glob(prefix + ".data-*")[0]
        size_mb = os.path.getsize(data) / 2**20
        m, stolen = measure(prefix, data, d, args.repeats)
        print(f"vgg_16 checkpoint: data file {size_mb:.0f} MB; medians of {args.repeats} interleaved runs")
        for k, v in m.items():
            print(f"  {k:<16} {v:.3f} s")
        cold, warm = m["cast cold"] / m["cp cold"], m["cast warm"] / m["cp warm"]
        print(f"  cast to float16 ÷ cp: cold {cold:.2f}x, warm {warm:.2f}x (goal <= 2); "
              f"÷ cp+fsync: cold {m['cast cold'] / m['cp+fsync cold']:.2f}x, warm {m['cast warm'] / m['cp+fsync warm']:.2f}x")
        print(f"  rename every tensor ÷ warm cp: {m['rename warm'] / m['cp warm']:.3f}x (goal <= 0.2)")
        print(f"  the disk's share: {size_mb / 2:.0f} MB written alone with direct I/O and fsync'd ÷ warm cp: "
              f"{m['write alone warm'] / m['cp warm']:.2f}x; warm cast ÷ that write: "
              f"{m['cast warm'] / m['write alone warm']:.2f}x (no goal)")
        if stolen:
            print("  CPU steal (the host's share of this machine's CPU ticks) while timed, medians: " + ", ".join(
                f"{k} {stolen[k]:.0f}%" for k in ("cp warm", "write alone warm", "cast warm")) + " (no goal)")
        rss = {mode: child(mode, prefix, os.path.join(d, f"rss_{mode}", "ckpt"))[1] for mode in ("tf-alone", "cast")}
        t_guide, rss["guide"] = child("guide", prefix, os.path.join(d, "rss_guide", "ckpt"))
        largest = max(_sizes(prefix))
        print(f"  peak RSS of a fresh process: cast {rss['cast']:.0f} MB; TensorFlow alone {rss['tf-alone']:.0f} MB; "
              f"largest tensor {largest / 2**20:.0f} MB; goal <= {rss['tf-alone'] + largest / 2**20 + 150:.0f} MB; "
              f"migration guide's convert_tf1_to_tf2 {rss['guide']:.0f} MB ({t_guide:.1f} s)")
        with warnings.catch_warnings():  # tf-slim's layers are deprecated: not ours to report
            warnings.simplefilter("ignore")
            many = args.many or slim_inception_v3(os.path.join(d, "inception"))  # after the fresh processes:
        # it sets TF_USE_LEGACY_KERAS, which they would inherit
        many_data = glob.glob(many + ".data-*")[0]
        _, entries = _index(many)
        mm = measure_many(many, many_data, d, args.repeats)
        print(f"  many tensors (inception_v3: {len(entries)} tensors, {os.path.getsize(many_data) / 2**20:.0f} MB): "
              f"cp warm {mm['cp']:.3f} s, cast {mm['cast']:.3f} s = {mm['cast'] / mm['cp']:.1f}x, "
              f"unverified {mm['cast unverified']:.3f} s = {mm['cast unverified'] / mm['cp']:.1f}x (no goal)")
        print(json.dumps({"data_mb": size_mb, **{k.replace(" ", "_") + "_s": v for k, v in m.items()},
                          "cast_over_cp_cold": cold, "cast_over_cp_warm": warm,
                          "rename_over_cp_warm": m["rename warm"] / m["cp warm"],
                          "write_alone_over_cp_warm": m["write alone warm"] / m["cp warm"],
                          "steal_pct": {k.replace(" ", "_"): v for k, v in stolen.items()} or None,
                          "rss_mb": rss, "largest_tensor_mb": largest / 2**20,
                          "many": {"tensors": len(entries), **{k.replace(" ", "_") + "_s": v for k, v in mm.items()}}}))


def _index(prefix):
    from graphsurgeon._src.storage import bundle

    return bundle.read_index(prefix)


def _sizes(prefix):
    return [e.size for e in _index(prefix)[1].values()]


if __name__ == "__main__":
    main()
