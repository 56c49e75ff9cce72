"""The tensor the new head reads must give each example one answer, or the export will not.

Before anything trains, :func:`check_head_input` runs the cut (with ``output``, the logits
fine-tuned) on the first batch of the training data, fed as the exported model will be fed
(the inference ``feeds``, which the export keeps as the placeholders' defaults): the same batch
twice, then its first example alone (see :mod:`graphsurgeon._src.determinism`); a cut with another
number of rows than the batch (a time-major tensor reshaped to ``[time * batch, units]``) is refused
first. Dropout whose ``keep_prob`` placeholder is fed 1.0, or is a ``placeholder_with_default(1.0)``,
passes: its runs agree. Dropout with ``keep_prob`` baked in as a constant does not, nor does a batch norm
over the batch (``tf.nn.moments``), unless ``allow_random`` / ``allow_batch_dependent``.

From a cache, the batch is the cache's first rows, fed at the cached tensor: the run covers the
layers above it. The layers below ran once, in the cache, which ran the same check there and
recorded in its manifest what it found (``checks``: :mod:`graphsurgeon._src.cache.checks`); a
tensor it found random, or dependent on its batch-mates, was cached only with ``allow_random`` /
``allow_batch_dependent``, and retrain refuses that cache unless given the same flag, since the
exported model runs those layers on every call (:func:`cached_notes`). A cache made before the
record existed (no ``checks`` in its manifest) is judged by a graph scan below the cached tensor:
any random op needs ``allow_random`` (such a cache refused any random op without it), and any op
that may mix a batch needs ``allow_batch_dependent`` (its cache may have been made with it). So is
a finding the record gives as null (not checked: a run that computed no row into a cache without
a record; the batch-mates of a first batch of one row), except the batch-mates of a random tensor.
"""
from __future__ import annotations

import dataclasses

from graphsurgeon._src.determinism import (
    axis0_doubt,
    batch_accepted,
    batch_mixing_ops,
    batch_refusal,
    batch_unchecked,
    dropout_example,
    mixing_phrase,
    ops_phrase,
    probe,
    random_ops_upstream,
    random_refusal,
    random_seen,
    rows_not_examples,
    them,
)
from graphsurgeon._src.errors import BatchDependentError, ConfigError, RandomTensorError
from graphsurgeon._src.mixins import counted, series


@dataclasses.dataclass
class HeadInput:
    """What :func:`check_head_input` found about ``tensor``, the tensor the head reads (or the
    logits fine-tuned): ``random`` (two runs on one batch differed), ``batch_dependent`` (the first
    example alone differed; None: not checked), the ``random_ops`` upstream of it (a graph scan:
    dropout fed 1.0 still holds one; one inside a function is named ``NAME in function 'F' called by
    op 'OP'``), and ``notes``: one sentence per finding the run accepted, and one when the first batch held
    a single example, so that whether ``tensor`` depends on its batch-mates was not checked."""

    tensor: str
    examples: int
    random: bool
    batch_dependent: bool | None
    random_ops: list
    notes: list = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_head_input(cfg, setup, feeder, x, cache=None) -> HeadInput:
    """Check the tensor ``setup`` cuts at (see the module docstring) on batch ``x`` fed by ``feeder``
    (at the input, or at the cached tensor when training from ``cache``, a
    :class:`graphsurgeon._src.cache.CacheReader`).

    Raises:
      RandomTensorError: the runs differ (or, from a cache, the cache's tensor is random as its
        manifest records, or random ops lie below a cache that predates the record), unless
        ``cfg.allow_random``.
      BatchDependentError: the first example alone gives other values than in its batch (or, from
        a cache, as for random), unless ``cfg.allow_batch_dependent``.
      ConfigError: the tensor's axis 0 has another length than the batch fed.
    """
    model = setup.model
    t = model.tensor(setup.cut)
    what = "output" if not cfg.head else "the head's input"
    ops = random_ops_upstream(model, t.name)
    notes = cached_notes(cfg, model, cache, setup.input.op.name) if cache is not None else []
    p = probe(model, t, feeder, x, first=_one_row_per_example(model, t, feeder, x, what))
    if p.random:
        if not cfg.allow_random:
            raise RandomTensorError(random_refusal(model, t, feeder, p, ops, what, "cut below {them}"))
        notes.append(f"{what} '{t.name}' is random ({random_seen(p)}; {ops_phrase(ops)}): accepted by "
                     "allow_random=True; the exported model's answers differ call to call, and whether they depend "
                     "on the batch was not checked")
    if p.batch_dependent:
        if not cfg.allow_batch_dependent:
            raise BatchDependentError(batch_refusal(model, t, feeder.input, what))
        notes.append(batch_accepted(model, t, feeder.input, what))
    elif p.batch_dependent is None and not p.random:  # nothing to compare the first example with
        notes.append(batch_unchecked(f"{what} '{t.name}'",
                                     f"the first training batch holds {counted(p.examples, 'example')}"))
    return HeadInput(t.name, p.examples, bool(p.random), p.batch_dependent, ops, notes)


def _one_row_per_example(model, t, feeder, x, what: str):
    """``t``'s values on batch ``x`` (its real rows); raises :class:`ConfigError` when its axis 0 has
    another length than the batch fed (:func:`~graphsurgeon._src.determinism.rows_not_examples`)."""
    feed, n = feeder.feed(x)
    values = model.session.run(t, feed)
    wrong = rows_not_examples(model, t, feeder, feed, values)
    if wrong:
        raise ConfigError(f"{what} {wrong}, and a head needs one row per example; cut where axis 0 is the batch")
    return values[:n]


def cached_notes(cfg, model, cache, input_op: str) -> list[str]:
    """What lies below ``cache``'s tensor (see the module docstring): one note per finding the flags
    accept. Raises :class:`RandomTensorError` / :class:`BatchDependentError` for one they do not."""
    cut, where, checks = cache.cut, cache.directory, cache.manifest.get("checks")
    rand, mixing = random_ops_upstream(model, cut), batch_mixing_ops(model, cut, input_op)
    ops, cached = ops_phrase(rand) if rand else "random ops", f"{where}: the cached tensor '{cut}'"
    if checks is None:  # a cache made before the record: what the graph says
        checks = {"random": bool(rand), "batch_dependent": bool(mixing)}
        rand_text = (f"depends on {ops} (its cache was made with allow_random=True, before caches recorded their "
                     f"checks: whether a feed makes {them(rand)} deterministic was not recorded, and a cache cannot "
                     f"run {them(rand)})")
        mixed = batch_unchecked(cached, "its cache was made before caches recorded their checks, maybe with "
                                "allow_batch_dependent=True", mixing)
    else:
        rand_text = (f"is random ({ops}; its cache run found its values differ between runs on one batch and was "
                     "given allow_random=True)")
        mixed = (f"{cached} depends on the other examples in its batch ("
                 + (f"through {series(mixing, 3)}; " if mixing else "")
                 + "its cache run found it and was given allow_batch_dependent=True)")
        # recorded as not checked (a run that computed no row into a cache without a record; a first batch of one
        # row): the graph decides, as without a record (a random tensor's batch-mates are not checked, as above)
        unchecked = checks["random"] is None
        if unchecked:
            checks = dict(checks, random=bool(rand))
            rand_text = f"depends on {ops} (its cache's record says no run checked whether it is random)"
        if checks["batch_dependent"] is None and (unchecked or not checks["random"]):
            checks = dict(checks, batch_dependent=bool(mixing))
            mixed = batch_unchecked(cached, "its cache's record says no run checked whether it depends on its "
                                    "batch-mates", mixing)
    notes = []
    if checks["random"]:
        if not cfg.allow_random:
            raise RandomTensorError(f"{cached} {rand_text}: the exported model runs {them(rand)} on every call; pass "
                                    "allow_random=True to accept it, or train from the data")
        notes.append(f"{cached} {rand_text}: accepted by allow_random=True; the exported model runs {them(rand)} on "
                     "every call")
    if checks["batch_dependent"]:
        if not cfg.allow_batch_dependent:
            raise BatchDependentError(
                f"{mixed}: the exported model's answer for an example would depend on the examples served with "
                "it; pass allow_batch_dependent=True to accept it, or train from the data")
        notes.append(f"{mixed}: accepted by allow_batch_dependent=True; the exported model's answer for an example "
                     "depends on the examples served with it")
    return notes


def plan_notes(cfg, model, cut: str, inp, fixed: int | None) -> list[str]:
    """What the graph alone says about the run of ``cfg`` (the dry-run plan runs nothing): random
    ops and ops that may mix a batch below the tensor ``cut`` fed at ``inp`` (the run checks them as
    :func:`check_head_input` says); a batch the graph fixes (the export's signature declares only that
    size), or that axis 0 of ``cut`` may not be the batch (:func:`~graphsurgeon._src.determinism.axis0_doubt`)."""
    notes, input_op = [], inp.op.name
    ops = random_ops_upstream(model, cut)
    if ops:
        notes.append(f"'{cut}' depends on {ops_phrase(ops)}: retrain runs it twice on the first "
                     "training batch, fed as the export is fed, and refuses it if the runs differ"
                     + dropout_example(ops) + ("; allow_random=True accepts it" if cfg.allow_random else
                                              " unless allow_random=True"))
    mixing = batch_mixing_ops(model, cut, input_op)
    if mixing:
        notes.append(f"'{cut}' {mixing_phrase(mixing)}: retrain runs the first training example alone and "
                     "refuses the cut if its values change (batch statistics)" + ("; allow_batch_dependent=True accepts it" if cfg.allow_batch_dependent else
                                      " unless allow_batch_dependent=True"))
    doubt = axis0_doubt(model, cut, inp)
    if doubt:
        size = f", and its static size for a batch the graph fixes (it trains on batches of {fixed})" if fixed else ""
        notes.append(f"axis 0 of '{cut}' may not be the batch ({doubt}, a guess from the graph): retrain takes it for "
                     f"the batch{size} and refuses the cut if the first training example alone gives other values "
                     "than in its batch" + ("; allow_batch_dependent=True accepts it" if cfg.allow_batch_dependent else
                                            " unless allow_batch_dependent=True"))
    elif fixed:
        notes.append(f"the graph fixes the batch at {fixed} in its static shapes: retrain trains on batches of "
                     f"{fixed}, and the exported model's signature declares batches of exactly {fixed} examples "
                     "(Session.run, and so saved_model_cli run, refuses other sizes)")
    return notes
