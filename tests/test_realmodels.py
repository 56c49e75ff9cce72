"""Every command on the real TF1 checkpoints in ../shared/realmodels (public 2017-2019 repositories).

Each model is tried as a new user would: inspect, plan without and with a head, cache the cut
tensor, retrain from the cache, migrate. The cached activations are compared with what plain
TensorFlow computes on the original graph (``import_meta_graph`` + ``Saver.restore``, feeding
the same tensors), frozen variables must come out bit for bit, and the exported SavedModel must
answer like the retrained graph. The checkpoints are read where they are and never copied.
Skipped where ../shared is absent (a user's clone).
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src.storage.paths import resolve

from helpers import ROOT, ckpt, cli, tree_hash

tf1 = tf.compat.v1
REAL = os.path.join(ROOT, "..", "shared", "realmodels")
pytestmark = pytest.mark.skipif(not os.path.isdir(REAL), reason="../shared/realmodels is not here (a user's clone)")


def _digits(n, size, channels=1, flat=False, low=0.0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images[:n, :, :, None].astype(np.float32) / 16.0
    with tf.Graph().as_default(), tf1.Session() as s:
        x = s.run(tf1.image.resize_bilinear(x, [size, size]))
    x = np.repeat(x, channels, -1) if channels > 1 else x
    x = x * (1.0 - low) + low
    return (x.reshape(n, -1) if flat else x).astype(np.float32), d.target[:n].astype(np.int64)


def _bits(n):
    rng = np.random.default_rng(0)
    codes = rng.permutation(1024)[:n]  # distinct 10-bit inputs
    x = ((codes[:, None] >> np.arange(10)) & 1).astype(np.float32)[:, :, None]
    return x, (x.sum((1, 2)) > 5).astype(np.int64)


def _chars(n):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 65, (n, 50))
    return np.eye(65, dtype=np.float32)[ids], (ids[:, 0] > 32).astype(np.int64)


def _tokens(n):
    rng = np.random.default_rng(0)
    x = rng.integers(3, 13, (n, 12)).astype(np.int32)
    return x, (x[:, 0] > 7).astype(np.int64)


# model -> what a user would do with it. n rows chosen so the last batch is partial.
CASES = {
    "lenet_noyin": dict(cut="Elu_2", data=lambda: _digits(230, 32), input="Placeholder:0", classes=10,
                        trainable=["Variable_4", "Variable_5"], trainable_below=True),
    "lenet_maesla": dict(cut="Relu_18", data=lambda: _digits(230, 32, channels=3), input="Placeholder_4:0", classes=10),
    "charrnn_kokkini": dict(cut="rnn/transpose_1", data=lambda: _chars(150), input="Placeholder:0", classes=2),
    "seq2seq_gru": dict(cut="encoder/Add", data=lambda: _tokens(150), input="seq_inputs:0", classes=2,
                        args=["--input", "seq_inputs", "--feed", "seq_inputs_length=12"],
                        feed={"seq_inputs_length:0": lambda n: np.full(n, 12, np.int32)}),
    "gan_chadpro": dict(cut="Relu_1", data=lambda: _digits(230, 28, flat=True, low=-1.0), input="x:0", classes=10),
    "estimator_cnn_hsbarker": dict(cut="Reshape_1", data=lambda: _digits(250, 28, flat=True),
                                   input="random_shuffle_queue_DequeueMany:1", classes=10, batch=100,
                                   args=["--input", "random_shuffle_queue_DequeueMany:1"]),
    "lstm_aplain": dict(cut="inference/rnn/basic_lstm_cell_9/mul_2", data=lambda: _bits(230), input="input:0",
                        classes=2, args=["--feed", "istate=0"],
                        feed={"istate:0": lambda n: np.zeros((n, 160), np.float32)}),
    "mlp_bn_chen": dict(cut="add", data=lambda: _digits(250, 28, flat=True), input="Placeholder:0", classes=10,
                        batch=100),
}



def reference(model, tensor, x, feed, batch=None):
    """What plain TensorFlow computes: the original meta graph and checkpoint, fed directly."""
    src = resolve(os.path.join(REAL, model))
    g = tf.Graph()
    with g.as_default(), tf1.Session(graph=g) as s:
        saver = tf1.train.import_meta_graph(src.meta_path, clear_devices=True)
        saver.restore(s, src.prefix)
        out = []
        step = batch or len(x)
        for i in range(0, len(x), step):
            xb = x[i:i + step]
            n = len(xb)
            if batch and n < batch:
                xb = np.concatenate([xb, np.repeat(xb[-1:], batch - n, 0)])
            fd = {CASES[model]["input"]: xb, **{k: f(len(xb)) for k, f in (feed or {}).items()}}
            out.append(s.run(tensor + ":0", fd)[:n])
    return np.concatenate(out)


@pytest.mark.parametrize("model", sorted(CASES))
def test_every_command_on_a_real_checkpoint(model, tmp_path, capfd):
    case = CASES[model]
    path = os.path.join(REAL, model)
    before = tree_hash(path)
    x, y = case["data"]()
    y = y % case["classes"]
    np.savez(tmp_path / "data.npz", x=x, y=y)
    data = str(tmp_path / "data.npz")
    extra = case.get("args", [])

    # inspect: the model's input is among the likely inputs, every checkpoint tensor listed
    code, out, err = cli(capfd, "inspect", path, "--json")
    assert code == 0 and err == "", err
    rep = json.loads(out)
    assert case["input"] in [i["name"] for i in rep["graph"]["inputs"]]
    assert all(i["shape"] != [] for i in rep["graph"]["inputs"])  # TF 1.0/1.1 shapes read from _output_shapes
    names = {v["name"] for v in rep["variables"]}
    assert names == set(ckpt(rep["checkpoint"]))

    # plan with no head: every model variable restored, nothing trains
    code, out, err = cli(capfd, "plan", "--model", path, "--json")
    assert code == 0, err
    p = json.loads(out)
    model_vars = {v["name"] for v in rep["variables"] if v["kind"] == "model"}
    restored = {v["name"] for v in p["variables"] if v["status"] == "restored"}
    assert restored >= model_vars - {"global_step"} and p["trainable"] == []

    # plan with a head on the cut: the head is new and trains; what the cut reads is restored
    head = f"{case['cut']}:{case['classes']}"
    code, out, err = cli(capfd, "plan", "--model", path, "--head", head, *extra, "--json")
    assert code == 0, err
    p = json.loads(out)
    assert sorted(p["trainable"]) == ["head/logits/bias", "head/logits/kernel"]
    assert p["counts"]["restored"] >= 1 and p["counts"]["missing"] == 0

    # cache: equal to plain TensorFlow on the original graph, padded batches included
    cache = tmp_path / "cache"
    code, out, err = cli(capfd, "cache", "--model", path, "--cut", case["cut"], "--data", data,
                         "--out", cache, *extra, "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["examples"] == len(x)
    from graphsurgeon._src.cache import CacheReader

    with CacheReader(str(cache)) as r:
        got = r.read(np.arange(len(x)))  # a new cache of distinct rows holds them in data order
    want = reference(model, case["cut"], x, case.get("feed"), case.get("batch"))
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-5, atol=1e-5)

    # retrain from the cache: frozen variables come out bit for bit, the head learned something
    out_dir = tmp_path / "retrained"
    code, out, err = cli(capfd, "retrain", "--model", path, "--head", head, "--cache", cache, "--out", out_dir,
                         "--epochs", 3, *extra, "--quiet", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["metrics"]["train"]["examples"] > 0
    new, src = ckpt(str(out_dir / "checkpoint/model.ckpt")), ckpt(rep["checkpoint"])
    frozen = [n for n in new if not n.startswith("head/")]
    assert frozen and all(new[n].tobytes() == src[n].tobytes() for n in frozen)
    # the SavedModel answers like the retrained graph, from raw inputs, without the extra feeds
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
        meta = tf1.saved_model.loader.load(s, ["serve"], str(out_dir / "saved_model"))
        sig = meta.signature_def["serving_default"]
        probs = s.run(sig.outputs["probabilities"].name, {sig.inputs["inputs"].name: x[:case.get("batch", 7)]})
    assert probs.shape == (case.get("batch", 7), case["classes"])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)

    # migrate: optimizer state dropped, every model tensor kept bit for bit
    code, out, err = cli(capfd, "migrate", path, tmp_path / "migrated/", "--preset", "optimizer-slots", "--json")
    assert code == 0, err
    res = json.loads(out)
    migrated = ckpt(res["destination"])
    assert set(migrated) == model_vars
    assert all(migrated[n].tobytes() == src[n].tobytes() for n in migrated)

    assert tree_hash(path) == before  # the source checkpoint is untouched


def test_char_rnn_trains_inside_its_while_loop(tmp_path, capfd):
    """The char-rnn's dynamic_rnn: its second LSTM layer fine-tunes through the TF 1.x while loop
    (gradients of a v1 loop in TensorFlow 2), the first stays bit for bit."""
    x, y = _chars(120)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    path = os.path.join(REAL, "charrnn_kokkini")
    code, _, err = cli(capfd, "retrain", "--model", path, "--head", "rnn/transpose_1:2", "--trainable",
                       "rnn/multi_rnn_cell/cell_1", "--data", tmp_path / "d.npz", "--out", tmp_path / "o",
                       "--epochs", 1, "--quiet")
    assert code == 0, err
    new, src = ckpt(str(tmp_path / "o/checkpoint/model.ckpt")), ckpt(os.path.join(path, "model.ckpt"))
    cell0 = [n for n in new if n.startswith("rnn/multi_rnn_cell/cell_0/")]
    cell1 = [n for n in new if n.startswith("rnn/multi_rnn_cell/cell_1/")]
    assert cell0 and all(new[n].tobytes() == src[n].tobytes() for n in cell0)
    assert cell1 and all(new[n].tobytes() != src[n].tobytes() for n in cell1 if n.endswith("kernel"))


def test_queue_fed_estimator(tmp_path, capfd):
    """The Estimator graph reads a RandomShuffleQueue: inspect suggests the dequeued tensor, a cut
    without --input says which tensor to feed, and the batch of 100 fixed in its shapes is used."""
    path = os.path.join(REAL, "estimator_cnn_hsbarker")
    code, out, _ = cli(capfd, "inspect", path)
    assert "likely inputs: random_shuffle_queue_DequeueMany:1 float32 [100, 784]" in out
    lines = out.splitlines()  # the op counts in one column after the longest scope (a 30-wide column ran into it)
    k = lines.index("graph: 520 ops")
    assert lines[k + 1] == f"  {'(root)':<32}  18 ops" and "  random_shuffle_queue_DequeueMany  1 op" in lines
    assert "enqueue_input/Placeholder" not in out.split("likely inputs:")[1]
    assert "softmax_tensor:0" in out.split("likely outputs:")[1]
    code, _, err = cli(capfd, "plan", "--model", path, "--head", "Reshape_1:10")
    assert code == 2 and "pass --input random_shuffle_queue_DequeueMany:1" in err
    x, y = _digits(130, 28, flat=True)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    code, _, err = cli(capfd, "cache", "--model", path, "--cut", "Reshape_1", "--input",
                       "random_shuffle_queue_DequeueMany:1", "--data", tmp_path / "d.npz", "--out", tmp_path / "c",
                       "--batch-size", 32, "--quiet")
    assert code == 2 and "fixes the batch at 100" in err


def test_gan_input_that_does_not_feed_the_cut_is_refused(capfd):
    code, _, err = cli(capfd, "plan", "--model", os.path.join(REAL, "gan_chadpro"), "--head", "Relu_1:10",
                       "--input", "z:0")
    assert code == 2 and err.count("\n") == 1
    assert "input 'z:0' does not feed 'Relu_1'; 'Relu_1' reads placeholder x" in err


def test_a_one_logit_output_is_refused(tmp_path, capfd):
    """The GAN's discriminator ends in one logit (add_3, a sigmoid's): fine-tuned as a softmax over one
    class it trained nothing and reported accuracy 1 and loss 0. plan and retrain refuse it, as a
    new head of one class."""
    x, y = _digits(40, 28, flat=True, low=-1.0)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros_like(y))
    path = os.path.join(REAL, "gan_chadpro")
    said = ("1 class; a softmax over one class has nothing to learn (loss 0, no gradient), and retrain trains a "
            "softmax: give 2 or more classes (a yes/no sigmoid output: a new head on the layer below it, --head CUT:2)")
    for command, more in (("plan", []), ("retrain", ["--data", tmp_path / "d.npz", "--out", tmp_path / "o", "--quiet"])):
        for cut in (["--output", "add_3", "--trainable", "dis"], ["--head", "Relu_1:1"]):
            code, _, err = cli(capfd, command, "--model", path, *cut, *more)
            assert (code, err.count("\n")) == (2, 1), err
            flag = "--output add_3" if cut[0] == "--output" else "--head Relu_1:1"
            assert err.rstrip().endswith(f"error: {flag}: {said}"), err
    assert not (tmp_path / "o").exists()


def test_batch_statistics_are_not_cached(tmp_path, capfd):
    """The hand-rolled batch norm (tf.nn.moments over the batch) makes Relu depend on its batch-mates."""
    x, y = _digits(120, 28, flat=True)
    np.savez(tmp_path / "d.npz", x=x, y=y % 3)
    path = os.path.join(REAL, "mlp_bn_chen")
    code, _, err = cli(capfd, "cache", "--model", path, "--cut", "Relu", "--data", tmp_path / "d.npz",
                       "--out", tmp_path / "c", "--quiet")
    assert code == 2 and "depends on the other examples in its batch (through moments/mean, moments/variance" in err
    code, _, err = cli(capfd, "cache", "--model", path, "--cut", "Relu", "--data", tmp_path / "d.npz",
                       "--out", tmp_path / "c", "--quiet", "--allow-batch-dependent")
    assert code == 0, err
    # a head there: the export's answer for an example would depend on the 99 served with it
    code, _, err = cli(capfd, "retrain", "--model", path, "--head", "Relu:3", "--data", tmp_path / "d.npz",
                       "--out", tmp_path / "o", "--epochs", 1, "--quiet")
    assert code == 2 and err.count("\n") == 1 and not os.path.exists(tmp_path / "o")
    assert ("the head's input 'Relu:0' depends on the other examples in its batch (through moments/mean, "
            "moments/variance") in err and err.rstrip().endswith("or pass --allow-batch-dependent")
    code, out, err = cli(capfd, "retrain", "--model", path, "--head", "Relu:3", "--data", tmp_path / "d.npz",
                         "--out", tmp_path / "o", "--epochs", 1, "--quiet", "--allow-batch-dependent")
    assert code == 0, err
    assert "accepted by --allow-batch-dependent" in out
    assert out.rstrip().endswith("/saved_model (its signature declares batches of exactly 100 examples, as the "
                                 "graph fixes the batch in its static shapes: Session.run and saved_model_cli run "
                                 "refuse other sizes)")
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:  # both are true of the export
        sig = tf1.saved_model.loader.load(s, ["serve"], str(tmp_path / "o/saved_model")).signature_def["serving_default"]
        probs, inputs = sig.outputs["probabilities"].name, sig.inputs["inputs"].name
        mixed = s.run(probs, {inputs: x[:100]})[0]
        alone = s.run(probs, {inputs: np.repeat(x[:1], 100, 0)})[0]
        assert not np.allclose(mixed, alone)
        with pytest.raises(ValueError, match="Cannot feed value of shape"):
            s.run(probs, {inputs: x[:7]})


def test_dropout_baked_in_is_not_cached_nor_under_a_head(tmp_path, capfd):
    x, y = _digits(40, 32)
    np.savez(tmp_path / "d.npz", x=x, y=y % 5)
    path = os.path.join(REAL, "lenet_noyin")
    code, _, err = cli(capfd, "cache", "--model", path, "--cut", "Elu_3",
                       "--data", tmp_path / "d.npz", "--out", tmp_path / "c", "--quiet")
    assert code == 2 and "depends on random op dropout/random_uniform/RandomUniform" in err
    code, out, _ = cli(capfd, "plan", "--model", path, "--head", "Elu_3:5")
    assert code == 0 and "-- note: 'Elu_3' depends on random op dropout/random_uniform/RandomUniform" in out
    retrain = ["retrain", "--model", path, "--head", "Elu_3:5", "--data", tmp_path / "d.npz", "--out", tmp_path / "o",
               "--epochs", 1, "--quiet"]
    code, _, err = cli(capfd, *retrain)
    assert code == 2 and err.count("\n") == 1 and not os.path.exists(tmp_path / "o")
    assert ("the head's input 'Elu_3:0' differs between two runs on the same batch: it depends on random op "
            "dropout/random_uniform/RandomUniform") in err and err.rstrip().endswith("or pass --allow-random")
    code, out, err = cli(capfd, *retrain, "--allow-random")
    assert code == 0, err
    assert [n for n in out.splitlines() if "--allow-random" in n] == [
        "the head's input 'Elu_3:0' is random (two runs on one batch differed; random op "
        "dropout/random_uniform/RandomUniform): accepted by --allow-random; the exported model's answers differ call "
        "to call, and whether they depend on the batch was not checked"]


def test_rnn_initial_state_from_an_npy_file(tmp_path, capfd):
    """istate (None, 160) fed from a (160,) .npy file: broadcast over the batch, in training and in
    the exported SavedModel (where it becomes a default that follows the batch)."""
    x, y = _bits(100)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    state = np.linspace(-0.5, 0.5, 160).astype(np.float32)
    np.save(tmp_path / "state.npy", state)
    path = os.path.join(REAL, "lstm_aplain")
    cut = "inference/rnn/basic_lstm_cell_9/mul_2"
    code, _, err = cli(capfd, "retrain", "--model", path, "--head", f"{cut}:2", "--feed",
                       f"istate={tmp_path / 'state.npy'}", "--data", tmp_path / "d.npz", "--out", tmp_path / "o",
                       "--epochs", 1, "--quiet")
    assert code == 0, err
    want = reference("lstm_aplain", cut, x[:5], {"istate:0": lambda n: np.tile(state, (n, 1))})
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
        tf1.saved_model.loader.load(s, ["serve"], str(tmp_path / "o/saved_model"))
        for n in (1, 5):  # the default follows the batch size
            got = s.run(cut + ":0", {"input:0": x[:n]})
            np.testing.assert_allclose(got, want[:n], rtol=1e-5, atol=1e-6)


def test_default_settings_train_a_head_like_a_convex_solver(tmp_path, capfd):
    """The 2017 LeNet's fc1 features of the digits: a head retrained from the cache with no settings
    given scores within 2 points of scikit-learn's LogisticRegression on the same features and split
    (10 epochs of SGD at 0.01, the old defaults, scored 0.883 against 0.961)."""
    from sklearn.linear_model import LogisticRegression

    from graphsurgeon._src.cache import CacheReader

    x, y = _digits(1797, 32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    path = os.path.join(REAL, "lenet_noyin")
    code, _, err = cli(capfd, "cache", "--model", path, "--cut", "Elu_2", "--data", tmp_path / "d.npz",
                       "--out", tmp_path / "c", "--quiet")
    assert code == 0, err
    code, out, err = cli(capfd, "retrain", "--model", path, "--head", "Elu_2:10", "--cache", tmp_path / "c",
                         "--out", tmp_path / "o", "--quiet", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["settings"] == {"optimizer": "adam", "lr": 0.003, "epochs": 300, "patience": 0,
                                   "kind": "head_from_cache"}
    with CacheReader(str(tmp_path / "c")) as r:
        xtr, ytr = r.read(r.examples("train")), r.labels("train")
        xte, yte = r.read(r.examples("test")), r.labels("test")
    solver = LogisticRegression(max_iter=5000).fit(xtr, ytr).score(xte, yte)
    ours = summary["metrics"]["test"]["accuracy"]
    assert summary["metrics"]["test"]["examples"] == len(yte)
    assert ours >= solver - 0.02, (ours, solver)


def test_inspect_lists_every_likely_output():
    """lenet_maesla has five copies of LeNet (Reshape_* inputs, Mean_* losses): none of its 15 likely
    outputs is left out (inspect once listed the first 10 without saying so)."""
    from graphsurgeon._src import guess, tf2
    from graphsurgeon._src import inspect as inspect_mod
    from graphsurgeon._src.storage.paths import resolve

    path = os.path.join(REAL, "lenet_maesla")
    outputs = inspect_mod.inspect(path)["graph"]["outputs"]
    assert outputs == guess.likely_outputs(tf2.read_meta_graph(resolve(path, ("serve",))).graph_def)
    assert len(outputs) == 15


def test_thaw_takes_the_gan_biases_added_with_a_plain_add(tmp_path, capfd):
    """The GAN frozen as a user freezes it (convert_variables_to_constants): its biases are added with
    a plain Add (``tf.matmul(x, D_w1) + D_b1``), and ``thaw --scopes dis`` thaws them with the weights
    (it once thawed only D_w1 and D_w2, and ``--scopes dis/D_b2`` matched nothing); the thawed graph
    answers as the frozen one, bit for bit."""
    path = os.path.join(REAL, "gan_chadpro")
    x, _ = _digits(20, 28, flat=True, low=-1.0)
    src = resolve(path)
    g = tf.Graph()
    with g.as_default(), tf1.Session(graph=g) as s:
        tf1.train.import_meta_graph(src.meta_path, clear_devices=True).restore(s, src.prefix)
        frozen = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["Sigmoid", "Sigmoid_1"])
        want = s.run("Sigmoid:0", {"x:0": x})
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "frozen.pb").write_bytes(frozen.SerializeToString())
    code, out, err = cli(capfd, "thaw", tmp_path / "g" / "frozen.pb", "--scopes", "dis", "--out", tmp_path / "t")
    assert code == 0, err
    assert out.splitlines()[:4] == ["dis/D_b1  [128]", "dis/D_b2  [1]", "dis/D_w1  [784, 128]", "dis/D_w2  [128, 1]"]
    assert "4 weight-like constants left as constants" in out  # gen's two weights and two biases
    code, out, err = cli(capfd, "thaw", tmp_path / "g" / "frozen.pb", "--scopes", "dis/D_b2", "--out", tmp_path / "b")
    assert code == 0 and out.startswith("dis/D_b2  [1]\n"), err
    with gs.restore(str(tmp_path / "t")) as t:
        assert sorted(t.variables) == ["dis/D_b1", "dis/D_b2", "dis/D_w1", "dis/D_w2"]
        assert t.run("Sigmoid", {"x": x}).tobytes() == want.tobytes()


def test_thaw_finds_the_hand_written_batch_norm_of_mlp_bn_chen(tmp_path, capfd):
    """mlp_bn_chen, frozen: its batch norms are written out by hand (tf.nn.moments, then Mul / Sub /
    Add), and their scales and offsets (Variable_2, _3, _6, _7) are weight-like with the layers'
    weights and biases (inspect listed 4 of its 8 variables, and a thaw of those 4 said 0 constants
    stay constants); a thaw that leaves them counts them, and one that takes them answers as the
    frozen graph, bit for bit."""
    from graphsurgeon._src import weights

    path = os.path.join(REAL, "mlp_bn_chen")
    x, _ = _digits(100, 28, flat=True)  # the input is fixed at batch 100
    src = resolve(path)
    g = tf.Graph()
    with g.as_default(), tf1.Session(graph=g) as s:
        tf1.train.import_meta_graph(src.meta_path, clear_devices=True).restore(s, src.prefix)
        frozen = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["batchnorm_1/add_1"])
    (tmp_path / "g").mkdir()
    pb = tmp_path / "g" / "frozen.pb"
    pb.write_bytes(frozen.SerializeToString())
    with gs.restore(str(pb)) as f:
        want = f.run("batchnorm_1/add_1", {"Placeholder": x})
    found = {n: c["consumers"] for n, c in weights.weight_constants(frozen).items()}
    assert found == {"Variable": ["MatMul"], "Variable_1": ["Add"], "Variable_2": ["Add", "Mul"], "Variable_3": ["Add"],
                     "Variable_4": ["MatMul"], "Variable_5": ["Add"], "Variable_6": ["Add", "Mul"], "Variable_7": ["Add"]}
    code, out, err = cli(capfd, "thaw", pb, "--scopes", "Variable", "Variable_1", "Variable_4", "Variable_5",
                         "--out", tmp_path / "t", "--json")
    assert code == 0 and json.loads(out)["constants_left"] == 4, err
    code, out, err = cli(capfd, "thaw", pb, "--scopes", "Variable_2", "Variable_3", "Variable_6", "Variable_7",
                         "--out", tmp_path / "bn")
    assert code == 0, err
    assert out.splitlines() == ["Variable_2  [392]", "Variable_3  [392]", "Variable_6  [10]", "Variable_7  [10]",
                                f"-- 4 constants (3216 bytes) are variables now, 4 weight-like constants left as constants; "
                                f"checkpoint {tmp_path / 'bn' / 'model.ckpt'}, meta graph {tmp_path / 'bn' / 'model.ckpt.meta'}"]
    with gs.restore(str(tmp_path / "bn")) as t:
        assert sorted(t.variables) == ["Variable_2", "Variable_3", "Variable_6", "Variable_7"]
        assert t.run("batchnorm_1/add_1", {"Placeholder": x}).tobytes() == want.tobytes()


def test_a_conv_cut_is_pooled_or_flattened_as_asked_and_plan_says_which(tmp_path, capfd):
    """lenet_noyin's MaxPool_1 is [None, 5, 5, 16]: the head averages it to 16 features (the default),
    or with --pool flatten reads all 400; plan says which (it said nothing), and retrain trains the head
    it describes."""
    path = os.path.join(REAL, "lenet_noyin")
    head = ["--model", path, "--head", "MaxPool_1:10"]
    code, out, err = cli(capfd, "plan", *head)
    assert code == 0 and out.splitlines()[-1] == "-- the head reads MaxPool_1:0 [5, 5, 16] -> avg over 5×5 -> 16 features"
    code, out, err = cli(capfd, "plan", *head, "--pool", "flatten", "--json")
    assert json.loads(out)["features"] == {"cut": "MaxPool_1:0", "shape": [5, 5, 16], "pool": "flatten", "features": 400}
    x, y = _digits(40, 32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    code, out, err = cli(capfd, "retrain", *head, "--pool", "flatten", "--data", tmp_path / "d.npz",
                         "--out", tmp_path / "o", "--epochs", 1, "--quiet")
    assert code == 0, err
    assert ckpt(str(tmp_path / "o" / "checkpoint" / "model.ckpt"))["head/logits/kernel"].shape == (400, 10)
    assert json.loads((tmp_path / "o" / "plan.json").read_text())["features"]["pool"] == "flatten"
    code, out, err = cli(capfd, "plan", "--model", path, "--head", "Elu_2:10")
    assert out.splitlines()[-1] == "-- the head reads Elu_2:0 [120] -> 120 features"


def test_char_rnn_time_major_transpose_is_not_called_a_fixed_batch(capfd):
    """The char-rnn's rnn/transpose is [50 steps, ?, 65] under the input [?, 50, 65]: plan called 50
    a batch the graph fixes."""
    code, out, err = cli(capfd, "plan", "--model", os.path.join(REAL, "charrnn_kokkini"), "--head", "rnn/transpose:2")
    assert code == 0, err
    assert "-- note: axis 0 of 'rnn/transpose' may not be the batch (its static size 50 is not the input's batch " \
           "('Placeholder:0' is [?, 50, 65]), a guess from the graph)" in out
    assert "the graph fixes the batch" not in out
    # it averages over axis 1, whose size the graph leaves unknown (it said 'avg over ?')
    assert "-- the head reads rnn/transpose:0 [?, 65] -> avg over axis 1 (a size set at run time) -> 65 features" \
        in out.splitlines()


def test_char_rnn_dense_tensordot_is_not_said_to_mix_a_batch(capfd):
    """The char-rnn's dense layer on [?, 50, 50] multiplies through TF 1.5's tensordot, which takes the
    Prod of its input's free dimensions (a reduction over axis 0 of a Gather from a Shape): plan named
    dense/Tensordot/Prod and Prod_1 as ops that may mix a batch."""
    code, out, err = cli(capfd, "plan", "--model", os.path.join(REAL, "charrnn_kokkini"), "--head", "dense/BiasAdd:2")
    assert code == 0, err
    assert "Tensordot/Prod" not in out and "may mix the examples of a batch" not in out
    assert out.splitlines()[-1] == "-- the head reads dense/BiasAdd:0 [50, 65] -> avg over 50 -> 65 features"


def test_lstm_steps_split_from_time_major_rows_are_batch_major(capfd):
    """The 2017 static_rnn transposes its input to [10 steps, ?, 1], reshapes it to rows and splits
    the rows into the 10 steps (inference/split): a cell's concat [?, 160] is batch-major, but plan
    noted that its axis 0 may not be the batch. The rows themselves are still time-major."""
    path = os.path.join(REAL, "lstm_aplain")
    code, out, err = cli(capfd, "plan", "--model", path, "--head", "inference/rnn/basic_lstm_cell_9/concat:3",
                         "--feed", "istate=0")
    assert code == 0, err
    assert out.splitlines()[-1] == "-- the head reads inference/rnn/basic_lstm_cell_9/concat:0 [160] -> 160 features"
    assert "may not be the batch" not in out
    code, out, err = cli(capfd, "plan", "--model", path, "--head", "inference/Reshape:3")
    assert code == 0, err
    assert "-- note: axis 0 of 'inference/Reshape' may not be the batch (transpose 'inference/transpose' moves " \
           "the input's axis 0 to axis 1, a guess from the graph)" in out
