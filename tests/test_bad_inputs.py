"""The bad-input corpus (issue 8): malformed checkpoints, graphs, data, caches, plan files and flags.

Every malformed input is generated here from small valid ones (a legacy MLP and a conv net saved
with ``tf.train.Saver``, a two-shard checkpoint, a frozen GraphDef, a TF1 SavedModel, an ``.npz``,
an image folder, a TFRecord file, a cache made by ``graphsurgeon cache``, a TOML plan file) and run,
in process, against every command that reads that kind of input. For each run:

* the exit status is 2 and stdout is empty;
* stderr is exactly one line, ``graphsurgeon CMD: error: ...``, with no traceback and not the
  "graphsurgeon bug" fallback, naming the file, tensor or flag at fault (``needle``);
* every file, directory and symlink under the test's root is as it was (sha256 of each file),
  except under the command's output path, where a failed command leaves nothing.

``test_pristine_inputs_work`` runs the same command lines on the undamaged inputs (exit 0), so a
case fails only because of its damage. A few cases also run as real subprocesses, with TensorFlow's
start-up noise on (no ``TF_CPP_MIN_LOG_LEVEL``), to prove the one-line contract end to end.

"A label folder named ``../x``": a directory entry cannot contain ``/`` on POSIX, so the equivalent
cases are a class folder that is a symlink to ``../x`` (outside the image folder; refused), and a
cache manifest whose shard entries name ``../x`` files (refused before anything is read or removed).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from graphsurgeon._src.cli import main
from graphsurgeon._src.storage import bundle
from graphsurgeon._src.storage.imagefolders import list_image_folder

from helpers import ROOT
from legacy_models import fully_connected, tiny_convnet

tf1 = tf.compat.v1
NON_UTF8 = os.fsdecode(b"m\xffodel")  # a file name with a byte that is not UTF-8


# ---- the valid inputs -------------------------------------------------------------------------

def tiny_mlp(directory, seed=1, sharded=False):
    """X[8] -> hidden1 6 -> hidden2 4 -> output 3, saved with Saver as ``directory/model.ckpt-1`` (+ .meta and
    the ``checkpoint`` state file). ``sharded``: hidden2 and output on a second CPU device, so ``Saver(sharded=True)``
    writes two data shards."""
    os.makedirs(directory, exist_ok=True)
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(seed)
        x = tf1.placeholder(tf.float32, (None, 8), name="X")
        with tf1.variable_scope("", initializer=tf1.glorot_uniform_initializer(seed=seed)):
            with tf1.device("/cpu:0"):
                h1 = fully_connected(x, 6, "hidden1")
            with tf1.device("/cpu:1" if sharded else "/cpu:0"):
                h2 = fully_connected(h1, 4, "hidden2")
                fully_connected(h2, 3, "output", activation=None)
            with tf1.device("/cpu:0"):
                tf1.train.get_or_create_global_step()
        saver = tf1.train.Saver(sharded=sharded)
        with tf1.Session(config=tf1.ConfigProto(device_count={"CPU": 2})) as s:
            s.run(tf1.global_variables_initializer())
            for v in tf1.trainable_variables():  # distinct values per seed (biases start at zero)
                s.run(v.assign_add(tf.fill(tf.shape(v), 0.01 * seed)))
            prefix = saver.save(s, os.path.join(directory, "model.ckpt"), global_step=1)
            frozen = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["output/BiasAdd"])
    return prefix, frozen


def saved_model(directory):
    """The MLP as a TF1 SavedModel (tag ``serve``)."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, (None, 8), name="X")
        h1 = fully_connected(x, 6, "hidden1")
        h2 = fully_connected(h1, 4, "hidden2")
        y = fully_connected(h2, 3, "output", activation=None)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            b = tf1.saved_model.Builder(directory)
            sig = tf1.saved_model.signature_def_utils.predict_signature_def({"x": x}, {"y": y})
            b.add_meta_graph_and_variables(s, ["serve"], signature_def_map={"serving_default": sig})
            b.save()


def png(value, size=(8, 8)):
    return tf.io.encode_png(np.full(size + (3,), value, np.uint8)).numpy()


def example(image, label):
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Every valid input, built once; cases copy what they damage. Hashed again at the end: no command
    ever touched them."""
    from graphsurgeon._src.cache import generate

    d = str(tmp_path_factory.mktemp("pristine"))
    p = {"dir": d}
    p["model"], frozen = tiny_mlp(os.path.join(d, "model"))
    p["other"], _ = tiny_mlp(os.path.join(d, "other"), seed=2)
    p["sharded"], _ = tiny_mlp(os.path.join(d, "sharded"), sharded=True)
    assert os.path.exists(p["sharded"] + ".data-00001-of-00002")
    p["frozen"] = os.path.join(d, "frozen.pb")
    with open(p["frozen"], "wb") as f:
        f.write(frozen.SerializeToString())
    p["saved_model"] = os.path.join(d, "saved_model")
    saved_model(p["saved_model"])
    p["conv"] = tiny_convnet(os.path.join(d, "conv"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    p["npz"] = os.path.join(d, "data.npz")
    np.savez(p["npz"], x=x, y=(x[:, 0] > 0).astype(np.int64))
    p["photos"] = os.path.join(d, "photos")
    for c, v in (("blue", 40), ("red", 200)):
        os.makedirs(os.path.join(p["photos"], c))
        for i in range(4):
            with open(os.path.join(p["photos"], c, f"{c}{i}.png"), "wb") as f:
                f.write(png(v + 5 * i))
    p["tfrecord"] = os.path.join(d, "images.tfrecord")
    with tf.io.TFRecordWriter(p["tfrecord"]) as w:
        for i in range(6):
            w.write(example(png(30 * i), i % 2))
    p["cache"] = os.path.join(d, "cache")
    generate(p["model"], "hidden1/Relu", p["npz"], p["cache"], shard_size=16, progress=False)
    assert len(read_json(os.path.join(p["cache"], "manifest.json"))["shards"]) >= 3  # shards hold one split each
    p["plan"] = os.path.join(d, "plan.toml")
    with open(p["plan"], "w") as f:
        f.write(f'model = "{p["model"]}"\nhead = "hidden2/Relu:2"\ntrainable = ["hidden2"]\nepochs = 1\n')
    before = snapshot(d)
    yield p
    assert snapshot(d) == before, "a command changed a pristine input"


# ---- file system snapshots ----------------------------------------------------------------------

def snapshot(root):
    """``{relative path: what it is}`` for everything under ``root``: directories, symlinks (their target,
    never followed, so loops are fine) and files (sha256 of their bytes)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("symlink", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir")
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", hashlib.sha256(f.read()).hexdigest())
    return out


# ---- ways to damage a file ------------------------------------------------------------------------

def flip(path, offset, bits=0x10):
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(offset % size)
        b = f.read(1)[0]
        f.seek(offset % size)
        f.write(bytes([b ^ bits]))


def truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size if size >= 0 else os.fstat(f.fileno()).st_size + size)


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def find(path, needle: bytes, after=0):
    with open(path, "rb") as f:
        i = f.read().find(needle, after)
    assert i >= 0, (path, needle)
    return i


def edit_index(prefix, fn):
    """Rewrite ``prefix.index`` through ``fn(header, entries)`` (a well-formed table with bad contents)."""
    header, entries = bundle.read_index(prefix)
    fn(header, entries)
    os.remove(prefix + ".index")
    bundle.write_index(prefix + ".index", header, entries)


def footer_index_handle_offset(index_path):
    """Offset of the index block handle's first byte in the table footer."""
    with open(index_path, "rb") as f:
        data = f.read()
    i = len(data) - 48
    for _ in range(2):  # skip the meta-index handle's two varints
        while data[i] & 0x80:
            i += 1
        i += 1
    return i


def save_tensors(prefix, values):
    """A V2 checkpoint holding ``values`` (``{name: ndarray}``), written by TensorFlow's SaveV2."""
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])


def read_all(prefix):
    r = tf.train.load_checkpoint(prefix)
    return {n: r.get_tensor(n) for n in r.get_variable_to_shape_map()}


# ---- the corpus -------------------------------------------------------------------------------------

# Command lines per kind of input: what reads a checkpoint's index, its values, a graph file, data, a cache
# or a plan file. {model} {data} {out} {other} {cache} {plan} {conv} are filled in per case.
MLP_DATA = ["--data", "{data}", "--out", "{out}"]
COMMANDS = {
    "checkpoint": {
        "inspect": ["inspect", "{model}"],
        "plan": ["plan", "--model", "{model}", "--head", "hidden2/Relu:2"],
        "cache": ["cache", "--model", "{model}", "--cut", "hidden2/Relu", *MLP_DATA, "--quiet"],
        "retrain": ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", *MLP_DATA, "--epochs", "1", "--quiet"],
        "migrate": ["migrate", "{model}", "{out}/migrated.ckpt"],
        "diff": ["diff", "{model}", "{other}"],
    },
    # damage that only shows when tensor values are read (inspect and plan read names and shapes only;
    # a rename-only migrate hard-links the data bytes): the commands that read values
    "values": {
        "cache": ["cache", "--model", "{model}", "--cut", "hidden2/Relu", *MLP_DATA, "--quiet"],
        "retrain": ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", *MLP_DATA, "--epochs", "1", "--quiet"],
        "migrate": ["migrate", "{model}", "{out}/migrated.ckpt", "--cast", "hidden1=float16", "hidden2=float16"],
        "diff": ["diff", "{model}", "{other}"],
    },
    # values a model cannot be used with (NaN): the commands that compute with them
    "compute": {
        "cache": ["cache", "--model", "{model}", "--cut", "hidden2/Relu", *MLP_DATA, "--quiet"],
        "retrain": ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", *MLP_DATA, "--epochs", "1", "--quiet"],
    },
    # graph files (.meta, frozen .pb, saved_model.pb): migrate and diff read only checkpoints
    "graph": {
        "inspect": ["inspect", "{model}"],
        "plan": ["plan", "--model", "{model}", "--head", "hidden2/Relu:2"],
        "cache": ["cache", "--model", "{model}", "--cut", "hidden2/Relu", *MLP_DATA, "--quiet"],
        "retrain": ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", *MLP_DATA, "--epochs", "1", "--quiet"],
    },
    "npz": {
        "cache": ["cache", "--model", "{model}", "--cut", "hidden2/Relu", *MLP_DATA, "--quiet"],
        "retrain": ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", *MLP_DATA, "--epochs", "1", "--quiet"],
    },
    "npz-labels": {  # labels only retrain can judge (the number of classes comes from the head)
        "retrain": ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", *MLP_DATA, "--epochs", "1", "--quiet"],
    },
    "images": {
        "cache": ["cache", "--model", "{conv}", "--cut", "pool", *MLP_DATA, "--quiet"],
        "retrain": ["retrain", "--model", "{conv}", "--head", "pool:2", *MLP_DATA, "--epochs", "1", "--quiet"],
    },
    "tfrecord": {  # retrain reads .npz and image folders; cache also reads TFRecords
        "cache": ["cache", "--model", "{conv}", "--cut", "pool", *MLP_DATA, "--quiet"],
    },
    "cache": {
        "retrain": ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", "--trainable", "hidden2",
                    "--cache", "{cache}", "--out", "{out}", "--epochs", "1", "--quiet"],
        "cache": ["cache", "--model", "{model}", "--cut", "hidden1/Relu", "--data", "{data}", "--out", "{cache}",
                  "--shard-size", "16", "--quiet"],
        "cache-repair": ["cache", "--model", "{model}", "--cut", "hidden1/Relu", "--data", "{data}", "--out",
                         "{cache}", "--shard-size", "16", "--quiet", "--repair"],
    },
    "feed": {  # an .npy file given as a --feed value
        "plan": ["plan", "--model", "{model}", "--head", "hidden2/Relu:2", "--feed", "X={feed}"],
        "cache": ["cache", "--model", "{model}", "--cut", "hidden2/Relu", "--feed", "X={feed}", *MLP_DATA, "--quiet"],
    },
    "toml": {
        "plan": ["plan", "--plan", "{plan}"],
        "retrain": ["retrain", "--plan", "{plan}", *MLP_DATA, "--quiet"],
    },
}


@dataclasses.dataclass
class Case:
    """One malformed input: ``make(root, pristine)`` builds it under ``root/in`` and returns the
    substitutions of the command templates; ``needle`` (a regex) must occur in the error line."""

    id: str
    kind: str
    make: object
    needle: str
    commands: tuple = ()  # a subset of the kind's commands; empty: all of them


def copy(p, key, root, name=None):
    """Copy pristine input ``key`` under ``root/in``; returns the new path (a prefix for checkpoints)."""
    src = p[key]
    dst_dir = os.path.join(root, "in")
    os.makedirs(dst_dir, exist_ok=True)
    if key in ("model", "other", "sharded", "conv"):
        # a checkpoint: its directory (prefix files, .meta, state file)
        d = os.path.join(dst_dir, name or key)
        shutil.copytree(os.path.dirname(src), d)
        return os.path.join(d, os.path.basename(src))
    dst = os.path.join(dst_dir, name or os.path.basename(src))
    (shutil.copytree if os.path.isdir(src) else shutil.copyfile)(src, dst)
    return dst


def subs(p, root, **kw):
    base = {"model": p["model"], "other": p["other"], "data": p["npz"], "conv": p["conv"], "cache": p["cache"],
            "plan": p["plan"], "out": os.path.join(root, "out")}
    base.update(kw)
    return base


CASES: list[Case] = []


def case(id, kind, needle, commands=()):
    def deco(fn):
        CASES.append(Case(id, kind, fn, needle, tuple(commands)))
        return fn
    return deco


# -- checkpoint index ---------------------------------------------------------------------------------

def _index_case(id, damage, needle=r"model\.ckpt-1\.index"):
    @case(id, "checkpoint", needle)
    def make(root, p):
        m = copy(p, "model", root)
        damage(m + ".index", m)
        return subs(p, root, model=m)


_index_case("index-zero-bytes", lambda f, m: truncate(f, 0))
_index_case("index-truncated-to-10-bytes", lambda f, m: truncate(f, 10))
_index_case("index-truncated-to-half", lambda f, m: truncate(f, os.path.getsize(f) // 2))
_index_case("index-last-byte-cut", lambda f, m: truncate(f, -1))
_index_case("index-wrong-magic", lambda f, m: flip(f, -3, 0xFF))
_index_case("index-not-a-table", lambda f, m: write(f, "model_checkpoint_path: nothing here\n" * 4))
_index_case("index-bitflip-tensor-name", lambda f, m: flip(f, find(f, b"biases") + 2))
_index_case("index-bitflip-entry-value", lambda f, m: flip(f, find(f, b"weights") + 9, 0x01))
_index_case("index-bitflip-block-checksum", lambda f, m: flip(f, find(f, b"weights") - 40, 0x80))
_index_case("index-bitflip-footer-handle", lambda f, m: flip(f, footer_index_handle_offset(f), 0x04))
_index_case("index-bitflip-index-block", lambda f, m: flip(f, -48 - 8, 0x02))


def _entry_case(id, fn, needle):
    _index_case(id, lambda f, m: edit_index(m, fn), needle)


def _huge_shape(h, e):
    w = e["hidden1/weights"]
    del w.shape.dim[:]
    w.shape.dim.add(size=2 ** 40)  # 4 TiB of float32 declared; the entry still holds 192 bytes


def _huge_consistent(h, e):
    w = e["hidden1/weights"]
    del w.shape.dim[:]
    w.shape.dim.add(size=2 ** 40)
    w.size = 4 * 2 ** 40  # a consistent entry, far past the end of the data file


def _set(name, **fields):
    def fn(h, e):
        for k, v in fields.items():
            setattr(e[name], k, v)
    return fn


def _negative_dim(h, e):
    e["hidden1/biases"].shape.dim[0].size = -6


def _non_utf8_name(h, e):
    e[os.fsdecode(b"hidden1/w\xffeights")] = e.pop("hidden1/weights")


def _header(**fields):
    def fn(h, e):
        for k, v in fields.items():
            setattr(h, k, v)
    return fn


_entry_case("index-huge-declared-shape", _huge_shape, r"hidden1/weights.*\[1099511627776\]")
_entry_case("index-huge-shape-past-data-end", _huge_consistent, r"data-00000-of-00001: tensor 'hidden1/weights' lies at")
_entry_case("index-negative-dimension", _negative_dim, r"hidden1/biases.*-6")
_entry_case("index-size-not-dtype-times-shape", _set("hidden2/weights", size=20), r"hidden2/weights")
_entry_case("index-offset-past-data-end", _set("output/biases", offset=10 ** 6), r"output/biases")
_entry_case("index-shard-id-out-of-range", _set("hidden1/biases", shard_id=3), r"hidden1/biases.*shard")
_entry_case("index-unknown-dtype", _set("hidden2/biases", dtype=999), r"hidden2/biases.*dtype")
_entry_case("index-reference-dtype", _set("hidden2/biases", dtype=101), r"hidden2/biases.*dtype")
_entry_case("index-non-utf8-tensor-name", _non_utf8_name, r"UTF-8")
_entry_case("index-header-5-shards", _header(num_shards=5), r"data-00000-of-00005")
_entry_case("index-header-big-endian", _header(endianness=1), r"endian")


@case("index-huge-string-tensor", "checkpoint", r"'notes' declares 1099511627776 strings")
def _(root, p):
    """A string tensor declaring 2**40 elements over a few bytes (TensorFlow would allocate them all)."""
    m = copy(p, "model", root)
    values = read_all(m)
    values["notes"] = np.array([b"trained", b"2017"])
    for f in (m + ".index", m + ".data-00000-of-00001"):
        os.remove(f)
    save_tensors(m, values)
    edit_index(m, lambda h, e: (e["notes"].shape.dim[0].__setattr__("size", 2 ** 40)))
    return subs(p, root, model=m)


# -- data files ------------------------------------------------------------------------------------------

def _data_case(id, damage, needle, key="model", kind="checkpoint"):
    @case(id, kind, needle)
    def make(root, p):
        m = copy(p, key, root)
        damage(m)
        return subs(p, root, model=m)


def _entry_offset(prefix, name):
    _, entries = bundle.read_index(prefix)
    return entries[name].offset


_data_case("data-truncated", lambda m: truncate(m + ".data-00000-of-00001", 100), r"data-00000-of-00001")
_data_case("data-zero-bytes", lambda m: truncate(m + ".data-00000-of-00001", 0), r"data-00000-of-00001")
_data_case("data-missing", lambda m: os.remove(m + ".data-00000-of-00001"), r"data-00000-of-00001.*missing")
_data_case("shard-1-of-2-missing", lambda m: os.remove(m + ".data-00001-of-00002"), r"data-00001-of-00002.*missing",
           key="sharded")
_data_case("shard-0-of-2-truncated", lambda m: truncate(m + ".data-00000-of-00002", 7), r"data-00000-of-00002",
           key="sharded")
_data_case("data-bitflip-hidden1-weights",
           lambda m: flip(m + ".data-00000-of-00001", _entry_offset(m, "hidden1/weights") + 17),
           r"hidden1/weights.*data-00000-of-00001|data-00000-of-00001.*hidden1/weights", kind="values")
_data_case("data-bitflip-hidden2-biases",
           lambda m: flip(m + ".data-00000-of-00001", _entry_offset(m, "hidden2/biases") + 3, 0x01),
           r"hidden2/biases", kind="values")
_data_case("shard-1-of-2-bitflip",
           lambda m: flip(m + ".data-00001-of-00002", _entry_offset(m, "hidden2/weights") + 5),
           r"data-00001-of-00002: (cannot read tensor|the bytes of tensor) 'hidden2/weights'", key="sharded", kind="values")


@case("nan-in-checkpoint-tensor", "compute", r"hidden1/weights.*NaN")
def _(root, p):
    m = copy(p, "model", root)
    values = read_all(m)
    values["hidden1/weights"][2, 3] = np.nan
    for f in (m + ".index", m + ".data-00000-of-00001"):
        os.remove(f)
    save_tensors(m, values)
    return subs(p, root, model=m)


@case("non-utf8-checkpoint-file-name", "checkpoint", r"UTF-8")
def _(root, p):
    m = copy(p, "model", root)
    d = os.path.dirname(m)
    bad = os.path.join(d, NON_UTF8 + ".ckpt-1")
    for f in os.listdir(d):
        if f.startswith("model.ckpt-1"):
            os.rename(os.path.join(d, f), bad + f[len("model.ckpt-1"):])
    return subs(p, root, model=bad)


# -- graph files -------------------------------------------------------------------------------------------

def _graph_case(id, key, damage, needle, path_of=lambda x: x, commands=()):
    @case(id, "graph", needle, commands)
    def make(root, p):
        m = copy(p, key, root)
        damage(m)
        return subs(p, root, model=path_of(m))


_graph_case("meta-truncated", "model", lambda m: truncate(m + ".meta", os.path.getsize(m + ".meta") // 3), r"\.meta")
_graph_case("meta-garbage", "model", lambda m: write(m + ".meta", bytes(range(256)) * 8), r"\.meta")
_graph_case("meta-zero-bytes", "model", lambda m: truncate(m + ".meta", 0), r"\.meta")
_graph_case("meta-bitflip", "model", lambda m: flip(m + ".meta", find(m + ".meta", b"hidden1/MatMul") + 3, 0x80),
            r"\.meta")
_graph_case("frozen-pb-truncated", "frozen", lambda m: truncate(m, os.path.getsize(m) // 2), r"frozen\.pb")
_graph_case("frozen-pb-garbage", "frozen", lambda m: write(m, b"\xff" * 300), r"frozen\.pb")
_graph_case("pbtxt-bad-syntax", "frozen", lambda m: write(m[:-3] + ".pbtxt", 'node { name: "X" op: '),
            r"frozen\.pbtxt", path_of=lambda m: m[:-3] + ".pbtxt")
_graph_case("saved-model-pb-truncated", "saved_model",
            lambda m: truncate(os.path.join(m, "saved_model.pb"), 100), r"saved_model\.pb")
_graph_case("saved-model-pb-garbage", "saved_model",
            lambda m: write(os.path.join(m, "saved_model.pb"), b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 50),
            r"saved_model\.pb")
_graph_case("saved-model-without-variables", "saved_model",  # inspect reports such a graph, as a bare .meta
            lambda m: shutil.rmtree(os.path.join(m, "variables")), r"saved_model.*no checkpoint data",
            commands=("plan", "cache", "retrain"))
_graph_case("saved-model-variables-index-truncated", "saved_model",
            lambda m: truncate(os.path.join(m, "variables", "variables.index"), 30), r"variables\.index")


# -- the checkpoint state file --------------------------------------------------------------------------------

def _state_case(id, text, needle, elsewhere=False):
    @case(id, "checkpoint", needle)
    def make(root, p):
        m = copy(p, "model", root)
        d = os.path.dirname(m)
        if elsewhere:  # the checkpoint lives beside the directory, not in it
            other = os.path.join(root, "in", "elsewhere")
            os.makedirs(other)
            for f in os.listdir(d):
                if f.startswith("model.ckpt-1"):
                    os.rename(os.path.join(d, f), os.path.join(other, f))
        write(os.path.join(d, "checkpoint"), text(root) if callable(text) else text)
        return subs(p, root, model=d)


_state_case("state-points-outside-its-directory", 'model_checkpoint_path: "../elsewhere/model.ckpt-1"\n',
            r"checkpoint.*\.\./elsewhere/model\.ckpt-1", elsewhere=True)
_state_case("state-absolute-path-elsewhere",
            lambda root: f'model_checkpoint_path: "{os.path.join(root, "in", "elsewhere", "model.ckpt-1")}"\n',
            r"elsewhere/model\.ckpt-1", elsewhere=True)
_state_case("state-without-model-checkpoint-path", 'all_model_checkpoint_paths: "model.ckpt-1"\n',
            r"checkpoint: no model_checkpoint_path")
_state_case("state-binary-junk", bytes(range(256)) * 3, r"checkpoint")
_state_case("state-names-missing-checkpoint", 'model_checkpoint_path: "model.ckpt-99"\n', r"model\.ckpt-99")
_state_case("state-names-parent-directory", 'model_checkpoint_path: ".."\n', r"checkpoint.*'\.\.'")


# -- .npz data ---------------------------------------------------------------------------------------------------

def _npz_case(id, arrays, needle, kind="npz", raw=None):
    @case(id, kind, needle)
    def make(root, p):
        os.makedirs(os.path.join(root, "in"))
        path = os.path.join(root, "in", "bad.npz")
        if raw is not None:
            raw(path, p)
        else:
            np.savez(path, **arrays)
        return subs(p, root, data=path)


X = np.random.default_rng(1).normal(size=(12, 8)).astype(np.float32)
Y = np.arange(12) % 2


def _with(**kw):
    return {"x": X, "y": Y, **kw}


def _huge_npy_header(path, p):
    import zipfile

    header = {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40, 8)}
    with zipfile.ZipFile(path, "w") as z:
        with z.open("x.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(X.tobytes())
        with z.open("y.npy", "w") as f:
            np.lib.format.write_array(f, Y)


_npz_case("npz-empty", {}, r"bad\.npz: no array 'x'")
_npz_case("npz-zero-bytes", None, r"bad\.npz", raw=lambda path, p: write(path, b""))


@case("data-is-a-graph-file", "npz", r"data .*in/gan_dis\.pb: a model file \(a graph or a checkpoint\), not data; "
      r"expected an \.npz \(arrays x and y\)")
def _graph_as_data(root, p):  # a frozen graph given as --data (cache read it as a TFRecord file)
    os.makedirs(os.path.join(root, "in"))
    shutil.copyfile(p["frozen"], os.path.join(root, "in", "gan_dis.pb"))
    return subs(p, root, data=os.path.join(root, "in", "gan_dis.pb"))


_npz_case("npz-truncated", None, r"bad\.npz", raw=lambda path, p: (shutil.copyfile(p["npz"], path), truncate(path, 300)))
_npz_case("npz-not-a-zip", None, r"bad\.npz", raw=lambda path, p: write(path, "x,y\n1,2\n"))
_npz_case("npz-missing-x", {"y": Y}, r"bad\.npz: no array 'x'")
_npz_case("npz-missing-y", {"x": X}, r"bad\.npz: no array 'y'")
_npz_case("npz-length-mismatch", _with(y=Y[:7]), r"bad\.npz: x has 12 rows but y has 7")
_npz_case("npz-object-array", _with(x=np.array([X[0], "a", None], dtype=object), y=Y[:3]), r"bad\.npz.*pickle")
_npz_case("npz-zero-rows", _with(x=X[:0], y=Y[:0]), r"bad\.npz.*no examples")
_npz_case("npz-x-scalar", _with(x=np.float32(3.0)), r"bad\.npz.*x")
_npz_case("npz-x-wrong-width", _with(x=X[:, :5]), r"\[5\].*\[8\]")
_npz_case("npz-x-strings", _with(x=np.array([["a"] * 8] * 12)), r"bad\.npz.*x")
_npz_case("npz-nan-in-x", _with(x=np.where(np.arange(96).reshape(12, 8) == 43, np.nan, X)), r"bad\.npz.*NaN.*row 5")
_npz_case("npz-inf-in-x", _with(x=np.where(np.arange(96).reshape(12, 8) == 90, np.inf, X)), r"bad\.npz.*row 11")
_npz_case("npz-labels-float", _with(y=np.linspace(0, 1, 12)), r"bad\.npz: y must be")
_npz_case("npz-labels-negative", _with(y=Y - 1), r"bad\.npz.*-1")
_npz_case("npz-labels-2d", _with(y=Y[:, None]), r"bad\.npz: y must be")
_npz_case("npz-bad-split", _with(split=np.array(["training"] * 12)), r"bad\.npz: 'split'")
_npz_case("npz-huge-declared-shape", None, r"bad\.npz.*x", raw=_huge_npy_header)
_npz_case("npz-labels-out-of-range", _with(y=Y * 4), r"bad\.npz: labels range over 0\.\.4.*2 classes", kind="npz-labels")


# -- image folders -------------------------------------------------------------------------------------------------

def _images_case(id, damage, needle):
    @case(id, "images", needle)
    def make(root, p):
        d = copy(p, "photos", root)
        damage(d, root)
        return subs(p, root, data=d)


def _outside_class(d, root):  # a class folder '../x' (outside the image folder), linked in as class 'x'
    x = os.path.join(root, "in", "x")
    os.makedirs(x)
    write(os.path.join(x, "a.png"), png(9))
    os.symlink("../x", os.path.join(d, "x"))


def _outside_image(d, root):
    write(os.path.join(root, "in", "secret.png"), png(1))
    os.symlink("../../secret.png", os.path.join(d, "red", "z.png"))


_images_case("images-class-symlink-loop", lambda d, r: os.symlink("loopy", os.path.join(d, "loopy")), r"photos/loopy")
_images_case("images-class-symlink-to-root", lambda d, r: os.symlink(".", os.path.join(d, "again")), r"photos/again")
_images_case("images-class-symlink-to-class", lambda d, r: os.symlink("red", os.path.join(d, "red2")), r"red2.*red")
_images_case("images-class-outside-root", _outside_class, r"photos/x.*outside")
_images_case("images-image-symlink-loop", lambda d, r: os.symlink("x.png", os.path.join(d, "red", "x.png")),
             r"red/x\.png")
_images_case("images-dangling-class-symlink", lambda d, r: os.symlink("/nonexistent/cls", os.path.join(d, "gone")),
             r"photos/gone")
_images_case("images-dangling-image-symlink", lambda d, r: os.symlink("nope.png", os.path.join(d, "blue", "y.png")),
             r"blue/y\.png")
_images_case("images-image-outside-root", _outside_image, r"red/z\.png.*outside")
_images_case("images-non-utf8-class-name", lambda d, r: os.rename(os.path.join(d, "red"), os.path.join(d, NON_UTF8)),
             r"photos: the name of class folder b'm\\xffodel' is not UTF-8")
_images_case("images-undecodable", lambda d, r: write(os.path.join(d, "red", "bad.jpg"), b"\xff\xd8 not a jpeg"),
             r"red/bad\.jpg: cannot decode")
_images_case("images-zero-byte", lambda d, r: write(os.path.join(d, "blue", "empty.png"), b""), r"blue/empty\.png")
_images_case("images-truncated-png",
             lambda d, r: truncate(os.path.join(d, "red", "red0.png"), 40), r"red/red0\.png")
_images_case("images-no-class-folders", lambda d, r: [shutil.rmtree(os.path.join(d, c)) for c in ("red", "blue")],
             r"photos: no class sub-folders")
_images_case("images-class-without-images", lambda d, r: os.makedirs(os.path.join(d, "green")),
             r"photos/green: class folder holds no images")


# -- TFRecords ---------------------------------------------------------------------------------------------------------

def _tfrecord_case(id, records, needle, raw=None, name="bad.tfrecord"):
    @case(id, "tfrecord", needle)
    def make(root, p):
        os.makedirs(os.path.join(root, "in"))
        path = os.path.join(root, "in", name)
        if raw is not None:
            raw(path, p)
        else:
            with tf.io.TFRecordWriter(path) as w:
                for r in records:
                    w.write(r)
        return subs(p, root, data=path)


def _float_label():
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png(3)])),
        "image/class/label": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5])),
    })).SerializeToString()


_tfrecord_case("tfrecord-truncated", None, r"bad\.tfrecord",
               raw=lambda path, p: (shutil.copyfile(p["tfrecord"], path), truncate(path, -9)))
_tfrecord_case("tfrecord-bitflip", None, r"bad\.tfrecord",
               raw=lambda path, p: (shutil.copyfile(p["tfrecord"], path), flip(path, 60)))
_tfrecord_case("tfrecord-not-a-tfrecord", None, r"bad\.tfrecord: not a readable TFRecord file \(corrupted record at 0\); "
               r"expected an \.npz \(arrays x and y\), an image folder \(.*\) or TFRecord files of tf\.train\.Example$",
               raw=lambda path, p: write(path, bytes(range(256)) * 4))
_tfrecord_case("tfrecord-missing-features", [tf.train.Example().SerializeToString()], r"bad\.tfrecord record 0.*image/encoded")
_tfrecord_case("tfrecord-not-examples", [b"\x0a\xff\xff\xff garbage"], r"bad\.tfrecord record 0")
_tfrecord_case("tfrecord-float-label", [_float_label()], r"bad\.tfrecord record 0.*image/class/label")
_tfrecord_case("tfrecord-empty", [], r"bad\.tfrecord.*no records")
_tfrecord_case("tfrecord-undecodable-image", [example(b"not an image", 1)], r"bad\.tfrecord#0: cannot decode")


def _non_utf8_feature_name():
    """An Example whose features are the valid ones plus one named b"lab\\xffel" (protobuf refuses the record)."""
    good = tf.train.Example.FromString(example(png(3), 1)).features.feature
    entries = b""
    for key, feature in [(k.encode(), good[k]) for k in sorted(good)] + [(b"lab\xffel", good["image/class/label"])]:
        value = feature.SerializeToString()
        entry = _delimited(1, key) + _delimited(2, value)
        entries += _delimited(1, entry)
    return _delimited(1, entries)


def _delimited(field, data):
    """A length-delimited protobuf field (lengths below 2**14 here)."""
    n = len(data)
    length = bytes([n]) if n < 128 else bytes([n & 0x7F | 0x80, n >> 7])
    return bytes([field << 3 | 2]) + length + data


_tfrecord_case("tfrecord-non-utf8-feature-name", [_non_utf8_feature_name()],
               r"bad\.tfrecord record 0: feature name b'lab\\xffel' is not UTF-8")


# -- caches --------------------------------------------------------------------------------------------------------------

def _cache_case(id, damage, needle, commands=("retrain", "cache")):
    @case(id, "cache", needle, commands)
    def make(root, p):
        c = copy(p, "cache", root)
        damage(c, root)
        return subs(p, root, cache=c)


def _manifest(c, fn):
    path = os.path.join(c, "manifest.json")
    m = read_json(path)
    fn(m)
    write(path, json.dumps(m, sort_keys=True, indent=1))


def _replace_shard(c, array):
    """Shard 1 replaced by ``array``, the manifest's checksum and size updated to match (a consistent tamper)."""
    path = os.path.join(c, "shard-00001.npy")
    np.save(path, array)
    digest, size = sha256_of(path), os.path.getsize(path)
    _manifest(c, lambda m: m["shards"][1].update(sha256=digest, bytes=size))


def _replace_keys(c, n):
    """Shard 1's keys file cut to its first ``n`` keys, the manifest's checksum updated to match."""
    path = os.path.join(c, "shard-00001.keys.npy")
    np.save(path, np.load(path)[:n])
    digest = sha256_of(path)
    _manifest(c, lambda m: m["shards"][1].update(keys_sha256=digest))


def _shard_escape(c, root):
    write(os.path.join(root, "in", "victim.npy"), b"not yours")
    _manifest(c, lambda m: m["shards"][0].update(file="../victim.npy"))


def _index_offset(c, shard, field_offset):
    """Offset in the data set's index file of byte ``field_offset`` of the first example of ``shard``'s part."""
    ex = read_json(os.path.join(c, "manifest.json"))["examples"]
    part = next(p for p in ex["parts"] if p["shard"] == shard)
    path = os.path.join(c, ex["file"])
    return path, os.path.getsize(path) - ex["rows"] * 15 + part["start"] * 15 + field_offset


def _flip_label(c, root):
    """The label of shard 1's first example flipped (0 <-> 1) in the data set's index: a silent mislabel."""
    path, offset = _index_offset(c, 1, 10)  # example u4, copy u2, row u4, then label i4
    flip(path, offset, 0x01)


def _rewrite_index(c, edit):
    """The data set's index rewritten through ``edit(rows, parts) -> (rows, count per part)``, with the file's name
    and every checksum, row count, offset and split count of the manifest's table updated to match (a consistent
    tamper: only the sense of the index can tell)."""
    m = read_json(os.path.join(c, "manifest.json"))
    ex = m["examples"]
    rows, counts = edit(np.load(os.path.join(c, ex["file"])).copy(), ex["parts"])
    buf = io.BytesIO()
    np.save(buf, rows)
    raw = buf.getvalue()
    os.remove(os.path.join(c, ex["file"]))
    sha = hashlib.sha256(raw).hexdigest()
    ex.update(file=f"examples-{sha[:16]}.npy", sha256=sha, rows=len(rows))
    write(os.path.join(c, ex["file"]), raw)
    offset, start = len(raw) - rows.nbytes, 0
    for part, n in zip(ex["parts"], counts):
        part.update(start=start, count=n, splits=np.bincount(rows["split"][start:start + n], minlength=3).tolist(),
                    sha256=hashlib.sha256(raw[offset + start * 15:offset + (start + n) * 15]).hexdigest())
        start += n
    write(os.path.join(c, "manifest.json"), json.dumps(m, sort_keys=True, indent=1))


def _shorter_part(rows, parts):
    """Shard 0's part of the index loses its last 3 examples."""
    end = parts[0]["start"] + parts[0]["count"]
    keep = np.ones(len(rows), bool)
    keep[end - 3:end] = False
    return rows[keep], [p["count"] - 3 * (i == 0) for i, p in enumerate(parts)]


def _row_past_the_shard(rows, parts):
    """The first example of shard 1's part points at row 999 of a 16-row shard."""
    rows["row"][parts[1]["start"]] = 999
    return rows, [p["count"] for p in parts]


_cache_case("cache-manifest-truncated", lambda c, r: truncate(os.path.join(c, "manifest.json"), 50), r"manifest\.json")
_cache_case("cache-manifest-binary", lambda c, r: write(os.path.join(c, "manifest.json"), b"\x00\xff" * 40),
            r"manifest\.json")
_cache_case("cache-manifest-other-version", lambda c, r: _manifest(c, lambda m: m.update(version=99)), r"manifest\.json")
_cache_case("cache-manifest-no-fingerprint", lambda c, r: _manifest(c, lambda m: m.pop("fingerprint")),
            r"manifest\.json.*fingerprint")
_cache_case("cache-manifest-shards-not-a-list", lambda c, r: _manifest(c, lambda m: m.update(shards=5)),
            r"manifest\.json.*shards")
_cache_case("cache-manifest-shard-escapes", _shard_escape, r"manifest\.json.*\.\./victim\.npy")
_cache_case("cache-shard-missing", lambda c, r: os.remove(os.path.join(c, "shard-00001.npy")), r"shard-00001\.npy")
_cache_case("cache-shard-truncated", lambda c, r: truncate(os.path.join(c, "shard-00002.npy"), 90), r"shard-00002\.npy")
_cache_case("cache-shard-bitflip", lambda c, r: flip(os.path.join(c, "shard-00000.npy"), 200), r"shard-00000\.npy")
_cache_case("cache-shard-wrong-shape", lambda c, r: _replace_shard(c, np.zeros((16, 5), np.float32)),
            r"shard-00001\.npy \(holds float32 \[16, 5\], expected float32 \[16, 6\]\)")
_cache_case("cache-shard-wrong-dtype", lambda c, r: _replace_shard(c, np.zeros((16, 6), np.int64)),
            r"shard-00001\.npy \(holds int64 \[16, 6\], expected float32 \[16, 6\]\)")
# the data set's index (examples-*.npy): one part per shard, each example's shard row, label and split
_cache_case("cache-shard-index-tampered", _flip_label,
            r"examples-[0-9a-f]{16}\.npy: the index of shard 1 does not match its checksum; run the cache command "
            r"again with --repair")
_cache_case("cache-shard-index-wrong-length", lambda c, r: _rewrite_index(c, _shorter_part),
            r"examples-[0-9a-f]{16}\.npy: indexes 37 rows \(\[31, 5, 1\] of train, validation, test\); the data set "
            r"it indexes has 40 examples \(\[34, 5, 1\]\)")
_cache_case("cache-index-row-past-the-shard", lambda c, r: _rewrite_index(c, _row_past_the_shard),
            r"examples-[0-9a-f]{16}\.npy: the index of shard 1 holds row 999, not a row of its shard \(0\.\.15\)")
# the content keys matter only to a cache run (which rows are stored); retrain never reads them
_cache_case("cache-shard-keys-tampered", lambda c, r: flip(os.path.join(c, "shard-00001.keys.npy"), 300),
            r"shard-00001\.npy \(its keys file shard-00001\.keys\.npy does not match its checksum\)",
            commands=("cache",))
_cache_case("cache-shard-keys-wrong-length", lambda c, r: _replace_keys(c, 3),
            r"shard-00001\.npy \(its keys file shard-00001\.keys\.npy holds content keys \[3\], expected content "
            r"keys \[16\]\)", commands=("cache",))
_cache_case("cache-manifest-shard-escapes-repair", _shard_escape, r"manifest\.json.*\.\./victim\.npy",
            commands=("cache-repair",))


# -- .npy feed values ------------------------------------------------------------------------------------------------

def _feed_case(id, write_npy, needle):
    @case(id, "feed", needle)
    def make(root, p):
        os.makedirs(os.path.join(root, "in"))
        path = os.path.join(root, "in", "state.npy")
        write_npy(path)
        return subs(p, root, feed=path)


def _npy_huge_header(path):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40, 8)})
        f.write(np.zeros(16, np.float32).tobytes())


_feed_case("feed-npy-huge-declared-shape", _npy_huge_header, r"state\.npy: declares float32 \[1099511627776, 8\]")
_feed_case("feed-npy-object-array", lambda path: np.save(path, np.array([1, "a", None], dtype=object)),
           r"state\.npy: holds Python objects")
_feed_case("feed-npy-truncated", lambda path: (np.save(path, np.zeros((4, 8), np.float32)), truncate(path, 200)),
           r"state\.npy: declares float32 \[4, 8\]")


# -- TOML plan files --------------------------------------------------------------------------------------------------------

def _toml_case(id, text, needle):
    @case(id, "toml", needle)
    def make(root, p):
        os.makedirs(os.path.join(root, "in"))
        path = os.path.join(root, "in", "bad.toml")
        write(path, text(p) if callable(text) else text)
        return subs(p, root, plan=path)


_toml_case("toml-bad-syntax", 'model = "x\nhead = \n', r"bad\.toml: not valid TOML")
_toml_case("toml-unknown-key", lambda p: f'model = "{p["model"]}"\nhead = "hidden2/Relu:2"\nlearning_rate = 0.1\n',
           r"bad\.toml: unknown key learning_rate;")
_toml_case("toml-wrong-type", lambda p: f'model = "{p["model"]}"\nhead = "hidden2/Relu:2"\nepochs = "ten"\n',
           r"bad\.toml.*epochs")
_toml_case("toml-pattern-not-a-list", lambda p: f'model = "{p["model"]}"\nhead = "hidden2/Relu:2"\ntrainable = 3\n',
           r"bad\.toml.*trainable")
_toml_case("toml-not-utf8", b'model = "\xff\xfe"\n', r"bad\.toml")


# -- flags ----------------------------------------------------------------------------------------------------------------------

FLAG_CASES = [
    ("head-zero-classes", ["plan", "--model", "{model}", "--head", "hidden2/Relu:0"], r"head 'hidden2/Relu:0'"),
    ("head-x-colon-0", ["plan", "--model", "{model}", "--head", "x:0"], r"head 'x:0'"),
    ("feed-not-a-placeholder", ["plan", "--model", "{model}", "--head", "hidden2/Relu:2", "--feed", "a=b"],
     r"feed 'a=b'"),
    ("feed-without-value", ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", "--feed", "keep_prob",
                            *MLP_DATA], r"feed 'keep_prob'"),
    ("lr-mult-without-factor", ["plan", "--model", "{model}", "--head", "hidden2/Relu:2", "--lr-mult", "x"],
     r"multiplier 'x'"),
    ("lr-mult-not-a-number", ["plan", "--model", "{model}", "--head", "hidden2/Relu:2", "--lr-mult", "hidden2=fast"],
     r"multiplier 'hidden2=fast'"),
    ("unfreeze-malformed", ["plan", "--model", "{model}", "--head", "hidden2/Relu:2", "--unfreeze", "soon:hidden1"],
     r"unfreeze stage 'soon:hidden1'"),
    ("batch-size-zero", ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", "--batch-size", "0", *MLP_DATA],
     r"batch size"),
    ("epochs-negative", ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", "--epochs", "-1", *MLP_DATA],
     r"epochs"),
    ("lr-nan", ["retrain", "--model", "{model}", "--head", "hidden2/Relu:2", "--lr", "nan", *MLP_DATA], r"lr"),
    ("batch-size-not-int", ["cache", "--model", "{model}", "--cut", "hidden2/Relu", "--batch-size", "many",
                            *MLP_DATA], r"--batch-size"),
    ("cache-feed-missing-npy", ["cache", "--model", "{model}", "--cut", "hidden2/Relu", "--feed",
                                "X=/nonexistent/f.npy", *MLP_DATA], r"/nonexistent/f\.npy"),
    ("cache-shard-size-zero", ["cache", "--model", "{model}", "--cut", "hidden2/Relu", "--shard-size", "0",
                               *MLP_DATA], r"shard"),
    ("cache-unknown-tensor", ["cache", "--model", "{model}", "--cut", "hidden9/Relu", *MLP_DATA], r"hidden9"),
    ("migrate-bad-regex", ["migrate", "{model}", "{out}/m.ckpt", "--rename", "(=x"], r"--rename '\(=x'"),
    ("migrate-cast-to-int8", ["migrate", "{model}", "{out}/m.ckpt", "--cast", "hidden1=int8"], r"int8"),
    ("migrate-unknown-preset", ["migrate", "{model}", "{out}/m.ckpt", "--preset", "bogus"], r"--preset bogus: unknown preset"),
    ("input-not-in-graph", ["plan", "--model", "{model}", "--head", "hidden2/Relu:2", "--input", "nosuch:0"],
     r"nosuch"),
    # a reference variable is not a value a placeholder can stand for (its read tensor is)
    ("input-is-a-variable", ["plan", "--model", "{model}", "--head", "hidden2/Relu:2", "--input", "hidden1/weights:0"],
     r"'hidden1/weights:0' is a reference to variable state.*'hidden1/weights/read:0'"),
    ("cache-input-is-a-variable", ["cache", "--model", "{model}", "--cut", "hidden2/Relu", "--input",
                                   "hidden1/weights", *MLP_DATA], r"'hidden1/weights' is a reference to variable state"),
]


# ---- running a case -------------------------------------------------------------------------------------------------------

def fill(template, values):
    return [a.format(**values) for a in template]


def run_in_process(argv, capfd):
    capfd.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    out, err = capfd.readouterr()
    return rc, out, err


def check_one_line(rc, out, err, command, needle):
    assert rc == 2, f"exit status {rc}; stderr: {err!r}"
    assert out == "", f"stdout of a failed command: {out!r}"
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not exactly one line on stderr: {err!r}"
    line = err[:-1]
    assert line.startswith(f"graphsurgeon {command}: error: "), line
    assert "graphsurgeon bug" not in line, line
    assert re.search(needle, line), f"{needle!r} not in {line!r}"
    return line


def check_case(tmp_path, capfd, monkeypatch, values, template, command, needle, out_may_exist=False):
    root = str(tmp_path)
    cwd = os.path.join(root, "cwd")
    os.makedirs(cwd)
    monkeypatch.chdir(cwd)  # nothing may appear in the working directory either
    argv = fill(template, values)
    before = snapshot(root)
    rc, out, err = run_in_process(argv, capfd)
    line = check_one_line(rc, out, err, command.split("-")[0], needle)
    after = snapshot(root)
    out_dir = values["out"]
    rel_out = os.path.relpath(out_dir, root)
    outside = {k: v for k, v in after.items() if not (k == rel_out or k.startswith(rel_out + os.sep))}
    assert outside == before, f"files changed or appeared outside {out_dir}: " \
                              f"{sorted(set(outside.items()) ^ set(before.items()))}"
    if not out_may_exist:
        assert not os.path.lexists(out_dir), f"a failed command left {out_dir}: {os.listdir(out_dir)}"
    return line


CORPUS = [(c, cmd) for c in CASES for cmd in (c.commands or COMMANDS[c.kind])]


@pytest.mark.parametrize("case,command", [pytest.param(c, cmd, id=f"{c.id}-{cmd}") for c, cmd in CORPUS])
def test_bad_input(case, command, pristine, tmp_path, capfd, monkeypatch):
    values = case.make(str(tmp_path), pristine)
    check_case(tmp_path, capfd, monkeypatch, values, COMMANDS[case.kind][command], command, case.needle)


@pytest.mark.parametrize("id,template,needle", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_bad_flag(id, template, needle, pristine, tmp_path, capfd, monkeypatch):
    values = subs(pristine, str(tmp_path))
    check_case(tmp_path, capfd, monkeypatch, values, template, template[0], needle)


def test_the_corpus_is_large_and_covers_every_read_command():
    assert len({c.id for c in CASES}) == len(CASES) >= 50
    commands = {cmd.split("-")[0] for _, cmd in CORPUS}
    assert commands == {"inspect", "plan", "cache", "retrain", "migrate", "diff"}


# ---- positive controls: the same command lines work on the undamaged inputs ----------------------------------------------------

PRISTINE_RUNS = [(kind, cmd) for kind in COMMANDS for cmd in COMMANDS[kind]
                 if kind not in ("values", "compute", "npz-labels", "feed") and cmd != "cache-repair"]


@pytest.mark.parametrize("kind,command", PRISTINE_RUNS, ids=[f"{k}-{c}" for k, c in PRISTINE_RUNS])
def test_pristine_inputs_work(kind, command, pristine, tmp_path, capfd):
    values = subs(pristine, str(tmp_path))
    if kind == "images":
        values["data"] = pristine["photos"]
    elif kind == "tfrecord":
        values["data"] = pristine["tfrecord"]
    elif kind == "graph":
        values["model"] = pristine["frozen"] if command in ("inspect", "plan") else pristine["saved_model"]
    elif kind == "cache":
        values["cache"] = copy(pristine, "cache", str(tmp_path))
    elif kind == "checkpoint" and command in ("inspect", "diff"):
        values["model"] = os.path.dirname(pristine["sharded"])  # a directory, via its state file
    rc, _, err = run_in_process(fill(COMMANDS[kind][command], values), capfd)
    assert rc == 0, err
    assert err == "", err


def test_values_commands_work_on_pristine_inputs(pristine, tmp_path, capfd):
    values = subs(pristine, str(tmp_path))
    rc, _, err = run_in_process(fill(COMMANDS["values"]["migrate"], values), capfd)
    assert rc == 0, err
    rc, out, err = run_in_process(fill(COMMANDS["values"]["diff"], values), capfd)
    assert rc == 0 and "! hidden1/weights  max abs difference" in out, err


# ---- real processes: TensorFlow's start-up noise on --------------------------------------------------------------------------

# A damaged index TensorFlow would abort on, a damaged tensor TensorFlow reads, data refused after TensorFlow has
# started, a path refused before it is imported. Each process imports TensorFlow (seconds of CPU), so few of them.
SUBPROCESS_CASES = ["index-huge-declared-shape-inspect", "data-bitflip-hidden1-weights-cache",
                    "npz-length-mismatch-retrain", "state-points-outside-its-directory-plan"]


@pytest.fixture(scope="module")
def subprocess_runs(pristine, tmp_path_factory):
    """Start every subprocess case at once (they spend their time importing TensorFlow)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT
    by_id = {f"{c.id}-{cmd}": (c, cmd) for c, cmd in CORPUS}
    runs = {}
    for cid in SUBPROCESS_CASES:
        c, cmd = by_id[cid]
        root = str(tmp_path_factory.mktemp(cid))
        values = c.make(root, pristine)
        before = snapshot(root)
        argv = fill(COMMANDS[c.kind][cmd], values)
        proc = subprocess.Popen([sys.executable, "-m", "graphsurgeon", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=root)
        runs[cid] = (c, cmd, root, values, before, proc)
    yield runs
    for *_, proc in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("cid", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(cid, subprocess_runs):
    c, cmd, root, _, before, proc = subprocess_runs[cid]
    out, err = proc.communicate(timeout=600)  # generous: the processes share the CPU with the suite
    check_one_line(proc.returncode, out.decode(), err.decode("utf-8", "replace"), cmd, c.needle)
    assert snapshot(root) == before


# ---- what the checks must not refuse ------------------------------------------------------------------------------------------

def test_non_utf8_image_file_names_are_read(pristine, tmp_path, capfd):
    """Python reads such names (TensorFlow gets the bytes); the split hashes the raw name bytes, as retrain.py
    did on Python 2."""
    from graphsurgeon._src.storage.datasets import which_split

    d = copy(pristine, "photos", str(tmp_path))
    os.rename(os.path.join(d, "red", "red0.png"), os.path.join(d, "red", NON_UTF8 + ".png"))
    values = subs(pristine, str(tmp_path), data=d)
    for kind in ("cache", "retrain"):
        rc, _, err = run_in_process(fill(COMMANDS["images"][kind], {**values, "out": str(tmp_path / kind)}), capfd)
        assert rc == 0, err
    assert read_json(tmp_path / "cache" / "manifest.json")["data"]["examples"] == 8
    _, files = list_image_folder(d)
    assert (os.path.join("red", NON_UTF8 + ".png"), 1) in files
    # the split of b"m\xffodel.png" is retrain.py's: sha1 of the raw name bytes
    h = int(hashlib.sha1(b"m\xffodel.png").hexdigest(), 16) % 2 ** 27 * (100.0 / (2 ** 27 - 1))
    assert which_split(NON_UTF8 + ".png", h + 1e-9, 0) == "validation"
    assert which_split(NON_UTF8 + ".png", h - 1e-9, 0) == "train"


def test_non_utf8_tfrecord_file_names_are_read(pristine, tmp_path, capfd):
    """TensorFlow's TFRecord reader takes the name's bytes."""
    path = str(tmp_path / (NON_UTF8 + ".tfrecord"))
    shutil.copyfile(pristine["tfrecord"], path)
    values = subs(pristine, str(tmp_path), data=path)
    rc, _, err = run_in_process(fill(COMMANDS["tfrecord"]["cache"], values), capfd)
    assert rc == 0, err
    manifest = read_json(tmp_path / "out" / "manifest.json")
    assert manifest["data"]["path"] == path and manifest["data"]["examples"] == 6


REPAIRABLE = ["cache-shard-wrong-dtype", "cache-shard-wrong-shape", "cache-shard-index-tampered",
              "cache-shard-index-wrong-length", "cache-index-row-past-the-shard", "cache-shard-keys-tampered",
              "cache-shard-keys-wrong-length"]


@pytest.mark.parametrize("cid", REPAIRABLE)
def test_repair_mends_what_the_cache_refuses(cid, pristine, tmp_path, capfd):
    """The refusals say "--repair": it mends each (the damaged shard recomputed, the index rebuilt from the data),
    and the cache then reads as the pristine one does."""
    from graphsurgeon._src.cache import CacheReader

    values = next(c for c in CASES if c.id == cid).make(str(tmp_path), pristine)
    rc, _, err = run_in_process(fill(COMMANDS["cache"]["cache-repair"], values), capfd)
    assert rc == 0, err
    with CacheReader(values["cache"]) as mended, CacheReader(pristine["cache"]) as good:
        assert np.array_equal(mended.labels(), good.labels())
        assert np.array_equal(mended.read(mended.examples()), good.read(good.examples()))


def test_symlinks_inside_the_image_folder_are_read(pristine, tmp_path, capfd):
    d = copy(pristine, "photos", str(tmp_path))
    os.rename(os.path.join(d, "red"), os.path.join(d, ".store"))  # hidden: not a class itself
    os.symlink(".store", os.path.join(d, "red"))
    write(os.path.join(d, ".extra.png"), png(77))  # hidden, at the top: not a class
    os.symlink("../.extra.png", os.path.join(d, "blue", "blue9.png"))
    os.symlink("../red/red1.png", os.path.join(d, "blue", "blue8.png"))  # labelled blue, where it is listed
    os.makedirs(os.path.join(d, "red", "dark"))  # not an image of red (images lie at a class folder's top)
    write(os.path.join(d, "red", "dark", "d.png"), png(11))
    os.symlink(os.path.join("red", "dark"), os.path.join(d, "green"))
    values = subs(pristine, str(tmp_path), data=d)
    rc, _, err = run_in_process(fill(COMMANDS["images"]["cache"], values), capfd)
    assert rc == 0, err
    manifest = read_json(tmp_path / "out" / "manifest.json")
    assert manifest["classes"] == ["blue", "green", "red"] and manifest["data"]["examples"] == 11
    assert sum(s["rows"] for s in manifest["shards"]) == 10  # blue8 and red1 are one content, stored once
    _, files = list_image_folder(d)
    assert (os.path.join("blue", "blue8.png"), 0) in files and (os.path.join("green", "d.png"), 1) in files


@pytest.mark.parametrize("written", ["C:\\Users\\alice\\run\\model.ckpt-1", "/home/alice/run/model.ckpt-1",
                                     "model.ckpt-1", "{elsewhere}/model.ckpt-1"])
def test_state_file_resolves_by_base_name_inside_its_directory(written, pristine, tmp_path, capfd):
    """Another machine's absolute path (POSIX or Windows), a relative name, and even an existing checkpoint elsewhere
    by the same base name: the directory's own checkpoint is the one read."""
    m = copy(pristine, "model", str(tmp_path))
    elsewhere = os.path.dirname(copy(pristine, "other", str(tmp_path)))
    write(os.path.join(os.path.dirname(m), "checkpoint"),
          f'model_checkpoint_path: "{written.format(elsewhere=elsewhere)}"\n'.replace("\\", "\\\\"))
    rc, out, err = run_in_process(["inspect", os.path.dirname(m), "--json"], capfd)
    assert rc == 0, err
    assert json.loads(out)["checkpoint"] == m


def test_a_dry_run_migration_leaves_no_directory(pristine, tmp_path, capfd):
    rc, out, err = run_in_process(["migrate", pristine["model"], str(tmp_path / "new" / "m.ckpt"), "--dry-run"], capfd)
    assert rc == 0 and "dry run, nothing written" in out, err
    assert os.listdir(tmp_path) == []
