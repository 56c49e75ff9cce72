"""Resolve what a user's path names: checkpoint prefix, checkpoint directory,
``.meta`` file, frozen GraphDef (``.pb`` / ``.pbtxt``) or TF1 SavedModel.

Nothing here reads tensors; :func:`resolve` only looks at file names and sizes.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re

from graphsurgeon._src.errors import CheckpointNotFoundError, WrongPathKindError

_DATA_RE = re.compile(r"^(?P<prefix>.+)\.data-\d{5}-of-\d{5}$")
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a model lives.

    Attributes:
      kind: ``"checkpoint"`` (prefix, with or without ``.meta``), ``"frozen"``
        (a GraphDef file) or ``"saved_model"``.
      path: the path the user gave.
      prefix: the checkpoint prefix holding variable values, or None (frozen).
      meta_path: the ``.meta`` file, or None.
      graph_path: the ``.pb`` / ``.pbtxt`` GraphDef file (frozen only).
      export_dir: the SavedModel directory (saved_model only).
      tags: SavedModel tags to load (saved_model only).
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


def _describe_dir(directory: str) -> str:
    prefixes = [os.path.basename(p) for p in _prefixes_in(directory)]
    if prefixes:
        return "it holds checkpoint prefixes " + ", ".join(prefixes[:8])
    names = sorted(os.listdir(directory))[:8]
    return "it holds " + (", ".join(names) if names else "no files")


def _latest_in_dir(directory: str) -> str | None:
    """The newest checkpoint named by a directory's ``checkpoint`` state file.

    The state file often carries absolute paths from the machine that wrote it;
    when that path does not exist here, the same base name in ``directory`` is used.
    """
    state = os.path.join(directory, "checkpoint")
    if not os.path.isfile(state):
        return None
    latest = None
    with open(state, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r'\s*model_checkpoint_path:\s*"(.*)"\s*$', line)
            if m:
                latest = m.group(1)
    if latest is None:
        raise CheckpointNotFoundError(f"{state}: no model_checkpoint_path line; expected a TF checkpoint state file")
    for candidate in (latest, os.path.join(directory, latest), os.path.join(directory, os.path.basename(latest))):
        if checkpoint_files(candidate):
            return candidate
    raise CheckpointNotFoundError(
        f"{state} names checkpoint '{latest}', which is not there ({_describe_dir(directory)})"
    )


def resolve(path: str, tags=("serve",)) -> Source:
    """Work out what ``path`` names.

    Accepts a checkpoint prefix (``model.ckpt-1000``), a checkpoint directory
    (newest checkpoint via its ``checkpoint`` file), a ``.meta`` file, a frozen
    GraphDef (``.pb`` / ``.pbtxt``) and a SavedModel directory.

    Raises:
      CheckpointNotFoundError: nothing is at ``path``.
      WrongPathKindError: ``path`` is a directory where a prefix was meant or a
        checkpoint's index/data file where its prefix was meant; the message says
        what was found and what to pass instead.
    """
    path = os.fspath(path)
    tags = tuple(tags or ())
    if os.path.isdir(path):
        for name in SAVED_MODEL_FILES:
            if os.path.isfile(os.path.join(path, name)):
                return Source("saved_model", path, prefix=_saved_model_prefix(path), export_dir=path, tags=tags)
        latest = _latest_in_dir(path)
        if latest is None:
            prefixes = _prefixes_in(path)
            if len(prefixes) == 1:
                latest = prefixes[0]
            else:
                raise WrongPathKindError(
                    f"{path} is a directory with no 'checkpoint' state file and no saved_model.pb; "
                    f"{_describe_dir(path)}: pass one checkpoint prefix (e.g. {path}/model.ckpt-1000)"
                )
        return _from_prefix(path, latest)
    if os.path.isfile(path):
        base = os.path.basename(path)
        if base in SAVED_MODEL_FILES:
            raise WrongPathKindError(
                f"{path} is the graph file of a SavedModel; pass its directory {os.path.dirname(path) or '.'}"
            )
        if base == "checkpoint":
            raise WrongPathKindError(
                f"{path} is a checkpoint state file; pass its directory {os.path.dirname(path) or '.'} "
                "or one checkpoint prefix"
            )
        if path.endswith(".meta"):
            prefix = path[: -len(".meta")]
            return Source("checkpoint", path, prefix=prefix if checkpoint_files(prefix) else None, meta_path=path)
        if path.endswith(".index"):
            raise WrongPathKindError(
                f"{path} is the index file of checkpoint prefix {path[:-len('.index')]}; pass the prefix"
            )
        m = _DATA_RE.match(path)
        if m:
            raise WrongPathKindError(f"{path} is a data shard of checkpoint prefix {m.group('prefix')}; pass the prefix")
        if path.endswith((".pb", ".pbtxt", ".graphdef")):
            return Source("frozen", path, graph_path=path)
        # A V1 checkpoint is a single file named by its prefix.
        return _from_prefix(path, path)
    # Not a file nor a directory: a prefix, or nothing.
    if checkpoint_files(path):
        return _from_prefix(path, path)
    if os.path.isfile(path + ".meta"):
        return Source("checkpoint", path, prefix=None, meta_path=path + ".meta")
    parent = os.path.dirname(path) or "."
    hint = ""
    if os.path.isdir(parent):
        hint = f"; {parent} {_describe_dir(parent).replace('it holds', 'holds', 1)}"
    raise CheckpointNotFoundError(
        f"no checkpoint, graph or SavedModel at {path} (looked for {path}.index, {path}.meta, a directory){hint}"
    )


def _from_prefix(given: str, prefix: str) -> Source:
    meta = prefix + ".meta"
    return Source("checkpoint", given, prefix=prefix, meta_path=meta if os.path.isfile(meta) else None)


def _saved_model_prefix(export_dir: str) -> str | None:
    prefix = os.path.join(export_dir, "variables", "variables")
    return prefix if checkpoint_files(prefix) else None
