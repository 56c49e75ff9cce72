"""TF2 SavedModels as inputs: told apart from TF1 ones, flattened into one tf.compat.v1 graph that
computes what the SavedModel computes, then inspected, planned, cut, cached and retrained as a TF1
graph. On the real SavedModel inside basic-pitch's wheel (Spotify's note transcription model,
``basic_pitch/saved_models/icassp_2022/nmp``; the Makefile installs the wheel without its
dependencies) and on Keras-made ones (Keras 3's ``model.export``, tf_keras' ``model.save``)."""
import collections
import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src import tf2, tfinternal
from graphsurgeon._src.cli.inspect_text import _human
from graphsurgeon._src.storage import bundle
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.objectgraph import OBJECT_GRAPH_KEY
from graphsurgeon._src.storage.paths import is_tf2_saved_model, resolve

from helpers import ckpt, cli, tree_hash

tf1 = tf.compat.v1


def _basic_pitch_model():
    spec = importlib.util.find_spec("basic_pitch")  # located, not imported (its imports need its deps)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "saved_models", "icassp_2022", "nmp")
    return path if os.path.isfile(os.path.join(path, "saved_model.pb")) else None


BASIC_PITCH = _basic_pitch_model()
needs_basic_pitch = pytest.mark.skipif(
    BASIC_PITCH is None, reason="basic-pitch is not installed (make test installs it: "
                                "pip install --no-deps basic-pitch==0.4.0)")
BP_INPUT = "serving_default_input_2:0"
BP_CUT = "model_1/harmonic_stacking/concat"      # the harmonic stack of the CQT: [None, 172, 309, 8]
BP_HEAD = "model_1/re_lu_2/Relu"                  # the note branch's first conv: [None, 172, 88, 32]
BP_TUNED = ["conv2d_1", "contours-reduced", "conv2d_2"]  # the layers between the cut and the head



def tones(n=16, seed=0):
    """Two classes of 2-second clips at 22,050 Hz (the 43,844 samples basic-pitch reads): a low tone
    (~220 Hz) and a high one (~880 Hz), each detuned by up to 3 % and with a little noise."""
    rng = np.random.RandomState(seed)
    t = np.arange(43844) / 22050.0
    y = np.arange(n) % 2
    x = [0.3 * np.sin(2 * np.pi * (220.0 if c == 0 else 880.0) * rng.uniform(0.97, 1.03) * t) + 0.01 * rng.randn(len(t))
         for c in y]
    return np.stack(x).astype(np.float32)[:, :, None], y.astype(np.int64)


def signature_outputs(export_dir, x):
    """``{output key: array}`` of the SavedModel's own serving function (``tf.saved_model.load``)."""
    f = tf.saved_model.load(export_dir).signatures["serving_default"]
    (key,) = f.structured_input_signature[1]
    return {k: v.numpy() for k, v in f(**{key: tf.constant(x)}).items()}


def run_flat(meta, feeds):
    """Run a flattened MetaGraphDef's serving signature: restore when it has variables."""
    sig = meta.signature_def["serving_default"] if "serving_default" in meta.signature_def else \
        next(iter(meta.signature_def.values()))
    assert sorted(sig.inputs) == sorted(feeds)
    g = tf.Graph()
    with g.as_default(), tf1.Session(graph=g) as s:
        tf1.train.import_meta_graph(meta, clear_devices=True)
        keys = sorted(sig.outputs)
        got = s.run([sig.outputs[k].name for k in keys], {sig.inputs[k].name: v for k, v in feeds.items()})
    return dict(zip(keys, got))


# --- telling TF2 from TF1 ------------------------------------------------------------------

def test_resolve_tells_a_tf2_saved_model_by_its_object_graph(seed004, tmp_path):
    prefix, _, _ = seed004
    tf1_dir = str(tmp_path / "tf1")
    with gs.restore(prefix) as m, m.graph.as_default():
        b = tf1.saved_model.Builder(tf1_dir)
        b.add_meta_graph_and_variables(m.session, ["serve"])
        b.save()
    module = tf.Module()
    module.v = tf.Variable([1.0, 2.0])
    module.f = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "tf2"), signatures=module.f)
    assert resolve(tf1_dir).kind == "saved_model" and resolve(str(tmp_path / "tf2")).kind == "tf2_saved_model"
    # what it reads: the object graph field; a TF1 file has none, and junk or a truncated file is not TF2
    assert not is_tf2_saved_model(os.path.join(tf1_dir, "saved_model.pb"))
    raw = (tmp_path / "tf2" / "saved_model.pb").read_bytes()
    (tmp_path / "junk.pb").write_bytes(b"\xff" * 64)
    (tmp_path / "cut.pb").write_bytes(raw[:40])
    assert not is_tf2_saved_model(str(tmp_path / "junk.pb")) and not is_tf2_saved_model(str(tmp_path / "cut.pb"))
    assert is_tf2_saved_model(str(tmp_path / "tf2" / "saved_model.pb"))
    with pytest.raises(gs.WrongPathKindError, match="is a saved model, not a TF2 SavedModel"):
        tf2.flatten(tf1_dir)


def test_inline_functions_pins_grappler():
    """What tfinternal.inline_functions relies on from grappler: no call op or library function left,
    inner ops named <call op>/<inner op>, a call op whose output is fetched (a signature's output)
    replaced by an IdentityN of the same name, and one that is not dropped."""
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def f(x):
        return tf.nn.relu(tf.matmul(x, tf.ones([3, 2]), name="mm"), name="act")

    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        fetched = f(x)
        tf.identity(f(x), name="y")
    gd = g.as_graph_def()
    calls = [n.name for n in gd.node if n.op in tfinternal.CALL_OPS]
    assert len(calls) == 2 and gd.library.function
    flat = tfinternal.inline_functions(gd, ["x:0", fetched.name, "y:0"])
    ops = {n.name: n.op for n in flat.node}
    assert not any(op in tfinternal.CALL_OPS for op in ops.values()) and not flat.library.function
    assert ops[fetched.op.name] == "IdentityN" and calls[1] not in ops
    for c in calls:
        assert ops[f"{c}/mm"] == "MatMul" and ops[f"{c}/act"] == "Relu"
    with tf.Graph().as_default() as g2, tf1.Session(graph=g2) as s:
        tf.graph_util.import_graph_def(flat, name="")
        got = s.run([fetched.name, "y:0"], {"x:0": np.ones((2, 3), np.float32)})
    np.testing.assert_array_equal(got, np.full((2, 2, 2), 3.0))


# --- signatures ----------------------------------------------------------------------------

def test_a_missing_serving_signature_lists_those_it_has(tmp_path, capfd):
    module = tf.Module()
    module.v = tf.Variable(2.0)
    module.embed = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([None], tf.float32)])
    module.score = tf.function(lambda x: x + module.v, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "two"), signatures={"embed": module.embed, "score": module.score})
    tf.saved_model.save(module, str(tmp_path / "none"))
    with pytest.raises(gs.SignatureNotFoundError, match="no serving signature 'serving_default'; its signatures: "
                                                        "embed, score"):
        gs.restore(str(tmp_path / "two"))
    with pytest.raises(gs.SignatureNotFoundError, match="and no other signature"):
        gs.restore(str(tmp_path / "none"))
    # the signature asked for by name is flattened
    meta = tf2.flatten(str(tmp_path / "two"), signature="score", freeze=True)
    np.testing.assert_array_equal(run_flat(meta, {"x": np.array([1.0, 3.0], np.float32)})["output_0"], [3.0, 5.0])
    code, _, err = cli(capfd, "inspect", tmp_path / "two")
    lines = [l for l in err.splitlines() if l.startswith("graphsurgeon")]
    assert code == 2 and lines == [(f"graphsurgeon inspect: error: {tmp_path / 'two'}: the SavedModel has no serving "
                                    "signature 'serving_default'; its signatures: embed, score")]


# --- the real SavedModel in basic-pitch's wheel ----------------------------------------------

@needs_basic_pitch
def test_basic_pitch_flattened_computes_what_the_saved_model_computes():
    x, _ = tones(3, seed=1)
    want = signature_outputs(BASIC_PITCH, x)
    assert sorted(want) == ["contour", "note", "onset"]
    kept = tf2.flatten(BASIC_PITCH)
    assert not [f.signature.name for f in kept.graph_def.library.function]  # every function inlined
    assert len(kept.collection_def["variables"].bytes_list.value) == 24  # tf.compat.v1 variables
    frozen = tf2.flatten(BASIC_PITCH, freeze=True)
    assert not any(n.op in ("VarHandleOp", "ReadVariableOp") for n in frozen.graph_def.node)
    with gs.restore(BASIC_PITCH) as m:
        assert m.inputs == [BP_INPUT] and len(m.variables) == 24
        sig = kept.signature_def["serving_default"]
        got = dict(zip(sorted(sig.outputs), m.run([sig.outputs[k].name for k in sorted(sig.outputs)], {BP_INPUT: x})))
        inner = m.run(BP_HEAD, {BP_INPUT: x})
    got_frozen = run_flat(frozen, {"input_2": x})
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got_frozen[k], want[k], rtol=0, atol=1e-5)
    assert inner.shape == (3, 172, 88, 32) and inner.max() > 0


@needs_basic_pitch
def test_basic_pitch_inspect_plan_cache_retrain(tmp_path, capfd):
    before = tree_hash(BASIC_PITCH)
    x, y = tones(16)
    np.savez(tmp_path / "tones.npz", x=x, y=y, classes=np.array(["low", "high"]))

    code, out, err = cli(capfd, "inspect", BASIC_PITCH, "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["kind"] == "tf2_saved_model" and len(rep["variables"]) == 24
    assert {"conv2d_2/kernel", "conv2d_2/bias", "batch_normalization/moving_mean"} <= {v["name"] for v in rep["variables"]}
    assert rep["graph"]["inputs"] == [{"name": BP_INPUT, "dtype": "float32", "shape": [None, 43844, 1]}]
    assert rep["graph"]["signatures"]["serving_default"]["outputs"]["note"]["shape"] == [None, 172, 88]
    assert rep["graph"]["weight_constants"] == []  # its weights are variables
    # its checkpoint also holds a legacy Keras Adam's state (slots m and v of 18 variables; iter, beta_1, beta_2,
    # decay, learning_rate) and 4 metrics' count and total, which its serving function does not read
    unread = {v["name"]: v["kind"] for v in rep["unread"]}
    assert collections.Counter(unread.values()) == {"optimizer": 41, "other": 8}
    assert unread["optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"] == "optimizer"
    assert unread["layer_with_weights-1/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"] == "optimizer"
    assert unread["keras_api/metrics/0/count/.ATTRIBUTES/VARIABLE_VALUE"] == "other"

    code, out, err = cli(capfd, "plan", "--model", BASIC_PITCH, "--head", f"{BP_HEAD}:2", "--trainable", *BP_TUNED,
                         "--json")
    assert code == 0, err
    p = json.loads(out)
    assert sorted(p["trainable"]) == sorted(["head/logits/bias", "head/logits/kernel"] +
                                            [f"{s}/{w}" for s in BP_TUNED for w in ("bias", "kernel")])
    assert p["counts"]["missing"] == 0 and p["counts"]["restored"] == 14  # the variables below the head

    cache = tmp_path / "cache"
    code, out, err = cli(capfd, "cache", "--model", BASIC_PITCH, "--cut", BP_CUT, "--data", tmp_path / "tones.npz",
                         "--out", cache, "--quiet", "--json")
    assert code == 0, err
    from graphsurgeon._src.cache import CacheReader

    with CacheReader(str(cache)) as r:
        got = r.read(np.arange(4))
    with gs.restore(BASIC_PITCH) as m:
        want = m.run(BP_CUT, {BP_INPUT: x[:4]})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    out_dir = tmp_path / "retrained"
    code, out, err = cli(capfd, "retrain", "--model", BASIC_PITCH, "--head", f"{BP_HEAD}:2", "--trainable", *BP_TUNED,
                         "--cache", cache, "--out", out_dir, "--epochs", 2, "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["train"]["examples"] > 0
    new = ckpt(str(out_dir / "checkpoint" / "model.ckpt"))
    with gs.restore(BASIC_PITCH) as m:
        src = {n: m.reader.read(n) for n in m.variables}
    tuned = {n for n in new if n.split("/")[0] in BP_TUNED}
    frozen = set(new) - tuned - {n for n in new if n.startswith("head/")}
    assert len(tuned) == 6 and frozen and all(new[n].tobytes() == src[n].tobytes() for n in frozen)
    assert all(new[n].tobytes() != src[n].tobytes() for n in tuned if n.endswith("kernel"))  # fine-tuned
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:  # the export answers from raw audio
        meta = tf1.saved_model.loader.load(s, ["serve"], str(out_dir / "saved_model"))
        sig = meta.signature_def["serving_default"]
        probs = s.run(sig.outputs["probabilities"].name, {sig.inputs["inputs"].name: x[:3]})
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert (out_dir / "labels.txt").read_text().split() == ["low", "high"]
    assert tree_hash(BASIC_PITCH) == before


# --- Keras-made SavedModels ----------------------------------------------------------------

def _keras_classifier(K, directory, export):
    """Conv2D -> BatchNormalization -> Conv2D -> pooling -> fc1 (16, ReLU) -> logits (3), saved as a
    TF2 SavedModel by ``export(model, directory)``. Returns the model."""
    K.utils.set_random_seed(0)
    L = K.layers
    m = K.Sequential([K.Input((8, 8, 3), name="image"), L.Conv2D(4, 3, activation="relu", name="conv1"),
                      L.BatchNormalization(name="bn1"), L.Conv2D(8, 3, activation="relu", name="conv2"),
                      L.GlobalAveragePooling2D(name="pool"), L.Dense(16, activation="relu", name="fc1"),
                      L.Dense(3, name="logits")])
    x = np.random.RandomState(0).rand(32, 8, 8, 3).astype(np.float32)
    m.compile("adam", K.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, np.arange(32) % 3, epochs=2, verbose=0)  # batch-norm statistics away from 0 and 1
    export(m, directory)
    return m


def _keras3(directory):
    import keras

    return _keras_classifier(keras, directory, lambda m, d: m.export(d, verbose=False))


def _tf_keras(directory):
    K = pytest.importorskip("tf_keras")
    return _keras_classifier(K, directory, lambda m, d: m.save(d, save_format="tf"))


@pytest.mark.parametrize("make,fc1_relu,fc1_scope", [
    (_keras3, "sequential_1/fc1_1/Relu", "sequential/fc1"),
    (_tf_keras, "sequential/fc1/Relu", "fc1"),
], ids=["keras3_export", "tf_keras_save"])
def test_keras_saved_model_flattened_and_fine_tuned(tmp_path, make, fc1_relu, fc1_scope):
    export_dir = str(tmp_path / "exported")
    keras_model = make(export_dir)
    x = np.random.RandomState(1).rand(24, 8, 8, 3).astype(np.float32)
    want = keras_model.predict(x, verbose=0)
    with gs.restore(export_dir) as m:
        np.testing.assert_allclose(m.run(m.outputs[0], {m.inputs[0]: x}), want, rtol=0, atol=1e-5)
        conv = {n for n in m.variables if "conv" in n or "bn1" in n}
        assert len(m.variables) == 12 and len(conv) == 8
    y = (x[:, :, :, 0].mean((1, 2)) > 0.5).astype(np.int64)
    cfg = gs.RetrainConfig(model=export_dir, head=f"{fc1_relu}:2", trainable=[fc1_scope], epochs=3, seed=0)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    res = gs.retrain(cfg, str(tmp_path / "data.npz"), str(tmp_path / "out"), progress=False)
    new = ckpt(res.export.checkpoint)
    with gs.restore(export_dir) as m:
        src = {n: m.reader.read(n) for n in m.variables}
    assert conv and all(new[n].tobytes() == src[n].tobytes() for n in conv)  # frozen below fc1
    kernel = next(n for n in new if n.startswith(f"{fc1_scope}/kernel"))  # Keras 3 names it kernel_1
    assert new[kernel].tobytes() != src[kernel].tobytes()  # fine-tuned, not only a new head


@pytest.mark.parametrize("make", [_keras3, _tf_keras], ids=["keras3_export", "tf_keras_save"])
def test_inspect_names_the_serving_outputs_among_likely_outputs(tmp_path, capfd, make):
    """The serving function's outputs, inlined, are an IdentityN's (a list of types): inspect said 'likely outputs:
    none' beside a signature naming StatefulPartitionedCall:0 (Keras 3's export; tf_keras' StatefulPartitionedCall_1:0
    was not listed either)."""
    make(str(tmp_path / "exported"))
    code, out, err = cli(capfd, "inspect", tmp_path / "exported", "--json")
    rep = json.loads(out)
    served = [t["name"] for t in rep["graph"]["signatures"]["serving_default"]["outputs"].values()]
    assert len(served) == 1 and served[0].startswith("StatefulPartitionedCall") and served[0] in rep["graph"]["outputs"]
    code, out, err = cli(capfd, "inspect", tmp_path / "exported")
    assert code == 0 and served[0] in out.split("likely outputs: ")[1].splitlines()[0].split(", ")


def test_functional_control_flow_is_lowered(tmp_path):
    """tf.cond and tf.while_loop inside the serving function (If / While ops calling functions)
    become TF1 Switch / Merge / Enter / Exit ops, and compute what the SavedModel computes."""
    class Module(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def f(self, x):
            y = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.matmul(x, self.w), lambda: 1.0 - tf.matmul(x, self.w))
            _, y = tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2.0 + 1.0), [tf.constant(0), y])
            return {"out": y}

    module = Module()
    tf.saved_model.save(module, str(tmp_path / "cf"), signatures=module.f)
    ops = {n.op for n in tf2.flatten(str(tmp_path / "cf")).graph_def.node}
    assert {"Switch", "Merge", "Enter", "Exit", "LoopCond"} <= ops
    assert not ops & {"If", "StatelessIf", "While", "StatelessWhile", "PartitionedCall", "StatefulPartitionedCall"}
    x = np.array([[1, 2, 3], [-9, 0, 1]], np.float32)
    with gs.restore(str(tmp_path / "cf")) as m:
        for v in (x, -x):  # both branches
            np.testing.assert_allclose(m.run(m.outputs[0], {m.inputs[0]: v}), module.f(tf.constant(v))["out"].numpy(),
                                       rtol=0, atol=1e-5)


class _LogitsModule(tf.Module):
    """A dense layer laid out as tf.layers and Keras lay it out: the variable ``logits/kernel`` and,
    in the function, an op named ``logits``."""

    def __init__(self):
        with tf.name_scope("logits"):
            self.kernel = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, name="kernel")

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def f(self, x):
        return {"out": tf.nn.softmax(tf.identity(tf.matmul(x, self.kernel), name="logits"))}


def _logits_module(directory):
    module = _LogitsModule()
    tf.saved_model.save(module, directory, signatures=module.f)
    return module


@pytest.mark.parametrize("make", [_logits_module, _tf_keras], ids=["op_named_as_a_scope", "tf_keras_dense_logits"])
def test_flattening_with_variables_keeps_every_op_name(tmp_path, make):
    """The variables were made before the flattened graph was imported, and TensorFlow renamed an op
    whose name they take as a scope (the op ``logits`` beside ``logits/kernel`` came back as
    ``logits_1``). Every op of the flattening that freezes keeps its name and kind (a variable's read
    is a constant there); the only other ops are the variables' own and the identities of their handles."""
    export_dir = str(tmp_path / "exported")
    model = make(export_dir)
    frozen = {n.name: n.op for n in tf2.flatten(export_dir, freeze=True).graph_def.node}
    meta = tf2.flatten(export_dir)
    kept = {n.name: n for n in meta.graph_def.node}
    variables = [n for n, node in kept.items() if node.op == "VarHandleOp"]
    changed = {n: (op, kept[n].op if n in kept else None) for n, op in frozen.items()
               if n not in kept or kept[n].op != op}
    assert variables and all(c == ("Const", "ReadVariableOp") for c in changed.values()), changed
    for n in set(kept) - set(frozen):
        node = kept[n]
        assert any(n == v or n.startswith(v + "/") for v in variables) or \
            (node.op == "Identity" and node.attr["T"].type == tf.resource.as_datatype_enum), n
    if isinstance(model, _LogitsModule):
        assert kept["logits"].op == "Identity" and "logits_1" not in kept
        x = np.random.RandomState(0).rand(5, 4).astype(np.float32)
        with gs.restore(export_dir) as m:
            np.testing.assert_allclose(m.run(m.outputs[0], {m.inputs[0]: x}), model.f(tf.constant(x))["out"].numpy(),
                                       rtol=0, atol=1e-6)


def test_inspect_tells_keras3_exports_second_copies_of_its_variables(tmp_path, capfd, monkeypatch):
    """Keras 3's ``model.export`` saves each variable twice (the second time under ``_all_variables/N``), and
    inspect listed those copies as unread tensors of kind ``other``: each is now an ``alias`` naming the variable
    the serving function reads, which it equals byte for byte, told from their index entries (dtype, shape, size,
    crc32c) without reading a value (inspect read every copy and its variable whole); a copy whose bytes differ
    (so does its crc32c) is not one."""
    export_dir = str(tmp_path / "exported")
    _keras3(export_dir)
    tensors_read, indexes_read = [], []
    real_read, real_index = CheckpointReader.read, bundle.read_index
    monkeypatch.setattr(CheckpointReader, "read",
                        lambda self, name, **kw: tensors_read.append(name) or real_read(self, name, **kw))
    monkeypatch.setattr(bundle, "read_index", lambda prefix: indexes_read.append(prefix) or real_index(prefix))
    rep = gs.inspect(export_dir)
    monkeypatch.undo()
    assert set(tensors_read) == {OBJECT_GRAPH_KEY}
    # the index is read once, for the object graph, the served values and the unread tensors' entries (was 3 times)
    assert indexes_read == [os.path.join(export_dir, "variables", "variables")]
    values = ckpt(os.path.join(export_dir, "variables", "variables"))
    with gs.restore(export_dir) as m:
        read = {n: m.reader.read(n) for n in m.variables}
        key_of = {n: m.reader.key(n) for n in m.variables}
    assert len(rep["unread"]) == len(read) == 12
    assert {v["kind"] for v in rep["unread"]} == {"alias"}
    assert sorted(v["of"] for v in rep["unread"]) == sorted(read)
    for v in rep["unread"]:
        assert v["name"].startswith("_all_variables/") and values[v["name"]].tobytes() == read[v["of"]].tobytes()
    code, out, err = cli(capfd, "inspect", export_dir)
    assert code == 0, err
    first = next(v for v in rep["unread"] if v["name"] == "_all_variables/0/.ATTRIBUTES/VARIABLE_VALUE")
    total = _human(sum(v["bytes"] for v in rep["unread"]))
    assert (f"not read by the serving function, not counted above: 12 checkpoint tensors, {total}, second copies of "
            f"variables above {total}\n") in out
    assert f"  (alias of {first['of']})\n" in out
    # one copy made to differ from its variable (the checkpoint written again, that value plus one)
    prefix = os.path.join(export_dir, "variables", "variables")
    names = sorted(values)
    values[first["name"]] = values[first["name"]] + 1
    for f in os.listdir(os.path.dirname(prefix)):
        os.remove(os.path.join(os.path.dirname(prefix), f))
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    entries = CheckpointReader(prefix).index[1]
    copy, variable = entries[first["name"]], entries[key_of[first["of"]]]
    assert (copy.dtype, copy.shape, copy.size) == (variable.dtype, variable.shape, variable.size)
    assert copy.crc32c != variable.crc32c
    kinds = {v["name"]: v["kind"] for v in gs.inspect(export_dir)["unread"]}
    assert kinds.pop(first["name"]) == "other" and set(kinds.values()) == {"alias"}


def test_variables_the_object_graph_does_not_name_are_counted(tmp_path):
    """It said 'checkpoint value variable(s) ... hold ... name them' whatever the count."""
    module = tf.Module()
    module.v = tf.Variable([1.0, 2.0])
    module.f = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "tf2"), signatures=module.f)
    source = resolve(str(tmp_path / "tf2"))
    with pytest.raises(gs.GraphSurgeonError, match=r": cannot tell which checkpoint value variable a holds: the "
                                                   r"SavedModel's object graph does not name it$"):
        tf2.values(source, ["a"])
    with pytest.raises(gs.GraphSurgeonError, match=r": cannot tell which checkpoint value variables a, b hold: the "
                                                   r"SavedModel's object graph does not name them$"):
        tf2.values(source, ["b", "a"])
    with pytest.raises(gs.GraphSurgeonError, match=r": cannot tell which checkpoint value variables a, b, c, d, e … hold: "
                                                   r"the SavedModel's object graph does not name them$"):
        tf2.values(source, list("fedcba"))  # the first five, then ' …' (it named five and stopped)


def test_a_tf2_saved_model_without_its_variables_counts_those_it_reads(tmp_path):
    """It said 'reads 1 variables' of one."""
    module = tf.Module()
    module.v = tf.Variable([1.0, 2.0])
    module.f = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "tf2"), signatures=module.f)
    for name in os.listdir(tmp_path / "tf2" / "variables"):
        os.remove(tmp_path / "tf2" / "variables" / name)
    source = resolve(str(tmp_path / "tf2"))
    for names, said in ((["a"], "1 variable"), (["a", "b"], "2 variables")):
        with pytest.raises(gs.CheckpointNotFoundError, match=f": the serving function reads {said} but there is no "
                                                             "variables checkpoint"):
            tf2.values(source, names)
