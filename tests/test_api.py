"""The public API is exactly __all__, nothing public is a module, and every public docstring example runs."""
import doctest
import importlib
import types

import pytest

import graphsurgeon as gs

MODULES = ["graphsurgeon", "graphsurgeon._src.select", "graphsurgeon._src.rules", "graphsurgeon._src.surgery.plan",
           "graphsurgeon._src.migrate", "graphsurgeon._src.cli.messages", "graphsurgeon._src.storage.written"]


def test_every_public_name_is_the_implementation_and_never_a_module():
    for name in gs.__all__:
        module, attr = gs._EXPORTS[name]
        obj = getattr(gs, name)
        assert obj is getattr(importlib.import_module(module), attr), name
        assert not isinstance(obj, types.ModuleType), name
        assert not name.startswith("_")
    # the functions named like their modules stay functions after those modules are imported
    import graphsurgeon._src.migrate  # noqa: F401
    import graphsurgeon._src.restore  # noqa: F401
    import graphsurgeon._src.retrain  # noqa: F401
    for name in ("restore", "export", "inspect", "retrain", "migrate"):
        assert callable(getattr(gs, name)) and not isinstance(getattr(gs, name), types.ModuleType), name
    assert {"restore", "plan", "retrain", "add_head", "reinitialize", "match", "export", "inspect"} <= set(gs.__all__)


def test_dir_is_all_plus_dunders():
    assert sorted(n for n in dir(gs) if not n.startswith("__")) == sorted(gs.__all__)
    with pytest.raises(AttributeError):
        gs.storage  # noqa: B018


def test_every_error_is_a_graphsurgeon_error():
    errors = [getattr(gs, n) for n in gs.__all__ if isinstance(getattr(gs, n), type)
              and issubclass(getattr(gs, n), Exception)]
    assert len(errors) >= 10
    assert all(issubclass(e, gs.GraphSurgeonError) for e in errors)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    failures, attempted = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0
