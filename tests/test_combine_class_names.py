"""combine's class names: a model without class names has SCOPE:0, SCOPE:1, …, and its numbers count as
names, so another model's labels.txt of numbers (retrain writes 0, 1, … for data without class names) is
qualified too: a retrain output and the real GAN gave '0, 1, gan_chadpro:0, gan_chadpro:1', its 0 and 1
naming nothing apart."""

import numpy as np
import tensorflow as tf
from continual_models import relu_classifier

from graphsurgeon._src.combine import combine

tf1 = tf.compat.v1


def _model(directory, seed, labels=None):
    return relu_classifier(directory, seed=seed, labels=labels)


def test_numbered_labels_are_qualified_beside_a_model_without_names(tmp_path):
    numbered = _model(tmp_path / "numbered", 0, ["0", "1", "2"])
    named = _model(tmp_path / "named", 1, ["cat", "2", "dog"])
    bare = _model(tmp_path / "bare", 2)
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(3).normal(size=(20, 6)).astype(np.float32))
    r = combine([(numbered, "hidden/Relu"), (bare, "hidden/Relu")], str(tmp_path / "x.npz"), str(tmp_path / "nb"),
                epochs=1, progress=False)
    assert r.classes == ["numbered:0", "numbered:1", "numbered:2", "bare:0", "bare:1", "bare:2"]
    r = combine([(named, "hidden/Relu"), (bare, "hidden/Relu")], str(tmp_path / "x.npz"), str(tmp_path / "db"),
                epochs=1, progress=False)
    assert r.classes == ["cat", "named:2", "dog", "bare:0", "bare:1", "bare:2"]
    r = combine([(named, "hidden/Relu"), (numbered, "hidden/Relu")], str(tmp_path / "x.npz"), str(tmp_path / "dn"),
                epochs=1, progress=False)
    assert r.classes == ["cat", "named:2", "dog", "0", "1", "numbered:2"]


def test_a_retrain_output_is_named_after_itself_beside_another_model(tmp_path):
    """combine --model r_gan2 --model tasks/b (two retrain outputs) named the second 'tasks', its
    classes 'tasks:0', …, where merge-heads (whose expand gives tasks/b/saved_model) named it 'b', as
    the README says a retrain output directory is named."""
    from graphsurgeon._src.combine import scope_names
    from graphsurgeon._src.multihead import load

    for run in ("r_gan2", "tasks/b"):
        (tmp_path / run / "checkpoint").mkdir(parents=True)
        (tmp_path / run / "saved_model").mkdir()
        (tmp_path / run / "saved_model" / "saved_model.pb").write_bytes(b"")
    paths = [str(tmp_path / "r_gan2"), str(tmp_path / "tasks" / "b")]
    assert scope_names(paths) == ["r_gan2", "b"]
    assert load.default_names(paths) == load.default_names([p + "/saved_model" for p in paths]) == ["r_gan2", "b"]
    assert load.default_names([str(tmp_path / "tasks" / "b"), str(tmp_path / "tasks" / "c")]) == ["b", "c"]
