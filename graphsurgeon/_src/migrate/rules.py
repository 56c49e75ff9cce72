"""Name rules of a migration: renames, scope maps, drops, keeps, casts, merges and presets.

Everything here works on names; nothing reads a checkpoint.

>>> rules = Rules(rename=[(r"^old/", "new/")], drop=["global_step"])
>>> sorted(plan_names(["old/w", "global_step", "b"], rules).items())
[('b', 'b'), ('old/w', 'new/w')]
"""
from __future__ import annotations

import dataclasses
import re

import tensorflow as tf

from graphsurgeon._src import select
from graphsurgeon._src.errors import ConfigError, MigrateError, PatternError
from graphsurgeon._src.surgery.plan import is_optimizer_state

_CELLS = ["basic_lstm_cell", "lstm_cell", "gru_cell", "basic_rnn_cell", "layer_norm_basic_lstm_cell", "ugrnn_cell",
          "nas_rnn", "intersection_rnn_cell", "phased_lstm_cell", "attention_cell_wrapper", "lstm_block_wrapper",
          "output_projection_wrapper", "input_projection_wrapper", "attention_decoder"]
_CELL_CLASSES = {"BasicLSTMCell": "basic_lstm_cell", "LSTMCell": "lstm_cell", "GRUCell": "gru_cell",
                 "BasicRNNCell": "basic_rnn_cell", "LayerNormBasicLSTMCell": "layer_norm_basic_lstm_cell",
                 "UGRNNCell": "ugrnn_cell", "NASCell": "nas_rnn", "IntersectionRNNCell": "intersection_rnn_cell",
                 "PhasedLSTMCell": "phased_lstm_cell", "AttentionCellWrapper": "attention_cell_wrapper",
                 "LSTMBlockWrapper": "lstm_block_wrapper", "OutputProjectionWrapper": "output_projection_wrapper",
                 "InputProjectionWrapper": "input_projection_wrapper"}
_CELL_RE = "|".join(_CELLS)

# TF 1.0 / 1.1 RNN variable names -> TF 1.2+ names (the cells contrib's checkpoint_convert covered,
# plus the TF 1.0 class-named scopes and sharded W_<N> forms), applied in order.
RNN_CELL_RENAMES = [
    (r"(^|/)MultiRNNCell/Cell(\d+)(?=/|$)", r"\1multi_rnn_cell/cell_\2"),
    *[(rf"(^|/){cls}(?=/|$)", rf"\1{new}") for cls, new in sorted(_CELL_CLASSES.items(), key=lambda kv: -len(kv[0]))],
    (r"(^|/)gru_cell/Gates(?=/|$)", r"\1gru_cell/gates"),
    (r"(^|/)gru_cell/Candidate(?=/|$)", r"\1gru_cell/candidate"),
    (r"/Linear/Matrix(_(\d+))?$", r"/weights\1"),  # 1.0's _linear scope
    (r"/Linear/Bias$", r"/biases"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/W_(\d+)$", r"\1\2/kernel/part_\3"),  # sharded LSTMCell/W_0
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/weights_(\d+)$", r"\1\2/kernel/part_\3"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/B$", r"\1\2/bias"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/W_([FIO])_diag$", lambda m: f"{m.group(1)}{m.group(2)}/w_{m.group(3).lower()}_diag"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/W_P_(\d+)$", r"\1\2/projection/kernel"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/weights$", r"\1\2/kernel"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/biases$", r"\1\2/bias"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/recurrent_weights$", r"\1\2/recurrent_kernel"),
]
PRESETS = ("optimizer-slots", "rnn-cell-names", "strip-scope=NAME")
CAST_DTYPES = {"float16": tf.float16, "bfloat16": tf.bfloat16, "float32": tf.float32, "float64": tf.float64}


def argument(name: str, value) -> str:
    """How an error names one item of an argument: ``rename=('^a/', 'b/')``."""
    return f"{name}={value!r}"


@dataclasses.dataclass
class Rules:
    """What a migration does. Name rules apply in this order: ``rename`` regexes (each
    ``(pattern, replacement)`` with ``re.sub`` on the whole name), ``map_scope`` pairs
    (``'old/' -> 'new/'``), then presets' renames. ``drop``, ``keep`` and ``cast`` patterns
    (scope globs / ``re:``, see :mod:`graphsurgeon._src.select`) match the *source* names.
    Name rules shape the main checkpoint; each ``merge`` checkpoint comes in whole under its
    prefix (a clash is an error unless a rule on the main checkpoint resolves it); ``cast``
    applies to both.

    Raises:
      ConfigError: a malformed rule (bad regex, scope without '/', unknown dtype or preset).
    """

    rename: list = dataclasses.field(default_factory=list)
    map_scope: list = dataclasses.field(default_factory=list)
    drop: list = dataclasses.field(default_factory=list)
    keep: list = dataclasses.field(default_factory=list)
    cast: list = dataclasses.field(default_factory=list)   # (pattern, dtype name)
    merge: list = dataclasses.field(default_factory=list)  # (other checkpoint, prefix or "")
    presets: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self._rename = []
        for pair in self.rename:
            try:
                self._rename.append((re.compile(pair[0]), pair[1]))
            except re.error as e:
                raise ConfigError(f"{argument('rename', tuple(pair))}: invalid regular expression ({e})") from None
        for old, new in self.map_scope:
            if not old.endswith("/") or (new and not new.endswith("/")):
                raise ConfigError(f"{argument('map_scope', (old, new))}: expected ('OLD/', 'NEW/') (scopes end with "
                                  "'/'; NEW may be empty)")
        for pat, dt in self.cast:
            if dt not in CAST_DTYPES:
                raise ConfigError(f"{argument('cast', (pat, dt))}: dtype '{dt}' is not one of {', '.join(CAST_DTYPES)}")
        self._preset_renames, self._drop_optimizer = [], False
        for p in self.presets:
            if p == "optimizer-slots":
                self._drop_optimizer = True
            elif p == "rnn-cell-names":
                self._preset_renames += [(re.compile(a), b) for a, b in RNN_CELL_RENAMES]
            elif p.startswith("strip-scope="):
                scope = p.split("=", 1)[1].strip("/")
                if not scope:
                    raise ConfigError(f"{argument('presets', [p])}: strip-scope=NAME needs a scope name")
                self._preset_renames.append((re.compile("^" + re.escape(scope) + "/"), ""))
            else:
                raise ConfigError(f"{argument('presets', [p])}: unknown preset; expected one of {', '.join(PRESETS)}")

    def new_name(self, name: str) -> str:
        """The name ``name`` takes under the rename, map_scope and preset rules."""
        for rx, repl in self._rename:
            name = rx.sub(repl, name)
        for old, new in self.map_scope:
            if name.startswith(old):
                name = new + name[len(old):]
        for rx, repl in self._preset_renames:
            name = rx.sub(repl, name)
        return name

    def cast_of(self, name: str):
        """``(pattern, dtype name)`` of the last ``cast`` rule matching source name ``name``, or None."""
        found = None
        for pat, dt in self.cast:
            if select.compile_pattern(pat)(name):
                found = (pat, dt)
        return found


def plan_names(names, rules: Rules, *, check_rules: bool = True) -> dict:
    """``{old name: new name}`` of the tensors the migration writes (dropped ones are absent).

    Raises:
      MigrateError: a rule matches nothing (presets excepted), or two names map to one.
      PatternError: a ``drop`` or ``keep`` pattern matches nothing.
    """
    names = list(names)
    kept = set(names)
    if rules.keep:
        kept = set(_match("keep", rules.keep, names))
    if rules.drop:
        kept -= set(_match("drop", rules.drop, names))
    if rules._drop_optimizer:
        kept = {n for n in kept if not is_optimizer_state(n)}
    if check_rules:
        _check_rules_match(names, rules)
    mapping = {n: rules.new_name(n) for n in names if n in kept}
    seen = {}
    for old, new in mapping.items():
        if not new:
            raise MigrateError(f"'{old}' would be renamed to an empty name")
        if new in seen:
            raise MigrateError(f"'{seen[new]}' and '{old}' would both be named '{new}'; add a rule that tells them apart")
        seen[new] = old
    return mapping


def _check_rules_match(names: list, rules: Rules) -> None:
    for pair, (rx, _) in zip(rules.rename, rules._rename):
        if not any(rx.search(n) for n in names):
            raise MigrateError(f"{argument('rename', tuple(pair))} matches no tensor")
    for old, new in rules.map_scope:
        if not any(n.startswith(old) for n in names):
            raise MigrateError(f"{argument('map_scope', (old, new))} matches no tensor; scopes: "
                               f"{', '.join(select.closest(old.rstrip('/'), names))}")


def _match(what: str, patterns, names) -> list:
    try:
        return select.match(patterns, names, what="tensor")
    except PatternError as e:
        raise PatternError(f"{what}: {e}") from None
