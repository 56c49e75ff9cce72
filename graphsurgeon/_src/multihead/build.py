"""Build the merged multi-head graph.

::

    inputs ──────────────► backbone (once per backbone group) ──► features
    task_id ─┐                                                        │
             ├─ check: known ids, one per example                     ▼
    task ────┘ (names -> ids)          route: stack gather (the example's own weights) or branch
                                                                      │
                           logits [B, max classes] (masked) ◄─────────┘
                           probabilities, classes (top class name), num_classes

Each example gathers its own task's weights from the stacked variables (``tf.gather`` by row),
so a batch costs one head per example whatever the number of tasks. Ids are checked before any
head's weights are gathered, and every index is clamped into range: an unknown id or name fails
the request with its value in the message (a GPU gather would silently return zeros for an
out-of-range index). With several routes (stacks of other shapes, branch heads, backbone
groups) the batch is partitioned and a route runs, under ``tf.cond``, only when one of its
examples is in the batch.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from graphsurgeon._src.mixins import series
from graphsurgeon._src.multihead import piece as pieces
from graphsurgeon._src.multihead import spec as specs
from graphsurgeon._src.storage.session import fed_variable

tf1 = tf.compat.v1

PAD = -1e9  # logits of the padded classes (softmax gives them probability 0)
_ACT = {"linear": tf.identity, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "tanh": tf.tanh, "sigmoid": tf.sigmoid,
        "elu": tf.nn.elu, "selu": tf.nn.selu, "softplus": tf.math.softplus}


@dataclasses.dataclass
class Built:
    """The merged graph: ``variables`` by name, ``inputs``/``outputs`` tensors by signature key,
    ``saver`` over every variable (checkpoint names = variable names)."""

    graph: tf.Graph
    variables: dict
    inputs: dict
    outputs: dict
    saver: object


@dataclasses.dataclass
class _Tables:
    """Per task id (index): whether it exists, its route, row, backbone and class count."""

    exists: np.ndarray
    route: np.ndarray
    row: np.ndarray
    backbone: np.ndarray
    classes: np.ndarray
    names: np.ndarray  # [ids, max classes] class names


def _tables(tasks, routes) -> _Tables:
    n = max(t.id for t in tasks) + 1
    cmax = max(t.head.num_classes for t in tasks)
    t = _Tables(np.zeros(n, bool), np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32),
                np.zeros(n, np.int32), np.full((n, cmax), "", object))
    for r, route in enumerate(routes):
        for row, task in enumerate(route.tasks):
            t.exists[task.id], t.route[task.id], t.row[task.id] = True, r, row
            t.backbone[task.id], t.classes[task.id] = task.backbone, task.head.num_classes
            t.names[task.id, :len(task.classes)] = task.classes
    return t


def build(backbones, tasks, values_dtype: dict) -> Built:
    """The merged graph for ``backbones`` (:class:`~graphsurgeon._src.multihead.spec.Backbone`) and
    ``tasks`` (:class:`~graphsurgeon._src.multihead.spec.Task`); ``values_dtype`` gives
    ``{variable name: (dtype, shape)}`` of every variable to create."""
    routes = specs.routes(tasks)
    tables = _tables(tasks, routes)
    graph = tf.Graph()
    with graph.as_default():
        inputs = pieces.input_placeholder(backbones[0].piece, "serving/inputs")
        task = tf1.placeholder(tf.string, [None], name="serving/task")
        task_id = tf1.placeholder_with_default(_ids_from_names(task, tasks), [None], name="serving/task_id")
        variables = {n: fed_variable(n, s, d, trainable=True) for n, (d, s) in sorted(values_dtype.items())}
        ids = _checked_ids(task_id, inputs, tables)
        logits = _logits(inputs, ids, backbones, routes, tables, variables)
        outputs = _outputs(logits, ids, tables)
        saver = tf1.train.Saver(var_list=variables, sharded=False, save_relative_paths=True, allow_empty=True)
    return Built(graph, variables, {"inputs": inputs, "task_id": task_id, "task": task}, outputs, saver)


def _assert(condition, data):
    """The ``Assert`` op itself: a failed check fails the request with ``data`` in its message.
    (``tf.compat.v1.Assert`` wraps it in a ``cond``, which costs more per request than the check.)"""
    return tf.raw_ops.Assert(condition=condition, data=[tf.convert_to_tensor(d) for d in data], summarize=20)


def _ids_from_names(names, tasks):
    """Task ids of task names; an unknown name fails with the name in the message."""
    with tf.name_scope("serving/task_names"):
        known = tf.constant(np.array([t.name for t in tasks], dtype=object), tf.string)
        eq = tf.equal(names[:, None], known[None, :])
        found = tf.reduce_any(eq, axis=1)
        check = _assert(tf.reduce_all(found), ["graphsurgeon: unknown task name(s):",
                                               tf.gather(names, tf.reshape(tf.where(tf.logical_not(found)), [-1])),
                                               "(tasks.json lists the task names)"])
        with tf.control_dependencies([check]):
            pos = tf.argmax(tf.cast(eq, tf.int32), axis=1, output_type=tf.int32)
            return tf.gather(tf.constant([t.id for t in tasks], tf.int64), pos)


def _column(x, rank: int = 2):
    """``x`` [n] as [n, 1] (or [n, 1, 1]): a reshape, fewer ops per request than ``x[:, None]``."""
    return tf.reshape(x, [-1] + [1] * (rank - 1))


def _checked_ids(task_id, inputs, tables: _Tables):
    """``task_id`` as int32, after checking one id per example and that every id exists."""
    with tf.name_scope("serving/check"):
        n = tables.exists.shape[0]
        size_ok = tf.equal(tf.size(task_id, out_type=tf.int32), tf.shape(inputs, out_type=tf.int32)[0])
        size_check = _assert(size_ok, ["graphsurgeon: task_id has", tf.size(task_id), "value(s) for",
                                       tf.shape(inputs)[0], "input example(s); give one task id per example"])
        # known[id + 1] for ids clamped to [-1, n]: False for anything out of range
        known = tf.constant(np.concatenate([[False], tables.exists, [False]]))
        ok = tf.gather(known, tf.clip_by_value(task_id, -1, n) + 1)
        bad = tf.gather(task_id, tf.reshape(tf.where(tf.logical_not(ok)), [-1]))
        id_check = _assert(tf.reduce_all(ok), ["graphsurgeon: unknown task_id(s):", bad,
                                               f"(known ids: {_id_ranges(tables.exists)})"])
        with tf.control_dependencies([size_check, id_check]):
            return tf.cast(tf.clip_by_value(task_id, 0, n - 1), tf.int32, name="ids")


def _id_ranges(exists: np.ndarray) -> str:
    ids, out, start = [int(i) for i in np.flatnonzero(exists)], [], None
    for i, v in enumerate(ids):
        if start is None:
            start = v
        if i + 1 == len(ids) or ids[i + 1] != v + 1:
            out.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return series(out, 8)


def _route(tensors: list, key, n: int, fns: list, width: int, scope: str):
    """Run ``fns[k]`` on the examples whose ``key`` is ``k`` (only if there are any) and put the
    ``[n_k, width]`` results back in batch order. One route runs directly."""
    if n == 1:
        return fns[0](*tensors)
    with tf.name_scope(scope):
        parts = [tf.dynamic_partition(t, key, n) for t in tensors]
        index = tf.dynamic_partition(tf.range(tf.shape(key)[0]), key, n)
        outs = []
        for k in range(n):
            sub = [p[k] for p in parts]
            outs.append(tf.cond(tf.size(index[k]) > 0, lambda k=k, sub=sub: fns[k](*sub),
                                lambda: tf.zeros([0, width], tf.float32), name=f"route_{k}"))
        return tf.dynamic_stitch(index, outs)


def _logits(inputs, ids, backbones, routes, tables: _Tables, variables):
    width = int(tables.names.shape[1])
    by_backbone = [[r for r in routes if r.backbone == b] for b in range(len(backbones))]
    bb_of = tf.gather(tf.constant(tables.backbone), ids)

    def on_backbone(b):
        def fn(x, task_ids):
            features = _import_backbone(backbones[b], x, variables, "backbone" if b == 0 else f"backbone_{b}")
            mine = by_backbone[b]
            local = {id(r): i for i, r in enumerate(mine)}
            route_of = np.array([local.get(id(routes[r]), 0) for r in tables.route], np.int32)
            key = tf.gather(tf.constant(route_of), task_ids)
            rows = tf.gather(tf.constant(tables.row), task_ids)
            fns = [_route_fn(r, variables, width) for r in mine]
            return _route([features, rows], key, len(mine), fns, width, f"heads/route_{b}")
        return fn

    live = [b for b in range(len(backbones)) if by_backbone[b]]
    remap = np.zeros(len(backbones), np.int32)
    remap[live] = np.arange(len(live))
    key = tf.gather(tf.constant(remap), bb_of)
    return _route([inputs, ids], key, len(live), [on_backbone(b) for b in live], width, "backbones")


def _import_backbone(backbone: specs.Backbone, x, variables, scope: str):
    p = backbone.piece
    input_map = {p.input: tf.identity(x)}
    for name, w in p.weights.items():
        v = variables[backbone.names[name]]
        input_map[name + ":0"] = tf.identity(v.handle) if w.handle else v.value()
    out, = tf.graph_util.import_graph_def(p.graph_def, input_map=input_map, return_elements=[p.output], name=scope)
    return out


def _route_fn(route: specs.Route, variables, width: int):
    if route.kind == "branch":
        return lambda features, rows: _branch(route.tasks[0], features, variables, width)
    return lambda features, rows: _stack(route, features, rows, variables, width)


def _branch(task: specs.Task, features, variables, width: int):
    head = task.head
    scope = specs.BRANCH_SCOPE.format(task.id)
    input_map = {head.piece.input: tf.identity(features)}
    for name, w in head.piece.weights.items():
        v = variables[f"{scope}/{name}"]
        input_map[name + ":0"] = tf.identity(v.handle) if w.handle else v.value()
    logits, = tf.graph_util.import_graph_def(head.piece.graph_def, input_map=input_map,
                                             return_elements=[head.logits], name=scope)
    logits = tf.cast(logits, tf.float32)
    return tf.pad(logits, [[0, 0], [0, width - head.num_classes]], constant_values=PAD)


def _stack(route: specs.Route, x, rows, variables, width: int):
    """Each example's own head from the stacked variables (gathered by row)."""
    scope = specs.STACK_SCOPE.format(route.index)
    first = route.tasks[0].head
    with tf.name_scope(scope + "/"):
        for i, (_, bias, act) in enumerate(first.layers[:-1]):
            k = tf.gather(variables[f"{scope}/layer_{i}/kernel"], rows)
            x = tf.squeeze(tf.matmul(tf.expand_dims(x, 1), k), 1)
            if bias is not None:
                x = x + tf.gather(variables[f"{scope}/layer_{i}/bias"], rows)
            x = _ACT[act](x)
        classes = np.array([t.head.num_classes for t in route.tasks], np.int32)
        koff, boff = specs.packed_offsets(route)
        c, k0, b0 = tf.unstack(tf.gather(tf.constant(np.stack([classes, koff, boff], 1)), rows), axis=1)
        cmax, fan_in = int(classes.max()), int(first.layers[-1][0].shape[0])
        kernel = variables[f"{scope}/logits/kernel"]
        # an example's kernel is the [fan_in, classes] block at its offset; columns past its class
        # count read neighbouring weights (clamped to the variable) and are masked in the outputs
        kidx = (_column(k0, 3) + tf.constant(np.arange(fan_in, dtype=np.int32).reshape(1, -1, 1)) * _column(c, 3)
                + tf.constant(np.arange(cmax, dtype=np.int32).reshape(1, 1, -1)))
        w = tf.gather(kernel, tf.minimum(kidx, int(kernel.shape[0]) - 1))
        y = tf.squeeze(tf.matmul(tf.expand_dims(x, 1), w), 1)
        if first.layers[-1][1] is not None:
            bias = variables[f"{scope}/logits/bias"]
            bidx = _column(b0) + tf.constant(np.arange(cmax, dtype=np.int32).reshape(1, -1))
            y = y + tf.gather(bias, tf.minimum(bidx, int(bias.shape[0]) - 1))
        y = tf.cast(_ACT[first.layers[-1][2]](y), tf.float32)
        return tf.pad(y, [[0, 0], [0, width - cmax]], constant_values=PAD) if width > cmax else y


def _outputs(logits, ids, tables: _Tables) -> dict:
    """Logits of padded classes set to ``PAD``; softmax; the top valid class's name."""
    with tf.name_scope("serving/"):
        width = int(tables.names.shape[1])
        num = tf.gather(tf.constant(tables.classes), ids)
        valid = tf.constant(np.arange(width, dtype=np.int32).reshape(1, -1)) < _column(num)
        logits = tf.where(valid, logits, tf.constant(PAD, tf.float32))
        top = tf.argmax(tf.where(valid, logits, tf.constant(-np.inf, tf.float32)), axis=1, output_type=tf.int32)
        names = tf.constant(tables.names.astype(object), tf.string)
        return {"logits": tf.identity(logits, name="logits"),
                "probabilities": tf.nn.softmax(logits, name="probabilities"),
                "classes": tf.gather_nd(names, tf.stack([ids, top], axis=1), name="classes"),
                "num_classes": tf.identity(num, name="num_classes")}
