"""Staging directories: write under a temporary name, then move into place.

A staging directory ``.tmp-<what>-XXXX`` is created beside the destination and locked
(``flock`` on the directory) for as long as its owner runs; an ``owner`` file inside marks
it complete. A run that is killed leaves its staging directory behind, unlocked: the next
run that stages into the same directory removes it first (:func:`sweep`). Moving into place
renames the files in the order given (data before index) and then fsyncs the directory, so
the new names survive a crash.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time

from graphsurgeon._src.errors import ConfigError

OWNER_FILE = "owner"
_UNMARKED_GRACE_S = 3600  # a staging directory with no owner file is being created (or was killed at once)


class StagingDir:
    """``with StagingDir(directory, "migrate") as path:`` — a locked, private directory
    ``directory/.tmp-migrate-XXXX`` (``directory`` is created if needed); removed on exit.
    Stale ones left by killed runs are swept on entry. When the block fails, the directories the
    entry created for ``directory`` are removed too (if nothing else was put in them)."""

    def __init__(self, directory: str, what: str):
        self.directory, self.prefix = directory or ".", f".tmp-{what}-"
        self.path, self.swept, self._fd, self._created = None, [], None, []

    def __enter__(self) -> str:
        d = os.path.abspath(self.directory)
        while not os.path.exists(d):  # deepest first
            self._created.append(d)
            d = os.path.dirname(d)
        os.makedirs(self.directory, exist_ok=True)
        self.swept = sweep(self.directory, self.prefix)
        self.path = tempfile.mkdtemp(prefix=self.prefix, dir=self.directory)
        self._fd = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with open(os.path.join(self.path, OWNER_FILE), "w") as f:
            f.write(f"{os.getpid()}\n")
        return self.path

    def __exit__(self, exc_type, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        if exc_type is not None:
            for d in self._created:
                try:
                    os.rmdir(d)
                except OSError:  # not empty: something else lives there now
                    break


def check_destination(path: str, what: str) -> None:
    """Refuse, before anything is computed, a destination ``path`` that cannot be created where it is:
    a component above it that exists but is not a directory, or a nearest existing directory above it
    (and ``path`` itself, when it is a directory already) that this process cannot write, or one in
    which a new directory cannot be made (tried: one is made and removed there).

    Raises:
      ConfigError: starting with ``what`` (``"out_dir=o/x"``), naming the file or the directory and
        why (a file, not a directory; permission denied; a read-only file system).
    """
    path = os.fspath(path)
    target = os.path.abspath(path)
    above = os.path.dirname(target)
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        given = path.rstrip(os.sep)
        while given and os.path.abspath(given) != above:
            given = os.path.dirname(given)
        kind = "a file, not a directory" if os.path.isfile(above) else "not a directory"
        raise ConfigError(f"{what}: '{given or above}' is {kind}")
    for place in [above] + ([target] if os.path.isdir(target) else []):
        if not os.access(place, os.W_OK | os.X_OK):
            read_only = os.statvfs(place).f_flag & os.ST_RDONLY
            reason = f"{place} is on a read-only file system" if read_only else f"permission denied in {place}"
            raise ConfigError(f"{what} cannot be written: {reason}")
    try:  # what access bits do not show (/proc, /sys, ACLs, a full disk): make and remove a directory there
        os.rmdir(tempfile.mkdtemp(prefix=".gs-probe-", dir=above))
    except OSError as e:
        raise ConfigError(f"{what} cannot be written: a directory cannot be made in {above} "
                          f"({e.strerror or e})") from None


def sweep(directory: str, prefix: str) -> list[str]:
    """Remove the staging directories ``directory/<prefix>*`` whose owner is gone (their lock
    can be taken); returns their paths. Directories of runs still going are left alone."""
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not name.startswith(prefix) or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner holds the lock: still running
            os.close(fd)
            continue
        try:
            marked = os.path.exists(os.path.join(path, OWNER_FILE))
            if marked or time.time() - os.stat(path).st_mtime > _UNMARKED_GRACE_S:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def commit(moves: list[tuple[str, str]]) -> None:
    """Rename each ``(staged, final)`` pair in order (``final`` must not exist), then fsync the
    directories that received them."""
    for staged, final in moves:
        if os.path.exists(final):
            raise FileExistsError(errno.EEXIST, "appeared while it was being written; nothing was replaced", final)
        os.replace(staged, final)
    for d in sorted({os.path.dirname(os.path.abspath(final)) for _, final in moves}):
        fsync_dir(d)


def publish(staged: str, final: str, names, aside: str) -> None:
    """Put what directory ``staged`` holds at ``final``.

    If ``final`` does not exist, ``staged`` is renamed to it. Otherwise the entries of ``final``
    named in ``names`` or present in ``staged`` are first moved into the new directory ``aside``
    (beside ``staged``, on the same file system), then ``staged``'s entries are moved into
    ``final``; other entries of ``final`` are kept. If a move fails, the moves made are undone in
    reverse, so ``final`` holds what it held before. The receiving directories are fsync'd.
    """
    if not os.path.lexists(final):
        os.replace(staged, final)
        fsync_dir(os.path.dirname(os.path.abspath(final)))
        return
    new = sorted(os.listdir(staged))
    old = [n for n in sorted(set(names) | set(new)) if os.path.lexists(os.path.join(final, n))]
    os.mkdir(aside)
    done = []  # (from, to) of the moves made, in order
    try:
        for src, dst in [(os.path.join(final, n), os.path.join(aside, n)) for n in old] + \
                        [(os.path.join(staged, n), os.path.join(final, n)) for n in new]:
            os.replace(src, dst)
            done.append((src, dst))
    except BaseException:
        for src, dst in reversed(done):
            os.replace(dst, src)
        raise
    fsync_dir(final)


def fsync_dir(path: str) -> None:
    """Make the directory entries of ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
