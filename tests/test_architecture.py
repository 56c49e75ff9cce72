"""The package's shape: layers that depend one way, no hidden imports, functions you can read.

Layers, lowest first (README, "Layout"); a module may import its own layer and the ones below:

  0 base       errors, select (names and patterns), rules (name rules), terminal, progress
  1 storage    storage/* — the only layer that opens files and creates sessions
  2 graph      subgraph, guess, safety, feeds, model, weights, tfinternal — graph protos and queries,
               guesses, the unsafe-op scan, feeds, the model handle, weight-like constants
  3 surgery    surgery/* (heads, re-initialization, the plan), picture
  4 verbs      restore, export, export_dir, inspect, train, cache, migrate, multihead, thaw, tf2
  5 pipelines  retrain/*, demo/*, combine, add_class, continual/* (they train, with retrain's pieces)
  6 cli        cli — imports the commands it runs on demand, so help and path errors never load TensorFlow

Only storage (and the CLI's and terminal's file-descriptor plumbing) opens, writes, links or
removes files, loads arrays, creates sessions or saves and loads checkpoints and SavedModels.
"""
import ast
import os

import pytest
from helpers import ROOT

SRC = os.path.join(ROOT, "graphsurgeon", "_src")
LAYERS = [
    ("base", ["", "errors", "select", "rules", "terminal", "progress"]),
    ("storage", ["storage"]),
    ("graph", ["subgraph", "guess", "safety", "feeds", "model", "weights", "tfinternal"]),
    ("surgery", ["surgery", "picture"]),
    ("verbs", ["restore", "export", "export_dir", "inspect", "train", "cache", "migrate", "multihead", "thaw",
               "tf2"]),
    ("pipelines", ["retrain", "demo", "combine", "add_class", "continual"]),
    ("cli", ["cli"]),
]
OPTIONAL = {"sklearn", "matplotlib", "apache_beam", "tf_keras", "h5py"}  # extras, imported on use


def layer_of(module: str) -> int:
    """``graphsurgeon._src.a.b`` -> the index of the layer that holds ``a``."""
    top = module.split(".")[2] if module.count(".") >= 2 else ""  # "graphsurgeon._src" itself: ""
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS (and to the README's table)")


def modules():
    for dirpath, _, files in os.walk(SRC):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.join(ROOT))[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


def imports(tree):
    """``[(module imported, line, inside a function?)]`` of a module's own graphsurgeon imports and
    of everything imported inside functions."""
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and child.module:
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
                out.append((names, child.lineno, in_function))
            elif isinstance(child, ast.Import):
                out.append(([a.name for a in child.names], child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return out


MODS = list(modules())


@pytest.mark.parametrize("module,path", MODS, ids=[m for m, _ in MODS])
def test_imports_point_down_and_never_hide_in_functions(module, path):
    tree = ast.parse(open(path).read())
    mine = layer_of(module)
    for names, line, in_function in imports(tree):
        ours = [n for n in names if n.startswith("graphsurgeon._src.") and n.count(".") >= 2]
        if in_function and not module.startswith("graphsurgeon._src.cli") and not (set(n.split(".")[0] for n in names) & OPTIONAL):
            raise AssertionError(f"{path}:{line}: import inside a function ({names[0]}); move it to the top, or "
                                 "move the helper it needs to a lower layer")
        for n in ours:
            try:
                theirs = layer_of(n)
            except AssertionError:
                continue  # `from graphsurgeon._src.x import y` where y is a function: judged by x
            assert theirs <= mine, (f"{path}:{line}: {module} ({LAYERS[mine][0]}) imports {n} "
                                    f"({LAYERS[theirs][0]}), a higher layer")


def test_the_import_test_catches_what_it_should():
    bad = ast.parse("def f():\n    from graphsurgeon._src.retrain import run\n")
    assert imports(bad) == [(["graphsurgeon._src.retrain", "graphsurgeon._src.retrain.run"], 2, True)]
    assert layer_of("graphsurgeon._src.retrain.run") > layer_of("graphsurgeon._src.storage.bundle")


@pytest.mark.parametrize("module,path", MODS, ids=[m for m, _ in MODS])
def test_size_limits(module, path):
    src = open(path).read()
    assert len(src.splitlines()) <= 400, f"{path}: {len(src.splitlines())} lines (limit 400)"
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            positional = len(node.args.posonlyargs) + len(node.args.args)
            assert lines <= 60, f"{path}:{node.lineno} {node.name}: {lines} lines (limit 60)"
            assert positional <= 8, f"{path}:{node.lineno} {node.name}: {positional} positional parameters (limit 8)"


FILE_CALLS = {"open", "tomllib.load", "tf.saved_model.load", "tf.saved_model.save", "tf1.saved_model.load",
              "tf1.saved_model.loader.load", "tf.io.write_file", "tf.io.read_file", "tf.io.write_graph",
              "tf1.train.write_graph"}
FILE_MODULES = {"shutil", "tempfile", "tf.io.gfile", "tf1.gfile"}
FILE_FUNCTIONS = {"os": {"makedirs", "mkdir", "remove", "unlink", "replace", "rename", "link", "symlink", "rmdir",
                         "removedirs", "truncate", "fsync", "open"},
                  "np": {"load", "save", "savez", "savez_compressed", "fromfile", "memmap"}}
FILE_ENDINGS = ("Session", ".savefig")
IO_EXEMPT = {"cli", "terminal", "storage"}  # the CLI and terminal redirect file descriptors 1 and 2


def file_calls(tree):
    """``[(line, call)]`` of the calls in ``tree`` that touch files, sessions or saved models."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Name, ast.Attribute)):
            continue
        name = ast.unparse(node.func)
        owner, _, attr = name.rpartition(".")
        saver = attr in ("save", "restore") and "saver" in owner.lower()
        if (name in FILE_CALLS or owner in FILE_MODULES or attr in FILE_FUNCTIONS.get(owner, ())
                or name.endswith(FILE_ENDINGS) or saver):
            out.append((node.lineno, name))
    return out


@pytest.mark.parametrize("module,path", MODS, ids=[m for m, _ in MODS])
def test_only_storage_touches_files_and_sessions(module, path):
    top = module.split(".")[2] if module.count(".") >= 2 else ""
    if top in IO_EXEMPT:
        return
    found = file_calls(ast.parse(open(path).read()))
    assert not found, f"{path}: {', '.join(f'line {n}: {c}()' for n, c in found)}: files and sessions belong in storage"


def test_the_file_check_catches_what_it_should():
    src = ("open(p)\nos.replace(a, b)\nshutil.rmtree(d)\nnp.savez(p, x=x)\ntf1.Session(graph=g)\n"
           "saver.save(s, p)\ntf1.train.Saver().save(s, p)\nfig.savefig(p)\ntempfile.mkdtemp()\n"
           "os.path.join(a, b)\nfiles.remove(p)\nnp.asarray(x)\ndatasets.load(p)\n")
    assert [c for _, c in file_calls(ast.parse(src))] == [
        "open", "os.replace", "shutil.rmtree", "np.savez", "tf1.Session", "saver.save", "tf1.train.Saver().save",
        "fig.savefig", "tempfile.mkdtemp"]
