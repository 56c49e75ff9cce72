"""Write models to disk atomically, and verify what was written."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from graphsurgeon._src.errors import ConfigError, CorruptCheckpointError
from graphsurgeon._src.storage.checkpoint import CheckpointReader, import_meta_graph, saver_of
from graphsurgeon._src.storage.files import new_output_dir
from graphsurgeon._src.storage.session import assign, new_session, variables_by_name
from graphsurgeon._src.storage.signatures import predict_signature

tf1 = tf.compat.v1
CHECKPOINT_NAME = "model.ckpt"


def check_replaceable(out_dir: str, overwrite: bool) -> None:
    """Raise :class:`ConfigError` if ``out_dir`` holds a model (``checkpoint/`` or ``saved_model/``)
    and ``overwrite`` is False."""
    for d in ("checkpoint", "saved_model"):
        path = os.path.join(out_dir, d)
        if os.path.exists(path) and not overwrite:
            raise ConfigError(f"{path} exists; pass overwrite=True to replace it")


def _replace_dir(tmp: str, final: str, overwrite: bool) -> None:
    if os.path.exists(final):
        if not overwrite:
            raise ConfigError(f"{final} exists; pass overwrite=True to replace it")
        old = final + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)


def write_model(meta, values: dict, inputs: dict, outputs: dict, out_dir: str, *, overwrite=False, verify=True):
    """Import ``meta`` into a fresh graph, set its variables to ``values``, and write
    ``out_dir/checkpoint`` (checkpoint + meta graph) and ``out_dir/saved_model``.

    Returns:
      ``(checkpoint prefix, saved model dir)``.
    """
    os.makedirs(out_dir, exist_ok=True)
    ckpt_dir, sm_dir = os.path.join(out_dir, "checkpoint"), os.path.join(out_dir, "saved_model")
    check_replaceable(out_dir, overwrite)
    graph = tf.Graph()
    imported = import_meta_graph(meta, graph, "exported graph")
    variables = variables_by_name(graph)
    saver = saver_of(graph, meta, imported, variables)
    tmp_ckpt = new_output_dir(".tmp-checkpoint-", out_dir)
    tmp_sm = os.path.join(tempfile.mkdtemp(prefix=".tmp-saved-model-", dir=out_dir), "sm")
    try:
        with new_session(graph) as sess:
            assign(sess, [(variables[n], values[n]) for n in sorted(variables)])
            prefix = saver.save(sess, os.path.join(tmp_ckpt, CHECKPOINT_NAME), write_meta_graph=True,
                                write_state=False)
            with open(os.path.join(tmp_ckpt, "checkpoint"), "w") as f:
                f.write(f'model_checkpoint_path: "{CHECKPOINT_NAME}"\nall_model_checkpoint_paths: "{CHECKPOINT_NAME}"\n')
            sig = predict_signature(
                inputs={k: graph.get_tensor_by_name(v) for k, v in inputs.items()},
                outputs={k: graph.get_tensor_by_name(v) for k, v in outputs.items()})
            builder = tf1.saved_model.Builder(tmp_sm)
            builder.add_meta_graph_and_variables(
                sess, [tf1.saved_model.tag_constants.SERVING],
                signature_def_map={"serving_default": sig}, saver=saver, strip_default_attrs=True)
            builder.save()
        if verify:
            verify_checkpoint(prefix, values)
            verify_checkpoint(os.path.join(tmp_sm, "variables", "variables"), values)
        _replace_dir(tmp_ckpt, ckpt_dir, overwrite)
        _replace_dir(tmp_sm, sm_dir, overwrite)
    finally:
        shutil.rmtree(tmp_ckpt, ignore_errors=True)
        shutil.rmtree(os.path.dirname(tmp_sm), ignore_errors=True)
    return os.path.join(ckpt_dir, CHECKPOINT_NAME), sm_dir


def verify_checkpoint(prefix: str, values: dict) -> None:
    """Read ``prefix`` back and check every tensor equals ``values`` bit for bit.

    Raises:
      CorruptCheckpointError: a tensor is missing or differs.
    """
    reader = CheckpointReader(prefix)
    for name, expected in values.items():
        if name not in reader.entries:
            raise CorruptCheckpointError(f"{prefix}: written checkpoint lacks '{name}'")
        got = reader.read(name)
        if got.dtype != expected.dtype or got.shape != expected.shape or got.tobytes() != np.asarray(expected).tobytes():
            raise CorruptCheckpointError(f"{prefix}: '{name}' reads back different from what was written")


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, fsync, rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: str, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (temp file, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
    os.replace(tmp, path)
