"""Every setting of a retraining run, and the defaults for what the run trains."""
from __future__ import annotations

import dataclasses
import math

from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.mixins import listed
from graphsurgeon._src.rules import Rules, old_rename_message
from graphsurgeon._src.storage import files


@dataclasses.dataclass
class RetrainConfig:
    """Every setting of a retraining run (CLI flags and TOML plan files map onto these fields).

    ``head`` is ``'CUT:N_CLASSES'`` (cut at the tensor CUT, new head with N classes); without it
    ``output`` names the existing logits to fine-tune. ``trainable`` patterns name the
    restored variables that train (the new head always trains); everything else is frozen.
    ``feeds`` are inference values for placeholders other than the input (``keep_prob``,
    ``is_training``; a ``placeholder_with_default`` may be given one, which the export takes for its
    default), ``train_feeds`` their values while training. ``epochs``, ``lr``,
    ``optimizer`` and ``patience`` left None take the defaults of :func:`training_settings`.
    ``keep``, ``drop``, ``rename`` (``'REGEX=REPLACEMENT'``) and ``map_scope`` (``'CKPT/=GRAPH/'``)
    are the checkpoint name rules of :class:`graphsurgeon.Rules` (see :meth:`rules`).
    ``allow_random`` and ``allow_batch_dependent`` accept a cut (or ``output``) whose values differ
    between two runs on one batch, or for an example run without its batch-mates (see
    :func:`graphsurgeon._src.retrain.checks.check_head_input`).
    """

    model: str = ""
    head: str | None = None
    head_hidden: list = dataclasses.field(default_factory=list)
    head_activation: str = "relu"
    head_initializer: str = "glorot_uniform"
    head_scope: str = "head"
    pool: str = "avg"  # a rank > 2 cut: "avg" over its inner axes, or "flatten" (see add_head)
    output: str | None = None
    input: str | None = None
    trainable: list = dataclasses.field(default_factory=list)
    keep: list = dataclasses.field(default_factory=list)
    drop: list = dataclasses.field(default_factory=list)
    reinit: list = dataclasses.field(default_factory=list)
    rename: list = dataclasses.field(default_factory=list)
    map_scope: list = dataclasses.field(default_factory=list)
    lr_mult: list = dataclasses.field(default_factory=list)
    unfreeze: list = dataclasses.field(default_factory=list)
    feeds: dict = dataclasses.field(default_factory=dict)
    train_feeds: dict = dataclasses.field(default_factory=dict)
    epochs: int | None = None      # None: see training_settings
    batch_size: int | None = None  # None: the batch the graph fixes, else 32
    lr: float | None = None
    optimizer: str | None = None
    seed: int = 0
    patience: int | None = None
    restore_optimizer: bool = False
    allow_missing: bool = False
    allow_cast: bool = False
    allow_unsafe_ops: bool = False
    allow_random: bool = False
    allow_batch_dependent: bool = False
    tags: list = dataclasses.field(default_factory=lambda: ["serve"])
    image_scale: str = "unit"

    @classmethod
    def from_toml(cls, path: str, **overrides) -> "RetrainConfig":
        """Read a TOML plan file; keys are the field names (``lr-mult`` or ``lr_mult``);
        ``[[unfreeze]]`` tables hold ``epoch``, ``scopes``, ``lr_mult``. ``overrides`` that
        are not None win over the file."""
        try:
            data = files.read_toml(path)
        except OSError as e:
            raise ConfigError(f"plan file {path}: {e.strerror}") from None
        except files.TOMLDecodeError as e:
            raise ConfigError(f"plan file {path}: not valid TOML ({e})") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"plan file {path}: not valid TOML (not UTF-8 text: byte {e.start})") from None
        data = {k.replace("-", "_"): v for k, v in data.items()}
        for old, new in REPLACED_KEYS.items():
            if old in data:
                raise ConfigError(f"plan file {path}: key '{old}' was replaced by {new}")
        if isinstance(data.get("rename"), dict):
            raise ConfigError(f"plan file {path}: {old_rename_message(data['rename'])}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"plan file {path}: unknown {listed('key', unknown)}; known: {', '.join(sorted(known))}")
        for f in dataclasses.fields(cls):
            if f.name in data and not _fits(f, data[f.name]):
                raise ConfigError(f"plan file {path}: '{f.name}' is {data[f.name]!r}; expected {_expected(f)}")
        data.update({k: v for k, v in overrides.items() if v not in (None, [], {})})
        return cls(**data)

    def rules(self) -> Rules:
        """The :class:`graphsurgeon.Rules` of ``keep``, ``drop``, ``rename`` and ``map_scope``.

        Raises:
          ConfigError: a malformed rule, or ``rename`` given as a ``{checkpoint: graph}`` dict.
        """
        return Rules(keep=list(self.keep), drop=list(self.drop), rename=self.rename, map_scope=list(self.map_scope))

    def check(self) -> None:
        """Raise :class:`ConfigError` on out-of-range numbers: epochs below 1, patience below 0, a
        learning rate that is not a finite number >= 0 (None takes the default; 0 trains nothing, which
        measures the loss of the weights as they are)."""
        for name, least in (("epochs", 1), ("patience", 0)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < least):
                raise ConfigError(f"{name}={v!r}: expected an integer >= {least}")
        lr = self.lr
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr)
                               or lr < 0):
            raise ConfigError(f"lr={lr!r}: expected a finite number >= 0")

    def head_spec(self):
        """``(cut, n_classes)`` (the name of the tensor the head reads, the number of classes) or None."""
        if not self.head:
            return None
        cut, sep, n = str(self.head).rpartition(":")
        if not sep or not cut or not n.isdigit() or int(n) < 1:
            raise ConfigError(f"head '{self.head}': expected CUT:N_CLASSES such as hidden3/Relu:2")
        return cut, int(n)


# plan-file keys of earlier versions -> what replaced them (the CLI adds the flag: see cli.messages)
REPLACED_KEYS = {"exclude": "'drop' (patterns on the checkpoint's names)",
                 "include": "'keep' (patterns on the checkpoint's names)"}

# what a TOML value may be, per field annotation; list fields hold strings unless listed here
_TOML_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list": (list,), "dict": (dict,)}
_TOML_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
               "list": "a list of strings", "dict": "a table"}
_LIST_ITEMS = {"head_hidden": ((int,), "a list of integers"), "unfreeze": ((str, dict), "a list of strings or tables")}


def _fits(field, value) -> bool:
    options = [t.strip() for t in str(field.type).split("|") if t.strip() != "None"]
    allowed = tuple(t for o in options for t in _TOML_TYPES[o]) + ((dict,) if field.name == "lr_mult" else ())
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        return False
    if isinstance(value, list):
        items = _LIST_ITEMS.get(field.name, ((str,), ""))[0]
        return all(isinstance(v, items) and not isinstance(v, bool) for v in value)
    return True


def _expected(field) -> str:
    options = [t.strip() for t in str(field.type).split("|") if t.strip() != "None"]
    words = [_LIST_ITEMS[field.name][1] if o == "list" and field.name in _LIST_ITEMS else _TOML_WORDS[o]
             for o in options]
    return " or ".join(words + (["a table"] if field.name == "lr_mult" else []))


# Defaults by what trains. A head alone on fixed features is a convex problem: train it to
# convergence (Adam over the whole epoch budget, which on cached features costs little). Early
# stopping on a small validation split stopped too soon there (benchmarks/defaults_bench.py:
# seed 004's MLP 0.876 with patience 30 against 0.917 trained through, LogisticRegression 0.912),
# so it is off unless --patience asks for it. Fine-tuning restored layers, which can overfit, gets
# a smaller rate and budget and stops after 5 epochs without a better validation accuracy.
DEFAULTS = {
    "head_from_cache": {"optimizer": "adam", "lr": 0.003, "epochs": 300, "patience": 0},
    "head_live": {"optimizer": "adam", "lr": 0.003, "epochs": 30, "patience": 0},
    "fine_tune": {"optimizer": "adam", "lr": 0.001, "epochs": 20, "patience": 5},
}


def training_settings(cfg: RetrainConfig, *, head_only: bool, cached: bool) -> dict:
    """``{optimizer, lr, epochs, patience, kind}``: ``cfg``'s own values, the rest from
    :data:`DEFAULTS` for ``kind`` ``head_from_cache`` (only new variables train, fed from a
    cache), ``head_live`` (only new variables train) or ``fine_tune`` (restored variables train).
    Early stopping needs a validation split; without one every epoch runs."""
    kind = "fine_tune" if not head_only else ("head_from_cache" if cached else "head_live")
    out = dict(DEFAULTS[kind], kind=kind)
    for key in ("optimizer", "lr", "epochs", "patience"):
        if getattr(cfg, key) is not None:
            out[key] = getattr(cfg, key)
    if out["epochs"] < 1 or out["lr"] < 0 or out["patience"] < 0:
        raise ConfigError(f"epochs must be >= 1, lr and patience >= 0 (got {out['epochs']}, {out['lr']}, "
                          f"{out['patience']})")
    return out
