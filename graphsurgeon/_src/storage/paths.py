"""Resolve what a user's path names: checkpoint prefix, checkpoint directory,
``.meta`` file, frozen GraphDef (``.pb`` / ``.pbtxt``), TF1 SavedModel or TF2 SavedModel.

Nothing here reads tensors or imports TensorFlow; :func:`resolve` looks at file names and sizes,
and at the field numbers of a ``saved_model.pb`` (see :func:`is_tf2_saved_model`).
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re

from graphsurgeon._src.errors import CheckpointNotFoundError, ConfigError, UnsupportedPathError, WrongPathKindError
from graphsurgeon._src.mixins import listed, series

_DATA_RE = re.compile(r"^(?P<prefix>.+)\.data-\d{5}-of-\d{5}$")
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a model lives.

    Attributes:
      kind: ``"checkpoint"`` (prefix, with or without ``.meta``), ``"frozen"``
        (a GraphDef file), ``"saved_model"`` (TF1: a graph with variables) or ``"tf2_saved_model"``
        (written by ``tf.saved_model.save`` or Keras' ``model.export``: functions and an object graph,
        which :mod:`graphsurgeon._src.tf2` flattens into a TF1 graph).
      path: the path the user gave.
      prefix: the checkpoint prefix holding variable values, or None (frozen).
      meta_path: the ``.meta`` file, or None.
      graph_path: the ``.pb`` / ``.pbtxt`` GraphDef file (frozen only).
      export_dir: the SavedModel directory (saved_model and tf2_saved_model only).
      tags: SavedModel tags to load (saved_model and tf2_saved_model only).
    """

    kind: str
    path: str
    prefix: str | None = None
    meta_path: str | None = None
    graph_path: str | None = None
    export_dir: str | None = None
    tags: tuple = ()

    def files(self) -> list[str]:
        """Every file this source consists of (for hashing, never for writing)."""
        out = []
        if self.prefix:
            out += checkpoint_files(self.prefix)
        for p in (self.meta_path, self.graph_path):
            if p:
                out.append(p)
        if self.export_dir:
            for root, _, names in os.walk(self.export_dir):
                out += [os.path.join(root, n) for n in names]
        return sorted(set(out))


def checkpoint_files(prefix: str) -> list[str]:
    """The index and data files of a V2 checkpoint, or the V1 file itself."""
    if os.path.isfile(prefix + ".index"):
        return [prefix + ".index"] + sorted(glob.glob(glob.escape(prefix) + ".data-*"))
    if os.path.isfile(prefix):
        return [prefix]
    return []


def _prefixes_in(directory: str) -> list[str]:
    return sorted(p[: -len(".index")] for p in glob.glob(os.path.join(glob.escape(directory), "*.index")))


# How many checkpoint prefixes (or other files) a message names of a directory's.
SHOWN = 8


def _held(directory: str) -> str:
    """``holds checkpoint prefixes a, b``: what ``directory`` holds, its checkpoint prefixes, else its files."""
    prefixes = [os.path.basename(p) for p in _prefixes_in(directory)]
    if prefixes:
        return f"holds {listed('checkpoint prefix', prefixes, SHOWN)}"
    return f"holds {series(sorted(os.listdir(directory)), SHOWN) or 'no files'}"


def _latest_in_dir(directory: str) -> str | None:
    """The newest checkpoint named by a directory's ``checkpoint`` state file, or None without one.

    A state file names checkpoints of its own directory only: its ``model_checkpoint_path`` is
    looked up by base name in ``directory``. Saver writes absolute paths by default, often from
    another machine (or the directory a run was copied from), and those resolve here by base name.
    A name whose base name is not a checkpoint in ``directory`` is refused even when the path exists
    elsewhere (``../other/model.ckpt-1``, an absolute path to another directory): a model is read
    only from where the user pointed; pass that other prefix itself to read it.

    Raises:
      CheckpointNotFoundError: the state file is not text, has no ``model_checkpoint_path`` line,
        or names a checkpoint that is not in ``directory``.
    """
    state = os.path.join(directory, "checkpoint")
    if not os.path.isfile(state):
        return None
    with open(state, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointNotFoundError(f"{state}: not a text file; expected a TF checkpoint state file "
                                      '(model_checkpoint_path: "...")') from None
    latest = None
    for line in text.splitlines():
        m = re.match(r'\s*model_checkpoint_path:\s*"(.*)"\s*$', line)
        if m:
            latest = m.group(1)
    if latest is None:
        raise CheckpointNotFoundError(f"{state}: no model_checkpoint_path line; expected a TF checkpoint state file")
    base = re.split(r"[\\/]", latest)[-1]  # Windows-written state files use backslashes
    if base not in ("", ".", "..") and checkpoint_files(os.path.join(directory, base)):
        return os.path.join(directory, base)
    raise CheckpointNotFoundError(
        f"{state} names checkpoint '{latest}', which is not in {directory} (a state file names only checkpoints "
        f"in its own directory, by base name; it {_held(directory)}); to read a checkpoint elsewhere, "
        "pass its prefix"
    )


def check_utf8(path: str, what: str = "path") -> None:
    """Raise :class:`UnsupportedPathError` unless ``path`` is valid UTF-8 (TensorFlow's file
    system layer takes only UTF-8 names; Python hands other bytes over as surrogates)."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise UnsupportedPathError(f"{what} {shown}: the name is not valid UTF-8, and TensorFlow opens only UTF-8 "
                                   "paths; rename it") from None


def resolve(path: str, tags=("serve",)) -> Source:
    """Work out what ``path`` names.

    Accepts a checkpoint prefix (``model.ckpt-1000``), a checkpoint directory
    (newest checkpoint via its ``checkpoint`` file), a ``.meta`` file, a frozen
    GraphDef (``.pb`` / ``.pbtxt``), a SavedModel directory and ``retrain``'s output
    directory (its ``saved_model/``, see :func:`retrain_model`).

    Raises:
      CheckpointNotFoundError: nothing is at ``path``; a directory's ``checkpoint`` state file names
        a checkpoint that is not in that directory (see :func:`_latest_in_dir`).
      UnsupportedPathError: ``path`` is not valid UTF-8.
      WrongPathKindError: ``path`` is a directory where a prefix was meant or a
        checkpoint's index/data file where its prefix was meant, or retrain's output
        directory that also holds checkpoint prefixes (see :func:`retrain_model`); the
        message says what was found and what to pass instead.
    """
    path = os.fspath(path)
    check_utf8(path, "model")
    if os.path.isdir(path):
        return _resolve_dir(path, tuple(tags or ()))
    if os.path.isfile(path):
        return _resolve_file(path)
    # Not a file nor a directory: a prefix, or nothing.
    if checkpoint_files(path):
        return _from_prefix(path, path)
    if os.path.isfile(path + ".meta"):
        return Source("checkpoint", path, prefix=None, meta_path=path + ".meta")
    bare = path.rstrip("/" + os.sep) or path  # 'tasks/' names a directory: no 'tasks/.index' is looked for
    looked = f"looked for {path}.index, {path}.meta, a directory"
    if bare != path:
        kind = "file" if os.path.isfile(bare) else "checkpoint prefix" if checkpoint_files(bare) else None
        looked = f"{bare} is a {kind}, not a directory: drop the trailing /" if kind else "no such directory"
    parent = os.path.dirname(bare) or "."
    hint = ""
    if os.path.isdir(parent):
        hint = f"; {parent} {_held(parent)}"
    raise CheckpointNotFoundError(f"no checkpoint, graph or SavedModel at {path} ({looked}){hint}")


def is_retrain_output(path: str) -> bool:
    """Whether ``path`` is laid out as ``retrain``'s output directory (``checkpoint/`` and ``saved_model/``)."""
    return all(os.path.isdir(os.path.join(path, d)) for d in ("checkpoint", "saved_model"))


def retrain_saved_model(path: str) -> str | None:
    """``path``'s ``saved_model/`` when ``path`` is laid out as ``retrain``'s output directory and that folder
    holds a SavedModel, else None. Refuses nothing: it names paths (task names); reading one goes through
    :func:`retrain_model`."""
    sm = os.path.join(path, "saved_model")
    if is_retrain_output(path) and any(os.path.isfile(os.path.join(sm, f)) for f in SAVED_MODEL_FILES):
        return sm
    return None


def retrain_model(path: str) -> str | None:
    """The model every command reads in ``retrain``'s output directory ``path`` (one that holds
    ``checkpoint/`` and a SavedModel ``saved_model/``, two copies of one model): its ``saved_model/``,
    whose ``serving_default`` signature declares the input and the output; None for any other path.

    Raises:
      WrongPathKindError: ``path`` is laid out as ``retrain``'s output directory and also holds checkpoint
        prefixes of its own (a checkpoint copied into it): it names two models, and neither is taken silently;
        the message says what to pass for each (its ``saved_model/``, or its ``checkpoint/`` when
        ``saved_model/`` holds no SavedModel, and the first prefix).
    """
    if not is_retrain_output(path):
        return None
    sm = retrain_saved_model(path)
    prefixes = [os.path.basename(p) for p in _prefixes_in(path)]
    if not prefixes:
        return sm
    held = listed("checkpoint prefix", prefixes, SHOWN)
    retrained = (f"{sm} for the retrained model" if sm else f"{os.path.join(path, 'checkpoint')} for the retrained "
                 "model's checkpoint with its meta graph (its saved_model/ holds no saved_model.pb)")
    raise WrongPathKindError(f"{path} is laid out as retrain's output directory (checkpoint/ and saved_model/) and "
                             f"also holds {held}: it names two models; pass {retrained}, or "
                             f"{os.path.join(path, prefixes[0])} for the checkpoint beside it (or move that "
                             "checkpoint out)")


def _resolve_dir(path: str, tags: tuple) -> Source:
    """A SavedModel directory, retrain's output directory (its ``saved_model/``), or a checkpoint
    directory (its newest checkpoint, or its only prefix)."""
    for name in SAVED_MODEL_FILES:
        graph_file = os.path.join(path, name)
        if os.path.isfile(graph_file):
            kind = "tf2_saved_model" if name == "saved_model.pb" and is_tf2_saved_model(graph_file) else "saved_model"
            return Source(kind, path, prefix=_saved_model_prefix(path), export_dir=path, tags=tags)
    retrained = retrain_model(path)  # refuses retrain's output directory that also holds checkpoint prefixes
    latest = _latest_in_dir(path)
    if latest is None:
        prefixes = _prefixes_in(path)
        if retrained:
            return dataclasses.replace(_resolve_dir(retrained, tags), path=path)
        if is_retrain_output(path):  # with no prefixes (retrain_model refused those)
            raise WrongPathKindError(f"{path} is laid out as retrain's output directory, but its saved_model/ holds "
                                     f"no saved_model.pb: pass {os.path.join(path, 'checkpoint')} (the checkpoint "
                                     "with its meta graph)")
        if len(prefixes) != 1:
            raise WrongPathKindError(
                f"{path} is a directory with no 'checkpoint' state file and no saved_model.pb; "
                f"it {_held(path)}: pass one checkpoint prefix (e.g. {path}/model.ckpt-1000)"
            )
        latest = prefixes[0]
    return _from_prefix(path, latest)


def _resolve_file(path: str) -> Source:
    """A ``.meta`` file, a frozen GraphDef or a V1 checkpoint (a single file named by its prefix); a
    SavedModel's graph file, a state file, an index or a data shard is refused, saying what to pass."""
    base, parent = os.path.basename(path), os.path.dirname(path) or "."
    if base in SAVED_MODEL_FILES:
        raise WrongPathKindError(f"{path} is the graph file of a SavedModel; pass its directory {parent}")
    if base == "checkpoint":
        raise WrongPathKindError(f"{path} is a checkpoint state file; pass its directory {parent} "
                                 "or one checkpoint prefix")
    if path.endswith(".meta"):
        prefix = path[: -len(".meta")]
        return Source("checkpoint", path, prefix=prefix if checkpoint_files(prefix) else None, meta_path=path)
    if path.endswith(".index"):
        raise WrongPathKindError(f"{path} is the index file of checkpoint prefix {path[:-len('.index')]}; "
                                 "pass the prefix")
    m = _DATA_RE.match(path)
    if m:
        raise WrongPathKindError(f"{path} is a data shard of checkpoint prefix {m.group('prefix')}; pass the prefix")
    if path.endswith((".pb", ".pbtxt", ".graphdef")):
        return Source("frozen", path, graph_path=path)
    return _from_prefix(path, path)


def _from_prefix(given: str, prefix: str) -> Source:
    meta = prefix + ".meta"
    return Source("checkpoint", given, prefix=prefix, meta_path=meta if os.path.isfile(meta) else None)


def _saved_model_prefix(export_dir: str) -> str | None:
    prefix = os.path.join(export_dir, "variables", "variables")
    return prefix if checkpoint_files(prefix) else None


def _varint(f) -> int | None:
    """One protobuf varint from ``f``, or None at the end of the file."""
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            return None if shift == 0 else result
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7


def _fields(f, end: int):
    """``(field number, wire type, payload start, payload length)`` of the fields in ``f`` up to
    byte ``end``; length-delimited payloads are skipped, not read."""
    while f.tell() < end:
        key = _varint(f)
        if key is None:
            return
        number, wire = key >> 3, key & 7
        if wire == 0:
            _varint(f)
            continue
        size = {1: 8, 5: 4}.get(wire)
        if wire == 2:
            size = _varint(f) or 0
        if size is None:  # groups (wire types 3, 4) do not occur in a SavedModel
            return
        start = f.tell()
        yield number, wire, start, size
        f.seek(start + size)


def is_tf2_saved_model(graph_file: str) -> bool:
    """Whether the ``saved_model.pb`` at ``graph_file`` was written by TF2's ``tf.saved_model.save``
    (or Keras' ``export``): one of its MetaGraphDefs (``SavedModel`` field 2) carries an object
    graph (``MetaGraphDef`` field 7, ``object_graph_def``), which TF1's ``SavedModelBuilder`` never
    writes. Reads field headers only (seeks past payloads); a file that is not a SavedModel is False."""
    try:
        with open(graph_file, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            for number, wire, start, size in list(_fields(f, end)):
                if number != 2 or wire != 2:
                    continue
                f.seek(start)
                if any(n == 7 and w == 2 and s > 0 for n, w, _, s in _fields(f, start + size)):
                    return True
    except OSError:
        return False
    return False


def refuse_output_inside(out_dir: str, models, what: str, *, holding: bool = False) -> None:
    """Refuse an output directory that is, or lies inside, a directory a model of ``models`` is read from:
    each model path that is a directory, and with ``holding`` the directory holding each other one (a
    checkpoint prefix's files, a graph, a Keras file); a path with nothing at it is left to the reader that
    refuses it. Writing there would change a model the command promises not to change.

    Args:
      what: how the output is named in the message (``out_dir=o/x``, ``out=o/x``).

    Raises:
      ConfigError: naming the output, that directory and what to do.
    """
    out = os.path.realpath(out_dir)
    dirs = {os.path.realpath(m) if os.path.isdir(m) else os.path.dirname(os.path.realpath(m)) for m in models
            if os.path.isdir(m) or holding and (os.path.lexists(m) or checkpoint_files(m) or os.path.isfile(m + ".meta"))}
    for d in sorted(dirs):  # (a path with nothing at it: not read)
        if out == d or out.startswith(d.rstrip(os.sep) + os.sep):
            raise ConfigError(f"{what} {'is' if out == d else 'is inside'} {d}, a directory the model is read from; "
                              "the output may not go in or below one: choose a directory elsewhere")
