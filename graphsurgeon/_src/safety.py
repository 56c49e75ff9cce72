"""Graphs are programs: find the ops that touch the file system or call Python when a graph runs."""
from __future__ import annotations

import re

from graphsurgeon._src.subgraph import upstream

# Ops that read or write files, or call back into Python, when a graph runs.
FILE_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "Save", "SaveV2", "SaveSlices", "Restore",
    "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "CreateSummaryFileWriter", "WriteSummary",
    "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary",
    "WriteRawProtoSummary", "ImportEvent", "FlushSummaryWriter", "WholeFileReader", "WholeFileReaderV2",
    "TextLineReader", "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "IdentityReader", "IdentityReaderV2", "LMDBReader", "TextLineDataset",
    "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
    "CSVDataset", "CSVDatasetV2", "SqlDataset", "LMDBDataset", "SnapshotDataset", "SnapshotDatasetV2",
    "SaveDataset", "SaveDatasetV2", "LoadDataset", "CacheDataset", "CacheDatasetV2", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "LoadAndRemapMatrix", "GenerateVocabRemapping", "DebugIdentity",
    "DebugIdentityV2", "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2",
})
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


_CHECKPOINT_OPS = frozenset({"Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
                             "MergeV2Checkpoints"})
_SAVER_SCOPE = re.compile(r"^(?:.*/)?save(?:_\d+)?/")


def unsafe_ops(meta) -> list[tuple[str, str]]:
    """``[(op name, op type)]``, sorted, of ops in ``meta`` (a MetaGraphDef, or a GraphDef) that touch
    the file system or call Python when the graph runs: file reads and writes, readers and file
    datasets, summary writers, ``PrintV2`` to a file, ``PyFunc``, and save/restore ops outside the
    checkpoint machinery. A ``tf.train.Saver``'s own save/restore ops (in a ``save``/``save_N``
    scope, and nothing outside such a scope depends on them, so they run only when a Saver runs
    them) are not listed. Ops inside the graph's function library are included, named
    ``function/op``."""
    graph_def = meta.graph_def if hasattr(meta, "graph_def") else meta
    reached = upstream(graph_def, [n.name for n in graph_def.node if not _SAVER_SCOPE.match(n.name)])
    found = []

    def check(name, node, in_graph=True):
        saver_own = in_graph and node.op in _CHECKPOINT_OPS and _SAVER_SCOPE.match(name) and name not in reached
        if node.op in PYTHON_OPS:
            found.append((name, node.op))
        elif node.op in FILE_OPS and not saver_own:
            found.append((name, node.op))
        elif node.op == "PrintV2" and node.attr["output_stream"].s.startswith(b"file://"):
            found.append((name, node.op))

    for n in graph_def.node:
        check(n.name, n)
    for f in graph_def.library.function:
        for n in f.node_def:
            check(f"{f.signature.name}/{n.name}", n, in_graph=False)
    return sorted(found)
