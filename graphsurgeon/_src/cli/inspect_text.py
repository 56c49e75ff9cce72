"""The text ``graphsurgeon inspect`` prints: the library's report (a dict) for a terminal."""
from __future__ import annotations

import collections

from graphsurgeon._src.mixins import counted


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return str(n)


def _shape(shape) -> str:
    """A tensor's shape as text: ``[None, 160]``, ``[]`` for a scalar, ``unknown`` when its rank is."""
    return "unknown" if shape is None else str(shape)


def _row(v: dict, width: int, tag: str) -> str:
    """A checkpoint tensor's row: its name padded to ``width``, dtype, shape, size, and ``tag``."""
    return f"  {v['name']:<{width}}  {v['dtype']:<8} {str(v['shape']):<18} {_human(v['bytes'])}{tag}"


def format_text(report: dict) -> str:
    """The report of :func:`graphsurgeon.inspect` as text for a terminal, in command-line words."""
    lines = [f"{report['path']}: {report['kind']}" + (f" (prefix {report['checkpoint']})" if report["checkpoint"] else "")]
    if report["object_graph"]:
        lines.append("object-based (TF2) checkpoint: object graph present (_CHECKPOINTABLE_OBJECT_GRAPH; not a "
                     "variable, not counted below)")
    if report["variables"]:
        lines.append(f"{counted(len(report['variables']), 'variable')}, {_human(report['total_bytes'])}")
        width = max(len(v["name"]) for v in report["variables"])
        by_scope = collections.defaultdict(list)
        for v in report["variables"]:
            by_scope[v["name"].split("/")[0]].append(v)
        for scope, info in report["scopes"].items():
            opt = f", optimizer state {_human(info['optimizer_bytes'])}" if info["optimizer_bytes"] else ""
            lines.append(f"[{scope}] {counted(info['variables'], 'variable')}, {_human(info['bytes'])}{opt}")
            for v in report["variables"]:
                if v["name"] == scope or v["name"].startswith(scope + "/"):
                    lines.append(_row(v, width, "" if v["kind"] == "model" else f"  ({v['kind']})"))
    if report["unread"]:
        unread = report["unread"]
        opt = sum(v["bytes"] for v in unread if v["kind"] == "optimizer")
        alias = sum(v["bytes"] for v in unread if v["kind"] == "alias")
        lines.append(f"not read by the serving function, not counted above: {counted(len(unread), 'checkpoint tensor')}, "
                     f"{_human(sum(v['bytes'] for v in unread))}" + (f", optimizer state {_human(opt)}" if opt else "")
                     + (f", second copies of variables above {_human(alias)}" if alias else ""))
        width = max(len(v["name"]) for v in unread)
        for v in unread:
            tag = {"optimizer": "  (optimizer)", "alias": f"  (alias of {v.get('of')})"}.get(v["kind"], "")
            lines.append(_row(v, width, tag))
    g = report["graph"]
    if g:
        lines.append(f"graph: {counted(g['ops'], 'op')}")
        width = max(map(len, g["ops_per_scope"]), default=0)
        for scope, n in g["ops_per_scope"].items():
            lines.append(f"  {scope:<{width}}  {counted(n, 'op')}")
        lines.append("likely inputs: " + (", ".join(f"{i['name']} {i['dtype']} {_shape(i['shape'])}" for i in g["inputs"])
                                          or "none"))
        lines.append("likely outputs: " + (", ".join(g["outputs"]) or "none"))
        for key, sig in g["signatures"].items():
            lines.append(f"signature '{key}' ({sig['method']}):")
            for side in ("inputs", "outputs"):
                for k, t in sig[side].items():
                    lines.append(f"  {side[:-1]:<6} {k:<16} {t['name']:<32} {t['dtype']} {_shape(t['shape'])}")
        if g["weight_constants"]:
            lines.append(f"weight-like constants ({len(g['weight_constants'])}; thaw turns them into variables):")
            consts = g["weight_constants"]
            width, shapes = max(len(c["name"]) for c in consts), max(len(str(c["shape"])) for c in consts)
            for c in consts:
                lines.append(f"  {c['name']:<{width}}  {c['dtype']:<8} {str(c['shape']):<{shapes}} -> "
                             f"{', '.join(c['consumers'])}")
        if g["unsafe_ops"]:
            lines.append(f"ops that touch files or run Python ({len(g['unsafe_ops'])}; restore refuses to run them "
                         "without --allow-unsafe-ops): " + ", ".join(f"{u['name']} ({u['op']})" for u in g["unsafe_ops"]))
    return "\n".join(lines)
