"""The one place graphsurgeon calls a ``tensorflow.python.*`` helper that has no public API:
grappler's function inlining. ``tests/test_tf2_inputs.py::test_inline_functions_pins_grappler``
pins what it does (no call op and no library function left, inner ops named
``<call op>/<inner op>``, a call op whose output is fetched replaced by an ``IdentityN`` of the same
name).

This is the pass ``convert_variables_to_constants_v2`` runs before freezing
(``tensorflow/python/framework/convert_to_constants.py``, ``_run_inline_graph_optimization``),
here without freezing: variables stay resource handles.
"""
from __future__ import annotations

from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.grappler import tf_optimizer

CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})


def inline_functions(graph_def, fetches):
    """A copy of ``graph_def`` with every function call that grappler can inline inlined (nested
    calls too) and functional control flow lowered; ``fetches`` (tensor names) are kept and keep
    their names. Runs grappler's ``function`` optimizer alone; ``graph_def`` is not changed.

    Function attributes ``api_implements`` (a Keras LSTM's CuDNN alternative) are dropped first, as
    ``convert_variables_to_constants_v2`` does, since they keep a call from being inlined.
    """
    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
    for function in meta.graph_def.library.function:
        if "api_implements" in function.attr:
            del function.attr["api_implements"]
    meta.collection_def["train_op"].node_list.value.extend(fetches)  # what grappler must keep
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.min_graph_nodes = -1  # small graphs too
    rewrite.optimizers.append("function")
    return tf_optimizer.OptimizeGraph(config, meta)
