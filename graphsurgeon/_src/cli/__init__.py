"""The ``graphsurgeon`` command: a thin layer over the library.

Errors on bad input are one line on stderr and exit status 2, with no traceback.

Modules: :mod:`.parsers` and :mod:`.task_parsers` (flags), :mod:`.commands` and :mod:`.task_commands`
(what each command runs), :mod:`.messages` (errors in flag words), :mod:`.main` (running a command line).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

from graphsurgeon._src.cli.main import main  # noqa: E402
from graphsurgeon._src.cli.messages import describe_error, migrate_flags, rule_flags, to_flags  # noqa: E402
from graphsurgeon._src.cli.parsers import build_parser  # noqa: E402

__all__ = ["build_parser", "describe_error", "main", "migrate_flags", "rule_flags", "to_flags"]
