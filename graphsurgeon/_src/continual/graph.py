"""The training graph of a method: the backbone imported with each weight bound to a tensor the
method chooses, heads as variables, and one session holding every value.

::

    x ──► backbone piece (import_graph_def, input_map: weight ─► bound tensor) ──► features
                                                                                      │
                                            heads/task_<id>: dense layers (variables) ─► logits

Every value lives in a resource variable made with ``tf.compat.v1.get_variable`` and set by feeding
its initializer (no constants in the GraphDef); what trains is what a train op lists (TF-Slim's
rule), so everything else keeps its bytes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from graphsurgeon._src import train
from graphsurgeon._src.determinism import (
    SERVED_DOES,
    SERVED_WOULD,
    batch_accepted,
    batch_refusal,
    exactly,
    ops_phrase,
    random_ops_upstream,
    random_refusal,
    random_seen,
)
from graphsurgeon._src.errors import BatchDependentError, ContinualError, RandomTensorError
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.storage.session import assign, fed_variable, new_session

tf1 = tf.compat.v1
PROBE_ROWS = 32  # the batch the features' randomness and batch-dependence are checked on
ACTIVATIONS = {"linear": tf.identity, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "tanh": tf.tanh,
               "sigmoid": tf.sigmoid, "elu": tf.nn.elu, "selu": tf.nn.selu, "softplus": tf.math.softplus}


def head_scope(task: specs.Task) -> str:
    return f"heads/task_{task.id}"


def new_head(fan_in: int, num_classes: int, seed: int) -> specs.Head:
    """A linear layer with a softmax (Glorot-uniform kernel, zero bias), as a dense :class:`Head`."""
    limit = np.sqrt(6.0 / (fan_in + num_classes))
    kernel = np.random.default_rng(seed).uniform(-limit, limit, (fan_in, num_classes)).astype(np.float32)
    return specs.Head("dense", num_classes, "softmax", [(kernel, np.zeros(num_classes, np.float32), "linear")])


def feature_width(piece: pieces.Piece, where: str) -> int:
    """The features' width.

    Raises:
      ContinualError: the features are not ``[batch, width]`` with a known width.
    """
    _, shape = pieces.tensor_spec(piece, piece.output)
    if shape.rank != 2 or shape[-1] is None:
        raise ContinualError(f"{where}: features {piece.output} have shape {shape}; a new head needs "
                             "[batch, width] features (choose a flat tensor)")
    return int(shape[-1])


@dataclasses.dataclass(frozen=True)
class Wording:
    """How the refusals and notes of :func:`check_features` and :func:`check_head` word what they check: ``what``
    names it (``PATH: features``). A random one's refusal gives ``so`` (what it would do) and ``instead`` (the way
    out; ``{them}`` becomes ``it`` for one random op, else ``them``), its note ``consequence`` (what it does): :func:`graphsurgeon._src.determinism.random_refusal`. A
    batch-dependent one's refusal gives ``batch_so`` and ``batch_instead`` (``{}`` becomes where to cut;
    ``batch_head_kept``: see :func:`graphsurgeon._src.determinism.way_out`), its note ``batch_consequence``:
    :func:`graphsurgeon._src.determinism.batch_refusal`, :func:`graphsurgeon._src.determinism.batch_accepted`."""

    what: str
    instead: str
    consequence: str = "the written model's answers differ call to call"
    so: str = "the exported model would answer differently on every call"
    batch_instead: str = "give features=TENSOR {}"
    batch_so: str = SERVED_WOULD
    batch_consequence: str = SERVED_DOES
    batch_head_kept: bool = False


@dataclasses.dataclass(frozen=True)
class Checked:
    """What :func:`check_features` or :func:`check_head` found: ``note`` None when the tensor is neither random
    nor batch-dependent, else the note that accepted it; ``random``: the note is of a random tensor; ``values``:
    the tensor on the first :data:`PROBE_ROWS` rows (the features: what :func:`check_head` is fed; None for a
    dense head, which is not run)."""

    note: str | None
    random: bool
    values: np.ndarray | None


def check_features(piece: pieces.Piece, values: dict, x: np.ndarray, words: Wording, allow_random: bool, *,
                   allow_batch_dependent: bool = False) -> Checked:
    """Whether ``piece``'s output (the features, weights bound to ``values``) is random or depends on the other
    examples of its batch: retrain's probe (:func:`graphsurgeon._src.determinism.probe`) on the first
    :data:`PROBE_ROWS` rows of ``x``, twice and with its random ops fed two far-apart draws, then the first
    example alone (not when random, as retrain); its first run gives :attr:`Checked.values`, the features.
    ``words`` word the refusals and notes. The note is retrain's wording (``WHAT 'T' is random (…; random
    ops …): accepted by allow_random=True; CONSEQUENCE``, or ``WHAT 'T' depends on its batch-mates (…):
    accepted by allow_batch_dependent=True; …``).

    Raises:
      RandomTensorError: the features are random, unless ``allow_random``.
      BatchDependentError: the first example alone gives other values than in its batch, unless
        ``allow_batch_dependent``.
    """
    return _checked(piece, values.__getitem__, x, words, allow_random, allow_batch_dependent)


def check_head(task: specs.Task, features: np.ndarray, words: Wording, allow_random: bool, *,
               allow_batch_dependent: bool = False) -> Checked:
    """Whether ``task``'s head (the part of the model from the features to its output) is random or depends on
    the other examples of its batch, probed as :func:`check_features` probes the features, fed ``features``
    (:attr:`Checked.values` of :func:`check_features`); random when its two runs differ at all, as merge-heads
    judges a head (features differ within the batch tolerance). A dense head (matmuls and activations) is neither; a
    branch head is imported under its own op names, so the refusals and the notes name the ops as the model does
    (old-style dropout with ``keep_prob`` baked in above the features: the real ``lenet_noyin`` cut at ``Elu_2``;
    a batch norm in training mode above them: the real ``mlp_bn_chen`` cut at ``add``). ``words`` word the
    refusals and notes.

    Raises:
      RandomTensorError: the head is random, unless ``allow_random``.
      BatchDependentError: the first example's features alone give another output than in its batch, unless
        ``allow_batch_dependent``.
    """
    if task.head.kind != "branch":
        return Checked(None, False, None)
    return _checked(task.head.piece, task.head.values.__getitem__, features, words, allow_random,
                    allow_batch_dependent, output=task.head.logits, exact=True)


def _checked(piece: pieces.Piece, read, x: np.ndarray, words: Wording, allow_random: bool, allow_batch_dependent: bool,
             *, output: str = "", exact: bool = False) -> Checked:
    """Probe ``piece``'s ``output`` (:func:`graphsurgeon._src.multihead.piece.probed`: weights read with
    ``read(NAME)``) on the first :data:`PROBE_ROWS` rows of ``x`` and judge what the probe found (``exact``: by
    :func:`graphsurgeon._src.determinism.exactly`, runs that differ at all are random): what
    :func:`check_features` and :func:`check_head` find."""
    with pieces.probed(piece, read, x[:PROBE_ROWS], output=output) as found:
        model, t, inp, values = found.model, found.output, found.input, found.values
        p = exactly(found.probe) if exact else found.probe
        if p.batch_dependent:
            if not allow_batch_dependent:
                raise BatchDependentError(batch_refusal(model, t, inp, words.what, words.batch_instead, words.batch_so,
                                                        head_kept=words.batch_head_kept))
            return Checked(batch_accepted(model, t, inp, words.what, words.batch_consequence), False, values)
        if not p.random:
            return Checked(None, False, values)
        ops = random_ops_upstream(model, t.name)
        if not allow_random:
            raise RandomTensorError(random_refusal(model, t, found.feeder, p, ops, words.what, words.instead, words.so))
        return Checked(f"{words.what} '{t.name}' is random ({random_seen(p)}; {ops_phrase(ops)}): accepted by "
                       f"allow_random=True; {words.consequence}", True, values)


class TrainGraph:
    """A graph, its variables and (after :meth:`start`) a session.

    Attributes:
      graph: the ``tf.Graph``; variables: ``{name: tf.Variable}``; session: after :meth:`start`.
    """

    def __init__(self, seed: int = 0):
        self.graph = tf.Graph()
        self.variables, self._initial, self._heads = {}, {}, {}
        self.session = None
        with self.graph.as_default():
            tf1.set_random_seed(seed)

    def variable(self, name: str, value) -> tf.Variable:
        """A resource variable ``name`` that :meth:`start` sets to ``value``."""
        value = np.asarray(value)
        with self.graph.as_default():
            v = fed_variable(name, value.shape, value.dtype, trainable=True)
        self.variables[name], self._initial[name] = v, value
        return v

    def read(self, name: str) -> tf.Tensor:
        """A read of variable ``name`` (an op of this graph)."""
        with self.graph.as_default():
            return self.variables[name].value()

    def new(self, name: str, value) -> tf.Tensor:
        """:meth:`variable` ``name`` set to ``value``, read."""
        self.variable(name, value)
        return self.read(name)

    def placeholder(self, piece: pieces.Piece, name: str) -> tf.Tensor:
        """A placeholder for ``piece``'s input (any batch size): :func:`graphsurgeon._src.multihead.piece.input_placeholder`."""
        with self.graph.as_default():
            return pieces.input_placeholder(piece, name)

    def backbone(self, piece: pieces.Piece, x, bound: dict, scope: str) -> tf.Tensor:
        """``piece`` (value form) imported on ``x`` with weight ``w`` bound to ``bound[w]``."""
        with self.graph.as_default():
            input_map = {piece.input: x, **{w + ":0": bound[w] for w in piece.weights}}
            out, = tf.graph_util.import_graph_def(piece.graph_def, input_map=input_map,
                                                  return_elements=[piece.output], name=scope)
        return out

    def head(self, task: specs.Task) -> list[str]:
        """Variables for ``task``'s head (made once); returns their names."""
        if task.name not in self._heads:
            scope, h = head_scope(task), task.head
            if h.kind == "dense":
                values = {}
                for i, (k, b, _) in enumerate(h.layers):
                    values[f"{scope}/layer_{i}/kernel"] = k
                    if b is not None:
                        values[f"{scope}/layer_{i}/bias"] = b
            else:
                values = {f"{scope}/{w}": v for w, v in h.values.items()}
            names = sorted(values)
            for n in names:
                self.variable(n, values[n])
            self._heads[task.name] = (task, names)
        return self._heads[task.name][1]

    def logits(self, task: specs.Task, features) -> tf.Tensor:
        """``task``'s logits on ``features`` (its head's output before a final softmax), float32."""
        self.head(task)
        scope, h = head_scope(task), task.head
        with self.graph.as_default():
            if h.kind == "dense":
                x = features
                for i, (_, b, act) in enumerate(h.layers):
                    x = tf.matmul(x, self.variables[f"{scope}/layer_{i}/kernel"])
                    if b is not None:
                        x = tf.nn.bias_add(x, self.variables[f"{scope}/layer_{i}/bias"])
                    x = ACTIVATIONS[act](x)
                return tf.cast(x, tf.float32)
            return tf.cast(self.branch(task, features, scope + "/graph"), tf.float32)

    def branch(self, task: specs.Task, features, name: str) -> tf.Tensor:
        """``task``'s branch head (its piece) imported under ``name`` on ``features``, its weights bound to
        the head's variables (made once, :meth:`head`); returns its logits as the piece gives them."""
        self.head(task)
        h = task.head
        with self.graph.as_default():
            input_map = {h.piece.input: features}
            for w, weight in h.piece.weights.items():  # a resource weight's placeholder takes the handle
                v = self.variables[f"{head_scope(task)}/{w}"]
                input_map[w + ":0"] = tf.identity(v.handle) if weight.handle else v.value()
            out, = tf.graph_util.import_graph_def(h.piece.graph_def, input_map=input_map,
                                                  return_elements=[h.logits], name=name)
        return out

    def head_values(self, task: specs.Task) -> specs.Head:
        """``task``'s head with the session's current values."""
        scope, h = head_scope(task), task.head
        if h.kind == "dense":
            got = self.values([n for n in self.head(task)])
            layers = [(got[f"{scope}/layer_{i}/kernel"], got.get(f"{scope}/layer_{i}/bias") if b is not None else None,
                       act) for i, (_, b, act) in enumerate(h.layers)]
            return specs.Head("dense", h.num_classes, h.final, layers, sigmoid=h.sigmoid)
        got = self.values(self.head(task))
        return specs.Head("branch", h.num_classes, h.final, piece=h.piece, logits=h.logits,
                          values={w: got[f"{scope}/{w}"] for w in h.values}, sigmoid=h.sigmoid)

    def train_op(self, loss, mults: dict, settings: dict, name: str, optimizers: dict | None = None):
        """``train.build_train_op`` over :attr:`variables`: ``mults`` is ``{name: lr multiplier}``."""
        with self.graph.as_default():
            return train.build_train_op(loss, self.variables, mults, optimizer=settings["optimizer"],
                                        lr=settings["lr"], name=name, optimizers=optimizers)

    def start(self) -> None:
        """Make the session: every :meth:`variable` set to its value, everything else (optimizer
        slots) initialized."""
        self.session = new_session(self.graph)
        with self.graph.as_default():
            mine = {id(v) for v in self.variables.values()}
            others = [v for v in tf1.global_variables() if id(v) not in mine]
        self.session.run([v.initializer for v in others])
        assign(self.session, [(self.variables[n], self._initial[n]) for n in sorted(self.variables)])

    def values(self, names) -> dict:
        names = list(names)
        return dict(zip(names, self.session.run([self.read(n) for n in names])))

    def set(self, values: dict) -> None:
        assign(self.session, [(self.variables[n], v) for n, v in values.items()])

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
