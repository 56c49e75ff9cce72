"""What a new user met on the real models, said as it is: one line on stderr, exit status 2, naming
what is wrong and what to do (the cache and head read different tensors, the input fed a constant,
a cache directory under a file, a picture depth of 0 or without a picture, a multiplier pattern that also matches frozen
variables or the cut's left-out ones, two multipliers for one variable, a pattern matching only what the cut leaves out), and ``retrain --cache`` taking the input and feeds the cache was made with."""
import json
import os

import numpy as np
import pytest

from helpers import ROOT, cli

REAL_GAN = os.path.join(ROOT, "..", "shared", "realmodels", "gan_chadpro")
real = pytest.mark.skipif(not os.path.isdir(REAL_GAN), reason="../shared/realmodels is not here (a user's clone)")


def one_line(err):
    lines = [l for l in err.splitlines() if l and not l.startswith(("WARNING: All log", "I0000", "E0000", "W0000"))]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def gan_cache(tmp_path_factory):
    """The real GAN's discriminator features of x (``Relu_1``) cached for 40 rows: (data, cache)."""
    d = tmp_path_factory.mktemp("gan")
    rng = np.random.default_rng(0)
    np.savez(d / "d.npz", x=rng.uniform(-1, 1, (40, 784)).astype(np.float32), y=rng.integers(0, 2, 40))
    from graphsurgeon._src.cli import main

    assert main(["cache", "--model", REAL_GAN, "--cut", "Relu_1", "--data", str(d / "d.npz"), "--out",
                 str(d / "c"), "--quiet"]) == 0
    return d / "d.npz", d / "c"


@real
def test_a_head_on_another_tensor_than_the_cached_one_is_told_so(gan_cache, tmp_path, capfd):
    """The cache holds Relu_1 (the discriminator on x); a head on Relu (the discriminator on the
    generator's output, computed from z) was refused as "cached tensor 'Relu_1:0' is not in the
    model", though the model has it. A cache of another graph's tensor still says that."""
    _, cache = gan_cache
    code, _, err = cli(capfd, "retrain", "--model", REAL_GAN, "--cache", cache, "--head", "Relu:2",
                       "--out", tmp_path / "o", "--quiet")
    assert code == 2 and one_line(err) == (
        f"graphsurgeon retrain: error: {cache} holds the tensor 'Relu_1:0', but the head reads 'Relu:0', which is "
        "not computed from it (a run from a cache reads the cached tensor or a tensor above it): give --head "
        "Relu_1:2 for a new head on the cached tensor, or cache 'Relu:0' with the cache command")
    mlp = os.path.join(os.path.dirname(REAL_GAN), "mlp_bn_chen")
    code, _, err = cli(capfd, "retrain", "--model", mlp, "--cache", cache, "--head", "Relu:2",
                       "--out", tmp_path / "o", "--quiet")
    assert code == 2 and one_line(err) == (
        f"graphsurgeon retrain: error: {cache} holds the tensor 'Relu_1:0', which the graph of {mlp} does not "
        "have: the cache was made from another graph")
    assert not (tmp_path / "o").exists()


def _scaled_cache(tmp_path, capfd):
    """:func:`_scaled_net` cached at ``scaled`` as ``tmp_path/c`` with ``--feed scale=2`` and an 8-value
    ``shift`` from an .npy file: (prefix, the ``shift=FILE`` feed)."""
    prefix = _scaled_net(str(tmp_path))
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    np.save(tmp_path / "shift.npy", np.linspace(-1, 1, 8).astype(np.float32))
    shift = f"shift={tmp_path / 'shift.npy'}"
    code, _, err = cli(capfd, "cache", "--model", prefix, "--cut", "scaled", "--data", tmp_path / "d.npz", "--out",
                       tmp_path / "c", "--feed", "scale=2", shift, "--quiet")
    assert code == 0, err
    return prefix, shift


def _scaled_net(directory):
    """X[None, 6] -> hidden (8, relu) * scale[] + shift[8] (scaled) -> features (8, relu) -> logits (3), saved
    with Saver: two placeholders besides the input, ``scale`` (a scalar: its manifest keeps the
    value) and ``shift`` (8 values: only their digest)."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 6], name="X")
        init = tf1.glorot_uniform_initializer(seed=1)
        h = tf.nn.relu(tf.matmul(x, tf1.get_variable("w1", [6, 8], initializer=init)) + 0.1, name="hidden")
        h = tf.add(h * tf1.placeholder(tf.float32, [], name="scale"), tf1.placeholder(tf.float32, [8], name="shift"),
                   name="scaled")
        f = tf.nn.relu(tf.matmul(h, tf1.get_variable("w2", [8, 8], initializer=init)) + 0.1, name="features")
        tf.matmul(f, tf1.get_variable("w3", [8, 3], initializer=init), name="logits")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(s, os.path.join(directory, "m", "m.ckpt"))


def test_retrain_from_a_cache_takes_the_feeds_it_was_made_with(tmp_path, capfd):
    """--feed scale=2 given to cache was needed again by retrain --cache ("'features' also needs
    placeholder(s) scale"), though the manifest records it: a value it holds is taken, one it holds
    only by digest (8 values) must be given and is named; a different value is refused."""
    import json

    prefix, shift = _scaled_cache(tmp_path, capfd)
    retrain = ["retrain", "--model", prefix, "--cache", tmp_path / "c", "--head", "features:2", "--epochs", 1, "--quiet"]
    code, _, err = cli(capfd, *retrain, "--out", tmp_path / "o")
    assert code == 2 and one_line(err).startswith(
        f"graphsurgeon retrain: error: {tmp_path / 'c'} was made with --feed shift=VALUE (float32[8] sha256 ")
    assert one_line(err).endswith("a value its manifest records only by its digest: give the same value in --feed "
                                  "(the .npy file it was made with)")
    code, out, err = cli(capfd, *retrain, "--out", tmp_path / "o", "--feed", shift)
    assert code == 0, err
    assert (f"taken from what the cache {tmp_path / 'c'} was made with (its manifest), as the run gave none: input "
            "X:0; feed scale 2.0\n") in out  # shift was given: not taken
    with open(tmp_path / "o" / "metrics.json") as f:
        assert json.load(f)["config"]["feeds"] == {"shift": str(tmp_path / "shift.npy"), "scale": 2.0}
    code, _, err = cli(capfd, *retrain, "--out", tmp_path / "p", "--feed", shift, "scale=3")
    assert code == 2 and "(feed scale 2.0 -> 3.0)" in one_line(err)
    assert one_line(err).endswith("give the settings it was made with (--input and --feed left out are taken from the "
                                  "cache)")
    assert not (tmp_path / "p").exists()
    with open(tmp_path / "c" / "manifest.json") as f:  # a record that is no value is a damaged manifest
        m = json.load(f)
    m["fingerprint"]["feeds"]["scale"]["dtype"] = "no-such-dtype"
    with open(tmp_path / "c" / "manifest.json", "w") as f:
        json.dump(m, f)
    for record in ({"dtype": "no-such-dtype", "shape": [], "value": 2.0, "sha256": "0" * 64}, "2.0", {}):
        m["fingerprint"]["feeds"]["scale"] = record  # a record that is neither a value nor a digest
        with open(tmp_path / "c" / "manifest.json", "w") as f:
            json.dump(m, f)
        code, _, err = cli(capfd, *retrain, "--out", tmp_path / "p", "--feed", shift)
        assert code == 2 and one_line(err) == (f"graphsurgeon retrain: error: {tmp_path / 'c'}: the manifest's feed "
                                               f"'scale' is malformed ({record}); the manifest is damaged (delete the "
                                               "cache directory to rebuild it)")



def test_retrain_from_a_cache_reads_the_model_graph_once(tmp_path, capfd, monkeypatch):
    """retrain --cache read the model's meta graph twice: for the settings the cache's manifest records
    (cache.match.recorded_settings) and again to build the run's graph (a TF2 SavedModel flattened twice:
    0.6-0.9 s for basic-pitch's). It reads it once, and the run still takes what the manifest records."""
    from graphsurgeon._src import tf2

    prefix, shift = _scaled_cache(tmp_path, capfd)
    read = []
    real = tf2.read_saved_meta_graph
    monkeypatch.setattr(tf2, "read_saved_meta_graph", lambda source: read.append(source.path) or real(source))
    code, out, err = cli(capfd, "retrain", "--model", prefix, "--cache", tmp_path / "c", "--head", "features:2",
                         "--epochs", 1, "--quiet", "--out", tmp_path / "o", "--feed", shift)
    assert code == 0, err
    assert "as the run gave none: input X:0; feed scale 2.0\n" in out
    assert read == [prefix]


REAL_ESTIMATOR = os.path.join(os.path.dirname(REAL_GAN), "estimator_cnn_hsbarker")


@real
def test_retrain_from_a_cache_takes_the_input_it_was_made_with(tmp_path, capfd):
    """The Estimator's cut reads a queue: cache --input random_shuffle_queue_DequeueMany:1 worked, and
    retrain --cache without --input said "pass --input random_shuffle_queue_DequeueMany:1"."""
    import json

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.uniform(0, 1, (120, 784)).astype(np.float32), y=rng.integers(0, 10, 120))
    code, _, err = cli(capfd, "cache", "--model", REAL_ESTIMATOR, "--cut", "Reshape_1", "--input",
                       "random_shuffle_queue_DequeueMany:1", "--data", tmp_path / "d.npz", "--out", tmp_path / "c",
                       "--quiet")
    assert code == 0, err
    code, _, err = cli(capfd, "retrain", "--model", REAL_ESTIMATOR, "--cache", tmp_path / "c", "--head", "Reshape_1:10",
                       "--epochs", 1, "--out", tmp_path / "o", "--quiet")
    assert code == 0, err
    with open(tmp_path / "o" / "metrics.json") as f:
        assert json.load(f)["config"]["input"] == "random_shuffle_queue_DequeueMany:1"
    code, _, err = cli(capfd, "retrain", "--model", REAL_ESTIMATOR, "--cache", tmp_path / "c", "--head", "Reshape_1:10",
                       "--input", "random_shuffle_queue_DequeueMany:0", "--epochs", 1, "--out", tmp_path / "p", "--quiet")
    assert code == 2 and one_line(err).startswith(  # another output of the same op is another input
        f"graphsurgeon retrain: error: {tmp_path / 'c'} was made with input random_shuffle_queue_DequeueMany:1, and "
        "this run's input is 'random_shuffle_queue_DequeueMany:0'"), err


@real
def test_feeding_the_input_a_constant_says_it_is_the_input(tmp_path, capfd):
    """--feed x=1 where x is the GAN's input said "cannot tell the input of 'Relu_1': it reads
    placeholders x"; with --input x too, "'Relu_1' does not read placeholder 'x'"."""
    said = ("feed 'x': 'x' is the input of 'Relu_1' (the only placeholder it reads), which the data feeds; it cannot "
            "also be fed a constant: leave it out of --feed")
    for argv in (["plan", "--model", REAL_GAN, "--head", "Relu_1:2", "--feed", "x=1"],
                 ["cache", "--model", REAL_GAN, "--cut", "Relu_1", "--data", tmp_path / "d.npz", "--out", tmp_path / "c",
                  "--feed", "x:0=1"]):
        code, _, err = cli(capfd, *argv)
        assert code == 2 and one_line(err) == f"graphsurgeon {argv[0]}: error: {said}"
    code, _, err = cli(capfd, "plan", "--model", REAL_GAN, "--head", "Relu_1:2", "--feed", "x=1", "--input", "x")
    assert code == 2 and one_line(err) == ("graphsurgeon plan: error: feed 'x': 'x' is the input (--input x), which the "
                                           "data feeds; it cannot also be fed a constant: leave it out of --feed")
    assert not (tmp_path / "c").exists()


@real
def test_feeding_the_input_from_a_cache_or_while_training_says_it_is_the_input(gan_cache, tmp_path, capfd):
    """retrain --cache --feed x=1 said "'x' is the input (--input x:0)", an --input never given (the
    cache's manifest gave it); --train-feed x=1 said "'Relu_1' does not read placeholder 'x'", which
    is its input."""
    _, cache = gan_cache
    code, _, err = cli(capfd, "retrain", "--model", REAL_GAN, "--cache", cache, "--head", "Relu_1:2", "--feed", "x=1",
                       "--epochs", 1, "--quiet", "--out", tmp_path / "o")
    assert code == 2 and one_line(err) == (
        "graphsurgeon retrain: error: feed 'x': 'x' is the input of 'Relu_1' (the only placeholder it reads), which the "
        "data feeds; it cannot also be fed a constant: leave it out of --feed")
    for cache_args in ([], ["--cache", cache]):
        code, _, err = cli(capfd, "plan" if not cache_args else "retrain", "--model", REAL_GAN, *cache_args, "--head",
                           "Relu_1:2", "--train-feed", "x=1", *(["--epochs", 1, "--quiet", "--out", tmp_path / "o"]
                                                               if cache_args else []))
        assert code == 2 and one_line(err).endswith(
            "error: train feed 'x': 'x' is the input of 'Relu_1', which the data feeds; it cannot also be fed a "
            "constant while training: leave it out of --train-feed"), err
    assert not (tmp_path / "o").exists()


def test_feeding_every_placeholder_says_the_input_is_among_them(tmp_path, capfd):
    prefix = _scaled_net(str(tmp_path))
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "scaled:2", "--feed", "scale=2", "shift=0", "X=0")
    assert code == 2 and one_line(err) == (
        "graphsurgeon plan: error: --feed gives a value to every placeholder 'scaled' reads (X, scale, shift), its "
        "input among them, which the data feeds and cannot also be fed a constant: leave the input out of --feed")


def test_a_cache_out_that_is_a_file_says_so(seed004, npz, tmp_path, capfd):
    """It said "cache directory afile cannot be written (File exists)"; retrain says this."""
    (tmp_path / "afile").write_text("mine")
    code, _, err = cli(capfd, "cache", "--model", seed004[0], "--cut", "hidden2/Relu", "--data", npz, "--out",
                       tmp_path / "afile", "--quiet")
    assert code == 2 and one_line(err) == f"graphsurgeon cache: error: --out {tmp_path / 'afile'} exists and is not a " \
                                          "directory"
    assert (tmp_path / "afile").read_text() == "mine"


def test_plan_refuses_a_picture_depth_below_one_as_inspect_does(seed004, tmp_path, capfd):
    """plan --depth 0 drew the automatic depth (``depth or choose_depth(...)``) and --depth -1 cut the
    last name component off every box; inspect --depth 0 was refused."""
    said = ("expected an integer >= 1 (how many name components make a box of the picture: 1 draws hidden1/MatMul in "
            "the box hidden1), or leave it out for the deepest that keeps the picture to 60 boxes")
    for depth in (0, -1):
        code, out, err = cli(capfd, "plan", "--model", seed004[0], "--head", "hidden2/Relu:2", "--depth", depth,
                             "--dot", tmp_path / "p.dot")
        assert (code, out) == (2, "") and one_line(err) == f"graphsurgeon plan: error: --depth {depth}: {said}"
    assert not (tmp_path / "p.dot").exists()
    code, _, err = cli(capfd, "plan", "--model", seed004[0], "--head", "hidden2/Relu:2", "--depth", 1,
                       "--dot", tmp_path / "p.dot")
    assert code == 0, err
    import graphsurgeon as gs
    from graphsurgeon._src.retrain import build, picture

    with pytest.raises(gs.ConfigError, match=r"^depth=0: expected an integer >= 1"):
        picture(build(gs.RetrainConfig(model=seed004[0], head="hidden2/Relu:2"), values=False), depth=0)


def test_plan_refuses_a_depth_without_a_picture(seed004, tmp_path, capfd):
    """plan --depth 3 without --dot or --svg printed the plan and ignored the depth."""
    code, out, err = cli(capfd, "plan", "--model", seed004[0], "--head", "hidden2/Relu:2", "--depth", 3)
    assert (code, out) == (2, "") and one_line(err) == ("graphsurgeon plan: error: --depth 3 applies to the picture "
                                                        "only: give --dot FILE or --svg FILE too, or leave --depth out")
    code, _, err = cli(capfd, "plan", "--model", seed004[0], "--head", "hidden2/Relu:2", "--depth", 3,
                       "--dot", tmp_path / "p.dot")
    assert code == 0 and (tmp_path / "p.dot").exists(), err


def test_a_multiplier_pattern_that_also_matches_frozen_variables_says_so(seed004, npz, tmp_path, capfd):
    """--lr-mult 'hidden*=0.1' with only hidden3 trainable set hidden3's multiplier and said nothing of
    hidden1 and hidden2; plan's table and retrain agree, and both say it (retrain's --json in notes)."""
    import json

    base = ["--model", seed004[0], "--head", "hidden3/Relu:2", "--trainable", "hidden3", "--lr-mult", "hidden*=0.1"]
    said = ("--lr-mult 'hidden*=0.1' sets the multiplier of the 2 variables it matches that train from the first "
            "epoch; it ignores the 4 it matches that do not train (hidden1/biases, hidden1/weights, hidden2/biases, "
            "hidden2/weights)")
    code, out, err = cli(capfd, "plan", *base)
    assert code == 0, err
    assert f"-- note: {said}" in out.splitlines()
    assert [l.split()[0] for l in out.splitlines() if l.endswith("lr x0.1")] == ["hidden3/biases", "hidden3/weights"]
    code, out, err = cli(capfd, "retrain", *base, "--data", npz, "--out", tmp_path / "o", "--epochs", 1, "--quiet")
    assert code == 0 and said in out.splitlines(), err
    code, out, err = cli(capfd, "retrain", *base, "--unfreeze", "1:hidden2", "--data", npz, "--out", tmp_path / "p",
                         "--epochs", 1, "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["notes"] == [
        "--lr-mult 'hidden*=0.1' sets the multiplier of the 2 variables it matches that train from the first epoch; "
        "it ignores the 2 it matches that do not train (hidden1/biases, hidden1/weights); the 2 it matches that an "
        "unfreeze stage starts (hidden2/biases, hidden2/weights) take that stage's multiplier"]
    code, out, err = cli(capfd, "plan", "--model", seed004[0], "--head", "hidden3/Relu:2", "--trainable", "hidden3",
                         "--lr-mult", "hidden3=0.1")
    assert code == 0 and "-- note" not in out


def test_retrain_from_a_cache_on_another_input_is_told_the_input_differs(tmp_path, capfd):
    """A cache made with --feed scale=2 and retrain --cache --input scale: the recorded value of
    scale is not taken as a feed of the run's own input (which said that the input 'scale' cannot also
    be fed a constant, a --feed the user never gave), nor is the cut's other placeholder X named as
    one to feed (a value for X was then refused as stale): the run is told the cache's input."""
    prefix, shift = _scaled_cache(tmp_path, capfd)
    code, _, err = cli(capfd, "retrain", "--model", prefix, "--cache", tmp_path / "c", "--head", "features:2",
                       "--input", "scale", "--feed", shift, "--epochs", 1, "--quiet", "--out", tmp_path / "o")
    told = (f"graphsurgeon retrain: error: {tmp_path / 'c'} was made with input X:0, and this run's input is 'scale': "
            "the cached activations were computed from X:0; leave --input out (the cache's input is taken), or make "
            "a cache from --input scale with the cache command\n")
    assert code == 2 and err == told, err
    assert not (tmp_path / "o").exists()
    code, _, err = cli(capfd, "retrain", "--model", prefix, "--cache", tmp_path / "c", "--head", "features:2",
                       "--input", "scale", "--feed", shift, "X=0", "--epochs", 1, "--quiet", "--out", tmp_path / "o")
    assert code == 2 and err == told, err
    code, _, err = cli(capfd, "retrain", "--model", prefix, "--cache", tmp_path / "c", "--head", "features:2",
                       "--input", "X:0", "--feed", shift, "--epochs", 1, "--quiet", "--out", tmp_path / "o")
    assert code == 0, err


@real
def test_a_pattern_matching_only_variables_the_cut_leaves_out_says_so(capfd):
    """--trainable gen (and --unfreeze 1:gen, --reinit gen, --lr-mult dis/D_w2=0.5) with a head on
    Relu_1 said "pattern 'gen' matches no variable; closest scopes: dis", though the GAN has gen: the
    graph is cut down to what Relu_1 needs. --lr-mult 'dis/*=0.5' said nothing of the cut-away
    dis/D_b2 and dis/D_w2; two patterns giving dis/D_w1 other multipliers left the last one's."""
    import graphsurgeon as gs

    base = ["plan", "--model", REAL_GAN, "--head", "Relu_1:3"]
    gen = ("matches only variables the cut leaves out (4: gen/G_b1, gen/G_b2, gen/G_w1, gen/G_w2): the graph is "
           "pruned to what 'Relu_1' needs; cut above them (--head or --output a tensor that reads them) or leave the "
           "pattern out")
    for flag, item, pattern, said in [
            ("--trainable", "gen", "gen", gen), ("--unfreeze", "1:gen", "gen", gen), ("--reinit", "gen", "gen", gen),
            ("--lr-mult", "dis/D_w2=0.5", "dis/D_w2", gen.replace("4: gen/G_b1, gen/G_b2, gen/G_w1, gen/G_w2",
                                                                  "1: dis/D_w2"))]:
        code, out, err = cli(capfd, *base, flag, item)
        named = f"pattern '{pattern}' " if item != pattern else ""  # --trainable 'gen': pattern 'gen' said it twice
        assert (code, out) == (2, "") and one_line(err) == f"graphsurgeon plan: error: {flag} '{item}': {named}{said}"
    with pytest.raises(gs.PatternError, match=r"^trainable='gen/G_w1': matches only variables the "
                                              r"cut leaves out \(1: gen/G_w1\): the graph is pruned to what 'Relu_1' "
                                              r"needs from 'x'; cut above them \(head= or output= a tensor that reads "
                                              r"them; input= a tensor below them\) or leave the pattern out$"):
        gs.plan(gs.RetrainConfig(model=REAL_GAN, head="Relu_1:3", input="x", trainable=["gen/G_w1"]))
    code, out, err = cli(capfd, *base, "--trainable", "dis", "--lr-mult", "dis/*=0.5")
    assert code == 0, err
    assert ("-- note: --lr-mult 'dis/*=0.5' sets the multiplier of the 2 variables it matches that train from the "
            "first epoch; it ignores the 2 it matches that the cut leaves out of the graph (dis/D_b2, dis/D_w2)"
            in out.splitlines())
    code, out, err = cli(capfd, *base, "--trainable", "dis", "--lr-mult", "dis/D_w1=0.1", "dis/*=0.5")
    assert (code, out) == (2, "") and one_line(err) == (
        "graphsurgeon plan: error: --lr-mult 'dis/D_w1=0.1' and --lr-mult 'dis/*=0.5' both match dis/D_w1, with "
        "different multipliers; give each variable one: narrow a pattern so that it leaves dis/D_w1 out")


def test_an_input_naming_an_output_a_placeholder_lacks_is_refused(tmp_path, capfd):
    """--input x:5 for a placeholder x (one output) was taken as x:0 (the real GAN planned and trained)."""
    prefix = _scaled_net(str(tmp_path))
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "features:2", "--input", "X:5", "--feed", "scale=1",
                       "shift=0")
    assert code == 2 and one_line(err) == (f"graphsurgeon plan: error: {prefix}.meta: op 'X' has no output 'X:5' (a "
                                           "placeholder has one: 'X:0')"), err
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "features:2", "--input", "X:0", "--feed", "scale=1",
                       "shift=0")
    assert code == 0, err


def test_a_train_feed_the_cut_does_not_read_names_the_train_feed(tmp_path, capfd):
    """--train-feed scale=1 for a placeholder the cut does not read said "feed 'scale' ... leave it out
    of --feed", a flag the user had not given."""
    prefix = _scaled_net(str(tmp_path))
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "hidden:2", "--train-feed", "scale=1")
    assert code == 2 and one_line(err) == ("graphsurgeon plan: error: train feed 'scale': 'hidden' does not read "
                                           "placeholder 'scale' (it reads X); leave it out of --train-feed"), err
    code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "hidden:2", "--feed", "scale=1")
    assert code == 2 and one_line(err).endswith("leave it out of --feed"), err


def test_a_feed_the_cut_does_not_read_is_named_before_the_input_is_guessed(tmp_path, capfd):
    """--feed istat=0 (a typo of the real TF 1.1 LSTM's istate) said "cannot tell the input of '...concat':
    it reads placeholders input, istate; pass --input NAME for the input and --feed NAME=VALUE for the
    others", a --feed the user had given; with --input too, "also needs placeholder(s) istate"."""
    prefix = _scaled_net(str(tmp_path))
    for extra in ([], ["--input", "X"]):
        code, _, err = cli(capfd, "plan", "--model", prefix, "--head", "scaled:2", "--feed", "scal=2", "shift=0", *extra)
        assert code == 2 and one_line(err) == (
            "graphsurgeon plan: error: feed 'scal': 'scaled' does not read placeholder 'scal' (it reads X, scale, "
            "shift); leave it out of --feed"), err
    code, _, err = cli(capfd, "cache", "--model", prefix, "--cut", "scaled", "--data", tmp_path / "d.npz", "--out",
                       tmp_path / "c", "--feed", "scale=2", "shift=0", "features=1")
    assert code == 2 and one_line(err) == (
        "graphsurgeon cache: error: feed 'features': 'scaled' does not read placeholder 'features' (it reads X, scale, "
        "shift); leave it out of --feed"), err
    assert not (tmp_path / "c").exists()


def test_a_cut_below_every_variable_lists_the_checkpoint_it_drops(tmp_path, capfd):
    """plan --head x:3 on the real GAN (a head on its input) said '-- 2 variables: 2 new', its 28
    checkpoint variables not a word, where a head on Relu_1 listed the gen/* it drops."""
    prefix = _scaled_net(str(tmp_path))
    code, out, err = cli(capfd, "plan", "--model", prefix, "--head", "X:2", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["counts"]["dropped"] == 3 and plan["counts"]["new"] == 2, plan["counts"]
    assert sorted(v["name"] for v in plan["variables"] if v["status"] == "dropped") == ["w1", "w2", "w3"]
