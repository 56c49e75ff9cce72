"""graphsurgeon: surgery on legacy TensorFlow 1 models for transfer learning.

>>> import graphsurgeon as gs
>>> gs.match(["hidden[12]"], ["hidden1/weights", "hidden2/biases", "hidden3/weights"])
['hidden1/weights', 'hidden2/biases']

The public API is exactly ``__all__``; other modules are internal.
"""
from graphsurgeon.cache import CacheReader, CacheReport, generate as generate_cache
from graphsurgeon.errors import (CacheError, CheckpointNotFoundError, MigrateError, ConfigError, CorruptCheckpointError, DataError,
                                 GraphSurgeonError, NoMetaGraphError, PatternError, PlanError,
                                 TensorNotFoundError, UnregisteredOpError, WrongPathKindError)
from graphsurgeon.export import ExportResult, export
from graphsurgeon.inspect import inspect
from graphsurgeon.migrate import MigrationResult, Rules, diff, migrate
from graphsurgeon.model import Model
from graphsurgeon.restore import restore
from graphsurgeon.retrain import RetrainConfig, RetrainResult, build, plan, retrain
from graphsurgeon.select import match
from graphsurgeon.storage.datasets import Dataset
from graphsurgeon.storage.datasets import load as load_data
from graphsurgeon.surgery import Head, Plan, VariablePlan, add_head, make_plan, reinitialize
from graphsurgeon.train import Stage, build_train_op

__version__ = "0.1.0"

__all__ = [
    "CacheError", "CheckpointNotFoundError", "ConfigError", "MigrateError", "CorruptCheckpointError", "DataError", "GraphSurgeonError",
    "NoMetaGraphError", "PatternError", "PlanError", "TensorNotFoundError", "UnregisteredOpError",
    "WrongPathKindError",
    "CacheReader", "CacheReport", "Dataset", "ExportResult", "Head", "MigrationResult", "Model", "Rules", "Plan", "RetrainConfig", "RetrainResult", "Stage", "VariablePlan",
    "add_head", "build", "build_train_op", "diff", "export", "generate_cache", "inspect", "load_data", "make_plan", "match", "migrate", "plan",
    "reinitialize", "restore", "retrain",
]
