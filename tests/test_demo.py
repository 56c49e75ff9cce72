"""The README's main command: `graphsurgeon demo`, run here reduced (3 seeds, k in 1 and all,
shorter training) so that it takes seconds."""
import json
import os

import numpy as np
import pytest

from graphsurgeon._src import demo
from graphsurgeon._src.demo import curve, data, main, report

SEEDS = (0, 1, 2)
KS = (1, "all")
SETTINGS = curve.Settings(steps=100)


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    """``(Result, printed lines)`` of a reduced demo."""
    lines = []
    out = str(tmp_path_factory.mktemp("demo"))
    r = demo.run(out, seeds=SEEDS, ks=KS, settings=SETTINGS, original_steps=300, progress=False,
                 say=lambda text="": lines.extend(text.splitlines() or [""]))
    return r, lines


def test_the_demo_measures_the_points_the_issue_asks_for():
    assert curve.KS == (1, 2, 5, 10, 20, "all")
    assert curve.ARMS == ("transfer_head", "transfer_finetune", "scratch")
    assert main.SEEDS == (0, 1, 2)


def test_json_report_schema(reduced):
    r, _ = reduced
    report_ = json.loads(json.dumps(r.to_json()))  # JSON-serializable as is
    assert report_["version"] == 1
    assert [row["k"] for row in report_["curve"]] == list(KS)
    assert report_["test_images"] == len(r.task.test) == 400
    for row in report_["curve"]:
        k = row["k"]
        assert row["train_images"] == (len(r.task.pool) if k == "all" else 5 * k)
        for arm in curve.ARMS:
            runs = row[f"{arm}_runs"]
            assert len(runs) == len(SEEDS)
            assert row[arm] == pytest.approx(np.mean(runs))
            assert row[f"{arm}_std"] == pytest.approx(np.std(runs, ddof=1))
            # an accuracy on 400 images is a multiple of 1/400
            assert all(abs(a * 400 - round(a * 400)) < 1e-3 for a in runs)
    assert report_["settings"]["seeds"] == list(SEEDS) and report_["settings"]["steps"] == 100
    assert report_["exported"]["answers_equal"] is True


def test_every_run_trains_on_k_images_per_class_and_is_measured_on_the_whole_disjoint_test_set(reduced):
    r, _ = reduced
    task = r.task
    assert len(r.runs) == len(curve.ARMS) * len(KS) * len(SEEDS)
    test_keys = data.content_keys(task.x[task.test])
    for run in r.runs:
        assert run.test_examples == len(task.test)
        assert not set(run.train) & set(task.test)
        assert set(run.train) <= set(task.pool)
        assert not data.content_keys(task.x[run.train]) & test_keys
        counts = np.bincount(task.y[run.train], minlength=5)
        if run.k == "all":
            assert len(run.train) == len(task.pool)
        else:
            assert counts.tolist() == [run.k] * 5
    # the seeds draw different images; every arm of a (k, seed) trains on the same ones
    by = {(x.arm, x.k, x.seed): tuple(x.train) for x in r.runs}
    assert by["transfer_head", 1, 0] == by["scratch", 1, 0] == by["transfer_finetune", 1, 0]
    assert by["scratch", 1, 0] != by["scratch", 1, 1]
    # the original model never saw a digit 5-9: its images are digits 0-4
    x, y = data.digits()
    assert set(np.unique(y[np.isin(y, data.OLD_CLASSES)])) == set(range(5))


def test_the_disjointness_check_fails_on_an_overlapping_training_set(reduced):
    r, _ = reduced
    task = r.task
    with pytest.raises(AssertionError, match="test set"):
        task.check_disjoint(np.concatenate([task.pool[:3], task.test[:1]]))
    # a copy of a test image under another index is caught by its content
    clone = data.NewTask(np.concatenate([task.x, task.x[task.test[:1]]]), np.concatenate([task.y, task.y[task.test[:1]]]),
                         task.test, np.append(task.pool, len(task.y)))
    with pytest.raises(AssertionError, match="test set"):
        clone.check_disjoint(np.array([len(task.y)]))


def test_transfer_is_ahead_of_scratch_with_one_image_per_class_and_behind_with_all(reduced):
    r, _ = reduced
    rows = {row["k"]: row for row in r.rows}
    one, every = rows[1], rows["all"]
    best = max(one["transfer_head"], one["transfer_finetune"])
    assert best - one["scratch"] >= 0.05, one
    # with every pool image, from scratch wins: the demo does not hide the crossover
    assert every["scratch"] - max(every["transfer_head"], every["transfer_finetune"]) >= 0.1, every


def test_the_served_saved_model_answers_like_the_retrained_graph(reduced):
    import graphsurgeon as gs

    r, _ = reduced
    ex = r.exported
    assert (ex["arm"], ex["k"], ex["seed"]) == demo.EXPORTED
    assert ex["answers_equal"] and ex["max_probability_difference"] <= 1e-6
    assert ex["test_images"] == 400 and ex["train_images"] == 5 * ex["k"]
    x, y = r.task.x[r.task.test], r.task.y[r.task.test]
    with gs.restore(ex["saved_model"]) as served, gs.restore(os.path.dirname(ex["checkpoint"])) as ckpt:
        p_served = served.run("head/probabilities:0", {"images:0": x})
        p_ckpt = ckpt.run("head/probabilities:0", {"images:0": x})
    np.testing.assert_allclose(p_served, p_ckpt, atol=1e-6)
    assert ex["served_accuracy"] == pytest.approx(float(np.mean(p_served.argmax(1) == y)))
    assert ex["accuracy"] == pytest.approx(ex["served_accuracy"], abs=1e-6)


def test_the_serving_check_fails_on_other_answers(reduced):
    r, _ = reduced
    ex = r.exported
    x = r.task.x[r.task.test]
    import graphsurgeon as gs

    with gs.restore(ex["saved_model"]) as served:
        probs = served.run("head/probabilities:0", {"images:0": x})
    assert main.serve_check(ex["saved_model"], x, probs, r.task.classes)["answers_equal"]
    assert not main.serve_check(ex["saved_model"], x, probs[::-1], r.task.classes)["answers_equal"]
    assert not main.serve_check(ex["saved_model"], x, probs + 1e-4, r.task.classes)["answers_equal"]


def test_what_it_prints(reduced):
    r, lines = reduced
    text = "\n".join(lines)
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]", "bottleneck caches of fc1/Relu and flatten",
                 "on the same 400 other images", "transfer: new head", "from scratch",
                 "transfer ahead of from scratch at k=1 by", "from scratch ahead of transfer at k=all by",
                 "its answers equal\n      the retrained graph's (same classes"):
        assert step in text, step
    assert "fc1/weights" in text and "restored" in text and "lr x0.1" in text  # the plan
    table = [ln for ln in lines if ln.strip().startswith(("1 ", "all "))]
    assert len(table) == 2
    for prefix in (r.exported["checkpoint"], r.original["checkpoint"]):
        assert prefix in text and os.path.exists(prefix + ".index") and os.path.exists(prefix + ".meta")
    for directory in (r.exported["saved_model"], r.exported["logs"]):
        assert directory in text and os.listdir(directory)
    assert not [d for d in os.listdir(r.out) if d.startswith("curve-")]  # the curve's work is cleaned up
    assert "WARNING" not in text and "tensorflow" not in text.lower()


def test_the_picture_or_how_to_get_it(reduced, tmp_path, monkeypatch):
    r, lines = reduced
    try:
        import matplotlib  # noqa: F401
        has_plot = True
    except ImportError:
        has_plot = False
    if has_plot:
        with open(r.picture, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert f"  picture:        {r.picture}" in lines
    else:
        assert r.picture is None and f"  picture:        {report.PLOT_HINT}" in lines
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # as without the [plot] extra
    assert report.plot(r.rows, str(tmp_path / "c.png"), test_images=400, n_seeds=3) is None
    assert not (tmp_path / "c.png").exists()


def test_cli_json_prints_only_the_report(reduced, monkeypatch, capsys):
    from graphsurgeon._src import cli

    r, _ = reduced
    calls = []

    def fake_run(out, **kw):
        calls.append(kw)
        assert kw["say"] is None  # no story on stdout with --json
        return r

    monkeypatch.setattr(demo, "run", fake_run)
    assert cli.main(["demo", "--json", "--seeds", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["curve"] == json.loads(json.dumps(r.to_json()))["curve"]
    assert list(calls[0]["seeds"]) == [0, 1, 2, 3, 4] and calls[0]["progress"] is False


def test_cli_refuses_bad_settings_without_tensorflow(capsys):
    import subprocess
    import sys

    def refusal(*argv):
        p = subprocess.run([sys.executable, "-m", "graphsurgeon", "demo", *argv], capture_output=True, text=True,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert p.returncode == 2 and p.stdout == ""
        return p.stderr.splitlines()

    # each bad setting named with its value, only the bad ones, in one line
    assert refusal("--seeds", "0") == ["graphsurgeon demo: error: --seeds 0: expected at least 1"]
    assert refusal("--canvas", "40") == ["graphsurgeon demo: error: --canvas 40: expected 8..32 pixels"]
    assert refusal("--seeds", "-1", "--canvas", "7") == [
        "graphsurgeon demo: error: --seeds -1: expected at least 1; --canvas 7: expected 8..32 pixels"]
