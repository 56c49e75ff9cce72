"""Every `$ ` command in examples/*/README.md runs, exits 0 and prints what the README shows.

In a ```console block, the lines after a `$ ` command (up to the next one) are output the
command must print: each, with runs of spaces collapsed, must appear in its stdout. A ```text
block right after a `<!-- test-printed -->` line is what the README's commands printed in a real
run: each of its lines, with runs of spaces collapsed and the numbers a run varies masked (see
``_mask``), must be a line the commands print, in the block's order.
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

READMES = sorted(glob.glob(os.path.join(ROOT, "examples", "*", "README.md")))
# client scripts whose stderr must stay empty: no TensorFlow start-up lines (absl's banner, oneDNN, cudart_stub),
# which TF_CPP_MIN_LOG_LEVEL=3 (set by conftest for every command here) does not stop
QUIET_SCRIPTS = ("examples/04_many_heads/query.py",)


def commands(readme):
    """``[(command, [expected output lines])]`` of a README's console blocks."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", open(readme).read(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif line.strip() and out:
                out[-1][1].append(line.strip())
    return out


def replacements(readme):
    """``[(old, new)]`` from ``<!-- test-replace: OLD => NEW -->`` lines: the test runs the README's
    commands with OLD replaced by NEW (a shorter run than the README's own, e.g. fewer tasks)."""
    return re.findall(r"<!-- test-replace: (.*?) => (.*?) -->", open(readme).read())


def printed_blocks(readme):
    """The ```text blocks that a ``<!-- test-printed -->`` line precedes, as lists of lines."""
    return [b.splitlines() for b in re.findall(r"<!-- test-printed -->\n```text\n(.*?)```", open(readme).read(), re.S)]


def _squeeze(text):
    return re.sub(r"[ \t]+", " ", text)


def _mask(line):
    """``line`` with the numbers a run varies as ``#``: those with a decimal point or a thousands separator
    (accuracies, seconds, byte counts: ``0.9665``, ``9.9``, ``103,534``) and percentages (``80%``); counts
    (``(of 269 examples)``, ``id 1, 5 classes``) stay."""
    return _squeeze(re.sub(r"\d+(?:[.,]\d+)+|\d+(?=%)", "#", line)).rstrip()


def _first_not_printed(lines, printed):
    """The first of ``lines`` (masked) that is not a line of ``printed`` (masked) after the one the line
    before it matched; None when every line is there, in order."""
    got, pos = [_mask(line) for line in printed], 0
    for line in lines:
        if _mask(line) not in got[pos:]:
            return line
        pos = got.index(_mask(line), pos) + 1
    return None


def test_expectations_are_parsed_and_can_fail():
    cmds = commands(os.path.join(ROOT, "examples", "01_retrain_upper_layers", "README.md"))
    assert cmds and all(expected for _, expected in cmds)
    assert _squeeze("hidden3/weights    restored") != _squeeze("hidden3/weights dropped")
    (block,) = printed_blocks(os.path.join(ROOT, "examples", "05_continual", "README.md"))
    assert block[0].startswith("learned task 'digits59' (id 1, 5 classes) with lwf in ")
    run = ["learned task 'd' (id 1, 5 classes) with lwf in 1.0 s: accuracy train 0.9920 (of 627 examples), test "
           "0.9665 (of 269 examples)", "/tmp/x: 2 tasks, 103,683 bytes", "  new class recognized on 80% of it"]
    assert _first_not_printed(["learned task 'd' (id 1, 5 classes) with lwf in 9.9 s: accuracy train 0.5 (of 627 "
                               "examples), test 1.0000 (of 269 examples)", "/tmp/x: 2 tasks, 9,999 bytes",
                               "  new class  recognized on 7% of it"], run) is None
    old_wording = "learned task 'd' (id 1, 5 classes) with lwf in 9.9 s: accuracy train 0.9920, test 0.9665"
    other_count = run[0].replace("627", "626")
    for lines, missing in (([old_wording], old_wording), ([other_count], other_count), ([run[1], run[0]], run[0]),
                           (["/tmp/x: 2 tasks, 9 bytes;"], "/tmp/x: 2 tasks, 9 bytes;")):
        assert _first_not_printed(lines, run) == missing


@pytest.mark.parametrize("readme", READMES, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_readme_commands_run(readme, tmp_path):
    cmds = commands(readme)
    assert cmds, f"{readme} has no commands"
    env = {**os.environ, "PYTHONPATH": ROOT}
    printed = []
    for cmd, expected in cmds:
        assert expected, f"{readme}: `{cmd}` shows no output to check"
        for old, new in replacements(readme):
            cmd = cmd.replace(old, new)
        argv = shlex.split(cmd.replace("/tmp/gs-example", str(tmp_path)))
        if argv[0] == "graphsurgeon":
            argv = [sys.executable, "-m", "graphsurgeon"] + argv[1:]
        elif argv[0] == "python":
            argv[0] = sys.executable
        p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        assert p.returncode == 0, f"{cmd}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        assert argv[1] not in QUIET_SCRIPTS or p.stderr == "", f"{cmd}\nprinted on stderr:\n{p.stderr[-3000:]}"
        got = _squeeze(p.stdout.replace(str(tmp_path), "/tmp/gs-example"))
        for line in expected:
            assert _squeeze(line) in got, f"{cmd}\nexpected: {line}\ngot:\n{p.stdout[-3000:]}"
        printed += p.stdout.replace(str(tmp_path), "/tmp/gs-example").splitlines()
    for block in printed_blocks(readme):
        missing = _first_not_printed(block, printed)
        assert missing is None, f"{readme}: the commands printed no line like\n{missing}\nthey printed:\n" + \
            "\n".join(printed)[-3000:]


@pytest.fixture(scope="module")
def example01_inputs(tmp_path_factory):
    """What example 01's make_model.py writes (its model and data), made once; each snippet test reads a copy."""
    d = tmp_path_factory.mktemp("example01")
    subprocess.run([sys.executable, "examples/01_retrain_upper_layers/make_model.py", str(d)], cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": ROOT}, check=True, capture_output=True)
    return d


@pytest.mark.parametrize("readme", READMES, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_readme_python_snippets_run(readme, tmp_path, example01_inputs):
    """The ```python blocks of example READMEs run too (on a copy of what example 01 made)."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    shutil.copytree(example01_inputs, tmp_path, dirs_exist_ok=True)
    state = tmp_path / "original" / "checkpoint"  # Saver wrote absolute paths: make them the copy's
    state.write_text(state.read_text().replace(str(example01_inputs), str(tmp_path)))
    code = "\n".join(re.findall(r"```python\n(.*?)```", open(readme).read(), re.S))
    code = code.replace("/tmp/gs-example", str(tmp_path)).replace("epochs=40", "epochs=2")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
