"""thaw: a frozen graph's chosen weight-like constants become variables again (values in a
checkpoint, meta graph beside it); the thawed graph computes what the frozen one computes, bit
for bit, and its upper layers can be fine-tuned. Weight-like constants are told by shape and
consumer op."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src import weights
from graphsurgeon._src.thaw import thaw

import legacy_models
from helpers import ROOT, ckpt, cli, tree_hash

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def frozen_mlp(seed004, tmp_path_factory):
    """Seed 004's MLP frozen as retrain.py's graphs were (convert_variables_to_constants), alone in
    its directory: (path, x, y)."""
    prefix, x, y = seed004
    d = tmp_path_factory.mktemp("frozen") / "graph"
    d.mkdir()
    with gs.restore(prefix) as m:
        gd = tf1.graph_util.convert_variables_to_constants(m.session, m.graph.as_graph_def(), ["output/BiasAdd"])
    path = d / "frozen.pb"
    path.write_bytes(gd.SerializeToString())
    return str(path), x, y



def test_thaw_keeps_the_outputs_bit_for_bit(frozen_mlp, tmp_path, capfd):
    path, x, _ = frozen_mlp
    before = tree_hash(os.path.dirname(path))
    with gs.restore(path) as f:
        assert f.variables == {}
        want = f.run("output/BiasAdd", {"X": x[:16]})
        consts = {n: tf.make_ndarray(f.op(n).get_attr("value")) for n in ("hidden3/weights", "output/biases")}
    out = tmp_path / "thawed"
    code, stdout, err = cli(capfd, "thaw", path, "--scopes", "hidden3", "output", "--out", out, "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert r == {"version": 1, "checkpoint": str(out / "model.ckpt"), "meta_graph": str(out / "model.ckpt.meta"),
                 "variables": {"hidden3/biases": [50], "hidden3/weights": [100, 50], "output/biases": [5],
                               "output/weights": [50, 5]},
                 "bytes": 4 * (50 + 5000 + 5 + 250), "constants_left": 4}
    assert sorted(os.listdir(out)) == ["checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index",
                                       "model.ckpt.meta"]
    values = ckpt(str(out / "model.ckpt"))
    assert sorted(values) == sorted(r["variables"])
    assert all(values[n].tobytes() == consts[n].tobytes() for n in consts)
    with gs.restore(str(out)) as t:
        assert sorted(t.variables) == sorted(r["variables"])
        got = t.run("output/BiasAdd", {"X": x[:16]})
    # bit for bit where TensorFlow runs the same kernels on both (below); with oneDNN's (its default on
    # CPUs with AVX-512 VNNI or AMX) a matmul on a constant weight sums in another order than on a variable
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert tree_hash(os.path.dirname(path)) == before
    script = ("import sys, numpy as np, graphsurgeon as gs\n"
              "x = np.load(sys.argv[3])\n"
              "outs = []\n"
              "for m in sys.argv[1:3]:\n"
              "    with gs.restore(m) as f:\n"
              "        outs.append(f.run('output/BiasAdd', {'X': x}).tobytes())\n"
              "print(outs[0] == outs[1], len(outs[0]))\n")
    np.save(tmp_path / "x.npy", x[:16])
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-c", script, path, str(out), str(tmp_path / "x.npy")],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True", str(16 * 5 * 4)]  # oneDNN off: the same bytes
    # the text report names each thawed constant
    code, stdout, err = cli(capfd, "thaw", path, "--scopes", "output/weights", "--out", tmp_path / "t2")
    assert code == 0, err
    assert stdout.splitlines() == ["output/weights  [50, 5]",
                                   (f"-- 1 constant (1000 bytes) is a variable now, 7 weight-like constants left as "
                                    f"constants; checkpoint {tmp_path / 't2' / 'model.ckpt'}, meta graph "
                                    f"{tmp_path / 't2' / 'model.ckpt.meta'}")]


def test_thawed_upper_layers_fine_tune(frozen_mlp, tmp_path, capfd):
    """Not only a new head: hidden3 (thawed) trains under a new head on its output; the layers left
    frozen are constants and compute as before."""
    path, x, _ = frozen_mlp
    thaw(path, ["hidden3"], str(tmp_path / "thawed"))
    y2 = (x[:, 3] > 0).astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y2)
    out = tmp_path / "retrained"
    code, _, err = cli(capfd, "retrain", "--model", tmp_path / "thawed", "--head", "hidden3/Relu:2",
                            "--trainable", "hidden3", "--data", tmp_path / "data.npz", "--out", out, "--epochs", 3,
                            "--quiet", "--json")
    assert code == 0, err
    old, new = ckpt(str(tmp_path / "thawed" / "model.ckpt")), ckpt(str(out / "checkpoint" / "model.ckpt"))
    assert sorted(new) == ["head/logits/bias", "head/logits/kernel", "hidden3/biases", "hidden3/weights"]
    assert np.abs(new["hidden3/weights"] - old["hidden3/weights"]).max() > 1e-4  # fine-tuned
    with gs.restore(path) as f:
        h2 = f.run("hidden2/Relu", {"X": x[:8]})
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:  # served from raw inputs
        meta = tf1.saved_model.loader.load(s, ["serve"], str(out / "saved_model"))
        sig = meta.signature_def["serving_default"]
        probs, h2_served = s.run([sig.outputs["probabilities"].name, "hidden2/Relu:0"], {sig.inputs["inputs"].name: x[:8]})
    assert probs.shape == (8, 2)
    np.testing.assert_array_equal(h2_served, h2)  # the layers left frozen


def test_thaw_takes_biases_added_with_a_plain_add(tmp_path, capfd):
    """``tf.matmul(x, w) + b`` (the real checkpoints' style): thawing a layer's scope thaws its bias
    too, a pattern can name the bias alone, the summary counts what stays constant, and the outputs
    are the frozen graph's bit for bit."""
    rng = np.random.RandomState(0)
    g = tf.Graph()
    with g.as_default():
        h = tf1.placeholder(tf.float32, [None, 6], name="x")
        for layer, (n_in, n_out) in (("l1", (6, 4)), ("l2", (4, 3))):
            w = tf.identity(tf.constant(rng.randn(n_in, n_out).astype(np.float32), name=f"{layer}/w"), name=f"{layer}/w/read")
            b = tf.identity(tf.constant(rng.randn(n_out).astype(np.float32), name=f"{layer}/b"), name=f"{layer}/b/read")
            h = tf.nn.relu(tf.add(tf.matmul(h, w), b), name=f"{layer}/out")
    (tmp_path / "g").mkdir()
    path = tmp_path / "g" / "frozen.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    x = rng.randn(5, 6).astype(np.float32)
    with gs.restore(str(path)) as f:
        want = f.run("l2/out", {"x": x})
    code, stdout, err = cli(capfd, "thaw", path, "--scopes", "l2", "--out", tmp_path / "t", "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert (r["variables"], r["constants_left"]) == ({"l2/b": [3], "l2/w": [4, 3]}, 2)
    with gs.restore(str(tmp_path / "t")) as t:
        assert sorted(t.variables) == ["l2/b", "l2/w"]
        assert t.run("l2/out", {"x": x}).tobytes() == want.tobytes()
    code, stdout, err = cli(capfd, "thaw", path, "--scopes", "l1/b", "--out", tmp_path / "t1")
    assert code == 0, err
    assert stdout.splitlines()[0] == "l1/b  [4]" and ", 3 weight-like constants left as constants;" in stdout


def test_training_a_frozen_graph_says_to_thaw_it_first(frozen_mlp, seed004, npz, tmp_path, capfd):
    """--trainable on a frozen graph (no variables) names the thaw command that makes them variables
    (it said only that the pattern matches no variable, closest scopes: none); a checkpoint cut below
    its variables is not told to thaw."""
    path, _, _ = frozen_mlp
    code, _, err = cli(capfd, "plan", "--model", seed004[0], "--head", "X:2", "--trainable", "hidden3")
    assert code == 2 and "--trainable 'hidden3': matches only variables the cut leaves out" in err and "thaw" not in err
    said = (f"--trainable hidden3: {path} holds no variables (a frozen graph: its weights are constants), so nothing "
            f"of it can train; turn the weights to train into variables first: graphsurgeon thaw {path} --scopes "
            "hidden3 --out DIR, then give --model DIR")
    for command, more in (("plan", []), ("retrain", ["--data", npz, "--out", tmp_path / "o", "--quiet"])):
        code, _, err = cli(capfd, command, "--model", path, "--head", "hidden2/Relu:2", "--trainable", "hidden3", *more)
        lines = [l for l in err.splitlines() if l.startswith("graphsurgeon")]
        assert code == 2 and lines == [f"graphsurgeon {command}: error: {said}"], err
    with pytest.raises(gs.ConfigError, match=r"graphsurgeon\.thaw\('.*frozen.pb', \['hidden3'\], out_dir\)"):
        gs.plan(gs.RetrainConfig(model=path, trainable=["hidden3"]))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,needle", [
    (["--scopes", "hiden3"], "pattern 'hiden3' matches no weight-like constant; closest scopes: hidden3"),
    (["--scopes", "hidden3/Relu"], "pattern 'hidden3/Relu' matches no weight-like constant; closest scopes: hidden3"),
    (["--scopes", "hidden3", "--out", "{graph_dir}", "--overwrite"],
     "--out {graph_dir} is the graph's directory {graph_dir}; thaw writes a whole directory and would replace the "
     "graph with it: name a new directory, such as {graph_dir}/thawed"),
    (["--scopes", "hidden3", "--out", "{graph_dir}/..", "--overwrite"],
     "--out {graph_dir}/.. holds the graph {graph_dir}/frozen.pb; thaw writes a whole directory and would replace "
     "the graph with it: name a new directory that does not hold the graph"),
    (["--scopes", "hidden3", "--out", "{exists}"], "exists; pass --overwrite to replace it"),
])
def test_thaw_bad_input_is_one_line_and_writes_nothing(frozen_mlp, tmp_path, capfd, args, needle):
    path, _, _ = frozen_mlp
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "keep.txt").write_text("mine")
    args = [a.format(graph_dir=os.path.dirname(path), exists=tmp_path / "exists") for a in args]
    needle = needle.replace("--out {graph_dir}", "--out " + os.path.dirname(path)).format(
        graph_dir=os.path.realpath(os.path.dirname(path)))
    if "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    before = tree_hash(str(tmp_path)), tree_hash(os.path.dirname(path))
    code, _, err = cli(capfd, "thaw", path, *args)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("graphsurgeon thaw: error: ") and needle in lines[0], err
    assert (tree_hash(str(tmp_path)), tree_hash(os.path.dirname(path))) == before
    assert sorted(os.listdir(tmp_path)) == ["exists"]


def test_thaw_writes_a_new_directory_beside_the_graph(frozen_mlp, tmp_path):
    """--out frozen/thawed for frozen/graph.pb is the first thing a user tries (it was refused as 'inside
    the graph's directory'); it replaces only itself, with --overwrite too, and the graph stays."""
    src = tmp_path / "frozen"
    src.mkdir()
    (src / "graph.pb").write_bytes(open(frozen_mlp[0], "rb").read())
    before = (src / "graph.pb").read_bytes()
    r = thaw(str(src / "graph.pb"), ["output"], str(src / "thawed"))
    assert r.checkpoint == str(src / "thawed" / "model.ckpt")
    thaw(str(src / "graph.pb"), ["hidden3"], str(src / "thawed"), overwrite=True)
    assert sorted(os.listdir(src)) == ["graph.pb", "thawed"] and (src / "graph.pb").read_bytes() == before
    with gs.restore(str(src / "thawed")) as t:
        assert sorted(t.variables) == ["hidden3/biases", "hidden3/weights"]
    os.symlink(src / "graph.pb", tmp_path / "link.pb")  # a link's directory holds the graph as named
    with pytest.raises(gs.ConfigError, match=r"out_dir=.* is the graph's directory"):
        thaw(str(tmp_path / "link.pb"), ["output"], str(tmp_path), overwrite=True)
    assert os.path.islink(tmp_path / "link.pb")


def test_thaw_refuses_the_graph_file_itself_as_out(frozen_mlp, tmp_path, capfd):
    """--out frozen/graph.pb --overwrite replaced the graph it had read with the thawed directory (the
    rule let through a path beside the graph, and the graph's own path is one); through a link too."""
    src = tmp_path / "frozen"
    src.mkdir()
    (src / "graph.pb").write_bytes(open(frozen_mlp[0], "rb").read())
    os.symlink(src / "graph.pb", tmp_path / "link.pb")
    before = tree_hash(str(tmp_path))
    for graph, out in ((src / "graph.pb", src / "graph.pb"), (tmp_path / "link.pb", src / "graph.pb"),
                       (src / "graph.pb", tmp_path / "link.pb")):
        code, _, err = cli(capfd, "thaw", graph, "--scopes", "hidden3", "--out", out, "--overwrite")
        lines = [l for l in err.splitlines() if l.strip()]
        assert code == 2 and lines == [f"graphsurgeon thaw: error: --out {out} is the graph {src / 'graph.pb'}; thaw "
                                       "writes a whole directory and would replace the graph with it: name a new "
                                       f"directory, such as {src}{os.sep}thawed"], err
        assert tree_hash(str(tmp_path)) == before


def test_thaw_suggests_a_directory_that_does_not_exist(frozen_mlp, tmp_path, capfd):
    """The refusal suggested frozen/thawed though a thaw had already written it."""
    src = tmp_path / "frozen"
    src.mkdir()
    (src / "graph.pb").write_bytes(open(frozen_mlp[0], "rb").read())
    for taken, suggested in (([], "thawed"), (["thawed"], "thawed_2"), (["thawed_2"], "thawed_3")):
        for name in taken:
            (src / name).mkdir()
        code, _, err = cli(capfd, "thaw", src / "graph.pb", "--scopes", "hidden3", "--out", src, "--overwrite")
        assert code == 2 and err.strip().endswith(f"name a new directory, such as {src / suggested}"), err
    assert sorted(os.listdir(src)) == ["graph.pb", "thawed", "thawed_2"]


def test_thaw_output_honours_the_umask(frozen_mlp, tmp_path):
    """The output directory was made by tempfile.mkdtemp and kept its mode 0700."""
    old = os.umask(0o027)
    try:
        thaw(frozen_mlp[0], ["output"], str(tmp_path / "t"))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "t").st_mode & 0o7777 == 0o750


def test_thaw_refuses_what_is_not_a_frozen_graph_with_weights(seed004, tmp_path):
    prefix, _, _ = seed004
    with pytest.raises(gs.WrongPathKindError, match="not a frozen GraphDef"):
        thaw(prefix, ["hidden3"], str(tmp_path / "o"))
    (tmp_path / "notes.txt").write_text("not a model")  # taken for a V1 checkpoint: it was called 'a checkpoint'
    with pytest.raises(gs.WrongPathKindError) as e:
        thaw(str(tmp_path / "notes.txt"), ["hidden3"], str(tmp_path / "o"))
    assert str(e.value) == (f"{tmp_path / 'notes.txt'} is not a .pb or .pbtxt file; thaw reads a .pb or .pbtxt graph "
                            "whose weights are constants")
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        tf.identity(x * 2.0 + tf.constant([1.0, 2.0, 3.0]), name="y")  # constants, but none a weight
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "g.pb").write_bytes(g.as_graph_def().SerializeToString())
    with pytest.raises(gs.PatternError, match="has no weight-like constants"):
        thaw(str(tmp_path / "g" / "g.pb"), ["add"], str(tmp_path / "o"))
    with pytest.raises(gs.ConfigError, match="name the scopes to thaw"):
        thaw(str(tmp_path / "g" / "g.pb"), [], str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_a_plain_add_bias_is_weight_like_only_on_a_weighted_layer_and_only_in_one_dimension():
    """The plain-add rule's three conditions, each on an operand that meets the other two: a convolution
    is a layer as a matmul is; the layer must take a weight-like constant (not two placeholders); the
    constant must be 1-D (a [1, 3] row added to a weighted matmul is not a bias)."""
    g = tf.Graph()
    with g.as_default():
        img = tf1.placeholder(tf.float32, [None, 4, 4, 2], name="img")
        conv = tf.nn.conv2d(img, tf.constant(np.ones([3, 3, 2, 3], np.float32), name="c/filter"), [1, 1, 1, 1],
                            "SAME")
        tf.identity(conv + tf.constant([0.1, 0.2, 0.3], name="c/b"), name="conv_out")
        a, b = (tf1.placeholder(tf.float32, [None, 3], name=n) for n in ("a", "b"))
        tf.identity(tf.matmul(a, b, transpose_b=True) + tf.constant([1.0, 2.0, 3.0], name="ab/b"), name="ab_out")
        w = tf.constant(np.ones([3, 3], np.float32), name="fc/w")
        tf.identity(tf.matmul(a, w) + tf.constant([[1.0, 2.0, 3.0]], name="fc/row"), name="fc_out")
    found = weights.weight_constants(g.as_graph_def())
    assert {n: c["consumers"] for n, c in found.items()} == {"c/filter": ["Conv2D"], "c/b": ["AddV2"],
                                                             "fc/w": ["MatMul"]}


def test_weight_constants_by_shape_and_consumer_op(tmp_path, capfd):
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4, 4, 2], name="x")
        f16 = tf.constant(np.ones([3, 3, 2, 3], np.float16), name="conv/filter16")
        h = tf.nn.conv2d(x, tf.cast(f16, tf.float32), [1, 1, 1, 1], "SAME", name="conv/Conv2D")
        h = tf.nn.bias_add(h, tf.constant([0.1, 0.2, 0.3], name="conv/bias"), name="conv/BiasAdd")
        h = tf.reshape(h, tf.constant([-1, 48], name="flat/shape"), name="flat")
        w = tf.identity(tf.constant(np.ones([48, 2], np.float32), name="fc/w"), name="fc/w/read")
        h = tf.matmul(h, w, name="fc/MatMul")
        h = h + tf.identity(tf.constant([1.0, 2.0], name="fc/offset"))  # a bias added with a plain add
        tf.identity(h + tf.constant([[1.0, 2.0]], name="fc/grid"), name="grid")  # 2-D: not a bias
        tf.identity(tf.nn.relu(h) + tf.constant([5.0, 6.0], name="relu/offset"), name="shifted")  # not on a layer
        tf.identity(x + tf.constant([1.0, 2.0], name="x/offset"), name="x_shifted")  # not on a layer
        h = h * tf.constant(3.0, name="fc/scale")                     # a scalar
        tf.nn.conv2d(tf.constant(np.ones([1, 4, 4, 2], np.float32), name="img"), tf.ones([1, 1, 2, 1]),
                     [1, 1, 1, 1], "SAME", name="data_conv")          # a constant as data, not filter
        tf.identity(h, name="out")
    found = weights.weight_constants(g.as_graph_def())
    assert found == {"conv/filter16": {"shape": [3, 3, 2, 3], "dtype": "float16", "consumers": ["Conv2D"]},
                     "conv/bias": {"shape": [3], "dtype": "float32", "consumers": ["BiasAdd"]},
                     "fc/w": {"shape": [48, 2], "dtype": "float32", "consumers": ["MatMul"]},
                     "fc/offset": {"shape": [2], "dtype": "float32", "consumers": ["AddV2"]},
                     "ones": {"shape": [1, 1, 2, 1], "dtype": "float32", "consumers": ["Conv2D"]}}
    (tmp_path / "g.pb").write_bytes(g.as_graph_def().SerializeToString())
    code, out, err = cli(capfd, "inspect", tmp_path / "g.pb")
    assert code == 0, err
    lines = out.splitlines()
    k = lines.index("weight-like constants (5; thaw turns them into variables):")
    assert lines[k + 1:k + 6] == ["  conv/filter16  float16  [3, 3, 2, 3] -> Conv2D",
                                  "  conv/bias      float32  [3]          -> BiasAdd",
                                  "  fc/w           float32  [48, 2]      -> MatMul",
                                  "  fc/offset      float32  [2]          -> AddV2",
                                  "  ones           float32  [1, 1, 2, 1] -> Conv2D"]
    code, out, err = cli(capfd, "thaw", tmp_path / "g.pb", "--scopes", "conv", "fc/w", "--out", tmp_path / "t")
    assert code == 0, err
    assert out.splitlines()[:3] == ["conv/bias      [3]", "conv/filter16  [3, 3, 2, 3]", "fc/w           [48, 2]"]
    code, out, err = cli(capfd, "inspect", tmp_path / "g.pb", "--json")
    assert [c["name"] for c in json.loads(out)["graph"]["weight_constants"]] == ["conv/filter16", "conv/bias", "fc/w",
                                                                                 "fc/offset", "ones"]


def test_a_per_channel_scale_or_offset_is_weight_like_and_counted_when_left(tmp_path, capfd):
    """A batch normalization written out by hand (tf.nn.batch_normalization on tf.nn.moments, as
    mlp_bn_chen's) has its scale and offset [C] applied to a layer's output through Mul / Sub / Add:
    they are weight-like, on a channels-last convolution and a transposed matmul alike, and a thaw
    that leaves them counts them; what is not a weight stays out: the epsilon, a scalar 0.5, a
    keep_prob, integer axes, a [1] vector, a vector whose length is not the layer's channels, one
    applied after an activation, one on a channels-first convolution's output (channels not last)."""
    rng = np.random.RandomState(0)
    c = lambda name, *shape: tf.constant(rng.rand(*shape).astype(np.float32) + 0.5, name=name)  # noqa: E731
    g = tf.Graph()
    with g.as_default():
        img = tf1.placeholder(tf.float32, [None, 4, 4, 2], name="img")
        h = tf.nn.conv2d(img, c("conv/filter", 3, 3, 2, 3), [1, 1, 1, 1], "SAME")
        mean, var = tf.nn.moments(h, [0, 1, 2])
        h = tf.nn.batch_normalization(h, mean, var, c("conv/offset", 3), c("conv/scale", 3), 1e-3, name="conv/bn")
        h = tf.reshape(tf.nn.relu(h), [-1, 48]) * tf.constant(0.5, name="half")
        h = tf.matmul(h, c("fc/w", 4, 48), transpose_b=True)
        mean, var = tf.nn.moments(h, [0])
        h = tf.nn.batch_normalization(h, mean, var, c("fc/offset", 4), c("fc/scale", 4), 1e-3, name="fc/bn")
        tf.identity(tf.matmul(h, c("single/w", 4, 1)) * c("one", 1), name="single")  # one channel: a [1] vector
        h = h * (tf1.placeholder(tf.float32, None, name="p") * c("five", 5))  # still fc's output
        tf.identity(tf.nn.relu(h) * c("after_relu", 4), name="out")
        tf.identity(tf1.nn.dropout(h, keep_prob=tf.constant(0.9, name="keep_prob")), name="dropped")
        nchw = tf.nn.conv2d(tf1.placeholder(tf.float32, [None, 2, 3, 3], name="chw"), c("nchw/filter", 1, 1, 2, 3),
                            [1, 1, 1, 1], "SAME", data_format="NCHW")
        tf.identity(nchw * c("nchw/w_scale", 3), name="nchw_out")
    found = weights.weight_constants(g.as_graph_def())
    assert {n: v["consumers"] for n, v in found.items()} == {
        "conv/filter": ["Conv2D"], "conv/offset": ["AddV2"], "conv/scale": ["AddV2", "Mul"],
        "fc/w": ["MatMul"], "fc/offset": ["AddV2"], "fc/scale": ["AddV2", "Mul"], "single/w": ["MatMul"],
        "nchw/filter": ["Conv2D"]}
    x = rng.rand(5, 4, 4, 2).astype(np.float32)
    gd = tf1.graph_util.extract_sub_graph(g.as_graph_def(), ["fc/bn/add_1"])
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "frozen.pb").write_bytes(gd.SerializeToString())
    with gs.restore(str(tmp_path / "g" / "frozen.pb")) as f:
        want = f.run("fc/bn/add_1", {"img": x})
    code, out, err = cli(capfd, "thaw", tmp_path / "g" / "frozen.pb", "--scopes", "conv/filter", "fc/w", "--out",
                         tmp_path / "t", "--json")
    assert code == 0 and json.loads(out)["constants_left"] == 4, err  # the two scales and offsets
    r = thaw(str(tmp_path / "g" / "frozen.pb"), ["conv/offset", "conv/scale", "fc"], str(tmp_path / "t2"))
    assert sorted(r.variables) == ["conv/offset", "conv/scale", "fc/offset", "fc/scale", "fc/w"]
    assert r.constants_left == 1
    with gs.restore(str(tmp_path / "t2")) as t:
        assert t.run("fc/bn/add_1", {"img": x}).tobytes() == want.tobytes()


def test_thaw_the_top_of_a_frozen_inception_v3(inception, tmp_path):
    """The retrain.py type: a frozen Inception v3 (TF-Slim's, at 107x107) with Mixed_7c and the
    logits thawed (convolutions and batch-norm statistics) computes what the frozen one computes."""
    prefix = inception
    out = "InceptionV3/Predictions/Softmax"
    with gs.restore(prefix) as m:
        gd = tf1.graph_util.convert_variables_to_constants(m.session, m.graph.as_graph_def(), [out])
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "frozen.pb").write_bytes(gd.SerializeToString())
    x = np.random.RandomState(0).rand(2, 107, 107, 3).astype(np.float32)
    with gs.restore(str(tmp_path / "g" / "frozen.pb")) as f:
        want = f.run(out, {"input": x})
    r = thaw(str(tmp_path / "g" / "frozen.pb"), ["InceptionV3/Mixed_7c", "InceptionV3/Logits"], str(tmp_path / "t"))
    assert len(r.variables) == 38 and r.constants_left == 434
    assert "InceptionV3/Mixed_7c/Branch_0/Conv2d_0a_1x1/BatchNorm/moving_mean" in r.variables
    with gs.restore(str(tmp_path / "t")) as t:
        assert sorted(t.variables) == sorted(r.variables)
        assert t.run(out, {"input": x}).tobytes() == want.tobytes()


def test_thaw_takes_weights_read_inside_a_tf1_while_loop(tmp_path, capfd):
    """A TF 1.x ``while_loop`` (``dynamic_rnn``) reads its weights through ``Enter`` ops: the real
    char-rnn, frozen, listed only ``dense/bias`` as weight-like and ``--scopes rnn`` matched none."""
    prefix = legacy_models.v1_rnn_adam(str(tmp_path))
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
        tf1.train.import_meta_graph(prefix + ".meta").restore(s, prefix)
        gd = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["dense/BiasAdd"])
    assert {"rnn/kernel", "rnn/bias"} <= set(weights.weight_constants(gd))
    _thawed_sequence_net(gd, "dense/BiasAdd", "rnn", {"rnn/bias": [5], "rnn/kernel": [9, 5]}, tmp_path, capfd)


def _thawed_sequence_net(gd, output, scopes, thawed, tmp_path, capfd):
    """Thaw ``scopes`` of the frozen ``gd`` (input ``seq`` [None, 6, 4]) with the CLI: the variables
    made are ``thawed`` ({name: shape}), and ``output`` is within 1e-5 of the frozen graph's."""
    path = tmp_path / "g" / "frozen.pb"
    path.parent.mkdir()
    path.write_bytes(gd.SerializeToString())
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype(np.float32)
    with gs.restore(str(path)) as f:
        want = f.run(output, {"seq": x})
    code, stdout, err = cli(capfd, "thaw", path, "--scopes", scopes, "--out", tmp_path / "t", "--json")
    assert code == 0, err
    assert json.loads(stdout)["variables"] == thawed
    with gs.restore(str(tmp_path / "t")) as t:
        np.testing.assert_allclose(t.run(output, {"seq": x}), want, atol=1e-5)


def test_thaw_takes_a_kernel_tensordot_lays_out(tmp_path, capfd):
    """``tf.layers.dense`` on a sequence multiplies through ``tf.tensordot``, whose kernel reached its
    ``MatMul`` through ``Transpose`` / ``Reshape`` in TensorFlow 1.x: the frozen char-rnn's
    ``dense/kernel`` was not weight-like, and ``thaw --scopes dense`` thawed only the bias."""
    with tf.Graph().as_default() as g:
        x = tf1.placeholder(tf.float32, [None, 6, 4], name="seq")
        with tf1.variable_scope("dense"):
            w = tf1.get_variable("kernel", [4, 3], initializer=tf1.glorot_uniform_initializer(seed=0))
            b = tf1.get_variable("bias", [3], initializer=tf1.constant_initializer(0.5))
        # as TensorFlow 1.x's tensordot built it (the char-rnn's graph): the kernel transposed and reshaped
        # for the matmul even when neither changes it (TensorFlow 2's tensordot skips both)
        kernel = tf.reshape(tf.transpose(w, [0, 1], name="Tensordot/transpose_1"), [4, 3], name="Tensordot/Reshape_1")
        rows = tf.matmul(tf.reshape(x, [-1, 4]), kernel, name="Tensordot/MatMul")
        tf.nn.bias_add(tf.reshape(rows, [-1, 6, 3]), b, name="logits")
        with tf1.Session(graph=g) as s:
            s.run(tf1.global_variables_initializer())
            gd = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["logits"])
    on_way = {n.op for n in gd.node if n.name.startswith("Tensordot/")}
    assert {"Transpose", "Reshape", "MatMul"} <= on_way, on_way  # the layout TF 1.x gave it
    found = weights.weight_constants(gd)
    assert set(found) == {"dense/kernel", "dense/bias"}
    assert found["dense/kernel"]["consumers"] == ["MatMul"] and found["dense/bias"]["consumers"] == ["BiasAdd"]
    _thawed_sequence_net(gd, "logits", "dense", {"dense/bias": [3], "dense/kernel": [4, 3]}, tmp_path, capfd)


def test_thaw_takes_a_peephole_lstms_diagonal_weights(tmp_path, capfd):
    """TF 1.x's ``LSTMCell(use_peepholes=True)`` multiplies its cell state by ``w_f_diag`` / ``w_i_diag`` /
    ``w_o_diag`` [units] and adds the product to a gate, one of four parts its ``Split`` cuts from the
    kernel's matmul: they were not weight-like, and ``thaw`` could not take them. Thawed, the graph
    computes the same bytes."""
    legacy_models.use_legacy_keras()
    was_v2 = tf1.control_flow_v2_enabled()
    tf1.disable_control_flow_v2()  # a TF 1.x while_loop, as the frozen graphs of the time have
    try:
        with tf.Graph().as_default() as g:
            x = tf1.placeholder(tf.float32, [None, 6, 4], name="seq")
            with tf1.variable_scope("rnn", use_resource=False) as scope:  # reference variables, as in 2018
                cell = tf1.nn.rnn_cell.LSTMCell(5, use_peepholes=True, initializer=tf1.glorot_uniform_initializer(0))
                outputs, _ = tf1.nn.dynamic_rnn(cell, x, dtype=tf.float32, scope=scope)
            assert {n.op for n in g.as_graph_def().node if n.name.endswith("_diag")} == {"VariableV2"}
            tf.identity(outputs, name="outputs")
            with tf1.Session(graph=g) as s:
                s.run(tf1.global_variables_initializer())
                gd = tf1.graph_util.convert_variables_to_constants(s, g.as_graph_def(), ["outputs"])
    finally:
        if was_v2:
            tf1.enable_control_flow_v2()
    diag = ["rnn/lstm_cell/w_f_diag", "rnn/lstm_cell/w_i_diag", "rnn/lstm_cell/w_o_diag"]
    found = weights.weight_constants(gd)
    assert {n: (v["shape"], v["consumers"]) for n, v in found.items()} == {
        "rnn/lstm_cell/kernel": ([9, 20], ["MatMul"]), "rnn/lstm_cell/bias": ([20], ["BiasAdd"]),
        **{n: ([5], ["AddV2"]) for n in diag}}
    path = tmp_path / "g" / "frozen.pb"
    path.parent.mkdir()
    path.write_bytes(gd.SerializeToString())
    xv = np.random.default_rng(0).normal(size=(3, 6, 4)).astype(np.float32)
    with gs.restore(str(path)) as f:
        want = f.run("outputs", {"seq": xv})
    code, stdout, err = cli(capfd, "thaw", path, "--scopes", *diag, "--out", tmp_path / "t", "--json")
    assert code == 0, err
    assert json.loads(stdout)["variables"] == {n: [5] for n in diag}
    with gs.restore(str(tmp_path / "t")) as t:
        assert sorted(t.variables) == diag
        assert t.run("outputs", {"seq": xv}).tobytes() == want.tobytes()


def test_thaw_keeps_every_op_name_beside_a_weights_scope(tmp_path, capfd):
    """The dense layout of tf.layers and Keras: the op ``logits`` beside the constant ``logits/kernel``,
    and a frozen resource variable's read (``logits/kernel/Read/ReadVariableOp``, an ``Identity`` once
    frozen). The variables were made before the graph was imported, so TensorFlow renamed the op
    ``logits`` to ``logits_1`` (a taken scope) and the read to ``..._1``, and ``inspect`` named
    ``logits_1:0`` as the likely output. Every op keeps its name and kind; the variables' own ops are
    the only new ones (and one Saver's); outputs are the frozen graph's bit for bit."""
    rng = np.random.RandomState(0)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        k = tf.identity(tf.constant(rng.randn(4, 3).astype(np.float32), name="logits/kernel"),
                        name="logits/kernel/Read/ReadVariableOp")
        b = tf.identity(tf.constant(rng.randn(3).astype(np.float32), name="logits/bias"), name="logits/bias/read")
        tf.nn.bias_add(tf.matmul(x, k, name="logits/MatMul"), b, name="logits")
    frozen = {n.name: n.op for n in g.as_graph_def().node}
    assert {"logits", "logits/kernel", "logits/kernel/Read/ReadVariableOp"} <= set(frozen)
    (tmp_path / "g").mkdir()
    path = tmp_path / "g" / "frozen.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    xv = rng.randn(5, 4).astype(np.float32)
    with gs.restore(str(path)) as f:
        want = f.run("logits", {"x": xv})
    r = thaw(str(path), ["logits"], str(tmp_path / "t"))
    assert sorted(r.variables) == ["logits/bias", "logits/kernel"]
    meta = tf1.MetaGraphDef()
    meta.ParseFromString((tmp_path / "t" / "model.ckpt.meta").read_bytes())
    thawed = {n.name: n.op for n in meta.graph_def.node}
    kept = {n: op for n, op in frozen.items() if n not in r.variables}
    assert {n: thawed.get(n) for n in kept} == kept
    new = set(thawed) - set(kept)
    own = {n for n in new if any(n == v or n.startswith(v + "/") for v in r.variables)}
    assert {thawed[v] for v in r.variables} == {"VarHandleOp"}
    assert {n.split("/")[0] for n in new - own} == {"save"}  # one Saver's ops (there were two: save_1/ too)
    with gs.restore(str(tmp_path / "t")) as t:
        assert t.run("logits", {"x": xv}).tobytes() == want.tobytes()
    outputs = []
    for model in (path, tmp_path / "t"):
        code, out, err = cli(capfd, "inspect", model, "--json")
        assert code == 0, err
        outputs.append(json.loads(out)["graph"]["outputs"])
    assert outputs[0] == outputs[1] == ["logits:0"]


def test_training_a_constant_a_partial_thaw_left_says_to_thaw_it_too(frozen_mlp, npz, tmp_path, capfd):
    """A graph thawed in part (hidden3 thawed, output left a constant): --trainable output matches no variable
    but a weight-like constant, and says to thaw it too (it said 'pattern 'output' matches no variable;
    closest scopes: hidden3'); a pattern that matches a variable too is not refused."""
    path, _, _ = frozen_mlp
    thawed = str(tmp_path / "thawed")
    thaw(path, ["hidden3"], thawed)
    said = (f"--trainable output: matches no variable of {thawed} but weight-like constants of its graph "
            "(output/biases, output/weights), which cannot train; thaw them too: thaw the frozen graph again with "
            "their scopes added, and train from its output")
    for command, more in (("plan", []), ("retrain", ["--data", npz, "--out", tmp_path / "o", "--quiet"])):
        code, _, err = cli(capfd, command, "--model", thawed, "--output", "output/BiasAdd", "--trainable", "output",
                           *more)
        lines = [line for line in err.splitlines() if line.startswith("graphsurgeon")]
        assert code == 2 and lines == [f"graphsurgeon {command}: error: {said}"], err
    assert not (tmp_path / "o").exists()
    code, _, err = cli(capfd, "plan", "--model", thawed, "--output", "output/BiasAdd", "--trainable", "re:hidden3|output")
    assert code == 0, err


def test_a_trainable_pattern_matching_one_weight_like_constant_says_it(frozen_mlp, tmp_path):
    """One constant is named in the singular (the message said 'weight-like constant(s) ... thaw them too')."""
    path, _, _ = frozen_mlp
    thawed = str(tmp_path / "thawed")
    thaw(path, ["hidden3"], thawed)
    with pytest.raises(gs.ConfigError) as e:
        gs.plan(gs.RetrainConfig(model=thawed, output="output/BiasAdd", trainable=["output/biases"]))
    assert str(e.value) == (f"trainable=output/biases: matches no variable of {thawed} but a weight-like constant of "
                            "its graph (output/biases), which cannot train; thaw it too: thaw the frozen graph again "
                            "with its scope added, and train from its output")
