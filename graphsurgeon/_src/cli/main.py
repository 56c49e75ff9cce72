"""Run a command line: quiet stderr, paths checked before TensorFlow loads, one line per failure."""
from __future__ import annotations

import os
import sys

from graphsurgeon._src.cli.messages import describe_error
from graphsurgeon._src.cli.parsers import build_parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or failure, 130 interrupted).

    Unless ``--verbose``, TensorFlow's start-up and logging noise never reaches stderr
    (:mod:`graphsurgeon._src.terminal`). Every failure is one line on stderr; ``--debug`` adds the traceback.
    """
    args = build_parser().parse_args(argv)
    from graphsurgeon._src import terminal

    if not args.verbose:
        terminal.quiet_stderr()
    try:
        return _run(args)
    finally:
        if not args.verbose:
            terminal.restore_stderr()


def _run(args) -> int:
    from graphsurgeon._src import terminal

    if not args.verbose:
        terminal.silence_tensorflow_logger()
    try:
        _check_paths(args)
        return args.func(args) or 0
    except KeyboardInterrupt:
        sys.stderr.write("graphsurgeon: interrupted\n")
        return 130
    except BrokenPipeError:  # `graphsurgeon ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as e:  # every failure is one line; --debug shows where it came from
        if args.debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"graphsurgeon {args.command}: error: {describe_error(e, args.command)}\n")
        sys.stderr.flush()
        return 2


# argument -> what names a model or checkpoint path, checked before TensorFlow is imported
_PATH_ARGS = ("path", "model", "src", "a", "b")


def _check_paths(args) -> None:
    """Resolve every model/checkpoint path argument first: a wrong path fails in milliseconds,
    without importing TensorFlow (:mod:`graphsurgeon._src.storage.paths` reads only file names)."""
    from graphsurgeon._src.storage.paths import resolve

    for name in _PATH_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            resolve(value, getattr(args, "tags", None) or ("serve",))
