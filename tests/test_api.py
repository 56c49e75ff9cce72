"""The public API is exactly __all__, and every public docstring example runs."""
import doctest
import importlib

import pytest

import graphsurgeon as gs

MODULES = ["graphsurgeon", "graphsurgeon._src.select", "graphsurgeon._src.restore", "graphsurgeon._src.surgery.plan", "graphsurgeon._src.migrate"]


def test_all_names_resolve_and_nothing_private_is_exported():
    for name in gs.__all__:
        assert getattr(gs, name) is not None, name
        assert not name.startswith("_")
    assert {"restore", "plan", "retrain", "add_head", "reinitialize", "match", "export", "inspect"} <= set(gs.__all__)
    assert "storage" not in gs.__all__ and "subgraph" not in gs.__all__


def test_every_error_is_a_graphsurgeon_error():
    for name in gs.__all__:
        obj = getattr(gs, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, gs.GraphSurgeonError)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    failures, _ = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert failures == 0
