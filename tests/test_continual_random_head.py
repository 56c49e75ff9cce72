"""The part of a model between its features and its old output (the old head) gets retrain's randomness
probe too, before anything trains, wherever a continual command reuses it: learn-task keeps (and compares)
every old task's head, combine without labels learns from each model's head; add-class needs one dense
layer there and names the random ops when it refuses one. With allow_random the results say, in notes
worded like retrain's, what was accepted (features or heads), in text and --json."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from continual_models import small_classifier, small_data

from graphsurgeon._src.add_class import add_class
from graphsurgeon._src.combine import combine
from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task
from graphsurgeon._src.errors import ContinualError, RandomTensorError

from helpers import ROOT, cli

tf1 = tf.compat.v1
REAL = os.path.join(ROOT, "..", "shared", "realmodels")
DROPOUT_OP = "dropout/random_uniform/RandomUniform"
ACCEPTED = "accepted by allow_random=True; "


def _model(directory, dropout: str):
    """Dropout (keep_prob 0.5, a constant) below the features (``dropout="below"``) or above them (``"above"``)."""
    def drop(t):
        return tf1.nn.dropout(t, keep_prob=0.5)
    return small_classifier(directory, **{dropout: drop})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("random_head")
    return {"above": _model(root / "above", "above"), "above2": _model(root / "above2", "above"),
            "below": _model(root / "below", "below"), "below2": _model(root / "below2", "below"),
            **small_data(root)}


def _learn(models, model, out, **kw):
    cfg = LearnConfig(model=models[model], features="features", task="new", epochs=1,
                      **{"method": "feature-extraction", **kw})
    return learn_task(cfg, models["xy"], out, progress=False)


def _head_refusal(model, task, what="the old head of task",
                  so="the exported model would answer differently on every call"):
    who = f"{what} '{task}', its output" if task else what
    return (f"{model}: {who} 'logits:0' differs between two runs on the same batch: it depends on random op "
            f"{DROPOUT_OP} (dropout with keep_prob baked in?), so {so}; give features=TENSOR above it, or pass "
            "allow_random=True")


def test_learn_task_refuses_a_random_old_head_before_training(models):
    out = str(models["root"] / "learn_refused")
    with pytest.raises(RandomTensorError) as e:
        _learn(models, "above", out)
    assert str(e.value) == _head_refusal(models["above"], "above")
    assert not os.path.exists(out)


def test_the_refusal_of_a_random_head_says_them_of_two_random_ops(models, tmp_path):
    """Two dropouts above the features: 'above them' (one: 'above it', above; it said 'them' of one)."""
    twice = small_classifier(tmp_path / "twice", above=lambda f: tf1.nn.dropout(tf1.nn.dropout(f, keep_prob=0.5),
                                                                                 keep_prob=0.5))
    cfg = LearnConfig(model=twice, features="features", task="new", epochs=1, method="feature-extraction")
    calls = {"learn_task": lambda: learn_task(cfg, models["xy"], str(tmp_path / "l"), progress=False),
             "combine": lambda: combine([(twice, "features"), (models["above2"], "features")], models["x"],
                                        str(tmp_path / "c"), epochs=1, progress=False)}
    for name, call in calls.items():
        with pytest.raises(RandomTensorError) as e:
            call()
        assert f"it depends on random ops {DROPOUT_OP}, dropout_1/random_uniform/RandomUniform " in str(e.value), name
        assert str(e.value).endswith("; give features=TENSOR above them, or pass allow_random=True"), name


def test_learn_task_says_an_old_heads_runs_differ_when_its_noise_is_below_the_batch_tolerance(models):
    """A head's two runs that differ at all differ, as merge-heads judges one (not within the tolerance a batch's
    float rounding needs): noise of 1e-5 above the features is refused for its runs (it was refused through the
    far-apart draws, in words that said the two ordinary runs agreed)."""
    root = models["root"]
    noisy = small_classifier(root / "noisy", above=lambda t: t + tf1.random_normal(tf1.shape(t), stddev=1e-5))
    cfg = LearnConfig(model=noisy, features="features", task="new", epochs=1, method="feature-extraction")
    with pytest.raises(RandomTensorError, match="differs between two runs on the same batch: it depends on random "
                       r"op random_normal/RandomStandardNormal"):
        learn_task(cfg, models["xy"], str(root / "noisy_out"), progress=False)
    assert not os.path.exists(root / "noisy_out")


def test_learn_task_accepts_a_random_old_head_with_allow_random_and_says_so(models):
    """The old code trained, then failed the comparison of the old task with its own head."""
    out = str(models["root"] / "learn_allowed")
    res = _learn(models, "above", out, allow_random=True)
    assert os.path.isdir(out) and [t["name"] for t in res.tasks] == ["above", "new"]
    assert res.notes == [
        f"{models['above']}: the old head of task 'above', its output 'logits:0' is random (two runs on one batch "
        f"differed; random op {DROPOUT_OP}): {ACCEPTED}the written model's answers for task 'above' differ call "
        "to call, and they are not compared with its head's"]
    assert res.to_dict()["notes"] == res.notes and res.format_text().endswith("\n" + res.notes[0])


def test_combine_without_labels_refuses_a_random_teacher_head(models):
    root = models["root"]
    pair = [(models["above"], "features"), (models["above2"], "features")]
    with pytest.raises(RandomTensorError) as e:
        combine(pair, models["x"], str(root / "combine_refused"), epochs=1, progress=False)
    assert str(e.value) == _head_refusal(models["above"], None, "the head, its output",
                                         "the targets the new head learns from would be one draw of its answers")
    assert not os.path.exists(root / "combine_refused")
    res = combine(pair, models["x"], str(root / "combine_allowed"), epochs=1, progress=False, allow_random=True)
    assert res.notes == [f"{m}: the head, its output 'logits:0' is random (two runs on one batch differed; random "
                         f"op {DROPOUT_OP}): {ACCEPTED}the targets the new head learns from are one draw of its "
                         "answers" for m in (models["above"], models["above2"])]
    # from labels the heads are not used: nothing to refuse, nothing to note
    res = combine(pair, models["xy"], str(root / "combine_labels"), epochs=1, progress=False)
    assert res.mode == "labels" and res.notes == []


def test_add_class_names_the_random_ops_of_a_head_it_cannot_extend(models):
    with pytest.raises(ContinualError) as e:
        add_class(models["above"], models["few"], "new", str(models["root"] / "add_refused"), features="features",
                  output="logits", reference=models["x"], steps=2)
    assert str(e.value) == (f"{models['above']}: the layer after features is not one dense layer and holds random "
                            f"op {DROPOUT_OP} (dropout with keep_prob baked in); add-class extends a single linear "
                            "layer with a column: give features=TENSOR above it")


def test_add_class_names_two_random_ops_of_a_head_in_the_plural(tmp_path, models):
    """It said 'random op(s)' whatever the count."""
    twice = small_classifier(tmp_path / "twice", above=lambda f: tf1.nn.dropout(tf1.nn.dropout(f, keep_prob=0.5),
                                                                                  keep_prob=0.5))
    with pytest.raises(ContinualError) as e:
        add_class(twice, models["few"], "new", str(tmp_path / "out"), features="features", output="logits",
                  reference=models["x"], steps=2)
    assert str(e.value) == (f"{twice}: the layer after features is not one dense layer and holds random ops "
                            f"{DROPOUT_OP}, dropout_1/random_uniform/RandomUniform (dropout with keep_prob baked in); "
                            "add-class extends a single linear layer with a column: give features=TENSOR above them")


def _feature_note(model, consequence):
    return (f"{model}: features 'features:0' is random (two runs on one batch differed; random op {DROPOUT_OP}): "
            f"{ACCEPTED}{consequence}")


def test_random_features_accepted_are_noted_in_each_result(models):
    root, below, x = models["root"], models["below"], models["x"]
    res = add_class(below, models["few"], "new", str(root / "note_add"), features="features", output="logits",
                    reference=x, steps=2, allow_random=True)
    assert res.notes == [_feature_note(below, "the written model's answers differ call to call")]
    res = combine([(below, "features"), (models["below2"], "features")], models["xy"], str(root / "note_combine"),
                  epochs=1, progress=False, allow_random=True)
    assert res.notes == [_feature_note(m, "the written model's answers differ call to call")
                         for m in (below, models["below2"])]
    res = _learn(models, "below", str(root / "note_learn"), allow_random=True)
    assert res.notes == [_feature_note(below, "the written model's answers differ call to call, and they are not "
                                       "compared with its heads'")]


@pytest.mark.parametrize("command", ["add-class", "combine", "learn-task"])
def test_cli_prints_the_notes_in_flags(models, capfd, command):
    below, out = models["below"], models["root"] / f"cli_notes_{command}"
    args = {"add-class": ["add-class", below, "--features", "features", "--output", "logits", "--data",
                          models["few"], "--name", "new", "--reference", models["x"], "--steps", "2"],
            "combine": ["combine", "--model", below, "--model", models["below2"], "--features", "features", "--data",
                        models["xy"], "--epochs", "1", "--quiet"],
            "learn-task": ["learn-task", "--model", below, "--features", "features", "--data", models["xy"],
                           "--task", "new", "--method", "feature-extraction", "--epochs", "1", "--quiet"]}[command]
    code, text, err = cli(capfd, *args, "--allow-random", "--out", out)
    assert code == 0, err
    note = (f"{below}: features 'features:0' is random (two runs on one batch differed; random op {DROPOUT_OP}): "
            "accepted by --allow-random; the written model's answers differ call to call")
    assert any(line.startswith(note) for line in text.splitlines()), text
    code, text, err = cli(capfd, *args, "--allow-random", "--json", "--out", f"{out}_json")
    assert code == 0, err
    assert json.loads(text)["notes"][0].startswith(note)


@pytest.mark.skipif(not os.path.isdir(REAL), reason="../shared/realmodels is not here (a user's clone)")
def test_learn_task_on_the_real_lenet_refuses_its_dropout_above_the_features(tmp_path, capfd):
    """lenet_noyin cut at Elu_2: its old head keeps both baked-in dropouts. The old code trained, then
    failed at the end: 'task 0 (lenet_noyin) of the written model differs from its own head by up to 37.4'."""
    lenet = os.path.join(REAL, "lenet_noyin")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "xy.npz", x=rng.random((40, 32, 32, 1), dtype=np.float32), y=rng.integers(0, 3, 40))
    args = ["learn-task", "--model", lenet, "--features", "Elu_2", "--output", "Add_2", "--data", tmp_path / "xy.npz",
            "--task", "new", "--method", "feature-extraction", "--epochs", "1", "--quiet"]
    ops = "dropout/random_uniform/RandomUniform, dropout_1/random_uniform/RandomUniform"
    code, _, err = cli(capfd, *args, "--out", tmp_path / "refused")
    assert code == 2 and not os.path.exists(tmp_path / "refused")
    assert err.endswith(
        f"graphsurgeon learn-task: error: {lenet}: the old head of task 'lenet_noyin', its output 'Add_2:0' differs "
        f"between two runs on the same batch: it depends on random ops {ops} (dropout with keep_prob baked in?), so "
        "the exported model would answer differently on every call; give --features TENSOR above them, or pass "
        "--allow-random\n"), err
    code, text, err = cli(capfd, *args, "--json", "--allow-random", "--out", tmp_path / "allowed")
    assert code == 0, err
    res = json.loads(text)
    assert [t["name"] for t in res["tasks"]] == ["lenet_noyin", "new"]
    assert res["notes"] == [
        f"{lenet}: the old head of task 'lenet_noyin', its output 'Add_2:0' is random (two runs on one batch differed; "
        f"random ops {ops}): accepted by --allow-random; the written model's answers for task 'lenet_noyin' differ "
        "call to call, and they are not compared with its head's"]


def test_combine_docstring_says_how_heads_are_probed():
    """allow_random's words had lost the phrase that says what a head is fed."""
    assert ("checked as retrain checks its cut, on the\n        first examples of ``data`` (a head fed their "
            "features); the result's ``notes`` say so.") in combine.__doc__


def test_lwf_with_a_random_old_head_says_its_targets_are_one_draw(models):
    """LwF records each old head's answers once and trains towards them: with a random head, one draw."""
    res = _learn(models, "above", str(models["root"] / "lwf_allowed"), allow_random=True, method="lwf",
                 warmup_epochs=0)
    assert res.notes == [
        f"{models['above']}: the old head of task 'above', its output 'logits:0' is random (two runs on one batch "
        f"differed; random op {DROPOUT_OP}): {ACCEPTED}the written model's answers for task 'above' differ call "
        "to call, and they are not compared with its head's; LwF's targets for it are one draw of its answers, "
        "recorded once on the training inputs"]
    res = _learn(models, "below", str(models["root"] / "lwf_features"), allow_random=True, method="lwf",
                 warmup_epochs=0)
    assert res.notes == [_feature_note(models["below"], "the written model's answers differ call to call, and they "
                                       "are not compared with its heads'; LwF's targets for the old heads are one "
                                       "draw of their answers, recorded once on the training inputs")]


def test_allow_random_skips_comparing_only_the_random_heads(models, monkeypatch):
    """Two old tasks, one with a random head: the other's served output is still compared with its head."""
    from graphsurgeon._src.continual import write

    root = models["root"]
    two = str(root / "two_tasks")
    _learn(models, "above", two, allow_random=True)  # tasks 'above' (dropout in its head) and 'new' (dense)
    compared, check = [], write.verifier.check

    def spy(directory, backbones, values, tasks, **kw):
        compared.append([t.name for t in tasks])
        return check(directory, backbones, values, tasks, **kw)

    monkeypatch.setattr(write.verifier, "check", spy)
    cfg = LearnConfig(model=two, task="third", method="feature-extraction", epochs=1, allow_random=True)
    res = learn_task(cfg, models["xy"], str(root / "three_tasks"), progress=False)
    assert [t["name"] for t in res.tasks] == ["above", "new", "third"]
    assert compared == [["new", "third"]]
    assert [n.split(": ")[1].split(", its output")[0] for n in res.notes] == ["the old head of task 'above'"]
