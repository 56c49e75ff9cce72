"""The model handle returned by :func:`graphsurgeon._src.restore`."""
from __future__ import annotations

import tensorflow as tf

from graphsurgeon._src import select
from graphsurgeon._src.errors import TensorNotFoundError
from graphsurgeon._src.mixins import Closing, counted
from graphsurgeon._src.storage.session import variables_by_name

tf1 = tf.compat.v1


class Model(Closing):
    """A restored model: its graph, its session and what happened to each variable.

    Attributes:
      graph: the ``tf.Graph``.
      session: a ``tf.compat.v1.Session`` on ``graph`` holding the variable values,
        or None for a model built without values (a dry-run plan).
      source: the :class:`graphsurgeon._src.storage.paths.Source` it came from.
      status: ``{variable name: status}`` (see :mod:`graphsurgeon._src.surgery.plan`).
      checkpoint_names: ``{variable name: checkpoint name}`` of restored variables.
      inputs, outputs: tensor names the model is fed and computes, when known.
      plan: the :class:`graphsurgeon._src.surgery.Plan` of the restore (None for a model built by hand).
      reader: the :class:`graphsurgeon._src.storage.checkpoint.CheckpointReader` values came from, or None.
      aliases: ``{tensor name in the source graph: tensor name here}`` for tensors that restore
        turned into placeholders (``random_shuffle_queue_DequeueMany:1`` -> its new placeholder);
        :meth:`tensor` resolves them.
      unsafe_ops: ``[(op name, op type)]`` of ops in the restored graph that touch files or run
        Python (see :func:`graphsurgeon._src.safety.unsafe_ops`); :func:`graphsurgeon.restore`
        refuses to run them unless allowed.
      left_out: the names of the source graph's variables that pruning it to ``outputs`` (and from
        ``inputs``) left out, optimizer state not counted (see
        :func:`graphsurgeon._src.rules.is_optimizer_state`); empty when nothing was pruned.
    """

    def __init__(self, graph, session, source, status=None, checkpoint_names=None, inputs=(), outputs=(), *,
                 plan=None, reader=None, aliases=None, unsafe_ops=(), left_out=()):
        self.graph = graph
        self.session = session
        self.source = source
        self.status = dict(status or {})
        self.checkpoint_names = dict(checkpoint_names or {})
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.plan = plan
        self.reader = reader
        self.aliases = dict(aliases or {})
        self.unsafe_ops = list(unsafe_ops)
        self.left_out = list(left_out)

    # -- lookup -----------------------------------------------------------
    @property
    def variables(self) -> dict:
        """``{name: tf.Variable}`` of every global variable, sorted by name."""
        return variables_by_name(self.graph)

    def variable_names(self, patterns=None) -> list[str]:
        """Sorted variable names, all of them or those matching ``patterns``."""
        names = list(self.variables)
        return names if patterns is None else select.match(patterns, names)

    def tensor(self, name) -> tf.Tensor:
        """The tensor ``name`` (``'hidden2/Relu'`` means output 0 of that op; ``'op:1'`` output 1).

        Raises:
          TensorNotFoundError: no such op or output; the message lists close op names.
        """
        if isinstance(name, tf.Tensor):
            return name
        name = str(name)
        name = self.aliases.get(name, self.aliases.get(name + ":0", name))
        op_name, _, idx = name.partition(":")
        op = self.op(op_name)
        k = int(idx) if idx.isdigit() else 0
        if idx and not idx.isdigit():
            raise TensorNotFoundError(f"tensor name '{name}': expected 'op_name' or 'op_name:index'")
        if k >= len(op.outputs):
            raise TensorNotFoundError(f"op '{op_name}' has {counted(len(op.outputs), 'output')}; '{name}' asks for "
                                      f"output {k}")
        return op.outputs[k]

    def op(self, name) -> tf.Operation:
        """The op ``name`` (a tensor name is accepted)."""
        name = select.normalize_name(name)
        try:
            return self.graph.get_operation_by_name(name)
        except (KeyError, ValueError):
            ops = [o.name for o in self.graph.get_operations()]
            near = select.closest(name, ops)
            raise TensorNotFoundError(f"no op '{name}' in the graph; closest: {', '.join(near)}") from None

    def values(self, names=None) -> dict:
        """``{name: ndarray}`` of variables (all, or ``names``), read from the session."""
        vs = self.variables
        names = list(vs) if names is None else [select.normalize_name(n) for n in names]
        got = self.session.run([vs[n] for n in names])
        return dict(zip(names, got))

    def run(self, fetches, feed_dict=None):
        """``session.run`` with tensor names accepted in ``fetches`` and ``feed_dict`` keys."""
        def conv(f):
            if isinstance(f, (list, tuple)):
                return type(f)(conv(x) for x in f)
            if isinstance(f, dict):
                return {k: conv(v) for k, v in f.items()}
            return self.tensor(f) if isinstance(f, str) else f
        feed = {self.tensor(k) if isinstance(k, str) else k: v for k, v in (feed_dict or {}).items()}
        return self.session.run(conv(fetches), feed)

    def close(self) -> None:
        """Close the session (the graph stays usable); ``with model:`` closes it at the block's end."""
        if self.session is not None:
            self.session.close()
            self.session = None

    def __repr__(self):
        counts = {}
        for s in self.status.values():
            counts[s] = counts.get(s, 0) + 1
        return f"<graphsurgeon.Model from {self.source.path if self.source else '?'}: {len(self.status)} variables {counts}>"
