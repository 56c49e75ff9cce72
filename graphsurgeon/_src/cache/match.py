"""Does a cache hold what this model, with these settings, would compute? (``retrain --cache``)"""
from __future__ import annotations

from graphsurgeon._src.cache.header import differences, feed_digest, fingerprint, header
from graphsurgeon._src.errors import CacheError, TensorNotFoundError
from graphsurgeon._src.feeds import find_input, parse_feeds


def check_matches(reader, model, *, feeds=None, train_feeds=None, input: str | None = None,
                  image_scale: str | None = None) -> None:
    """Raise :class:`CacheError` unless ``model`` with these settings computes the cached tensor as
    the cache was made: the same frozen subgraph and values, input, feed values, tensor dtype and
    shape, and preprocessing (the image size the model's input takes, the pixel scale
    ``image_scale``).

    Args:
      feeds: values of the placeholders the cached tensor reads besides its input (as the run
        feeds them at inference); train_feeds: their values while training, which must equal
        ``feeds`` for placeholders below the cached tensor (those layers do not run again).
      input: the input tensor's name (default: as :func:`graphsurgeon._src.feeds.find_input` finds it).

    Raises:
      CacheError: naming every difference.
    """
    try:
        t = model.tensor(reader.cut)
    except TensorNotFoundError:
        raise CacheError(f"{reader.directory}: cached tensor '{reader.cut}' is not in the model") from None
    feeds, train_feeds = parse_feeds(feeds), parse_feeds(train_feeds)
    inp, extra = find_input(model, input, reader.cut, feeds, train_feeds)
    now = header(fingerprint(model, reader.cut, inp.name, {n: feeds[n] for n in extra if n in feeds}), t,
                 expected_preprocessing(reader.manifest["preprocessing"], inp, image_scale), reader.dtype, None)
    diff = differences(reader.manifest, now)
    if diff:
        raise CacheError(f"{reader.directory} was made under other settings than this model and run "
                         f"({'; '.join(diff)}); its activations are stale: regenerate it with generate_cache, or "
                         "give the settings it was made with")
    # (a placeholder_with_default given only in train_feeds moves from its default)
    moved = [n for n in extra if n in train_feeds and (n not in feeds or feed_digest(model, n, train_feeds[n]) !=
                                                       feed_digest(model, n, feeds[n]))]
    if moved:
        raise CacheError(f"{reader.directory}: train_feeds={{'{moved[0]}': VALUE}} changes placeholder "
                         f"'{moved[0]}' below the cached tensor '{reader.cut}', whose values were computed once with "
                         f"{'its feeds= value' if moved[0] in feeds else 'its default'}; training from the cache cannot "
                         "change them: leave it out of train_feeds=, "
                         "or train from the data")


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
