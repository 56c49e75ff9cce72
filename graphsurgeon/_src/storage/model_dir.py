"""Write a model as one directory that is at once a SavedModel and a checkpoint::

    DIR/saved_model.pb                 signature serving_default (tag serve)
    DIR/variables/variables.index      the variables: a checkpoint prefix...
    DIR/variables/variables.data-*
    DIR/variables/variables.meta       ...with its meta graph
    DIR/<extra files>                  labels.txt, a JSON record, ...

So ``DIR`` itself is what ``tf.saved_model.load``, ``saved_model_cli``, TensorFlow Serving and
every graphsurgeon command (``restore``, ``inspect``, ``--model DIR``) read. Everything is written
into a temporary directory beside ``DIR``, read back and compared bit for bit, then renamed into
place; ``DIR`` must not exist.
"""
from __future__ import annotations

import json
import os
import shutil

import tensorflow as tf

from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.storage.checkpoint import import_meta_graph, saver_of
from graphsurgeon._src.storage.files import new_output_dir
from graphsurgeon._src.storage.session import assign, new_session, variables_by_name
from graphsurgeon._src.storage.signatures import predict_signature
from graphsurgeon._src.storage.writer import verify_checkpoint

tf1 = tf.compat.v1
VARIABLES_PREFIX = os.path.join("variables", "variables")


def new_dir(out_dir: str) -> str:
    """A temporary directory beside ``out_dir`` (which must not exist) to build it in.

    Raises:
      ConfigError: ``out_dir`` exists.
    """
    out_dir = os.path.abspath(out_dir)
    if os.path.lexists(out_dir):
        raise ConfigError(f"{out_dir} exists; graphsurgeon writes a new directory (out_dir= must not exist)")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    return new_output_dir(f".tmp-{os.path.basename(out_dir)}-", parent)


def commit(tmp: str, out_dir: str) -> None:
    """Rename the finished ``tmp`` to ``out_dir`` (refused if ``out_dir`` appeared meanwhile)."""
    out_dir = os.path.abspath(out_dir)
    if os.path.lexists(out_dir):
        raise ConfigError(f"{out_dir} appeared while the model was written; nothing was replaced")
    os.rename(tmp, out_dir)


def discard(tmp: str) -> None:
    shutil.rmtree(tmp, ignore_errors=True)


def write_saved_model(tmp: str, meta, values: dict, inputs: dict, outputs: dict) -> None:
    """Fill ``tmp`` with the SavedModel and checkpoint of ``meta`` (a pruned meta graph whose
    variables take ``values``); ``inputs``/``outputs`` are ``{signature key: tensor name}``.

    Raises:
      CorruptCheckpointError: the written variables do not read back bit for bit.
    """
    graph = tf.Graph()
    imported = import_meta_graph(meta, graph, "exported graph")
    variables = variables_by_name(graph)
    saver = saver_of(graph, meta, imported, variables)
    with graph.as_default():
        sig = predict_signature(
            inputs={k: graph.get_tensor_by_name(v) for k, v in inputs.items()},
            outputs={k: graph.get_tensor_by_name(v) for k, v in outputs.items()})
    staging = os.path.join(tmp, ".saved_model")
    with new_session(graph) as sess:
        assign(sess, [(variables[n], values[n]) for n in sorted(variables)])
        builder = tf1.saved_model.Builder(staging)
        builder.add_meta_graph_and_variables(sess, [tf1.saved_model.tag_constants.SERVING],
                                             signature_def_map={"serving_default": sig}, saver=saver,
                                             strip_default_attrs=True)
        builder.save()
    for name in os.listdir(staging):
        os.rename(os.path.join(staging, name), os.path.join(tmp, name))
    os.rmdir(staging)
    prefix = os.path.join(tmp, VARIABLES_PREFIX)
    with graph.as_default():
        saver.export_meta_graph(prefix + ".meta", strip_default_attrs=True)
    verify_checkpoint(prefix, values)


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (inside a temporary model directory), flushed to disk."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_json(path: str) -> dict:
    """The JSON object in ``path``, or ``{}`` when there is no such file."""
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)
