"""learn-task, combine and add-class run retrain's randomness probe on their features: features that
depend on dropout with keep_prob baked in are refused (one line, exit 2, nothing written) unless
allow_random, and features whose dropout is fed 1.0 by default pass."""
import os

import numpy as np
import pytest
import tensorflow as tf
from continual_models import continual_command, small_classifier, small_data

from graphsurgeon._src.add_class import add_class
from graphsurgeon._src.combine import combine
from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task
from graphsurgeon._src.errors import RandomTensorError

from helpers import ROOT, cli

tf1 = tf.compat.v1
REAL = os.path.join(ROOT, "..", "shared", "realmodels")
DROPOUT_OP = "dropout/random_uniform/RandomUniform"


def _model(directory, keep_prob):
    """The features below dropout ``keep_prob`` (a constant, or a placeholder_with_default(1.0) when None)."""
    def dropout(h):
        kp = tf1.placeholder_with_default(1.0, [], name="keep_prob") if keep_prob is None else keep_prob
        return tf1.nn.dropout(h, keep_prob=kp)
    return small_classifier(directory, below=dropout)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("random")
    return {"baked": _model(root / "baked", 0.5), "baked2": _model(root / "baked2", 0.5),
            "fed": _model(root / "fed", None), "fed2": _model(root / "fed2", None), **small_data(root)}


def _learn(models, model, out, **kw):
    cfg = LearnConfig(model=models[model], features="features", task="new", method="feature-extraction",
                      epochs=1, **kw)
    return learn_task(cfg, models["xy"], out, progress=False)


def _expect_refusal(message, model):
    assert message.startswith(f"{model}: features 'features:0' differs between two runs on the same batch: "
                              f"it depends on random op {DROPOUT_OP} (dropout with keep_prob baked in?), so the "
                              "exported model would answer differently on every call; "), message


def test_library_refuses_random_features_unless_allow_random(models):
    root, few, x = models["root"], models["few"], models["x"]
    calls = {
        "add_class": lambda out, **kw: add_class(models["baked"], few, "new", out, features="features",
                                                 output="logits", reference=x, steps=2, **kw),
        "combine": lambda out, **kw: combine([(models["baked"], "features"), (models["baked2"], "features")],
                                             x, out, epochs=1, progress=False, **kw),
        "learn_task": lambda out, **kw: _learn(models, "baked", out, **kw),
    }
    for name, call in calls.items():
        out = str(root / f"{name}_refused")
        with pytest.raises(RandomTensorError) as e:
            call(out)
        _expect_refusal(str(e.value), models["baked"])
        assert str(e.value).endswith("; give features=TENSOR below it, or pass allow_random=True"), name
        assert not os.path.exists(out)
        call(str(root / f"{name}_allowed"), allow_random=True)
        assert os.path.isdir(root / f"{name}_allowed"), name


def test_the_refusal_says_them_of_two_random_ops(models, tmp_path):
    """Two dropouts below the features: 'below them' (one: 'below it', above; it said 'them' of one)."""
    twice = small_classifier(tmp_path / "twice", below=lambda h: tf1.nn.dropout(tf1.nn.dropout(h, keep_prob=0.5),
                                                                                 keep_prob=0.5))
    few, x = models["few"], models["x"]
    calls = {
        "add_class": lambda: add_class(twice, few, "new", str(tmp_path / "a"), features="features", output="logits",
                                       reference=x, steps=2),
        "combine": lambda: combine([(twice, "features"), (models["baked2"], "features")], x, str(tmp_path / "c"),
                                   epochs=1, progress=False),
        "learn_task": lambda: learn_task(LearnConfig(model=twice, features="features", task="new", epochs=1,
                                                     method="feature-extraction"), models["xy"], str(tmp_path / "l"),
                                         progress=False),
    }
    for name, call in calls.items():
        with pytest.raises(RandomTensorError) as e:
            call()
        assert f"it depends on random ops {DROPOUT_OP}, dropout_1/random_uniform/RandomUniform " in str(e.value), name
        assert str(e.value).endswith("; give features=TENSOR below them, or pass allow_random=True"), name


def test_learn_task_on_a_many_heads_model_says_it_of_one_random_op_and_them_of_two(models, tmp_path):
    """A many-heads model keeps its backbone: 'learn on a model whose features do not depend on it' (one dropout
    below the features), '… on them' (two); it said 'them' of one."""
    from graphsurgeon._src.multihead.merge import merge_heads

    twice = small_classifier(tmp_path / "twice", below=lambda h: tf1.nn.dropout(tf1.nn.dropout(h, keep_prob=0.5),
                                                                                 keep_prob=0.5))
    for it, model in (("it", models["baked"]), ("them", twice)):
        merged = str(tmp_path / it / "1")
        merge_heads([model], "features", merged, verify=False)
        cfg = LearnConfig(model=merged, task="new", method="feature-extraction", epochs=1)
        with pytest.raises(RandomTensorError) as e:
            learn_task(cfg, models["xy"], str(tmp_path / it / "out"), progress=False)
        assert str(e.value).endswith(f"; learn on a model whose features do not depend on {it}, or pass "
                                     "allow_random=True"), str(e.value)


def test_dropout_fed_one_by_default_passes(models):
    root = models["root"]
    add_class(models["fed"], models["few"], "new", str(root / "fed_add"), features="features",
              output="logits", reference=models["x"], steps=2)
    combine([(models["fed"], "features"), (models["fed2"], "features")], models["x"],
            str(root / "fed_combine"), epochs=1, progress=False)
    _learn(models, "fed", str(root / "fed_learn"))


@pytest.mark.parametrize("command", ["add-class", "combine", "learn-task"])
def test_cli_refuses_random_features_in_one_line(models, capfd, command):
    out = models["root"] / f"cli_{command}"
    base = continual_command(command, models["baked"], models["baked2"], models) + ["--out", out]
    code, _, err = cli(capfd, *base)
    lines = [line for line in err.splitlines() if line.startswith("graphsurgeon")]
    assert code == 2 and len(lines) == 1, err
    message = lines[0].removeprefix(f"graphsurgeon {command}: error: ")
    _expect_refusal(message, models["baked"])
    assert message.endswith("; give --features TENSOR below it, or pass --allow-random"), message
    assert not os.path.exists(out)
    code, _, err = cli(capfd, *base, "--allow-random")
    assert code == 0 and os.path.isdir(out), err


@pytest.mark.skipif(not os.path.isdir(REAL), reason="../shared/realmodels is not here (a user's clone)")
def test_add_class_on_the_real_lenet_refuses_its_baked_in_dropout(tmp_path, capfd):
    lenet = os.path.join(REAL, "lenet_noyin")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "few.npz", x=rng.random((5, 32, 32, 1), dtype=np.float32))
    np.savez(tmp_path / "ref.npz", x=rng.random((20, 32, 32, 1), dtype=np.float32))
    args = ["add-class", lenet, "--features", "dropout_1/mul", "--output", "Add_2", "--data", tmp_path / "few.npz",
            "--name", "new", "--reference", tmp_path / "ref.npz", "--steps", "2", "--out", tmp_path / "out"]
    code, _, err = cli(capfd, *args)
    assert code == 2 and not os.path.exists(tmp_path / "out")
    assert (f"graphsurgeon add-class: error: {lenet}: features 'dropout_1/mul:0' differs between two runs on the same "
            "batch: it depends on random ops dropout/random_uniform/RandomUniform, "
            "dropout_1/random_uniform/RandomUniform (dropout with keep_prob baked in?), so the exported model would "
            "answer differently on every call; give --features TENSOR below them, or pass --allow-random\n") in err
