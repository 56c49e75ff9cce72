"""The README's main command: `graphsurgeon demo` (run here with fewer epochs)."""

from graphsurgeon._src import demo


def test_demo_runs_end_to_end(tmp_path, capsys):
    r = demo.run(str(tmp_path), epochs=5, progress=False)
    out = capsys.readouterr().out
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]", "transfer (graphsurgeon)", "from scratch",
                 "bottleneck cache of the top frozen layer (hidden2/Relu)", "from the cache"):
        assert step in out
    assert r["original"] > 0.9
    # the SavedModel answers like the retrained graph (same count; the mean of batch means differs by float rounding)
    assert abs(r["saved_model"] - r["transfer"]) < 1e-6
    assert 0.0 < r["transfer"] <= 1.0 and 0.0 < r["scratch"] <= 1.0
    assert "hidden2/weights" in out and "restored" in out  # the plan is shown
