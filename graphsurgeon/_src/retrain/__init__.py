"""Retrain the top of a legacy model: restore, cut, new head, choose what trains, train, export.

The same :class:`RetrainConfig` drives the dry-run plan (:func:`plan`) and the run
(:func:`retrain`); the CLI and TOML plan files fill it in.

* :mod:`~graphsurgeon._src.retrain.config` — the settings and their defaults;
* :mod:`~graphsurgeon._src.retrain.setup` — build the graph: restore, head, what trains when;
* :mod:`~graphsurgeon._src.retrain.data` — examples from data or a cache, class names;
* :mod:`~graphsurgeon._src.retrain.run` — train, evaluate, export.
"""
from graphsurgeon._src.retrain.config import DEFAULTS, RetrainConfig, training_settings
from graphsurgeon._src.retrain.data import class_names
from graphsurgeon._src.retrain.run import RetrainResult, retrain
from graphsurgeon._src.retrain.setup import Setup, build, picture, plan

__all__ = ["DEFAULTS", "RetrainConfig", "RetrainResult", "Setup", "build", "class_names", "picture", "plan",
           "retrain", "training_settings"]
