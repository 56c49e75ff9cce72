"""Does a cache hold what this model, with these settings, would compute? (``retrain --cache``)"""
from __future__ import annotations

from graphsurgeon._src import select
from graphsurgeon._src.cache.header import differences, feed_digest, fingerprint, header
from graphsurgeon._src.errors import CacheError, TensorNotFoundError
from graphsurgeon._src.feeds import find_input, parse_feeds
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
    inp, extra = find_input(model, input, reader.cut, feeds)
    now = header(fingerprint(model, reader.cut, inp.name, {n: feeds[n] for n in extra}), t,
                 expected_preprocessing(reader.manifest["preprocessing"], inp, image_scale), reader.dtype, None)
    diff = differences(reader.manifest, now)
    if diff:
        raise CacheError(f"{reader.directory} was made under other settings than this model and run "
                         f"({'; '.join(diff)}); its activations are stale: regenerate it with generate_cache, or "
                         "give the settings it was made with")
    moved = [n for n in extra if n in train_feeds and feed_digest(model, n, train_feeds[n]) !=
             feed_digest(model, n, feeds[n])]
    if moved:
        raise CacheError(f"{reader.directory}: train_feeds={{'{moved[0]}': VALUE}} changes placeholder "
                         f"'{moved[0]}' below the cached tensor '{reader.cut}', whose values were computed once with "
                         "its feeds= value; training from the cache cannot change them: leave it out of train_feeds=, "
                         "or train from the data")


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
