"""Guesses about a graph nobody documented: which tensors it is fed and which it computes.

Reads GraphDefs only (no session, no disk). ``inspect`` shows these guesses; ``restore`` uses
them when a model carries no signature.
"""
from __future__ import annotations

import collections

import tensorflow as tf

from graphsurgeon._src.subgraph import VARIABLE_OPS, loop_nodes, node_name, placeholders, upstream

# Ops that hand a model its data from an input pipeline (queues, tf.data iterators, readers).
PIPELINE_OPS = frozenset({
    "QueueDequeue", "QueueDequeueV2", "QueueDequeueMany", "QueueDequeueManyV2", "QueueDequeueUpTo",
    "QueueDequeueUpToV2", "IteratorGetNext", "IteratorGetNextSync", "ReaderRead", "ReaderReadV2",
    "ReaderReadUpTo", "ReaderReadUpToV2",
})
_ENQUEUE_OPS = frozenset({"QueueEnqueue", "QueueEnqueueV2", "QueueEnqueueMany", "QueueEnqueueManyV2"})


def pipeline_outputs(graph_def, needed=None, by_name=None) -> list[str]:
    """Tensors of input-pipeline ops (queue dequeues, dataset iterators) that the nodes ``needed``
    (all nodes if None) read, sorted: ``['random_shuffle_queue_DequeueMany:1']``."""
    by_name = by_name or {n.name: n for n in graph_def.node}
    out = set()
    for n in graph_def.node:
        if needed is not None and n.name not in needed:
            continue
        for i in n.input:
            op, _, idx = i.partition(":")
            if not i.startswith("^") and op in by_name and by_name[op].op in PIPELINE_OPS:
                out.add(f"{op}:{idx or 0}")
    return sorted(out)



# Ops whose outputs are never a model's output (bookkeeping, training, saving).
_NOT_OUTPUT_OPS = frozenset({
    "NoOp", "Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp", "SaveV2", "Save",
    "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "Const",
    "IsVariableInitialized", "VarIsInitializedOp", "ApplyGradientDescent", "ApplyAdam", "ResourceApplyAdam",
    "ResourceApplyGradientDescent", "ApplyMomentum", "ResourceApplyMomentum", "Placeholder",
    "PlaceholderWithDefault", "ScalarSummary", "HistogramSummary", "MergeSummary", "Pack", "ReadVariableOp",
}) | VARIABLE_OPS
_BOOKKEEPING_SCOPES = ("save", "gradients", "train", "init", "report_uninitialized", "Adam", "GradientDescent")



def likely_inputs(graph_def) -> list[str]:
    """Tensors a model is fed, as a user would feed them: placeholders (except those that only
    fill an input queue, such as an Estimator's ``enqueue_input/Placeholder``) and the outputs of
    input-pipeline ops the rest of the graph reads (``random_shuffle_queue_DequeueMany:1``)."""
    consumers = collections.defaultdict(set)
    for n in graph_def.node:
        for i in n.input:
            consumers[node_name(i)].add(n.op)
    out = [n.name + ":0" for n in placeholders(graph_def) if not consumers[n.name] or not consumers[n.name] <= _ENQUEUE_OPS]
    pipes = [t for t in pipeline_outputs(graph_def) if not node_name(t).startswith(_BOOKKEEPING_SCOPES)]
    return out + [t for t in pipes if t not in out]


def likely_outputs(graph_def) -> list[str]:
    """Tensors that look like a model's outputs, best guesses first: the logits fed to a
    softmax cross-entropy, softmax / sigmoid outputs, then float tensors nothing consumes
    that depend on an input (see :func:`likely_inputs`) and are not bookkeeping (loss,
    training, saving). Tensors inside a while loop, which cannot be fetched, are left out."""
    by_name = {n.name: n for n in graph_def.node}
    # consumers that compute the model (not its loss, summaries, training or saving)
    consumed = collections.Counter(node_name(i) for n in graph_def.node for i in n.input if not _is_bookkeeping(n))
    sources = {node_name(t) for t in likely_inputs(graph_def)}
    in_loop = loop_nodes(graph_def)
    logits, probs, sinks = [], [], []

    def fed(name):
        return bool(sources & upstream(graph_def, [name], by_name))

    for n in graph_def.node:
        if n.op in ("SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"):
            src = _through_reshapes(n.input[0], by_name) if n.input else ""
            if src:
                logits.append(src if ":" in src else src + ":0")
        elif _is_bookkeeping(n) or n.name in in_loop:
            continue
        elif n.op in ("Softmax", "Sigmoid") and "cell" not in n.name and fed(n.name):  # not an RNN gate
            probs.append(n.name + ":0")
        elif not consumed[n.name] and n.op not in _NOT_OUTPUT_OPS and fed(n.name):
            sinks += [f"{n.name}:{i}" for i in _float_outputs(n)]
    out = []
    for t in logits + probs + sorted(sinks):
        if t not in out:
            out.append(t)
    return out


_SUMMARY_OPS = frozenset({"ScalarSummary", "HistogramSummary", "ImageSummary", "AudioSummary", "MergeSummary",
                          "TensorSummary", "TensorSummaryV2"})


def _is_bookkeeping(node) -> bool:
    """A loss, summary, training or saving op: it reads a model's outputs but is not the model."""
    parts = node.name.split("/")
    lower = node.name.lower()
    return (node.op in _SUMMARY_OPS or parts[0] in _BOOKKEEPING_SCOPES
            or any(p.startswith(("gradients", "save", "report_uninitialized")) for p in parts)
            or any(w in lower for w in ("loss", "xentropy", "cross_entropy", "squared_error")))


def _through_reshapes(name: str, by_name) -> str:
    """The tensor a loss's reshape of the logits reads (``softmax_cross_entropy_loss/xentropy/Reshape``
    -> ``dense/BiasAdd``): loss helpers flatten the logits inside their own scope."""
    node = by_name.get(node_name(name))
    while node is not None and node.op == "Reshape" and node.input and ("loss" in node.name.lower()
                                                                       or "xentropy" in node.name.lower()
                                                                       or "SoftmaxCrossEntropy" in node.name):
        name = node.input[0]
        node = by_name.get(node_name(name))
    return name


def _float_outputs(node) -> list[int]:
    """The output indices of ``node`` that are floating point, as its type attribute says: its one output's
    (``T``, ``dtype``, ``out_type``), or each of a list's (``T`` of an ``IdentityN``: the outputs of a TF2
    SavedModel's serving function, inlined, ``StatefulPartitionedCall:0``, ``:1``, …)."""
    for key in ("T", "dtype", "out_type"):
        if key in node.attr and node.attr[key].type:
            return [0] if tf.as_dtype(node.attr[key].type).is_floating else []
        if key in node.attr and node.attr[key].list.type:
            return [i for i, t in enumerate(node.attr[key].list.type) if tf.as_dtype(t).is_floating]
    return []
