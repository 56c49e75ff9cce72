"""``generate``: build or complete a cache, in named phases.

::

    check settings, prove --out writable ─> open the cut (restore, input, feeds)
      ─> open the data ─> header ─> open the cache's state (stale? damaged? stored rows)
      ─> plan (rows to compute, shards, the data set's index) ─> random / batch-dependent check
         on the first batch to compute, recorded in the header (``checks``)
      ─> compute the shards (here, or on Apache Beam) ─> commit (index, manifest, clean-up)
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib
import os
import time

from graphsurgeon._src.cache.checks import check_recorded, record, unchecked_notes
from graphsurgeon._src.cache.commit import (
    CacheReport,
    changes,
    commit,
    final_manifest,
    unreferenced_rows,
)
from graphsurgeon._src.cache.compute import Computer, Distortions, task_inputs
from graphsurgeon._src.cache.job import Settings, make_header, open_cut, open_data
from graphsurgeon._src.cache.plan import make_plan
from graphsurgeon._src.cache.state import interim_manifest, open_state
from graphsurgeon._src.errors import CacheError, ConfigError
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage import cachefiles
from graphsurgeon._src.storage.shardbatch import ShardBatch
from graphsurgeon._src.storage.staging import check_destination

MANIFEST_EVERY = 2.0  # seconds between manifest updates while shards are computed
RUNNERS = ("local", "beam")


@dataclasses.dataclass
class Job:
    """Everything a runner needs to compute a run's shards."""

    settings: Settings
    cut: object       # job.Cut
    source: object    # records.RecordSource
    head: dict
    state: object     # state.State
    plan: object      # plan.Plan
    computer: Computer
    notes: list = dataclasses.field(default_factory=list)  # checks the record holds as not run, and why
    startup: float | None = None  # set by the beam runner: seconds until its workers' first shard


def generate(model_path: str, cut: str, data, out_dir: str, *, input: str | None = None, feeds=None,
             batch_size: int | None = None, dtype: str = "float32", augment: int = 0, augment_params=None,
             seed: int = 0, shard_size: int = 4096, repair: bool = False, allow_random: bool = False,
             allow_batch_dependent: bool = False, allow_cast: bool = False, allow_unsafe_ops: bool = False,
             image_scale: str = "unit", tags=("serve",), progress: bool = True, runner: str = "local",
             beam_args=(), **source_args) -> CacheReport:
    """Compute (or complete) the cache of the tensor ``cut`` over ``data`` in ``out_dir``.

    Args:
      model_path: any path :func:`graphsurgeon.restore` accepts.
      cut: the cut point: the name of the tensor cached (the top frozen layer's output).
      data: ``.npz``, image folder, TFRecord file or glob
        (:func:`graphsurgeon._src.storage.records.open_source`, which takes ``source_args``), or a
        ``RecordSource``. The cache's index becomes this data set's: examples it does not hold
        are no longer read (their rows stay stored), labels and splits are this data's.
      input: the tensor fed with the data: a placeholder, or any tensor (a queue's dequeue output),
        which is then replaced by a placeholder (see :func:`graphsurgeon.restore`); default: the one
        placeholder upstream of ``cut`` that ``feeds`` does not cover.
      feeds: values of the other placeholders ``cut`` needs (see :mod:`graphsurgeon._src.feeds`);
        they are part of the cache's fingerprint.
      batch_size: examples per ``session.run``: the batch the graph's static shapes fix if they do
        (the last batch is padded and the padding dropped), else this, else 256.
      augment: K distorted copies of every training image (flip, crop, scale, brightness as
        retrain.py's flags, ``augment_params`` overriding ``AUGMENT_DEFAULTS``), drawn from
        ``seed`` and each image's content hash, so they are the same on every run.
      shard_size: rows per shard (a multiple of ``batch_size`` keeps batches inside shards).
      repair: recompute shards whose files do not match the manifest (and rebuild a damaged index
        of the data set, which every run rebuilds anyway) instead of raising.
      allow_random, allow_batch_dependent: cache a tensor whose values differ between runs on one
        batch (dropout with ``keep_prob`` baked in) or depend on the other examples of its batch
        (batch statistics) anyway. The first batch to compute is run as
        :mod:`graphsurgeon._src.cache.checks` says (nothing is run when no row is computed); what it
        found goes into the manifest's ``checks`` (``random``, ``batch_dependent``: true, false,
        or null for not checked), which ``retrain --cache`` reads.
      allow_cast, allow_unsafe_ops: as :func:`graphsurgeon.restore`.
      runner: ``local``, or ``beam`` (Apache Beam, the optional extra ``[beam]``; ``beam_args`` are
        its pipeline options, default ``--direct_running_mode=multi_processing
        --direct_num_workers=2``): the same files either way.

    Side effects: creates ``out_dir`` and writes shards, the index and ``manifest.json`` in it;
    removes temporary files an interrupted run left there and files of the cache's own name
    patterns the manifest does not list. Never touches the model's files or the data.

    Raises:
      ConfigError: ``out_dir`` a file, or not makeable there (a file above it, no permission, a read-only
        file system: see ``check_destination``). CacheError: ``out_dir`` not writable otherwise, a stale
        cache (naming what changed), a damaged shard or index without ``repair``, a damaged manifest, a
        write that fails during the run (the directory deleted, the disk full).
      RandomTensorError, BatchDependentError (``ConfigError``): the tensor is random or depends on its
        batch-mates (as this run's check or the cache's record says), unless allowed. ConfigError: bad settings.
      DataError: unreadable data.
    """
    start = time.perf_counter()
    s = Settings(model_path, cut, data, out_dir, input, feeds, batch_size, dtype, augment, augment_params, seed,
                 shard_size, repair, allow_random, allow_batch_dependent, allow_cast, allow_unsafe_ops, image_scale,
                 tuple(tags), progress, source_args)
    s.check()
    run = _runner(runner, beam_args)
    with cachefiles.created_dir(out_dir):  # a run that fails leaves no directory it made
        return _generate(s, run, start)


def _generate(s: Settings, run, start: float) -> CacheReport:
    out_dir = s.out_dir
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"out_dir={out_dir} exists and is not a directory")
    check_destination(out_dir, f"out_dir={out_dir}")  # before anything is restored or run, as other outputs
    cachefiles.check_writable(out_dir)
    with cachefiles.lock(out_dir), open_cut(s) as cut:
        source = open_data(s, cut)
        try:
            job = _prepare(s, cut, source)
            with _writing(out_dir):
                entries = run(job)
                manifest = final_manifest(out_dir, job.head, entries, job.plan, source, s.augment)
                commit(out_dir, manifest)
        finally:
            source.close()
    return CacheReport(out_dir, job.plan.computed, job.plan.reused, len(job.plan.tasks), job.state.repaired,
                       time.perf_counter() - start, len(job.plan.view), unreferenced_rows(manifest, job.plan),
                       changes(job.state.previous, manifest), dict(job.head["checks"]), job.notes, job.startup)


@contextlib.contextmanager
def _writing(out_dir: str):
    """Turn a failed write (the directory deleted or its disk full while the run writes) into one
    :class:`CacheError`; what was renamed into place before it stays valid for the next run."""
    try:
        yield
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise CacheError(f"cache directory {out_dir}: a write failed while caching: {e.strerror or e}{where}; "
                         "nothing half-written is ever read: run the same command again to complete the cache"
                         ) from None


def _runner(name: str, beam_args):
    if name not in RUNNERS:
        raise ConfigError(f"runner={name!r}: expected one of {', '.join(RUNNERS)}")
    if name == "local":
        return run_local
    beam = importlib.import_module("graphsurgeon._src.cache.beam")  # an optional dependency, loaded when asked
    if beam.apache_beam is None:
        raise ConfigError(beam.INSTALL)  # before anything is restored or written
    return lambda job: beam.run(job, list(beam_args))


def _prepare(s: Settings, cut, source) -> Job:
    """Header, state and plan; the batch-independence check on the first batch to compute."""
    head = make_header(s, cut, source)
    state = open_state(s.out_dir, head, s.repair)
    head = dict(head, augment=state.augment)  # the stored copies' settings outlive runs without copies
    plan = make_plan(source, s.augment, state.known, s.shard_size, state.first_shard)
    distortions = Distortions(_without_seed(state.augment), state.augment["seed"]) if s.augment else None
    computer = Computer(cut.model, cut.tensor, cut.feeder, cut.batch_size, s.dtype, distortions, buffers=2)
    found = computer.check_values(source.loader, task_inputs(source, plan.tasks[0]), allow_random=s.allow_random,
                                  allow_batch_dependent=s.allow_batch_dependent) if plan.tasks else None
    checks = record(state.previous, found)
    check_recorded(s.out_dir, cut.tensor.name, checks, allow_random=s.allow_random,
                   allow_batch_dependent=s.allow_batch_dependent)
    notes = unchecked_notes(cut.tensor.name, checks, found)
    return Job(s, cut, source, dict(head, checks=checks), state, plan, computer, notes)


def _without_seed(augment: dict) -> dict:
    return {k: v for k, v in augment.items() if k != "seed"}


def run_local(job: Job) -> list[dict]:
    """Compute the plan's shards in this process, one after the other, each written by a writer
    thread while the next is computed and made durable with the others of its batch
    (:class:`~graphsurgeon._src.storage.shardbatch.ShardBatch`); when a batch becomes durable, the
    manifest is rewritten to list it unless it was rewritten less than ``MANIFEST_EVERY`` seconds
    before (then a later batch's rewrite lists it; all of them are listed at the end).

    Returns:
      Every shard entry of the cache (kept and new).
    """
    s, plan = job.settings, job.plan
    entries = list(job.state.entries)
    bar = Progress(plan.computed, "caching", "examples", enabled=s.progress)
    batch = ShardBatch(s.out_dir)
    last, pending = None, None
    try:
        # one write in flight: the computer's two buffers hold the shard being written and the next
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shard-writer") as writer:
            for task in plan.tasks:
                inputs = task_inputs(job.source, task)
                rows = job.computer.rows(job.source.loader, inputs, bar.update)
                if pending is not None:
                    durable = pending.result()
                    entries.extend(durable)
                    if durable and (last is None or time.monotonic() - last >= MANIFEST_EVERY):
                        cachefiles.write_manifest(s.out_dir, interim_manifest(job.head, entries, job.state.augment))
                        last = time.monotonic()
                pending = writer.submit(batch.write, task.shard, rows, inputs.keys_record())
            if pending is not None:
                entries.extend(pending.result())
            entries.extend(batch.flush())
    finally:
        batch.close()
        bar.close()
    return entries
