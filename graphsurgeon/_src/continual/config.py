"""Every setting of ``learn-task``, its defaults per method, and the checks of their ranges.

Defaults, and where they come from (``/work/shared/REFERENCES.md`` sections 1–4):

============================  ==================================================================
every method                  Adam, batch 32, 30 epochs; the new head trains at ``lr`` = 0.003
                              (retrain's rate for a new head, benchmarks/defaults_bench.py)
fine-tune, joint, lwf, ewc    the backbone (and, for joint and lwf, the old heads) at
                              ``lr × backbone_lr_mult`` = 0.003 / 3 = 0.001 (retrain's rate when
                              restored layers train): fine-tuning at a lower rate
lwf                           T = 2, λ = 1 (the official code's ``distillation_temp`` and
                              ``keep_response_lambda``); a warm-up of 5 epochs with the backbone
                              frozen (arunmallya/packnet's ``lwf.py``; the official run starts from a
                              frozen-backbone run)
ewc                           Fisher from 200 examples, empirical labels (Avalanche's importance);
                              penalty λ·Σ (F/F̄)·(θ−θ*)² without ½ (Avalanche's form), F̄ the
                              Fisher's mean over the backbone's weights, λ = 0.1 (measured on
                              example 05, benchmarks/README.md); online mode F ← γ·F + F_new with
                              γ = 1 (van de Ven's ``--gamma`` default)
packnet                       the new task's weights pruned to ``prune`` = 0.75 after training, a
                              plain model's own weights to ``prune_first`` = 0.5 first (PackNet's
                              0.75 for later tasks and 0.5 for ImageNet); retraining after a prune
                              for half the epochs; biases frozen after the first task
piggyback                     mask scores start at 0.01, binarized at > 0.005 (``mask_scale``,
                              ``DEFAULT_THRESHOLD``); masks train with Adam at 1e-4; the head at ``lr``
============================  ==================================================================
"""
from __future__ import annotations

import dataclasses
import math

from graphsurgeon._src.errors import ConfigError

METHODS = ("feature-extraction", "fine-tune", "joint", "lwf", "ewc", "packnet", "piggyback")
MASKED = ("packnet", "piggyback")
FISHER_LABELS = ("empirical", "sampled")
EWC_LAMBDA = 0.1  # on the Fisher divided by its mean (continual/ewc.py)


@dataclasses.dataclass
class LearnConfig:
    """The settings of one ``learn-task`` run (CLI flags map onto these fields).

    ``model`` is a plain model (split at ``features``, by default the tensor its ``model.json`` names when
    ``combine`` or ``add-class`` wrote it; its one task is named ``old_task``, by default
    its directory's name) or a many-heads model. ``task`` names the new task. ``old_data`` maps an old
    task's name to labelled data for it (``{"": path}`` when the model has one task): ``joint`` trains
    on it, ``ewc`` computes that task's Fisher from it, ``packnet`` retrains a plain model's pruned
    weights on it. ``cache`` keeps LwF's recorded old-head outputs (default: a temporary directory).
    ``allow_random`` accepts a backbone whose features differ between runs on one batch (dropout with
    ``keep_prob`` baked in), or an old task's head (from the features to its output) that does, which
    :func:`~graphsurgeon._src.continual.learn.learn_task` otherwise refuses; ``allow_batch_dependent``
    accepts features whose value for an example changes with the other examples of its batch (batch norm
    in training mode), which it otherwise refuses too.
    """

    model: str = ""
    task: str = ""
    method: str = "lwf"
    features: str | None = None
    input: str | None = None
    output: str | None = None
    old_task: str | None = None
    old_data: dict = dataclasses.field(default_factory=dict)
    replace: bool = False
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.003
    optimizer: str = "adam"
    backbone_lr_mult: float = 1 / 3
    seed: int = 0
    lam: float | None = None          # lwf 1, ewc 0.1
    temperature: float = 2.0
    warmup_epochs: int = 5
    cache: str | None = None
    fisher: str | None = None
    fisher_samples: int = 200
    fisher_labels: str = "empirical"
    online: bool = False
    gamma: float = 1.0
    prune: float = 0.75
    prune_first: float = 0.5
    retrain_epochs: int | None = None  # None: half of epochs
    threshold: float = 5e-3
    mask_init: float = 1e-2
    mask_lr: float = 1e-4
    tags: list = dataclasses.field(default_factory=lambda: ["serve"])
    allow_random: bool = False
    allow_batch_dependent: bool = False

    def lam_value(self) -> float:
        """λ: as given, else 1 for lwf and :data:`EWC_LAMBDA` for ewc."""
        if self.lam is not None:
            return self.lam
        return EWC_LAMBDA if self.method == "ewc" else 1.0

    def retrain_value(self) -> int:
        return self.retrain_epochs if self.retrain_epochs is not None else max(1, self.epochs // 2)

    def settings(self) -> dict:
        """What :func:`graphsurgeon._src.train.build_train_op` takes: ``{optimizer, lr}``."""
        return {"optimizer": self.optimizer, "lr": self.lr}

    def check(self) -> "LearnConfig":
        """Raise :class:`ConfigError` naming the first setting out of range; returns self."""
        if not self.model:
            raise ConfigError("no model given (model=PATH)")
        if self.method not in METHODS:
            raise ConfigError(f"method={self.method!r}: expected one of {', '.join(METHODS)}")
        if not self.task or not self.task.strip() or "\n" in self.task:
            raise ConfigError(f"task={self.task!r}: the new task needs a name (one line)")
        _at_least("epochs", self.epochs, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("warmup_epochs", self.warmup_epochs, 0)
        _at_least("fisher_samples", self.fisher_samples, 1)
        if self.retrain_epochs is not None:
            _at_least("retrain_epochs", self.retrain_epochs, 0)
        _positive("lr", self.lr)
        _positive("mask_lr", self.mask_lr)
        _positive("temperature", self.temperature)
        _positive("mask_init", self.mask_init)
        if not _finite(self.backbone_lr_mult) or self.backbone_lr_mult < 0:
            raise ConfigError(f"backbone_lr_mult={self.backbone_lr_mult}: expected a multiplier >= 0")
        if self.lam is not None and (not _finite(self.lam) or self.lam < 0):
            raise ConfigError(f"lam={self.lam}: expected a weight λ >= 0 (a finite number)")
        for name in ("prune", "prune_first"):
            v = getattr(self, name)
            if not _finite(v) or not 0.0 <= v < 1.0:
                raise ConfigError(f"{name}={v}: expected a fraction of the weights to free, 0 <= {name} < 1")
        if not _finite(self.gamma) or not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"gamma={self.gamma}: expected a decay 0 < gamma <= 1")
        if not _finite(self.threshold) or self.threshold < 0:
            raise ConfigError(f"threshold={self.threshold}: expected a mask threshold >= 0")
        if self.method == "piggyback" and self.mask_init <= self.threshold:
            raise ConfigError(f"mask_init={self.mask_init} with threshold={self.threshold}: every mask score would "
                              "start at or below the threshold, every backbone kernel weight dropped; give a "
                              "mask_init= above threshold=")
        if self.fisher_labels not in FISHER_LABELS:
            raise ConfigError(f"fisher_labels={self.fisher_labels!r}: expected one of {', '.join(FISHER_LABELS)}")
        if self.method == "lwf" and 0 < self.epochs <= self.warmup_epochs:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs} with epochs={self.epochs}: lwf would only warm up "
                              "the new head on a frozen backbone, never learn with the old heads' answers; give more "
                              "epochs= than warmup_epochs=, or a smaller warmup_epochs=")
        if self.method == "joint" and not self.old_data:
            raise ConfigError("method='joint' trains on the old tasks' data too: give old_data=PATH")
        return self


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _at_least(name: str, value, low: int) -> None:
    if not isinstance(value, int) or value < low:
        raise ConfigError(f"{name}={value}: expected an integer >= {low}")


def _positive(name: str, value) -> None:
    if not _finite(value) or value <= 0:
        raise ConfigError(f"{name}={value}: expected a number > 0")
