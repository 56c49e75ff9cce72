"""``migrate()``: the phases in order, written under a staging directory, verified, moved into place."""
from __future__ import annotations

import dataclasses
import glob
import os

from graphsurgeon._src.errors import ConfigError, MigrateError
from graphsurgeon._src.migrate import plan as phases
from graphsurgeon._src.migrate.assemble import assemble, bytes_to_write, should_link
from graphsurgeon._src.migrate.rules import Rules
from graphsurgeon._src.migrate.sources import open_checkpoint
from graphsurgeon._src.migrate.verify import LEVELS, EarlyCheck, Prefetch, sample
from graphsurgeon._src.migrate.verify import verify as verify_bundle
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage.paths import checkpoint_files
from graphsurgeon._src.storage.staging import StagingDir, check_destination, commit

PROGRESS_MIB = 64  # a migration writing less than this shows no progress


@dataclasses.dataclass
class MigrationResult:
    """What a migration did.

    Attributes:
      destination: the checkpoint prefix written (or that a dry run would write).
      mapping: ``{source path: {old name: new name}}``; dropped tensors are absent. A path merged again (a
        checkpoint merged into itself, or twice) is keyed ``PATH:PREFIX/`` from its second time on.
      cast: destination names of the tensors whose bytes were computed (casts, joined partitions).
      verified: the verification level that passed (``"sample"`` or ``"full"``), or ``""`` when nothing was
        verified (``verify="none"``, or a dry run).
      data: ``"linked"`` (the V2 sources' data files hard-linked and a new index, and, in one new data file
        beside them, the tensors computed or added: ``to="tf2"``'s object graph and save counter, and with
        ``link=True`` those cast, joined or read from V1 files) or ``"written"`` (one new data file holding
        exactly the destination's tensors); for a dry run, ``"would be linked"`` or ``"would be written"``.
      files: the files written, the index last (none for a dry run).
      swept: staging directories of killed migrations that were removed first.
      dropped: the source's names that the rules left out (``drop``, ``keep``, presets such as
        ``optimizer-slots``), sorted; for ``from_format="tf2"``, variables' names.
      dry_run: True when nothing was written (``dry_run=True``).
      not_carried_over: for ``from_format="tf2"``, the source's keys that hold no variable's value
        (its object graph ``_CHECKPOINTABLE_OBJECT_GRAPH``, ``save_counter/.ATTRIBUTES/VARIABLE_VALUE``,
        any other object state), sorted: none of them is in the destination (with ``to="tf2"``, the
        destination has an object graph and a ``save_counter`` of its own). For ``from_format="tf1"``,
        ``["_CHECKPOINTABLE_OBJECT_GRAPH"]`` when the source is object-based and its object graph was left
        out because it would not describe the destination (a key it names renamed, dropped, cast or
        joined, or ``to="tf2"``), else ``[]``.
      source_keys: ``{source path: {old name: its key in the source}}`` for the old names of
        ``mapping`` that are not their source's keys (``from_format="tf2"``: the variables' names).
      joined: with ``merge_partitions=True``, the destination names of the joined tensors (``[]``:
        the source had no ``name/part_N`` tensors to join); else None.
      not_cast: ``{destination name: dtype}`` of the tensors a ``cast`` rule matched that were copied as
        they are, not being floating point (an int64 ``global_step`` matched by ``'**'``).
      optimizer_state: for ``from_format="tf2"``, the destination names of the tensors carried over whose
        keys in the source hold optimizer state (``.OPTIMIZER_SLOT`` slots and ``optimizer/...`` keys: a Keras
        optimizer's slots, iterations and learning rate; ``presets=["optimizer-slots"]`` drops them), sorted;
        else None.
    """

    destination: str
    mapping: dict
    cast: list
    verified: str
    data: str
    files: list = dataclasses.field(default_factory=list)
    swept: list = dataclasses.field(default_factory=list)
    dropped: list = dataclasses.field(default_factory=list)
    dry_run: bool = False
    not_carried_over: list = dataclasses.field(default_factory=list)
    source_keys: dict = dataclasses.field(default_factory=dict)
    joined: list | None = None
    not_cast: dict = dataclasses.field(default_factory=dict)
    optimizer_state: list | None = None


def migrate(src: str, dst: str, rules: Rules | None = None, *, dry_run: bool = False, verify: str = "sample",
            link: bool | None = None, to: str = "tf1", from_format: str = "tf1",
            merge_partitions: bool = False, progress: bool = False) -> MigrationResult:
    """Write checkpoint ``dst`` from ``src`` (and ``rules.merge`` sources) through ``rules``.

    Args:
      src: a checkpoint prefix or directory (V2 or V1), or a SavedModel directory.
      dst: the destination prefix (or a directory: the base name of the source's checkpoint inside it,
        ``variables`` for a SavedModel's); it must not exist and must not be a source.
      rules: a :class:`Rules`.
      dry_run: plan only; nothing is written, not even a directory.
      verify: ``"sample"`` (default), ``"full"`` or ``"none"``; see :mod:`graphsurgeon._src.migrate.verify`.
      link: None (default): hard-link the sources' data files when the destination uses all of
        their bytes unchanged, else write one new data file holding only its tensors; True: always
        link (dropped tensors' bytes stay in the linked files; computed tensors go to a new file);
        False: always write a new data file.
      to: ``"tf1"`` (name-based) or ``"tf2"``: what ``tf.train.Checkpoint(vars={name: variable})``
        writes, so ``tf.train.Checkpoint(vars=...).restore(dst).assert_consumed()`` passes.
      from_format: ``"tf2"`` reads an object-based checkpoint (or a TF2 SavedModel's variables) by its variables'
        names, the optimizer's too (``optimizer_state``); its other objects are left out (``not_carried_over``).
        ``"tf1"`` reads any checkpoint by its keys; an object-based one's object graph is copied only
        when it and every key it names are copied unchanged under their own names (and not
        ``to="tf2"``), else it is left out and ``not_carried_over`` names it.
      merge_partitions: join ``name/part_0..part_N`` into one tensor ``name`` (along the first axis); the
        result's ``joined`` names the tensors joined.
      progress: show one progress bar on stderr (MiB written; a plain line every 10 s when stderr
        is not a terminal) while at least 64 MiB are written into the new data file.

    Returns:
      A :class:`MigrationResult`.

    Raises:
      MigrateError, ConfigError, PatternError, CorruptCheckpointError (the rules checked before ``dst``):
        nothing is left at ``dst`` (MigrateError: also no tensor left to write; ConfigError: also ``dst``
        cannot be written: a file above it, no permission, a read-only file system).
    """
    rules = rules or Rules()
    level = _check_arguments(verify, to, from_format, link)
    main = open_checkpoint(src)
    merges = [(open_checkpoint(path), prefix) for path, prefix in rules.merge]
    tensors = phases.plan(main, merges, rules, from_tf2=from_format == "tf2")
    tensors = phases.apply_casts(tensors, rules)
    if merge_partitions:
        tensors = phases.join_partitions(tensors)
    tensors, stale = phases.without_stale_object_graph(tensors, main, from_tf2=from_format == "tf2", to_tf2=to == "tf2")
    tensors, extra = phases.to_tf2_keys(tensors) if to == "tf2" else (tensors, [])
    given, dst = os.fspath(dst), _destination(dst, [main] + [m for m, _ in merges])
    if not dry_run:  # (the prefix as the user gave it, so that an error names their path)
        into = os.path.isdir(given) or given.endswith(os.sep)
        check_destination(os.path.join(given, os.path.basename(dst)) if into else given, f"destination {given}")
    result = _planned_result(tensors, dst, main, merges, from_tf2=from_format == "tf2", link=link, stale=stale)
    if merge_partitions:
        result.joined = sorted(p.new for p in tensors if p.action == "join")
    result.not_cast = {p.new: p.dtype.name for p in tensors
                       if not p.dtype.is_floating and not p.parts and rules.cast_of(p.old) is not None}
    if dry_run:
        result.dry_run, result.data = True, f"would be {result.data}"
    else:
        _write(tensors + extra, result, level, progress)
    return result


def _planned_result(tensors: list, dst: str, main, merges: list, *, from_tf2: bool, link,
                    stale: list) -> MigrationResult:
    """The result as planned: nothing written or verified yet (``stale``: the object graph left out)."""
    sources = [main] + [m for m, _ in merges]
    return MigrationResult(dst, phases.mapping_of(tensors, sources, phases.source_labels(main, merges)),
                           sorted(p.new for p in tensors if p.action != "copy"), "",
                           "linked" if should_link(tensors, link) else "written",
                           dropped=[n for n in phases.dropped_of(tensors, main, from_tf2=from_tf2) if n not in stale],
                           not_carried_over=phases.not_variables_of(main) if from_tf2 else stale,
                           source_keys=phases.source_keys_of(tensors),
                           optimizer_state=phases.optimizer_state_of(tensors, main) if from_tf2 else None)


def _write(tensors: list, result: MigrationResult, level: str, progress: bool) -> None:
    dst = result.destination
    link = result.data == "linked"
    mib = bytes_to_write(tensors, link=link) >> 20
    staging_dir = StagingDir(os.path.dirname(dst), "migrate")
    with staging_dir as staging, Progress(mib, "migrating", "MiB", enabled=progress and mib >= PROGRESS_MIB) as bar:
        result.swept = staging_dir.swept
        staged = os.path.join(staging, os.path.basename(dst))
        prefetch = Prefetch(tensors, level)  # the values verification compares with, computed meanwhile
        early = EarlyCheck(staged, prefetch) if level == "sample" else None  # the sampled bytes, checked meanwhile
        try:
            files = assemble(tensors, staged, link=link, progress=bar,
                             read_back=frozenset(p.new for p in sample(tensors)) if early else frozenset(),
                             preview=early.start if early else None)
            verify_bundle(staged, tensors, level, prefetch, early)
        finally:
            if early is not None:
                early.close()
            prefetch.close()
        moves = [(f, dst + f[len(staged):]) for f in files]
        commit(moves)
    result.files = [final for _, final in moves]
    result.verified = "" if level == "none" else level


def _check_arguments(verify, to: str, from_format: str, link) -> str:
    if verify is True or verify is False:  # the boolean of earlier versions
        verify = "sample" if verify else "none"
    if verify not in LEVELS:
        raise ConfigError(f"verify={verify!r}: expected one of {', '.join(map(repr, LEVELS))}")
    if to not in ("tf1", "tf2"):
        raise ConfigError(f"to={to!r}: expected 'tf1' or 'tf2'")
    if from_format not in ("tf1", "tf2"):
        raise ConfigError(f"from_format={from_format!r}: expected 'tf1' or 'tf2'")
    if link not in (None, True, False):
        raise ConfigError(f"link={link!r}: expected None, True or False")
    return verify


def _destination(dst: str, sources: list) -> str:
    """``dst`` as an absolute prefix (a directory receives the base name of the first source's prefix).

    Raises:
      MigrateError: it is a source, or a checkpoint is already there.
    """
    dst = os.fspath(dst)
    if os.path.isdir(dst) or dst.endswith(os.sep):
        dst = os.path.join(dst, os.path.basename(sources[0].prefix))
    dst = os.path.abspath(dst)
    if any(dst == os.path.abspath(s.prefix) for s in sources):
        raise MigrateError(f"destination {dst} is a source checkpoint; migrate never writes over its input")
    there = checkpoint_files(dst) or sorted(glob.glob(glob.escape(dst) + ".data-*"))
    if there:
        what = "a file of that name" if there[0] == dst else os.path.basename(there[0])
        raise MigrateError(f"destination {dst} already exists ({what} is there); choose another prefix")
    return dst
