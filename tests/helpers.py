"""What the tests share: the repository root, the two ways to run the command line (in this
process, or as a user's shell runs it), checkpoint and file-tree snapshots, and checkpoints written by
TensorFlow's own SaveV2, and how long a call stalls other threads."""
import hashlib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(capfd, *args):
    """``(exit status, stdout, stderr)`` of ``graphsurgeon ARGS`` run in this process."""
    from graphsurgeon._src.cli import main

    capfd.readouterr()  # drop what came before
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def run_cli(*args, cwd=None):
    """``graphsurgeon ARGS`` as a new process (``python -m graphsurgeon``), output captured."""
    return subprocess.run([sys.executable, "-m", "graphsurgeon", *[str(a) for a in args]], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "PYTHONPATH": ROOT})


def ckpt(prefix):
    """``{name: ndarray}`` of every tensor of a checkpoint."""
    import tensorflow as tf

    r = tf.train.load_checkpoint(prefix)
    return {n: r.get_tensor(n) for n in r.get_variable_to_shape_map()}


def half_checkpoint(prefix, path, name="hidden1/weights"):
    """A copy of checkpoint ``prefix`` at ``path`` with ``name`` stored as float16 (the same names;
    the meta graph copied beside it, so its variable stays float32). Returns the new prefix."""
    import shutil

    import numpy as np
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        vs = [tf1.Variable(v.astype(np.float16) if n == name else v, name=n) for n, v in ckpt(prefix).items()]
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            half = tf1.train.Saver(vs).save(s, str(path), write_meta_graph=False)
    shutil.copy(prefix + ".meta", half + ".meta")
    return half


def tree_hash(path):
    """sha256 of every file under ``path`` (or of the files of a prefix), to prove nothing changed."""
    h = {}
    base = path if os.path.isdir(path) else os.path.dirname(path)
    for root, _, names in os.walk(base):
        for n in sorted(names):
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                h[os.path.relpath(p, base)] = hashlib.sha256(f.read()).hexdigest()
    return h


def save_v2(prefix, values):
    """A checkpoint of ``values`` ({name: array}) written by TensorFlow's own SaveV2; returns ``prefix``."""
    import tensorflow as tf

    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(values), shape_and_slices=[""] * len(values),
                      tensors=[tf.constant(v) for v in values.values()])
    return prefix


def longest_stall(call, times=3):
    """``(longest gap, shortest call)``: the longest time a spinning thread went without running
    while ``call()`` ran ``times`` times one after another (a call that holds the GIL throughout
    stalls the spinner for about as long as it runs), and the shortest of those calls, in seconds."""
    import threading
    import time

    state = {"stop": False, "gap": 0.0, "started": threading.Event()}

    def spin():
        last = time.perf_counter()
        state["started"].set()
        while not state["stop"]:
            now = time.perf_counter()
            state["gap"], last = max(state["gap"], now - last), now

    t = threading.Thread(target=spin)
    t.start()
    state["started"].wait()
    time.sleep(0.02)
    state["gap"], took = 0.0, []
    for _ in range(times):
        start = time.perf_counter()
        call()
        took.append(time.perf_counter() - start)
    state["stop"] = True
    t.join()
    return state["gap"], min(took)
