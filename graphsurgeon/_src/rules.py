"""Name rules on a checkpoint's names, one vocabulary for ``restore``, ``retrain`` and ``migrate``.

``rename`` regexes and ``map_scope`` scope pairs turn a checkpoint name into a new name (the
graph's name at restore time, the written name in a migration); ``keep`` and ``drop`` patterns
choose checkpoint names; ``presets`` bundle common rules. ``cast`` and ``merge`` are migration
settings (``restore`` refuses them). Everything here works on names; nothing reads a checkpoint.

>>> rules = Rules(rename=[(r"^old/", "new/")], drop=["global_step"])
>>> sorted(plan_names(["old/w", "global_step", "b"], rules).items())
[('b', 'b'), ('old/w', 'new/w')]
"""
from __future__ import annotations

import dataclasses
import re

from graphsurgeon._src import select
from graphsurgeon._src.errors import ConfigError, MigrateError, PatternError
from graphsurgeon._src.mixins import counted

# Optimizer bookkeeping written by tf.compat.v1.train optimizers.
_SLOT_RE = re.compile(
    r"(^|/)(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|AdagradDA|Adadelta|Adadelta_\d+|Ftrl|Ftrl_\d+|"
    r"ProximalAdagrad|Nadam|Nadam_\d+|LazyAdam|LazyAdam_\d+)$"
)
_ACCUMULATOR_RE = re.compile(r"(^|/)(beta[12]_power(_\d+)?|global_step)$")
# Optimizer state in a TF2 object-based checkpoint, by key: slot variables of tf.compat.v1 and legacy
# Keras optimizers (``model/.../kernel/.OPTIMIZER_SLOT/optimizer/m/...``), and every value under a root
# object named ``optimizer`` (Keras 2.11+ and Keras 3: ``optimizer/_variables/3/...``,
# ``optimizer/_iterations/...``; legacy Keras: ``optimizer/iter/...``) but Keras 3's
# ``optimizer/_trainable_variables/N/...``, the model's own variables as the optimizer tracks them.
_TF2_KEY_RE = re.compile(r"^(?:.+/\.OPTIMIZER_SLOT/.+|optimizer/(?!_trainable_variables/).+)/\.ATTRIBUTES/VARIABLE_VALUE$")


def is_optimizer_state(name: str) -> bool:
    """True for optimizer slots (``w/Adam``, ``w/Momentum``), ``beta1_power``-style accumulators
    and ``global_step``: what a previous training run left in its checkpoint; and for the keys of a TF2
    object-based checkpoint that hold optimizer state: ``.../.OPTIMIZER_SLOT/...`` slots and every
    ``optimizer/.../.ATTRIBUTES/VARIABLE_VALUE`` but ``optimizer/_trainable_variables/...`` (Keras 3's
    references to the model's own variables).

    >>> [is_optimizer_state(k) for k in ["optimizer/_variables/3/.ATTRIBUTES/VARIABLE_VALUE",
    ...                                  "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE"]]
    [True, False]
    """
    return bool(_SLOT_RE.search(name) or _ACCUMULATOR_RE.search(name) or _TF2_KEY_RE.match(name))


def optimizer_state_kind(name: str) -> str | None:
    """What optimizer state ``name`` is: its slot's optimizer (``w/Adam_1`` -> ``'Adam'``),
    ``'accumulator'`` (``beta1_power``), ``'global_step'``, ``'TF2 key'`` (a TF2 object-based checkpoint's
    optimizer state, see :func:`is_optimizer_state`), or None when it is none."""
    if _TF2_KEY_RE.match(name):
        return "TF2 key"
    slot = _SLOT_RE.search(name)
    if slot:
        return re.sub(r"_\d+$", "", slot.group(2))
    acc = _ACCUMULATOR_RE.search(name)
    if not acc:
        return None
    return "global_step" if acc.group(2) == "global_step" else "accumulator"


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
CAST_DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")


def argument(name: str, value) -> str:
    """How an error names one item of an argument: ``rename=('^a/', 'b/')``."""
    return f"{name}={value!r}"


@dataclasses.dataclass
class Rules:
    """Rules on a checkpoint's names, for ``restore`` (checkpoint name -> graph name) and
    ``migrate`` (source name -> written name). Name rules apply in this order: ``rename`` regexes
    (each ``(pattern, replacement)`` with ``re.sub`` on the whole name), ``map_scope`` pairs
    (``'old/' -> 'new/'``), then presets' renames. ``keep``, ``drop`` and ``cast`` patterns
    (scope globs / ``re:``, see :mod:`graphsurgeon._src.select`) match the *checkpoint's* names
    (before renaming): without ``keep`` every name is kept, then ``drop`` removes names.
    ``cast`` and ``merge`` are migration settings: in a migration each ``merge`` checkpoint comes
    in whole under its prefix (a clash is an error unless a rule on the main checkpoint resolves
    it) and ``cast`` applies to both (to the floating-point tensors its patterns match; the others are
    copied as they are).

    Raises:
      ConfigError: a malformed rule (bad regex or replacement, scope without '/', unknown dtype or preset), or
        ``rename`` given as a ``{checkpoint: graph}`` dict (the old form; ``map_scope`` and
        regex ``rename`` pairs replaced it).
    """

    rename: list = dataclasses.field(default_factory=list)
    map_scope: list = dataclasses.field(default_factory=list)
    drop: list = dataclasses.field(default_factory=list)
    keep: list = dataclasses.field(default_factory=list)
    cast: list = dataclasses.field(default_factory=list)   # (pattern, dtype name)
    merge: list = dataclasses.field(default_factory=list)  # (other checkpoint, prefix or "")
    presets: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if isinstance(self.rename, dict):
            raise ConfigError(old_rename_message(self.rename))
        self.rename = [_pair("rename", p) for p in self.rename]
        self.map_scope = [_pair("map_scope", p) for p in self.map_scope]
        self.cast = [_pair("cast", p) for p in self.cast]
        self.keep, self.drop = select.as_list(self.keep), select.as_list(self.drop)
        self._rename = []
        for pair in self.rename:
            try:
                rx = re.compile(pair[0])
            except re.error as e:
                raise ConfigError(f"{argument('rename', tuple(pair))}: invalid regular expression ({e})") from None
            try:
                rx.sub(pair[1], "")  # parses the replacement even where nothing matches
            except (re.error, IndexError) as e:
                raise ConfigError(f"{argument('rename', tuple(pair))}: invalid replacement ({e}; the regular "
                                  f"expression has {counted(rx.groups, 'group')})") from None
            self._rename.append((rx, pair[1]))
        for old, new in self.map_scope:
            if not old.endswith("/") or (new and not new.endswith("/")):
                raise ConfigError(f"{argument('map_scope', (old, new))}: expected ('OLD/', 'NEW/') (scopes end with "
                                  "'/'; NEW may be empty)")
        for pat, dt in self.cast:
            if dt not in CAST_DTYPE_NAMES:
                raise ConfigError(f"{argument('cast', (pat, dt))}: dtype '{dt}' is not one of {', '.join(CAST_DTYPE_NAMES)}")
        self._preset_renames, self._drop_optimizer, self._strip = [], False, []
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
                self._strip.append((p, scope + "/"))
            else:
                raise ConfigError(f"{argument('presets', [p])}: unknown preset; expected one of {', '.join(PRESETS)}")

    def new_name(self, name: str) -> str:
        """The name ``name`` takes under the rename, map_scope and preset rules."""
        name = self._named(name)
        for rx, repl in self._preset_renames:
            name = rx.sub(repl, name)
        return name

    def _named(self, name: str) -> str:
        """The name ``name`` takes under the rename and map_scope rules (before the presets')."""
        for rx, repl in self._rename:
            name = rx.sub(repl, name)
        for old, new in self.map_scope:
            if name.startswith(old):
                name = new + name[len(old):]
        return name

    def cast_of(self, name: str):
        """``(pattern, dtype name)`` of the last ``cast`` rule matching source name ``name``, or None."""
        found = None
        for pat, dt in self.cast:
            if select.compile_pattern(pat)(name):
                found = (pat, dt)
        return found


    def chosen(self, names, keys: dict | None = None) -> list:
        """The names of ``names`` that ``keep``, ``drop`` and the ``optimizer-slots`` preset leave
        (``keys``: ``{name: its key in the checkpoint}`` where they differ, a TF2 checkpoint's variables
        read by name: the preset also drops a name whose key is optimizer state).

        Raises:
          PatternError: a ``keep`` or ``drop`` pattern matches nothing in ``names``.
        """
        names = list(names)
        kept = set(_match("keep", self.keep, names)) if self.keep else set(names)
        if self.drop:
            kept -= set(_match("drop", self.drop, names))
        if self._drop_optimizer:
            keys = keys or {}
            kept = {n for n in kept if not is_optimizer_state(n) and not is_optimizer_state(keys.get(n, n))}
        return [n for n in names if n in kept]

    def check_names(self, names, error=MigrateError) -> None:
        """Raise ``error`` when a ``rename`` or ``map_scope`` rule, or a ``strip-scope`` preset, matches none of
        ``names`` (a ``strip-scope`` preset is matched against the names the other rules give)."""
        _check_rules_match(list(names), self, error)


def _pair(what: str, pair) -> tuple:
    """``(left, right)`` from a 2-item tuple or list, or a ``'LEFT=RIGHT'`` string."""
    if isinstance(pair, str):
        left, sep, right = pair.rpartition("=")
        if sep and left:
            return left, right
    elif isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(x, str) for x in pair):
        return tuple(pair)
    raise ConfigError(f"{what} item {pair!r}: expected a pair (LEFT, RIGHT) or a string 'LEFT=RIGHT'")


def old_rename_message(rename: dict) -> str:
    """What replaced a ``{checkpoint: graph}`` rename dict, said with its own entries."""
    scopes = [f"'{c}={g}'" for c, g in rename.items() if str(c).endswith("/") and str(g).endswith("/")]
    names = [f"'^{re.escape(str(c))}$={g}'" for c, g in rename.items()
             if not (str(c).endswith("/") and str(g).endswith("/"))]
    said = ([f"map_scope [{', '.join(scopes)}]"] if scopes else []) + ([f"rename [{', '.join(names)}]"] if names else [])
    return ("rename is a list of (REGEX, REPLACEMENT) pairs; a {checkpoint: graph} mapping is the old form: say "
            + " and ".join(said or ["map_scope ['CKPT/=GRAPH/'] for scopes, rename ['^CKPT$=GRAPH'] for names"]))


def plan_names(names, rules: Rules, *, check_rules: bool = True, keys: dict | None = None) -> dict:
    """``{old name: new name}`` of the tensors the migration writes (dropped ones are absent); ``keys``:
    see :meth:`Rules.chosen`.

    Raises:
      MigrateError: a rule matches nothing (presets excepted but ``strip-scope``), or two names map to one.
      PatternError: a ``drop`` or ``keep`` pattern matches nothing.
    """
    names = list(names)
    kept = set(rules.chosen(names, keys))
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


def _check_rules_match(names: list, rules: Rules, error=MigrateError) -> None:
    for pair, (rx, _) in zip(rules.rename, rules._rename):
        if not any(rx.search(n) for n in names):
            raise error(f"{argument('rename', tuple(pair))} matches no tensor")
    for old, new in rules.map_scope:
        if not any(n.startswith(old) for n in names):
            raise error(f"{argument('map_scope', (old, new))} matches no tensor; scopes: "
                               f"{', '.join(select.closest(old.rstrip('/'), names))}")
    if rules._strip:
        named = [rules._named(n) for n in names]
        for preset, scope in rules._strip:
            if not any(n.startswith(scope) for n in named):
                raise error(f"{argument('presets', [preset])} matches no tensor; scopes: "
                            f"{', '.join(select.closest(scope.rstrip('/'), named))}")


def _match(what: str, patterns, names) -> list:
    try:
        return select.match(patterns, names, what="tensor")
    except PatternError as e:
        raise PatternError(f"{what}: {e}") from None
