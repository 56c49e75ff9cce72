"""Does a cache hold what this model, with these settings, would compute? (``retrain --cache``)"""
from __future__ import annotations

import re

import numpy as np

from graphsurgeon._src import select, subgraph
from graphsurgeon._src.cache.header import differences, feed_digest, fingerprint, header
from graphsurgeon._src.errors import CacheError, TensorNotFoundError
from graphsurgeon._src.feeds import find_input, parse_feeds
from graphsurgeon._src.storage import cachefiles
from graphsurgeon._src.storage.paths import resolve
from graphsurgeon._src.tf2 import read_meta_graph


def check_matches(reader, model, *, feeds=None, train_feeds=None, input: str | None = None,
                  image_scale: str | None = None, reads: str | None = None,
                  n_classes: int | None = None) -> None:
    """Raise :class:`CacheError` unless ``model`` with these settings computes the cached tensor as
    the cache was made: the same frozen subgraph and values, input, feed values, tensor dtype and
    shape, and preprocessing (the image size the model's input takes, the pixel scale
    ``image_scale``).

    Args:
      feeds: values of the placeholders the cached tensor reads besides its input (as the run
        feeds them at inference); train_feeds: their values while training, which must equal
        ``feeds`` for placeholders below the cached tensor (those layers do not run again).
      input: the input tensor's name (default: as :func:`graphsurgeon._src.feeds.find_input` finds it).
      reads: the tensor the run reads at or above the cached one (a new head's cut, with its
        ``n_classes``, or the logits fine-tuned), for the message when ``model``, pruned to it, lacks
        the cached tensor.

    Raises:
      CacheError: naming every difference; the cached tensor missing from ``model``: a tensor the
        run does not compute from it (``reads``), or one the model's graph does not hold at all.
    """
    try:
        t = model.tensor(reader.cut)
    except TensorNotFoundError:
        raise CacheError(_not_read(reader, model, reads, n_classes)) from None
    feeds, train_feeds = parse_feeds(feeds), parse_feeds(train_feeds)
    inp, extra = find_input(model, input, reader.cut, feeds, train_feeds, refuse_unread=False)  # others: above it
    now = header(fingerprint(model, reader.cut, inp.name, {n: feeds[n] for n in extra if n in feeds}), t,
                 expected_preprocessing(reader.manifest["preprocessing"], inp, image_scale), reader.dtype, None)
    diff = differences(reader.manifest, now)
    if diff:
        raise CacheError(f"{reader.directory} was made under other settings than this model and run "
                         f"({'; '.join(diff)}); its activations are stale: regenerate it with generate_cache, or "
                         "give the settings it was made with (input= and feeds= left out are taken from the cache)")
    # (a placeholder_with_default given only in train_feeds moves from its default)
    moved = [n for n in extra if n in train_feeds and (n not in feeds or feed_digest(model, n, train_feeds[n]) !=
                                                       feed_digest(model, n, feeds[n]))]
    if moved:
        raise CacheError(f"{reader.directory}: train_feeds={{'{moved[0]}': VALUE}} changes placeholder "
                         f"'{moved[0]}' below the cached tensor '{reader.cut}', whose values were computed once with "
                         f"{'its feeds= value' if moved[0] in feeds else 'its default'}; training from the cache cannot "
                         "change them: leave it out of train_feeds=, "
                         "or train from the data")


def recorded_settings(directory: str, model: str, cut: str, *, input: str | None = None, feeds=None,
                      tags=("serve",), meta_graph=None) -> tuple[str | None, dict]:
    """``(input, feeds)`` for a run from the cache at ``directory`` that reads tensor ``cut`` of
    ``model``: those given, and where none is given, what the cache's manifest records it was made
    with (its input, unless ``feeds`` names it; the values of the placeholders below the cached
    tensor, other than those ``feeds`` names). A cache without a manifest, or whose tensor ``cut``
    is not computed from, is left to :func:`check_matches` to refuse: nothing is taken from it.

    The manifest records an input that was not a placeholder by the placeholder that replaced it
    (``queue_output1:0`` for ``queue:1``): that name is turned back into the tensor's. It records a
    feed's value only when it has at most four elements (else its dtype, shape and sha256). ``meta_graph``:
    ``model``'s MetaGraphDef (as :func:`graphsurgeon._src.tf2.read_meta_graph` reads it, with ``tags``) when the
    caller has read it already; else it is read here, only when the cache has a manifest.

    Raises:
      CacheError: ``input`` is given and is not the input the cache was made with; a feed the cache
        was made with whose value the manifest does not hold, not given in ``feeds``; a feed record
        that is neither a value nor a digest (a damaged manifest).
    """
    feeds = dict(feeds or {})
    manifest = cachefiles.read_manifest(directory)
    if manifest is None:
        return input, feeds
    fp = manifest["fingerprint"]
    gd = (meta_graph if meta_graph is not None else read_meta_graph(resolve(model, tags))).graph_def
    by_name = {n.name: n for n in gd.node}
    if select.normalize_name(fp["tensor"]) not in subgraph.upstream(gd, [cut], by_name):
        return input, feeds
    named = {select.normalize_name(k) for k in feeds}
    recorded = _given_input(fp["input"], by_name)
    if input is None and select.normalize_name(recorded) not in named:
        input = recorded  # (one the run feeds a constant is refused as not given)
    elif input is not None and _tensor_name(input) != _tensor_name(recorded):
        raise CacheError(f"{directory} was made with input {recorded}, and this run's input is '{input}': the cached "
                         f"activations were computed from {recorded}; leave input= out (the cache's input is taken), "
                         f"or make a cache from input={input} with generate_cache")
    for name, d in sorted(fp["feeds"].items()):
        if name in named:
            continue
        if not isinstance(d, dict) or not {"value", "sha256"} & set(d):
            raise CacheError(_malformed(directory, name, d))
        if "value" not in d:
            shown = f"{d.get('dtype')}{d.get('shape')} sha256 {str(d['sha256'])[:12]}"
            raise CacheError(f"{directory} was made with feeds={{'{name}': VALUE}} ({shown}), a value its manifest "
                             "records only by its digest: give the same value in feeds= (the .npy file it was made "
                             "with)")
        try:
            feeds[name] = np.asarray(d["value"], dtype=d["dtype"]).reshape(d["shape"]).tolist()
        except (KeyError, TypeError, ValueError):
            raise CacheError(_malformed(directory, name, d)) from None
    return input, feeds


def _malformed(directory: str, name: str, record) -> str:
    return (f"{directory}: the manifest's feed '{name}' is malformed ({record}); the manifest is damaged (delete the "
            "cache directory to rebuild it)")


def _tensor_name(name: str) -> str:
    """``name`` as a tensor's name: ``'x'`` -> ``'x:0'``, ``'q:1'`` unchanged."""
    return name if re.search(r":\d+$", name) else name + ":0"


def _given_input(recorded: str, by_name: dict) -> str:
    """The tensor a user names for the input a manifest records (the placeholder that replaced it:
    ``op:0`` itself, or ``op_outputK:0`` for output K, see ``subgraph.replace_with_placeholder``)."""
    m = re.fullmatch(r"(.+)_output(\d+)(?:_\d+)?:0", recorded)
    if select.normalize_name(recorded) not in by_name and m and m.group(1) in by_name:
        return f"{m.group(1)}:{m.group(2)}"
    return recorded


def _not_read(reader, model, reads: str | None, n_classes: int | None) -> str:
    """Why ``model`` (pruned to what the run reads) lacks the cached tensor: the run reads a tensor not
    computed from it, or the model's whole graph does not hold it."""
    op = select.normalize_name(reader.cut)
    if reads and any(n.name == op for n in read_meta_graph(model.source).graph_def.node):
        cut = op if reader.cut == op + ":0" else reader.cut
        what = (f"the head reads '{reads}'" if n_classes else f"the run fine-tunes output '{reads}'")
        return (f"{reader.directory} holds the tensor '{reader.cut}', but {what}, which is not computed from it (a "
                f"run from a cache reads the cached tensor or a tensor above it): give "
                f"head={cut}:{n_classes or 'N_CLASSES'} for a new head on the cached tensor, or cache '{reads}' "
                "with generate_cache")
    return (f"{reader.directory} holds the tensor '{reader.cut}', which the graph of {model.source.path} does not "
            "have: the cache was made from another graph")


def expected_preprocessing(cached: dict, inp, image_scale: str | None) -> dict:
    """The preprocessing this model and run would use, for data of the cached kind: the image size
    its input takes, and ``image_scale`` when given."""
    out = dict(cached)
    shape = inp.shape.as_list() if inp.shape.rank is not None else []
    if "image_size" in out and len(shape) == 4:
        out["image_size"] = shape[1:3]
    if "scale" in out and image_scale is not None:
        out["scale"] = image_scale
    return out
