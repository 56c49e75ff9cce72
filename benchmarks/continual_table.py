"""The comparison table of seed 001, measured: learning a new task on a restored model, seven ways.

Task-incremental, on scikit-learn's digits (examples/05_continual/digits_tasks.py): the old task is
digits 0–4 (a legacy TF1 MLP, ``hidden2/Relu`` its features), the new task digits 5–9; the task
id is known at test time. For every method ``graphsurgeon learn-task`` (the library call) runs
with the same epochs and seed and its default settings, and the written many-heads SavedModel
is measured:

* new-task accuracy and old-task accuracy after, on the test splits (30 % of each digit, never
  trained on); the old task's accuracy before is the original model's;
* training time (``seconds``: reading, recording, training, Fisher; not writing), and its ratio to
  feature extraction's in the same run;
* extra bytes per task (the new head, plus masks or Fisher information);
* whether old data is needed.

PackNet packs the original model first: half of its kernels' weights are freed and the rest
retrained on the old data (PackNet's own first step); that step, not the new task, is what moves
the old task's accuracy. After it, no old output changes (the tests check bit for bit).

Many-to-one (seed 002): ``combine`` of the digits 0–4 model and a digits 5–8 model without labels
(on the training inputs of digits 0–8; ``balance`` ``prior``, the default, and ``logits``), against
the same MLP trained jointly on digits 0–8 with labels, and against ``combine`` with the labels;
then ``add-class`` for digit 9 from 10 examples on the default combined model. ``skewed``: the
default combine on the training inputs with half of digits 0–4 left out (seeded), where its
assumption of equally frequent classes is wrong.

    python benchmarks/continual_table.py [--seeds 3] [--epochs 30] [--json] [--plot table.png]

Several seeds (each draws the split, the original models and every method's initial values):
mean ± sample standard deviation.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples", "05_continual"))

import digits_tasks  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from graphsurgeon._src.add_class import add_class  # noqa: E402
from graphsurgeon._src.combine import combine  # noqa: E402
from graphsurgeon._src.continual import write  # noqa: E402
from graphsurgeon._src.continual.config import LearnConfig  # noqa: E402
from graphsurgeon._src.continual.learn import OLD_DATA, learn_task  # noqa: E402
from graphsurgeon._src.export_dir import predict  # noqa: E402
from graphsurgeon._src.storage import datasets  # noqa: E402

tf1 = tf.compat.v1
METHODS = ("feature-extraction", "fine-tune", "joint", "lwf", "ewc", "packnet", "piggyback")
NEEDS_OLD = {"feature-extraction": "no", "fine-tune": "no", "joint": "yes", "lwf": "no",
             "ewc": "once (Fisher)", "packnet": "once (packing)", "piggyback": "no"}


def plain_accuracy(model_dir: str, x, y) -> float:
    """Accuracy of a legacy checkpoint model (``x:0`` → ``probabilities:0``), restored with a Saver."""
    g = tf.Graph()
    with g.as_default(), tf1.Session() as s:
        ckpt = tf.train.latest_checkpoint(model_dir)
        tf1.train.import_meta_graph(ckpt + ".meta").restore(s, ckpt)
        return float((s.run("probabilities:0", {"x:0": x}).argmax(1) == y).mean())


def one_seed(work: str, seed: int, epochs: int, model_epochs: int, progress: bool) -> dict:
    paths = digits_tasks.make(work, seed=seed, epochs=model_epochs)
    out = methods(work, paths, seed, epochs, progress)
    out["many_to_one"] = many_to_one(work, paths, seed, progress)
    return out


def methods(work: str, paths: dict, seed: int, epochs: int, progress: bool = False) -> dict:
    """Every method learns digits 5–9 on the digits 0–4 model: ``{"before", "methods": {method: row}}``."""
    xo, yo = datasets.load(paths["digits04"]).part("test")
    out = {"before": plain_accuracy(paths["digits04_model"], xo, yo), "methods": {}}
    for m in METHODS:
        cfg = LearnConfig(model=paths["digits04_model"], features=digits_tasks.FEATURES, task="digits59", method=m,
                          epochs=epochs, seed=seed,
                          old_data={"": paths["digits04"]} if m in ("joint", "ewc", "packnet") else {})
        r = learn_task(cfg, paths["digits59"], os.path.join(work, m), progress=progress)
        out["methods"][m] = {"new": r.metrics["new"]["test"], "old": write.accuracy(r.directory, 0, xo, yo),
                             "seconds": r.seconds, "extra_bytes": int(sum(r.extra_bytes.values())),
                             "extra": r.extra_bytes}
    return out


def many_to_one(work: str, paths: dict, seed: int, progress: bool = False, epochs: int | None = None,
                compare: bool = True) -> dict:
    """``combine`` without and with labels against the jointly trained net, then ``add-class``
    (with ``compare``, also ``combine`` with ``balance="logits"`` and on skewed data)."""
    x, y = datasets.load(paths["digits08"]).part("test")
    x_all, y_all = digits_tasks.digits()
    parts = digits_tasks.split(y_all, seed)
    nines = x_all[(y_all == 9) & (parts == "test")]
    models = [(paths["digits04_model"], digits_tasks.FEATURES), (paths["digits58_model"], digits_tasks.FEATURES)]

    def accuracy(directory):
        return float((predict(directory, x).argmax(1) == y).mean())

    def run(name, data, **kw):
        return combine(models, data, os.path.join(work, name), seed=seed, epochs=epochs, progress=progress, **kw)
    teach = run("ab", paths["digits08_unlabelled"])
    added = add_class(teach.directory, paths["digit9_10"], "9", os.path.join(work, "abc"), seed=seed)
    out = {"joint": plain_accuracy(paths["digits09_model"], x, y), "combined_no_labels": accuracy(teach.directory),
           "combined_labels": accuracy(run("ab_labels", paths["digits08"]).directory),
           "old_after_add": accuracy(added.directory),
           "nine_recall": float((predict(added.directory, nines).argmax(1) == 9).mean()),
           "combine_seconds": teach.seconds}
    if compare:
        out["combined_logits"] = accuracy(run("ab_logits", paths["digits08_unlabelled"], balance="logits").directory)
        x_train, y_train = x_all[(y_all < 9) & (parts == "train")], y_all[(y_all < 9) & (parts == "train")]
        drop = (y_train < 5) & (np.random.default_rng(seed + 13).random(len(y_train)) < 0.5)
        skewed = files_npz(os.path.join(work, "skewed.npz"), x_train[~drop])
        out["skewed_prior"] = accuracy(run("ab_skewed", skewed).directory)
        out["skewed_logits"] = accuracy(run("ab_skewed_logits", skewed, balance="logits").directory)
    return out


def files_npz(path: str, x) -> str:
    np.savez(path, x=x)
    return path


def mean_sd(values) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(runs: list) -> dict:
    rows = {}
    fe = [r["methods"]["feature-extraction"]["seconds"] for r in runs]
    for m in METHODS:
        rs = [r["methods"][m] for r in runs]
        rows[m] = {"new": mean_sd(x["new"] for x in rs), "old": mean_sd(x["old"] for x in rs),
                   "seconds": mean_sd(x["seconds"] for x in rs),
                   "time_ratio": mean_sd(x["seconds"] / f for x, f in zip(rs, fe)),
                   "extra_bytes": mean_sd(x["extra_bytes"] for x in rs), "old_data": NEEDS_OLD[m],
                   "old_data_library": OLD_DATA[m]}
    many = {k: mean_sd(r["many_to_one"][k] for r in runs) for k in runs[0]["many_to_one"]}
    return {"before": mean_sd(r["before"] for r in runs), "methods": rows, "many_to_one": many, "seeds": len(runs)}


def fmt(ms, digits=3) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def table(s: dict) -> str:
    lines = [f"old task (digits 0-4) before: {fmt(s['before'])}; {s['seeds']} seeds, mean ± sd", "",
             "| method | new task acc | old task acc after | training s | × feature-extraction | extra bytes/task "
             "| old data needed |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for m, r in s["methods"].items():
        lines.append(f"| {m} | {fmt(r['new'])} | {fmt(r['old'])} | {r['seconds'][0]:.1f} | "
                     f"{r['time_ratio'][0]:.2f} | {r['extra_bytes'][0]:,.0f} | {r['old_data']} |")
    k = s["many_to_one"]
    lines += ["", "| many-to-one (digits 0-8 test) | accuracy |", "| --- | ---: |",
              f"| jointly trained 9-class net | {fmt(k['joint'])} |",
              f"| combine, with labels | {fmt(k['combined_labels'])} |",
              f"| combine, without labels (default: --balance prior) | {fmt(k['combined_no_labels'])} |",
              f"| combine, without labels, --balance logits | {fmt(k['combined_logits'])} |",
              f"| combine, half of digits 0-4 left out of its data, prior | {fmt(k['skewed_prior'])} |",
              f"| combine, half of digits 0-4 left out of its data, logits | {fmt(k['skewed_logits'])} |",
              f"| after add-class '9' from 10 examples (digits 0-8) | {fmt(k['old_after_add'])} |",
              f"| digit 9 test images recognized as 9 | {fmt(k['nine_recall'])} |"]
    return "\n".join(lines)


def plot(s: dict, path: str) -> bool:
    """Draw the table's accuracies at ``path`` (False when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from graphsurgeon._src.storage.files import save_figure

    names = list(s["methods"])
    fig, ax = plt.subplots(figsize=(8, 4))
    idx = np.arange(len(names))
    for off, key, label in ((-0.2, "new", "new task"), (0.2, "old", "old task after")):
        ax.bar(idx + off, [s["methods"][n][key][0] for n in names], 0.4,
               yerr=[s["methods"][n][key][1] for n in names], label=label)
    ax.axhline(s["before"][0], color="k", lw=0.8, ls="--", label="old task before")
    ax.set_xticks(idx)
    ax.set_xticklabels(names, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.legend(loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return True


def run(seeds: int = 3, epochs: int = 30, model_epochs: int = 40, progress: bool = False, work: str | None = None):
    own = work is None
    work = work or tempfile.mkdtemp(prefix="continual-table-")
    try:
        runs = [one_seed(os.path.join(work, f"seed{s}"), s, epochs, model_epochs, progress) for s in range(seeds)]
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return summarize(runs), runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--model-epochs", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", metavar="PNG")
    ap.add_argument("--from-json", metavar="FILE", help="print (and plot) a run saved with --json instead of running")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            got = json.load(f)
        s, runs = got["summary"], got["runs"]
    else:
        s, runs = run(args.seeds, args.epochs, args.model_epochs)
    if args.json:
        print(json.dumps({"summary": s, "runs": runs}, indent=2))
    else:
        print(table(s))
    if args.plot:
        print(f"{args.plot}: " + ("written" if plot(s, args.plot) else "not drawn (matplotlib is not installed; "
                                                                         "pip install tf1-graphsurgeon[plot])"))


if __name__ == "__main__":
    main()
