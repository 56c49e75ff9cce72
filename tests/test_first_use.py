"""What a new user met on the real models, said as it is: one line on stderr, exit status 2, naming
what is wrong and what to do (the cache and head read different tensors, the input fed a constant,
a cache directory under a file, a picture depth of 0, a multiplier pattern that also matches frozen
variables), and ``retrain --cache`` taking the input and feeds the cache was made with."""
import os

import numpy as np
import pytest

from helpers import ROOT, cli

REAL_GAN = os.path.join(ROOT, "..", "shared", "realmodels", "gan_chadpro")
real = pytest.mark.skipif(not os.path.isdir(REAL_GAN), reason="../shared/realmodels is not here (a user's clone)")


def one_line(err):
    lines = [l for l in err.splitlines() if l and not l.startswith(("WARNING: All log", "I0000", "E0000", "W0000"))]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def gan_cache(tmp_path_factory):
    """The real GAN's discriminator features of x (``Relu_1``) cached for 40 rows: (data, cache)."""
    d = tmp_path_factory.mktemp("gan")
    rng = np.random.default_rng(0)
    np.savez(d / "d.npz", x=rng.uniform(-1, 1, (40, 784)).astype(np.float32), y=rng.integers(0, 2, 40))
    from graphsurgeon._src.cli import main

    assert main(["cache", "--model", REAL_GAN, "--cut", "Relu_1", "--data", str(d / "d.npz"), "--out",
                 str(d / "c"), "--quiet"]) == 0
    return d / "d.npz", d / "c"


@real
def test_a_head_on_another_tensor_than_the_cached_one_is_told_so(gan_cache, tmp_path, capfd):
    """The cache holds Relu_1 (the discriminator on x); a head on Relu (the discriminator on the
    generator's output, computed from z) was refused as "cached tensor 'Relu_1:0' is not in the
    model", though the model has it. A cache of another graph's tensor still says that."""
    _, cache = gan_cache
    code, _, err = cli(capfd, "retrain", "--model", REAL_GAN, "--cache", cache, "--head", "Relu:2",
                       "--out", tmp_path / "o", "--quiet")
    assert code == 2 and one_line(err) == (
        f"graphsurgeon retrain: error: {cache} holds the tensor 'Relu_1:0', but the head reads 'Relu:0', which is "
        "not computed from it (a run from a cache reads the cached tensor or a tensor above it): give --head "
        "Relu_1:2 for a new head on the cached tensor, or cache 'Relu:0' with the cache command")
    mlp = os.path.join(os.path.dirname(REAL_GAN), "mlp_bn_chen")
    code, _, err = cli(capfd, "retrain", "--model", mlp, "--cache", cache, "--head", "Relu:2",
                       "--out", tmp_path / "o", "--quiet")
    assert code == 2 and one_line(err) == (
        f"graphsurgeon retrain: error: {cache} holds the tensor 'Relu_1:0', which the graph of {mlp} does not "
        "have: the cache was made from another graph")
    assert not (tmp_path / "o").exists()
