"""piggyback's masks start at --mask-init 0.01 and drop a weight at or below --threshold 0.005; Adam moves a score by
about --mask-lr (1e-4) a step, so a short run ends with every mask entry where it started and the task runs on the
whole backbone: the real GAN's 3 epochs gave exactly feature-extraction's accuracies and losses, and the command said
nothing. The result says how many kernel weights the new task's mask drops, in text and --json (``mask_off``), and
when none, says so in one line naming --mask-lr."""
import json
import os

import numpy as np
import pytest
from continual_models import small_classifier, small_data

from graphsurgeon._src.continual import masks
from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task
from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.storage import datasets

from helpers import cli


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("piggyback_report")
    return {"m": small_classifier(root / "m"), **small_data(root)}


def _learn(models, out, method="piggyback", **kw):
    cfg = LearnConfig(model=models["m"], features="features", task="new", method=method, epochs=3, **kw)
    return learn_task(cfg, models["xy"], str(models["root"] / out), progress=False)


def _steps(models) -> int:
    return 3 * -(-len(datasets.load(models["xy"]).part("train")[1]) // 32)


def _written_off(directory) -> int:
    """Kernel weights the written mask of task 'new' drops."""
    z = np.load(os.path.join(directory, "continual", "masks.npz"))
    assert list(z["names"]) == ["new\x1fhidden/w"]
    return int((~masks.unpack(z["a0"], (6, 8))).sum())


def test_a_run_whose_masks_never_cross_the_threshold_says_so_and_is_feature_extraction(models):
    res = _learn(models, "default")
    plain = _learn(models, "fe", method="feature-extraction")
    assert res.history == plain.history and res.metrics == plain.metrics  # the cause: no mask entry moved
    assert _written_off(res.directory) == 0
    assert res.mask_off == {"task": "new", "kernel_weights": 48, "off": 0, "off_fraction": 0.0}
    assert "\n  new task 'new' masked: 0 of the backbone kernels' 48 weights off (0.000)\n" in res.format_text()
    assert res.notes == [f"no mask entry of task 'new' changed in this run's {_steps(models)} training steps: every "
                         "score starts at mask_init=0.01, above threshold=0.005, and Adam at mask_lr=0.0001 moves a "
                         "score by about that much a step, so a weight is dropped only after some 50 steps of one "
                         "sign; the task runs on the whole backbone, as feature-extraction would; give a larger "
                         "mask_lr= or more epochs="]
    assert plain.mask_off is None and "masked:" not in plain.format_text()


def test_a_run_whose_masks_drop_weights_counts_them_and_adds_no_note(models):
    res = _learn(models, "fast", mask_lr=0.01)
    off = _written_off(res.directory)
    assert 0 < off < 48
    assert res.mask_off == {"task": "new", "kernel_weights": 48, "off": off, "off_fraction": off / 48}
    assert f"\n  new task 'new' masked: {off} of the backbone kernels' 48 weights off ({off / 48:.3f})\n" \
        in res.format_text()
    assert res.notes == []


def test_the_cli_prints_the_count_and_the_note_in_its_flags(models, capfd):
    base = ["learn-task", "--model", models["m"], "--features", "features", "--data", models["xy"], "--task", "new",
            "--method", "piggyback", "--epochs", "3", "--quiet"]
    code, out, err = cli(capfd, *base, "--out", models["root"] / "cli_text")
    assert code == 0, err
    assert "  new task 'new' masked: 0 of the backbone kernels' 48 weights off (0.000)\n" in out
    assert out.endswith(f"\nno mask entry of task 'new' changed in this run's {_steps(models)} training steps: every "
                        "score starts at --mask-init 0.01, above --threshold 0.005, and Adam at --mask-lr 0.0001 moves "
                        "a score by about that much a step, so a weight is dropped only after some 50 steps of one "
                        "sign; the task runs on the whole backbone, as feature-extraction would; give a larger "
                        "--mask-lr or more --epochs\n")
    code, out, err = cli(capfd, *base, "--out", models["root"] / "cli_json", "--json")
    assert code == 0, err
    assert json.loads(out)["mask_off"] == {"task": "new", "kernel_weights": 48, "off": 0, "off_fraction": 0.0}


def test_masks_that_would_start_dropped_are_refused(models, capfd):
    with pytest.raises(ConfigError, match=r"mask_init=0.005 with threshold=0.005: every mask score would start at "
                                          r"or below the threshold"):
        _learn(models, "low", mask_init=0.005)
    assert not os.path.exists(models["root"] / "low")
    code, _, err = cli(capfd, "learn-task", "--model", models["m"], "--features", "features", "--data", models["xy"],
                       "--task", "new", "--method", "piggyback", "--mask-init", "0.001", "--out",
                       models["root"] / "low_cli")
    assert code == 2 and err.strip().endswith("--mask-init 0.001 with --threshold 0.005: every mask score would start "
                                              "at or below the threshold, every backbone kernel weight dropped; give "
                                              "a --mask-init above --threshold")
