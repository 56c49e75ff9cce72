"""``graphsurgeon demo``: the story, step by step (see the package docstring)."""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

import graphsurgeon as gs
from graphsurgeon._src import train
from graphsurgeon._src.demo import curve, data, lenet, report
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage import files
from graphsurgeon._src.storage.session import serve

EXPORTED = ("transfer_finetune", 5, 0)  # the run the demo exports and serves: arm, k, seed
ORIGINAL_STEPS = 1000
SEEDS = (0, 1, 2)


@dataclasses.dataclass
class Result:
    """What :func:`run` measured and wrote."""

    rows: list            # curve.summarize rows
    runs: list            # every curve.Run
    task: data.NewTask
    original: dict        # checkpoint, held-out accuracy and size of the held-out set
    exported: dict        # the retrain run that was exported and served
    settings: dict
    out: str
    picture: str | None
    seconds: float

    def to_json(self) -> dict:
        """The ``--json`` report (see :func:`graphsurgeon._src.demo.report.to_json`)."""
        return report.to_json(self.rows, test_images=len(self.task.test), pool_images=len(self.task.pool),
                              settings=self.settings, original=self.original, exported=self.exported,
                              out=self.out, picture=self.picture, seconds=round(self.seconds, 1))


def run(out_dir: str | None = None, *, seeds=SEEDS, ks=curve.KS, settings: curve.Settings = curve.Settings(),
        canvas: int = data.CANVAS, original_steps: int = ORIGINAL_STEPS, progress: bool = True, say=print,
        plot: bool = True) -> Result:
    """Run the demo; ``say`` gets each line of the story (None: silent).

    Writes only under ``out_dir`` (a new temporary directory if None), and there only its own
    names: ``original/``, ``digits59-k5.npz``, ``cache-flatten/``, ``retrained/`` and
    ``learning_curve.png`` (replaced if a previous demo left them), and a temporary
    ``curve-*`` directory removed at the end.
    """
    start = time.perf_counter()
    say = say or (lambda *_: None)
    out_dir = files.make_dir(out_dir) if out_dir else files.new_temp_dir("graphsurgeon-demo-")
    seeds, ks = list(seeds), list(ks)
    old, new = data.tasks(canvas)
    where = (f"at random places on a {canvas}x{canvas} canvas" if canvas > data.DIGIT
             else "centred, as scikit-learn gives them")  # the new task's line says "also <up to the comma>"

    say(f"[1/4] The original model: a LeNet-style TF1 conv net (raw ops, reference variables,\n"
        f"      tf.train.Saver), trained on {len(old.train)} images of digits 0-4 {where}")
    prefix, held_acc = lenet.train_original(old, os.path.join(out_dir, "original", "model.ckpt"),
                                            steps=original_steps)
    model = os.path.dirname(prefix)
    say(f"      accuracy on {len(old.held_out)} held-out digits 0-4: {held_acc:.3f}")

    say(f"[2/4] The new task: digits 5-9, also {where.split(',')[0]}; k labelled images per class\n"
        f"      from a pool of {len(new.pool)}; every accuracy below is on the same {len(new.test)} other images")
    with files.scratch_dir(out_dir, "curve-") as work:
        features = _cached_features(new, model, work)
        say(f"      bottleneck caches of {lenet.CUT} and {lenet.FLATTEN}: the frozen layers ran once per image")
        n_runs = len(curve.ARMS) * len(ks) * len(seeds)
        say(f"[3/4] Learning curve: {len(curve.ARMS)} ways x {len(ks)} values of k x {len(seeds)} seeds = {n_runs} "
            f"runs,\n      each ~{settings.steps} steps of Adam at lr {settings.lr:g} "
            f"(fc1 tuned at x{settings.finetune_lr_mult:g})")
        runs = _curve(new, model, features, ks, seeds, settings, progress)
    rows = curve.summarize(runs, ks)
    say(report.table(rows, len(seeds)))
    for line in report.verdict(rows):
        say("  " + line)

    arm, k, seed = EXPORTED
    say(f"[4/4] graphsurgeon retrain: {report.LABELS[arm]}, k={k} (seed {seed}), from a cache; "
        "exported, then served")
    exported = _retrain_and_serve(new, model, out_dir, arm, k, seed, settings, say)

    picture = os.path.join(out_dir, "learning_curve.png")
    files.remove(picture)
    picture = report.plot(rows, picture, test_images=len(new.test), n_seeds=len(seeds)) if plot else None
    say("")
    say(f"  original model: {prefix}")
    say(f"  checkpoint:     {exported['checkpoint']}")
    say(f"  SavedModel:     {exported['saved_model']}")
    say(f"  TensorBoard:    tensorboard --logdir {exported['logs']}")
    say(f"  picture:        {picture or (report.PLOT_HINT if plot else 'not drawn (plot=False)')}")
    settings_json = dict(dataclasses.asdict(settings), seeds=seeds, canvas=canvas, original_steps=original_steps,
                         optimizer="adam")
    return Result(rows, runs, new, {"checkpoint": prefix, "accuracy": held_acc, "held_out_images": len(old.held_out),
                                    "train_images": len(old.train)},
                  exported, settings_json, out_dir, picture, time.perf_counter() - start)


def _cached_features(task: data.NewTask, model: str, work: str) -> dict:
    """``{arm: [N, ...] array}`` of what each arm is fed for each new-task image: the activations
    of its cached tensor (:func:`graphsurgeon.generate_cache` over every image, read back with
    :class:`graphsurgeon.CacheReader`), or the images for ``scratch``."""
    path = os.path.join(work, "digits59-all.npz")
    task.npz(path, task.pool)
    by_arm = {}
    for arm, cut in curve.CACHED.items():
        if cut is None:
            by_arm[arm] = task.x
            continue
        cache = os.path.join(work, "cache-" + cut.replace("/", "_"))
        gs.generate_cache(model, cut, path, cache, progress=False)
        with gs.CacheReader(cache) as reader:
            train, test = reader.examples("train"), reader.examples("test")
            if len(train) != len(task.pool) or len(test) != len(task.test):
                raise AssertionError(f"{cache}: {len(train)} + {len(test)} examples, expected "
                                     f"{len(task.pool)} + {len(task.test)}")
            table = np.zeros((len(task.y),) + tuple(reader.shape), np.float32)
            table[task.pool] = reader.read(train)  # a split's rows come in the .npz's order
            table[task.test] = reader.read(test)
        by_arm[arm] = table
    return by_arm


def _curve(task, model, features, ks, seeds, settings, progress) -> list:
    """Every (arm, k, seed) run, under one progress display counting minibatches."""
    sizes = [len(task.sample(k, 0)) for k in ks]
    total = sum(settings.epochs(n) * train.steps_per_epoch(n, settings.batch_size) for n in sizes) * len(seeds) * len(curve.ARMS)
    runs = []
    with Progress(total, "learning curve", "steps", enabled=progress) as bar:
        for arm in curve.ARMS:
            table = features[arm]
            trainer = curve.Trainer(arm, model, task, settings, lambda idx: table[idx])
            try:
                for k in ks:
                    for seed in seeds:
                        bar.update(0, run=f"{arm} k={k} seed {seed}")
                        runs.append(trainer.run(k, seed, on_step=lambda: bar.update(1)))
            finally:
                trainer.close()
    return runs


def _retrain_and_serve(task, model, out_dir, arm, k, seed, settings, say) -> dict:
    """One end-to-end :func:`graphsurgeon.retrain` (from a bottleneck cache, its plan printed), then
    :func:`serve_check` on the test images.

    Raises:
      AssertionError: the SavedModel's answers differ from the retrained graph's.
    """
    train = task.sample(k, seed)
    path = os.path.join(out_dir, f"digits59-k{k}.npz")
    task.npz(path, train)
    cfg = curve.config(arm, model, len(task.classes), settings, seed=seed, n_train=len(train))
    for line in gs.plan(cfg).format_text().splitlines():
        say("      " + line)
    cache = None
    if curve.CACHED[arm]:
        cache = os.path.join(out_dir, "cache-" + curve.CACHED[arm].replace("/", "_"))
        files.remove(cache)  # a previous demo's cache belongs to its own original model
        gs.generate_cache(model, curve.CACHED[arm], path, cache, progress=False)
    out = os.path.join(out_dir, "retrained")
    res = gs.retrain(cfg, None if cache else path, out, cache=cache, progress=False, overwrite=True)
    x_test, y_test = task.x[task.test], task.y[task.test]
    try:
        graph_probs = res.setup.model.run(res.setup.probabilities, {res.setup.input: x_test})
    finally:
        res.setup.model.close()
    served = serve_check(res.export.saved_model, x_test, graph_probs, task.classes)
    served_acc = float(np.mean(served.pop("probabilities").argmax(1) == y_test))
    test = res.metrics["test"]
    say(f"      test accuracy {test['accuracy']:.3f} on {test['examples']} images, trained on "
        f"{res.metrics['train']['examples']}")
    diff = served["max_probability_difference"]
    say(f"      served with tf.saved_model.load: accuracy {served_acc:.3f} on the same images; its answers "
        + (f"equal\n      the retrained graph's (same classes, probabilities within 1e-6: largest difference {diff:.2g})"
           if served["answers_equal"] else
           f"DIFFER from\n      the retrained graph's (largest probability difference {diff:.2g})"))
    if not served["answers_equal"]:
        raise AssertionError(f"the SavedModel's answers differ from the retrained graph's: {served}")
    return {"arm": arm, "k": k, "seed": seed, "train_images": res.metrics["train"]["examples"],
            "test_images": test["examples"], "accuracy": test["accuracy"], "served_accuracy": served_acc, **served,
            "checkpoint": res.export.checkpoint, "saved_model": res.export.saved_model,
            "logs": os.path.join(out, "logs"), "cache": cache, "data": path}


def serve_check(saved_model: str, x: np.ndarray, graph_probabilities: np.ndarray, classes) -> dict:
    """Serve ``saved_model`` as TensorFlow Serving would (``tf.saved_model.load``, signature
    ``serving_default``) on ``x`` and compare with the retrained graph's probabilities.

    Returns:
      ``{"answers_equal": the same top class for every image, named as ``classes`` names it, and
      every probability within 1e-6; "max_probability_difference": float; "probabilities": served}``.
    """
    served = serve(saved_model, inputs=x)
    probs = served["probabilities"]
    names = [c.decode() for c in served["classes"]]
    diff = float(np.max(np.abs(probs - graph_probabilities)))
    equal = (np.array_equal(probs.argmax(1), graph_probabilities.argmax(1)) and diff <= 1e-6
             and names == [classes[i] for i in probs.argmax(1)])
    return {"answers_equal": bool(equal), "max_probability_difference": diff, "probabilities": probs}
