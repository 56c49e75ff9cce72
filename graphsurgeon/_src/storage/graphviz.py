"""Render DOT text to SVG with Graphviz's ``dot`` program, when it is on PATH."""
from __future__ import annotations

import os
import shutil
import subprocess

from graphsurgeon._src.errors import ConfigError


def can_draw() -> bool:
    """Whether Graphviz's ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def write_svg(dot_text: str, path: str) -> None:
    """Run ``dot -Tsvg`` on ``dot_text`` and write the SVG to ``path`` (temp file, then rename).

    Raises:
      ConfigError: ``dot`` is not on PATH, or it failed (its first error line is named).
    """
    exe = shutil.which("dot")
    if exe is None:
        raise ConfigError("an SVG picture needs Graphviz's `dot` program on PATH (apt install graphviz / brew "
                          "install graphviz); the DOT text can be written without it")
    proc = subprocess.run([exe, "-Tsvg"], input=dot_text.encode(), capture_output=True)
    if proc.returncode != 0:
        first = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[0]
        raise ConfigError(f"dot -Tsvg failed: {first}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(proc.stdout)
    os.replace(tmp, path)
