"""The ``graphsurgeon`` command: a thin layer over the library.

Errors on bad input are one line on stderr and exit status 2, with no traceback.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _kv(items, what):
    out = {}
    for item in items or ():
        k, sep, v = item.partition("=")
        if not sep or not k:
            from graphsurgeon._src.errors import ConfigError
            raise ConfigError(f"{what} '{item}': expected NAME=VALUE")
        out[k] = v
    return out


def _model_args(p):
    p.add_argument("--model", required=False, help="checkpoint prefix or directory, .meta, .pb, SavedModel dir")
    p.add_argument("--trainable", nargs="+", action="extend", metavar="PAT", help="restored scopes that train")
    p.add_argument("--keep", nargs="+", action="extend", metavar="PAT",
                   help="restore only the checkpoint tensors these match (the others' variables start anew)")
    p.add_argument("--drop", nargs="+", action="extend", metavar="PAT",
                   help="checkpoint tensors not restored (their variables start anew)")
    for old in ("--exclude", "--include"):  # replaced; kept only to say so
        p.add_argument(old, nargs="+", action="extend", help=argparse.SUPPRESS)
    p.add_argument("--reinit", nargs="+", action="extend", metavar="PAT", help="layers re-initialized in place")
    p.add_argument("--head", metavar="TENSOR:N", help="cut at TENSOR, new head with N classes")
    p.add_argument("--head-hidden", nargs="+", type=int, metavar="UNITS", help="hidden layers of the new head")
    p.add_argument("--head-activation", choices=["relu", "tanh", "sigmoid", "elu", "linear"],
                   help="activation of the head's hidden layers (default relu)")
    p.add_argument("--head-init", choices=["glorot_uniform", "glorot_normal", "he_normal", "truncated_normal"],
                   help="kernel initializer of the new head (default glorot_uniform)")
    p.add_argument("--output", metavar="TENSOR", help="existing logits to fine-tune (instead of --head)")
    p.add_argument("--input", metavar="TENSOR",
                   help="the tensor fed with the data (a placeholder, or any tensor such as a queue's output; "
                        "default: the one placeholder the cut reads)")
    p.add_argument("--rename", nargs="+", action="extend", metavar="REGEX=REPLACEMENT",
                   help="checkpoint names -> graph names by regex (re.sub), as migrate's --rename")
    p.add_argument("--map-scope", nargs="+", action="extend", metavar="CKPT/=GRAPH/",
                   help="restore checkpoint scope CKPT/ into graph scope GRAPH/")
    p.add_argument("--lr-mult", nargs="+", action="extend", metavar="PAT=F", help="learning-rate multiplier")
    p.add_argument("--unfreeze", nargs="+", action="extend", metavar="EPOCH:PAT[=F]",
                   help="from EPOCH on, PAT trains too (at multiplier F)")
    p.add_argument("--feed", nargs="+", action="extend", metavar="NAME=VALUE",
                   help="value of another placeholder (keep_prob, is_training, an initial state) at inference: "
                        "a number, true/false, or an .npy file, broadcast to its shape")
    p.add_argument("--train-feed", nargs="+", action="extend", metavar="NAME=VALUE",
                   help="its value while training, if different")
    p.add_argument("--tags", nargs="+", help="SavedModel tags (default: serve)")
    p.add_argument("--restore-optimizer", action="store_true", default=None,
                   help="also restore the old run's optimizer slots and global_step")
    p.add_argument("--allow-missing", action="store_true", default=None,
                   help="initialize variables the checkpoint lacks")
    p.add_argument("--allow-cast", action="store_true", default=None,
                   help="restore values whose checkpoint dtype differs from the variable's, cast")
    p.add_argument("--allow-unsafe-ops", action="store_true", default=None,
                   help="run a graph that holds file-system or Python-callback ops")
    p.add_argument("--plan", dest="plan_file", metavar="FILE.toml", help="settings from a TOML plan file")


_REPLACED_FLAGS = {"exclude": "--drop PAT (patterns on the checkpoint's names)",
                   "include": "--keep PAT (patterns on the checkpoint's names)"}


def _config(args):
    from graphsurgeon._src.errors import ConfigError
    from graphsurgeon._src.retrain import RetrainConfig

    for old, new in _REPLACED_FLAGS.items():
        if getattr(args, old, None):
            raise ConfigError(f"--{old} was replaced by {new}")
    overrides = dict(
        model=args.model, head=args.head, head_hidden=args.head_hidden, head_activation=args.head_activation,
        head_initializer=args.head_init, output=args.output, input=args.input,
        trainable=args.trainable, keep=args.keep, drop=args.drop, reinit=args.reinit,
        rename=_pairs(args.rename, "--rename") or None, map_scope=_pairs(args.map_scope, "--map-scope") or None,
        lr_mult=args.lr_mult, unfreeze=args.unfreeze,
        feeds=_kv(args.feed, "feed") or None, train_feeds=_kv(args.train_feed, "train feed") or None,
        tags=args.tags, restore_optimizer=args.restore_optimizer, allow_missing=args.allow_missing,
        allow_cast=args.allow_cast, allow_unsafe_ops=args.allow_unsafe_ops,
    )
    for name in ("epochs", "batch_size", "lr", "optimizer", "seed", "patience", "image_scale"):
        overrides[name] = getattr(args, name, None)
    if args.plan_file:
        return RetrainConfig.from_toml(args.plan_file, **overrides)
    return RetrainConfig(**{k: v for k, v in overrides.items() if v is not None})


def cmd_inspect(args):
    from graphsurgeon._src.inspect import format_text, inspect

    report = inspect(args.path, tags=args.tags or ("serve",), depth=args.depth)
    print(json.dumps(report, indent=2) if args.json else format_text(report))


def cmd_plan(args):
    from graphsurgeon._src.retrain import build, picture

    setup = build(_config(args), values=False)
    dot = picture(setup, depth=args.depth) if (args.dot or args.svg) else None
    if args.dot:
        from graphsurgeon._src.storage.writer import write_text

        write_text(args.dot, dot)
    if args.svg:
        from graphsurgeon._src.storage.graphviz import write_svg

        write_svg(dot, args.svg)
    print(setup.plan.to_json() if args.json else setup.plan.format_text())
    return 0


def cmd_retrain(args):
    from graphsurgeon._src.retrain import retrain

    cfg = _config(args)
    res = retrain(cfg, args.data, args.out, cache=args.cache, progress=not args.quiet, overwrite=args.overwrite)
    summary = {"version": 1, "out": args.out, "checkpoint": res.export.checkpoint,
               "saved_model": res.export.saved_model, "metrics": res.metrics, "epochs": len(res.history),
               "settings": res.settings}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        st = res.settings
        print(f"trained {len(res.history)} of up to {st['epochs']} epochs ({st['optimizer']}, lr {st['lr']:g}"
              + (f", early stopping after {st['patience']} epochs without improvement" if st["patience"] else "")
              + ")")
        for split, m in res.metrics.items():
            print(f"{split}: accuracy {m['accuracy']:.4f}  loss {m['loss']:.4f}  ({m['examples']} examples)")
        print(f"checkpoint: {res.export.checkpoint}\nsaved model: {res.export.saved_model}")


def cmd_cache(args):
    from graphsurgeon._src.cache import generate

    aug = {k: getattr(args, k) for k in ("flip_left_right", "random_crop", "random_scale", "random_brightness")
           if getattr(args, k) is not None}
    beam_args = [a for item in args.beam_args or () for a in shlex.split(item)]
    if beam_args and args.runner != "beam":
        from graphsurgeon._src.errors import ConfigError
        raise ConfigError("--beam-args needs --runner beam")
    rep = generate(args.model, args.tensor, args.data, args.out, input=args.input, feeds=_kv(args.feed, "feed"),
                   batch_size=args.batch_size, dtype=args.dtype, augment=args.augment, augment_params=aug,
                   seed=args.seed, shard_size=args.shard_size, repair=args.repair, allow_random=args.allow_random,
                   allow_batch_dependent=args.allow_batch_dependent, allow_cast=args.allow_cast,
                   allow_unsafe_ops=args.allow_unsafe_ops,
                   image_scale=args.image_scale, tags=args.tags or ("serve",), progress=not args.quiet,
                   runner=args.runner, beam_args=beam_args,
                   image_feature=args.image_feature, label_feature=args.label_feature)
    if args.json:
        print(json.dumps({"version": 1, **rep.to_dict()}, indent=2))
    else:
        rate = rep.computed / rep.seconds if rep.seconds else 0.0
        print(f"{rep.directory}: {rep.examples} cached activations; computed {rep.computed} "
              f"({rate:.0f} examples/s), reused {rep.reused}, {rep.shards_written} shard(s) written"
              + (f", repaired {', '.join(rep.repaired)}" if rep.repaired else "")
              + (f"; {rep.unreferenced} stored row(s) not in this data set (kept, not read)" if rep.unreferenced
                 else ""))
        for change in rep.changes:
            print(f"  {change}")


def _pairs(items, flag, sep="="):
    """``[(LEFT, RIGHT)]`` of ``LEFT=RIGHT`` flag values (split at the last ``sep``)."""
    out = []
    for item in items or ():
        a, s, b = item.rpartition(sep)
        if not s or not a:
            from graphsurgeon._src.errors import ConfigError
            raise ConfigError(f"{flag} '{item}': expected LEFT{sep}RIGHT")
        out.append((a, b))
    return out


def _rules(args):
    from graphsurgeon._src.rules import Rules

    merges = []
    for m in args.merge or ():
        path, sep, prefix = m.rpartition(":")
        if sep and (prefix == "" or prefix.endswith("/")) and path:
            merges.append((path, prefix))
        else:
            merges.append((m, ""))
    return Rules(rename=_pairs(args.rename, "--rename"), map_scope=_pairs(args.map_scope, "--map-scope"),
                 drop=args.drop or [], keep=args.keep or [], cast=_pairs(args.cast, "--cast"), merge=merges,
                 presets=args.preset or [])


def cmd_migrate(args):
    from graphsurgeon._src.errors import GraphSurgeonError
    from graphsurgeon._src.migrate import migrate

    try:
        res = migrate(args.src, args.dst, _rules(args), dry_run=args.dry_run,
                      verify="none" if args.no_verify else args.verify,
                      link=True if args.link else False if args.copy else None, to=args.to,
                      from_format=args.from_format, merge_partitions=args.merge_partitions, progress=not args.quiet)
    except GraphSurgeonError as e:  # the library names arguments; say the flags
        raise type(e)(migrate_flags(str(e))) from None
    if args.json:
        print(json.dumps({"version": 1, "destination": res.destination, "dry_run": args.dry_run, "verified": res.verified,
                          "data": res.data, "cast": res.cast, "mapping": res.mapping, "files": res.files,
                          "swept": res.swept}, indent=2))
        return
    for path in res.swept:
        print(f"# removed {path} (left by a migration that was killed)")
    for source, m in res.mapping.items():
        width = max([len(o) for o in m] + [4])
        print(f"# from {source}")
        for old, new in m.items():
            tag = "  (cast)" if new in res.cast else ""
            print(f"{old:<{width}}  ->  {new}{tag}" if old != new else f"{old:<{width}}      (kept){tag}")
    n = sum(len(m) for m in res.mapping.values())
    data = ("hard links to the source's data files, a new index" if res.data == "linked"
            else "a new data file holding only these tensors")
    if args.dry_run:
        print(f"-- {n} tensors; dry run, nothing written (would write {data})")
    else:
        print(f"-- {n} tensors written to {res.destination}"
              + (f"; verified against the source ({res.verified})" if res.verified else "; not verified"))
        print(f"-- data: {data}")


_PAIR_FLAGS = {"rename": "--rename", "map_scope": "--map-scope", "cast": "--cast"}
_FLAG = {"to": "--to", "from_format": "--from", "verify": "--verify", "merge_partitions": "--merge-partitions",
         "link": "--link"}
_QUOTED = r"(?:'[^'\\]*'|\"[^\"\\]*\")"


def rule_flags(message: str) -> str:
    """Name rules in command-line words (migrate, plan and retrain share them).

    >>> rule_flags("map_scope=('a/', 'b/') matches no tensor; drop: pattern 'x' matches no tensor")
    "--map-scope 'a/=b/' matches no tensor; --drop: pattern 'x' matches no tensor"
    """
    def pair(m):
        a, b = ast.literal_eval(m.group(2))
        return f"{_PAIR_FLAGS[m.group(1)]} '{a}={b}'"

    message = re.sub(rf"(?<![\w-])(rename|map_scope|cast)=(\({_QUOTED}, {_QUOTED}\))", pair, message)
    return re.sub(r"(?<![\w-])(drop|keep|cast): pattern", r"--\1: pattern", message)


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


def cmd_diff(args):
    from graphsurgeon._src.migrate import diff

    d = diff(args.a, args.b)
    if args.json:
        print(json.dumps({"version": 1, "a": args.a, "b": args.b, **d}, indent=2))
        return
    for key in ("added", "removed"):
        for n in d[key]:
            print(f"{'+' if key == 'added' else '-'} {n}")
    for old, new in d["renamed"].items():
        print(f"~ {old} -> {new}  (same dtype, shape and crc32c)")
    for n, v in d["changed"].items():
        print(f"! {n}  max abs difference {v}")
    for key in ("dtype_changed", "shape_changed"):
        for n, (x, y) in d[key].items():
            print(f"! {n}  {key.split('_')[0]} {x} -> {y}")
    if not any(d.values()):
        print("no differences")


def cmd_thaw(args):
    from graphsurgeon._src.thaw import thaw

    res = thaw(args.path, args.scopes, args.out, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
        return
    for name, shape in res.variables.items():
        print(f"{name}  {list(shape)}")
    print(f"-- {len(res.variables)} constants ({res.nbytes} bytes) are variables now, {res.constants_left} weight-like "
          f"constants stay constants; checkpoint {res.checkpoint}, meta graph {res.checkpoint}.meta")


def cmd_merge_heads(args):
    from graphsurgeon._src.errors import ConfigError
    from graphsurgeon._src.multihead import load
    from graphsurgeon._src.multihead.merge import merge_heads

    if args.atol < 0:
        raise ConfigError(f"--atol {args.atol}: expected a tolerance >= 0")
    names = None
    if args.task_names:
        names = load.read_names_file(args.task_names, len(load.expand(args.models)))
    res = merge_heads(args.models, args.features, args.out, input=args.input, output=args.output, task_names=names,
                      atol=args.atol, group_backbones=args.group_backbones, tags=args.tags or ("serve",),
                      verify=not args.no_verify, progress=not args.quiet)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.format_text())


def cmd_add_head(args):
    from graphsurgeon._src.multihead.merge import add_task

    res = add_task(args.dir, args.model, args.out, name=args.task_name, output=args.output, atol=args.atol,
                   tags=args.tags or ("serve",), verify=not args.no_verify)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.format_text())


def cmd_remove_head(args):
    from graphsurgeon._src.multihead.merge import remove_task

    res = remove_task(args.dir, args.task, args.out, verify=not args.no_verify)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.format_text())


def cmd_learn_task(args):
    from graphsurgeon._src.continual.config import LearnConfig
    from graphsurgeon._src.continual.learn import learn_task

    old = {}
    for item in args.old_data or ():
        k, sep, v = item.partition("=")
        old.update({k: v} if sep and not os.path.exists(item) else {"": item})
    fields = dict(model=args.model, task=args.task, method=args.method, features=args.features, input=args.input,
                  output=args.output, old_task=args.old_task, old_data=old, replace=args.replace, epochs=args.epochs,
                  batch_size=args.batch_size, lr=args.lr, backbone_lr_mult=args.backbone_lr_mult, seed=args.seed,
                  lam=args.lam, temperature=args.temperature, warmup_epochs=args.warmup_epochs, cache=args.cache,
                  fisher=args.fisher, fisher_samples=args.fisher_samples, fisher_labels=args.fisher_labels,
                  online=args.online, gamma=args.gamma, prune=args.prune, prune_first=args.prune_first,
                  retrain_epochs=args.retrain_epochs, threshold=args.threshold, mask_init=args.mask_init,
                  mask_lr=args.mask_lr, tags=args.tags)
    cfg = LearnConfig(**{k: v for k, v in fields.items() if v is not None})
    res = learn_task(cfg, args.data, args.out, progress=not args.quiet)
    print(json.dumps(res.to_dict(), indent=2, default=str) if args.json else res.format_text())


def cmd_combine(args):
    from graphsurgeon._src.combine import combine
    from graphsurgeon._src.errors import ConfigError

    feats = args.features or []
    if len(feats) == 1:
        feats = feats * len(args.model)
    if len(feats) != len(args.model):
        raise ConfigError(f"{len(args.model)} --model but {len(feats)} --features: give one --features after each "
                          "--model (or one for all)")
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    res = combine(list(zip(args.model, feats)), args.data, args.out, input=args.input, names=names,
                  balance=args.balance, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                  tags=args.tags or ("serve",), progress=not args.quiet)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.format_text())


def cmd_add_class(args):
    from graphsurgeon._src.add_class import add_class

    kw = {k: getattr(args, k) for k in ("steps", "lr", "balance", "seed") if getattr(args, k) is not None}
    res = add_class(args.dir, args.data, args.name, args.out, features=args.features, reference=args.reference,
                    tags=args.tags or ("serve",), **kw)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.format_text())


def cmd_demo(args):
    from graphsurgeon._src.errors import ConfigError

    if args.seeds < 1 or not 8 <= args.canvas <= 32:
        raise ConfigError(f"--seeds must be >= 1 and --canvas 8..32 (got {args.seeds}, {args.canvas})")
    from graphsurgeon._src.demo import run

    result = run(args.out, seeds=range(args.seeds), canvas=args.canvas, progress=not args.quiet,
                 say=None if args.json else print)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))


EXAMPLES = {
    "inspect": "graphsurgeon inspect run/model.ckpt-1000 --json",
    "plan": "graphsurgeon plan --model run/ --head hidden3/Relu:2 --trainable hidden3 --lr-mult hidden3=0.1\n"
            "  graphsurgeon plan --model run/ --map-scope hidden1/=encoder/hidden1/ --drop output",
    "retrain": "graphsurgeon retrain --model run/ --head hidden3/Relu:2 --trainable hidden3 --data new.npz "
               "--out retrained/",
    "cache": "graphsurgeon cache --model run/ --tensor hidden2/Relu --data new.npz --out cache/\n"
             "  graphsurgeon retrain --model run/ --head hidden3/Relu:2 --cache cache/ --out retrained/",
    "migrate": "graphsurgeon migrate run/model.ckpt-1000 clean/model.ckpt --preset optimizer-slots "
               "--map-scope hidden1/=encoder/ --dry-run",
    "diff": "graphsurgeon diff run/model.ckpt-1000 clean/model.ckpt --json",
    "thaw": "graphsurgeon thaw frozen/graph.pb --scopes hidden3 output --out thawed/\n"
            "  graphsurgeon retrain --model thawed/ --head hidden3/Relu:2 --trainable hidden3 --data data.npz --out retrained/",
    "demo": "graphsurgeon demo --out demo-out/ --seeds 5 --json",
    "merge-heads": "graphsurgeon merge-heads tasks/ --features encoder/features --out serving/text/1",
    "add-head": "graphsurgeon add-head serving/text/1 new_task/model.ckpt-900    # writes serving/text/2",
    "remove-head": "graphsurgeon remove-head serving/text/2 sentiment           # writes serving/text/3",
    "learn-task": "graphsurgeon learn-task --model digits04/ --features hidden2/Relu --data digits59.npz "
                  "--task digits59 --method lwf --out continual/1",
    "combine": "graphsurgeon combine --model A/ --features hidden2/Relu --model B/ --features hidden2/Relu "
               "--data unlabelled.npz --out AB/",
    "add-class": "graphsurgeon add-class AB/ --data few.npz --name alien_bug --out ABC/",
}


def _continual_parsers(sub):
    s = sub.add_parser("learn-task", help="add a task to a model (plain or many-heads) with a continual-learning "
                                          "method; writes a many-heads model")
    s.add_argument("--model", required=True, help="a plain model or a many-heads directory (it is not changed)")
    s.add_argument("--data", required=True, help="the new task's labelled data (.npz or image folder)")
    s.add_argument("--task", required=True, metavar="NAME", help="the new task's name")
    s.add_argument("--method", required=True, choices=["feature-extraction", "fine-tune", "joint", "lwf", "ewc",
                                                       "packnet", "piggyback"])
    s.add_argument("--out", required=True, metavar="DIR", help="the many-heads directory to write (must not exist)")
    s.add_argument("--features", metavar="TENSOR", help="where a plain model's backbone ends")
    s.add_argument("--input", metavar="TENSOR", help="a plain model's input (default: the one placeholder)")
    s.add_argument("--output", metavar="TENSOR", help="a plain model's output (default: told from the graph)")
    s.add_argument("--old-task", metavar="NAME", help="a plain model's task name (default: its directory's name)")
    s.add_argument("--old-data", nargs="+", action="extend", metavar="[TASK=]PATH",
                   help="labelled data of an old task (joint trains on it; ewc takes its Fisher from it; accuracy "
                        "after learning is measured on its test split)")
    s.add_argument("--replace", action="store_true", help="learn a task whose name exists again")
    s.add_argument("--epochs", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float, help="the new head's learning rate (default 0.003)")
    s.add_argument("--backbone-lr-mult", type=float, help="the backbone's rate as a multiple of --lr (default 1/3)")
    s.add_argument("--seed", type=int)
    s.add_argument("--lambda", dest="lam", type=float, help="lwf's distillation weight (default 1), ewc's penalty "
                                                            "weight (default 100)")
    s.add_argument("--temperature", type=float, help="lwf's distillation temperature T (default 2)")
    s.add_argument("--warmup-epochs", type=int, help="lwf: epochs with the backbone frozen first (default 5)")
    s.add_argument("--cache", metavar="DIR", help="lwf: where the old heads' recorded outputs are kept")
    s.add_argument("--fisher", metavar="FILE", help="ewc: a fisher.npz written for this model's weights")
    s.add_argument("--fisher-samples", type=int, help="ewc: examples per Fisher estimate (default 200)")
    s.add_argument("--fisher-labels", choices=["empirical", "sampled"], help="ewc: labels of the Fisher's gradients")
    s.add_argument("--online", action="store_true", default=None, help="ewc: one decayed Fisher for all old tasks")
    s.add_argument("--gamma", type=float, help="online ewc's decay (default 1)")
    s.add_argument("--prune", type=float, help="packnet: fraction of the new task's weights freed (default 0.75)")
    s.add_argument("--prune-first", type=float, help="packnet: fraction of a plain model's weights freed "
                                                     "(default 0.5)")
    s.add_argument("--retrain-epochs", type=int, help="packnet: epochs after pruning (default half of --epochs)")
    s.add_argument("--threshold", type=float, help="piggyback: mask score threshold (default 0.005)")
    s.add_argument("--mask-init", type=float, help="piggyback: initial mask score (default 0.01)")
    s.add_argument("--mask-lr", type=float, help="piggyback: the mask scores' learning rate (default 1e-4)")
    s.add_argument("--tags", nargs="+", help="SavedModel tags (default: serve)")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_learn_task)

    s = sub.add_parser("combine", help="two or more frozen classifiers side by side, one new head over the union "
                                       "of their classes")
    s.add_argument("--model", required=True, action="append", help="a model (repeat: A's classes come first)")
    s.add_argument("--features", action="append", metavar="TENSOR", help="the tensor its head reads (one per "
                                                                          "--model, in order)")
    s.add_argument("--input", metavar="TENSOR", help="the models' input (default: the one placeholder)")
    s.add_argument("--data", required=True, help=".npz with x and y (labels in the union's order) or x only "
                                                 "(learn from the models' own outputs)")
    s.add_argument("--out", required=True, metavar="DIR", help="the directory to write (must not exist)")
    s.add_argument("--names", help="the models' scopes, comma-separated (default: their directories' names)")
    s.add_argument("--balance", choices=["logits", "confidence", "equal"],
                   help="without labels: how the models' answers make the target (default logits)")
    s.add_argument("--epochs", type=int, help="default 300")
    s.add_argument("--lr", type=float, help="default 0.003")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tags", nargs="+", help="SavedModel tags (default: serve)")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_combine, balance="logits")

    s = sub.add_parser("add-class", help="a new version of a classifier with one more class, learned from a few "
                                         "examples")
    s.add_argument("dir", metavar="DIR", help="a model written by combine or add-class (it is not changed)")
    s.add_argument("--data", required=True, help="examples of the new class (.npz with x)")
    s.add_argument("--name", required=True, help="the new class's name (it becomes the last index)")
    s.add_argument("--out", required=True, metavar="DIR2", help="the directory to write (must not exist)")
    s.add_argument("--features", metavar="TENSOR", help="the tensor the last layer reads (default: from model.json)")
    s.add_argument("--reference", metavar="DATA", help="inputs whose answers are kept (default: the data combine "
                                                       "used)")
    s.add_argument("--steps", type=int, help="full-batch training steps (default 300)")
    s.add_argument("--lr", type=float, help="default 0.01")
    s.add_argument("--balance", type=float, help="the loss's weight on the new examples (default 0.1)")
    s.add_argument("--seed", type=int)
    s.add_argument("--tags", nargs="+", help="SavedModel tags (default: serve)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_add_class)


def _multihead_parsers(sub):
    s = sub.add_parser("merge-heads", help="merge task models that share a backbone into one SavedModel served "
                                           "with (inputs, task_id)")
    s.add_argument("models", nargs="+", metavar="MODEL", help="task models: paths, directories or globs")
    s.add_argument("--features", required=True, metavar="TENSOR",
                   help="where the backbone ends: a tensor, or a layer name for Keras models")
    s.add_argument("--out", required=True, metavar="DIR", help="the SavedModel directory to write (must not exist)")
    s.add_argument("--input", metavar="TENSOR", help="the models' input (default: the one placeholder below "
                                                     "--features)")
    s.add_argument("--output", metavar="TENSOR", help="the models' output (default: told from the graph)")
    s.add_argument("--task-names", metavar="FILE", help="one task name per line, in the models' order")
    s.add_argument("--atol", type=float, default=0.0, help="backbone weights this close count as equal")
    s.add_argument("--group-backbones", action="store_true",
                   help="when backbone weights differ, build one backbone per group instead of refusing")
    s.add_argument("--tags", nargs="+", help="SavedModel tags (default: serve)")
    s.add_argument("--no-verify", action="store_true", help="skip comparing the written model with each head")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_merge_heads)
    for name, fn, what in (("add-head", cmd_add_head, "MODEL"), ("remove-head", cmd_remove_head, "TASK")):
        s = sub.add_parser(name, help="a new version of a merged model with one task "
                                      + ("added" if what == "MODEL" else "removed"))
        s.add_argument("dir", metavar="DIR", help="a version written by merge-heads (it is not changed)")
        if what == "MODEL":
            s.add_argument("model", metavar="MODEL", help="the task model whose head is added")
            s.add_argument("--task-name", help="its task name (default: from its path)")
            s.add_argument("--output", metavar="TENSOR", help="the model's output (default: told from the graph)")
            s.add_argument("--atol", type=float, default=0.0, help="backbone weights this close count as equal")
            s.add_argument("--tags", nargs="+", help="SavedModel tags (default: serve)")
        else:
            s.add_argument("task", metavar="TASK", help="the task's name, or its id when no task has that name")
        s.add_argument("--out", metavar="NEWDIR", help="the new version's directory (default: DIR's version "
                                                       "number + 1, beside it)")
        s.add_argument("--no-verify", action="store_true", help="skip comparing the written model with each head")
        s.add_argument("--json", action="store_true")
        s.set_defaults(func=fn)


def build_parser():
    p = _Parser(prog="graphsurgeon", description="Surgery on legacy TensorFlow 1 models for transfer learning.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("inspect", help="variables, scopes, inputs and outputs of a checkpoint or graph")
    s.add_argument("path")
    s.add_argument("--depth", type=int, default=1, help="scope depth to group by")
    s.add_argument("--tags", nargs="+")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("plan", help="dry run: what happens to every variable")
    _model_args(s)
    s.add_argument("--json", action="store_true")
    s.add_argument("--dot", metavar="FILE", help="write a picture of the surgery as Graphviz DOT text")
    s.add_argument("--svg", metavar="FILE", help="render that picture to SVG (needs Graphviz's dot on PATH)")
    s.add_argument("--depth", type=int, help="scope depth of the picture's boxes (default: the deepest with <= 60)")
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("retrain", help="restore, new head, train the chosen layers, export")
    _model_args(s)
    s.add_argument("--data", help=".npz (x, y) or an image folder (one sub-folder per class)")
    s.add_argument("--cache", metavar="DIR", help="train from a bottleneck cache made by 'graphsurgeon cache'")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--epochs", type=int, help="epoch budget (default: 300 for a head from a cache, 30 for a head, "
                                               "20 when restored layers train)")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float, help="learning rate (default 0.003 for a head alone, 0.001 when restored "
                                            "layers train)")
    s.add_argument("--optimizer", choices=["sgd", "momentum", "adam", "rmsprop"], help="default adam")
    s.add_argument("--seed", type=int)
    s.add_argument("--patience", type=int,
                   help="stop after this many epochs without a better validation accuracy (0: never)")
    s.add_argument("--image-scale", choices=["unit", "inception", "raw"],
                   help="image folders: pixels to [0,1] (unit, default), [-1,1] (inception) or [0,255] (raw)")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_retrain)

    s = sub.add_parser("cache", help="run the frozen layers once over the data and store the bottleneck")
    s.add_argument("--model", required=True)
    s.add_argument("--tensor", required=True, help="the bottleneck tensor (top frozen layer's output)")
    s.add_argument("--data", required=True, help=".npz, image folder, or TFRecord file/glob of tf.train.Example")
    s.add_argument("--out", required=True, help="cache directory (created, or completed if it exists)")
    s.add_argument("--input", metavar="TENSOR",
                   help="the tensor fed with the data (default: the one placeholder the tensor reads)")
    s.add_argument("--feed", nargs="+", action="extend", metavar="NAME=VALUE",
                   help="value of another placeholder: a number, true/false, or an .npy file")
    s.add_argument("--batch-size", type=int, help="examples per run (default: the batch the graph fixes, else 256)")
    s.add_argument("--shard-size", type=int, default=4096, help="examples per shard")
    s.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    s.add_argument("--augment", type=int, default=0, metavar="K", help="K distorted copies of each training image")
    s.add_argument("--flip-left-right", type=lambda v: v.lower() in ("1", "true", "yes"), default=None)
    s.add_argument("--random-crop", type=float, metavar="PCT")
    s.add_argument("--random-scale", type=float, metavar="PCT")
    s.add_argument("--random-brightness", type=float, metavar="PCT")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--image-scale", choices=["unit", "inception", "raw"], default="unit")
    s.add_argument("--image-feature", default="image/encoded", help="TFRecord feature with the image")
    s.add_argument("--label-feature", default="image/class/label", help="TFRecord feature with the label")
    s.add_argument("--tags", nargs="+")
    s.add_argument("--repair", action="store_true", help="recompute shards whose checksum does not match")
    s.add_argument("--allow-random", action="store_true", help="cache a tensor that depends on random ops")
    s.add_argument("--allow-batch-dependent", action="store_true",
                   help="cache a tensor that depends on its batch-mates (batch statistics)")
    s.add_argument("--allow-cast", action="store_true", help="restore values of another dtype, cast")
    s.add_argument("--allow-unsafe-ops", action="store_true",
                   help="run a graph that holds file-system or Python-callback ops")
    s.add_argument("--runner", choices=["local", "beam"], default="local",
                   help="where the shards are computed: here, or on Apache Beam (pip install 'tf1-graphsurgeon[beam]')")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--json", action="store_true")
    s.add_argument("--beam-args", nargs=argparse.REMAINDER, metavar="ARG",
                   help="with --runner beam, the rest of the line: Beam pipeline options (default "
                        "--direct_running_mode=multi_processing --direct_num_workers=2)")
    s.set_defaults(func=cmd_cache)

    s = sub.add_parser("migrate", help="rename, drop, keep, cast, merge checkpoints into a new one")
    s.add_argument("src")
    s.add_argument("dst", help="destination prefix (must not exist)")
    s.add_argument("--rename", nargs="+", action="extend", metavar="REGEX=REPLACEMENT")
    s.add_argument("--map-scope", nargs="+", action="extend", metavar="OLD/=NEW/")
    s.add_argument("--drop", nargs="+", action="extend", metavar="PAT")
    s.add_argument("--keep", nargs="+", action="extend", metavar="PAT", help="keep only these (split out a scope)")
    s.add_argument("--cast", nargs="+", action="extend", metavar="PAT=DTYPE", help="float16, bfloat16, float32")
    s.add_argument("--merge", nargs="+", action="extend", metavar="OTHER[:PREFIX/]")
    s.add_argument("--preset", nargs="+", action="extend",
                   metavar="NAME", help="optimizer-slots, rnn-cell-names, strip-scope=NAME")
    s.add_argument("--to", choices=["tf1", "tf2"], default="tf1",
                   help="tf2: what tf.train.Checkpoint(vars={name: variable}) writes")
    s.add_argument("--from", dest="from_format", choices=["tf1", "tf2"], default="tf1",
                   help="tf2: read an object-based checkpoint (or TF2 SavedModel variables) by variable name")
    s.add_argument("--merge-partitions", action="store_true", help="join name/part_N tensors into one")
    s.add_argument("--dry-run", action="store_true", help="print the old -> new table; write nothing at all")
    v = s.add_mutually_exclusive_group()
    v.add_argument("--verify", choices=["sample", "full"], default="sample",
                   help="sample (default): keys, dtypes and shapes of all, bytes of every tensor under 1 MiB and a "
                        "seeded sample of larger ones; full: every byte of every tensor")
    v.add_argument("--no-verify", action="store_true", help="check nothing")
    d = s.add_mutually_exclusive_group()
    d.add_argument("--link", action="store_true",
                   help="always hard-link the sources' data files and write only an index (dropped tensors keep "
                        "their bytes there); the default links only when no byte is dropped or changed")
    d.add_argument("--copy", action="store_true", help="always write a new data file, never hard links")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("diff", help="tensors added, removed, renamed, changed between two checkpoints")
    s.add_argument("a")
    s.add_argument("b")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("thaw", help="turn a frozen graph's chosen weight constants back into variables")
    s.add_argument("path", metavar="GRAPH", help="a frozen GraphDef (.pb / .pbtxt)")
    s.add_argument("--scopes", nargs="+", action="extend", required=True, metavar="PAT",
                   help="weight-like constants to thaw (inspect lists them)")
    s.add_argument("--out", required=True, metavar="DIR", help="where to write model.ckpt and its meta graph")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_thaw)

    _multihead_parsers(sub)
    _continual_parsers(sub)

    s = sub.add_parser("demo", help="the embedded demo: a digits 0-4 model retrained for digits 5-9 with few "
                                    "labels; learning curve against training from scratch")
    s.add_argument("--out", default=None, help="where to write (default: a temporary directory)")
    s.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="seeds per point of the learning curve (default 3)")
    s.add_argument("--canvas", type=int, default=12, metavar="PIXELS",
                   help="side (8..32) of the images the 8x8 digits are placed on at random (default 12; 8: "
                        "centred, as scikit-learn gives them)")
    s.add_argument("--json", action="store_true", help="print the learning curve and the outputs as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress display")
    s.set_defaults(func=cmd_demo)
    for name, parser in sub.choices.items():
        if name in EXAMPLES:
            parser.epilog = "example:\n  " + EXAMPLES[name]
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for parser in [p, *sub.choices.values()]:
        top = parser is p
        parser.add_argument("--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                            help="also show TensorFlow's own log lines and warnings")
        parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                            help="on failure, print the Python traceback too")
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or failure, 130 interrupted).

    Unless ``--verbose``, TensorFlow's start-up and logging noise never reaches stderr
    (:mod:`graphsurgeon._src.terminal`). Every failure is one line on stderr; ``--debug`` adds the traceback.
    """
    args = build_parser().parse_args(argv)
    from graphsurgeon._src import terminal

    if not args.verbose:
        terminal.quiet_stderr()
    try:
        return _run(args)
    finally:
        if not args.verbose:
            terminal.restore_stderr()


def _run(args) -> int:
    from graphsurgeon._src import terminal

    if not args.verbose:
        terminal.silence_tensorflow_logger()
    try:
        _check_paths(args)
        return args.func(args) or 0
    except KeyboardInterrupt:
        sys.stderr.write("graphsurgeon: interrupted\n")
        return 130
    except BrokenPipeError:  # `graphsurgeon ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as e:  # every failure is one line; --debug shows where it came from
        if args.debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"graphsurgeon {args.command}: error: {describe_error(e)}\n")
        sys.stderr.flush()
        return 2


# argument -> what names a model or checkpoint path, checked before TensorFlow is imported
_PATH_ARGS = ("path", "model", "src", "a", "b")


def _check_paths(args) -> None:
    """Resolve every model/checkpoint path argument first: a wrong path fails in milliseconds,
    without importing TensorFlow (:mod:`graphsurgeon._src.storage.paths` reads only file names)."""
    from graphsurgeon._src.storage.paths import resolve

    for name in _PATH_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            resolve(value, getattr(args, "tags", None) or ("serve",))


# library argument -> command-line flag: errors name arguments, the CLI speaks in flags
FLAGS = {
    "head": "--head", "output": "--output", "input": "--input", "batch_size": "--batch-size",
    "allow_missing": "--allow-missing", "allow_cast": "--allow-cast", "allow_unsafe_ops": "--allow-unsafe-ops",
    "allow_random": "--allow-random", "allow_batch_dependent": "--allow-batch-dependent", "overwrite": "--overwrite",
    "repair": "--repair", "out_dir": "--out", "data": "--data", "cache": "--cache", "model": "--model",
    "augment": "--augment", "runner": "--runner", "beam_args": "--beam-args", "scopes": "--scopes", "task": "--task", "method": "--method", "old_data": "--old-data",
    "lam": "--lambda", "temperature": "--temperature", "prune": "--prune", "prune_first": "--prune-first",
    "gamma": "--gamma", "fisher": "--fisher", "replace": "--replace", "features": "--features",
    "reference": "--reference", "balance": "--balance", "names": "--names", "threshold": "--threshold",
    "epochs": "--epochs",
}


def to_flags(message: str) -> str:
    """A library message in command-line words: ``allow_cast=True`` -> ``--allow-cast``,
    ``batch_size=100`` -> ``--batch-size 100``, ``feeds={'NAME': VALUE}`` -> ``--feed NAME=VALUE``,
    ``feeds=`` -> ``--feed``.

    >>> to_flags("pass batch_size=100 or allow_cast=True; give feeds={'state': VALUE}")
    'pass --batch-size 100 or --allow-cast; give --feed state=VALUE'
    """
    message = rule_flags(message)
    message = re.sub(r"\bold_data=\{'([^']*)': PATH\}", r"--old-data \1=PATH", message)
    message = re.sub(r"\b(train_feeds|feeds)=\{'([^']*)': VALUE\}",
                     lambda m: f"{'--train-feed' if m.group(1) == 'train_feeds' else '--feed'} {m.group(2)}=VALUE",
                     message)
    message = re.sub(r"\b(train_feeds|feeds)=", lambda m: "--train-feed" if m.group(1) == "train_feeds" else "--feed",
                     message)
    names = "|".join(sorted(FLAGS, key=len, reverse=True))
    message = re.sub(rf"(?<![\w-])({names})=True\b", lambda m: FLAGS[m.group(1)], message)
    return re.sub(rf"(?<![\w-])({names})=", lambda m: FLAGS[m.group(1)] + " ", message)


def describe_error(e: BaseException) -> str:
    """One line for any exception: ours as they are; TensorFlow's naming the op involved; others
    with their type and a pointer to ``--debug``."""
    from graphsurgeon._src.errors import GraphSurgeonError

    text = " ".join(str(e).split())
    if isinstance(e, GraphSurgeonError):
        return to_flags(text)
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or text}"
    tf_errors = sys.modules.get("tensorflow.python.framework.errors_impl")
    if tf_errors is not None and isinstance(e, tf_errors.OpError):
        first = (e.message or "").strip().splitlines()
        where = f"op '{e.op.name}' ({e.op.type})" if getattr(e, "op", None) is not None else "TensorFlow"
        return f"{where} failed: {first[0][:300] if first else type(e).__name__} (--debug shows the traceback)"
    if isinstance(e, MemoryError):
        return "out of memory (try a smaller --batch-size)"
    return f"unexpected {type(e).__name__}: {text[:300]} (this is a graphsurgeon bug; --debug shows the traceback)"


if __name__ == "__main__":
    sys.exit(main())
