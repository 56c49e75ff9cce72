"""TensorBoard scalars."""
from __future__ import annotations

import tensorflow as tf

tf1 = tf.compat.v1


class ScalarWriter:
    """Writes scalar summaries to an event file in ``logdir`` (TensorBoard reads it)."""

    def __init__(self, logdir: str):
        self.logdir = logdir
        with tf.Graph().as_default():  # FileWriter refuses to start under eager execution
            self._writer = tf1.summary.FileWriter(logdir, graph=None)

    def scalars(self, step: int, values: dict) -> None:
        summary = tf1.Summary(value=[tf1.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])
        self._writer.add_summary(summary, step)
        self._writer.flush()

    def graph(self, graph_def) -> None:
        """Write ``graph_def`` for TensorBoard's graph tab."""
        self._writer.add_graph(None, graph_def=graph_def)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
