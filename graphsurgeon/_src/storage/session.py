"""Create sessions (the only place graphsurgeon does)."""
from __future__ import annotations

import tensorflow as tf

tf1 = tf.compat.v1


def new_session(graph: tf.Graph, threads: int = 0) -> "tf1.Session":
    """A ``tf.compat.v1.Session`` on ``graph``; ``threads`` 0 lets TF choose."""
    config = tf1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    config.allow_soft_placement = True
    return tf1.Session(graph=graph, config=config)
