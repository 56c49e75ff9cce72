import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(__file__))

import hashlib  # noqa: E402

import pytest  # noqa: E402

import legacy_models  # noqa: E402


@pytest.fixture(scope="session")
def seed004(tmp_path_factory):
    """Seed 004's MLP trained with plain SGD and saved with Saver: (prefix, x, y)."""
    d = tmp_path_factory.mktemp("seed004")
    return legacy_models.seed004_mlp(str(d))


@pytest.fixture(scope="session")
def seed004_adam(tmp_path_factory):
    """The same MLP trained with Adam (slots, beta1_power, global_step in the checkpoint)."""
    d = tmp_path_factory.mktemp("seed004_adam")
    return legacy_models.seed004_mlp(str(d), optimizer="adam")


@pytest.fixture(scope="session")
def inception(tmp_path_factory):
    """A TF-Slim inception_v3 checkpoint + meta graph at a small input size."""
    d = tmp_path_factory.mktemp("inception")
    return legacy_models.slim_inception_v3(str(d), size=107)


def ckpt(prefix):
    """``{name: ndarray}`` of every tensor of a checkpoint."""
    import tensorflow as tf

    r = tf.train.load_checkpoint(prefix)
    return {n: r.get_tensor(n) for n in r.get_variable_to_shape_map()}


def tree_hash(path):
    """sha256 of every file under ``path`` (or of the files of a prefix), to prove nothing changed."""
    h = {}
    base = path if os.path.isdir(path) else os.path.dirname(path)
    for root, _, names in os.walk(base):
        for n in sorted(names):
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                h[os.path.relpath(p, base)] = hashlib.sha256(f.read()).hexdigest()
    return h
