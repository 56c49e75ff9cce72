"""What a cut graph is fed: its input, values for the other placeholders, and batches of the
size the graph allows.

* The *input* of a cut tensor is the one placeholder upstream of it that has no value given
  (or the tensor named by ``input``, which :func:`graphsurgeon._src.restore` turns into a placeholder).
* *Feeds* are values for the other placeholders (``keep_prob``, ``is_training``, an RNN's
  initial state): a scalar, a string (``'0.5'``, ``'true'``) or an array (an ``.npy`` file),
  broadcast to the placeholder's static shape with the batch dimension taken from the batch.
* A graph whose static shapes fix the batch (``[100, 784]``) is run on batches of exactly that
  size: the last batch is padded by repeating its rows and the padding is dropped afterwards.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphsurgeon._src import guess, select, subgraph
from graphsurgeon._src.errors import ConfigError, DataError
from graphsurgeon._src.mixins import agree, listed
from graphsurgeon._src.storage import files


def parse_feeds(feeds) -> dict[str, np.ndarray]:
    """``{placeholder name: ndarray}`` from ``{name: value}``: numbers and ``true``/``false`` as
    strings, scalars, arrays, or the path of an ``.npy`` file (read without pickle).

    Raises:
      ConfigError: a value that is none of these, or an ``.npy`` file that cannot be read.
    """
    out = {}
    for k, v in (feeds or {}).items():
        name = select.normalize_name(k)
        if isinstance(v, str):
            text = v.strip()
            if text.lower() in ("true", "false"):
                v = np.asarray(text.lower() == "true")
            elif text.endswith(".npy"):
                v = _load_npy(name, text)
            else:
                try:
                    v = np.asarray(float(text))
                except ValueError:
                    raise ConfigError(f"feed '{k}={v}': expected a number, true/false or an .npy file") from None
        out[name] = np.asarray(v)
    return out


def _load_npy(name: str, path: str) -> np.ndarray:
    try:
        return files.read_npy(path)
    except DataError as e:
        raise ConfigError(f"feed '{name}={path}': {e}") from None
    except (OSError, ValueError, EOFError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0][:120]
        raise ConfigError(f"feed '{name}={path}': cannot read the .npy file ({reason})") from None


def broadcast(name: str, value: np.ndarray, tensor: tf.Tensor, batch: int | None) -> np.ndarray:
    """``value`` shaped for placeholder ``tensor`` when the input batch has ``batch`` rows.

    A value of lower rank than the placeholder is broadcast to its static shape, the first
    (batch) dimension, when unknown, taken from ``batch``; a value of the same rank whose first
    dimension is 1 is repeated along it. The value is cast to the placeholder's dtype.

    Raises:
      ConfigError: the value cannot take the placeholder's shape.
    """
    dtype = tensor.dtype.base_dtype.as_numpy_dtype
    value = np.asarray(value)
    if tensor.dtype.is_floating and value.dtype.kind not in "biuf":
        raise ConfigError(f"feed '{name}': a {value.dtype} value cannot feed {tensor.dtype.name} placeholder '{name}'")
    shape = tensor.shape
    if shape.rank is None:
        return value.astype(dtype, copy=False)
    dims = shape.as_list()
    if dims and dims[0] is None and batch is not None:
        dims[0] = batch
    if value.ndim > len(dims):
        raise ConfigError(f"feed '{name}': a value of shape {list(value.shape)} cannot feed placeholder '{name}' "
                          f"of shape {shape.as_list()}")
    if value.ndim == len(dims) and all(d is None or d == s for d, s in zip(dims, value.shape)):
        return value.astype(dtype, copy=False)
    missing = [i for i, d in enumerate(dims) if d is None]
    if missing:
        raise ConfigError(f"feed '{name}': placeholder '{name}' has shape {shape.as_list()}; a value of shape "
                          f"{list(value.shape)} cannot fill its unknown {listed('dimension', missing)}: give an .npy "
                          "of the full shape")
    try:
        return np.broadcast_to(value, dims).astype(dtype)
    except ValueError:
        raise ConfigError(f"feed '{name}': a value of shape {list(value.shape)} does not broadcast to placeholder "
                          f"'{name}' of shape {shape.as_list()} (batch {batch})") from None


class Feeder:
    """Feed dicts for a cut graph: the input, the other placeholders' values, fixed-size batches.

    Attributes:
      input: the input tensor.
      values: ``{placeholder name: ndarray}`` of the placeholders the graph needs besides the input.
      batch_size: the batch the graph's static shapes fix, or None.
    """

    def __init__(self, model, input_tensor: tf.Tensor, values: dict, fixed_batch: int | None = None):
        self.input = input_tensor
        self.values = dict(values)
        self.batch_size = fixed_batch
        self._tensors = {n: model.tensor(n) for n in sorted(self.values)}
        for n in self._tensors:  # fail now, not at the first batch
            broadcast(n, self.values[n], self._tensors[n], 1 if fixed_batch is None else fixed_batch)

    def extras(self, batch: int) -> dict:
        """``{tensor: value}`` for the placeholders other than the input, for a batch of ``batch`` rows."""
        return {t: broadcast(n, self.values[n], t, batch) for n, t in self._tensors.items()}

    def pad(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """``(x padded to the fixed batch by repeating its rows, number of real rows)``."""
        n = len(x)
        if self.batch_size is None or n == self.batch_size:
            return x, n
        if n > self.batch_size:
            raise ConfigError(f"a batch of {n} rows is larger than the batch of {self.batch_size} the graph fixes")
        return np.take(x, np.arange(self.batch_size) % n, axis=0), n

    def feed(self, x: np.ndarray) -> tuple[dict, int]:
        """``(feed dict for a batch x, number of real rows)``: padded, with the other placeholders' values."""
        x, n = self.pad(x)
        return {self.input: x, **self.extras(len(x))}, n


def check_example_shape(got, inp: tf.Tensor, where: str) -> None:
    """Raise :class:`DataError` unless examples of shape ``got`` fit input ``inp`` (its static shape
    past the batch dimension; unknown dimensions take anything)."""
    want = inp.shape.as_list()[1:] if inp.shape.rank is not None else None
    got = list(got)
    if want is not None and (len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got))):
        raise DataError(f"{where}: examples have shape {got} but input '{inp.name}' takes {want}")


def batch_size_for(requested: int | None, fixed: int | None, default: int, what: str) -> int:
    """The batch size to use: the graph's fixed batch, else ``requested``, else ``default``.

    Raises:
      ConfigError: ``requested`` differs from the batch the graph fixes.
    """
    if fixed is not None:
        if requested not in (None, fixed):
            raise ConfigError(f"{what} fixes the batch at {fixed} in its static shapes; pass batch_size={fixed} "
                              "or leave it out")
        return fixed
    if requested is not None and requested < 1:
        raise ConfigError(f"batch size must be >= 1, not {requested}")
    return requested or default


def fixed_batch(*tensors) -> int | None:
    """The batch size fixed by the static shapes of ``tensors`` (their first dimension), or None."""
    sizes = sorted({t.shape.as_list()[0] for t in tensors if t.shape.rank and t.shape.as_list()[0] is not None})
    if len(sizes) > 1:
        raise ConfigError(f"tensors {', '.join(t.name for t in tensors)} fix different batch sizes {sizes} in their "
                          "static shapes (or axis 0 of one is not the batch, as in a time-major RNN's tensors)")
    return sizes[0] if sizes else None


def find_input(model, input_name: str | None, cut: str, feeds: dict, train_feeds=(), *, refuse_unread: bool = True):
    """The input of tensor ``cut`` and the other placeholders it needs.

    The input is ``input_name`` if given (it must feed ``cut``), else the one placeholder upstream
    of ``cut`` that ``feeds`` does not cover. A ``placeholder_with_default`` upstream of ``cut``
    that ``feeds`` or ``train_feeds`` names is fed too (one that neither names runs with its default).
    With ``refuse_unread=False`` feeds ``cut`` does not read are left to the caller (a cache's tensor,
    below the layers a run's other feeds drive).

    Returns:
      ``(input tensor, sorted names of the other placeholders cut needs and of the fed
      placeholders with a default)``.

    Raises:
      ConfigError: ``feeds`` or ``train_feeds`` names a placeholder ``cut`` does not read (refused
        first, before the input is told); the input cannot be told or does not feed ``cut``; ``feeds``
        gives the input a value (or every placeholder ``cut`` reads one); another placeholder has no
        value in ``feeds``.
    """
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    needed = subgraph.upstream(gd, [cut], by_name)
    phs = sorted(n.name for n in subgraph.placeholders(gd) if n.name in needed)
    readable = set(phs) | {n for n in needed if by_name[n].op == "PlaceholderWithDefault"}
    unread = sorted((set(feeds) | set(train_feeds)) - readable) if refuse_unread else []
    if unread:  # refused before a message that asks for feeds
        raise unread_feed(cut, unread[0], sorted(readable), train=unread[0] not in feeds, besides_input=False)
    if input_name:
        inp = model.tensor(input_name)
        if inp.op.name not in needed:
            raise ConfigError(
                f"input '{input_name}' does not feed '{cut}'; '{cut}' reads "
                + (listed("placeholder", phs) if phs else "no placeholder")
            )
        if inp.op.name in feeds:
            raise ConfigError(f"feed '{inp.op.name}': '{inp.op.name}' is the input (input={input_name}), which the "
                              "data feeds; it cannot also be fed a constant: leave it out of feeds=")
    else:
        cands = [n for n in phs if n not in feeds]
        if phs and not cands:
            raise ConfigError(_all_fed(cut, phs))
        if len(cands) != 1:
            raise ConfigError(_cannot_tell(model, gd, by_name, needed, cut, phs, cands))
        inp = model.tensor(cands[0])
    extras = sorted(n for n in phs if n != inp.op.name)
    missing = [n for n in extras if n not in feeds]
    if missing:
        shapes = listed("placeholder", [f"{n} {_shape_text(model.tensor(n))}" for n in missing])
        raise ConfigError(
            f"'{cut}' also needs {shapes}; give {agree(len(missing), 'its value', 'their values')} in "
            "feeds={'NAME': VALUE} (a number, "
            "true/false, or an .npy file; train_feeds={'NAME': VALUE} if training differs, e.g. keep_prob)"
        )
    fed = (set(feeds) | set(train_feeds)) & needed - {inp.op.name}
    return inp, sorted(extras + [n for n in fed if by_name[n].op == "PlaceholderWithDefault"])


def unread_feed(cut: str, name: str, extras, input_op: str | None = None, *, train: bool = False,
                besides_input: bool = True) -> ConfigError:
    """The error for a feed ``name`` (``train``: given in ``train_feeds`` only) that is not among the
    placeholders ``extras`` that ``cut`` reads besides its input (op ``input_op``; a train feed of
    the input itself is told so: :func:`find_input` has refused a feed of it), or, with
    ``besides_input=False``, among all the placeholders ``extras`` that ``cut`` reads."""
    if name == input_op:
        return ConfigError(f"train feed '{name}': '{name}' is the input of '{cut}', which the data feeds; it cannot "
                           "also be fed a constant while training: leave it out of train_feeds=")
    kind, where = ("train feed", "train_feeds=") if train else ("feed", "feeds=")
    return ConfigError(f"{kind} '{name}': '{cut}' does not read placeholder '{name}' (it reads "
                       f"{', '.join(extras) or 'no placeholder'}{' besides its input' if besides_input else ''}); "
                       f"leave it out of {where}")


def _shape_text(t: tf.Tensor) -> str:
    return f"{t.dtype.name}{t.shape.as_list() if t.shape.rank is not None else '[?]'}"


def _all_fed(cut: str, phs) -> str:
    """The error for feeds that cover every placeholder ``cut`` reads, its input among them."""
    if len(phs) == 1:
        return (f"feed '{phs[0]}': '{phs[0]}' is the input of '{cut}' (the only placeholder it reads), which the data "
                "feeds; it cannot also be fed a constant: leave it out of feeds=")
    return (f"feeds= gives a value to every placeholder '{cut}' reads ({', '.join(phs)}), its input among them, "
            "which the data feeds and cannot also be fed a constant: leave the input out of feeds=")


def _cannot_tell(model, gd, by_name, needed, cut, phs, cands) -> str:
    if not phs:
        pipes = guess.pipeline_outputs(gd, needed, by_name)
        if pipes:
            return (f"'{cut}' reads no placeholder: its data comes from {', '.join(pipes)} (an input queue or "
                    f"dataset); pass input={pipes[0]} to feed that tensor instead")
        return f"'{cut}' reads no placeholder and no input queue: it does not depend on any input"
    described = ", ".join(f"{n} {_shape_text(model.tensor(n))}" for n in cands or phs)
    return (f"cannot tell the input of '{cut}': it reads placeholders {described}; pass input=NAME for the "
            "input and feeds={'NAME': VALUE} for the others")
