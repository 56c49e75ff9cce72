"""Failures as one line in command-line words: the library names arguments, the CLI says flags."""
from __future__ import annotations

import ast
import re
import sys

_PAIR_FLAGS = {"rename": "--rename", "map_scope": "--map-scope", "cast": "--cast"}


_FLAG = {"to": "--to", "from_format": "--from", "verify": "--verify", "merge_partitions": "--merge-partitions",
         "link": "--link"}


_QUOTED = r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"  # a Python repr, escapes included


def rule_flags(message: str) -> str:
    """Name rules in command-line words (migrate, plan and retrain share them).

    >>> rule_flags("map_scope=('a/', 'b/') matches no tensor; drop: pattern 'x' matches no tensor")
    "--map-scope 'a/=b/' matches no tensor; --drop: pattern 'x' matches no tensor"
    >>> rule_flags("drop it from the restore (rules=Rules(drop=['hidden/w']))")
    'drop it from the restore (--drop hidden/w)'
    >>> rule_flags("lr_mult: pattern 'hiden3' matches no variable")
    "--lr-mult: pattern 'hiden3' matches no variable"
    """
    def pair(m):
        a, b = ast.literal_eval(m.group(2))
        return f"{_PAIR_FLAGS[m.group(1)]} '{a}={b}'"

    message = re.sub(rf"(?<![\w-])(rename|map_scope|cast)=(\({_QUOTED}, {_QUOTED}\))", pair, message)
    message = re.sub(rf"(?<![\w-])(?:rules=)?Rules\((drop|keep)=\[({_QUOTED})\]\)",
                     lambda m: f"--{m.group(1)} {ast.literal_eval(m.group(2))}", message)
    return re.sub(r"(?<![\w-])(drop|keep|cast|trainable|reinit|unfreeze|lr_mult): pattern",
                  lambda m: f"--{m.group(1).replace('_', '-')}: pattern", message)


def migrate_flags(message: str) -> str:
    """A migration message in command-line words.

    >>> migrate_flags("rename=('^a/', 'b/') matches no tensor; presets=['x']: unknown; to='tf2' needs eager")
    "--rename '^a/=b/' matches no tensor; --preset x: unknown; --to tf2 needs eager"
    """
    message = rule_flags(message)
    message = re.sub(rf"\bpresets=\[({_QUOTED})\]", lambda m: "--preset " + ast.literal_eval(m.group(1)), message)
    message = re.sub(r"(?<![\w-])(to|from_format)='(tf[12])'", lambda m: f"{_FLAG[m.group(1)]} {m.group(2)}", message)
    message = re.sub(r"(?<![\w-])(merge_partitions|link)=True\b", lambda m: _FLAG[m.group(1)], message)
    return re.sub(r"(?<![\w-])(verify|to|from_format)=", lambda m: _FLAG[m.group(1)] + " ", message)


# library argument -> command-line flag: errors name arguments, the CLI speaks in flags
FLAGS = {
    "head": "--head", "output": "--output", "input": "--input", "batch_size": "--batch-size",
    "allow_missing": "--allow-missing", "allow_cast": "--allow-cast", "allow_unsafe_ops": "--allow-unsafe-ops",
    "allow_random": "--allow-random", "allow_batch_dependent": "--allow-batch-dependent", "overwrite": "--overwrite",
    "repair": "--repair", "out_dir": "--out", "data": "--data", "cache": "--cache", "model": "--model",
    "augment": "--augment", "runner": "--runner", "beam_args": "--beam-args", "scopes": "--scopes", "task": "--task",
    "method": "--method", "old_data": "--old-data",
    "lam": "--lambda", "temperature": "--temperature", "prune": "--prune", "prune_first": "--prune-first",
    "gamma": "--gamma", "fisher": "--fisher", "replace": "--replace", "features": "--features",
    "reference": "--reference", "balance": "--balance", "names": "--names", "threshold": "--threshold",
    "epochs": "--epochs", "prior": "--prior", "weight_decay": "--weight-decay", "tags": "--tags",
    "shard_size": "--shard-size", "trainable": "--trainable", "lr_mult": "--lr-mult", "unfreeze": "--unfreeze",
    "depth": "--depth", "reinit": "--reinit",
}


# library phrases -> command-line phrases (the cache, storage and retrain messages)
_PHRASES = [
    (r"(?<![\w-])generate_cache\b", "the cache command"),
    (r"(?<![\w-])beam_args=\['([^']*)'\]", r"--beam-args \1"),
    (r"was replaced by '(drop|keep)' \(patterns on the checkpoint's names\)",
     r"was replaced by '\1' (patterns on the checkpoint's names; --\1 on the command line)"),
]


def _thaw_command(m) -> str:
    """``graphsurgeon.thaw('g.pb', ['dis'], out_dir), then restore out_dir`` in command-line words."""
    scopes = " ".join(ast.literal_eval(m.group(2)))
    return f"graphsurgeon thaw {ast.literal_eval(m.group(1))} --scopes {scopes} --out DIR, then give --model DIR"


_PHRASES.append((rf"graphsurgeon\.thaw\(({_QUOTED}), (\[(?:{_QUOTED}(?:, )?)*\]), out_dir\), then restore out_dir",
                 _thaw_command))


def phrases(message: str) -> str:
    """Library phrases that name a function or a list in command-line words.

    >>> phrases("run generate_cache again with repair=True; beam_args=['--setup_file=s.py']")
    'run the cache command again with repair=True; --beam-args --setup_file=s.py'
    >>> phrases("first: graphsurgeon.thaw('g.pb', ['dis', 'gen'], out_dir), then restore out_dir")
    'first: graphsurgeon thaw g.pb --scopes dis gen --out DIR, then give --model DIR'
    """
    for pattern, replacement in _PHRASES:
        message = re.sub(pattern, replacement, message)
    return message


def to_flags(message: str) -> str:
    """A library message in command-line words: ``allow_cast=True`` -> ``--allow-cast``,
    ``batch_size=100`` -> ``--batch-size 100``, ``feeds={'NAME': VALUE}`` -> ``--feed NAME=VALUE``,
    ``feeds=`` -> ``--feed``.

    >>> to_flags("pass batch_size=100 or allow_cast=True; give feeds={'state': VALUE}")
    'pass --batch-size 100 or --allow-cast; give --feed state=VALUE'
    """
    message = phrases(rule_flags(message))
    message = re.sub(r"\bold_data=\{((?:'[^']*': PATH(?:, )?)+)\}",
                     lambda m: "--old-data " + " ".join(f"{n}=PATH" for n in re.findall(r"'([^']*)': PATH", m.group(1))),
                     message)
    message = re.sub(r"\b(train_feeds|feeds)=\{'([^']*)': VALUE\}",
                     lambda m: f"{'--train-feed' if m.group(1) == 'train_feeds' else '--feed'} {m.group(2)}=VALUE",
                     message)
    message = re.sub(r"\b(train_feeds|feeds)=", lambda m: "--train-feed" if m.group(1) == "train_feeds" else "--feed",
                     message)
    names = "|".join(sorted(FLAGS, key=len, reverse=True))
    message = re.sub(rf"(?<![\w-])({names})=True\b", lambda m: FLAGS[m.group(1)], message)
    return _valued(message, names, FLAGS)


def _valued(message: str, names: str, flags: dict) -> str:
    """``verify=False`` -> ``--no-verify`` (:data:`NO_FLAGS`); ``out=DIR`` -> ``--out DIR``; a word
    with no value after it (``choose another out=``) -> the flag alone."""
    message = re.sub(rf"(?<![\w-])({'|'.join(NO_FLAGS)})=False\b", lambda m: NO_FLAGS[m.group(1)], message)
    return re.sub(rf"(?<![\w-])({names})=(?=([\s),;]|$)?)",
                  lambda m: flags[m.group(1)] + ("" if m.group(2) is not None else " "), message)


# many heads, continual learning, combine and add-class: argument -> flag
FLAGS.update({"task_names": "--task-names", "group_backbones": "--group-backbones", "atol": "--atol", "out": "--out",
              "lr": "--lr", "steps": "--steps", "warmup_epochs": "--warmup-epochs", "fisher_samples": "--fisher-samples",
              "retrain_epochs": "--retrain-epochs", "mask_lr": "--mask-lr", "mask_init": "--mask-init",
              "backbone_lr_mult": "--backbone-lr-mult", "fisher_labels": "--fisher-labels", "old_task": "--old-task"})
# ``verify=False`` -> ``--no-verify``: the flags that turn a default off
NO_FLAGS = {"verify": "--no-verify"}
# a word whose flag depends on the command (``name=`` is add-head's ``--task-name``, add-class's ``--name``;
# elsewhere, as in TF2's ``tf.Variable(name=)``, it is no flag)
COMMAND_FLAGS = {"add-head": {"name": "--task-name", "features": "the merged model's features",  # from its
                              "input": "the merged model's input"},  # tasks.json: add-head has no such flags
                 "add-class": {"name": "--name", "features": "the model's features"},  # --features or model.json
                 "combine": {"output": "the model's output"}}
# phrases a command says otherwise, before :data:`COMMAND_FLAGS`: what a command cannot be told (it lacks
# the flag the library's argument would be), and add-class's one ``features=`` that is its flag
_NO_OUTPUT = (r"name it with output=(?!\w)", "{0} has no way to name it (give a model with "
              "one output above its features)")
_BATCH_AXIS = r"give {0}=TENSOR, a tensor with a batch axis"  # a scalar input or features (multihead.load)
COMMAND_PHRASES = {
    "add-head": [(_BATCH_AXIS.format(w), f"add-head cannot take such a model: the merged model's {w} {v} fixed")
                 for w, v in (("input", "is"), ("features", "are"))],
    "cache": [(r"; train_feeds=\{'NAME': VALUE\} if training differs, e\.g\. [\w/]+\)", ")")],
    "combine": [_NO_OUTPUT, (r"; name such a tensor with output=", " (give a model whose output is its logits or "
                                                                      "probabilities)"),
                (r"give its features tensor in models=\[\(path, TENSOR\)\]", "give --features TENSOR after its --model")],
    "add-class": [(r"name the (?:input with input=|tensor to feed with input=\S+)",
                   "add-class has no way to name the input (give a model whose features read one placeholder)"),
                  (_BATCH_AXIS.format("input"), "add-class has no way to name another input (give a model whose "
                                                "input has a batch axis)"),
                  (r"give features=TENSOR", "give --features TENSOR")],
}


def command_flags(message: str, command: str | None) -> str:
    """The words :data:`COMMAND_FLAGS` gives ``command`` in its flags (then :func:`to_flags` says the rest).

    >>> command_flags("(see name=); name=x", "add-head")
    '(see --task-name); --task-name x'
    """
    for pattern, replacement in COMMAND_PHRASES.get(command, []):
        message = re.sub(pattern, replacement.format(command), message)
    flags = COMMAND_FLAGS.get(command, {})
    return _valued(message, "|".join(flags), flags) if flags else message


def describe_error(e: BaseException, command: str | None = None) -> str:
    """One line for any exception: ours as they are (in ``command``'s flags); TensorFlow's naming
    the op involved; others with their type and a pointer to ``--debug``."""
    from graphsurgeon._src.errors import GraphSurgeonError

    text = " ".join(str(e).split())
    if isinstance(e, GraphSurgeonError):
        return to_flags(command_flags(text, command))
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or text}"
    tf = sys.modules.get("tensorflow")  # an OpError means TensorFlow is loaded; never import it here
    if tf is not None and isinstance(e, tf.errors.OpError):
        first = (e.message or "").strip().splitlines()
        where = f"op '{e.op.name}' ({e.op.type})" if getattr(e, "op", None) is not None else "TensorFlow"
        return f"{where} failed: {first[0][:300] if first else type(e).__name__} (--debug shows the traceback)"
    if isinstance(e, MemoryError):
        return "out of memory (try a smaller --batch-size)"
    return f"unexpected {type(e).__name__}: {text[:300]} (this is a graphsurgeon bug; --debug shows the traceback)"
