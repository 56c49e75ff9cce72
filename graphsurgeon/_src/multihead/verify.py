"""Check a written merged model against its tasks' own heads.

The reference is computed without any of the merged model's machinery: each backbone group's
piece runs once on probe inputs, and each task's head runs on those features as a plain graph
(a dense head as ``MatMul``, ``BiasAdd`` and its activation per layer, as the task model itself
computes it; a branch head as its own piece). The written SavedModel, loaded back, must give every
task's output (its ``probabilities`` if the model ends in a softmax, else its ``logits``) within
tolerance of the reference: ``atol`` plus ``rtol`` times the largest absolute value of that task's reference
output, not of each value, because two runs of the same graph may round differently (another kernel, constant
folding) and a value computed as a difference of larger ones (a logit near zero, a batch norm's centred output)
carries the rounding of those larger ones: the real mlp_bn_chen's output, a batch norm over the batch, had
0.0442462 against 0.04424429 for logits up to 7.8.

The written model is fed every task's probe inputs in one batch (each task's rows are the same inputs), so the
backbone runs on copies of the reference's batch (a mean or variance over the batch is the reference's, up to
rounding) and each head on its own task's rows (a branch head gets only its task's examples), as the reference
runs them.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphsurgeon._src import determinism
from graphsurgeon._src.errors import BatchDependentError, MergeHeadsError
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.storage.multihead_files import load_saved_model
from graphsurgeon._src.storage.session import assign, new_session

PROBE_TEXT = ["", "great movie", "the plot was thin but the acting was superb", "zq xv unknown words 42"]
_ACT = {"linear": tf.identity, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "tanh": tf.tanh, "sigmoid": tf.sigmoid,
        "elu": tf.nn.elu, "selu": tf.nn.selu, "softplus": tf.math.softplus}


def probe(dtype: tf.DType, shape, n: int = 4, seed: int = 0, *, skip: str = "", cast: bool = False) -> np.ndarray:
    """``n`` probe examples for an input of ``dtype`` and static ``shape`` (unknown sizes: 3): :data:`PROBE_TEXT`
    for strings, 0 or 1 for integers and booleans, normal draws for floating point, and with ``cast`` normal draws
    cast to any other dtype numpy casts them to (complex: enough to compare two runs on); ``skip`` ends the error's
    sentence (how the caller can do without them)."""
    rng = np.random.default_rng(seed)
    dims = [n] + [d if d is not None else 3 for d in (shape.as_list()[1:] if shape.rank else [])]
    if dtype == tf.string:
        words = PROBE_TEXT * (int(np.prod(dims)) // len(PROBE_TEXT) + 1)
        return np.array(words[: int(np.prod(dims))], dtype=object).reshape(dims)
    if dtype.is_integer:
        return rng.integers(0, 2, size=dims).astype(dtype.as_numpy_dtype)
    if dtype == tf.bool:
        return rng.integers(0, 2, size=dims).astype(bool)
    if dtype.is_floating or cast:
        try:
            return rng.normal(size=dims).astype(dtype.as_numpy_dtype)
        except (TypeError, ValueError):
            pass
    raise MergeHeadsError(f"cannot make probe inputs of dtype {dtype.name} to verify the written model{skip}")


PROBE_FIRST = "the first of 64 generated probe inputs"  # the example check_batch runs alone


def check_batch(piece: pieces.Piece, read, what: str, instead: str, allow_batch_dependent: bool, *,
                head_kept: bool = False, head_from: str = "") -> str | None:
    """Retrain's batch-dependence check on ``piece``'s output (the features), fed 64 :func:`probe` inputs:
    :func:`graphsurgeon._src.multihead.piece.probed` imports it under its own op names and probes it on them (the
    first alone too, not when two runs differ: a random output). Returns None when its value does not change, else the note of ``allow_batch_dependent``
    (:func:`graphsurgeon._src.determinism.batch_accepted`, retrain's wording). For an input dtype :func:`probe`
    makes no values of (complex), nothing runs and the graph decides, as for a cache whose record says no run
    checked it (:func:`graphsurgeon._src.retrain.checks.cached_notes`): ops that may mix a batch
    (:func:`graphsurgeon._src.determinism.batch_mixing_ops`) are refused, or accepted with a note; without
    them the note says that whether the features depend on their batch-mates was not checked (``there are no probe
    inputs of dtype complex64``) and that the graph holds no op that may mix the examples of a batch
    (:func:`graphsurgeon._src.determinism.batch_unchecked`).

    Raises:
      BatchDependentError: the first probe input alone gives other values than in its batch (batch norm in
        training mode), or, unprobed, the features read ops that may mix a batch, unless
        ``allow_batch_dependent``: retrain's refusal (:func:`graphsurgeon._src.determinism.batch_refusal`,
        ``FIRST`` :data:`PROBE_FIRST`), ``what`` naming the piece, ``instead`` where to cut (``head_kept``: see
        :func:`graphsurgeon._src.determinism.way_out`).
      MergeHeadsError: with ``head_from`` (the model ``piece`` is the head of), the head is random: two ordinary
        runs of it on the probe inputs (:func:`probe` with ``cast``, normal draws cast to its input's dtype, where
        there are none otherwise, such as complex) differ at all (:func:`graphsurgeon._src.determinism.exactly`), or, when they agree, runs with its random ops fed two far-apart draws differ (it
        depends on random ops, such as dropout with ``keep_prob`` baked in: it would answer differently on every
        call), as learn-task judges an old head: :func:`_refuse_random`.
    """
    dtype, shape = pieces.input_spec(piece)
    try:
        x = probe(dtype, shape, 64)
    except MergeHeadsError:
        x = None
    with pieces.probed(piece, read, x) as found:
        model, inp, out = found.model, found.input, found.output
        if x is None:
            if head_from and _cast_runs_differ(found, dtype, shape):
                _refuse_random(found, None, piece, head_from)
            return _unprobed(model, out, inp, what, instead, head_kept, allow_batch_dependent)
        # a head adds nothing a batch could reorder: runs that differ at all make it random (or the far-apart draws)
        p = determinism.exactly(found.probe) if head_from else found.probe
        if head_from and p.random:
            _refuse_random(found, p, piece, head_from)
        if not p.batch_dependent:
            return None
        if not allow_batch_dependent:
            raise BatchDependentError(determinism.batch_refusal(model, out, inp, what, instead, first=PROBE_FIRST,
                                                                head_kept=head_kept))
        return determinism.batch_accepted(model, out, inp, what)


def check_head_batch(head: specs.Head, piece: pieces.Piece, read, where: str, instead: str,
                     allow_batch_dependent: bool) -> str | None:
    """:func:`check_batch` on a task model's head ``piece`` (from the features to its output) when ``head`` (what
    :func:`graphsurgeon._src.multihead.spec.head_of` made of it) is a branch: a dense head (matmuls and activations)
    cannot mix a batch, nor draw at random. In a merged model a task's examples share a batch with other tasks',
    so a head whose output changes with its batch-mates (batch norm in training mode above the features) answers
    an example differently with the examples served with it. The same probe refuses a random head. ``where``
    names the model; ``instead`` is the way out.

    Raises:
      MergeHeadsError: the head is random (:func:`_refuse_random`).
      BatchDependentError: as :func:`check_batch`, naming ``WHERE: the head, its output``.
    """
    if head.kind != "branch":
        return None
    return check_batch(piece, read, f"{where}: the head, its output", instead, allow_batch_dependent, head_from=where)


def _refuse_random(found: pieces.Probed, p: determinism.Probe | None, head_piece: pieces.Piece, where: str) -> None:
    """Raise :class:`MergeHeadsError`: two runs of the head (``found``: :func:`graphsurgeon._src.multihead.piece.
    probed`, under its own names) on the same probe features differed, or (``p``, the probe as judged,
    ``random_by`` ``"draws"``) runs with its random ops fed two far-apart draws did; says which
    (:func:`graphsurgeon._src.determinism.random_phrase`), names its random ops
    (:func:`graphsurgeon._src.determinism.random_ops_upstream`, inside functions too) and guesses at them as
    retrain does."""
    ops = determinism.random_ops_upstream(found.model, found.output.name)
    guess = determinism.random_guess(found.model, ops, found.feeder)
    how = determinism.random_phrase(p, "answered differently in", "the same probe features")
    raise MergeHeadsError(
        f"{where}: its head, from the features to {head_piece.output}, {how}: it depends on "
        f"{determinism.ops_phrase(ops)}{guess}, so it would answer differently on every call; split the model where "
        "no random op lies between the features and the output")


def _cast_runs_differ(found: pieces.Probed, dtype: tf.DType, shape) -> bool:
    """Whether two runs of ``found``'s output differ on 64 probe inputs of a dtype :func:`probe` makes values of only
    by casting its normal draws (``cast``: complex); False when it cannot make them."""
    try:
        x = probe(dtype, shape, 64, cast=True)
    except MergeHeadsError:
        return False
    run = (lambda: found.model.session.run(found.output, {found.input: x}))
    return not determinism.identical(run(), run())


def _unprobed(model, out, inp, what: str, instead: str, head_kept: bool, allow_batch_dependent: bool) -> str:
    """:func:`check_batch` for an input with no probe values: the graph decides (see there); the way out
    (:func:`graphsurgeon._src.determinism.way_out`) is ``instead`` below the ops that may mix the batch."""
    ops = determinism.batch_mixing_ops(model, out.name, inp.op.name)
    unrun = f"there are no probe inputs of dtype {inp.dtype.name}"
    mixes = determinism.batch_unchecked(f"{what} '{out.name}'", f"no run checked it: {unrun}" if ops else unrun, ops)
    if not ops:
        return mixes
    if not allow_batch_dependent:
        raise BatchDependentError(f"{mixes}: the exported model's answer for an example may depend on the examples "
                                  f"served with it; {determinism.way_out(instead, head_kept, below=ops)}, or pass "
                                  "allow_batch_dependent=True")
    return (f"{mixes}: accepted by allow_batch_dependent=True; the exported model's answer for an example may depend "
            "on the examples served with it")


def reference(backbones, backbone_values: list, tasks, x: np.ndarray) -> dict:
    """``{task id: its own output on probe inputs x}``; ``backbone_values[b]`` is ``{piece weight:
    ndarray}`` of backbone group ``b``."""
    graph = tf.Graph()
    fetch, values = {}, []
    with graph.as_default():
        xin = tf.constant(x)
        feats = []
        for b, bb in enumerate(backbones):
            bound, held = pieces.bind(bb.piece, backbone_values[b].__getitem__, f"ref_values/backbone_{b}")
            values += held
            feats.append(tf.graph_util.import_graph_def(bb.piece.graph_def, input_map={bb.piece.input: xin, **bound},
                                                        return_elements=[bb.piece.output], name=f"ref_backbone_{b}")[0])
        for t in tasks:
            fetch[t.id] = _head_output(t, feats[t.backbone], values)
    with new_session(graph) as sess:
        assign(sess, values)
        return sess.run(fetch)


def _head_output(task: specs.Task, features, values: list):
    """``task``'s output on ``features``: a dense head's layers as ops, a branch head's piece imported (its weights'
    ``(variable, value)`` pairs added to ``values``)."""
    head = task.head
    if head.kind == "dense":
        x = features
        for k, b, act in head.layers:
            x = tf.matmul(x, tf.constant(k))
            if b is not None:
                x = tf.nn.bias_add(x, tf.constant(b))
            x = _ACT[act](x)
        return tf.nn.softmax(x) if head.final == "softmax" else x
    bound, held = pieces.bind(head.piece, head.values.__getitem__, f"ref_values/task_{task.id}")
    values += held
    logits, = tf.graph_util.import_graph_def(head.piece.graph_def, input_map={head.piece.input: features, **bound},
                                             return_elements=[head.logits], name=f"ref_task_{task.id}")
    return tf.nn.softmax(logits) if head.final == "softmax" else logits


def check(export_dir: str, backbones, backbone_values: list, tasks, *, rtol: float = 1e-5,
          atol: float = 1e-6, skip: str = "") -> float:
    """Load ``export_dir`` and compare every task's output with :func:`reference` on probe inputs;
    returns the largest absolute difference.

    Raises:
      MergeHeadsError: a task's output differs by more than ``atol + rtol * max |reference|`` (the largest
        absolute value of that task's reference output: see the module's docstring), or the input's dtype has no
        probe values (``skip`` ends that message: how to do without).
    """
    x = probe(*pieces.input_spec(backbones[0].piece), skip=skip)
    expected = reference(backbones, backbone_values, tasks, x)
    sess, meta = load_saved_model(export_dir)
    worst = 0.0
    with sess:
        sig = meta.signature_def["serving_default"]
        g = sess.graph
        feed_x = g.get_tensor_by_name(sig.inputs["inputs"].name)
        feed_id = g.get_tensor_by_name(sig.inputs["task_id"].name)
        outs = {k: g.get_tensor_by_name(sig.outputs[k].name) for k in ("logits", "probabilities")}
        xs = np.concatenate([x] * len(tasks))
        ids = np.repeat([t.id for t in tasks], len(x)).astype(np.int64)
        got = sess.run(outs, {feed_x: xs, feed_id: ids})
    for i, t in enumerate(tasks):
        key = "probabilities" if t.head.final == "softmax" else "logits"
        mine = got[key][i * len(x):(i + 1) * len(x), : t.head.num_classes]
        ref = np.asarray(expected[t.id], np.float64)
        diff = np.abs(mine - ref)
        worst = max(worst, float(diff.max(initial=0.0)))
        if not np.all(diff <= atol + rtol * np.abs(ref).max(initial=0.0)):
            raise MergeHeadsError(f"verification failed: task {t.id} ({t.name}) of the written model differs from its "
                                  f"own head by up to {float(diff.max()):.3g} on probe inputs; nothing was written")
    return worst
