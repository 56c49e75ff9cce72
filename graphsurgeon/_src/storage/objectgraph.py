"""TF2 object-based checkpoints: which key holds which variable, and what
``tf.train.Checkpoint(vars={name: variable}).save(...)`` writes for a set of names.

Nothing here writes to disk: the layout of a TF2 checkpoint is made in TensorFlow's
in-memory file system (``ram://``) and deleted once read.
"""
from __future__ import annotations

import itertools
import os

import numpy as np
import tensorflow as tf
from google.protobuf import message
from tensorflow.core.protobuf import trackable_object_graph_pb2

from graphsurgeon._src.errors import CorruptCheckpointError

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
SAVE_COUNTER_KEY = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_RAM_DIRS = itertools.count()


def read_graph(prefix: str, reader=None):
    """The object graph of checkpoint ``prefix`` (a ``TrackableObjectGraph``), or None when it has none: the one
    parser of ``_CHECKPOINTABLE_OBJECT_GRAPH`` (migrations, TF2 SavedModels' values, Keras-made SavedModels).

    Args:
      prefix: the checkpoint's prefix.
      reader: a :class:`graphsurgeon._src.storage.checkpoint.CheckpointReader` of ``prefix`` the caller has open
        (a damaged data file is then an error naming it); TensorFlow's reader is opened when None.

    Raises:
      CorruptCheckpointError: the object graph cannot be read or does not parse.
    """
    if reader is not None:
        if OBJECT_GRAPH_KEY not in reader.entries:
            return None
        raw = reader.read(OBJECT_GRAPH_KEY)
    else:
        tf_reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        if not tf_reader.has_tensor(OBJECT_GRAPH_KEY):
            return None
        raw = tf_reader.get_tensor(OBJECT_GRAPH_KEY)
    raw = raw if isinstance(raw, bytes) else np.asarray(raw).item()
    try:
        return trackable_object_graph_pb2.TrackableObjectGraph.FromString(raw)
    except (message.DecodeError, TypeError) as e:
        raise CorruptCheckpointError(f"{prefix}: its {OBJECT_GRAPH_KEY} does not parse ({type(e).__name__})") from None


def named_keys(prefix: str) -> set | None:
    """Every checkpoint key the object graph of ``prefix`` names (each attribute of each object: variables'
    values, slot variables, other saved state), or None when the checkpoint has no object graph.

    Raises:
      CorruptCheckpointError: the object graph does not parse.
    """
    graph = read_graph(prefix)
    return None if graph is None else {a.checkpoint_key for node in graph.nodes for a in node.attributes}


def variable_keys(prefix: str, keep_save_counter: bool = False) -> list[tuple[str, str]] | None:
    """``[(checkpoint key, variable name)]`` of a TF2 object-based checkpoint, in the object
    graph's order (each ``.../.ATTRIBUTES/VARIABLE_VALUE`` key with its variable's ``full_name``;
    several keys may carry one name). The root's ``save_counter`` (bookkeeping of
    ``Checkpoint.save``) is left out unless asked for. None when the checkpoint has no object graph.

    Raises:
      CorruptCheckpointError: the object graph does not parse.
    """
    graph = read_graph(prefix)
    if graph is None:
        return None
    out = []
    for node in graph.nodes:
        for attr in node.attributes:
            if attr.name == "VARIABLE_VALUE" and (keep_save_counter or attr.checkpoint_key != SAVE_COUNTER_KEY):
                out.append((attr.checkpoint_key, attr.full_name or attr.checkpoint_key[: -len(_VALUE_SUFFIX)]))
    return out


def checkpoint_layout(dtypes: dict) -> tuple[dict, dict]:
    """What ``tf.train.Checkpoint(vars={name: variable}).save(...)`` writes for variables of
    these names and dtypes (as the migration guide's ``convert_tf1_to_tf2`` does, ``save_counter``
    included): ``({name: checkpoint key}, {other key: (value, tf.DType)})``, the other keys
    being the object graph and the save counter. Needs eager execution."""
    variables = {n: tf.Variable(tf.zeros([], dt), name=n) for n, dt in dtypes.items()}
    directory = f"ram://graphsurgeon-layout-{os.getpid()}-{next(_RAM_DIRS)}"
    try:
        path = tf.train.Checkpoint(vars=variables).save(directory + "/ckpt")
        by_key = dict(variable_keys(path, keep_save_counter=True))
        reader = tf.compat.v1.train.NewCheckpointReader(path)
        dtype_of = reader.get_variable_to_dtype_map()
        keys = {name: key for key, name in by_key.items() if key != SAVE_COUNTER_KEY}
        extras = {k: (reader.get_tensor(k), tf.as_dtype(dtype_of[k])) for k in dtype_of if k not in keys.values()}
        return keys, extras
    finally:
        tf.io.gfile.rmtree(directory)
