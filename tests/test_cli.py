"""The CLI contract: inspect/plan/retrain with --json, errors as one line and exit code 2."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from graphsurgeon._src.cli import main

from helpers import ROOT, run_cli, tree_hash


def our_stderr(text):
    """stderr without TensorFlow's own C++ start-up banners."""
    return [l for l in text.splitlines() if l and not l.startswith(("WARNING: All log", "I0000", "E0000", "W0000"))]


def test_inspect_json(seed004_adam, capsys):
    prefix, _, _ = seed004_adam
    assert main(["inspect", prefix, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    names = {v["name"]: v for v in r["variables"]}
    assert names["hidden1/weights"] == {"name": "hidden1/weights", "shape": [500, 300], "dtype": "float32",
                                        "bytes": 600000, "kind": "model"}
    assert names["hidden1/weights/Adam"]["kind"] == "optimizer" and names["global_step"]["kind"] == "optimizer"
    assert r["scopes"]["hidden1"]["variables"] == 6
    assert r["graph"]["inputs"][0]["name"] == "X:0" and r["graph"]["outputs"][0] == "output/BiasAdd:0"


def test_inspect_text(seed004, capsys):
    prefix, _, _ = seed004
    assert main(["inspect", prefix]) == 0
    out = capsys.readouterr().out
    assert "[hidden1] 2 variables" in out and "likely inputs: X:0 float32 [None, 500]" in out


def test_inspect_text_counts_one_in_the_singular_and_names_the_prefix(tmp_path, capsys):
    """``1 variable`` and ``1 op`` (not ``1 variables``), the header ``PATH: checkpoint (prefix P)`` for a
    checkpoint given by its directory, and no prefix for a frozen graph of one op."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default(), tf1.Session() as s:
        w = tf1.get_variable("only/w", [2], initializer=tf1.zeros_initializer())
        tf.constant(1.0, name="lone/c")
        s.run(w.initializer)
        prefix = tf1.train.Saver().save(s, str(tmp_path / "ckpt" / "m"))
    with tf.Graph().as_default() as g:
        tf.constant(1.0, name="c")
    (tmp_path / "one.pb").write_bytes(g.as_graph_def().SerializeToString())
    assert main(["inspect", str(tmp_path / "ckpt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [f"{tmp_path / 'ckpt'}: checkpoint (prefix {prefix})", "1 variable, 8 B", "[only] 1 variable, 8 B"]
    assert [l.split() for l in lines if l.startswith("  lone")] == [["lone", "1", "op"]]
    assert main(["inspect", str(tmp_path / "one.pb")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [f"{tmp_path / 'one.pb'}: frozen", "graph: 1 op", "  (root)  1 op"]


def test_inspect_depth_below_one_is_refused(seed004, capfd):
    """--depth 0 grouped every variable under one scope named '' and printed it as '[]'."""
    capfd.readouterr()
    assert main(["inspect", seed004[0], "--depth", "0"]) == 2
    assert our_stderr(capfd.readouterr().err) == [
        "graphsurgeon inspect: error: --depth 0: expected an integer >= 1 (how many name components make a scope: "
        "1 groups hidden1/weights under hidden1)"]


def test_plan_json(seed004, capsys):
    prefix, _, _ = seed004
    assert main(["plan", "--model", prefix, "--head", "hidden3/Relu:2", "--trainable", "hidden3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    rows = {v["name"]: v for v in r["variables"]}
    assert rows["hidden3/weights"]["status"] == "restored" and rows["hidden3/weights"]["trainable"] is True
    assert rows["hidden2/weights"]["trainable"] is False
    assert rows["output/weights"]["status"] == "dropped"
    assert rows["head/logits/kernel"] == {"name": "head/logits/kernel", "shape": [50, 2], "dtype": "float32",
                                          "status": "new", "trainable": True, "checkpoint_name": None,
                                          "checkpoint_shape": None, "lr_mult": 1.0, "checkpoint_dtype": None,
                                          "trains_from": 1}
    assert all({"name", "shape", "status", "trainable"} <= set(v) for v in r["variables"])


def test_plan_without_a_cut_reinitializes_what_reinit_matches_and_refuses_a_pattern_matching_nothing(seed004, capfd):
    """Without --head or --output the whole graph is planned; --reinit was ignored there (the variable said
    'restored', a pattern matching nothing passed)."""
    prefix, _, _ = seed004
    statuses = []
    for extra in ([], ["--reinit", "output"]):
        assert main(["plan", "--model", prefix, "--json", *extra]) == 0
        statuses.append({v["name"]: v["status"] for v in json.loads(capfd.readouterr().out)["variables"]})
    plain, reinit = statuses
    assert {n for n in plain if plain[n] != reinit[n]} == {"output/weights", "output/biases"}
    assert reinit["output/weights"] == "reinitialized" and plain["output/weights"] == "restored"
    assert main(["plan", "--model", prefix, "--reinit", "no_such_scope"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pattern 'no_such_scope' matches no variable" in err[0]


def test_retrain_from_npz_and_plan_file(seed004, tmp_path):
    prefix, x, _ = seed004
    y = (x[:, 3] > 0).astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    (tmp_path / "plan.toml").write_text(f'model = "{prefix}"\nhead = "hidden3/Relu:2"\ntrainable = ["hidden3"]\n'
                                        'lr-mult = ["hidden3=0.1"]\nepochs = 2\n')
    before = tree_hash(prefix)
    p = run_cli("retrain", "--plan", str(tmp_path / "plan.toml"), "--data", str(tmp_path / "data.npz"),
                "--out", str(tmp_path / "out"), "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["epochs"] == 2 and os.path.isdir(r["saved_model"]) and r["metrics"]["train"]["examples"] > 0
    assert tree_hash(prefix) == before
    # The out dir exists now: a second run refuses to overwrite without --overwrite.
    p = run_cli("retrain", "--plan", str(tmp_path / "plan.toml"), "--data", str(tmp_path / "data.npz"),
                "--out", str(tmp_path / "out"), "--quiet")
    assert p.returncode == 2 and our_stderr(p.stderr)[-1].startswith("graphsurgeon retrain: error:") and "--overwrite" in p.stderr


@pytest.mark.parametrize("args,needle", [
    (["inspect", "/nonexistent/model.ckpt"], "no checkpoint, graph or SavedModel at /nonexistent/model.ckpt"),
    (["plan", "--model", "{prefix}", "--head", "hidden3/Relu:2", "--trainable", "hiden3"], "--trainable: pattern 'hiden3' matches no variable; closest scopes: hidden3"),
    (["plan", "--model", "{prefix}", "--head", "hidden3/Relu:2", "--unfreeze", "2:hiden2"], "--unfreeze: pattern 'hiden2' matches no variable"),
    (["plan", "--model", "{prefix}", "--head", "hidden3/Relu"], "head 'hidden3/Relu': expected CUT:N_CLASSES"),
    (["plan", "--model", "{prefix}", "--head", "hidden9/Relu:2"], "no op 'hidden9/Relu'"),
    (["retrain", "--model", "{prefix}", "--head", "hidden3/Relu:2", "--data", "/nope.npz", "--out", "{tmp}"], "data /nope.npz: no such file"),
    (["plan", "--model", "{prefix}.index", "--head", "hidden3/Relu:2"], "is the index file of checkpoint prefix"),
    (["plan", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_errors_are_one_line_exit_2(seed004, tmp_path, args, needle):
    prefix, _, _ = seed004
    args = [a.format(prefix=prefix, tmp=tmp_path / "o") for a in args]
    p = run_cli(*args)
    lines = our_stderr(p.stderr)
    assert p.returncode == 2
    assert len(lines) == 1, lines
    assert needle in lines[0]
    assert "Traceback" not in p.stderr


def test_retrain_from_an_image_folder(tmp_path):
    """retrain.py's layout end to end: decode, resize to the input size, hash split, train, export."""
    from legacy_models import tiny_convnet

    prefix = tiny_convnet(str(tmp_path))
    write_images(tmp_path / "photos", 12)
    p = run_cli("retrain", "--model", prefix, "--head", "pool:2", "--head-hidden", "8", "--head-activation", "tanh",
                "--data", str(tmp_path / "photos"), "--out", str(tmp_path / "out"), "--epochs", "3", "--json", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r["metrics"]["train"]["examples"] + r["metrics"].get("validation", {}).get("examples", 0) \
        + r["metrics"].get("test", {}).get("examples", 0) == 24
    plan = json.load(open(tmp_path / "out" / "plan.json"))
    assert plan["trainable"] == ["head/dense_0/bias", "head/dense_0/kernel", "head/logits/bias", "head/logits/kernel"]
    # the class names travel with the model: labels.txt and a `classes` output naming the top class
    assert open(tmp_path / "out" / "labels.txt").read() == "blue\nred\n"
    import tensorflow as tf

    fn = tf.saved_model.load(str(tmp_path / "out" / "saved_model")).signatures["serving_default"]
    out = fn(inputs=tf.zeros([3, 8, 8, 3]))
    top = out["probabilities"].numpy().argmax(1)
    assert [c.decode() for c in out["classes"].numpy()] == [["blue", "red"][i] for i in top]
    p = run_cli("retrain", "--model", prefix, "--head", "pool:2", "--data", str(tmp_path / "photos"),
                "--out", os.path.join(os.path.dirname(prefix), "out"), "--epochs", "1", "--quiet")
    home = os.path.dirname(os.path.realpath(prefix))
    assert p.returncode == 2 and (f"is inside {home}, a directory the model is read from; the output may not go in "
                                  "or below one: choose a directory elsewhere") in p.stderr, p.stderr


def test_saved_model_cli_runs_the_export(seed004, tmp_path):
    prefix, x, _ = seed004
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    p = run_cli("retrain", "--model", prefix, "--head", "hidden3/Relu:2", "--data", str(tmp_path / "d.npz"),
                "--out", str(tmp_path / "out"), "--epochs", "1", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    np.save(tmp_path / "in.npy", x[:2])
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    q = subprocess.run([cli, "run", "--dir", str(tmp_path / "out" / "saved_model"), "--tag_set", "serve",
                        "--signature_def", "serving_default", "--inputs", f"inputs={tmp_path / 'in.npy'}"],
                       capture_output=True, text=True)
    assert q.returncode == 0, q.stderr[-2000:]
    assert "Result for output key logits" in q.stdout and "Result for output key probabilities" in q.stdout
    assert "Result for output key classes" in q.stdout


def write_images(root, per_class):
    """retrain.py's layout: root/red/*.png and root/blue/*.png, 13x11 pixels of varied shades."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for c, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            img = (np.array(color, np.float64) * rng.uniform(0.3, 1.0, size=(13, 11, 1))).astype(np.uint8)
            with open(os.path.join(root, c, f"{c}{i}.png"), "wb") as f:
                f.write(tf.io.encode_png(img).numpy())


def test_help_usage_and_path_errors_do_not_import_tensorflow(tmp_path):
    code = ("import sys\nfrom graphsurgeon._src.cli import main\n"
            "for argv in (['inspect', '/nonexistent/model.ckpt'], ['plan', '--model', '/nope', '--head', 'x:2']):\n"
            "    assert main(argv) == 2\n"
            "try:\n    main(['retrain', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('tensorflow' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "False"
    assert "example:\n  graphsurgeon retrain --model run/" in p.stdout


def test_plan_draws_the_surgery(seed004, tmp_path, capsys):
    prefix, _, _ = seed004
    dot = tmp_path / "p.dot"
    assert main(["plan", "--model", prefix, "--head", "hidden3/Relu:2", "--trainable", "hidden3", "--lr-mult",
                 "hidden3=0.5", "--dot", str(dot)]) == 0
    text = dot.read_text()
    from graphsurgeon._src.picture import count_boxes

    assert count_boxes(text) == 6  # X, hidden1-3, head/logits, and the dropped old output
    assert 'label="hidden3\\ntrainable\\nlr x0.5\\ncut: hidden3/Relu", fillcolor="#ffc870", penwidth=3' in text
    assert 'label="hidden1\\nfrozen"' in text and 'label="head/logits\\nnew\\noutput: ' in text
    assert 'label="output\\ndropped", style="rounded,dashed"' in text and 'label="X\\ninput: X:0"' in text
    import shutil as sh

    if sh.which("dot"):
        assert main(["plan", "--model", prefix, "--head", "hidden3/Relu:2", "--svg", str(tmp_path / "p.svg")]) == 0
        assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")


def test_library_errors_name_arguments_and_the_cli_speaks_flags(seed004, capfd):
    prefix, _, _ = seed004
    with pytest.raises(Exception) as e:
        import graphsurgeon as gs

        gs.retrain(gs.RetrainConfig(model=prefix), None, "")
    assert "out_dir=DIR" in str(e.value) and "--out" not in str(e.value)
    capfd.readouterr()
    assert main(["cache", "--model", prefix, "--cut", "hidden2/Relu", "--data", "x.npz", "--out", "c",
                 "--feed", "keep_prob=1"]) == 2
    err = capfd.readouterr().err
    assert "leave it out of --feed" in err and "feeds=" not in err


def test_cache_names_the_cut_point_cut_and_still_takes_the_old_spelling(capfd):
    from graphsurgeon._src.cli import build_parser

    for flag in ("--cut", "--tensor"):  # --tensor: the old spelling, still accepted
        args = build_parser().parse_args(["cache", "--model", "m", flag, "hidden2/Relu", "--data", "d", "--out", "o"])
        assert args.cut == "hidden2/Relu" and "tensor" not in vars(args)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cache", "--help"])
    out = " ".join(capfd.readouterr().out.split())
    assert "--cut TENSOR, --tensor TENSOR" in out and "--tensor is its old spelling" in out


def test_plan_refuses_what_retrain_refuses(seed004, npz, tmp_path, capfd):
    """A float16 value for a float32 variable: plan shows the row, then refuses as retrain does (one
    line, exit 2) unless --allow-cast (plan once exited 0 where retrain refused); so with a shape
    mismatch and a missing variable."""
    import shutil

    import tensorflow as tf

    from helpers import ckpt, cli, half_checkpoint

    tf1 = tf.compat.v1
    prefix, _, _ = seed004
    src = ckpt(prefix)
    half = half_checkpoint(prefix, tmp_path / "m" / "half.ckpt")
    refusal = ("error: 1 variable cannot be restored: hidden1/weights: the checkpoint holds float16 but the graph's "
               "variable is float32 (pass --allow-cast to cast it)")
    code, out, err = cli(capfd, "plan", "--model", half, "--head", "hidden3/Relu:2")
    assert (code, our_stderr(err)) == (2, ["graphsurgeon plan: " + refusal])
    assert "hidden1/weights        restored       no    [500, 300]  (cast from float16)" in out
    code, out, err = cli(capfd, "plan", "--model", half, "--head", "hidden3/Relu:2", "--json")
    assert (code, out, our_stderr(err)) == (2, "", ["graphsurgeon plan: " + refusal])  # no report to mistake
    code, out, err = cli(capfd, "retrain", "--model", half, "--head", "hidden3/Relu:2", "--data", npz,
                         "--out", tmp_path / "o", "--quiet")
    assert (code, our_stderr(err)) == (2, ["graphsurgeon retrain: " + refusal])
    code, out, err = cli(capfd, "plan", "--model", half, "--head", "hidden3/Relu:2", "--allow-cast", "--json")
    assert code == 0, err
    assert json.loads(out)["counts"]["cast"] == 1
    # a shape mismatch and a variable the checkpoint lacks: the same refusals as retrain's
    g = tf.Graph()
    with g.as_default():
        vs = [tf1.Variable(np.zeros(6, np.float32) if n == "output/biases" else v, name=n)
              for n, v in src.items() if n != "output/weights"]
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            odd = tf1.train.Saver(vs).save(s, str(tmp_path / "m2" / "odd.ckpt"), write_meta_graph=False)
    shutil.copy(prefix + ".meta", odd + ".meta")
    code, out, err = cli(capfd, "plan", "--model", odd)
    assert (code, our_stderr(err)) == (2, [
        "graphsurgeon plan: error: 2 variables cannot be restored: output/biases: graph shape [5] but checkpoint "
        "'output/biases' has [6] (drop it from the restore, or replace the layer with a new head); output/weights: not "
        "in the checkpoint (pass --allow-missing to initialize it)"])
    assert "output/biases" in out and "shape_mismatch" in out and "missing" in out


def test_plan_says_when_unfrozen_layers_start_and_lr_mult_needs_a_trainable_variable(seed004, npz, tmp_path, capfd):
    """--unfreeze 2:hidden2 trains hidden2 from the 3rd epoch: plan's train column says so (it said
    'yes', as if from the start); an --lr-mult that would change nothing is refused by plan and retrain
    alike (it was silently ignored)."""
    from helpers import cli

    prefix = seed004[0]
    base = ["--model", prefix, "--head", "hidden3/Relu:2", "--trainable", "hidden3"]
    code, out, err = cli(capfd, "plan", *base, "--unfreeze", "2:hidden2=0.1")
    assert code == 0, err
    rows = {l.split()[0]: l for l in out.splitlines()}
    assert rows["hidden2/weights"] == "hidden2/weights        restored       from 3 [300, 100]  lr x0.1"
    assert rows["hidden3/weights"] == "hidden3/weights        restored       yes    [100, 50]"
    assert rows["hidden1/weights"] == "hidden1/weights        restored       no     [500, 300]"
    assert out.splitlines()[-2].endswith("; 6 trainable (2 from a later epoch, the one their train column names)")
    code, out, err = cli(capfd, "plan", *base, "--unfreeze", "2:hidden2=0.1", "--json")
    trains_from = {v["name"]: v["trains_from"] for v in json.loads(out)["variables"]}
    assert (trains_from["hidden2/biases"], trains_from["hidden3/weights"], trains_from["head/logits/kernel"],
            trains_from["hidden1/weights"]) == (3, 1, 1, None)
    for extra, said in [
        (["--lr-mult", "hidden2=0.1"], "--lr-mult 'hidden2=0.1': hidden2 matches only variables that do not train "
                                       "(hidden2/biases, hidden2/weights); make them train (--trainable hidden2) or "
                                       "leave the multiplier out"),
        (["--lr-mult", "hidden2=0.1", "--unfreeze", "2:hidden2"],
         "--lr-mult 'hidden2=0.1': hidden2 matches only variables that start training at an unfreeze stage "
         "(hidden2/biases, hidden2/weights); that stage sets their multiplier: give it there (--unfreeze "
         "EPOCH:hidden2=0.1)"),
        (["--lr-mult", "hiden3=0.1"], "--lr-mult: pattern 'hiden3' matches no variable; closest scopes: hidden3"),
    ]:
        for command, more in (("plan", []), ("retrain", ["--data", npz, "--out", tmp_path / "o", "--quiet"])):
            code, out, err = cli(capfd, command, *base, *extra, *more)
            assert code == 2 and our_stderr(err)[0].startswith(f"graphsurgeon {command}: error: {said}"), err
            assert len(our_stderr(err)) == 1
    assert not (tmp_path / "o").exists()


def test_retrain_refuses_data_and_cache_together(seed004, tmp_path, capfd):
    """A cache holds the examples it was made from: --data beside it (here of the wrong shape) was
    ignored; now the pair is refused before anything is read or written."""
    prefix, _, _ = seed004
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 7), np.float32), y=np.zeros(4, np.int64))
    capfd.readouterr()
    assert main(["retrain", "--model", prefix, "--head", "hidden3/Relu:2", "--data", str(tmp_path / "wrong.npz"),
                 "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert our_stderr(capfd.readouterr().err) == [
        f"graphsurgeon retrain: error: --data {tmp_path / 'wrong.npz'} and --cache {tmp_path / 'c'}: give one, not "
        "both (a cache holds the examples it was made from); to train on new data, cache it first with the cache "
        "command, or leave out --cache to train from the data"]
    assert not os.path.exists(tmp_path / "o")


def _tiny_frozen_graph(path):
    """A frozen GraphDef with one weight-like constant, ``dense/kernel``."""
    import tensorflow as tf

    path.parent.mkdir()
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        tf.matmul(x, tf.constant(np.ones((2, 2), np.float32), name="dense/kernel"), name="dense/MatMul")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return str(path)


def _writers(prefix, npz, pb, out):
    """``[(argv, what names out)]``: retrain, thaw, migrate and cache, each told to write at ``out`` (cache
    said "cache directory afile/x cannot be written (Not a directory)", through a check of its own)."""
    return [(["retrain", "--model", prefix, "--head", "hidden3/Relu:2", "--data", npz, "--out", out, "--quiet"],
             f"--out {out}"), (["thaw", pb, "--scopes", "dense", "--out", out], f"--out {out}"),
            (["migrate", prefix, out], f"destination {out}"),
            (["cache", "--model", prefix, "--cut", "hidden2/Relu", "--data", npz, "--out", out, "--quiet"],
             f"--out {out}")]


def test_an_out_under_a_file_says_so(seed004, npz, tmp_path, capfd):
    (tmp_path / "afile").write_text("mine")
    pb = _tiny_frozen_graph(tmp_path / "g" / "f.pb")
    for argv, what in _writers(seed004[0], npz, pb, str(tmp_path / "afile" / "x")):
        capfd.readouterr()
        assert main(argv) == 2
        assert our_stderr(capfd.readouterr().err) == [
            f"graphsurgeon {argv[0]}: error: {what}: '{tmp_path / 'afile'}' is a file, not a directory"]
    assert sorted(os.listdir(tmp_path)) == ["afile", "g"] and (tmp_path / "afile").read_text() == "mine"


def test_an_out_where_no_directory_can_be_made_is_named(seed004, npz, tmp_path, capfd):
    """/proc: access bits (as root) allow writing, but no directory can be made there; retrain, thaw,
    migrate and merge-heads named their internal staging folder (/proc/.tmp-retrain-...)."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc")
    pb = _tiny_frozen_graph(tmp_path / "g" / "f.pb")
    for argv, what in _writers(seed004[0], npz, pb, "/proc/gs_out"):
        capfd.readouterr()
        assert main(argv) == 2
        err = our_stderr(capfd.readouterr().err)
        assert len(err) == 1 and err[0].startswith(f"graphsurgeon {argv[0]}: error: {what} cannot be written: "), err
        assert ".tmp-" not in err[0]
    import graphsurgeon as gs

    with pytest.raises(gs.ConfigError, match=r"^out=/proc/gs_out cannot be written: "):
        gs.merge_heads(["no/such/model"], "features", "/proc/gs_out")


def test_an_unwritable_out_is_named_in_one_line(seed004, npz, tmp_path):
    """retrain and thaw named their internal staging folder, migrate printed a bare OSError. A
    directory without write permission (as root: inside a user namespace, where root has no
    capability over files) and a read-only file system (a tmpfs mounted read-only in a private
    mount namespace, root only) are named with the user's path, in one line."""
    root = os.geteuid() == 0
    if root and subprocess.run(["unshare", "--mount", "unshare", "--user", "true"]).returncode:
        pytest.skip("needs unshare --mount and --user (private mount and user namespaces)")
    pb = _tiny_frozen_graph(tmp_path / "g" / "f.pb")
    (tmp_path / "locked").mkdir(mode=0o555)
    (tmp_path / "ro").mkdir()
    places = {"locked": f"permission denied in {tmp_path / 'locked'}"}
    if root:
        places["ro"] = f"{tmp_path / 'ro'} is on a read-only file system"
    runs = [(argv, f"graphsurgeon {argv[0]}: error: {what} cannot be written: {why}") for place, why in places.items()
            for argv, what in _writers(seed004[0], npz, pb, str(tmp_path / place / "new" / "x"))]
    code = "import json, sys\nfrom graphsurgeon._src.cli import main\nfor a in json.loads(sys.argv[1]): main(a)\n"
    cmd = [sys.executable, "-c", code, json.dumps([argv for argv, _ in runs])]
    if root:
        cmd = ["unshare", "--mount", "sh", "-c", f"mount -t tmpfs -o ro,size=1m tmpfs {tmp_path / 'ro'} && exec "
               'unshare --user "$@"', "sh", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert our_stderr(p.stderr) == [line for _, line in runs]
    assert os.listdir(tmp_path / "locked") == []


def test_early_stopping_says_which_epoch_was_exported(seed004, npz, tmp_path, capfd):
    """fit restores the best validation epoch's trained values; the summary says so, and the final
    validation metrics (computed after the restore) are that epoch's."""
    capfd.readouterr()
    assert main(["retrain", "--model", seed004[0], "--head", "hidden3/Relu:2", "--trainable", "hidden3", "--data", npz,
                 "--out", str(tmp_path / "o"), "--epochs", "12", "--patience", "2", "--lr", "0.01", "--quiet"]) == 0
    out = capfd.readouterr().out.splitlines()
    history = json.load(open(tmp_path / "o" / "metrics.json"))["history"]
    best = max(range(len(history)), key=lambda i: (history[i]["validation_accuracy"], -history[i]["validation_loss"]))
    h = history[best]
    assert out[1] == (f"exported: the trained variables of epoch {best + 1} of {len(history)}, the best on validation "
                      f"(accuracy {h['validation_accuracy']:.4f}, loss {h['validation_loss']:.4f})")
    assert out[3].startswith(f"validation: accuracy {h['validation_accuracy']:.4f}  loss {h['validation_loss']:.4f}")


def test_the_export_holds_resource_variables_and_loads_without_warnings(seed004, npz, tmp_path):
    """Seed 004's checkpoint has reference variables (VariableV2): tf.saved_model.load logged, per
    variable and per function, 'Unable to create a python object ... reference variable'."""
    import logging

    import tensorflow as tf

    from graphsurgeon._src.storage.checkpoint import read_meta_graph
    from graphsurgeon._src.storage.paths import resolve

    assert any(n.op == "VariableV2" for n in read_meta_graph(resolve(seed004[0])).graph_def.node)
    assert main(["retrain", "--model", seed004[0], "--head", "hidden3/Relu:2", "--trainable", "hidden3", "--data", npz,
                 "--out", str(tmp_path / "o"), "--epochs", "1", "--quiet"]) == 0
    for path in ("saved_model", "checkpoint"):
        nodes = read_meta_graph(resolve(str(tmp_path / "o" / path))).graph_def.node
        ops = {n.op for n in nodes}
        assert "VarHandleOp" in ops and not ops & {"VariableV2", "Variable", "Assign"}, path
        savers = {n.name.split("/")[0] for n in nodes if n.op in ("SaveV2", "RestoreV2")}
        assert savers == {"save"}, (path, savers)  # one Saver's ops (a second, save_1/, came with the import)
    said = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = said.append
    logging.getLogger("tensorflow").addHandler(handler)
    try:
        served = tf.saved_model.load(str(tmp_path / "o" / "saved_model")).signatures["serving_default"]
        x = np.load(npz)["x"][:4]
        probs = served(inputs=tf.constant(x))["probabilities"].numpy()
    finally:
        logging.getLogger("tensorflow").removeHandler(handler)
    assert not [r.getMessage() for r in said if "reference variable" in r.getMessage()]
    import graphsurgeon as gs

    with gs.restore(str(tmp_path / "o" / "checkpoint")) as m:  # the checkpoint and its meta graph answer alike
        np.testing.assert_allclose(m.session.run("head/probabilities:0", {"X:0": x}), probs, rtol=0, atol=1e-6)


def test_a_local_cache_run_reports_its_time_and_what_its_rate_counts(seed004, npz, tmp_path, capfd):
    """The rate is over the whole run, restoring the model included: 'computed 40 (2 examples/s)' on a
    small data set read as a slow generator."""
    capfd.readouterr()
    assert main(["cache", "--model", seed004[0], "--cut", "hidden2/Relu", "--data", npz, "--out",
                 str(tmp_path / "c"), "--quiet"]) == 0
    out = capfd.readouterr().out
    assert re.search(r"; computed \d+ in \d+\.\d\d s \(\d+ examples/s over the whole run, restore included\),", out,
                     re.M), out


def test_migrate_help_says_what_merge_and_cast_take(capfd):
    from graphsurgeon._src.cli import build_parser

    # --merge had no help (the rules, --drop and --preset optimizer-slots leave a merged checkpoint whole), and
    # --cast's listed float16, bfloat16, float32 where float64 is taken too
    with pytest.raises(SystemExit):
        build_parser().parse_args(["migrate", "--help"])
    out = " ".join(capfd.readouterr().out.split())
    assert "--cast PAT=DTYPE [PAT=DTYPE ...] float16, bfloat16, float32, float64 (PAT matches each source's own " \
           "names; the float tensors it matches are cast, the others copied as they are)" in out
    assert "also copy every tensor of checkpoint OTHER, under PREFIX/ if given; the name rules, --keep, --drop and " \
           "--preset apply to SRC only" in out


def test_migrate_into_a_directory_writes_the_source_base_name_there_as_help_says(seed004, tmp_path, capfd):
    """migrate SRC DIR for an existing DIR wrote DIR/model.ckpt-N while --help said only "destination
    prefix (must not exist)"."""
    from graphsurgeon._src.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["migrate", "--help"])
    out = " ".join(capfd.readouterr().out.split())
    assert "dst destination prefix (must not exist), or a directory: the base name of SRC's checkpoint inside it " \
           "(DIR/model.ckpt for SRC run/model.ckpt; DIR/variables for a SavedModel or retrain's output)" in out
    (tmp_path / "out").mkdir()
    assert main(["migrate", seed004[0], str(tmp_path / "out"), "--quiet"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        os.path.basename(seed004[0]) + ext for ext in (".data-00000-of-00001", ".index"))


def test_migrate_of_a_saved_model_into_a_directory_writes_variables_as_help_says(tmp_path, capfd):
    """A SavedModel's checkpoint is variables/variables, so migrate SM DIR writes DIR/variables (kept: it is the
    SavedModel layout, and migrate SM NEW/variables/ writes NEW/variables/variables); README and --help said
    "SRC's base name", which is sm."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default(), tf1.Session() as s:
        w = tf1.Variable(np.ones(3, np.float32), name="w")
        s.run(w.initializer)
        builder = tf1.saved_model.Builder(str(tmp_path / "sm"))
        builder.add_meta_graph_and_variables(s, ["serve"])
        builder.save()
    (tmp_path / "out").mkdir()
    assert main(["migrate", str(tmp_path / "sm"), str(tmp_path / "out")]) == 0
    assert f"written to {tmp_path / 'out' / 'variables'};" in capfd.readouterr().out
    assert sorted(os.listdir(tmp_path / "out")) == ["variables.data-00000-of-00001", "variables.index"]
