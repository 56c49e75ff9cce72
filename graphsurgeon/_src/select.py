"""Choose variables (or ops) by scope pattern.

Patterns are matched on ``/`` boundaries against whole scope prefixes:

* a glob: ``hidden[12]``, ``InceptionV3/Mixed_7*``, ``Variable_1?``; ``*`` and
  ``?`` never cross a ``/``; ``**`` crosses any number of scopes;
* a regular expression written ``re:...`` (``re:hidden[0-9]+``), which must
  match a whole scope prefix too.

A pattern matches a name when it matches the name itself or one of its scope
prefixes, so ``vgg_16/fc8`` matches ``vgg_16/fc8/weights`` and never
``vgg_16/fc8_new/weights`` (TF-Slim's unanchored-prefix bug).

>>> names = ["vgg_16/fc7/weights", "vgg_16/fc8/biases", "vgg_16/fc8_new/biases"]
>>> match(["vgg_16/fc8"], names)
['vgg_16/fc8/biases']
>>> select(names, exclude=["re:vgg_16/fc8.*"])
['vgg_16/fc7/weights']
"""
from __future__ import annotations

import difflib
import re
from typing import Callable, Iterable

from graphsurgeon._src.errors import PatternError


def normalize_name(name) -> str:
    """A variable, tensor or op (or its name) as an op name: ``'a/b:0'`` -> ``'a/b'``."""
    if not isinstance(name, str):
        name = getattr(name, "name", None) or str(name)
    return re.sub(r":\d+$", "", name)


def natural_key(name: str) -> tuple:
    """Sort key that orders digits by value: ``Variable_2`` before ``Variable_10``.

    >>> sorted(["Variable_10", "Variable_2", "Variable"], key=natural_key)
    ['Variable', 'Variable_2', 'Variable_10']
    """
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p != "")


def as_list(patterns) -> list[str]:
    """``None``, one pattern, or an iterable of patterns -> a list of strings."""
    if patterns is None:
        return []
    if isinstance(patterns, str):
        return [patterns]
    return [p if isinstance(p, str) else normalize_name(p) for p in patterns]


def _glob_to_regex(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "]") else i + 1)
            if j < 0:
                raise PatternError(f"pattern '{glob}': unclosed '[' at position {i}")
            body = glob[i + 1 : j]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A predicate ``name -> bool`` for one pattern (see the module docstring).

    Raises:
      PatternError: an empty pattern or an invalid regular expression.
    """
    if not isinstance(pattern, str) or not pattern.strip("/ "):
        raise PatternError(f"empty scope pattern {pattern!r}; expected a scope such as 'hidden1' or 're:hidden[0-9]'")
    if pattern.startswith("re:"):
        body = pattern[3:]
    else:
        body = _glob_to_regex(normalize_name(pattern).rstrip("/"))
    try:
        rx = re.compile(f"(?:{body})(?:/.*)?", re.DOTALL)
    except re.error as e:
        raise PatternError(f"pattern '{pattern}': invalid regular expression ({e})") from None
    return lambda name: rx.fullmatch(name) is not None


def scopes(names: Iterable[str]) -> list[str]:
    """Every scope prefix of ``names``, names included, sorted."""
    out = set()
    for n in names:
        parts = n.split("/")
        for k in range(1, len(parts) + 1):
            out.add("/".join(parts[:k]))
    return sorted(out)


def closest(pattern: str, names: Iterable[str], n: int = 5) -> list[str]:
    """Existing scopes that look most like ``pattern`` (for error messages)."""
    key = pattern[3:] if pattern.startswith("re:") else pattern
    all_scopes = scopes(names)
    # The same name under an extra scope first (slim's ops live under 'InceptionV3/InceptionV3/...').
    hits = [s for s in all_scopes if s.endswith("/" + key)][:n]
    hits += [h for h in difflib.get_close_matches(key, all_scopes, n=n, cutoff=0.4) if h not in hits]
    hits = hits[:n]
    if not hits:
        top = sorted({s.split("/")[0] for s in all_scopes})
        hits = top[:n]
    return hits


def match(patterns, names: Iterable[str], *, what: str = "variable", allow_empty: bool = False,
          arg: str = "") -> list[str]:
    """The sorted names that any of ``patterns`` matches.

    Args:
      patterns: one pattern or a list (see the module docstring).
      names: candidate names (``:0`` suffixes are dropped).
      what: the kind of name, for messages.
      allow_empty: if False, a pattern that matches nothing raises.
      arg: the argument the patterns were given as; the message starts with it (``trainable: pattern ...``).

    Raises:
      PatternError: a pattern matches no name; the message lists the closest scopes.
    """
    names = sorted({normalize_name(n) for n in names})
    chosen = set()
    for p in as_list(patterns):
        pred = compile_pattern(p)
        hits = [n for n in names if pred(n)]
        if not hits and not allow_empty:
            near = closest(p, names)
            raise PatternError(f"{arg + ': ' if arg else ''}pattern '{p}' matches no {what}; closest scopes: "
                               f"{', '.join(near) if near else '(none)'}")
        chosen.update(hits)
    return sorted(chosen)


def select(names: Iterable[str], include=None, exclude=None, *, what: str = "variable") -> list[str]:
    """TF-Slim's ``get_variables_to_restore(include, exclude)`` on names, anchored on ``/``.

    ``include`` None means every name. Every pattern must match something.
    """
    names = sorted({normalize_name(n) for n in names})
    chosen = set(match(include, names, what=what)) if include else set(names)
    chosen -= set(match(exclude, names, what=what))
    return sorted(chosen)
