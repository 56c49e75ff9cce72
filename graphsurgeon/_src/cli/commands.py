"""The commands on one model or checkpoint: each reads its arguments, calls the library, prints.

They import the library when they run, so that help and usage errors never load TensorFlow."""
from __future__ import annotations

import json
import shlex

from graphsurgeon._src.cli.messages import migrate_flags, to_flags
from graphsurgeon._src.mixins import agree, counted


def _kv(items, what):
    out = {}
    for item in items or ():
        k, sep, v = item.partition("=")
        if not sep or not k:
            from graphsurgeon._src.errors import ConfigError
            raise ConfigError(f"{what} '{item}': expected NAME=VALUE")
        out[k] = v
    return out


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
        head_initializer=args.head_init, pool=args.pool, output=args.output, input=args.input,
        trainable=args.trainable, keep=args.keep, drop=args.drop, reinit=args.reinit,
        rename=_pairs(args.rename, "--rename") or None, map_scope=_pairs(args.map_scope, "--map-scope") or None,
        lr_mult=args.lr_mult, unfreeze=args.unfreeze,
        feeds=_kv(args.feed, "feed") or None, train_feeds=_kv(args.train_feed, "train feed") or None,
        tags=args.tags, restore_optimizer=args.restore_optimizer, allow_missing=args.allow_missing,
        allow_cast=args.allow_cast, allow_unsafe_ops=args.allow_unsafe_ops, allow_random=args.allow_random,
        allow_batch_dependent=args.allow_batch_dependent,
    )
    for name in ("epochs", "batch_size", "lr", "optimizer", "seed", "patience", "image_scale"):
        overrides[name] = getattr(args, name, None)
    if args.plan_file:
        return RetrainConfig.from_toml(args.plan_file, **overrides)
    return RetrainConfig(**{k: v for k, v in overrides.items() if v is not None})


def cmd_inspect(args):
    from graphsurgeon._src.cli.inspect_text import format_text
    from graphsurgeon._src.inspect import inspect

    report = inspect(args.path, tags=args.tags or ("serve",), depth=args.depth)
    print(json.dumps(report, indent=2) if args.json else format_text(report))


def cmd_plan(args):
    from graphsurgeon._src.picture import check_depth
    from graphsurgeon._src.retrain import build, picture

    check_depth(args.depth)  # before the graph is built
    if args.depth is not None and not (args.dot or args.svg):
        from graphsurgeon._src.errors import ConfigError
        raise ConfigError(f"--depth {args.depth} applies to the picture only: give --dot FILE or --svg FILE too, "
                          "or leave --depth out")
    cfg = _config(args)
    setup = build(cfg, values=False)
    setup.plan.notes = [to_flags(n) for n in setup.plan.notes]
    dot = picture(setup, depth=args.depth) if (args.dot or args.svg) else None
    if args.dot:
        from graphsurgeon._src.storage.writer import write_text

        write_text(args.dot, dot)
    if args.svg:
        from graphsurgeon._src.storage.graphviz import write_svg

        write_svg(dot, args.svg)
    # what retrain would refuse before reading a value (casts without --allow-cast, shape mismatches, missing
    # variables without --allow-missing), refused here too: after the table that shows where, or (--json) instead
    # of a report a script could take for a plan that retrain would follow
    if args.json:
        setup.plan.check(allow_missing=cfg.allow_missing, allow_cast=cfg.allow_cast)
    print(setup.plan.to_json() if args.json else setup.plan.format_text(), flush=True)
    setup.plan.check(allow_missing=cfg.allow_missing, allow_cast=cfg.allow_cast)
    return 0


def cmd_retrain(args):
    from graphsurgeon._src.retrain import retrain

    cfg = _config(args)
    res = retrain(cfg, args.data, args.out, cache=args.cache, progress=not args.quiet, overwrite=args.overwrite)
    head_input = dict(res.head_input.to_dict(), notes=[to_flags(n) for n in res.head_input.notes])
    fixed = res.setup.fixed_batch
    declared = fixed if fixed and res.setup.input.shape.rank and res.setup.input.shape[0] == fixed else None
    notes = [to_flags(n) for n in res.setup.notes]
    summary = {"version": 1, "out": args.out, "checkpoint": res.export.checkpoint,
               "saved_model": res.export.saved_model, "metrics": res.metrics, "epochs": len(res.history),
               "settings": res.settings, "head_input": head_input, "fixed_batch": fixed, "notes": notes}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        st = res.settings
        print(f"trained {len(res.history)} of up to {st['epochs']} epochs ({st['optimizer']}, lr {st['lr']:g}"
              + (f", early stopping after {st['patience']} epochs without improvement" if st["patience"] else "")
              + ")")
        _print_kept_epoch(res)
        for split, m in res.metrics.items():
            print(f"{split}: accuracy {m['accuracy']:.4f}  loss {m['loss']:.4f}  ({m['examples']} examples)")
        for note in head_input["notes"] + notes:
            print(note)
        print(f"checkpoint: {res.export.checkpoint}\nsaved model: {res.export.saved_model}"
              + (f" (its signature declares batches of exactly {declared} examples, as the graph fixes the batch in "
                 "its static shapes: Session.run and saved_model_cli run refuse other sizes)"
                 if declared else ""))


def _print_kept_epoch(res) -> None:
    """With early stopping, which epoch's trained values were exported (train.fit restores the best)."""
    from graphsurgeon._src.train import best_epoch

    best = best_epoch(res.history) if res.settings["patience"] else None
    if best is None:
        return
    h = res.history[best - 1]
    moving = "; moving averages (batch statistics) as after the last epoch" if any(res.setup.stage_updates) else ""
    print(f"exported: the trained variables of epoch {best} of {len(res.history)}, the best on validation "
          f"(accuracy {h['validation_accuracy']:.4f}, loss {h['validation_loss']:.4f}){moving}")


def _computed(rep) -> str:
    """How many rows a cache run computed, and how fast: over the whole run (the model's restore
    and the data's indexing included), or, on Beam, the run's
    time with the part of it spent before the workers' first shard (their start-up, which a rate
    over so few rows would count as computing)."""
    if rep.startup_seconds is not None:
        return (f"computed {rep.computed} in a {rep.seconds:.0f} s run ({rep.startup_seconds:.0f} s of it starting "
                "the Beam workers, until their first shard)")
    rate = rep.computed / rep.seconds if rep.seconds else 0.0
    return f"computed {rep.computed} in {rep.seconds:.2f} s ({rate:.0f} examples/s over the whole run, restore included)"


def cmd_cache(args):
    from graphsurgeon._src.cache import generate

    aug = {k: getattr(args, k) for k in ("flip_left_right", "random_crop", "random_scale", "random_brightness")
           if getattr(args, k) is not None}
    beam_args = [a for item in args.beam_args or () for a in shlex.split(item)]
    if beam_args and args.runner != "beam":
        from graphsurgeon._src.errors import ConfigError
        raise ConfigError("--beam-args needs --runner beam")
    rep = generate(args.model, args.cut, args.data, args.out, input=args.input, feeds=_kv(args.feed, "feed"),
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
        print(f"{rep.directory}: {rep.examples} cached activations; {_computed(rep)}, "
              f"reused {rep.reused}, {counted(rep.shards_written, 'shard')} written"
              + (f", repaired {', '.join(rep.repaired)}" if rep.repaired else "")
              + (f"; {counted(rep.unreferenced, 'stored row')} not in this data set (kept, not read)" if rep.unreferenced
                 else ""))
        for change in rep.changes:
            print(f"  {change}")
        for key, flag, what in (("random", "--allow-random", "random: its values differ between runs on one batch"),
                                ("batch_dependent", "--allow-batch-dependent", "dependent on its batch-mates")):
            if rep.checks.get(key):
                print(f"  the cached tensor is {what} (accepted by {flag}; recorded in the manifest, so retrain "
                      f"--cache needs {flag} too)")
        for note in rep.notes:
            print(f"  {note}")


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
        print(json.dumps({"version": 1, "destination": res.destination, "dry_run": res.dry_run,
                          "verified": res.verified, "data": res.data, "cast": res.cast, "mapping": res.mapping,
                          "files": res.files, "swept": res.swept, "dropped": res.dropped,
                          "not_carried_over": res.not_carried_over, "source_keys": res.source_keys,
                          "joined": res.joined, "not_cast": res.not_cast, "optimizer_state": res.optimizer_state},
                         indent=2))
        return
    _print_migration(res, args)


def _print_migration(res, args) -> None:
    """The table of a migration: old -> new, dropped, not carried over, then what was written."""
    from graphsurgeon._src.storage.objectgraph import OBJECT_GRAPH_KEY, SAVE_COUNTER_KEY

    what = {OBJECT_GRAPH_KEY: "the object graph", SAVE_COUNTER_KEY: "tf.train.Checkpoint's save counter"}
    for path in res.swept:
        print(f"# removed {path} (left by a migration that was killed)")
    for source, m in res.mapping.items():
        keys = res.source_keys.get(source, {})
        width = max([len(keys.get(o, o)) for o in m] + [4])
        print(f"# from {source}")
        for old, new in m.items():
            tag = "  (cast)" if new in res.cast else f"  (not cast: {res.not_cast[new]})" if new in res.not_cast else ""
            tag += "  (optimizer state)" if new in (res.optimizer_state or ()) else ""
            old = keys.get(old, old)
            print(f"{old:<{width}}  ->  {new}{tag}" if old != new else f"{old:<{width}}      (kept){tag}")
    if res.optimizer_state:
        print(_optimizer_line(res.optimizer_state, args.src))
    if res.dropped:
        print(f"# dropped from {args.src}: {len(res.dropped)} tensor{'s' * (len(res.dropped) != 1)}")
        width = max(len(o) for o in res.dropped)
        for old in res.dropped:
            print(f"{old:<{width}}      (dropped)")
    if res.not_carried_over:
        if args.from_format == "tf1":  # the object graph alone, read by its key
            why = ("--to tf2 writes an object graph of its own" if args.to == "tf2" else "it names keys this "
                   "migration renames, drops, casts or joins; the result is name-based (--from tf2 reads variables)")
        else:
            why = ("--to tf2 writes an object graph and save counter of its own" if args.to == "tf2"
                   else "a TF1 name-based checkpoint has no object graph")
        k = len(res.not_carried_over)
        print(f"# not carried over from {args.src}: {counted(k, 'tensor')} that "
              f"{agree(k, 'is not a variable', 'are not variables')} ({why})")
        width = max(len(k) for k in res.not_carried_over)
        for key in res.not_carried_over:
            print(f"{key:<{width}}      ({what.get(key, 'object state, not a variable')})")
    n = sum(len(m) for m in res.mapping.values())
    if args.merge_partitions and not res.joined:
        print("-- --merge-partitions: no partitioned tensors (name/part_0, name/part_1, ...) to join")
    data = _data_phrase(res, args)
    left = [f"{len(res.dropped)} dropped"] * bool(res.dropped) + \
        [f"{len(res.not_carried_over)} not carried over"] * bool(res.not_carried_over)
    left = f" ({', '.join(left)})" if left else ""
    if res.dry_run:
        print(f"-- {n} tensor{'s' * (n != 1)}{left}; dry run, nothing written (would write {data})")
    else:
        print(f"-- {n} tensor{'s' * (n != 1)}{left} written to {res.destination}"
              + (f"; verified against the source ({res.verified})" if res.verified else "; not verified"))
        print(f"-- data: {data}")


def _data_phrase(res, args) -> str:
    """What the destination's data is: hard links (and a new data file for what it computes or adds), or one
    new data file."""
    if not res.data.endswith("linked"):
        return "a new data file holding only these tensors"
    joined = len(res.joined or ())
    new = [f"the {counted(n, 'tensor')} {what}" for n, what in ((len(res.cast) - joined, "cast"), (joined, "joined"))
           if n] + ["the object graph and save counter of --to tf2"] * (args.to == "tf2")
    return ("hard links to the source's data files, "
            + (f"a new data file holding {' and '.join(new)}, " if new else "") + "a new index")


def _optimizer_line(names: list, src: str) -> str:
    k = len(names)
    return (f"# optimizer state carried over from {src}: {k} of these tensor{'s' * (k != 1)} (tagged: their keys are "
            "the optimizer's, its slots, step count, learning rate); --preset optimizer-slots drops them")


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
    for g in d["ambiguous"]:
        print(f"? {', '.join(g['removed'])} -> {', '.join(g['added'])}  (all of one dtype, shape and crc32c: "
              "not paired, which became which cannot be told)")
    for n, v in d["changed"].items():
        print(f"! {n}  max abs difference {v}")
    for key in ("dtype_changed", "shape_changed"):
        for n, (x, y) in d[key].items():
            print(f"! {n}  {key.split('_')[0]} {x} -> {y}")
    print(_diff_summary(d) if any(d.values()) else "no differences")


def _diff_summary(d: dict) -> str:
    """``-- 2 added, 2 removed, 1 renamed, 0 changed``: how many names each key of ``diff --json`` holds (the dtype
    and shape changes and the ambiguous groups' names when there are some)."""
    line = "-- " + ", ".join(f"{len(d[k])} {k}" for k in ("added", "removed", "renamed", "changed"))
    line += "".join(f", {len(d[k])} {k.replace('_', ' ')}" for k in ("dtype_changed", "shape_changed") if d[k])
    if d["ambiguous"]:
        removed, added = (sum(len(g[side]) for g in d["ambiguous"]) for side in ("removed", "added"))
        line += f" (of these, {removed} removed and {added} added may be renames diff cannot pair: ?)"
    return line


def cmd_thaw(args):
    from graphsurgeon._src.thaw import thaw

    res = thaw(args.path, args.scopes, args.out, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
        return
    width = max(map(len, res.variables), default=0)
    for name, shape in res.variables.items():
        print(f"{name:<{width}}  {list(shape)}")
    made, left = len(res.variables), res.constants_left
    print(f"-- {counted(made, 'constant')} ({res.nbytes} bytes) "
          f"{agree(made, 'is a variable', 'are variables')} now, {counted(left, 'weight-like constant')} "
          f"left as {agree(left, 'a constant', 'constants')}; "
          f"checkpoint {res.checkpoint}, meta graph {res.checkpoint}.meta")


def cmd_demo(args):
    from graphsurgeon._src.errors import ConfigError

    bad = ([f"--seeds {args.seeds}: expected at least 1"] if args.seeds < 1 else []) + (
        [f"--canvas {args.canvas}: expected 8..32 pixels"] if not 8 <= args.canvas <= 32 else [])
    if bad:
        raise ConfigError("; ".join(bad))
    from graphsurgeon._src.demo import run

    result = run(args.out, seeds=range(args.seeds), canvas=args.canvas, progress=not args.quiet,
                 say=None if args.json else print)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
