"""Progress of long work (training, caching, casting), shown once for the whole job.

On a terminal it is one tqdm bar with the current figures (loss, accuracy) in its postfix.
When stderr is not a terminal (a log file, CI), it is a plain line every ``every`` seconds and
one at the end, never carriage-return fragments. Disabled, it shows nothing.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

from graphsurgeon._src.mixins import Closing


class Progress(Closing):
    """``with Progress(total, "training", "batches") as p: p.update(1, loss=0.3)``.

    Args:
      total: units of work expected (may be revised with :meth:`set_total`).
      desc, unit: what is done and what is counted, plural ("training", "batches").
      enabled: False shows nothing (``--quiet``).
      every: seconds between plain lines when stderr is not a terminal.
      file: where to write (default ``sys.stderr`` at construction).
    """

    def __init__(self, total: int, desc: str, unit: str, *, enabled: bool = True, every: float = 10.0, file=None):
        self.total, self.desc, self.unit, self.every = int(total), desc, unit, every
        self.file = file if file is not None else sys.stderr
        self.enabled = enabled
        self.done = 0
        self.postfix: dict = {}
        self._start = self._last = time.monotonic()
        isatty = getattr(self.file, "isatty", lambda: False)()
        self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=self.file, dynamic_ncols=True,
                         smoothing=0.1) if enabled and isatty else None

    def set_total(self, total: int) -> None:
        self.total = int(total)
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def update(self, n: int = 1, **postfix) -> None:
        """Count ``n`` more units; ``postfix`` figures (floats shown with 4 digits) replace the old ones."""
        self.done += n
        if postfix:
            self.postfix.update(postfix)
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in self.postfix.items()}, refresh=False)
            self._bar.update(n)
        elif time.monotonic() - self._last >= self.every:
            self._line()

    def _line(self) -> None:
        self._last = time.monotonic()
        figures = "".join(f", {k} {_fmt(v)}" for k, v in self.postfix.items())
        self.file.write(f"{self.desc}: {self.done}/{self.total} {self.unit}{figures} "
                        f"({self._last - self._start:.0f} s)\n")
        self.file.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.done:
            self._line()
        self.enabled = False


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else v
