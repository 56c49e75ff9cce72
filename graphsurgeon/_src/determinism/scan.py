"""Graph scans behind :mod:`graphsurgeon._src.determinism`: the random ops a tensor depends on, and
the ops that may mix the examples of its batch, in the graph and inside the functions its ops call
(the branches of a TensorFlow 2 ``tf.cond``, an ``If`` op; a ``While`` op's condition and body; a
``PartitionedCall``'s function; nested calls too). An op inside a function is named
``NAME in function 'F' called by op 'OP'`` (``OP`` an op of the graph; a function called from
another: ``NAME in function 'F' in function 'G' called by op 'OP'``).
"""
from __future__ import annotations

import dataclasses
import weakref

import tensorflow as tf

from graphsurgeon._src import subgraph
from graphsurgeon._src.mixins import agree

# Ops whose output differs run to run.
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "Multinomial", "RandomGamma", "RandomPoisson", "RandomPoissonV2", "RandomCrop", "ParameterizedTruncatedNormal",
})
# Reductions that mix the examples of a batch when they reduce over its first axis.
_REDUCTIONS = frozenset({"Mean", "Sum", "Max", "Min", "Prod", "All", "Any", "EuclideanNorm"})
_BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
# ops whose output is a tensor's shape, and ops that pick, join or cast values: the data inputs the
# values come from (not the indices, bounds or axis)
_SHAPES = frozenset({"Shape", "ShapeN", "Size", "Rank"})
_SHAPE_PICKS = {"Gather": slice(1), "GatherV2": slice(1), "StridedSlice": slice(1), "Slice": slice(1),
                "Cast": slice(1), "Identity": slice(1), "Pack": slice(None), "ConcatV2": slice(-1)}
# call ops whose first input is not passed to the functions (the branch taken, or its index)
_FIRST_INPUT_CHOOSES = frozenset({"If", "StatelessIf", "Case", "StatelessCase"})
_LOOPS = frozenset({"While", "StatelessWhile"})
_CALLS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})


def random_ops_upstream(model, tensor: str, functions: bool = True) -> list[str]:
    """Names of the random ops (dropout's mask, noise) that ``tensor`` depends on: the graph's, sorted,
    then (unless not ``functions``) those inside the functions it calls, sorted. The graph is scanned once per
    tensor (:func:`_random_scan`): a command that asks again (its plan, its probe, its refusal) gets the answer
    kept with the graph."""
    in_graph, in_functions = _random_scan(model.graph, subgraph.node_name(tensor))
    return list(in_graph + in_functions if functions else in_graph)


# {graph: {op name: (random ops of the graph, random ops inside functions)}}: what _random_scan found, kept while
# the graph lives. An op never changes what it reads (its inputs are fixed when it is made, and a function it calls
# is in the graph's library before it), so ops added later do not change the answer.
_RANDOM_FOUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _random_scan(graph: tf.Graph, op: str) -> tuple[tuple, tuple]:
    """``(graph's, functions')`` random ops upstream of ``op`` in ``graph`` (:func:`random_ops_upstream`), each
    sorted; scanned on the first call for ``op``, kept in :data:`_RANDOM_FOUND` for the next (not when the graph
    has no such op: ``((), ())``, nor for a stand-in for a graph that cannot be referenced weakly)."""
    try:
        found = _RANDOM_FOUND.setdefault(graph, {})
    except TypeError:
        found = {}
    if op in found:
        return found[op]
    gd = graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    if op not in by_name:
        return (), ()
    names = tuple(sorted(n for n in subgraph.upstream(gd, [op], by_name) if by_name[n].op in RANDOM_OPS))
    inner = tuple(sorted(f"{i.node.name}{i.where}" for i in _in_functions(gd, by_name, op) if i.node.op in RANDOM_OPS))
    found[op] = (names, inner)
    return found[op]


def rate_feeds(model, random_ops, fed, input_op: str) -> list[str]:
    """The placeholders among ``fed`` (names) that set the rate of ``random_ops`` (graph op names, as
    :func:`random_ops_upstream` gives them; ones inside functions are not followed): an op at most
    four ops below a random op reads one through its other inputs, where those do not read
    ``input_op`` (the data: dropout's mask meets the values it drops there) (dropout's ``keep_prob``:
    ``RandomUniform`` -> ``GreaterEqual`` with ``rate = 1 - keep_prob``, or -> scale -> shift ->
    ``add`` of ``keep_prob``). Sorted."""
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    consumers = {}
    for n in gd.node:
        for i in n.input:
            consumers.setdefault(subgraph.node_name(i), []).append(n.name)
    fed, found = {subgraph.node_name(f) for f in fed}, set()
    for op in (o for o in random_ops if o in by_name):
        frontier, seen = [op], {op}
        for _ in range(4):
            frontier = sorted({c for f in frontier for c in consumers.get(f, ()) if c not in seen})
            seen.update(frontier)
            for other in {subgraph.node_name(i) for c in frontier for i in by_name[c].input} - seen:
                reads = subgraph.upstream(gd, [other], by_name)
                if input_op not in reads:
                    found |= fed & reads
    return sorted(found)


def batch_mixing_ops(model, tensor: str, input_op: str) -> list[str]:
    """Ops between ``input_op`` and ``tensor`` that may mix the examples of a batch: reductions over
    axis 0 (``tf.nn.moments`` over the batch; also ones that change no example's values, such as
    ``dynamic_rnn``'s longest sequence of the batch), except those of a shape (:func:`_shape_valued`:
    ``tf.tensordot``'s ``Prod`` of the input's dimensions), and batch norm in training mode. The graph's,
    sorted, then those inside the functions it calls whose data comes from ``input_op``, sorted
    (axis 0 there is taken to be the batch too)."""
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}

    def graph_reads(name):
        return input_op in subgraph.upstream(gd, [name], by_name)

    out = sorted(n for n in subgraph.upstream(gd, [tensor], by_name)
                 if _mixes(by_name[n], by_name, subgraph.node_name, graph_reads))
    inner = [f"{i.node.name}{i.where}" for i in _in_functions(gd, by_name, tensor, input_op)
             if _mixes(i.node, i.body, _body_name, lambda name, fed=i.fed: _body_name(name) in fed)]
    return out + sorted(inner)


def _mixes(node, nodes: dict, name_of, reads_input) -> bool:
    """Is ``node`` a reduction over axis 0 (its axes a constant in ``nodes``, keyed by ``name_of`` of
    an input) or a batch norm in training mode, whose data input ``reads_input``?"""
    if node.op in _BATCH_NORMS and node.attr["is_training"].b:
        return reads_input(node.input[0])
    if node.op in _REDUCTIONS and len(node.input) > 1:
        axes = nodes.get(name_of(node.input[1]))
        if axes is None or axes.op != "Const":
            return False
        return 0 in tf.make_ndarray(axes.attr["value"].tensor).reshape(-1) and reads_input(node.input[0]) \
            and not _shape_valued(node.input[0], nodes, name_of)
    return False


def _shape_valued(name: str, nodes: dict, name_of, depth: int = 8) -> bool:
    """Is ``name`` a shape (``Shape`` / ``ShapeN`` / ``Size`` / ``Rank``) or made of shapes and
    constants only by ops that pick, join or cast values (a ``Gather`` / ``GatherV2`` from a ``Shape``,
    whatever its indices; ``StridedSlice``, ``Slice``, ``Cast``, ``Identity``, ``Pack``,
    ``ConcatV2``), within ``depth`` ops? A reduction of one (the ``Prod`` TensorFlow 1.x's
    ``tf.tensordot`` takes of the input's free dimensions) reads no example's values."""
    node = nodes.get(name_of(name))
    if node is None or depth == 0:
        return False
    if node.op in _SHAPES:
        return True
    if node.op not in _SHAPE_PICKS:
        return False
    data = [i for i in node.input if not i.startswith("^")][_SHAPE_PICKS[node.op]]
    rest = [i for i in data if getattr(nodes.get(name_of(i)), "op", None) != "Const"]
    return bool(rest) and all(_shape_valued(i, nodes, name_of, depth - 1) for i in rest)


@dataclasses.dataclass
class _Inner:
    """An op inside a function: ``node`` (its NodeDef), ``where`` (`` in function 'F' called by op
    'OP'``), ``body`` (the function's nodes by name), ``fed`` (the names in the body whose value comes
    from the input)."""

    node: object
    where: str
    body: dict
    fed: set


def _body_name(name: str) -> str:
    """A function body's input ``'^n'``, ``'n:output:0'``, ``'arg'`` -> ``'n'`` / ``'arg'``."""
    return name.lstrip("^").split(":")[0]


def _functions_called(node) -> list[str]:
    """Names of the functions an op calls (attrs holding a function or a list of them)."""
    out = []
    for key in sorted(node.attr):
        kind = node.attr[key].WhichOneof("value")
        if kind == "func":
            out.append(node.attr[key].func.name)
        elif kind == "list":
            out.extend(f.name for f in node.attr[key].list.func)
    return out


def _in_functions(gd, by_name: dict, tensor: str, input_op: str | None = None):
    """An :class:`_Inner` for each op inside a function called by an op upstream of ``tensor`` (or
    from such a function) that the function's outputs depend on (``fed`` empty without ``input_op``)."""
    library = {f.signature.name: f for f in gd.library.function}
    if not library:
        return
    seen = set()
    for name in sorted(subgraph.upstream(gd, [tensor], by_name)):
        call = by_name[name]
        if not _functions_called(call):
            continue
        data = [i for i in call.input if not i.startswith("^")]
        fed = [input_op is not None and input_op in subgraph.upstream(gd, [i], by_name) for i in data]
        yield from _walk(library, call, fed, f" called by op '{name}'", seen)


def _walk(library: dict, call, fed_inputs: list, suffix: str, seen: set):
    """What :func:`_in_functions` yields for the functions ``call`` calls (``fed_inputs``: which of its
    data inputs come from the input), and the functions they call. A function is walked once for
    each pattern of fed arguments (``seen``): one that two ops call is named with the first, and a
    library whose functions call each other is walked to its end."""
    fed_inputs = _fed_args_of(library, call, fed_inputs)
    for fname in _functions_called(call):
        fdef = library.get(fname)
        key = (fname, tuple(fed_inputs))  # scanned once whatever calls it: a recursive library ends
        if fdef is None or key in seen:
            continue
        seen.add(key)
        body = {n.name: n for n in fdef.node_def}
        fed = _fed_in_body(fdef, body, fed_inputs)
        where = f" in function '{fname}'{suffix}"
        outputs = [fdef.ret[a.name] for a in fdef.signature.output_arg if a.name in fdef.ret]
        for n in sorted(subgraph.upstream(None, outputs + list(fdef.control_ret.values()), body,
                                          name_of=_body_name)):
            node = body[n]
            yield _Inner(node, where, body, fed)
            if _functions_called(node):
                inner = [_body_name(i) in fed for i in node.input if not i.startswith("^")]
                yield from _walk(library, node, inner, where, seen)


def _fed_args_of(library: dict, call, fed_inputs: list) -> list:
    """Which arguments of the functions ``call`` calls come from the input: those passed a fed input
    (an op that is no known call op: all, when any input is fed); a loop's also when its body's
    output for the argument is fed (a value carried from one pass to the next)."""
    if call.op in _FIRST_INPUT_CHOOSES:
        return fed_inputs[1:]
    if call.op not in _LOOPS | _CALLS:
        return [any(fed_inputs)] * max((len(library[f].signature.input_arg) for f in _functions_called(call)
                                        if f in library), default=0)
    body = library.get(call.attr["body"].func.name) if call.op in _LOOPS else None
    while body is not None:
        nodes = {n.name: n for n in body.node_def}
        fed = _fed_in_body(body, nodes, fed_inputs)
        outs = [_body_name(body.ret.get(a.name, "")) in fed for a in body.signature.output_arg]
        carried = [a or b for a, b in zip(fed_inputs, outs)] + fed_inputs[len(outs):]
        if carried == fed_inputs:
            break
        fed_inputs = carried
    return fed_inputs


def _fed_in_body(fdef, body: dict, fed_args: list) -> set:
    """The arguments and nodes of ``fdef`` whose value comes from the fed arguments (``fed_args``:
    one bool per argument)."""
    fed = {a.name for a, f in zip(fdef.signature.input_arg, fed_args) if f}
    changed = bool(fed)
    while changed:
        changed = False
        for n in body.values():
            if n.name not in fed and any(_body_name(i) in fed for i in n.input if not i.startswith("^")):
                fed.add(n.name)
                changed = True
    return fed


def axis0_doubt(model, tensor: str, input_tensor) -> str | None:
    """Why axis 0 of ``tensor`` may not be the batch of ``input_tensor`` (the examples fed), or None.
    A guess from the graph alone: ``tensor``'s static size on axis 0 is known and is not the input's
    (the input's is unknown, or another size), or the ops between the input and ``tensor`` that move
    axes, taken in the order they depend on one another, move the input's axis 0 elsewhere (a
    time-major RNN's ``[time, batch, units]``). Followed: transposes whose permutation is a constant,
    ``tf.unstack`` (an axis before the batch's is removed), and a time-major ``[time, batch, ...]``
    reshaped to ``[time * batch, ...]`` rows then split on axis 0 into ``time`` pieces (each one
    step's batch: a ``static_rnn``'s inputs made the TF 1.0 way). Other ops that move axes (other
    reshapes, splits, gathers) are not followed."""
    g = model.graph
    t = g.get_tensor_by_name(tensor if ":" in tensor else tensor + ":0")
    size = t.shape.as_list()[0] if t.shape.rank else None
    batch = input_tensor.shape.as_list()[0] if input_tensor.shape.rank else None
    if size is not None and size != batch:
        return (f"its static size {size} is not the input's batch ('{input_tensor.name}' is "
                f"{_shape_text(input_tensor.shape)})")
    gd = g.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    ups = {n: subgraph.upstream(gd, [n], by_name) for n in subgraph.upstream(gd, [tensor], by_name)
           if by_name[n].op in _MOVES_AXES}
    track = _BatchAxis()
    for name in sorted((n for n in ups if input_tensor.op.name in ups[n]), key=lambda n: (len(ups[n]), n)):
        track.step(g.get_operation_by_name(name))
    if track.axis != 0:
        return f"{', '.join(track.moved)} {agree(len(track.moved), 'moves', 'move')} the input's axis 0 " \
               f"to axis {track.axis}"
    return None


_MOVES_AXES = frozenset({"Transpose", "ConjugateTranspose", "Unpack", "Reshape", "Split"})


@dataclasses.dataclass
class _BatchAxis:
    """Where the input's axis 0 (the batch) is, op after op (:func:`axis0_doubt`): ``axis``, and
    ``steps`` when ``axis`` is 1 of a ``[time, batch, ...]`` tensor reshaped to ``[time * batch, ...]``
    rows (``time``, known: a split of axis 0 into that many pieces gives each step's batch);
    ``moved`` says which ops moved it, as ``transpose 'NAME'`` or ``unstack 'NAME'``."""
    axis: int = 0
    steps: int | None = None
    moved: list[str] = dataclasses.field(default_factory=list)

    def step(self, op) -> None:
        steps, self.steps = self.steps, None
        if op.type in ("Transpose", "ConjugateTranspose") and steps is None:
            perm = tf.get_static_value(op.inputs[1])
            if perm is not None and self.axis in list(perm) and list(perm).index(self.axis) != self.axis:
                self.axis = list(perm).index(self.axis)
                self.moved.append(f"transpose '{op.name}'")
        elif op.type == "Unpack" and steps is None and op.inputs[0].shape.rank is not None:
            if op.get_attr("axis") % op.inputs[0].shape.rank < self.axis:
                self.axis -= 1
                self.moved.append(f"unstack '{op.name}'")
        elif op.type == "Reshape" and steps is None and self.axis == 1 and _merges_steps(op):
            self.steps = op.inputs[0].shape.as_list()[0]
        elif op.type == "Split" and steps is not None and op.get_attr("num_split") == steps \
                and tf.get_static_value(op.inputs[0]) == 0:
            self.axis, self.moved = 0, []


def _merges_steps(op) -> bool:
    """Whether Reshape ``op`` makes ``[time * batch, ...]`` rows of a ``[time, batch, ...]`` tensor
    whose ``time`` is known."""
    src, out = op.inputs[0].shape, op.outputs[0].shape
    if src.rank is None or out.rank is None or src.rank < 2 or out.rank != src.rank - 1:
        return False
    src, out = src.as_list(), out.as_list()
    rows = None if src[0] is None or src[1] is None else src[0] * src[1]
    return src[0] is not None and out[0] in (None, rows) and out[1:] == src[2:]


def _shape_text(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape.as_list()) + "]" if shape.rank is not None \
        else "of unknown rank"
