"""What the command line shows on stderr: its own lines, never TensorFlow's start-up noise.

TensorFlow's C++ runtime writes log lines straight to file descriptor 2 (absl's
"WARNING: All log messages before absl::InitializeLog() is called ...", the CPU feature
notice, ``cudart_stub`` and ``cuInit`` lines), some of them before
``TF_CPP_MIN_LOG_LEVEL`` is read, and its Python side adds deprecation warnings.
:func:`quiet_stderr` points descriptor 2 at a pipe whose reader thread drops those lines and
passes every other line on to the real stderr (so a crash message or a fatal ``F`` line still
shows); Python's ``sys.stderr`` (our own messages, tqdm bars) is rebound to the real stderr
directly. :func:`restore_stderr` undoes it and drains the pipe.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import warnings

# glog-style lines (I/W/E + MMDD), absl's pre-init banner and the CPU-feature notice's second line.
_NOISE = re.compile(
    rb"^(?:[IWE]\d{4} [\d:.]+\s+\d+ [^\]]+\] .*"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .*in other operations, rebuild TensorFlow .*"
    rb"|WARNING:tensorflow:.*|Instructions for updating:|.*This API was designed for TensorFlow v1\..*)\s*$"
)

_state: dict = {}


def is_noise(line: bytes) -> bool:
    """True for a line of TensorFlow's start-up and logging noise (see the module docstring)."""
    return bool(_NOISE.match(line))


def quiet_stderr() -> None:
    """Filter TensorFlow's noise out of descriptor 2 and silence Python warnings and TF's logger.

    Side effects: replaces file descriptor 2 with a pipe read by a daemon thread; rebinds
    ``sys.stderr`` to a duplicate of the original descriptor; sets ``TF_CPP_MIN_LOG_LEVEL=3``
    (unless already set) and ignores Python warnings. Call :func:`restore_stderr` at exit.
    """
    if _state:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:  # no usable descriptor 2 (embedded interpreters): leave stderr alone
        return
    sys.stderr = os.fdopen(os.dup(real), "w", buffering=1, encoding="utf-8", errors="replace")
    thread = threading.Thread(target=_pump, args=(read_end, real), daemon=True, name="graphsurgeon-stderr")
    thread.start()
    _state.update(real=real, thread=thread, read_end=read_end)


def _pump(read_end: int, real: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not is_noise(line))
        if out:
            os.write(real, out)
    if pending and not is_noise(pending):
        os.write(real, pending)
    os.close(read_end)


def restore_stderr() -> None:
    """Put the original descriptor 2 back and forward what is still in the pipe."""
    if not _state:
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    real, thread = _state["real"], _state["thread"]
    os.dup2(real, 2)  # closes the pipe's last write end: the reader sees end of file
    thread.join(timeout=5)
    os.close(real)
    _state.clear()


def silence_tensorflow_logger() -> None:
    """TensorFlow's Python logger at ERROR (its deprecation notices are WARNINGs)."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def workers_stderr():
    """While the pipeline runs, descriptor 2 (which Beam's worker processes inherit) points at a
    temporary file, and neither exceptions in Beam's own threads nor its log records are printed: the workers' start-up
    lines, a shell's "Killed" and a dead worker's thread traceback would otherwise reach the terminal
    beside the one line a failure gives. ``sys.stderr`` (our progress) keeps the real stderr."""
    sys.stderr.flush()
    saved, stream, hook = os.dup(2), sys.stderr, threading.excepthook
    try:
        if stream.fileno() == 2:
            sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (captured): left as it is
        pass
    threading.excepthook = lambda args: None
    beam_log = logging.getLogger("apache_beam")
    level, beam_log.level = beam_log.level, logging.CRITICAL + 1  # a dead worker's errors: the failure says it once
    try:
        with tempfile.TemporaryFile() as f:
            os.dup2(f.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        threading.excepthook, beam_log.level = hook, level
        if sys.stderr is not stream:
            sys.stderr.close()
            sys.stderr = stream
