"""How far a file being written by several threads is complete: the writers report the ranges they
wrote, in any order; readers wait until every byte before an offset is in the file."""
from __future__ import annotations

import threading


class WrittenRanges:
    """Tracks the ranges written into one file.

    >>> w = WrittenRanges()
    >>> w.add(10, 20); w.through
    0
    >>> w.add(0, 10); w.through
    20
    """

    def __init__(self):
        self.through = 0  # every byte before this offset is written
        self._pending = []  # (start, end) written beyond ``through``
        self._failed = False
        self._cond = threading.Condition()

    def add(self, start: int, end: int) -> None:
        """Bytes ``[start, end)`` are written (ranges may overlap or repeat)."""
        with self._cond:
            self._pending.append((start, end))
            moved = True
            while moved:
                moved = False
                for s, e in list(self._pending):
                    if s <= self.through:
                        self.through = max(self.through, e)
                        self._pending.remove((s, e))
                        moved = True
            self._cond.notify_all()

    def fail(self) -> None:
        """The file will not be completed (a write failed, or it was abandoned): waiters return False."""
        with self._cond:
            self._failed = True
            self._cond.notify_all()

    def wait(self, end: int) -> bool:
        """Wait until every byte before ``end`` is written (True), or the file failed first (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self.through >= end or self._failed)
            return self.through >= end
