"""Export a classifier as one directory (see :mod:`graphsurgeon._src.storage.model_dir`): a
SavedModel with ``serving_default(inputs) -> logits, probabilities, classes``, whose variables are a
checkpoint with its meta graph, plus ``labels.txt`` (one class name per line, in the head's order)
and ``model.json`` (how the model was made; ``features`` names the tensor its head reads, so
``add-class`` and ``learn-task`` find the cut without being told)."""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from graphsurgeon._src import subgraph
from graphsurgeon._src.export import export_meta_graph
from graphsurgeon._src.model import Model
from graphsurgeon._src.storage import model_dir
from graphsurgeon._src.storage.multihead_files import load_saved_model
from graphsurgeon._src.storage.paths import resolve

tf1 = tf.compat.v1
RECORD = "model.json"
LABELS = "labels.txt"


def read_record(directory: str) -> dict:
    """``model.json`` of a directory written here, or ``{}`` for any other model.

    Raises:
      CheckpointNotFoundError: nothing is at ``directory`` (as :func:`~graphsurgeon._src.storage.paths.resolve`
        says it: a mistyped path is not a model without a record).
    """
    if not os.path.lexists(directory):
        resolve(directory)  # a checkpoint prefix is no file of its own; nothing at all raises
    return model_dir.read_json(os.path.join(directory, RECORD))


def predict(directory: str, x, batch_size: int = 512):
    """``probabilities`` of the SavedModel at ``directory`` (``serving_default``) for inputs ``x``."""
    sess, meta = load_saved_model(directory)
    out = []
    with sess:
        sig, g = meta.signature_def["serving_default"], sess.graph
        feed, fetch = g.get_tensor_by_name(sig.inputs["inputs"].name), g.get_tensor_by_name(sig.outputs["probabilities"].name)
        for i in range(0, len(x), batch_size):
            out.append(sess.run(fetch, {feed: x[i:i + batch_size]}))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def classes_tensor(logits, names: list):
    """The top class's name per example (``graphsurgeon/classes``)."""
    return tf.gather(tf.constant(names), tf.argmax(logits, 1), name="graphsurgeon/classes")


def write(graph, session, x, logits, names: list, out_dir: str, record: dict, check=None) -> None:
    """Write the classifier ``x -> logits`` of ``graph`` (values from ``session``) at ``out_dir``,
    which must not exist. ``check(tmp)``, if given, runs on the written directory before it is
    renamed into place (raise to discard it).

    Raises:
      ConfigError: ``out_dir`` exists; CorruptCheckpointError: the variables do not read back.
    """
    model = Model(graph, session, None)
    with graph.as_default():
        probs = tf.nn.softmax(logits, name="graphsurgeon/probabilities")
        classes = classes_tensor(logits, names)
    meta, inputs, outputs = export_meta_graph(model, {"inputs": x},
                                              {"logits": logits, "probabilities": probs, "classes": classes})
    values = model.values(sorted(subgraph.variable_defs(meta)))
    tmp = model_dir.new_dir(out_dir)
    try:
        model_dir.write_saved_model(tmp, meta, values, inputs, outputs)
        model_dir.write_file(os.path.join(tmp, LABELS), "".join(n + "\n" for n in names).encode("utf-8"))
        record = {"version": 1, **record, "inputs": inputs, "outputs": outputs}
        model_dir.write_file(os.path.join(tmp, RECORD), (json.dumps(record, indent=2, default=str) + "\n").encode())
        if check is not None:
            check(tmp)
        model_dir.commit(tmp, out_dir)
    finally:
        model_dir.discard(tmp)
