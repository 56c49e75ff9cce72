"""retrain's output directory (``checkpoint/`` and ``saved_model/``, two copies of one model) is a model
to every command that takes one: each reads its ``saved_model/``, as merge-heads and add-head did (the
others refused it: 'pass DIR/saved_model (the SavedModel) or DIR/checkpoint'), a user who has just
retrained passing that directory next. Tried on a head retrained on the real 2018 MNIST GAN."""
import json
import os

import numpy as np
import pytest

from graphsurgeon._src.storage.paths import resolve

from helpers import ROOT, cli

GAN = os.path.join(ROOT, "..", "shared", "realmodels", "gan_chadpro")
pytestmark = pytest.mark.skipif(not os.path.isdir(GAN), reason="../shared/realmodels is not here (a user's clone)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``(retrain output directory, data.npz)``: a 3-class head on the GAN's discriminator features."""
    d = tmp_path_factory.mktemp("retrained")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (60, 784)).astype(np.float32)
    np.savez(d / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5))
    from graphsurgeon._src.cli import main

    assert main(["retrain", "--model", GAN, "--head", "Relu_1:3", "--data", str(d / "data.npz"), "--out",
                 str(d / "ganR"), "--epochs", "1", "--quiet"]) == 0
    return str(d / "ganR"), str(d / "data.npz")


def test_resolve_reads_its_saved_model(run):
    out, _ = run
    src = resolve(out)
    saved = os.path.join(out, "saved_model")
    assert (src.kind, src.path, src.export_dir, src.prefix) == (
        "saved_model", out, saved, os.path.join(saved, "variables", "variables"))


def test_every_command_takes_it(run, tmp_path, capfd):
    out, data = run
    saved = os.path.join(out, "saved_model")

    def ok(*args):
        code, stdout, err = cli(capfd, *args)
        assert code == 0, (args[0], err)
        return stdout

    assert ok("inspect", out).splitlines()[0] == f"{out}: saved_model (prefix {saved}/variables/variables)"
    assert ok("plan", "--model", out).splitlines()[1:5] == [
        f"{n:<19} restored       no    {s}" for n, s in (("dis/D_b1", "[128]"), ("dis/D_w1", "[784, 128]"),
                                                         ("head/logits/bias", "[3]"), ("head/logits/kernel", "[128, 3]"))]
    assert ok("diff", out, saved) == "no differences\n"
    assert ok("migrate", out, tmp_path / "m", "--dry-run").splitlines()[:2] == [f"# from {out}",
                                                                                 f"{'dis/D_b1':<18}      (kept)"]
    assert "60 cached activations" in ok("cache", "--model", out, "--cut", "Relu_1", "--data", data, "--out",
                                              tmp_path / "c", "--quiet")
    assert "checkpoint: " in ok("retrain", "--model", out, "--head", "Relu_1:3", "--data", data, "--out",
                                tmp_path / "r", "--epochs", "1", "--quiet")
    ok("learn-task", "--model", out, "--features", "Relu_1", "--data", data, "--task", "more", "--method",
       "feature-extraction", "--epochs", "1", "--out", tmp_path / "lt", "--quiet")
    tasks = json.loads((tmp_path / "lt" / "tasks.json").read_text())["tasks"]
    assert [(t["name"], t["classes"]) for t in tasks] == [("ganR", ["0", "1", "2"]), ("more", ["0", "1", "2"])]
    ok("combine", "--model", out, "--model", GAN, "--features", "Relu_1", "--data", data, "--out", tmp_path / "cb",
       "--epochs", "1", "--quiet")
    models = json.loads((tmp_path / "cb" / "model.json").read_text())["models"]
    assert [(m["path"], m["scope"]) for m in models] == [(out, "ganR"), (GAN, "gan_chadpro")]
    assert "class 'new' added as index 3" in ok("add-class", out, "--features", "Relu_1", "--data", data,
                                                "--name", "new", "--reference", data, "--steps", "2",
                                                "--out", tmp_path / "ac")
    merged = ok("merge-heads", out, "--features", "Relu_1", "--out", tmp_path / "mh", "--quiet")
    assert f"ganR                       3 classes  stack 0  probabilities backbone 0  <- {saved}" in merged
    ok("add-head", tmp_path / "mh", out, "--task-name", "again", "--out", tmp_path / "mh2")


def test_one_that_also_holds_a_checkpoint_prefix_is_refused_naming_both(run, tmp_path, capfd):
    """A retrain output directory into which a user copied a checkpoint (``model.ckpt.*``) was read as that
    prefix by every command but merge-heads and add-head, which read its saved_model/: silently, another model
    each. It names two models: each command refuses it, saying what to pass for either."""
    import shutil

    from graphsurgeon._src.errors import WrongPathKindError
    from graphsurgeon._src.multihead import load

    out = str(tmp_path / "ganR")
    shutil.copytree(run[0], out)
    for f in os.listdir(os.path.join(GAN)):
        if f.startswith("model.ckpt"):  # (a state file cannot be there: checkpoint/ is a directory)
            shutil.copy(os.path.join(GAN, f), out)
    prefix = resolve(GAN).prefix
    copied = os.path.join(out, os.path.basename(prefix))
    saved = os.path.join(out, "saved_model")
    want = (f"{out} is laid out as retrain's output directory (checkpoint/ and saved_model/) and also holds "
            f"checkpoint prefix {os.path.basename(prefix)}: it names two models; pass {saved} for the retrained model, "
            f"or {copied} for the checkpoint beside it (or move that checkpoint out)")
    with pytest.raises(WrongPathKindError) as e:
        resolve(out)
    assert str(e.value) == want
    with pytest.raises(WrongPathKindError, match="it names two models"):
        load.expand([out])
    with pytest.raises(WrongPathKindError, match="it names two models"):
        load.expand([str(tmp_path)])  # a directory of models holding it
    for args in (["inspect", out], ["merge-heads", out, "--features", "Relu_1", "--out", tmp_path / "mh"]):
        code, stdout, err = cli(capfd, *args)
        assert (code, stdout, err) == (2, "", f"graphsurgeon {args[0]}: error: {want}\n")
    assert resolve(saved).export_dir == saved and resolve(copied).prefix == copied  # each way out reads


def test_one_without_a_saved_model_that_holds_a_checkpoint_prefix_names_its_checkpoint(run, tmp_path, capfd):
    """The same refusal for a retrain output directory whose saved_model/ holds no saved_model.pb told the user to
    pass that saved_model/, a folder with no model in it: it now names the retrained checkpoint/ (with its meta
    graph), which reads, and load.expand refuses it too (it took the directory, a model directory of one prefix)."""
    import shutil

    from graphsurgeon._src.errors import WrongPathKindError
    from graphsurgeon._src.multihead import load

    out = str(tmp_path / "ganR")
    shutil.copytree(run[0], out)
    os.remove(os.path.join(out, "saved_model", "saved_model.pb"))
    prefix = resolve(GAN).prefix
    for f in os.listdir(GAN):
        if f.startswith(os.path.basename(prefix) + "."):
            shutil.copy(os.path.join(GAN, f), out)
    copied, retrained = os.path.join(out, os.path.basename(prefix)), os.path.join(out, "checkpoint")
    want = (f"{out} is laid out as retrain's output directory (checkpoint/ and saved_model/) and also holds "
            f"checkpoint prefix {os.path.basename(prefix)}: it names two models; pass {retrained} for the retrained "
            "model's checkpoint with its meta graph (its saved_model/ holds no saved_model.pb), or "
            f"{copied} for the checkpoint beside it (or move that checkpoint out)")
    for refused in (lambda: resolve(out), lambda: load.expand([out]), lambda: load.expand([str(tmp_path)])):
        with pytest.raises(WrongPathKindError) as e:
            refused()
        assert str(e.value) == want
    code, stdout, err = cli(capfd, "inspect", out)
    assert (code, stdout, err) == (2, "", f"graphsurgeon inspect: error: {want}\n")
    assert resolve(retrained).meta_path and resolve(copied).prefix == copied  # each way out reads
