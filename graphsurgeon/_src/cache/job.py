"""The settings of a cache run and what they open: the model cut at ``cut``, and the data."""
from __future__ import annotations

import contextlib
import dataclasses

from graphsurgeon._src.cache.header import fingerprint, header
from graphsurgeon._src.errors import ConfigError, DataError
from graphsurgeon._src.feeds import (
    Feeder,
    batch_size_for,
    check_example_shape,
    find_input,
    fixed_batch,
    parse_feeds,
    unread_feed,
)
from graphsurgeon._src.restore import restore
from graphsurgeon._src.storage import datasets, records


@dataclasses.dataclass
class Settings:
    """Every setting of a cache run (see :func:`graphsurgeon._src.cache.generate`)."""

    model_path: str
    cut: str  # the cut point: the name of the tensor cached
    data: object
    out_dir: str
    input: str | None = None
    feeds: dict | None = None
    batch_size: int | None = None
    dtype: str = "float32"
    augment: int = 0
    augment_params: dict | None = None
    seed: int = 0
    shard_size: int = 4096
    repair: bool = False
    allow_random: bool = False
    allow_batch_dependent: bool = False
    allow_cast: bool = False
    allow_unsafe_ops: bool = False
    image_scale: str = "unit"
    tags: tuple = ("serve",)
    progress: bool = True
    source_args: dict = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`ConfigError` for settings no run can use."""
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"dtype must be float32 or float16, not {self.dtype}")
        if self.shard_size < 1:
            raise ConfigError(f"shard_size={self.shard_size}: expected an integer >= 1")
        if self.augment < 0:
            raise ConfigError(f"augment={self.augment}: expected an integer >= 0")
        if self.augment > 60000:
            raise ConfigError(f"augment={self.augment}: at most 60000 distorted copies per image")

    def distortions(self) -> dict | None:
        """The distortion settings and seed of the copies this run asks for, or None."""
        if not self.augment:
            return None
        return dict(datasets.AUGMENT_DEFAULTS, **(self.augment_params or {}), seed=self.seed)


@dataclasses.dataclass
class Cut:
    """The restored model, cut at the cached tensor (``tensor``), and how it is fed."""

    model: object
    tensor: object          # tf.Tensor at the cut
    input: object           # tf.Tensor
    feeds: dict             # values of the other placeholders the tensor reads
    feeder: Feeder
    batch_size: int


@contextlib.contextmanager
def open_cut(s: Settings):
    """Restore ``s.model_path`` pruned to ``s.cut``; find its input and feeds.

    Raises:
      ConfigError: a feed the tensor does not read, a batch size the graph does not allow.
    """
    feeds = parse_feeds(s.feeds)
    keep = [s.cut] + ([s.input] if s.input else [])
    with restore(s.model_path, tags=s.tags, outputs=keep, inputs=[s.input] if s.input else None,
                 allow_cast=s.allow_cast, allow_unsafe_ops=s.allow_unsafe_ops) as model:
        inp, extra = find_input(model, s.input, s.cut, feeds)
        unused = sorted(set(feeds) - set(extra))
        if unused:
            raise unread_feed(s.cut, unused[0], extra)
        t = model.tensor(s.cut)
        fixed = fixed_batch(inp, t)
        batch_size = batch_size_for(s.batch_size, fixed, 256, f"the graph of {s.model_path}")
        values = {n: feeds[n] for n in extra}
        feeder = Feeder(model, inp, values, fixed)
        yield Cut(model, t, inp, values, feeder, batch_size)


def open_data(s: Settings, cut: Cut) -> records.RecordSource:
    """The data set's records, preprocessed for ``cut``'s input.

    Raises:
      DataError: unreadable data, no examples, examples of another shape than the input takes,
        distortions asked of data that holds no images.
    """
    if isinstance(s.data, records.RecordSource):
        source = s.data
    else:
        in_shape = cut.input.shape.as_list() if cut.input.shape.rank is not None else []
        source = records.open_source(s.data, image_size=in_shape[1:3] if len(in_shape) == 4 else None,
                                     scale=s.image_scale, **s.source_args)
    if not len(source):
        raise DataError(f"data {s.data}: no examples")
    check_example_shape(source.example_shape, cut.input, f"data {s.data}")
    if s.augment and source.kind not in ("images", "tfrecord-images"):
        raise DataError(f"data {s.data}: distortions (augment={s.augment}) need images (an image folder or "
                        "TFRecord images)")
    return source


def make_header(s: Settings, cut: Cut, source) -> dict:
    """The header this run's rows are made under (see :mod:`graphsurgeon._src.cache.fingerprint`)."""
    fp = fingerprint(cut.model, s.cut, cut.input.name, cut.feeds)
    return header(fp, cut.tensor, source.preprocessing, s.dtype, s.distortions())
