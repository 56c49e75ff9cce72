"""A head that depends on random ops above the features (dropout with keep_prob baked in, as the real
lenet_noyin's above Elu_2) is refused when merge-heads reads it, in one line naming the random ops: it answered differently on
every call, and merge-heads failed only after its work, with 'verification failed: task 0 ... differs from its own head by up to 30.1'.
Dropout whose keep_prob is a placeholder_with_default(1.0) passes."""
import os

import pytest
import tensorflow as tf
from continual_models import relu_classifier

from graphsurgeon._src.errors import MergeHeadsError
from graphsurgeon._src.multihead.merge import add_task, merge_heads

from helpers import ROOT, cli

tf1 = tf.compat.v1
REAL = os.path.join(ROOT, "..", "shared", "realmodels")


def _model(directory, keep_prob):
    """Dropout ``keep_prob`` (a constant, or a placeholder_with_default(1.0) when None) above the features."""
    def dropout(h):
        kp = tf1.placeholder_with_default(1.0, [], name="keep_prob") if keep_prob is None else keep_prob
        return tf1.nn.dropout(h, keep_prob=kp)
    return relu_classifier(directory, above=dropout)


def _refusal(model, output, ops):
    return (f"{model}: its head, from the features to {output}, answered differently in two runs on the same probe "
            f"features: it depends on random {'ops' if ', ' in ops else 'op'} {ops} (dropout with keep_prob baked in?), so it would answer "
            "differently on every call; split the model where no random op lies between the features and the output")


def test_a_random_head_is_refused_and_dropout_fed_one_passes(tmp_path):
    baked, fed = _model(tmp_path / "baked", 0.5), _model(tmp_path / "fed", None)
    with pytest.raises(MergeHeadsError) as e:
        merge_heads([baked], "hidden/Relu", str(tmp_path / "merged"))
    assert str(e.value) == _refusal(baked, "probabilities:0", "dropout/random_uniform/RandomUniform")
    assert not os.path.exists(tmp_path / "merged")
    merge_heads([fed], "hidden/Relu", str(tmp_path / "fed_merged"))
    assert os.path.isfile(tmp_path / "fed_merged" / "tasks.json")
    with pytest.raises(MergeHeadsError) as e:  # add-head reads the head it adds the same way
        add_task(str(tmp_path / "fed_merged"), baked, str(tmp_path / "fed_merged_2"), name="baked")
    assert str(e.value) == _refusal(baked, "probabilities:0", "dropout/random_uniform/RandomUniform")
    assert not os.path.exists(tmp_path / "fed_merged_2")


def test_a_head_whose_randomness_only_the_far_apart_draws_show_is_refused(tmp_path):
    """Dropout with keep_prob 0.9999999 baked in above the features drops a value with probability 2**-23 a run, so
    two runs on 64 probe features agree; fed its draws 0 and the largest it makes, it drops all, then none.
    merge-heads and add-head merged it (they refused only a head whose two runs differed); learn-task refused it."""
    rare, fed = _model(tmp_path / "rare", 0.9999999), _model(tmp_path / "fed", None)
    refusal = (f"{rare}: its head, from the features to probabilities:0, answered differently in runs on the same "
               "probe features with its random op fed two far-apart draws (two ordinary runs agreed): it depends on "
               "random op dropout/random_uniform/RandomUniform (dropout with keep_prob baked in?), so it would answer "
               "differently on every call; split the model where no random op lies between the features and the "
               "output")
    with pytest.raises(MergeHeadsError) as e:
        merge_heads([rare], "hidden/Relu", str(tmp_path / "merged"))
    assert str(e.value) == refusal
    assert not os.path.exists(tmp_path / "merged")
    merge_heads([fed], "hidden/Relu", str(tmp_path / "fed_merged"))
    with pytest.raises(MergeHeadsError) as e:
        add_task(str(tmp_path / "fed_merged"), rare, str(tmp_path / "fed_merged_2"), name="rare")
    assert str(e.value) == refusal
    assert not os.path.exists(tmp_path / "fed_merged_2")


def test_a_head_with_noise_too_small_for_the_batch_tolerance_is_refused_too(tmp_path):
    """Two runs that differ by less than the batch check's tolerance still differ: the head is random."""
    noisy = relu_classifier(tmp_path / "noisy", above=lambda h: h + tf1.random_normal(tf1.shape(h), stddev=1e-5))
    with pytest.raises(MergeHeadsError) as e:
        merge_heads([noisy], "hidden/Relu", str(tmp_path / "merged"))
    assert "answered differently in two runs on the same probe features: it depends on random op " \
           "random_normal/RandomStandardNormal" in str(e.value)
    assert not os.path.exists(tmp_path / "merged")


def test_a_head_whose_random_op_is_inside_a_function_is_refused_naming_it(tmp_path):
    """The scan of the random ops looks inside the functions the head calls (it named none there, and a head
    whose runs differed was then merged without a word)."""
    @tf.function
    def noisy(h):
        return h + tf.random.normal(tf.shape(h), stddev=1e-6)

    model = relu_classifier(tmp_path / "fn", above=noisy)
    with pytest.raises(MergeHeadsError) as e:
        merge_heads([model], "hidden/Relu", str(tmp_path / "merged"))
    assert "answered differently in two runs on the same probe features: it depends on random op " in str(e.value)
    assert " in function " in str(e.value) and "RandomStandardNormal" in str(e.value), str(e.value)
    assert not os.path.exists(tmp_path / "merged")


def _complex_features_model(directory, noise):
    """``x[6] -> relu`` as complex ``features`` ``->`` their real part ``+ noise`` draws ``-> probabilities``."""
    os.makedirs(directory)
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 6], name="x")
        h = tf.nn.relu(tf.matmul(x, tf1.get_variable("w", [6, 8])))
        f = tf.complex(h, 0.5 * h, name="features")
        logits = tf.matmul(tf.math.real(f), tf1.get_variable("o", [8, 3]))
        if noise:
            logits += tf1.random_normal(tf1.shape(logits), stddev=noise)
        tf.nn.softmax(logits, name="probabilities")
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(s, os.path.join(directory, "model.ckpt"))
    return str(directory)


def test_a_random_head_above_complex_features_is_refused_and_a_plain_one_passes(tmp_path):
    """No probe values exist for complex features: the head is run twice on normal draws cast to complex."""
    noisy = _complex_features_model(tmp_path / "noisy", 1e-6)
    with pytest.raises(MergeHeadsError) as e:
        merge_heads([noisy], "features", str(tmp_path / "merged"))
    assert "answered differently in two runs on the same probe features: it depends on random op " \
           "random_normal/RandomStandardNormal" in str(e.value)
    assert not os.path.exists(tmp_path / "merged")
    merge_heads([_complex_features_model(tmp_path / "plain", 0)], "features", str(tmp_path / "plain_merged"))
    assert os.path.isfile(tmp_path / "plain_merged" / "tasks.json")


@pytest.mark.skipif(not os.path.isdir(REAL), reason="../shared/realmodels is not here (a user's clone)")
def test_the_real_lenets_head_above_elu_2_is_refused_before_any_work(tmp_path, capfd):
    lenet = os.path.join(REAL, "lenet_noyin")
    out = tmp_path / "out"
    code, stdout, err = cli(capfd, "merge-heads", lenet, "--features", "Elu_2", "--output", "Add_2", "--out", out,
                            "--quiet")
    assert code == 2 and stdout == "" and not os.path.exists(out)
    ops = "dropout/random_uniform/RandomUniform, dropout_1/random_uniform/RandomUniform"
    assert err == f"graphsurgeon merge-heads: error: {_refusal(lenet, 'Add_2:0', ops)}\n"


def test_add_head_probes_the_head_it_adds_once(tmp_path, monkeypatch):
    """One probe of the added head tells both whether it is random and whether it depends on its batch: its
    piece is imported into a graph once (it was twice: a randomness check, then the batch check's probe)."""
    from graphsurgeon._src.multihead import piece as pieces

    fed = _model(tmp_path / "fed", None)
    merge_heads([fed], "hidden/Relu", str(tmp_path / "merged"))
    imported, heads = pieces.imported, []

    def counted(piece, *args, **kw):
        heads.append(piece.output)
        return imported(piece, *args, **kw)

    monkeypatch.setattr(pieces, "imported", counted)
    add_task(str(tmp_path / "merged"), _model(tmp_path / "fed_2", None), str(tmp_path / "merged_2"), name="again")
    assert heads.count("probabilities:0") == 1 and os.path.isfile(tmp_path / "merged_2" / "tasks.json")
