"""merge-heads on Keras models (tf_keras .h5 files and Keras-made SavedModels), rebuilt with raw ops."""
import os

import heads_models as hm
import numpy as np
import pytest
import tensorflow as tf

from graphsurgeon._src.errors import MergeHeadsError
from graphsurgeon._src.multihead.keras_graph import SUPPORTED
from graphsurgeon._src.multihead.merge import add_task, merge_heads

pytest.importorskip("tf_keras")
pytest.importorskip("h5py")


@pytest.fixture(scope="module", autouse=True)
def legacy_keras():
    from legacy_models import use_legacy_keras

    use_legacy_keras()


def _probabilities(directory, x, task):
    f = tf.saved_model.load(directory).signatures["serving_default"]
    return f(inputs=tf.constant(x), task_id=tf.constant([task] * len(x), tf.int64))["probabilities"].numpy()


def test_h5_and_saved_model_image_classifiers(tmp_path):
    models = [hm.keras_task(str(tmp_path / "a.h5"), 3, 1), hm.keras_task(str(tmp_path / "b"), 4, 2, kind="saved_model"),
              hm.keras_task(str(tmp_path / "c.h5"), 2, 3, hidden=5)]
    res = merge_heads([p for p, _ in models], "penultimate_layer", str(tmp_path / "out" / "1"))
    assert [(t["name"], t["head"]["kind"], t["head"]["stack"]) for t in res.tasks] == [
        ("a", "dense", 0), ("b", "dense", 0), ("c", "dense", 1)]
    x = np.random.default_rng(0).normal(size=(6, 8, 8, 3)).astype(np.float32)
    for i, (_, m) in enumerate(models):
        own = m.predict(x, verbose=0)
        np.testing.assert_allclose(_probabilities(res.directory, x, i)[:, :own.shape[1]], own, rtol=0, atol=1e-6)
    extra, m = hm.keras_task(str(tmp_path / "extra.h5"), 5, 9)
    added = add_task(res.directory, extra)
    assert added.linked_backbone and added.tasks[-1]["name"] == "extra"
    np.testing.assert_allclose(_probabilities(added.directory, x, 3)[:, :5], m.predict(x, verbose=0), rtol=0,
                               atol=1e-6)


def test_text_classifiers_with_an_embedding(tmp_path):
    models = [hm.keras_task(str(tmp_path / f"t{i}.h5"), 3 + i, 5 + i, text=True) for i in range(2)]
    res = merge_heads([p for p, _ in models], "penultimate_layer", str(tmp_path / "out"))
    x = np.random.default_rng(0).integers(0, 50, size=(5, 6)).astype(np.int32)
    for i, (_, m) in enumerate(models):
        own = m.predict(x, verbose=0)
        np.testing.assert_allclose(_probabilities(res.directory, x, i)[:, :own.shape[1]], own, rtol=0, atol=1e-6)


def test_unsupported_layers_are_named(tmp_path):
    import tf_keras as K

    inp = K.Input((4,))
    x = K.layers.LayerNormalization(name="norm")(inp)
    m = K.Model(inp, K.layers.Dense(2, name="task")(K.layers.Dense(3, name="penultimate_layer")(x)))
    m.save(str(tmp_path / "m.h5"))
    with pytest.raises(MergeHeadsError, match=r"m.h5: layer 'norm' is a LayerNormalization, which merge-heads cannot "
                                              r"rebuild; supported: Activation, ActivityRegularization, Add,"):
        merge_heads([str(tmp_path / "m.h5")], "penultimate_layer", str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")
    assert "LayerNormalization" not in SUPPORTED and {"Dense", "Conv2D", "Embedding"} <= set(SUPPORTED)
