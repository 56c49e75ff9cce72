"""TF-Slim inception_v3, saved as the model zoo's checkpoints were."""
import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs

from legacy_models import slim_restore_set

tf1 = tf.compat.v1
EXCLUDE = ["InceptionV3/Logits", "InceptionV3/AuxLogits"]


@pytest.fixture(scope="module")
def setup(inception):
    cfg = gs.RetrainConfig(model=inception, head="InceptionV3/InceptionV3/Mixed_7c/concat:7", drop=EXCLUDE,
                           trainable=["InceptionV3/Mixed_7c"], lr=0.1)
    s = gs.build(cfg)
    yield inception, s
    s.model.close()


def test_plan_restores_exactly_slims_set(inception, setup):
    _, s = setup
    assert s.plan.by_status("restored") == slim_restore_set(EXCLUDE, size=107)
    dropped = s.plan.by_status("dropped")
    assert dropped and all(n.startswith(tuple(e + "/" for e in EXCLUDE)) for n in dropped)
    assert not s.plan.by_status("shape_mismatch") and not s.plan.by_status("missing")


def test_dry_run_plan_equals_the_built_plan(inception, setup):
    _, s = setup
    dry = gs.plan(gs.RetrainConfig(model=inception, head="InceptionV3/InceptionV3/Mixed_7c/concat:7", drop=EXCLUDE,
                                   trainable=["InceptionV3/Mixed_7c"]))
    assert dry.to_dict() == s.plan.to_dict()


def test_restored_values_equal_checkpoint_bit_for_bit(inception, setup):
    _, s = setup
    reader = tf.train.load_checkpoint(inception)
    vals = s.model.values(s.plan.by_status("restored"))
    for n, v in vals.items():
        assert v.tobytes() == reader.get_tensor(n).tobytes(), n


def test_var_list_is_exactly_mixed_7c_and_the_head(inception, setup):
    _, s = setup
    expected = sorted([n for n in s.model.variables if n.startswith("InceptionV3/Mixed_7c/")
                       and not n.endswith(("moving_mean", "moving_variance"))] + ["head/logits/bias", "head/logits/kernel"])
    # slim's batch norm has no gamma; moving statistics are not trainable variables
    with s.model.graph.as_default():
        trainable_in_graph = {v.op.name for v in tf1.trainable_variables()}
    assert sorted(n for n in s.plan.trainable if n in trainable_in_graph or n.startswith("head/")) == expected
    m = s.model
    with m.graph.as_default():
        labels = tf1.placeholder(tf.int64, [None])
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=s.logits))
        before = set(tf1.global_variables())
        op = gs.build_train_op(loss, m.variables, {n: 1.0 for n in expected}, lr=0.1)
        m.session.run([v.initializer for v in set(tf1.global_variables()) - before])
    old = m.values()
    x = np.random.default_rng(0).normal(size=(2, 107, 107, 3)).astype(np.float32)
    m.session.run(op, {s.input: x, labels: [1, 3]})
    new = m.values()
    changed = sorted(n for n in old if old[n].tobytes() != new[n].tobytes())
    assert changed == expected


def test_head_trained_from_cache_equals_live_training(inception, tmp_path):
    """Cache Mixed_7c's output at 107x107; a head trained from it equals one trained through the
    frozen network every step (same seed, same batches)."""
    from graphsurgeon._src.cache import generate
    from graphsurgeon._src.storage.datasets import load_npz

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(24, 107, 107, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=rng.integers(0, 3, 24), split=np.array(["train"] * 20 + ["test"] * 4))
    cut = "InceptionV3/InceptionV3/Mixed_7c/concat"
    rep = generate(inception, cut, str(tmp_path / "d.npz"), str(tmp_path / "cache"), batch_size=8, progress=False)
    assert rep.computed == 24
    cfg = gs.RetrainConfig(model=inception, head=cut + ":3", epochs=2, batch_size=8, lr=0.05, seed=1, optimizer="sgd")
    gs.retrain(cfg, None, str(tmp_path / "c"), cache=str(tmp_path / "cache"), progress=False)
    gs.retrain(cfg, load_npz(str(tmp_path / "d.npz")), str(tmp_path / "l"), progress=False)
    a = tf.train.load_checkpoint(str(tmp_path / "c/checkpoint/model.ckpt"))
    b = tf.train.load_checkpoint(str(tmp_path / "l/checkpoint/model.ckpt"))
    for n in ("head/logits/kernel", "head/logits/bias"):
        np.testing.assert_allclose(a.get_tensor(n), b.get_tensor(n), rtol=0, atol=1e-6, err_msg=n)
    src = tf.train.load_checkpoint(inception)
    name = "InceptionV3/Mixed_7c/Branch_0/Conv2d_0a_1x1/weights"
    assert a.get_tensor(name).tobytes() == src.get_tensor(name).tobytes()


def test_picture_of_inception_stays_readable(inception, tmp_path):
    from graphsurgeon._src.picture import count_boxes
    from graphsurgeon._src.retrain import build, picture

    setup = build(gs.RetrainConfig(model=inception, head="InceptionV3/InceptionV3/Mixed_7c/concat:5",
                                   trainable=["InceptionV3/Mixed_7c"]), values=False)
    dot = picture(setup)
    assert 10 <= count_boxes(dot) <= 60
    assert 'label="InceptionV3/InceptionV3/Mixed_7c\\ntrainable\\ncut: InceptionV3/InceptionV3/Mixed_7c/concat"' in dot
    assert 'label="InceptionV3/InceptionV3/Mixed_6e\\nfrozen"' in dot
    assert 'label="InceptionV3/Logits\\ndropped"' in dot
    assert count_boxes(picture(setup, depth=4)) > 60  # --depth opens the scopes
