"""The model handle returned by :func:`graphsurgeon.restore`."""
from __future__ import annotations

import tensorflow as tf

from graphsurgeon import select, subgraph
from graphsurgeon.errors import ConfigError, TensorNotFoundError

tf1 = tf.compat.v1


class Model:
    """A restored model: its graph, its session and what happened to each variable.

    Attributes:
      graph: the ``tf.Graph``.
      session: a ``tf.compat.v1.Session`` on ``graph`` holding the variable values,
        or None for a model built without values (a dry-run plan).
      source: the :class:`graphsurgeon.storage.paths.Source` it came from.
      status: ``{variable name: status}`` (see :mod:`graphsurgeon.surgery.plan`).
      checkpoint_names: ``{variable name: checkpoint name}`` of restored variables.
      inputs, outputs: tensor names the model is fed and computes, when known.
    """

    def __init__(self, graph, session, source, status=None, checkpoint_names=None, inputs=(), outputs=()):
        self.graph = graph
        self.session = session
        self.source = source
        self.status = dict(status or {})
        self.checkpoint_names = dict(checkpoint_names or {})
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    # -- lookup -----------------------------------------------------------
    @property
    def variables(self) -> dict:
        """``{name: tf.Variable}`` of every global variable, sorted by name."""
        with self.graph.as_default():
            vs = tf1.global_variables()
        return {select.normalize_name(v.name): v for v in sorted(vs, key=lambda v: v.name)}

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
        op_name, _, idx = name.partition(":")
        op = self.op(op_name)
        k = int(idx) if idx.isdigit() else 0
        if idx and not idx.isdigit():
            raise TensorNotFoundError(f"tensor name '{name}': expected 'op_name' or 'op_name:index'")
        if k >= len(op.outputs):
            raise TensorNotFoundError(f"op '{op_name}' has {len(op.outputs)} output(s); '{name}' asks for output {k}")
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
        """Close the session (the graph stays usable)."""
        if self.session is not None:
            self.session.close()
            self.session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        counts = {}
        for s in self.status.values():
            counts[s] = counts.get(s, 0) + 1
        return f"<graphsurgeon.Model from {self.source.path if self.source else '?'}: {len(self.status)} variables {counts}>"


def find_input(model, input_name, cut, feeds):
    """The input placeholder of tensor ``cut`` and the other placeholders it needs.

    The input is ``input_name`` if given, else the one float placeholder of rank >= 1
    that ``cut`` depends on and ``feeds`` does not cover.

    Raises:
      ConfigError: the input cannot be told, or another placeholder has no value in ``feeds``.
    """
    gd = model.graph.as_graph_def()
    needed = subgraph.upstream(gd, [cut])
    phs = [n for n in subgraph.placeholders(gd) if n.name in needed]
    if input_name:
        inp = model.tensor(input_name)
    else:
        cands = [n for n in phs if n.name not in feeds and tf.as_dtype(n.attr["dtype"].type).is_floating
                 and (n.attr["shape"].shape.unknown_rank or len(n.attr["shape"].shape.dim) >= 1)]
        if len(cands) != 1:
            names = ", ".join(n.name for n in phs) or "none"
            raise ConfigError(
                f"cannot tell the input of '{cut}' (placeholders it needs: {names}); pass --input TENSOR "
                "and --feed NAME=VALUE for the others"
            )
        inp = model.tensor(cands[0].name)
    extras = [n.name for n in phs if n.name != inp.op.name]
    missing = [n for n in extras if n not in feeds]
    if missing:
        raise ConfigError(
            f"'{cut}' also needs placeholder(s) {', '.join(missing)}; give their values with --feed NAME=VALUE "
            "(and --train-feed NAME=VALUE if training differs, e.g. keep_prob)"
        )
    return inp, extras


def parse_feeds(feeds: dict) -> dict:
    """``{placeholder: value}`` with string values ('1.0', 'true') converted and names normalized."""
    out = {}
    for k, v in (feeds or {}).items():
        if isinstance(v, str):
            low = v.strip().lower()
            if low in ("true", "false"):
                v = low == "true"
            else:
                try:
                    v = float(v)
                except ValueError:
                    raise ConfigError(f"feed '{k}={v}': expected a number or true/false") from None
        out[select.normalize_name(k)] = v
    return out
