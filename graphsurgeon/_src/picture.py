"""A picture of the surgery: the graph collapsed into scopes, coloured by what happens to them.

Each box is an op scope (the first ``depth`` components of an op's scope; an op without a scope,
as auto-named graphs have, is its own box); only the ops that compute the outputs are drawn, and
variables with their read ops are folded into the boxes whose ops read them. A box's colour is the
status of the variables it reads: new (the head), trainable (with its learning-rate multiplier),
reinitialized, frozen (restored, not trained), missing or shape mismatch; boxes that read no
variable are white. The cut point and the cache point are drawn bold, the input and the output
named, and the checkpoint's dropped layers (an old head) hang off the cut as dashed boxes.
``depth`` None picks the deepest depth that keeps the picture to ``max_nodes`` boxes.

Writes nothing itself: :func:`to_dot` returns Graphviz DOT text; the caller writes it
(:func:`graphsurgeon._src.storage.writer.write_text`) or renders it
(:func:`graphsurgeon._src.storage.graphviz.write_svg`).
"""
from __future__ import annotations

import collections
import re

from graphsurgeon._src import subgraph
from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.select import natural_key
from graphsurgeon._src.surgery.plan import is_optimizer_state

COLOURS = {"new": "#9be39b", "trainable": "#ffc870", "reinitialized": "#fff27a", "frozen": "#cfe0f5",
           "missing": "#ff9c9c", "shape_mismatch": "#ff9c9c", "ops": "#ffffff"}
_RANK = ["ops", "frozen", "trainable", "reinitialized", "new", "missing", "shape_mismatch"]
_HIDDEN = re.compile(r"^(save(_\d+)?|init|report_uninitialized.*|gradients.*|graphsurgeon)(/|$)")


def _status(v) -> str:
    if v.status in ("new", "reinitialized", "missing", "shape_mismatch"):
        return v.status
    return "trainable" if v.trainable else "frozen"


def _nodes(graph_def, outputs=()):
    """``{op name: node}`` of the ops drawn (those computing ``outputs``, when given), and
    ``{op name: variable it reads}`` (through ``/read`` or ``ReadVariableOp``)."""
    by_name = {n.name: n for n in graph_def.node}
    wanted = subgraph.upstream(graph_def, list(outputs), by_name) if outputs else set(by_name)
    var_ops = {n.name for n in graph_def.node if n.op in subgraph.VARIABLE_OPS}
    reads = {}
    for n in graph_def.node:
        if n.op in ("Identity", "ReadVariableOp") and n.input and subgraph.node_name(n.input[0]) in var_ops:
            reads[n.name] = subgraph.node_name(n.input[0])
    hidden = set(var_ops) | set(reads)
    for n in graph_def.node:  # a variable's own assign and initializer ops
        if any(n.name.startswith(v + "/") for v in (subgraph.node_name(i) for i in n.input[:1]) if v in var_ops):
            hidden.add(n.name)
    drawn = {name: node for name, node in by_name.items() if name in wanted and name not in hidden
             and not _HIDDEN.match(name)
             and node.op not in ("Const", "NoOp", "Assign", "AssignVariableOp", "VarIsInitializedOp")}
    return drawn, reads


def _scope(name: str, depth: int) -> str:
    """The box of op ``name``: its scope (never the op itself, unless it has none) cut to ``depth``."""
    parts = name.split("/")
    return "/".join((parts[:-1] or parts)[:depth])


def choose_depth(graph_def, max_nodes: int = 60, outputs=()) -> int:
    """The deepest scope depth whose picture has at most ``max_nodes`` boxes (at least 1)."""
    drawn, _ = _nodes(graph_def, outputs)
    best = 1
    for depth in range(1, 12):
        if len({_scope(n, depth) for n in drawn}) > max_nodes:
            break
        best = depth
    return best


def check_depth(depth, max_nodes: int = 60) -> None:
    """Refuse a ``depth`` that is neither None (the deepest with at most ``max_nodes`` boxes) nor an
    integer >= 1.

    Raises:
      ConfigError: naming the depth and what it means.
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ConfigError(f"depth={depth!r}: expected an integer >= 1 (how many name components make a box of the "
                          "picture: 1 draws hidden1/MatMul in the box hidden1), or leave it out for the deepest that "
                          f"keeps the picture to {max_nodes} boxes")


def to_dot(graph_def, plan, *, cut=None, cache=None, inputs=(), outputs=(), depth=None, max_nodes: int = 60) -> str:
    """Graphviz DOT text of ``graph_def`` (the restored graph with its head) coloured by ``plan``.

    Raises:
      ConfigError: ``depth`` neither None nor an integer >= 1 (:func:`check_depth`).
    """
    check_depth(depth, max_nodes)
    drawn, reads = _nodes(graph_def, outputs)
    depth = depth or choose_depth(graph_def, max_nodes, outputs)
    status = {v.name: _status(v) for v in plan.variables}
    mult = {v.name: v.lr_mult for v in plan.variables if v.trainable and v.lr_mult not in (None, 1.0)}
    boxes = collections.defaultdict(lambda: {"status": "ops", "mults": set(), "marks": []})
    edges = set()
    for name, node in drawn.items():
        box = boxes[_scope(name, depth)]
        for i in node.input:
            src = subgraph.node_name(i)
            var = reads.get(src)
            if var is not None:
                s = status.get(var, "frozen")
                if _RANK.index(s) > _RANK.index(box["status"]):
                    box["status"] = s
                if var in mult:
                    box["mults"].add(mult[var])
            elif src in drawn and not i.startswith("^") and _scope(src, depth) != _scope(name, depth):
                edges.add((_scope(src, depth), _scope(name, depth)))
    for label, tensors in (("input", inputs), ("output", outputs), ("cut", [cut] if cut else []),
                           ("cache", [cache] if cache else [])):
        for t in tensors:
            op = subgraph.node_name(t)
            if op in drawn:
                boxes[_scope(op, depth)]["marks"].append(f"{label}: {t}")
    lines = ["digraph surgery {", '  rankdir=BT; node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    ids = {}
    for k, scope in enumerate(sorted(boxes, key=natural_key)):
        ids[scope] = f"n{k}"
        b = boxes[scope]
        text = [scope or "(root)", b["status"] if b["status"] != "ops" else ""]
        if b["mults"]:
            text.append("lr x" + ", x".join(f"{m:g}" for m in sorted(b["mults"])))
        text += b["marks"]
        bold = ', penwidth=3' if any(m.startswith(("cut", "cache")) for m in b["marks"]) else ""
        label = "\\n".join(_esc(t) for t in text if t)
        lines.append(f'  {ids[scope]} [label="{label}", fillcolor="{COLOURS[b["status"]]}"{bold}];')
    for a, b in sorted(edges):
        lines.append(f"  {ids[a]} -> {ids[b]};")
    dropped = sorted({_scope(v.name, max(1, depth - 1)) for v in plan.variables
                      if v.status == "dropped" and not is_optimizer_state(v.name)}, key=natural_key)
    cut_box = ids.get(_scope(subgraph.node_name(cut), depth)) if cut else None
    for k, scope in enumerate(dropped):
        lines.append(f'  d{k} [label="{_esc(scope)}\\ndropped", style="rounded,dashed", fillcolor="#eeeeee"];')
        if cut_box:
            lines.append(f"  {cut_box} -> d{k} [style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def count_boxes(dot: str) -> int:
    """Boxes (scopes and dropped layers) in a DOT text made by :func:`to_dot`."""
    return len(re.findall(r"^  [nd]\d+ \[label=", dot, re.M))
