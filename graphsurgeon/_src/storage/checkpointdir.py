"""Write a graph and its variable values as a checkpoint directory (``model.ckpt`` + ``.meta`` +
``checkpoint`` state file) that :func:`graphsurgeon.restore` reads: under a temporary name, read back
and compared bit for bit, then renamed into place."""
from __future__ import annotations

import os
import shutil
import tempfile

import tensorflow as tf

from graphsurgeon._src.errors import ConfigError
from graphsurgeon._src.storage.checkpoint import import_meta_graph, saver_of
from graphsurgeon._src.storage.files import new_output_dir
from graphsurgeon._src.storage.session import assign, new_session, variables_by_name
from graphsurgeon._src.storage.writer import CHECKPOINT_NAME, verify_checkpoint


def write_checkpoint_dir(meta, values: dict, out_dir: str, *, overwrite: bool = False) -> str:
    """Import ``meta`` into a fresh graph, set its variables to ``values`` (``{name: array}``, one per
    variable) and save ``out_dir/model.ckpt`` with its meta graph and a ``checkpoint`` state file.

    Returns:
      The checkpoint prefix.

    Raises:
      ConfigError: ``out_dir`` exists (unless ``overwrite``).
      CorruptCheckpointError: what was written reads back different.
    """
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        raise ConfigError(f"{out_dir} exists; pass overwrite=True to replace it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    graph = tf.Graph()
    imported = import_meta_graph(meta, graph, "graph to write")
    variables = variables_by_name(graph)
    saver = saver_of(graph, meta, imported, variables)
    tmp = new_output_dir(f".tmp-{os.path.basename(out_dir)}-", parent)
    try:
        with new_session(graph) as sess:
            assign(sess, [(variables[n], values[n]) for n in sorted(variables)])
            prefix = saver.save(sess, os.path.join(tmp, CHECKPOINT_NAME), write_meta_graph=True, write_state=False)
        with open(os.path.join(tmp, "checkpoint"), "w") as f:
            f.write(f'model_checkpoint_path: "{CHECKPOINT_NAME}"\nall_model_checkpoint_paths: "{CHECKPOINT_NAME}"\n')
        verify_checkpoint(prefix, values)
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(out_dir)}-", dir=parent)
            os.rename(out_dir, os.path.join(old, "d"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(out_dir, CHECKPOINT_NAME)
