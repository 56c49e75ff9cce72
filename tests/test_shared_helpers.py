"""The small pieces several modules share: a result's to_dict, ``with`` that closes, the parsers'
common endings, reading a file or raising the caller's error."""
import dataclasses

import pytest

from graphsurgeon._src.cli import build_parser
from graphsurgeon._src.errors import CheckpointNotFoundError, CorruptCheckpointError, MergeHeadsError
from graphsurgeon._src.mixins import Closing, Report
from graphsurgeon._src.progress import Progress
from graphsurgeon._src.storage import bundle, files


@dataclasses.dataclass
class _Inner:
    n: int


@dataclasses.dataclass
class _Result(Report):
    directory: str
    inner: _Inner


def test_a_report_is_its_fields_after_the_version():
    assert _Result("d", _Inner(3)).to_dict() == {"version": 1, "directory": "d", "inner": {"n": 3}}
    with pytest.raises(NotImplementedError, match="_Result does not say how it is printed"):
        _Result("d", _Inner(3)).format_text()


def test_with_closes_however_the_block_ends():
    closed = []

    class Thing(Closing):
        def close(self):
            closed.append(True)

    t = Thing()
    with pytest.raises(KeyError):
        with t as same:
            assert same is t
            raise KeyError("x")
    assert closed == [True]
    with Progress(3, "work", "items", enabled=False) as p:
        p.update(1)
    assert p.done == 1 and not p.enabled


def test_read_bytes_raises_the_callers_error(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert files.read_bytes(str(tmp_path / "f"), MergeHeadsError) == b"abc"
    missing = str(tmp_path / "nope")
    with pytest.raises(MergeHeadsError, match=f"^{missing}: No such file or directory; incomplete$"):
        files.read_bytes(missing, MergeHeadsError, "; incomplete")
    with pytest.raises(CorruptCheckpointError, match=f"^{missing}.index: No such file or directory$"):
        bundle.read_index(missing)
    with pytest.raises(CheckpointNotFoundError, match=": Is a directory$"):
        files.read_bytes(str(tmp_path), CheckpointNotFoundError)


@pytest.mark.parametrize("command,endings", [
    ("inspect", ["--tags", "--json"]), ("plan", ["--json"]), ("retrain", ["--quiet", "--json"]),
    ("diff", ["--json"]), ("thaw", ["--json"]), ("migrate", ["--json"]),
    ("merge-heads", ["--tags", "--quiet", "--json"]), ("add-head", ["--json"]), ("remove-head", ["--json"]),
    ("learn-task", ["--tags", "--quiet", "--json"]), ("combine", ["--tags", "--quiet", "--json"]),
    ("add-class", ["--tags", "--json"]),
])
def test_each_command_ends_with_its_output_options(command, endings):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    flags = [a.option_strings[0] for a in sub._actions if a.option_strings and a.option_strings[0] not in
             ("-h", "--verbose", "--debug")]
    assert flags[-len(endings):] == endings
    assert callable(sub.get_default("func")) and sub.get_default("func").__name__.startswith("cmd_")
