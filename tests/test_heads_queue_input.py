"""merge-heads (and learn-task, add-class) on a model whose features read an input queue, not a placeholder
(the real tf.estimator CNN's random_shuffle_queue_DequeueMany:1), name the tensor to pass as the input, as
retrain and plan do; they said '... reads 0 placeholders (none); name the input with --input'."""
import os

import numpy as np
import pytest

from helpers import ROOT, cli

ESTIMATOR = os.path.join(ROOT, "..", "shared", "realmodels", "estimator_cnn_hsbarker")
QUEUE = "random_shuffle_queue_DequeueMany:1"


@pytest.mark.skipif(not os.path.isdir(ESTIMATOR), reason="../shared/realmodels is not here (a user's clone)")
def test_features_reading_a_queue_name_the_tensor_to_feed(tmp_path, capfd):
    said = (f"{ESTIMATOR}: --features Reshape:0 reads no placeholder: its data comes from {QUEUE} (an input queue "
            "or dataset); ")
    code, _, err = cli(capfd, "merge-heads", ESTIMATOR, "--features", "Reshape", "--out", tmp_path / "m", "--quiet")
    assert code == 2 and err == f"graphsurgeon merge-heads: error: {said}name the tensor to feed with --input {QUEUE}\n"
    np.savez(tmp_path / "few.npz", x=np.zeros((2, 784), np.float32))
    code, _, err = cli(capfd, "add-class", ESTIMATOR, "--features", "Reshape", "--data", tmp_path / "few.npz",
                       "--name", "new", "--out", tmp_path / "a")
    assert code == 2 and err == ("graphsurgeon add-class: error: " + said.replace("--features", "the model's features")
                                 + "add-class has no way to name the input (give a model whose features read one "
                                 "placeholder)\n")
    code, _, err = cli(capfd, "merge-heads", ESTIMATOR, "--features", "Reshape", "--input", QUEUE, "--out",
                       tmp_path / "m", "--quiet")
    assert code == 0, err
