"""Where a run's examples come from (data in memory, or a bottleneck cache) and what they are called."""
from __future__ import annotations

import dataclasses

from graphsurgeon._src import cache as cache_mod
from graphsurgeon._src import train
from graphsurgeon._src.errors import ConfigError, DataError
from graphsurgeon._src.feeds import check_example_shape
from graphsurgeon._src.mixins import agree, listed, series
from graphsurgeon._src.storage.paths import refuse_output_inside, resolve
from graphsurgeon._src.tf2 import read_meta_graph


class ArrayExamples:
    """Training data held in memory, fed at the model's input."""

    def __init__(self, data, batch_size, seed):
        self.data, self.batch_size, self.seed = data, batch_size, seed

    def steps(self):
        return train.steps_per_epoch(len(self.data.part("train")[1]), self.batch_size)

    def train(self):
        return train.array_batches(*self.data.part("train"), self.batch_size, self.seed)

    def split(self, name):
        x, y = self.data.part(name)
        return (lambda: train.array_batches(x, y, self.batch_size)(0)) if len(y) else None

    def first(self):
        """The first ``batch_size`` training inputs, in data order."""
        return self.data.part("train")[0][:self.batch_size]


class CacheExamples:
    """Training data from a bottleneck cache, fed at the cached tensor."""

    def __init__(self, reader, batch_size, seed):
        self.reader, self.batch_size, self.seed = reader, batch_size, seed

    def steps(self):
        return train.steps_per_epoch(self.reader.count("train"), self.batch_size)

    def train(self):
        return lambda epoch: self.reader.batches("train", self.batch_size, seed=self.seed, epoch=epoch)

    def split(self, name):
        if not self.reader.count(name):
            return None
        return lambda: self.reader.batches(name, self.batch_size, shuffle=False)

    def first(self):
        """The first ``batch_size`` cached training rows, in the cache's order."""
        return next(iter(self.reader.batches("train", self.batch_size, shuffle=False)))[0]


def with_cache_settings(cfg, cache_dir):
    """``(cfg, note, meta_graph)``: ``cfg`` with the input and the feeds below the cached tensor that the cache
    was made with, where ``cfg`` gives none (see
    :func:`graphsurgeon._src.cache.match.recorded_settings`), a line naming what was taken so
    (None when nothing was), and the model's MetaGraphDef read for it, for the run to build its graph from
    (None when ``cfg`` has no model or no cut: nothing was read)."""
    spec = cfg.head_spec()
    cut = spec[0] if spec else cfg.output
    if not cfg.model or not cut:
        return cfg, None, None
    meta = read_meta_graph(resolve(cfg.model, cfg.tags))
    input, feeds = cache_mod.recorded_settings(cache_dir, cfg.model, cut, input=cfg.input, feeds=cfg.feeds,
                                               tags=cfg.tags, meta_graph=meta)
    taken = ([f"input {input}"] if input and not cfg.input else []) + [
        f"feed {name} {value!r}" for name, value in feeds.items() if name not in (cfg.feeds or {})]
    note = (f"taken from what the cache {cache_dir} was made with (its manifest), as the run gave none: "
            + "; ".join(taken)) if taken else None
    return dataclasses.replace(cfg, input=input, feeds=feeds), note, meta


def open_cache(setup, cache_dir, batch_size, seed, *, image_scale=None):
    """``(reader, CacheExamples)`` for a cache that matches ``setup``'s model, cut, feeds and head.

    Raises:
      CacheError: the cache was made by another model or under other settings (feeds, input,
        preprocessing; ``image_scale`` is the run's pixel scale), or holds a tensor that the head's cut
        (or the output fine-tuned) is not computed from; ConfigError: trainable variables lie
        below the cached tensor; DataError: labels the head cannot take, or no training examples.
    """
    reader = cache_mod.CacheReader(cache_dir)
    try:
        cache_mod.check_matches(reader, setup.model, feeds=setup.feeds, train_feeds=setup.train_feeds,
                                input=setup.input.name, image_scale=image_scale, reads=setup.model.tensor(setup.cut).name,
                                n_classes=setup.logits.shape.as_list()[-1] if setup.head else None)
        below = cache_mod.variables_below(setup.model, reader.cut, setup.plan.trainable)
        if below:
            n = len(below)
            raise ConfigError(
                f"trainable {listed('variable', below, 4)} {agree(n, 'lies', 'lie')} below the cached tensor "
                f"'{reader.cut}': {agree(n, 'it', 'they')} cannot train from the cache; cache a lower tensor or leave "
                f"{agree(n, 'it', 'them')} frozen"
            )
        n_classes = setup.logits.shape.as_list()[-1]
        lo, hi = reader.label_range
        if lo < 0 or hi >= n_classes:
            raise DataError(f"{cache_dir}: labels range over {lo}..{hi} but the head has {n_classes} classes")
        if not reader.count("train"):
            raise DataError(f"{cache_dir}: the cache has no training examples")
    except Exception:
        reader.close()
        raise
    return reader, CacheExamples(reader, batch_size, seed)


def class_names(names, n_classes: int) -> list[str]:
    """The head's class names: the data's (image folders' sub-folders, an ``.npz``'s ``classes``
    array, a cache's manifest), else ``"0"``, ``"1"``, ...

    Raises:
      ConfigError: the data names another number of classes than the head has.
    """
    if not names:
        return [str(i) for i in range(n_classes)]
    names = [str(n) for n in names]
    if len(names) != n_classes:
        raise ConfigError(f"the head has {n_classes} classes but the data names {len(names)} "
                          f"({series(names, 5)})")
    if any("\n" in n for n in names):
        raise ConfigError("a class name holds a line break; labels.txt has one name per line")
    return names


def check_out_dir(cfg, out_dir: str) -> None:
    """Refuse an output directory that is, or lies inside, a directory the model is read from
    (:func:`~graphsurgeon._src.storage.paths.refuse_output_inside`)."""
    refuse_output_inside(out_dir, [cfg.model], f"out_dir={out_dir}", holding=True)


def check_data(data, inp, n_classes, where="data"):
    """Raise :class:`DataError` if ``data``'s examples do not fit input ``inp`` or its labels the head;
    messages start with ``where`` (the data's path)."""
    check_example_shape(data.x.shape[1:], inp, where)
    if len(data.y) and (data.y.min() < 0 or data.y.max() >= n_classes):
        raise DataError(f"{where}: labels range over {int(data.y.min())}..{int(data.y.max())} but the head has "
                        f"{n_classes} classes")
