"""Two behaviours several classes share: a verb's result that reports itself as a JSON-ready dict,
and an object that a ``with`` statement closes; and :func:`plural`, :func:`agree`, :func:`counted`,
:func:`series` and :func:`listed`, the nouns, the words that agree with them, counts and lists its text gives."""
from __future__ import annotations

import dataclasses


class Report:
    """For the dataclass a verb returns (``MergeResult``, ``LearnResult`` ...): :meth:`to_dict` gives
    its fields, nested dataclasses as dicts, after the ``version`` of the JSON layout; the class
    itself says what :meth:`format_text` prints."""

    def to_dict(self) -> dict:
        return {"version": 1, **dataclasses.asdict(self)}

    def format_text(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} does not say how it is printed")


class Closing:
    """``with obj:`` returns ``obj`` and calls its ``close()`` at the end, however the block ends."""

    def close(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not say how it is closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def plural(noun: str, n: int) -> str:
    """``variable``, ``variables``; ``prefix``, ``prefixes``: ``noun``, plural (an ``s``, ``es`` after an ``s``, ``x``,
    ``ch`` or ``sh``) unless ``n`` is 1."""
    if n == 1:
        return noun
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def agree(n: int, one: str, more: str) -> str:
    """``one`` (``it``, ``lies``) when ``n`` is 1, else ``more`` (``them``, ``lie``): the word that agrees with
    ``n`` things."""
    return one if n == 1 else more


def counted(n: int, noun: str) -> str:
    """``1 variable``, ``2 variables``: ``n`` and ``noun``, plural (:func:`plural`) unless ``n`` is 1."""
    return f"{n} {plural(noun, n)}"


def series(items, limit: int | None = None, *, sep: str = ", ", count: str | None = None) -> str:
    """``a, b, c``: the items (``str`` of each) joined by ``sep``; of more than ``limit`` items, the first ``limit``
    and `` …`` (``a, b …``), then, with ``count`` (a noun), how many there are: ``a, b … (12 shards)``."""
    items = [str(i) for i in items]
    if limit is None or len(items) <= limit:
        return sep.join(items)
    return sep.join(items[:limit]) + " …" + (f" ({counted(len(items), count)})" if count else "")


def listed(noun: str, items, limit: int | None = None, *, count: bool = False) -> str:
    """``shard a``, ``shards a, b``: ``noun``, plural unless there is one item, then the items, of more than
    ``limit`` the first ``limit`` and `` …`` (:func:`series`), with ``count`` how many: ``shards a, b … (12 shards)``."""
    items = list(items)
    return f"{plural(noun, len(items))} {series(items, limit, count=noun if count else None)}"
