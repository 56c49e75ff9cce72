"""Two behaviours several classes share: a verb's result that reports itself as a JSON-ready dict,
and an object that a ``with`` statement closes; and :func:`plural`, :func:`agree`, :func:`counted` and
:func:`listed`, the nouns, the words that agree with them, counts and lists its text gives."""
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
    """``variable``, ``variables``: ``noun``, plural (an ``s``) unless ``n`` is 1."""
    return noun if n == 1 else noun + "s"


def agree(n: int, one: str, more: str) -> str:
    """``one`` (``it``, ``lies``) when ``n`` is 1, else ``more`` (``them``, ``lie``): the word that agrees with
    ``n`` things."""
    return one if n == 1 else more


def counted(n: int, noun: str) -> str:
    """``1 variable``, ``2 variables``: ``n`` and ``noun``, plural (an ``s``) unless ``n`` is 1."""
    return f"{n} {plural(noun, n)}"


def listed(noun: str, items) -> str:
    """``shard a``, ``shards a, b``: ``noun``, plural (an ``s``) unless there is one item, then the items."""
    items = [str(i) for i in items]
    return f"{plural(noun, len(items))} {', '.join(items)}"
