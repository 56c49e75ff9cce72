"""learn-task, combine, add-class, merge-heads and add-head run retrain's batch-dependence check on their features:
features whose value for an example changes with its batch-mates (batch norm in training mode) are refused (one
line, exit 2, nothing written) unless allow_batch_dependent, worded as retrain's refusal."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from continual_models import continual_command, small_classifier, small_data

from graphsurgeon._src.add_class import add_class
from graphsurgeon._src.combine import combine
from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task
from graphsurgeon._src.determinism import HEAD_KEPT as KEPT
from graphsurgeon._src.errors import BatchDependentError

from helpers import ROOT, cli

tf1 = tf.compat.v1
REAL = os.path.join(ROOT, "..", "shared", "realmodels")
HEAD_KEPT = KEPT.format(them="them")  # below _batch_norm's two ops that may mix a batch
CAUSE = "through moments/mean, moments/variance: batch statistics such as tf.nn.moments or batch norm in training mode"


def _batch_norm(h):
    """A batch norm over the batch (tf.nn.moments, training mode)."""
    mean, var = tf.nn.moments(h, [0], name="moments")
    return (h - mean) * tf.math.rsqrt(var + 1e-3)


def _model(directory):
    return small_classifier(directory, below=_batch_norm)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    return {"bn": _model(root / "bn"), "bn2": _model(root / "bn2"), **small_data(root)}


def _refusal(model, instead="give features=TENSOR below them", flag="allow_batch_dependent=True",
             first="the first training example"):
    return (f"{model}: features 'features:0' depends on the other examples in its batch ({CAUSE}): {first} alone "
            "gives other values than in its batch, so the exported model's answer for an example would depend on "
            f"the examples served with it; {instead}, or pass {flag}")


def _probe_refusal(model, instead=HEAD_KEPT, flag="allow_batch_dependent=True"):
    """merge-heads and add-head run generated probe inputs, not training examples."""
    return _refusal(model, instead, flag, "the first of 64 generated probe inputs")


def test_library_refuses_batch_dependent_features_unless_allowed(models):
    root, few, x = models["root"], models["few"], models["x"]
    calls = {
        "add_class": lambda out, **kw: add_class(models["bn"], few, "new", out, features="features",
                                                 output="logits", reference=x, steps=2, **kw).notes,
        "combine": lambda out, **kw: combine([(models["bn"], "features"), (models["bn2"], "features")],
                                             x, out, epochs=1, progress=False, **kw).notes,
        "learn_task": lambda out, **kw: learn_task(
            LearnConfig(model=models["bn"], features="features", task="new", method="feature-extraction", epochs=1,
                        **kw), models["xy"], out, progress=False).notes,
    }
    note = ("{}: features 'features:0' depends on its batch-mates (through moments/mean, moments/variance): "
            "accepted by allow_batch_dependent=True; the exported model's answer for an example depends on the "
            "examples served with it")
    for name, call in calls.items():
        out = str(root / f"{name}_refused")
        with pytest.raises(BatchDependentError) as e:
            call(out)
        assert str(e.value) == _refusal(models["bn"], HEAD_KEPT if name == "learn_task" else
                                        "give features=TENSOR below them"), name
        assert not os.path.exists(out)
        notes = call(str(root / f"{name}_allowed"), allow_batch_dependent=True)
        assert notes[0] == note.format(models["bn"]), name
        if name == "combine":
            assert notes == [note.format(models["bn"]), note.format(models["bn2"])]


@pytest.mark.parametrize("command", ["add-class", "combine", "learn-task"])
def test_cli_refuses_batch_dependent_features_in_one_line(models, capfd, command):
    out = models["root"] / f"cli_{command}"
    base = continual_command(command, models["bn"], models["bn2"], models) + ["--out", out]
    code, _, err = cli(capfd, *base)
    assert code == 2 and err == (f"graphsurgeon {command}: error: "
                                 + _refusal(models["bn"], HEAD_KEPT if command == "learn-task" else
                                            "give --features TENSOR below them", "--allow-batch-dependent") + "\n")
    assert not os.path.exists(out)
    code, stdout, err = cli(capfd, *base, "--allow-batch-dependent")
    assert code == 0 and os.path.isdir(out), err
    assert "features 'features:0' depends on its batch-mates (through moments/mean, moments/variance): accepted by " \
           "--allow-batch-dependent" in stdout


@pytest.mark.skipif(not os.path.isdir(REAL), reason="../shared/realmodels is not here (a user's clone)")
def test_add_class_on_a_head_retrained_on_the_real_mlp_bn_chen_refuses_its_batch_norm(tmp_path, capfd):
    """mlp_bn_chen's hand-rolled batch norm (tf.nn.moments over the batch, no moving averages) lies below Relu:
    retrain needs --allow-batch-dependent for a head there, and now add-class on that head does too."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((120, 784), dtype=np.float32), y=rng.integers(0, 3, 120))
    np.savez(tmp_path / "few.npz", x=rng.random((5, 784), dtype=np.float32))
    np.savez(tmp_path / "ref.npz", x=rng.random((100, 784), dtype=np.float32))
    code, _, err = cli(capfd, "retrain", "--model", os.path.join(REAL, "mlp_bn_chen"), "--head", "Relu:3", "--data",
                       tmp_path / "d.npz", "--out", tmp_path / "o", "--epochs", 1, "--quiet", "--allow-batch-dependent")
    assert code == 0, err
    args = ["add-class", tmp_path / "o", "--features", "Relu", "--data", tmp_path / "few.npz", "--name", "new",
            "--reference", tmp_path / "ref.npz", "--steps", "2", "--out", tmp_path / "ac"]
    code, _, err = cli(capfd, *args)
    assert code == 2 and not os.path.exists(tmp_path / "ac")
    assert err == (f"graphsurgeon add-class: error: {tmp_path / 'o'}: features 'Relu:0' depends on the other examples "
                   "in its batch (through moments/mean, moments/variance: batch statistics such as tf.nn.moments or "
                   "batch norm in training mode): the first training example alone gives other values than in its "
                   "batch, so the exported model's answer for an example would depend on the examples served with it; "
                   "give --features TENSOR below them, or pass --allow-batch-dependent\n")
    code, out, err = cli(capfd, *args, "--allow-batch-dependent")
    assert code == 0 and "features 'Relu:0' depends on its batch-mates (through moments/mean, moments/variance): " \
                         "accepted by --allow-batch-dependent" in out, err


def test_merge_heads_and_add_head_refuse_batch_dependent_features_unless_allowed(models, capfd):
    """Examples of different tasks share a merged model's batch: merge-heads checks the first model's features
    on probe inputs, add-head the added model's, as retrain checks its cut."""
    from graphsurgeon._src.multihead.merge import add_task, merge_heads

    root, bn, bn2 = models["root"], models["bn"], models["bn2"]
    with pytest.raises(BatchDependentError) as e:
        merge_heads([bn, bn2], "features", str(root / "mh" / "1"))
    assert str(e.value) == _probe_refusal(bn) and not os.path.exists(root / "mh")
    res = merge_heads([bn], "features", str(root / "mh" / "1"), allow_batch_dependent=True)
    note = (f"{bn}: features 'features:0' depends on its batch-mates (through moments/mean, moments/variance): "
            "accepted by allow_batch_dependent=True; the exported model's answer for an example depends on the "
            "examples served with it")
    assert res.notes == [note] and res.format_text().endswith("\n" + note)
    with pytest.raises(BatchDependentError) as e:
        add_task(str(root / "mh" / "1"), bn2)
    assert str(e.value) == _probe_refusal(bn2)
    assert not os.path.exists(root / "mh" / "2")
    assert add_task(str(root / "mh" / "1"), bn2, allow_batch_dependent=True).notes == [note.replace(bn, bn2)]

    code, _, err = cli(capfd, "merge-heads", bn, bn2, "--features", "features", "--out", root / "cli_mh" / "1")
    assert code == 2 and err == ("graphsurgeon merge-heads: error: " + _probe_refusal(
        bn, HEAD_KEPT, "--allow-batch-dependent") + "\n")
    code, out, err = cli(capfd, "merge-heads", bn, "--features", "features", "--out", root / "cli_mh" / "1",
                         "--allow-batch-dependent", "--quiet")
    assert code == 0 and "accepted by --allow-batch-dependent" in out, err
    code, _, err = cli(capfd, "add-head", root / "cli_mh" / "1", bn2)
    assert code == 2 and err == ("graphsurgeon add-head: error: " + _probe_refusal(
        bn2, HEAD_KEPT, "--allow-batch-dependent") + "\n")
    code, out, err = cli(capfd, "add-head", root / "cli_mh" / "1", bn2, "--allow-batch-dependent")
    assert code == 0 and "accepted by --allow-batch-dependent" in out and os.path.isdir(root / "cli_mh" / "2"), err


def _complex_model(directory, below=None):
    """``small_classifier``'s layers on a complex64 input (its real part): no probe inputs exist for it."""
    os.makedirs(directory)
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.complex64, [None, 6], name="x")
        w1 = tf1.get_variable("hidden/w", initializer=rng.normal(0, 0.5, (6, 8)).astype(np.float32))
        h = tf.nn.relu(tf.matmul(tf.math.real(x), w1))
        f = tf.identity(below(h) if below else h, name="features")
        w2 = tf1.get_variable("output/w", initializer=rng.normal(0, 0.5, (8, 3)).astype(np.float32))
        tf.nn.softmax(tf.matmul(f, w2), name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))
    return str(directory)


def test_merge_heads_without_probe_inputs_lets_the_graph_decide_and_says_so(models, capfd):
    """A complex64 input has no probe values: the old code skipped the check and said nothing. Now, as retrain
    does for a cache whose record says no run checked it, the graph decides: ops that may mix a batch are
    refused unless allowed; without them, the notes say that whether the features depend on
    their batch-mates was not checked and that the graph holds no op that may mix a batch."""
    from graphsurgeon._src.multihead.merge import add_task, merge_heads

    root = models["root"]
    plain, bn = _complex_model(root / "cplx"), _complex_model(root / "cplx_bn", _batch_norm)
    unrun = "there are no probe inputs of dtype complex64"
    res = merge_heads([plain], "features", str(root / "cplx_mh" / "1"), verify=False)
    assert res.notes == [f"{plain}: features 'features:0': whether it depends on its batch-mates was not checked "
                         f"({unrun}); the graph holds no op that may mix the examples of a batch"]
    mixes = ("features 'features:0' reads ops that may mix the examples of a batch (moments/mean, moments/variance; "
             f"no run checked it: {unrun})")
    with pytest.raises(BatchDependentError) as e:
        merge_heads([bn], "features", str(root / "cplx_bn_mh" / "1"), verify=False)
    assert str(e.value) == (f"{bn}: {mixes}: the exported model's answer for an example may depend on the examples "
                            f"served with it; {HEAD_KEPT}, or pass allow_batch_dependent=True")
    assert not os.path.exists(root / "cplx_bn_mh")
    accepted = (f"{mixes}: accepted by allow_batch_dependent=True; the exported model's answer for an example may "
                "depend on the examples served with it")
    res = merge_heads([bn], "features", str(root / "cplx_bn_mh" / "1"), verify=False, allow_batch_dependent=True)
    assert res.notes == [f"{bn}: {accepted}"]
    bn2 = _complex_model(root / "cplx_bn2", _batch_norm)
    with pytest.raises(BatchDependentError) as e:
        add_task(str(root / "cplx_bn_mh" / "1"), bn2, verify=False)
    assert str(e.value) == (f"{bn2}: {mixes}: the exported model's answer for an example may depend on the examples "
                            f"served with it; {HEAD_KEPT}, or pass allow_batch_dependent=True")
    res = add_task(str(root / "cplx_bn_mh" / "1"), bn2, verify=False, allow_batch_dependent=True)
    assert res.notes == [f"{bn2}: {accepted}"]
    code, out, err = cli(capfd, "merge-heads", plain, "--features", "features", "--out", root / "cplx_cli" / "1",
                         "--no-verify", "--json")
    assert code == 0 and json.loads(out)["notes"] == _unchecked_note(plain, unrun), err
    code, out, err = cli(capfd, "merge-heads", plain, "--features", "features", "--out", root / "cplx_cli" / "2",
                         "--no-verify", "--quiet")
    assert code == 0 and out.endswith("\n" + _unchecked_note(plain, unrun)[0] + "\n"), err


def _unchecked_note(model, unrun):
    """The notes of merge-heads on a complex64 model without ops that may mix a batch."""
    return [f"{model}: features 'features:0': whether it depends on its batch-mates was not checked ({unrun}); the "
            "graph holds no op that may mix the examples of a batch"]


def _centred(h):
    """One op that mixes the batch: the features less their mean over the batch."""
    return h - tf.reduce_mean(h, 0, name="centre")


def test_the_refusals_say_it_of_one_op_that_may_mix_a_batch(models, tmp_path):
    """One op ('centre'): 'below it', 'use a model without it (a cut below it leaves it in its head …)', probed
    or (complex inputs) decided by the graph; they said 'them' of one op (two: above)."""
    from graphsurgeon._src.multihead.merge import merge_heads

    one = small_classifier(tmp_path / "one", below=_centred)
    kept = KEPT.format(them="it")
    assert kept == "use a model without it (a cut below it leaves it in its head, which is checked too)"
    cause = "through centre: batch statistics such as tf.nn.moments or batch norm in training mode"
    refusal = (f"{one}: features 'features:0' depends on the other examples in its batch ({cause}): {{}} alone gives "
               "other values than in its batch, so the exported model's answer for an example would depend on the "
               "examples served with it; {}, or pass allow_batch_dependent=True")
    with pytest.raises(BatchDependentError) as e:
        add_class(one, models["few"], "new", str(tmp_path / "a"), features="features", output="logits",
                  reference=models["x"], steps=2)
    assert str(e.value) == refusal.format("the first training example", "give features=TENSOR below it")
    with pytest.raises(BatchDependentError) as e:
        learn_task(LearnConfig(model=one, features="features", task="new", method="feature-extraction", epochs=1),
                   models["xy"], str(tmp_path / "l"), progress=False)
    assert str(e.value) == refusal.format("the first training example", kept)
    with pytest.raises(BatchDependentError) as e:
        merge_heads([one], "features", str(tmp_path / "m" / "1"))
    assert str(e.value) == refusal.format("the first of 64 generated probe inputs", kept)
    cplx = _complex_model(tmp_path / "cplx", _centred)
    with pytest.raises(BatchDependentError) as e:
        merge_heads([cplx], "features", str(tmp_path / "cm" / "1"), verify=False)
    assert str(e.value) == (f"{cplx}: features 'features:0' reads an op that may mix the examples of a batch (centre; "
                            "no run checked it: there are no probe inputs of dtype complex64): the exported model's "
                            f"answer for an example may depend on the examples served with it; {kept}, or pass "
                            "allow_batch_dependent=True")


def test_the_fixes_the_batch_refusals_suggest_work(models, capfd):
    """add-head's refusal says that a cut below the batch norm leaves it in the head, which is checked too, or to
    pass --allow-batch-dependent; learn-task's on a many-heads model, to pass --allow-batch-dependent (or learn on
    other features): each is run here."""
    root, bn, bn2 = models["root"], models["bn"], models["bn2"]
    code, _, err = cli(capfd, "merge-heads", bn, "--features", "features", "--out", root / "fix_mh" / "1",
                       "--allow-batch-dependent", "--quiet")
    assert code == 0, err
    code, _, err = cli(capfd, "add-head", root / "fix_mh" / "1", bn2)
    assert code == 2 and f"{HEAD_KEPT}, or pass --allow-batch-dependent" in err
    # a cut below the batch norm (Relu feeds moments) leaves it in the head, which is refused too
    code, out, err = cli(capfd, "merge-heads", bn, "--features", "Relu", "--out", root / "fix_below" / "1", "--quiet")
    assert code == 2 and ": the head, its output" in err and "depends on the other examples in its batch" in err
    # the fix: accept it
    code, out, err = cli(capfd, "add-head", root / "fix_mh" / "1", bn2, "--allow-batch-dependent", "--json")
    assert code == 0 and len(json.loads(out)["notes"]) == 1 and os.path.isdir(root / "fix_mh" / "2"), err

    base = ["learn-task", "--model", root / "fix_mh" / "1", "--data", models["xy"], "--task", "new", "--method",
            "feature-extraction", "--epochs", "1", "--quiet"]
    code, _, err = cli(capfd, *base, "--out", root / "fix_learn_refused")
    assert code == 2 and err == (
        f"graphsurgeon learn-task: error: {root / 'fix_mh' / '1'}: features 'features:0' depends on the other "
        f"examples in its batch ({CAUSE}): the first training example alone gives other values than in its batch, so "
        "the exported model's answer for an example would depend on the examples served with it; learn on a model "
        "whose features do not depend on the other examples in a batch, or pass --allow-batch-dependent\n")
    assert not os.path.exists(root / "fix_learn_refused")
    code, out, err = cli(capfd, *base, "--allow-batch-dependent", "--json", "--out", root / "fix_learn")
    assert code == 0, err
    res = json.loads(out)
    assert [t["name"] for t in res["tasks"]] == ["bn", "new"]
    assert res["notes"] == [f"{root / 'fix_mh' / '1'}: features 'features:0' depends on its batch-mates (through "
                            "moments/mean, moments/variance): accepted by --allow-batch-dependent; the exported "
                            "model's answer for an example depends on the examples served with it"]
