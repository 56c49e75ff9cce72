"""Bottleneck caches: run the frozen layers once, store the activations, train the top from them.

::

    data ──> [frozen layers] ──> cut T ──> shard-00000.npy, … + examples-….npy + manifest.json
                                              │
    retrain --cache DIR:   feed T  ──> [trainable layers above T] ──> new head

* :mod:`~graphsurgeon._src.cache.generation` — build or complete a cache, in phases:
  :mod:`~.job` (settings, the cut, the data), :mod:`~.header` (what rows depend on),
  :mod:`~.state` (what the directory holds), :mod:`~.plan` (rows to compute, the data set's
  index), :mod:`~.compute` (one shard's rows), :mod:`~.commit` (index, manifest, report),
  :mod:`~.beam` (the same on Apache Beam);
* :mod:`~graphsurgeon._src.cache.reader` and :mod:`~.epochs` — minibatches within a memory budget;
* :mod:`~graphsurgeon._src.cache.match` — does a cache fit a model and run;
  :mod:`~.checks` — what cannot be cached (random values, batch-mates) unless allowed, and
  what was allowed (the manifest's ``checks``), or what cannot train from a cache.

A cache is *content-keyed*: a row is the activation of one input's bytes (and, for distorted
copies, its copy number) under one fingerprint (the frozen subgraph and values, the cut, input,
feeds, preprocessing, stored dtype); a cache made under another fingerprint is never reused.
It is a cache *of a data set*: its index lists the examples of the data it was last run on
(labels resolved by class name, splits, duplicates each with its own label), and rows that data
no longer uses stay stored but are not read.
"""
from graphsurgeon._src.cache.checks import check_values, variables_below
from graphsurgeon._src.cache.commit import CacheReport
from graphsurgeon._src.cache.generation import generate
from graphsurgeon._src.cache.header import fingerprint
from graphsurgeon._src.cache.match import check_matches, recorded_settings
from graphsurgeon._src.cache.reader import CacheReader

__all__ = ["CacheReader", "CacheReport", "check_matches", "recorded_settings", "check_values", "fingerprint", "generate",
           "variables_below"]
