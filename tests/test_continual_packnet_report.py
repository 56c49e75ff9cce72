"""packnet on a plain model packs the model's own task first: --prune-first of its kernels' weights are zeroed, which
changes that task's outputs (retrained only with --old-data). The result says so, in text and --json
(``packed_first``): how many weights were pruned and, with old data, the task's accuracy before and after on that
data's test split; without it, that its accuracy was not measured. The command said nothing of it."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from continual_models import small_classifier, small_data

from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task

from helpers import cli

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("packnet_report")
    return {"m": small_classifier(root / "m"), **small_data(root)}


def _learn(models, out, **kw):
    cfg = LearnConfig(model=kw.pop("model", models["m"]), features=kw.pop("features", "features"),
                      task=kw.pop("task", "new"), method="packnet", epochs=1, **kw)
    return learn_task(cfg, models["xy"], str(models["root"] / out), progress=False)


def _pruned_first(directory) -> int:
    """Kernel weights the first task does not own (owner != 1): the ones its packing pruned."""
    z = np.load(os.path.join(directory, "continual", "masks.npz"))
    assert list(z["names"]) == ["hidden/w"]
    return int((z["a0"] != 1).sum())


def _answers(model, x) -> np.ndarray:
    """The classes the model read gives ``x``, run as its own graph (meta graph and checkpoint)."""
    with tf.Graph().as_default() as g, tf1.Session() as s:
        tf1.train.import_meta_graph(os.path.join(model, "model.ckpt.meta")).restore(s, os.path.join(model, "model.ckpt"))
        return s.run(g.get_tensor_by_name("probabilities:0"), {g.get_tensor_by_name("x:0"): x}).argmax(1)


def test_without_old_data_the_pruned_fraction_is_reported_and_the_accuracy_said_not_measured(models):
    res = _learn(models, "no_old")
    pruned = _pruned_first(res.directory)
    assert pruned == 24  # half of hidden/w's 6 x 8
    assert res.packed_first == {"task": "m", "kernel_weights": 48, "pruned": pruned, "pruned_fraction": 0.5,
                                "accuracy_before": None, "accuracy_after": None, "examples": None}
    assert ("\n  old task 'm' packed first: 24 of its backbone kernels' 48 weights pruned to zero (0.500); its accuracy "
            "before and after was not measured (no old data given for it)\n") in res.format_text()
    assert res.to_dict()["packed_first"] == res.packed_first


def test_with_old_data_its_accuracy_before_and_after_is_reported(models):
    x = np.random.default_rng(2).normal(size=(400, 6)).astype(np.float32)
    own = str(models["root"] / "own.npz")  # labelled with the model's own answers: 1.0 before packing
    np.savez(own, x=x, y=_answers(models["m"], x), split=np.array(["train"] * 40 + ["test"] * 360))
    res = _learn(models, "old", old_data={"": own}, retrain_epochs=0)  # the kept weights not retrained
    p = res.packed_first
    assert (p["task"], p["pruned"], p["kernel_weights"]) == ("m", _pruned_first(res.directory), 48)
    assert p["accuracy_before"] == 1.0 and p["examples"] == 360
    assert p["accuracy_after"] == res.metrics["old"]["m"] < 0.95  # half of hidden/w zeroed
    assert (f"\n  old task 'm' packed first: {p['pruned']} of its backbone kernels' 48 weights pruned to zero "
            f"({p['pruned_fraction']:.3f}); accuracy 1.0000 before, {p['accuracy_after']:.4f} after (of 360 "
            "examples)\n") in res.format_text()


def test_a_model_packnet_made_reports_no_packing_and_the_cli_prints_it(models, capfd):
    first = _learn(models, "first")
    res = _learn(models, "second", model=first.directory, features=None, task="new2")
    assert res.packed_first is None and "packed first" not in res.format_text()
    base = ["learn-task", "--model", models["m"], "--features", "features", "--data", models["xy"], "--task", "new",
            "--method", "packnet", "--epochs", "1", "--quiet"]
    code, out, err = cli(capfd, *base, "--out", models["root"] / "cli_text")
    assert code == 0, err
    assert ("  old task 'm' packed first: 24 of its backbone kernels' 48 weights pruned to zero (0.500); its accuracy "
            "before and after was not measured (no old data given for it)\n") in out
    code, out, err = cli(capfd, *base, "--out", models["root"] / "cli_json", "--json")
    assert code == 0, err
    assert json.loads(out)["packed_first"] == {"task": "m", "kernel_weights": 48, "pruned": 24,
                                               "pruned_fraction": 0.5, "accuracy_before": None,
                                               "accuracy_after": None, "examples": None}
