"""The README's "JSON output" table is what the commands print: each command's `--json` keys are
exactly the documented ones, and every object carries "version"."""
import dataclasses
import json
import os
import re

import numpy as np
import pytest

from graphsurgeon._src.add_class import AddClassResult
from graphsurgeon._src.cli import main
from graphsurgeon._src.combine import CombineResult
from graphsurgeon._src.continual.learn import LearnResult
from graphsurgeon._src.migrate import MigrationResult
from graphsurgeon._src.multihead.merge import MergeResult
from graphsurgeon._src.thaw import ThawResult

from helpers import ROOT


def documented():
    """``{command: [top-level keys]}`` from the README's table (a row may name several commands)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    table = text.split("## JSON output", 1)[1].split("\n## ", 1)[0]
    out = {}
    for row in re.findall(r"^\| (`[^|]+) \| (`.+) \|$", table, re.M):
        keys = re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", row[1]))  # nested keys in (...) are not top-level
        for command in re.findall(r"`([\w-]+)`", row[0]):
            out[command] = keys
    return out


DOC = documented()


def test_the_table_is_parsed_and_names_every_reporting_command():
    assert set(DOC) == {"inspect", "plan", "retrain", "cache", "migrate", "diff", "thaw", "merge-heads", "add-head",
                        "remove-head", "learn-task", "combine", "add-class", "demo"}
    assert all(keys[0] == "version" for keys in DOC.values())
    assert DOC["inspect"][:3] == ["version", "path", "kind"] and "name" not in DOC["inspect"]


@pytest.fixture(scope="module")
def printed(seed004, tmp_path_factory):
    """``{command: the JSON object it printed}`` for the commands that run in seconds on seed 004's MLP."""
    prefix, x, y = seed004
    d = tmp_path_factory.mktemp("json")
    data = str(d / "data.npz")
    np.savez(data, x=x, y=y)
    runs = {
        "inspect": ["inspect", prefix],
        "plan": ["plan", "--model", prefix, "--head", "hidden3/Relu:3", "--trainable", "hidden3"],
        "retrain": ["retrain", "--model", prefix, "--head", "hidden3/Relu:5", "--data", data, "--out", str(d / "r"),
                    "--epochs", "1", "--quiet"],
        "cache": ["cache", "--model", prefix, "--cut", "hidden2/Relu", "--data", data, "--out", str(d / "c"),
                  "--quiet"],
        "migrate": ["migrate", prefix, str(d / "m" / "model.ckpt"), "--quiet"],
        "diff": ["diff", prefix, str(d / "m" / "model.ckpt")],
    }
    out = {}
    for command, argv in runs.items():
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(argv + ["--json"]) == 0, command
        out[command] = json.loads(buf.getvalue())
    return out


@pytest.mark.parametrize("command", ["inspect", "plan", "retrain", "cache", "migrate", "diff"])
def test_printed_keys_are_the_documented_ones(printed, command):
    assert sorted(printed[command]) == sorted(DOC[command])
    assert printed[command]["version"] == 1


def test_nested_keys_of_inspect_and_plan(printed):
    assert sorted(printed["inspect"]["variables"][0]) == ["bytes", "dtype", "kind", "name", "shape"]
    assert sorted(printed["inspect"]["graph"]) == sorted(["inputs", "outputs", "signatures", "ops", "op_types",
                                                          "ops_per_scope", "unsafe_ops", "weight_constants"])
    assert sorted(printed["plan"]["variables"][0]) == sorted(
        ["name", "status", "shape", "dtype", "checkpoint_name", "checkpoint_shape", "checkpoint_dtype", "trainable",
         "lr_mult", "trains_from"])


def _fields(cls):
    return ["version"] + [f.name for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("command,cls", [("merge-heads", MergeResult), ("add-head", MergeResult),
                                         ("remove-head", MergeResult), ("learn-task", LearnResult),
                                         ("combine", CombineResult), ("add-class", AddClassResult)])
def test_result_types_print_their_fields(command, cls):
    """These commands print ``result.to_dict()``: ``{"version": 1, **dataclasses.asdict(result)}``."""
    assert sorted(_fields(cls)) == sorted(DOC[command])
    instance = cls(**{f.name: None for f in dataclasses.fields(cls)})
    assert sorted(instance.to_dict()) == sorted(DOC[command]) and instance.to_dict()["version"] == 1


def test_migrate_prints_the_fields_of_its_result(printed):
    """README: migrate --json prints the fields of MigrationResult."""
    assert sorted(_fields(MigrationResult)) == sorted(DOC["migrate"]) == sorted(printed["migrate"])


def test_thaw_result_prints_the_documented_keys():
    assert sorted(ThawResult("d/model.ckpt", {"w": (2, 3)}, 24, 0).to_dict()) == sorted(DOC["thaw"])
