"""The learning curve: for k labelled images per class, three ways to get a digits 5-9 classifier
out of the original digits 0-4 model, trained alike (Adam, same learning rate, same number of steps).

* ``transfer_head``: the old output layer replaced by a new head on ``fc1/Relu``, trained from a
  bottleneck cache of ``fc1/Relu`` (everything below it is frozen and never runs while training);
* ``transfer_finetune``: the same new head, with ``fc1`` fine-tuned at a tenth of the learning
  rate, trained from a cache of ``flatten`` (the frozen conv layers' output);
* ``scratch``: the same network with every layer re-initialized, trained on the images.

Each arm's graph is built once by :func:`graphsurgeon.build` from the :class:`graphsurgeon.RetrainConfig`
that ``graphsurgeon retrain`` would take, with :func:`graphsurgeon.build_train_op`; each run then
resets its values (restored layers back to the checkpoint's, new layers drawn from the run's seed by
:func:`graphsurgeon.reinitialize`, optimizer state zeroed) and trains. One graph per arm instead of
one ``retrain`` per run keeps the demo's 54 runs within seconds: ``retrain`` also exports, verifies
and writes logs every time.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src.demo import lenet
from graphsurgeon._src.demo.data import NewTask
from graphsurgeon._src.train import steps_per_epoch

tf1 = tf.compat.v1

ARMS = ("transfer_head", "transfer_finetune", "scratch")
KS = (1, 2, 5, 10, 20, "all")
CACHED = {"transfer_head": lenet.CUT, "transfer_finetune": lenet.FLATTEN, "scratch": None}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every run shares: Adam at ``lr``; shuffled epochs of minibatches of up to
    ``batch_size`` images, as many epochs as reach ``steps`` minibatches; no early stopping (it
    would need validation labels, which a few-label task does not have)."""

    steps: int = 300
    lr: float = 3e-3
    batch_size: int = 32
    finetune_lr_mult: float = 0.1

    def epochs(self, n_train: int) -> int:
        """As many epochs of ``n_train`` images as reach :attr:`steps` minibatches (of
        :func:`~graphsurgeon._src.train.steps_per_epoch` an epoch)."""
        return -(-self.steps // steps_per_epoch(n_train, self.batch_size))


def config(arm: str, model: str, n_classes: int, settings: Settings, *, seed: int = 0,
           n_train: int | None = None) -> "gs.RetrainConfig":
    """The :class:`graphsurgeon.RetrainConfig` of ``arm`` (``n_train`` sets the epochs)."""
    common = dict(model=model, head=f"{lenet.CUT}:{n_classes}", optimizer="adam", lr=settings.lr,
                  batch_size=settings.batch_size, patience=0, seed=seed,
                  epochs=settings.epochs(n_train) if n_train else None)
    if arm == "transfer_head":
        return gs.RetrainConfig(**common)
    if arm == "transfer_finetune":
        return gs.RetrainConfig(trainable=["fc1"], lr_mult=[f"fc1={settings.finetune_lr_mult:g}"], **common)
    if arm == "scratch":
        return gs.RetrainConfig(trainable=list(lenet.BODY), reinit=list(lenet.BODY), **common)
    raise ValueError(f"unknown arm {arm!r}; expected one of {', '.join(ARMS)}")


@dataclasses.dataclass
class Run:
    """One training run: ``arm``, ``k`` images per class drawn by ``seed``; its test accuracy."""

    arm: str
    k: object
    seed: int
    train: np.ndarray       # indices into the new task's images
    test_examples: int
    accuracy: float


class Trainer:
    """One arm's training graph, built once, trained many times (see the module docstring).

    ``features`` gives, for indices of the new task's images, what is fed: the cached activations
    (``transfer_*``) or the images (``scratch``).
    """

    def __init__(self, arm: str, model: str, task: NewTask, settings: Settings, features):
        self.arm, self.task, self.settings, self.features = arm, task, settings, features
        self.setup = gs.build(config(arm, model, len(task.classes), settings))
        m = self.setup.model
        self.fed = m.tensor(CACHED[arm]) if CACHED[arm] else self.setup.input
        mults = self.setup.stages[0][1]  # {trainable variable: learning-rate multiplier}
        self.drawn = list(lenet.BODY) + ["head"] if arm == "scratch" else ["head"]  # new values every run
        drawn = set(gs.match(self.drawn, list(mults)))
        self.restored = m.values(sorted(set(mults) - drawn))  # trainable, back to the checkpoint's every run
        with m.graph.as_default():
            self.labels = tf1.placeholder(tf.int64, [None], name="demo/labels")
            xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.labels, logits=self.setup.logits)
            self.loss = tf.reduce_mean(xent, name="demo/loss")
            self.correct = tf.equal(tf.argmax(self.setup.logits, 1), self.labels)
            before = set(tf1.global_variables())
            self.train_op = gs.build_train_op(self.loss, m.variables, mults, optimizer="adam", lr=settings.lr,
                                              name="demo/train")
            self.reset_optimizer = tf1.variables_initializer(sorted(set(tf1.global_variables()) - before,
                                                                    key=lambda v: v.name))

    def reset(self, seed: int) -> None:
        """Restored trainable layers back to the checkpoint's values, drawn layers drawn from ``seed``,
        optimizer state back to its start."""
        m = self.setup.model
        variables = m.variables
        for name, value in self.restored.items():  # feed the initializer: no new ops per run
            init = variables[name].initializer
            m.session.run(init, {init.inputs[1]: value})
        gs.reinitialize(m, self.drawn, seed=seed)
        m.session.run(self.reset_optimizer)

    def run(self, k, seed: int, on_step=None) -> Run:
        """Train on ``k`` pool images per class drawn by ``seed``; measure on the whole test set."""
        task, st = self.task, self.settings
        train = task.sample(k, seed)
        task.check_disjoint(train)
        self.reset(seed)
        x, y = self.features(train), task.y[train]
        rng = np.random.default_rng(seed)
        sess = self.setup.model.session
        for _ in range(st.epochs(len(train))):
            order = rng.permutation(len(train))
            for i in range(0, len(order), st.batch_size):
                idx = order[i:i + st.batch_size]
                sess.run(self.train_op, {self.fed: x[idx], self.labels: y[idx]})
                if on_step is not None:
                    on_step()
        correct = sess.run(self.correct, {self.fed: self.features(task.test), self.labels: task.y[task.test]})
        return Run(self.arm, k, seed, train, len(correct), float(np.mean(correct)))

    def close(self) -> None:
        self.setup.model.close()


def summarize(runs: list[Run], ks=KS) -> list[dict]:
    """One row per k: the labelled training images, and per arm the mean test accuracy over seeds,
    its sample standard deviation (``_std``) and the per-seed values (``_runs``, in seed order)."""
    rows = []
    for k in ks:
        mine = [r for r in runs if r.k == k]
        if not mine:
            continue
        row = {"k": k, "train_images": len(mine[0].train)}
        for arm in ARMS:
            acc = [r.accuracy for r in sorted(mine, key=lambda r: r.seed) if r.arm == arm]
            if acc:
                row[arm] = float(np.mean(acc))
                row[f"{arm}_std"] = float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0
                row[f"{arm}_runs"] = acc
        rows.append(row)
    return rows
