"""The package's shape: layers that depend one way, no hidden imports, functions you can read.

Layers, lowest first (README, "Layout"); a module may import its own layer and the ones below:

  0 base       errors, select (names and patterns), rules (name rules), terminal, progress, mixins
  1 storage    storage/* — the only layer that opens files and creates sessions
  2 graph      subgraph, guess, safety, feeds, determinism, model, weights, tfinternal, rebind — graph protos and
               queries, guesses, the unsafe-op scan, feeds, random or batch-dependent tensors, the model
               handle, weight-like constants
  3 surgery    surgery/* (heads, re-initialization, the plan), picture
  4 verbs      restore, export, export_dir, inspect, train, cache, migrate, multihead, thaw, tf2
  5 pipelines  retrain/*, demo/*, combine, add_class, continual/* (they train, with retrain's pieces);
               ``graphsurgeon`` itself (the public names, re-exported from these layers) counts here
  6 cli        cli — imports the commands it runs on demand, so help and path errors never load TensorFlow

The library speaks in arguments, the CLI in flags: no string outside ``cli/`` (docstrings excepted:
they may describe the command line) names a ``--flag``; the CLI translates (``cli.messages``).

Absolute and relative imports are both judged; an import of a graphsurgeon module the table does
not know, or that does not exist, fails.

Only storage opens, writes, links or removes files, runs programs, loads arrays, creates sessions
or saves and loads checkpoints and SavedModels (the CLI and terminal redirect file descriptors 1
and 2, with the few calls ``FD_PLUMBING`` lists). The scan reads each module's syntax tree: names
are resolved through its imports and aliases (``from shutil import rmtree``, ``tf1 = tf.compat.v1``)
and matched against what touches files; a Saver (or ``tf.train.Checkpoint``) is followed to its
``save``/``restore`` under whatever name the module keeps it; ``load_weights``/``save_weights`` on
anything and the monitored sessions count too. Names a module builds at run time (``getattr``)
and savers handed in from another module are not seen; ``importlib.import_module`` counts as an
import (a deferred one must be listed in ``LAZY`` with its reason; a computed name fails).
"""
import ast
import os
import re

import pytest

import graphsurgeon

from helpers import ROOT

SRC = os.path.join(ROOT, "graphsurgeon", "_src")
PACKAGE = "graphsurgeon._src"
LAYERS = [
    ("base", ["", "errors", "select", "rules", "terminal", "progress", "mixins"]),
    ("storage", ["storage"]),
    ("graph", ["subgraph", "guess", "safety", "feeds", "determinism", "model", "weights", "tfinternal", "rebind"]),
    ("surgery", ["surgery", "picture"]),
    ("verbs", ["restore", "export", "export_dir", "inspect", "train", "cache", "migrate", "multihead", "thaw",
               "tf2"]),
    ("pipelines", ["retrain", "demo", "combine", "add_class", "continual"]),
    ("cli", ["cli"]),
]
# `graphsurgeon` itself re-exports names of the layers up to pipelines (its _EXPORTS), so it counts
# as a pipelines module: the demo, which shows the public API at work, may import it.
PUBLIC_LAYER = "pipelines"
OPTIONAL = {"sklearn", "matplotlib", "apache_beam", "tf_keras", "h5py"}  # extras, imported on use
# (module, graphsurgeon module it loads inside a function by ``importlib.import_module``): the only
# deferred imports of the package's own modules, each with its reason
LAZY = {("graphsurgeon._src.cache.generation", "graphsurgeon._src.cache.beam"):
        "it imports Apache Beam (seconds), needed only for runner='beam'"}


def layer_of(module: str) -> int:
    """``graphsurgeon._src.a.b`` -> the index of the layer that holds ``a`` (``graphsurgeon``: the
    public API's layer).

    Raises:
      AssertionError: a graphsurgeon module the layer table does not know.
    """
    names = [n for n, _ in LAYERS]
    if module == "graphsurgeon":
        return names.index(PUBLIC_LAYER)
    if module == PACKAGE or module.startswith(PACKAGE + "."):
        top = module.split(".")[2] if module.count(".") >= 2 else ""  # "graphsurgeon._src" itself: ""
        for i, (_, tops) in enumerate(LAYERS):
            if top in tops:
                return i
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS (and to the README's table)")


def is_module(name: str) -> bool:
    """Is ``name`` (dotted) a module or package of this repository?"""
    path = os.path.join(ROOT, *name.split("."))
    return os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__init__.py"))


def modules():
    """``(module name, path, is a package)`` of every module under ``graphsurgeon/_src``."""
    for dirpath, _, files in os.walk(SRC):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.join(ROOT))[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path, f == "__init__.py"


def imports(tree, module: str = "", is_package: bool = False):
    """``[(modules imported, line, inside a function?)]`` of every import in ``tree`` (the module
    ``module``): for ``from M import a, b``, M and each ``M.a`` that is a module; relative imports
    are resolved against ``module``'s package."""
    package = module if is_package else module.rpartition(".")[0]
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    assert child.level <= len(parts), f"line {child.lineno}: relative import beyond the top package"
                    base = ".".join(parts[:len(parts) - child.level + 1] + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in child.names if is_module(f"{base}.{a.name}")]
                out.append((names, child.lineno, in_function))
            elif isinstance(child, ast.Import):
                out.append(([a.name for a in child.names], child.lineno, in_function))
            elif isinstance(child, ast.Call) and _is_import_module(child.func):
                arg = child.args[0] if child.args else None
                name = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "<computed>"
                out.append(([name], child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return out


def _is_import_module(func) -> bool:
    """``importlib.import_module`` or ``import_module`` (as a name or an attribute)."""
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id == "import_module")


def import_problems(module: str, source: str, is_package: bool = False) -> list[str]:
    """What is wrong with the imports of ``module`` (source text ``source``): imports inside
    functions (the CLI's and the optional extras' excepted), imports of a higher layer, imports
    of a graphsurgeon module the layer table does not know or that does not exist."""
    mine, out = layer_of(module), []
    for names, line, in_function in imports(ast.parse(source), module, is_package):
        optional = {n.split(".")[0] for n in names} & OPTIONAL
        if names == ["<computed>"]:
            out.append(f"line {line}: import_module of a name built at run time; name the module literally")
            continue
        lazy = (module, names[0]) in LAZY
        if in_function and not module.startswith(f"{PACKAGE}.cli") and not optional and not lazy:
            out.append(f"line {line}: import inside a function ({names[0]}); move it to the top, or move the "
                       "helper it needs to a lower layer")
        for n in names:
            if n != "graphsurgeon" and not n.startswith("graphsurgeon."):
                continue
            try:
                theirs = layer_of(n)
            except AssertionError as e:
                out.append(f"line {line}: {e}")
                continue
            if not is_module(n):
                out.append(f"line {line}: {n} is not a module of this repository")
            elif theirs > mine:
                out.append(f"line {line}: {module} ({LAYERS[mine][0]}) imports {n} ({LAYERS[theirs][0]}), a "
                           "higher layer")
    return out


MODS = list(modules())


@pytest.mark.parametrize("module,path,is_package", MODS, ids=[m for m, _, _ in MODS])
def test_imports_point_down_and_never_hide_in_functions(module, path, is_package):
    problems = import_problems(module, open(path).read(), is_package)
    assert not problems, f"{path}: " + "; ".join(problems)


@pytest.mark.parametrize("module,source,is_package,needle", [
    ("graphsurgeon._src.storage.files", "def f():\n    from graphsurgeon._src.storage import bundle\n", False,
     "inside a function"),
    ("graphsurgeon._src.storage.files", "from graphsurgeon._src.retrain import run\n", False, "a higher layer"),
    ("graphsurgeon._src.storage.files", "from ..retrain import run\n", False, "imports graphsurgeon._src.retrain "),
    ("graphsurgeon._src.storage.files", "from .. import retrain\n", False, "imports graphsurgeon._src.retrain "),
    ("graphsurgeon._src.cache", "from ..continual.lwf import learn\n", True, "imports graphsurgeon._src.continual"),
    ("graphsurgeon._src.storage.files", "import graphsurgeon\n", False, "a higher layer"),
    ("graphsurgeon._src.retrain.run", "from graphsurgeon._src.notalayer import x\n", False, "belongs to no layer"),
    ("graphsurgeon._src.retrain.run", "from ..notalayer import x\n", False, "belongs to no layer"),
    ("graphsurgeon._src.retrain.run", "import graphsurgeon.elsewhere\n", False, "belongs to no layer"),
    ("graphsurgeon._src.retrain.run", "from graphsurgeon._src.storage.nosuchfile import x\n", False,
     "not a module"),
    ("graphsurgeon._src.cache.generation", "import importlib\ndef f():\n    importlib.import_module("
     "'graphsurgeon._src.cache.job')\n", False, "inside a function"),  # deferred but not in LAZY
    ("graphsurgeon._src.storage.files", "import importlib\nm = importlib.import_module('graphsurgeon._src.cache')\n",
     False, "a higher layer"),
    ("graphsurgeon._src.storage.files", "from importlib import import_module\nm = import_module('x' + y)\n", False,
     "built at run time"),
])
def test_the_import_check_fails_on_each_kind_of_bad_import(module, source, is_package, needle):
    problems = import_problems(module, source, is_package)
    assert problems and needle in problems[0], problems


def test_the_public_package_reexports_nothing_above_its_layer():
    for name, (module, _) in graphsurgeon._EXPORTS.items():
        assert layer_of(module) <= layer_of("graphsurgeon"), f"graphsurgeon.{name} comes from {module}"


def test_the_import_check_passes_imports_that_point_down():
    ok = ("from . import reader\nfrom .plan import Known\nfrom ..storage import files\n"
          "from graphsurgeon._src.storage.cachefiles import VERSION\nimport numpy as np\n"
          "def f():\n    import sklearn\n")
    assert import_problems("graphsurgeon._src.cache", ok, is_package=True) == []
    assert import_problems("graphsurgeon._src.demo.main", "import graphsurgeon as gs\n") == []


@pytest.mark.parametrize("module,path,is_package", MODS, ids=[m for m, _, _ in MODS])
def test_size_limits(module, path, is_package):
    src = open(path).read()
    assert len(src.splitlines()) <= 400, f"{path}: {len(src.splitlines())} lines (limit 400)"
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            positional = len(node.args.posonlyargs) + len(node.args.args)
            assert lines <= 60, f"{path}:{node.lineno} {node.name}: {lines} lines (limit 60)"
            assert positional <= 8, f"{path}:{node.lineno} {node.name}: {positional} positional parameters (limit 8)"


# What touches files, processes or sessions, by the qualified name a piece of code refers to (after
# its imports and module-level aliases such as `tf1 = tf.compat.v1` are resolved, and
# `tensorflow.compat.v1.` read as `tensorflow.`): a name matches an entry equal to it or to a prefix
# of it that ends before a `.` or `(`. Listing a directory and asking whether a path exists are not
# file access in this sense (the layers above ask before they write).
FILE_MODULES = {"shutil", "tempfile", "subprocess", "fcntl", "mmap", "zipfile", "tarfile", "gzip", "bz2", "lzma",
                "tensorflow.io.gfile", "tensorflow.gfile", "tensorflow.python_io",
                *(f"tensorflow.saved_model.{n}" for n in ("load", "save", "loader", "builder", "Builder", "simple_save",
                                                          "contains_saved_model", "load_v2", "save_v2"))}
FILE_NAMES = {
    "builtins.open", "io.open", "io.FileIO", "codecs.open", "tomllib.load", "h5py.File",
    *(f"os.{n}" for n in ("open", "fdopen", "makedirs", "mkdir", "remove", "unlink", "replace", "rename", "renames",
                          "link", "symlink", "rmdir", "removedirs", "truncate", "ftruncate", "fsync", "chmod",
                          "utime", "write", "dup", "dup2", "system", "popen", "posix_spawn", "posix_spawnp")),
    *(f"numpy.{n}" for n in ("load", "save", "savez", "savez_compressed", "fromfile", "memmap", "loadtxt",
                             "savetxt", "genfromtxt", "lib.format.open_memmap")),
    *(f"tensorflow.{n}" for n in ("Session", "InteractiveSession", "io.read_file", "io.write_file", "io.write_graph",
                                  "io.TFRecordWriter", "train.write_graph", "train.load_checkpoint",
                                  "train.load_variable", "train.list_variables", "train.NewCheckpointReader",
                                  "train.latest_checkpoint", "train.get_checkpoint_state", "train.checkpoint_exists",
                                  "data.TFRecordDataset", "data.TextLineDataset", "data.FixedLengthRecordDataset",
                                  "summary.FileWriter", "summary.create_file_writer", "keras.models.load_model",
                                  "keras.models.save_model", "keras.utils.get_file",
                                  # sessions that also restore and write checkpoints through their hooks
                                  "train.MonitoredTrainingSession", "train.MonitoredSession",
                                  "train.SingularMonitoredSession")),
}
FILE_PREFIXES = ("os.exec", "os.spawn")
# methods that touch files whatever they are called on (a pathlib.Path, a figure, an array, an image, a Keras model)
FILE_METHODS = {"open", "write_text", "write_bytes", "read_text", "read_bytes", "touch", "unlink", "mkdir", "rmdir",
                "symlink_to", "hardlink_to", "savefig", "tofile", "load_weights", "save_weights"}
# Objects that save and restore checkpoints: their methods SAVER_METHODS touch files, whatever the
# name the object is kept under (``s = tf1.train.Saver(); s.restore(sess, p)``) in the function
# (or module) that builds it.
SAVER_CLASSES = {"tensorflow.train.Saver", "tensorflow.train.Checkpoint", "tensorflow.train.CheckpointManager"}
SAVER_METHODS = {"save", "restore", "read", "write"}
PATH_METHODS = {"rename", "replace", "chmod"}  # of pathlib values only (str.replace is not a file)
# The CLI and terminal redirect file descriptors 1 and 2 (to /dev/null, or a temporary file read back):
# they may use these and nothing else; storage may use everything.
FD_PLUMBING = {"cli": {"os.open", "os.dup2"},
               "terminal": {"tempfile", "tempfile.TemporaryFile", "os.dup", "os.dup2", "os.fdopen", "os.write"}}


def aliases(tree) -> dict:
    """``{local name: qualified name}`` from every import in ``tree`` (``np`` -> ``numpy``, ``rmtree``
    -> ``shutil.rmtree``) and every assignment of such a name to a plain name (``tf1 = tf.compat.v1``)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            q = qualified(node.value, out)
            if q and isinstance(node.value, (ast.Attribute, ast.Name)) and q != node.targets[0].id:
                out[node.targets[0].id] = q
    return out


def qualified(node, names: dict) -> str | None:
    """The dotted text of ``node`` (a name, attribute or call chain) with its root resolved through
    ``names`` (a bare name that nothing imports is a builtin), or None for other expressions."""
    root = node
    while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
        root = root.func if isinstance(root, ast.Call) else root.value
    if not isinstance(root, ast.Name):
        return None
    text = ast.unparse(node)
    head = names.get(root.id, f"builtins.{root.id}")
    q = head + text[len(root.id):]
    return q.replace("tensorflow.compat.v1.", "tensorflow.").replace("tensorflow.compat.v2.", "tensorflow.")


def _matches(q: str, entries) -> bool:
    return any(q == e or (q.startswith(e) and q[len(e)] in ".(") for e in entries)


def touches_files(q: str, is_call: bool) -> bool:
    """Does the code named ``q`` (qualified) touch files, processes or sessions?"""
    if _matches(q, FILE_NAMES | FILE_MODULES) or q.startswith(FILE_PREFIXES):
        return True
    if not is_call:
        return False
    receiver, _, attr = q.rpartition(".")
    saver = attr in ("save", "restore") and ("saver" in receiver.lower())
    return saver or (receiver and attr in FILE_METHODS) or (receiver.startswith("pathlib.") and attr in PATH_METHODS)


def saver_calls(tree, names: dict) -> list:
    """``[(line, "CLASS.method")]`` of every call of a :data:`SAVER_METHODS` method on a name or
    attribute (``s``, ``self.ckpt``) that the module assigns an object of a :data:`SAVER_CLASSES`
    class to, anywhere in it (a name that holds a saver in one function is judged a saver in every
    other: the check errs towards flagging)."""
    made = {}  # the text of what holds a saver -> its class
    for node in ast.walk(tree):
        value = getattr(node, "value", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and isinstance(value, ast.Call):
            cls = qualified(value.func, names)
            if cls in SAVER_CLASSES:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                made.update({ast.unparse(t): cls for t in targets})
    return [(node.lineno, f"{made[ast.unparse(node.func.value)]}.{node.func.attr}") for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in SAVER_METHODS and ast.unparse(node.func.value) in made]


def file_uses(tree) -> list:
    """``[(line, qualified name)]`` of the code in ``tree`` that touches files, processes or sessions:
    calls, and references to such functions (``atexit.register(shutil.rmtree, d)``), imports of
    modules that exist only for that (``import subprocess``, ``from shutil import rmtree``), and a
    saver's methods called under any name (:func:`saver_calls`)."""
    names = aliases(tree)  # calls of graphsurgeon's own functions are judged by the import check
    out = saver_calls(tree, names)
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    inner |= {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
            for a in node.names:
                q = a.name if isinstance(node, ast.Import) else f"{node.module}.{a.name}"
                if _matches(q, FILE_MODULES) or _matches(q, FILE_NAMES):
                    out.append((node.lineno, q))
        elif isinstance(node, ast.Call) or (isinstance(node, (ast.Attribute, ast.Name)) and id(node) not in inner
                                            and isinstance(node.ctx, ast.Load)):
            target = node.func if isinstance(node, ast.Call) else node
            q = qualified(target, names)
            if q and not q.startswith("graphsurgeon.") and touches_files(q, isinstance(node, ast.Call)):
                out.append((node.lineno, q))
    return sorted(set(out))


@pytest.mark.parametrize("module,path,is_package", MODS, ids=[m for m, _, _ in MODS])
def test_only_storage_touches_files_and_sessions(module, path, is_package):
    top = module.split(".")[2] if module.count(".") >= 2 else ""
    if top == "storage":
        return
    found = [(n, q) for n, q in file_uses(ast.parse(open(path).read())) if q not in FD_PLUMBING.get(top, ())]
    assert not found, f"{path}: {', '.join(f'line {n}: {c}' for n, c in found)}: files and sessions belong in storage"


@pytest.mark.parametrize("source,expected", [
    ("open(p)", "builtins.open"),
    ("import os\nos.replace(a, b)", "os.replace"),
    ("import shutil\nshutil.rmtree(d)", "shutil.rmtree"),
    ("from shutil import rmtree\nrmtree(d)", "shutil.rmtree"),
    ("import shutil as sh\natexit.register(sh.rmtree, d)", "shutil.rmtree"),
    ("import subprocess\nsubprocess.run(['dot'])", "subprocess.run"),
    ("import os\nos.system('ls')", "os.system"),
    ("import tempfile\ntempfile.mkdtemp()", "tempfile.mkdtemp"),
    ("import numpy as np\nnp.savez(p, x=x)", "numpy.savez"),
    ("from numpy import load\nload(p)", "numpy.load"),
    ("arr.tofile(p)", "builtins.arr.tofile"),
    ("from pathlib import Path\nPath(p).open('w')", "pathlib.Path(p).open"),
    ("from pathlib import Path\nPath(p).write_text('x')", "pathlib.Path(p).write_text"),
    ("import pathlib\npathlib.Path.write_bytes(p, b'')", "pathlib.Path.write_bytes"),
    ("from pathlib import Path\nPath(a).rename(b)", "pathlib.Path(a).rename"),
    ("p.read_text()", "builtins.p.read_text"),
    ("import tensorflow as tf\ntf.train.load_checkpoint(p)", "tensorflow.train.load_checkpoint"),
    ("import tensorflow as tf\ntf1 = tf.compat.v1\ntf1.Session(graph=g)", "tensorflow.Session"),
    ("import tensorflow as tf\ntf.io.gfile.exists(p)", "tensorflow.io.gfile.exists"),
    ("import tensorflow as tf\ntf1 = tf.compat.v1\ntf1.gfile.Open(p)", "tensorflow.gfile.Open"),
    ("import tensorflow as tf\ngfile = tf.io.gfile\ngfile.remove(p)", "tensorflow.io.gfile.remove"),
    ("from tensorflow.io import gfile\ngfile.makedirs(p)", "tensorflow.io.gfile.makedirs"),
    ("import tensorflow as tf\ntf.saved_model.load(p)", "tensorflow.saved_model.load"),
    ("import tensorflow as tf\ntf.data.TFRecordDataset(p)", "tensorflow.data.TFRecordDataset"),
    ("import tensorflow as tf\ntf1 = tf.compat.v1\ntf1.train.Saver().save(s, p)", "tensorflow.train.Saver().save"),
    ("saver.restore(s, p)", "builtins.saver.restore"),
    # a Saver kept under another name, in a function or at the top level, or as an attribute
    ("import tensorflow as tf\ndef f(sess, p):\n    s = tf.compat.v1.train.Saver()\n    s.restore(sess, p)",
     "tensorflow.train.Saver.restore"),
    ("import tensorflow as tf\ntf1 = tf.compat.v1\nckpt = tf1.train.Saver(var_list=v)\nckpt.save(sess, p)",
     "tensorflow.train.Saver.save"),
    ("from tensorflow.compat.v1.train import Saver\nclass A:\n    def f(self):\n        self.keep = Saver()\n"
     "        self.keep.restore(self.sess, self.p)", "tensorflow.train.Saver.restore"),
    ("import tensorflow as tf\ndef f(v, p):\n    c = tf.train.Checkpoint(vars=v)\n    c.write(p)",
     "tensorflow.train.Checkpoint.write"),
    ("model.load_weights(p)", "builtins.model.load_weights"),
    ("import tf_keras\nnet = tf_keras.Model(i, o)\nnet.save_weights(p)", "builtins.net.save_weights"),
    ("import tensorflow as tf\nwith tf.compat.v1.train.MonitoredTrainingSession(checkpoint_dir=d) as s:\n"
     "    s.run(op)", "tensorflow.train.MonitoredTrainingSession"),
    ("import tensorflow as tf\nmake = tf.compat.v1.train.MonitoredTrainingSession\nmake()",
     "tensorflow.train.MonitoredTrainingSession"),
    ("from tensorflow.compat.v1.train import MonitoredTrainingSession\nMonitoredTrainingSession()",
     "tensorflow.train.MonitoredTrainingSession"),
    ("fig.savefig(p)", "builtins.fig.savefig"),
    ("import tensorflow as tf\ntf.saved_model.builder.SavedModelBuilder(d)", "tensorflow.saved_model.builder"
                                                                              ".SavedModelBuilder"),
])
def test_the_file_check_catches_each_kind_of_file_access(source, expected):
    assert expected in [q for _, q in file_uses(ast.parse(source))], file_uses(ast.parse(source))


def test_the_file_check_passes_what_does_not_touch_files():
    src = ("import os\nimport numpy as np\nimport tensorflow as tf\ntf1 = tf.compat.v1\n"
           "os.path.join(a, b)\nos.path.exists(p)\nos.listdir(d)\nname.replace('/', '_')\nfiles.remove(p)\n"
           "np.asarray(x)\ndatasets.load(p)\nmodel.save_state()\ntf1.placeholder(tf.float32)\n"
           "tf.io.parse_tensor(x, tf.float32)\nopt.restore_slots()\n"
           "tf1.saved_model.signature_def_utils.predict_signature_def({}, {})\n"
           "s = tf1.train.Saver(var_list=v)\n"  # building a Saver makes graph ops; only its methods read/write
           "def g(x):\n    x.restore(a)\n    w = d.copy()\n    w.save(p)\n"  # not a Saver in this scope
           "model.get_weights()\nmodel.set_weights(w)\n"
           "from graphsurgeon._src.storage import files\nfiles.write_bytes(p, b'')\n")
    assert file_uses(ast.parse(src)) == []


# The library speaks in arguments (``repair=True``), the CLI in flags (``--repair``): cli.messages
# translates. A flag is ``--word`` or ``--word-word`` (graphsurgeon's flags use hyphens; options of
# other programs spelled with underscores, such as Beam's ``--setup_file``, are not flags of ours).
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w])")
# (file under graphsurgeon/_src, flag): strings that name another program's flag, not ours
OTHER_PROGRAMS = {("demo/main.py", "--logdir")}  # the `tensorboard --logdir DIR` command line the demo prints


def flags_in_strings(source: str) -> list:
    """``[(line, flag)]`` of every ``--flag`` in a string of ``source`` (constants and the constant
    parts of f-strings: messages raised, module constants, text printed) other than a docstring."""
    tree = ast.parse(source)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return sorted({(n.lineno, flag) for n in ast.walk(tree)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
                   for flag in FLAG.findall(n.value)})


LIBRARY = [(m, p) for m, p, _ in MODS if not m.startswith(f"{PACKAGE}.cli")]


@pytest.mark.parametrize("module,path", LIBRARY, ids=[m for m, _ in LIBRARY])
def test_library_messages_name_arguments_not_flags(module, path):
    rel = os.path.relpath(path, SRC).replace(os.sep, "/")
    found = [(n, f) for n, f in flags_in_strings(open(path).read()) if (rel, f) not in OTHER_PROGRAMS]
    assert not found, (f"{path}: " + ", ".join(f"line {n}: {f}" for n, f in found) + ": the library names its "
                       "arguments (repair=True, out_dir=DIR); graphsurgeon._src.cli.messages says the flag")


@pytest.mark.parametrize("source,expected", [
    ('raise CacheError("run again with --repair")', [(1, "--repair")]),
    ('raise CacheError(f"{d}: choose another --out directory")', [(1, "--out")]),  # an f-string's constant part
    ('raise CacheError(f"{d}: "\n                 f"pass --batch-size {n}") from None', [(1, "--batch-size")]),
    ('REPAIR = "run the cache command again with --repair"\nraise CacheError(f"{p}; {REPAIR}")', [(1, "--repair")]),
    ('HINTS = {"exclude": "--drop on the command line"}', [(1, "--drop")]),
    ('def f():\n    msg = "see --allow-unsafe-ops"\n    raise ConfigError(msg)', [(2, "--allow-unsafe-ops")]),
    ('say(f"retrain with --cache {d}")', [(1, "--cache")]),
])
def test_the_flag_check_fails_on_a_library_message_that_says_a_flag(source, expected):
    assert flags_in_strings(source) == expected


DOTTED = re.compile(r"[\w.]+")  # a module's name alone, as importlib.import_module takes it: no message


def private_names_in_strings(source: str) -> list:
    """``[line]`` of every string of ``source`` other than a docstring or a bare module name that says
    ``_src.`` (a private module path)."""
    tree = ast.parse(source)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return sorted({n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                   and id(n) not in docstrings and "_src." in n.value and not DOTTED.fullmatch(n.value)})


@pytest.mark.parametrize("module,path", LIBRARY, ids=[m for m, _ in LIBRARY])
def test_library_messages_name_public_names_not_private_modules(module, path):
    found = private_names_in_strings(open(path).read())
    assert not found, (f"{path}: line(s) {found}: a message names graphsurgeon._src.*; say the public name "
                       "(graphsurgeon.restore)")


def test_the_private_name_check_fails_on_a_message_and_passes_docstrings():
    src = ('"""See graphsurgeon._src.restore."""\n'
           'raise NoMetaGraphError(f"{p}: call "\n    "graphsurgeon._src.restore(prefix, graph=g)")\n'
           'beam = importlib.import_module("graphsurgeon._src.cache.beam")\n')
    assert private_names_in_strings(src) == [2]  # (an f-string's parts carry its first line)


def test_the_flag_check_passes_argument_words_docstrings_and_other_programs_options():
    src = ('"""The module (``graphsurgeon cache --repair``)."""\n'
           'def f():\n    """Like ``retrain --cache``."""\n'
           '    raise CacheError(f"{d}: run generate_cache again with repair=True; x--y; a -- b")\n'
           'ARGS = ("--direct_num_workers=2", "--setup_file=PATH")\n'  # Beam's options: underscores
           'raise CacheError("beam_args=[\'--setup_file=PATH/setup.py\']")\n')
    assert flags_in_strings(src) == []


def test_the_object_graph_key_is_spelled_in_one_module():
    """``_CHECKPOINTABLE_OBJECT_GRAPH`` is :data:`storage.objectgraph.OBJECT_GRAPH_KEY`; every other module imports
    it (a string that is the key, whole, anywhere else is a second definition)."""
    where = sorted(os.path.relpath(path, SRC) for _, path, _ in modules()
                   if any(isinstance(n, ast.Constant) and n.value == "_CHECKPOINTABLE_OBJECT_GRAPH"
                          for n in ast.walk(ast.parse(open(path).read()))))
    assert where == [os.path.join("storage", "objectgraph.py")]
