"""Variable values of a TF2 SavedModel, by the names its graph gives the variables.

A TF2 SavedModel's checkpoint is object-based (``layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``);
its graph names each variable's ``VarHandleOp`` after the variable (``conv2d_1/kernel``).
:func:`graphsurgeon._src.tf2.checkpoint_keys` pairs the two; this reader serves the checkpoint's
tensors under the graph's names, one tensor at a time.
"""
from __future__ import annotations

import numpy as np
from tensorflow.core.protobuf import trackable_object_graph_pb2

from graphsurgeon._src.errors import CorruptCheckpointError
from graphsurgeon._src.storage.checkpoint import CheckpointReader, Entry
from graphsurgeon._src.storage.objectgraph import OBJECT_GRAPH_KEY, read_graph


def object_graph(reader: CheckpointReader) -> trackable_object_graph_pb2.TrackableObjectGraph:
    """The object graph the TF2 checkpoint ``reader`` reads stores (which checkpoint key belongs to which object).

    Raises:
      CorruptCheckpointError: the checkpoint has none (it is name-based) or it cannot be parsed.
    """
    graph = read_graph(reader.prefix, reader)
    if graph is None:
        raise CorruptCheckpointError(f"{reader.prefix}: no {OBJECT_GRAPH_KEY} entry; expected a TF2 SavedModel's "
                                     "object-based variables checkpoint")
    return graph


class SavedModelValues:
    """A checkpoint reader (``entries``, ``read(name)``, ``prefix``) that serves an object-based
    checkpoint's tensors under other names.

    Args:
      reader: the :class:`CheckpointReader` of the SavedModel's ``variables/variables`` prefix, kept as ``reader``
        (its ``entries`` and ``index`` are the checkpoint's, by their keys).
      keys: ``{variable name: checkpoint key}``.
      object_names: ``{checkpoint key: variable name}`` of every variable the SavedModel's object graph holds
        (served or not), by the name the object graph gives it; kept as ``object_names``.

    Raises:
      CorruptCheckpointError: a key is not in the checkpoint.
    """

    def __init__(self, reader: CheckpointReader, keys: dict, object_names: dict | None = None):
        self.prefix = reader.prefix
        self.reader = reader
        self._keys = dict(keys)
        self.object_names = dict(object_names or {})
        self.entries = {}
        for name, key in sorted(self._keys.items()):
            e = reader.entries.get(key)
            if e is None:
                raise CorruptCheckpointError(f"{self.prefix}: no tensor '{key}' (the value of variable '{name}')")
            self.entries[name] = Entry(name, e.shape, e.dtype)

    def read(self, name: str) -> np.ndarray:
        """The value of variable ``name``.

        Raises:
          CorruptCheckpointError: the data file is truncated or damaged.
        """
        return self.reader.read(self._keys[name])

    def key(self, name: str) -> str:
        """The checkpoint key variable ``name`` is read from."""
        return self._keys[name]
