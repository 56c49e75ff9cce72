"""learn-task without --features takes the features tensor a combine or add-class model's model.json names,
as combine and add-class do (it refused such a model: 'is a plain model: say where its backbone ends with
--features TENSOR'); a plain model with neither is refused, saying where the default comes from."""
import json
import os

import numpy as np
import tensorflow as tf
from continual_models import relu_classifier

from graphsurgeon._src.add_class import add_class
from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task

from helpers import cli

tf1 = tf.compat.v1


def _model(directory):
    return relu_classifier(directory, logits=True)


def test_learn_task_takes_features_from_model_json(tmp_path, capfd):
    plain = _model(tmp_path / "plain")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "ref.npz", x=rng.normal(size=(30, 6)).astype(np.float32))
    np.savez(tmp_path / "few.npz", x=rng.normal(size=(4, 6)).astype(np.float32) + 3)
    np.savez(tmp_path / "new.npz", x=rng.normal(size=(40, 6)).astype(np.float32), y=rng.integers(0, 2, 40))
    grown = str(tmp_path / "grown")
    add_class(plain, str(tmp_path / "few.npz"), "extra", grown, features="hidden/Relu", output="logits",
              reference=str(tmp_path / "ref.npz"), steps=2)
    cfg = LearnConfig(model=grown, task="new", method="feature-extraction", epochs=1)
    r = learn_task(cfg, str(tmp_path / "new.npz"), str(tmp_path / "learned"), progress=False)
    assert [t["name"] for t in r.tasks] == ["grown", "new"]
    with open(tmp_path / "learned" / "tasks.json", encoding="utf-8") as f:
        assert json.load(f)["features"] == "combined/features:0"
    code, _, err = cli(capfd, "learn-task", "--model", plain, "--data", tmp_path / "new.npz", "--task", "new",
                       "--method", "feature-extraction", "--out", tmp_path / "refused")
    assert code == 2 and not os.path.exists(tmp_path / "refused")
    assert err == (f"graphsurgeon learn-task: error: {plain} is a plain model: say where its backbone ends with "
                   "--features TENSOR (the tensor its head reads; combine and add-class name it in model.json)\n")
