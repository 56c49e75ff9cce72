"""graphsurgeon: surgery on legacy TensorFlow 1 models for transfer learning.

>>> import graphsurgeon as gs
>>> gs.match(["hidden[12]"], ["hidden1/weights", "hidden2/biases", "hidden3/weights"])
['hidden1/weights', 'hidden2/biases']

The public API is exactly ``__all__``; other modules are internal. Names are imported on first
use, so ``import graphsurgeon`` (and the command line's help and argument errors) do not load
TensorFlow.
"""
import importlib as _importlib

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS = {
    **{name: ("graphsurgeon._src.errors", name) for name in (
        "BatchDependentError", "CacheError", "CheckpointNotFoundError", "ConfigError", "ContinualError", "MigrateError", "CorruptCheckpointError",
        "DataError", "GraphSurgeonError", "MergeHeadsError", "NoMetaGraphError", "PatternError", "PlanError",
        "RandomTensorError", "SignatureNotFoundError", "TensorNotFoundError", "UnregisteredOpError", "UnsafeGraphError", "UnsupportedPathError",
        "WrongPathKindError")},
    "AddClassResult": ("graphsurgeon._src.add_class", "AddClassResult"),
    "add_class": ("graphsurgeon._src.add_class", "add_class"),
    "CacheReader": ("graphsurgeon._src.cache", "CacheReader"),
    "CombineResult": ("graphsurgeon._src.combine", "CombineResult"),
    "combine": ("graphsurgeon._src.combine", "combine"),
    "LearnConfig": ("graphsurgeon._src.continual.config", "LearnConfig"),
    "LearnResult": ("graphsurgeon._src.continual.learn", "LearnResult"),
    "learn_task": ("graphsurgeon._src.continual.learn", "learn_task"),
    "CacheReport": ("graphsurgeon._src.cache", "CacheReport"),
    "generate_cache": ("graphsurgeon._src.cache", "generate"),
    "ExportResult": ("graphsurgeon._src.export", "ExportResult"),
    "export": ("graphsurgeon._src.export", "export"),
    "inspect": ("graphsurgeon._src.inspect", "inspect"),
    "MigrationResult": ("graphsurgeon._src.migrate", "MigrationResult"),
    "Rules": ("graphsurgeon._src.rules", "Rules"),
    "diff": ("graphsurgeon._src.migrate", "diff"),
    "migrate": ("graphsurgeon._src.migrate", "migrate"),
    "Model": ("graphsurgeon._src.model", "Model"),
    "MergeResult": ("graphsurgeon._src.multihead.merge", "MergeResult"),
    "add_task": ("graphsurgeon._src.multihead.merge", "add_task"),
    "merge_heads": ("graphsurgeon._src.multihead.merge", "merge_heads"),
    "remove_task": ("graphsurgeon._src.multihead.merge", "remove_task"),
    "restore": ("graphsurgeon._src.restore", "restore"),
    "RetrainConfig": ("graphsurgeon._src.retrain", "RetrainConfig"),
    "RetrainResult": ("graphsurgeon._src.retrain", "RetrainResult"),
    "build": ("graphsurgeon._src.retrain", "build"),
    "plan": ("graphsurgeon._src.retrain", "plan"),
    "retrain": ("graphsurgeon._src.retrain", "retrain"),
    "match": ("graphsurgeon._src.select", "match"),
    "Dataset": ("graphsurgeon._src.storage.datasets", "Dataset"),
    "load_data": ("graphsurgeon._src.storage.datasets", "load"),
    "Head": ("graphsurgeon._src.surgery", "Head"),
    "Plan": ("graphsurgeon._src.surgery", "Plan"),
    "VariablePlan": ("graphsurgeon._src.surgery", "VariablePlan"),
    "add_head": ("graphsurgeon._src.surgery", "add_head"),
    "make_plan": ("graphsurgeon._src.surgery", "make_plan"),
    "reinitialize": ("graphsurgeon._src.surgery", "reinitialize"),
    "flatten": ("graphsurgeon._src.tf2", "flatten"),
    "ThawResult": ("graphsurgeon._src.thaw", "ThawResult"),
    "thaw": ("graphsurgeon._src.thaw", "thaw"),
    "Stage": ("graphsurgeon._src.train", "Stage"),
    "build_train_op": ("graphsurgeon._src.train", "build_train_op"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(_importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'graphsurgeon' has no attribute '{name}'")


def __dir__():
    return sorted(set(__all__) | {k for k in globals() if k.startswith("__")})
