"""The commands on many models and tasks: merge-heads, add-head, remove-head, learn-task,
combine, add-class (they import the library when they run, as :mod:`.commands` does)."""
from __future__ import annotations

import json
import os

from graphsurgeon._src.cli.messages import to_flags


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
                      verify=not args.no_verify, allow_batch_dependent=args.allow_batch_dependent,
                      progress=not args.quiet)
    _print_with_notes(res, args)


def cmd_add_head(args):
    from graphsurgeon._src.multihead.merge import add_task

    res = add_task(args.dir, args.model, args.out, name=args.task_name, output=args.output, atol=args.atol,
                   tags=args.tags or ("serve",), verify=not args.no_verify,
                   allow_batch_dependent=args.allow_batch_dependent)
    _print_with_notes(res, args)


def cmd_remove_head(args):
    from graphsurgeon._src.multihead.merge import remove_task

    res = remove_task(args.dir, args.task, args.out, verify=not args.no_verify)
    _print_with_notes(res, args)


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
                  mask_lr=args.mask_lr, tags=args.tags, allow_random=args.allow_random or None,
                  allow_batch_dependent=args.allow_batch_dependent or None)
    cfg = LearnConfig(**{k: v for k, v in fields.items() if v is not None})
    res = learn_task(cfg, args.data, args.out, progress=not args.quiet)
    _print_with_notes(res, args)


def cmd_combine(args):
    from graphsurgeon._src.combine import combine
    from graphsurgeon._src.errors import ConfigError

    feats = args.features or [None]  # none: each model's own model.json names its features
    if len(feats) == 1:
        feats = feats * len(args.model)
    if len(feats) != len(args.model):
        raise ConfigError(f"{len(args.model)} --model but {len(feats)} --features: give one --features after each "
                          "--model (or one for all, or none for models written by combine or add-class)")
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    prior = None
    if args.prior is not None:
        try:
            prior = [float(w) for w in args.prior.split(",")]
        except ValueError:
            raise ConfigError(f"--prior {args.prior}: expected comma-separated numbers, one per class") from None
    kw = {"weight_decay": args.weight_decay} if args.weight_decay is not None else {}
    res = combine(list(zip(args.model, feats)), args.data, args.out, input=args.input, names=names,
                  balance=args.balance, prior=prior, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                  seed=args.seed, tags=args.tags or ("serve",), allow_random=args.allow_random,
                  allow_batch_dependent=args.allow_batch_dependent, progress=not args.quiet, **kw)
    _print_with_notes(res, args)


def cmd_add_class(args):
    from graphsurgeon._src.add_class import add_class

    kw = {k: getattr(args, k) for k in ("steps", "lr", "balance", "seed") if getattr(args, k) is not None}
    res = add_class(args.dir, args.data, args.name, args.out, features=args.features, output=args.output,
                    reference=args.reference, tags=args.tags or ("serve",), allow_random=args.allow_random,
                    allow_batch_dependent=args.allow_batch_dependent, **kw)
    _print_with_notes(res, args)


def _print_with_notes(res, args) -> None:
    """A continual command's result, text or ``--json``, its notes in command-line words (``--allow-random``)."""
    res.notes = [to_flags(n) for n in res.notes]
    print(json.dumps(res.to_dict(), indent=2, default=str) if args.json else res.format_text())
