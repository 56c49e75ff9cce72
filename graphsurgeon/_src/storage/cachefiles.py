"""The files of a bottleneck cache directory, their names, the manifest, and safe replacement.

A cache directory (format version 2) holds::

    manifest.json             what the cache is: fingerprint, settings, the shards, the data set's index,
                              and ``checks``: whether its tensor was found random or dependent on its
                              batch-mates (true, false, or null: not checked). Caches made before
                              ``checks`` existed lack the key and are read as before (the format
                              version did not change: older readers ignore the key)
    shard-00000.npy           activations, one row per distinct content (input bytes + copy number)
    shard-00000.keys.npy      for each of those rows: the content key (sha256) and the copy number
    examples-<16 hex>.npy     the current data set's examples: each one's shard and row, label, split

Every file is written under a temporary name (``NAME.tmp``, or ``NAME.<32 hex>.tmp`` for one
attempt of a distributed worker), flushed to disk, renamed into place, and the directory is
fsync'd after renames, so a run killed at any moment leaves only complete files. Files are
created, renamed and deleted only here and in :mod:`graphsurgeon._src.storage.cacheshards`; a
file is deleted only if its name matches one of the patterns above (never a path a damaged
manifest names).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import uuid

from graphsurgeon._src.errors import CacheError
from graphsurgeon._src.storage.staging import fsync_dir

MANIFEST = "manifest.json"
VERSION = 2
_NUMBER = r"\d{5,}"
SHARD_RE = re.compile(rf"^shard-(?P<n>{_NUMBER})\.npy$")
KEYS_RE = re.compile(rf"^shard-(?P<n>{_NUMBER})\.keys\.npy$")
EXAMPLES_RE = re.compile(r"^examples-[0-9a-f]{16}\.npy$")
TEMP_RE = re.compile(rf"^(?P<final>{MANIFEST}|probe|shard-{_NUMBER}\.npy|shard-{_NUMBER}\.keys\.npy"
                     r"|examples-[0-9a-f]{16}\.npy)(?:\.(?P<attempt>[0-9a-f]{32}))?\.tmp$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.npy"


def keys_name(shard: int) -> str:
    return f"shard-{shard:05d}.keys.npy"


def examples_name(sha256: str) -> str:
    return f"examples-{sha256[:16]}.npy"


def temp_name(name: str, attempt: str | None = None) -> str:
    """``NAME.tmp``, or ``NAME.<attempt>.tmp`` for one attempt of a worker (32 hex digits)."""
    return f"{name}.{attempt}.tmp" if attempt else f"{name}.tmp"


def new_attempt() -> str:
    return uuid.uuid4().hex


def write_file(path: str, data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: a temporary name, flushed, renamed into place."""
    tmp = temp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(os.path.dirname(path) or ".")


def rename_into_place(directory: str, pairs) -> None:
    """Rename each ``(temporary name, final name)`` in ``directory``, then fsync the directory once."""
    for tmp, final in pairs:
        os.replace(os.path.join(directory, tmp), os.path.join(directory, final))
    fsync_dir(directory)


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest as written: sorted keys, no timestamps, so equal caches have equal bytes."""
    return json.dumps(manifest, sort_keys=True, indent=1).encode()


def write_manifest(directory: str, manifest: dict) -> bool:
    """Replace the manifest atomically unless it already holds these bytes; True if written."""
    data = manifest_bytes(manifest)
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    write_file(path, data)
    return True


def read_manifest(directory: str) -> dict | None:
    """The manifest (validated), or None if there is none.

    Raises:
      CacheError: the manifest is truncated, from another format version, or names files that are
        not this cache's own (see :func:`check_manifest`).
    """
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CacheError(f"{path}: cannot read the cache manifest ({e.strerror})") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CacheError(f"{path}: not a readable cache manifest ({e}); the file is truncated or damaged — "
                         "delete it to rebuild the cache (the shards are recomputed)") from None
    if not isinstance(manifest, dict) or "version" not in manifest:
        raise CacheError(f"{path}: not a graphsurgeon cache manifest (no 'version')")
    if manifest["version"] != VERSION:
        raise CacheError(f"{path}: a cache in format version {manifest['version']!r} (graphsurgeon before the "
                         f"data-set index); this version reads format {VERSION}: make a new cache in another "
                         "directory (or delete this one); it is not converted in place")
    check_manifest(path, manifest)
    return manifest


def check_manifest(path: str, m: dict) -> None:
    """Raise :class:`CacheError` unless every field the cache code reads has the type it needs and
    every file named is this cache's own (``shard-NNNNN.npy`` with its own number, never a path)."""
    def bad(what):
        raise CacheError(f"{path}: {what}; the manifest is damaged (delete the cache directory to rebuild it)")

    fp = m.get("fingerprint")
    if not isinstance(fp, dict) or not all(isinstance(fp.get(k), str) for k in ("graph", "tensor", "input")) \
            or not isinstance(fp.get("variables"), dict) or not isinstance(fp.get("feeds"), dict):
        bad("'fingerprint' is missing or malformed (expected graph, tensor, input, variables and feeds)")
    if m.get("dtype") not in ("float32", "float16"):
        bad(f"'dtype' is {m.get('dtype')!r}; expected float32 or float16")
    shape = m.get("shape")
    if not isinstance(shape, list) or not all(d is None or (type(d) is int and d >= 0) for d in shape):
        bad(f"'shape' is {shape!r}; expected a list of sizes")
    if not isinstance(m.get("preprocessing"), dict):
        bad("'preprocessing' is missing or not a table")
    if not isinstance(m.get("shards"), list):
        bad("'shards' is not a list")
    checks = m.get("checks", {"random": None, "batch_dependent": None})
    if not isinstance(checks, dict) or set(checks) != {"random", "batch_dependent"} \
            or not all(v is True or v is False or v is None for v in checks.values()):
        bad(f"'checks' is {checks!r}; expected random and batch_dependent, each true, false or null")
    for i, s in enumerate(m["shards"]):
        _check_shard_entry(s, i, bad)
    if m.get("complete") is True:
        _check_index(m, bad)
    elif m.get("complete") is not False:
        bad("'complete' is neither true nor false")


def _check_shard_entry(s, i: int, bad) -> None:
    if not isinstance(s, dict) or type(s.get("shard")) is not int or s["shard"] < 0:
        bad(f"shard entry {i} has no shard number")
    n = s["shard"]
    if s.get("file") != shard_name(n) or s.get("keys") != keys_name(n):
        bad(f"shard entry {i} names files {s.get('file')!r}, {s.get('keys')!r}; shard {n}'s files are "
            f"{shard_name(n)} and {keys_name(n)}")
    for k in ("rows", "bytes"):
        if type(s.get(k)) is not int or s[k] < 0:
            bad(f"shard entry {i} has {k} {s.get(k)!r}; expected a count")
    for k in ("sha256", "keys_sha256"):
        if not isinstance(s.get(k), str) or not _SHA_RE.match(s[k]):
            bad(f"shard entry {i} has {k} {s.get(k)!r}; expected a sha256 hex digest")


def _check_index(m: dict, bad) -> None:
    ex = m.get("examples")
    if not isinstance(ex, dict) or not isinstance(ex.get("sha256"), str) or not _SHA_RE.match(ex["sha256"]) \
            or ex.get("file") != examples_name(ex["sha256"]) or not isinstance(ex.get("parts"), list) \
            or type(ex.get("rows")) is not int or ex["rows"] < 0:
        bad("'examples' is missing, has no row count, or names another file than examples-<its sha256>.npy")
    shards = {s["shard"] for s in m["shards"]}
    for i, p in enumerate(ex["parts"]):
        ok = isinstance(p, dict) and all(type(p.get(k)) is int and p[k] >= 0 for k in ("shard", "start", "count"))
        if not ok or p["shard"] not in shards or not isinstance(p.get("sha256"), str) or not _counts(p.get("splits"), 3):
            bad(f"examples part {i} is malformed or names a shard the manifest does not list")
    data = m.get("data")
    if not isinstance(data, dict) or type(m.get("copies")) is not int or m["copies"] < 0:
        bad("'data' or 'copies' is missing")
    if not _counts(data.get("splits"), 3) or type(data.get("examples")) is not int \
            or sum(data["splits"]) != data["examples"] or not _counts(data.get("labels"), 2, signed=True):
        bad("'data' needs examples, splits (3 counts that add up to examples) and labels (lowest, highest)")
    classes = m.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        bad("'classes' is not a list of names")


def _counts(value, n: int, signed: bool = False) -> bool:
    """Whether ``value`` is a list of ``n`` integers (``>= 0`` unless ``signed``)."""
    return isinstance(value, list) and len(value) == n and all(type(v) is int and (signed or v >= 0) for v in value)


def check_writable(directory: str) -> None:
    """Create ``directory`` if needed and prove a file can be written and renamed there.

    Raises:
      CacheError: naming the directory and the reason (a read-only file system, no permission),
        before anything is computed.
    """
    try:
        os.makedirs(directory, exist_ok=True)
        write_file(os.path.join(directory, "probe"), b"", sync_dir=False)
        os.remove(os.path.join(directory, "probe"))
    except OSError as e:
        reason = "a read-only file system" if e.errno == errno.EROFS else (e.strerror or str(e))
        raise CacheError(f"cache directory {directory} cannot be written ({reason}); choose a writable "
                         "out_dir=DIR") from None


@contextlib.contextmanager
def created_dir(directory: str):
    """If ``directory`` does not exist yet and the block raises, remove it again when it is empty
    (a failed first run leaves nothing behind)."""
    existed = os.path.lexists(directory)
    try:
        yield
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise


@contextlib.contextmanager
def lock(directory: str):
    """Hold an flock on ``directory`` itself (released if the process dies; no lock file is
    left) while a run writes the cache.

    Raises:
      CacheError: another run holds it.
    """
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CacheError(f"{directory}: another cache run is writing this directory; wait for it "
                             "to finish") from None
        yield
    finally:
        os.close(fd)


def attempted_shards(directory: str) -> set[int]:
    """Numbers of the shards whose keys file some worker's attempt has written (still under its
    temporary name): how far a distributed run has got."""
    out = set()
    for n in os.listdir(directory):
        m = TEMP_RE.match(n)
        k = KEYS_RE.match(m.group("final")) if m and m.group("attempt") else None
        if k:
            out.add(int(k.group("n")))
    return out


def remove_leftovers(directory: str) -> list[str]:
    """Delete temporary files (``*.tmp`` of this module's own patterns) that a killed run or a
    killed worker left; returns their names. Other files are never touched."""
    return _remove_names(directory, TEMP_RE.match)


def remove_unreferenced(directory: str, manifest: dict) -> list[str]:
    """Delete shard, keys and examples files that match this cache's name patterns but that the
    manifest does not list (a killed run's last shard, a previous data set's index); returns their names."""
    listed = {s["file"] for s in manifest["shards"]} | {s["keys"] for s in manifest["shards"]}
    if manifest.get("complete"):
        listed.add(manifest["examples"]["file"])
    return _remove_names(directory, lambda n: (SHARD_RE.match(n) or KEYS_RE.match(n) or EXAMPLES_RE.match(n))
                         and n not in listed)


def _remove_names(directory: str, chosen) -> list[str]:
    """Delete the files of ``directory`` whose names ``chosen`` accepts (then fsync it once);
    returns their names, sorted."""
    out = sorted(n for n in os.listdir(directory) if chosen(n))
    for n in out:
        os.remove(os.path.join(directory, n))
    if out:
        fsync_dir(directory)
    return out


def remove_shards(directory: str, entries: list) -> list[str]:
    """Delete the files of shard ``entries`` (``--repair``): names are rebuilt from each entry's
    shard number, never taken from the manifest's text. Returns the names deleted."""
    out = []
    for s in entries:
        for name in (shard_name(s["shard"]), keys_name(s["shard"])):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
                out.append(name)
    fsync_dir(directory)
    return out
