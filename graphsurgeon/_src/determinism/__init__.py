"""Does a tensor give each example one value? Two ways it may not, and how each is found.

* *Random*: it depends on random ops (dropout's mask, noise), so two runs on the same batch
  differ. A graph scan names the random ops upstream, in the graph and inside the functions its
  ops call (:func:`random_ops_upstream`, :mod:`.scan`), but only a run tells whether the feeds
  make them harmless: dropout whose ``keep_prob`` placeholder is fed 1.0 (or is a
  ``placeholder_with_default(1.0)``) still holds a ``RandomUniform`` op and gives the same values
  every run. Two ordinary runs can agree by chance (dropout with ``keep_prob`` 0.999 drops none
  of 16 values with probability 0.98), so when they agree, the random ops upstream whose outputs
  can be fed (``RandomUniform``, ``RandomStandardNormal``, ``TruncatedNormal``; not ops inside a
  ``while`` loop, such as ``dynamic_rnn``'s dropout, nor ops inside functions, such as the
  branches of a TensorFlow 2 ``tf.cond``) are fed two far-apart draws they can make
  (:data:`DRAWS`), all at once (one at a time when TensorFlow refuses that), and the two results compared: any
  ``keep_prob`` below 1 then drops every value in one run and none in the other. What still passes: randomness that other
  ops upstream (``RandomUniformInt``, ``Multinomial``, ``RandomShuffle``, ops in a loop or a
  function) bring in and two runs do not show, and a tensor that agrees at both draws but not
  between them.
* *Batch-dependent*: an example's value changes with the other examples of its batch (batch
  statistics: ``tf.nn.moments`` over the batch, batch norm in training mode). Found by running
  the batch's first example alone (repeated to the batch a graph fixes) and comparing;
  :func:`batch_mixing_ops` names the ops likely responsible. A tensor whose axis 0 is not the
  batch (a time-major RNN's ``[time, batch, units]``) changes too: :func:`axis0_doubt` guesses when
  that may be so, and :func:`mixing` then says it instead.

:func:`probe` runs both checks on one batch: the same batch twice, then its first example alone.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from graphsurgeon._src.determinism.scan import (
    RANDOM_OPS,
    axis0_doubt,
    batch_mixing_ops,
    random_ops_upstream,
    rate_feeds,
)
from graphsurgeon._src.mixins import agree, listed, plural, series

__all__ = ["DRAWS", "RANDOM_OPS", "SERVED_DOES", "SERVED_WOULD", "Mixing", "Probe", "axis0_doubt", "batch_accepted", "batch_mixing_ops", "batch_refusal",
           "batch_unchecked", "below_phrase",
           "drawn_phrase", "dropout_example", "exactly", "feed_hint",
           "feedable_draws", "feeds_text", "highest_uniform", "mixing", "mixing_phrase", "ops_phrase", "probe", "random_guess", "random_refusal", "random_ops_upstream", "random_phrase", "random_seen",
           "rate_feeds", "rows_not_examples", "same", "them"]

# Two far-apart values each of these random ops can draw, fed in place of its output by the
# second check of :func:`probe` (RandomUniform draws from [0, 1): its lowest and highest values, the
# highest given by :func:`highest_uniform`; the normal ones are fed values well inside what they draw).
DRAWS = {"RandomUniform": (0.0, None), "RandomStandardNormal": (-3.0, 3.0), "TruncatedNormal": (-1.9, 1.9)}
# The fraction bits of the floating-point dtypes RandomUniform draws in.
FRACTION_BITS = {"float16": 10, "bfloat16": 7, "float32": 23, "float64": 52}


@dataclasses.dataclass
class Probe:
    """What :func:`probe` found about ``tensor`` (its name) on one batch of ``examples`` rows.

    ``random``: two runs on the batch differed (None: not checked); ``random_by``: how it was seen:
    ``"runs"`` (two ordinary runs differed) or ``"draws"`` (they agreed; runs with the random ops
    fed two far-apart draws did not). ``batch_dependent``: the first example's value changed when
    run alone (None: not checked: a batch of one row, or a random tensor, whose runs differ anyway).
    ``identical``: the two ordinary runs gave the same values exactly (None: not checked); runs that
    differ by less than :func:`same` allows are not ``random`` by ``"runs"``, but not identical. ``drawn``: how many
    random ops were fed the far-apart draws in the runs that differed, of the ``named`` random ops upstream
    (:func:`random_ops_upstream`, what messages name; both 0 unless ``random_by`` is ``"draws"``)."""

    tensor: str
    examples: int
    random: bool | None
    batch_dependent: bool | None
    random_by: str | None = None
    identical: bool | None = None
    drawn: int = 0
    named: int = 0


def same(a, b) -> bool:
    """True when two values of a tensor agree to float32 rounding of a different batch or order of
    summation (relative 1e-3, absolute 1e-5 of the largest finite magnitude); NaNs agree where both
    have one, infinities where both have the same one; complex values part by part."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        a, b = np.stack([a.real, a.imag]), np.stack([b.real, b.imag])
    a, b = a.astype(np.float64), b.astype(np.float64)
    scale = np.abs(a[np.isfinite(a)]).max(initial=0.0)
    return bool(np.allclose(a, b, rtol=1e-3, atol=1e-5 * (1.0 + scale), equal_nan=True))


def identical(a, b) -> bool:
    """True when two values of a tensor are equal element for element (NaNs equal where both have one)."""
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc"))


def probe(model, t, feeder, x, *, first=None, random: bool = True) -> Probe:
    """Run tensor ``t`` on batch ``x`` (fed by ``feeder``, a :class:`graphsurgeon._src.feeds.Feeder`,
    with its other placeholders' values): when ``random``, twice (do the runs agree?) and, if they
    agree, with the random ops upstream fed two far-apart draws (see the module docstring); then
    the first example alone (padded to a batch the graph fixes by repeating it: does its value
    change?). ``first``: ``t``'s values on ``x`` when already computed (one run fewer)."""
    feed, n = feeder.feed(x)
    run = (lambda f, fetch=t: model.session.run(fetch, f))
    a = run(feed)[:n] if first is None else first
    by = identical_runs = None
    drawn = named = 0
    if random:
        b = run(feed)[:n]
        identical_runs = identical(a, b)
        if not same(a, b):
            by = "runs"
        else:
            fed = _changing_draws(run, t, feed, n, feedable_draws(model, t.name))
            if fed:
                by, drawn, named = "draws", len(fed), len(random_ops_upstream(model, t.name))
    differs = by is not None if random else None
    dependent = None
    if len(x) >= 2 and not differs:
        alone, _ = feeder.feed(x[:1])
        dependent = not same(a[0], run(alone)[0])
    return Probe(t.name, len(x), differs, dependent, by, identical_runs, drawn, named)


def exactly(p: Probe) -> Probe:
    """``p`` judged for a tensor to which nothing a batch could reorder adds (a head): two ordinary runs that are
    not identical (:func:`identical`; :func:`same` let them agree) make it random, seen by ``"runs"`` whatever the
    far-apart draws then showed (``drawn`` and ``named`` 0 and ``batch_dependent`` None, as for a tensor whose runs
    differed); otherwise ``p`` itself. ``p`` is not changed: it keeps what each check found."""
    if p.identical is False and p.random_by != "runs":
        return dataclasses.replace(p, random=True, random_by="runs", batch_dependent=None, drawn=0, named=0)
    return p


def feedable_draws(model, tensor: str) -> list:
    """``[(output, (low, high))]`` of the random ops upstream of ``tensor`` that :data:`DRAWS` names
    and whose output the graph lets be fed and fetched; ``high`` None: :func:`highest_uniform` of the
    output's dtype. (An op inside a ``while`` loop may be listed; feeding it fails when run.)"""
    g, out = model.graph, []
    for name in random_ops_upstream(model, tensor, functions=False):
        op = g.get_operation_by_name(name)
        if op.type in DRAWS and g.is_feedable(op.outputs[0]) and g.is_fetchable(op):
            out.append((op.outputs[0], DRAWS[op.type]))
    return out


def _changing_draws(run, t, feed, n, draws) -> list:
    """The ops of ``draws`` whose far-apart draws change ``t`` (those fed in the runs where it differed), ``[]``
    when none did: first every op of ``draws`` fed its low value in one run and its high value in another (all of
    ``draws`` when ``t`` differs); if TensorFlow refuses to run that (a tensor it will not feed; a run that fails at those values,
    such as a ``check_numerics`` of the log of what they all drop), each op alone, the others drawing as usual,
    until one makes ``t`` differ (``[that op]``); an op it refuses alone counts as no difference."""
    def differ(group):
        try:
            drawn = run(feed, [d for d, _ in group])  # the shapes this batch gives them
            low, high = (run(_fed(feed, group, drawn, side)) for side in (0, 1))
        except (tf.errors.OpError, ValueError, TypeError):
            return None
        return not same(low[:n], high[:n])

    if not draws:
        return []
    together = differ(draws)
    if together is not None or len(draws) == 1:
        return list(draws) if together else []
    return next(([d] for d in draws if differ([d])), [])


def _fed(feed: dict, group: list, drawn: list, side: int) -> dict:
    out = dict(feed)
    for (tensor, values), d in zip(group, drawn):
        v = values[side]
        if v is None:
            v = highest_uniform(d.dtype)
        out[tensor] = np.full(np.shape(d), v, d.dtype)
    return out


def highest_uniform(dtype) -> float:
    """The largest value ``RandomUniform`` draws in ``dtype`` (a floating-point dtype of
    :data:`FRACTION_BITS`), ``1 − 2**-m`` for ``m`` fraction bits (``1 − 2**-23`` in float32): it draws
    the fraction bits of a number in [1, 2) and subtracts 1. Not the largest value below 1 (``1 −
    2**-24`` in float32): old-style dropout's ``floor(keep_prob + u)`` (older TensorFlow 1.x's ``tf.nn.dropout``
    wrote it) would take ``1 + u`` to 2.0 at ``keep_prob`` 1, where ``1 + (1 − 2**-m) = 2 − 2**-m``
    exactly, so its mask is 1 at both draws (and 0, then 1, at any ``keep_prob`` from ``2**-m`` to below 1)."""
    return 1.0 - 2.0 ** -FRACTION_BITS[tf.as_dtype(dtype).name]


def them(ops: list) -> str:
    """``it`` for one op of ``ops``, else ``them`` (none: :func:`ops_phrase`'s random ops the scan does not name)."""
    return agree(len(ops), "it", "them")


def ops_phrase(ops: list) -> str:
    """``random op A`` or ``random ops A, B, C`` for messages (``ops``: :func:`random_ops_upstream`'s; of more than
    three, the first three and `` …``); when the scan named none (the runs differ anyway), where they may be."""
    if ops:
        return listed("random op", ops, 3)
    return "random ops the graph scan does not name (of a kind outside its list)"


def drawn_phrase(p: Probe) -> str:
    """The random ops ``p`` fed the far-apart draws: ``its random op``, ``its random ops``, or, when fewer were
    fed than the scan names, ``1 of its random ops``, ``2 of its 3 random ops``."""
    if p.drawn >= p.named:
        return f"its {plural('random op', p.drawn)}"
    return "1 of its random ops" if p.drawn == 1 else f"{p.drawn} of its {p.named} random ops"


def random_phrase(p: Probe | None, verb: str = "differs between", batch: str = "the same batch") -> str:
    """How ``p`` saw a random tensor, for messages (after its name): ``differs between two runs on the same
    batch``, or ``differs between runs on the same batch with its random op fed two far-apart draws (two
    ordinary runs agreed)``; ``verb`` and ``batch`` word it for another subject (``answered differently in``, ``the
    same probe features``); ``p`` None: two ordinary runs differed where no probe ran."""
    if p is not None and p.random_by == "draws":
        return (f"{verb} runs on {batch} with {drawn_phrase(p)} fed two far-apart draws (two ordinary runs "
                "agreed)")
    return f"{verb} two runs on {batch}"


def random_seen(p: Probe) -> str:
    """How ``p`` saw a random tensor, for the note of a run that accepted it: ``two runs on one batch
    differed``, or ``runs on one batch with its random op fed two far-apart draws differed`` (``ops`` for more,
    ``1 of its random ops`` when fewer were fed than the scan names)."""
    if p.random_by == "draws":
        return f"runs on one batch with {drawn_phrase(p)} fed two far-apart draws differed"
    return "two runs on one batch differed"


def feeds_text(feeds: dict) -> str:
    """`` (keep_prob fed 0.5)``: the placeholders' values, for messages (shapes of larger values)."""
    shown = [f"{n} fed {np.asarray(v).item() if np.asarray(v).size == 1 else list(np.shape(v))}"
             for n, v in sorted(feeds.items())]
    return f" ({', '.join(shown)})" if shown else ""


def random_guess(model, ops: list, feeder) -> str:
    """What a random tensor's refusal guesses of its random ``ops`` (:func:`random_ops_upstream`):
    when placeholders ``feeder`` feeds set their rate (:func:`rate_feeds`: a ``keep_prob`` fed 0.5),
    `` (their rate is read from the fed keep_prob)`` (``its rate`` for one op); else, when one of them is in a dropout scope
    (:func:`dropout_example`), `` (dropout with keep_prob baked in?)``; else ``''``."""
    rates = rate_feeds(model, ops, feeder.values, feeder.input.op.name)
    if rates:
        return f" ({agree(len(ops), 'its', 'their')} rate is read from the fed {', '.join(rates)})"
    return " (dropout with keep_prob baked in?)" if dropout_example(ops) else ""


def random_refusal(model, t, feeder, p: Probe, ops: list, what: str, instead: str,
                   so: str = "the exported model would answer differently on every call") -> str:
    """The refusal of a random tensor ``t`` (``p`` found it random on a batch fed by ``feeder``; ``ops``:
    :func:`random_ops_upstream`): ``WHAT 'T' differs between two runs on the same batch: it depends on
    random ops …, so SO; INSTEAD, or pass allow_random=True`` (retrain's and the continual commands'
    one wording; ``SO`` by default: the exported model would answer differently on every call; ``{them}`` in
    ``INSTEAD`` becomes :func:`them`: ``cut below {them}`` says ``cut below it`` for one op)."""
    return (f"{what} '{t.name}' {random_phrase(p)}{feeds_text(feeder.values)}: it depends on {ops_phrase(ops)}"
            f"{random_guess(model, ops, feeder)}, so {so}; "
            f"{instead.format(them=them(ops))}{feed_hint(feeder.values, ops)}, or pass allow_random=True")


def dropout_example(ops: list) -> str:
    """`` (dropout with keep_prob baked in)``, the example a note gives of what makes runs differ, when
    one of the random ``ops`` (names, as :func:`random_ops_upstream` gives them) is in a scope named
    ``dropout…`` (``dropout/random_uniform/RandomUniform``; Keras' and TF-Slim's ``Dropout`` too);
    else ``''``: the note names the ops and gives no example."""
    scopes = (part.lower() for op in ops for part in op.split(" in function ")[0].split("/")[:-1])
    return " (dropout with keep_prob baked in)" if any(s.startswith("dropout") for s in scopes) else ""


def feed_hint(feeds: dict, ops: list) -> str:
    """What to add to a random tensor's refusal when placeholders are fed (only a placeholder can make its
    random ``ops`` deterministic, and every one the tensor reads is fed): ``, give the placeholder that drives
    them …`` (``it`` for one op)."""
    return f", give the placeholder that drives {them(ops)} its inference value in feeds=" if feeds else ""


def rows_not_examples(model, t, feeder, feed: dict, values) -> str | None:
    """When ``values`` (``t`` run on ``feed``, made by ``feeder``) have another number of rows than
    the batch fed (a time-major tensor reshaped to ``[time * batch, units]``), what to say of
    ``t``: ``'T' has 160 rows for a batch of 32 examples: its axis 0 is not the batch (…)``."""
    fed = len(feed[feeder.input])
    if not np.ndim(values) or len(values) == fed:
        return None
    doubt = axis0_doubt(model, t.name, feeder.input)
    return (f"'{t.name}' has {len(values)} rows for a batch of {fed} examples: its axis 0 is not the batch"
            + (f" ({doubt}, a guess from the graph)" if doubt else ""))


@dataclasses.dataclass
class Mixing:
    """How a tensor depends on its batch-mates, for messages (:func:`mixing`): ``why`` (the ops likely
    responsible, or what was seen; or that axis 0 may not be the batch), ``cause`` (``why`` and, unless
    axis 0 is in doubt, the usual causes), ``instead`` (where to cut instead: ``below them``, ``below it``
    for one op; ``where an example's value does not change with its batch-mates`` when no op is named) and
    ``below`` (the ops ``instead`` is below; none when it names none)."""

    why: str
    cause: str
    instead: str
    below: list = dataclasses.field(default_factory=list)


def mixing(model, tensor: str, input_tensor) -> Mixing:
    """How ``tensor`` depends on its batch-mates (its first example alone gives other values) when
    fed at ``input_tensor``: when axis 0 of ``tensor`` may not be the batch (:func:`axis0_doubt`, a
    guess), that; else the ops that may mix a batch (:func:`batch_mixing_ops`), or what was seen."""
    doubt = axis0_doubt(model, tensor, input_tensor)
    if doubt:
        why = f"axis 0 of '{tensor}' may not be the batch: {doubt}, a guess from the graph"
        return Mixing(why, why, "where axis 0 is the batch")
    ops = batch_mixing_ops(model, tensor, input_tensor.op.name)
    why = f"through {series(ops, 3)}" if ops else "its value for an example changes with its batch-mates"
    return Mixing(why, f"{why}: batch statistics such as tf.nn.moments or batch norm in training mode",
                  below_phrase(ops) if ops else "where an example's value does not change with its batch-mates", ops)


def below_phrase(ops: list) -> str:
    """``below them``, ``below it`` for one op of ``ops``: where to cut instead of at a tensor that depends on ``ops``."""
    return f"below {them(ops)}"


# What a batch-dependent tensor does to the exported model: in a refusal (:func:`batch_refusal`) and a note
# (:func:`batch_accepted`).
SERVED_WOULD = "the exported model's answer for an example would depend on the examples served with it"
SERVED_DOES = "the exported model's answer for an example depends on the examples served with it"


# The way out of a batch refusal where the head above the cut is kept (learn-task, merge-heads, add-head):
# cutting below the ops that mix the batch would leave them in the head, which is checked too ({them}: it, for one op).
HEAD_KEPT = "use a model without {them} (a cut below {them} leaves {them} in its head, which is checked too)"


def way_out(instead: str, head_kept: bool, *, below: list = (), where: str = "") -> str:
    """The way out a batch refusal gives: where the cure is to cut below the ops ``below`` (named: they may mix
    the batch), ``instead`` with ``{}`` made :func:`below_phrase` (``below them``, ``below it`` for one op), or
    :data:`HEAD_KEPT` (its ``{them}``: :func:`them`) when the command keeps the head above the cut (learn-task on
    a plain model, merge-heads, add-head), which would then hold them; with no op named, ``instead`` with ``{}``
    made ``where`` (``where axis 0 is the batch``).

    Raises:
      ValueError: ``below`` names no op and ``where`` is not given (the way out would say ``cut `` and stop).
    """
    if below:
        return HEAD_KEPT.format(them=them(below)) if head_kept else instead.format(below_phrase(below))
    if not where:
        raise ValueError("way_out: give where= when below names no op")
    return instead.format(where)


def batch_refusal(model, t, input_tensor, what: str, instead: str = "cut {}", so: str = SERVED_WOULD, *,
                  first: str = "the first training example", head_kept: bool = False) -> str:
    """The refusal of a tensor ``t`` whose first example alone gave other values than in its batch (fed
    at ``input_tensor``): ``WHAT 'T' depends on the other examples in its batch (CAUSE): FIRST alone gives
    other values than in its batch, so SO; INSTEAD, or pass allow_batch_dependent=True`` (retrain's and the
    continual commands' one wording; ``SO`` by default: the exported model's answer for an example would
    depend on the examples served with it; ``FIRST`` names the example run alone: ``the first training
    example`` by default, ``the first of 64 generated probe inputs`` for merge-heads and add-head; ``{}`` in
    ``instead`` becomes where to cut: ``below them`` (``below it``), or ``where axis 0 is the batch``, :func:`mixing`;
    ``head_kept``: the command keeps the head above the cut, see :func:`way_out`)."""
    because = mixing(model, t.name, input_tensor)
    way = way_out(instead, head_kept, below=because.below, where=because.instead)
    return (f"{what} '{t.name}' depends on the other examples in its batch ({because.cause}): {first} alone gives "
            f"other values than in its batch, so {so}; {way}, or pass allow_batch_dependent=True")


def batch_accepted(model, t, input_tensor, what: str, consequence: str = SERVED_DOES) -> str:
    """The note of a run that accepted such a tensor: ``WHAT 'T' depends on its batch-mates (WHY): accepted
    by allow_batch_dependent=True; CONSEQUENCE`` (by default: the exported model's answer for an example
    depends on the examples served with it)."""
    return (f"{what} '{t.name}' depends on its batch-mates ({mixing(model, t.name, input_tensor).why}): accepted by "
            f"allow_batch_dependent=True; {consequence}")


def mixing_phrase(ops: list, why: str = "") -> str:
    """``reads an op that may mix the examples of a batch (A)`` (``reads ops`` for more: ``ops``,
    :func:`batch_mixing_ops`', named, of more than three the first three and `` …``), ``(A; WHY)`` with ``why``."""
    return (f"reads {agree(len(ops), 'an op', 'ops')} that may mix the examples of a batch "
            f"({series(ops, 3)}{'; ' + why if why else ''})")


def batch_unchecked(subject: str, why: str, ops: list | None = None, *, random: bool = False) -> str:
    """What to say of ``subject`` (``WHAT 'T'``) when no run decides whether it depends on its batch-mates
    (``random``: nor whether it is random), ``why`` saying why: when a graph scan found ``ops`` that may mix a
    batch (:func:`batch_mixing_ops`), ``SUBJECT reads an op that may mix the examples of a batch (A; WHY)``
    (:func:`mixing_phrase`); else ``SUBJECT: whether it depends on its batch-mates was not checked (WHY)``, and ``;
    the graph holds no op that may mix the examples of a batch`` when the scan ran and found none (``ops`` ``[]``,
    not None)."""
    if ops:
        return f"{subject} {mixing_phrase(ops, why)}"
    none = "; the graph holds no op that may mix the examples of a batch" if ops is not None else ""
    return (f"{subject}: whether it {'is random or ' if random else ''}depends on its batch-mates was not checked "
            f"({why}){none}")
