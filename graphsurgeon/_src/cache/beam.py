"""Cache generation on Apache Beam (``graphsurgeon cache --runner beam``): the same files, more workers.

::

    driver: plan (as a local run) ──> Create(one task per new shard) ──> Reshuffle
      ──> ComputeShards: per worker, DoFn.setup restores the model once; per task, batched
          inference, the shard written under this attempt's temporary names
      ──> ToList ──> CommitShards (one final step): renames one attempt per shard into place,
          deletes every other attempt's files, lists the shards in the manifest
    driver: the data set's index and the final manifest (as a local run)

A worker killed mid-shard leaves only temporary files (``shard-NNNNN.npy.<attempt>.tmp``),
which are never renamed and which the commit (or the next run) deletes; a bundle a runner
retries writes under a new attempt name, and the commit takes one attempt per shard (they
hold the same bytes). Shards, keys, index and manifest are byte-identical to a local run's.
Apache Beam is an optional extra: ``pip install 'tf1-graphsurgeon[beam]'``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import sys
import threading
import time

from graphsurgeon._src import terminal
from graphsurgeon._src.cache.compute import Computer, Distortions, task_inputs
from graphsurgeon._src.cache.job import Settings, open_cut
from graphsurgeon._src.cache.state import interim_manifest
from graphsurgeon._src.errors import CacheError, ConfigError
from graphsurgeon._src.mixins import counted, listed
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage import cachefiles, cacheshards, records

# Importing Beam logs a warning through logging.warning(), which would first point the root logger
# at stderr (logging.basicConfig); a handler present for the import keeps stderr ours.
_quiet = logging.NullHandler()
logging.getLogger().addHandler(_quiet)
try:
    import apache_beam
    from apache_beam.options.pipeline_options import PipelineOptions
except ImportError:  # the optional extra is not installed: run() says how to install it
    apache_beam = None
finally:
    logging.getLogger().removeHandler(_quiet)

INSTALL = ("runner='beam' needs Apache Beam, an optional extra: pip install 'tf1-graphsurgeon[beam]' "
           "(or pip install apache-beam)")
DEFAULT_ARGS = ("--direct_running_mode=multi_processing", "--direct_num_workers=2",
                "--default_sdk_harness_log_level=ERROR")
_DoFn = apache_beam.DoFn if apache_beam is not None else object


@dataclasses.dataclass
class WorkerSpec:
    """What a worker needs to open the model and load inputs (small and picklable)."""

    settings: Settings        # data=None: workers load from ``loader`` and each task's refs
    loader: dict              # records.RecordSource.loader_spec
    distortions: Distortions | None


class ComputeShards(_DoFn):
    """Per worker: the model restored once (``setup``); per task: one shard, under temporary names."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec

    def setup(self):
        self._stack = contextlib.ExitStack()
        s = self.spec.settings
        cut = self._stack.enter_context(open_cut(s))
        self._computer = Computer(cut.model, cut.tensor, cut.feeder, cut.batch_size, s.dtype, self.spec.distortions)
        self._loader = records.open_loader(self.spec.loader)
        self._stack.callback(self._loader.close)

    def process(self, inputs):
        rows = self._computer.rows(self._loader, inputs)
        yield cacheshards.write_shard(self.spec.settings.out_dir, inputs.shard, rows, inputs.keys_record(),
                                      attempt=cachefiles.new_attempt())

    def teardown(self):
        self._stack.close()


class CommitShards(_DoFn):
    """The final step: one attempt per shard renamed into place, the rest deleted, the manifest updated."""

    def __init__(self, directory: str, head: dict, kept: list, augment):
        self.directory, self.head, self.kept, self.augment = directory, head, kept, augment

    def process(self, entries):
        committed = {}
        for e in sorted(entries, key=lambda e: (e["shard"], e["temp"])):
            if e["shard"] in committed:
                continue  # another attempt of the same shard (the same bytes): deleted below
            cacheshards.commit_shard(self.directory, e)
            committed[e["shard"]] = {k: v for k, v in e.items() if k != "temp"}
        all_entries = self.kept + list(committed.values())
        cachefiles.write_manifest(self.directory, interim_manifest(self.head, all_entries, self.augment))
        cachefiles.remove_leftovers(self.directory)
        yield len(committed)


def run(job, beam_args: list) -> list[dict]:
    """Compute ``job``'s shards on Beam; returns every shard entry of the cache (kept and new).

    Raises:
      ConfigError: Apache Beam is not installed.
      CacheError: the pipeline failed (one line: workers that cannot import graphsurgeon, a
        worker that died, or the first error a worker raised); nothing of it is committed.
    """
    if apache_beam is None:
        raise ConfigError(INSTALL)
    s, plan = job.settings, job.plan
    if not plan.tasks:
        return list(job.state.entries)
    spec = WorkerSpec(dataclasses.replace(s, data=None, progress=False), job.source.loader_spec,
                      job.computer.distortions)
    tasks = [task_inputs(job.source, t) for t in plan.tasks]
    commit = CommitShards(s.out_dir, job.head, list(job.state.entries), job.state.augment)
    options = PipelineOptions([*DEFAULT_ARGS, *beam_args])
    with terminal.workers_stderr(), _progress(s, plan) as watch:
        try:
            with apache_beam.Pipeline(options=options) as p:
                _ = (p | "tasks" >> apache_beam.Create(tasks) | "spread" >> apache_beam.Reshuffle()
                     | "compute" >> apache_beam.ParDo(ComputeShards(spec))
                     | "gather" >> apache_beam.combiners.ToList() | "commit" >> apache_beam.ParDo(commit))
        except Exception as e:  # noqa: BLE001 (any failure of the runner becomes one line)
            raise CacheError(describe_failure(e, s.out_dir)) from None
        job.startup = watch.finished()
    manifest = cachefiles.read_manifest(s.out_dir)
    done = {e["shard"] for e in manifest["shards"]} if manifest else set()
    missing = [t.shard for t in plan.tasks if t.shard not in done]
    if missing:
        raise CacheError(f"{s.out_dir}: the Beam pipeline finished without committing "
                         f"{listed('shard', missing, 5, count=True)}")
    return manifest["shards"]


def describe_failure(e: BaseException, directory: str) -> str:
    """One line for a failed pipeline."""
    text = str(e)
    m = re.search(r"No module named '(graphsurgeon[^']*)'", text)
    if m:
        return (f"the Beam workers cannot import graphsurgeon ({m.group(0)}): install tf1-graphsurgeon where they "
                "run (for example beam_args=['--setup_file=PATH/setup.py'], or a worker container that has it); "
                f"nothing was committed to {directory}")
    m = re.search(r"graphsurgeon\._src\.errors\.(\w+): ([^\n]+)", text)
    if m:
        return f"a Beam worker failed: {m.group(2).strip()} ({m.group(1)}); nothing was committed to {directory}"
    if "Channel closed prematurely" in text or "return code" in text or "Worker subprocess" in text:
        return (f"a Beam worker process died (killed, or out of memory) before the pipeline finished; nothing was "
                f"committed to {directory}: run the same command again to complete the cache")
    last = [line.strip() for line in text.splitlines() if line.strip()]
    return f"the Beam pipeline failed: {last[-1][:300] if last else type(e).__name__}; nothing was committed to {directory}"


class _Watch:
    """The progress bar of a pipeline, fed by the shards workers have finished (their keys files,
    still temporary), polled every ``EVERY`` seconds; ``first``: when the first one was seen."""

    EVERY = 0.25

    def __init__(self, s: Settings, plan):
        self.directory, self.rows = s.out_dir, {t.shard: len(t) for t in plan.tasks}
        if s.progress:  # the bar stays at 0 while the workers start: say why, before it is drawn
            sys.stderr.write(f"caching (beam): starting the workers for {counted(len(self.rows), 'shard')} (each "
                             "restores the model before its first one)\n")
            sys.stderr.flush()
        self.bar = Progress(plan.computed, "caching (beam)", "examples", enabled=s.progress)
        self.start, self.first, self.seen = time.monotonic(), None, set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True, name="graphsurgeon-beam-progress")

    def _poll(self):
        while not self.stop.wait(self.EVERY):
            for n in cachefiles.attempted_shards(self.directory) & set(self.rows) - self.seen:
                self.first = self.first or time.monotonic()
                self.seen.add(n)
                self.bar.update(self.rows[n])

    def finished(self) -> float:
        """The pipeline succeeded (every shard committed): the bar completed; returns the seconds
        from the start until the first shard was seen (until now if none was)."""
        self.stop.set()
        self.thread.join()
        self.bar.update(self.bar.total - self.bar.done)
        return (self.first or time.monotonic()) - self.start


@contextlib.contextmanager
def _progress(s: Settings, plan):
    """A :class:`_Watch` of ``s.out_dir`` while the pipeline runs."""
    watch = _Watch(s, plan)
    watch.thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        watch.thread.join()
        watch.bar.close()
