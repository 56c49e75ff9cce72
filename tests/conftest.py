import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import legacy_models  # noqa: E402


@pytest.fixture(scope="session")
def seed004(tmp_path_factory):
    """Seed 004's MLP trained with plain SGD and saved with Saver: (prefix, x, y)."""
    d = tmp_path_factory.mktemp("seed004")
    return legacy_models.seed004_mlp(str(d))


@pytest.fixture(scope="session")
def npz(seed004, tmp_path_factory):
    """Seed 004's inputs with a two-class label (``x[:, 7] > 0``) as ``data.npz``."""
    _, x, _ = seed004
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    np.savez(path, x=x, y=(x[:, 7] > 0).astype(np.int64))
    return str(path)


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
