"""Bottleneck caches: run the frozen layers once, store the activations, train the top from them.

::

    data ──> [frozen layers] ──> tensor T ──> shard-00000.npy, shard-00001.npy, … + manifest.json
                                                 │
    retrain --cache DIR:   feed T  ──> [trainable layers above T] ──> new head

The cache is keyed by content. Its *fingerprint* is the frozen subgraph's GraphDef, the
sha256 of every frozen variable's value, the tensor and input names, the preprocessing
and the stored dtype; an existing cache with another fingerprint is never reused (the
error names what changed). Each example is keyed by the sha256 of its content, so a second
run computes only inputs it has not seen. Shards are fixed-size, filled in data order, and
written atomically one at a time with the manifest replaced after each, so a run killed at
any moment is completed by the next run into the same bytes an uninterrupted run writes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time

import numpy as np
import tensorflow as tf

from graphsurgeon._src import select, subgraph
from graphsurgeon._src.errors import CacheError, ConfigError
from graphsurgeon._src.feeds import Feeder, batch_size_for, find_input, fixed_batch, parse_feeds
from graphsurgeon._src.restore import restore
from graphsurgeon._src.storage import cachefiles, datasets

# Ops whose output differs run to run: a tensor that depends on one cannot be cached.
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "Multinomial", "RandomGamma", "RandomPoisson", "RandomPoissonV2", "RandomCrop", "ParameterizedTruncatedNormal",
})
COLUMNS = ("key", "aug", "label", "split", "source")  # per example, in each shard's index file


def fingerprint(model, tensor: str, input_name: str) -> dict:
    """What the cached activations depend on: the subgraph computing ``tensor`` (its GraphDef's
    sha256) and the sha256 of each variable value it reads."""
    gd = subgraph.extract_sub_graph(model.graph.as_graph_def(), [tensor])
    for n in gd.node:  # placement does not change values
        n.device = ""
    var_ops = sorted(n.name for n in gd.node if n.op in subgraph.VARIABLE_OPS)
    # Restored variables hold exactly the checkpoint's bytes: hash those (no session run, which on a
    # large graph costs a Grappler pass); anything else is read from the session.
    from_ckpt = {n: model.checkpoint_names[n] for n in var_ops
                 if n in model.checkpoint_names and model.status.get(n) == "restored" and model.reader is not None}
    others = [n for n in var_ops if n not in from_ckpt]
    values = model.values(others) if others else {}

    def digest(n):
        v = model.reader.read(from_ckpt[n]) if n in from_ckpt else values[n]
        return hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()

    return {
        "graph": hashlib.sha256(gd.SerializeToString(deterministic=True)).hexdigest(),
        "variables": {n: digest(n) for n in var_ops},
        "tensor": model.tensor(tensor).name,
        "input": input_name,
    }


def random_ops_upstream(model, tensor: str) -> list[str]:
    """Names of random ops (dropout's mask, noise) that ``tensor`` depends on."""
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    return sorted(n for n in subgraph.upstream(gd, [tensor], by_name) if by_name[n].op in RANDOM_OPS)


# Reductions that mix the examples of a batch when they reduce over its first axis.
_REDUCTIONS = frozenset({"Mean", "Sum", "Max", "Min", "Prod", "All", "Any", "EuclideanNorm"})
_BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})


def batch_mixing_ops(model, tensor: str, input_op: str) -> list[str]:
    """Ops between ``input_op`` and ``tensor`` that mix the examples of a batch: reductions over
    axis 0 (``tf.nn.moments`` over the batch) and batch norm in training mode. Names, sorted."""
    gd = model.graph.as_graph_def()
    by_name = {n.name: n for n in gd.node}
    up = subgraph.upstream(gd, [tensor], by_name)
    out = []
    for name in sorted(up):
        node = by_name[name]
        if node.op in _BATCH_NORMS and node.attr["is_training"].b:
            fed = input_op in subgraph.upstream(gd, [node.input[0]], by_name)
        elif node.op in _REDUCTIONS and len(node.input) > 1:
            axes = by_name.get(subgraph.node_name(node.input[1]))
            if axes is None or axes.op != "Const":
                continue
            values = tf.make_ndarray(axes.attr["value"].tensor).reshape(-1)
            fed = 0 in values and input_op in subgraph.upstream(gd, [node.input[0]], by_name)
        else:
            continue
        if fed:
            out.append(name)
    return out


def check_batch_independent(model, t, feeder, x, act) -> None:
    """Raise :class:`ConfigError` if ``t``'s value for the first example of batch ``x`` (``act[0]``)
    changes when that example is run with other batch-mates (alone, or repeated to the batch the
    graph fixes): cached values would then depend on how the data happened to be batched."""
    if len(x) < 2:
        return
    feed, _ = feeder.feed(x[:1])
    alone = model.session.run(t, feed)[0]
    a, b = np.asarray(act[0], np.float64), np.asarray(alone, np.float64)
    if a.shape == b.shape and np.allclose(a, b, rtol=1e-3, atol=1e-5 * (1.0 + np.abs(a).max(initial=0.0))):
        return
    ops = batch_mixing_ops(model, t.name, feeder.input.op.name)
    because = f"through {', '.join(ops[:3])}" if ops else "its value for an example changes with its batch-mates"
    raise ConfigError(
        f"tensor '{t.name}' depends on the other examples in its batch ({because}: batch statistics such as "
        "tf.nn.moments or batch norm in training mode), so cached values would depend on how the data was "
        "batched; cache a tensor below them, or pass allow_batch_dependent=True"
    )


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    ofp, nfp = old["fingerprint"], new["fingerprint"]
    for key in ("tensor", "input"):
        if ofp[key] != nfp[key]:
            out.append(f"{key} {ofp[key]} -> {nfp[key]}")
    changed = sorted(n for n in set(ofp["variables"]) | set(nfp["variables"])
                     if ofp["variables"].get(n) != nfp["variables"].get(n))
    if changed:
        out.append(f"values of frozen variable(s) {', '.join(changed[:5])}" + (" …" if len(changed) > 5 else ""))
    if ofp["graph"] != nfp["graph"] and not changed:
        out.append("the frozen subgraph's ops")
    for key in ("preprocessing", "dtype", "shape"):
        if old[key] != new[key]:
            out.append(f"{key} {old[key]} -> {new[key]}")
    return out


@dataclasses.dataclass
class CacheReport:
    """What a :func:`generate` run did."""

    directory: str
    computed: int
    reused: int
    shards_written: int
    repaired: list
    seconds: float
    examples: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def generate(model_path: str, tensor: str, data, out_dir: str, *, input: str | None = None, feeds=None,
             batch_size: int | None = None, dtype: str = "float32", augment: int = 0, augment_params=None,
             seed: int = 0, shard_size: int = 4096, repair: bool = False, allow_random: bool = False,
             allow_batch_dependent: bool = False, allow_cast: bool = False, allow_unsafe_ops: bool = False,
             image_scale: str = "unit", tags=("serve",), progress: bool = True, **source_args) -> CacheReport:
    """Compute (or complete) the cache of ``tensor`` over ``data`` in ``out_dir``.

    Args:
      model_path: any path :func:`graphsurgeon._src.restore` accepts.
      tensor: the bottleneck tensor (the top frozen layer's output).
      data: ``.npz``, image folder, TFRecord file or glob (see ``open_source``), or a ``RecordSource``.
      augment: K distorted copies of every training image (flip, crop, scale, brightness as
        retrain.py's flags, ``augment_params`` overriding ``AUGMENT_DEFAULTS``), drawn from
        ``seed`` and each image's content hash, so they are the same on every run.
      input: the tensor fed with the data: a placeholder, or any tensor (a queue's dequeue output),
        which is then replaced by a placeholder (see :func:`graphsurgeon._src.restore`); default: the one
        placeholder upstream of ``tensor`` that ``feeds`` does not cover.
      feeds: values of the other placeholders ``tensor`` needs (see :mod:`graphsurgeon._src.feeds`).
      batch_size: examples per ``session.run``: the batch the graph's static shapes fix if they do
        (the last batch is padded and the padding dropped), else this, else 256.
      shard_size: examples per shard (a multiple of ``batch_size`` keeps batches inside shards).
      repair: recompute shards whose checksum does not match instead of raising.
      allow_random: cache a tensor that depends on random ops (dropout) anyway.
      allow_batch_dependent: cache a tensor whose value for an example depends on the other examples
        of its batch (batch statistics) anyway.
      allow_cast, allow_unsafe_ops: as :func:`graphsurgeon.restore`.

    Side effects: creates ``out_dir`` and writes shards and ``manifest.json`` in it; removes
    ``*.tmp`` files an interrupted run left there. Never touches the model's files.

    Raises:
      CacheError: a stale cache (another model, tensor, preprocessing), a damaged shard
        (named) without ``repair``, a damaged manifest.
      ConfigError: the tensor depends on random ops or on its batch-mates; bad settings.
    """
    from tqdm import tqdm

    if dtype not in ("float32", "float16"):
        raise ConfigError(f"dtype must be float32 or float16, not {dtype}")
    if shard_size < 1 or augment < 0:
        raise ConfigError("shard_size must be >= 1 and augment >= 0")
    start = time.perf_counter()
    feeds = parse_feeds(feeds)
    keep = [tensor] + ([input] if input else [])
    with restore(model_path, tags=tags, outputs=keep, inputs=[input] if input else None, allow_cast=allow_cast,
                 allow_unsafe_ops=allow_unsafe_ops) as model:
        inp, extra = find_input(model, input, tensor, feeds)
        unused = sorted(set(feeds) - set(extra))
        if unused:
            raise ConfigError(f"feed '{unused[0]}': '{tensor}' does not read placeholder '{unused[0]}' (it reads "
                              f"{', '.join(extra) or 'no placeholder'} besides its input); leave it out of feeds=")
        t = model.tensor(tensor)
        fixed = fixed_batch(inp, t)
        batch_size = batch_size_for(batch_size, fixed, 256, f"the graph of {model_path}")
        feeder = Feeder(model, inp, {n: feeds[n] for n in extra}, fixed)
        rand = random_ops_upstream(model, tensor)
        if rand and not allow_random:
            raise ConfigError(
                f"tensor '{t.name}' depends on random op(s) {', '.join(rand[:3])} (dropout with keep_prob baked in?): "
                "its values differ every run and cannot be cached; cache a tensor below them, or pass "
                "allow_random=True if a feed makes them deterministic"
            )
        fp = fingerprint(model, tensor, inp.name)
        shape = [int(d) if d is not None else None for d in t.shape.as_list()[1:]]
        in_shape = inp.shape.as_list()
        source = data if isinstance(data, datasets.RecordSource) else datasets.open_source(
            data, image_size=in_shape[1:3] if len(in_shape) == 4 else None, scale=image_scale, **source_args)
        params = dict(datasets.AUGMENT_DEFAULTS, **(augment_params or {})) if augment else None
        header = {"version": cachefiles.VERSION, "fingerprint": fp, "preprocessing": source.preprocessing,
                  "dtype": dtype, "shape": shape}
        os.makedirs(out_dir, exist_ok=True)
        cachefiles.remove_leftovers(out_dir)
        manifest = cachefiles.read_manifest(out_dir)
        repaired = []
        if manifest is None:
            manifest = dict(header, classes=source.classes, augment=params, shards=[])
        else:
            diff = _differences(manifest, header)
            if diff:
                raise CacheError(f"{out_dir} holds a cache made with other settings ({'; '.join(diff)}); "
                                 "it is not reused: choose another --out directory or delete this one")
            if augment and manifest.get("augment") not in (None, params):
                raise CacheError(f"{out_dir}: its distorted copies were made with {manifest['augment']}, not {params}")
            if augment:
                manifest["augment"] = params
            bad = cachefiles.check_shards(out_dir, manifest["shards"])
            if bad and not repair:
                raise CacheError(f"{out_dir}: shard(s) {', '.join(bad)} do not match their checksums; "
                                 "run again with --repair to recompute them")
            if bad:
                _drop_shards(out_dir, manifest, bad)
                repaired = bad
        known = set()
        for entry in manifest["shards"]:
            idx = cachefiles.read_index(out_dir, entry)
            known.update(zip(idx["key"], idx["aug"]))
        reused = len(known)
        pending = []
        seen = set()
        for r in source.records:
            for a in range(0, (augment if r.split == "train" else 0) + 1):
                if (r.key, a) not in known and (r.key, a) not in seen:
                    seen.add((r.key, a))
                    pending.append((r, a))
        next_shard = max((int(s["file"][6:11]) for s in manifest["shards"]), default=-1) + 1
        bar = tqdm(total=len(pending), unit="ex", desc="caching", disable=not progress, smoothing=0.1)
        np_dtype = np.dtype(dtype)
        written, checked = 0, False
        buf = None  # one shard buffer, reused (fresh memory costs page faults)
        try:
            for s0 in range(0, len(pending), shard_size):
                chunk = pending[s0:s0 + shard_size]
                filled = 0
                for b0 in range(0, len(chunk), batch_size):
                    batch = chunk[b0:b0 + batch_size]
                    dist = [None if a == 0 else datasets.distortion(params, _rng(seed, r.key, a)) for r, a in batch]
                    x = source.load([r for r, _ in batch], dist)
                    feed, n = feeder.feed(x)
                    act = model.session.run(t, feed)[:n]
                    if not checked:
                        checked = True
                        if not allow_batch_dependent and not (rand and allow_random):
                            check_batch_independent(model, t, feeder, x, act)
                    if buf is None or buf.shape[1:] != act.shape[1:]:
                        buf = np.empty((min(shard_size, len(pending)),) + act.shape[1:], np_dtype)
                    buf[filled:filled + len(act)] = act
                    filled += len(act)
                    bar.update(len(batch))
                columns = {"key": [r.key for r, _ in chunk], "aug": [a for _, a in chunk],
                           "label": [int(r.label) for r, _ in chunk], "split": [r.split for r, _ in chunk],
                           "source": [r.source for r, _ in chunk]}
                entry = cachefiles.write_shard(out_dir, next_shard, buf[:filled], columns)
                manifest["shards"].append(entry)
                if source.classes and not manifest.get("classes"):
                    manifest["classes"] = source.classes
                cachefiles.write_manifest(out_dir, manifest)
                next_shard += 1
                written += 1
        finally:
            bar.close()
            source.close()
        if not pending and not os.path.exists(os.path.join(out_dir, cachefiles.MANIFEST)):
            cachefiles.write_manifest(out_dir, manifest)
    return CacheReport(out_dir, len(pending), reused, written, repaired, time.perf_counter() - start,
                       sum(s["rows"] for s in manifest["shards"]))


def _rng(seed: int, key: str, aug: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(key[:16], 16), aug])


def _drop_shards(directory: str, manifest: dict, bad: list) -> None:
    dropped = [s for s in manifest["shards"] if s["file"] in bad]
    manifest["shards"] = [s for s in manifest["shards"] if s["file"] not in bad]
    cachefiles.write_manifest(directory, manifest)
    for s in dropped:
        for name in (s["file"], s["index"]):
            p = os.path.join(directory, name)
            if os.path.exists(p):
                os.remove(p)


class CacheReader:
    """Minibatches from a cache's shards with bounded memory.

    A split whose activations fit in ``buffer_bytes`` is read once, kept while the reader is
    open, and shuffled exactly as in-memory training shuffles (so both see the same batches). A larger split is
    read in windows of about ``buffer_bytes / 2`` (the next one read in the background while
    the current one trains), in a shard order shuffled every epoch, rows shuffled within the
    window: resident memory stays near ``buffer_bytes`` however large the cache.

    Attributes:
      tensor: the cached tensor's name; fingerprint, dtype, shape, classes: from the manifest.
    """

    def __init__(self, directory: str, *, verify: bool = True, buffer_bytes: int = 256 << 20):
        manifest = cachefiles.read_manifest(directory)
        if manifest is None:
            raise CacheError(f"{directory}: no {cachefiles.MANIFEST}; not a cache (make one with graphsurgeon cache)")
        if verify:
            bad = cachefiles.check_shards(directory, manifest["shards"])
            if bad:
                raise CacheError(f"{directory}: shard(s) {', '.join(bad)} do not match their checksums; "
                                 "run graphsurgeon cache ... --repair")
        self.directory, self.manifest, self.buffer_bytes = directory, manifest, buffer_bytes
        self.fingerprint = manifest["fingerprint"]
        self.tensor, self.dtype, self.shape = self.fingerprint["tensor"], manifest["dtype"], manifest["shape"]
        self.classes = manifest.get("classes")
        cols = {c: [] for c in COLUMNS}
        shard, row = [], []
        for i, s in enumerate(manifest["shards"]):
            idx = cachefiles.read_index(directory, s)
            for c in COLUMNS:
                cols[c].extend(idx[c])
            shard.append(np.full(s["rows"], i, np.int64))
            row.append(np.arange(s["rows"], dtype=np.int64))
        self._files = [cachefiles.ShardFile(os.path.join(directory, s["file"])) for s in manifest["shards"]]
        self._shard = np.concatenate(shard) if shard else np.zeros(0, np.int64)
        self._row = np.concatenate(row) if row else np.zeros(0, np.int64)
        self._label = np.array(cols["label"], np.int64)
        self._aug = np.array(cols["aug"], np.int32)
        self._split = np.array(cols["split"], "S10")  # bytes: a quarter of str arrays' memory
        self._keys = np.array(cols["key"], "S64")
        del cols
        self.row_bytes = int(np.prod(self.shape, dtype=np.int64)) * 4  # as float32 in memory
        self._buffers = None   # the windowed reader's two read buffers
        self._resident = None  # (split and rows, activations) of a split that fits in the buffer

    def examples(self, split: str) -> np.ndarray:
        """Manifest positions of the undistorted examples of ``split``, in data order."""
        return np.flatnonzero((self._split == split.encode()) & (self._aug == 0))

    def count(self, split: str) -> int:
        return len(self.examples(split))

    def labels(self, split: str | None = None) -> np.ndarray:
        """Labels of ``split``'s undistorted examples in data order, or of every row if None."""
        return self._label if split is None else self._label[self.examples(split)]

    def _epoch_rows(self, split: str, epoch: int, seed: int, augmented: bool) -> np.ndarray:
        base = self.examples(split)
        if not augmented or split != "train" or not (self._aug > 0).any():
            return base
        # one of each image's distorted copies per epoch, chosen by (seed, epoch)
        copies = {}
        for i in np.flatnonzero((self._split == split.encode()) & (self._aug > 0)):
            copies.setdefault(self._keys[i], []).append(i)
        rng = np.random.default_rng([seed, epoch, 7])
        return np.array([copies[self._keys[i]][rng.integers(len(copies[self._keys[i]]))] if self._keys[i] in copies
                         else i for i in base], np.int64)

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Activations at manifest ``positions``, in that order, as float32 (each shard read once)."""
        positions = np.asarray(positions, np.int64)
        out = np.empty((len(positions),) + tuple(self.shape), np.float32)
        shards = self._shard[positions]
        for s in np.unique(shards):
            m = np.flatnonzero(shards == s)
            out[m] = self._files[s].rows(self._row[positions[m]])
        return out

    def batches(self, split: str, batch_size: int, *, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                augmented: bool = True):
        """``(x, y)`` minibatches of ``split`` (see the class docstring for the order)."""
        from graphsurgeon._src.train import batches as index_batches

        rows = self._epoch_rows(split, epoch, seed, augmented)
        if len(rows) * self.row_bytes <= self.buffer_bytes:
            # fits: read once and kept resident while the same rows are asked for again
            key = (split, rows.tobytes())
            if self._resident is None or self._resident[0] != key:
                self._resident = None
                self._resident = (key, self.read(rows))
            x, y = self._resident[1], self._label[rows]
            rng = np.random.default_rng(seed + epoch) if shuffle else None
            for idx in index_batches(len(rows), batch_size, rng):
                yield x[idx], y[idx]
            return
        # Windowed: a few shards at a time, each read once, the next window read in the background
        # while this one trains; batches are gathered straight from the shard arrays.
        from concurrent.futures import ThreadPoolExecutor

        rng = np.random.default_rng(seed + epoch)
        shard_of = self._shard[rows]
        shard_ids = np.unique(shard_of)
        order = rng.permutation(shard_ids) if shuffle else shard_ids
        windows, window, size = [], [], 0
        for i, s in enumerate(order):
            window.append(int(s))
            size += int((shard_of == s).sum()) * self.row_bytes
            if size >= self.buffer_bytes // 2 or i + 1 == len(order):
                windows.append(window)
                window, size = [], 0

        # two buffers, kept for the reader's life (fresh memory costs page faults every epoch):
        # one being trained on, one being filled
        biggest = max(sum(self._files[s].nbytes for s in w) for w in windows)
        if self._buffers is None or len(self._buffers[0]) < biggest:
            self._buffers = [np.empty(biggest, np.uint8), np.empty(biggest, np.uint8)]
        buffers = self._buffers

        def read_window(w, buf):
            out, off = [], 0
            for s in w:
                out.append(self._files[s].read_into(buf[off:]))
                off += self._files[s].nbytes
            return out

        carry = None  # (x, y) rows left over from the previous window
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(read_window, windows[0], buffers[0])
            for k, w in enumerate(windows):
                arrays = pending.result()
                pending = (pool.submit(read_window, windows[k + 1], buffers[(k + 1) % 2])
                           if k + 1 < len(windows) else None)
                last = pending is None
                sources, labels, src, loc = [], [], [], []
                if carry is not None:
                    sources.append(carry[0])
                    labels.append(carry[1])
                    src.append(np.zeros(len(carry[1]), np.int64))
                    loc.append(np.arange(len(carry[1])))
                for s2, arr in zip(w, arrays):
                    mine = rows[shard_of == s2]
                    sources.append(arr)
                    labels.append(self._label[mine])
                    src.append(np.full(len(mine), len(sources) - 1, np.int64))
                    loc.append(self._row[mine])
                del arrays
                src, loc, y_all = np.concatenate(src), np.concatenate(loc), np.concatenate(labels)
                perm = rng.permutation(len(y_all)) if shuffle else np.arange(len(y_all))
                full = len(y_all) if last else (len(y_all) // batch_size) * batch_size
                for b in range(0, full, batch_size):
                    idx = perm[b:b + batch_size]
                    yield self._gather(sources, src[idx], loc[idx]), y_all[idx]
                rest = perm[full:]
                carry = (self._gather(sources, src[rest], loc[rest]), y_all[rest]) if len(rest) else None
                del sources

    def _gather(self, sources, src, loc) -> np.ndarray:
        out = np.empty((len(src),) + tuple(self.shape), np.float32)
        for k in np.unique(src):
            m = src == k
            out[m] = sources[k][loc[m]]
        return out

    def dataset(self, split: str, batch_size: int, *, seed: int = 0, epochs: int = 1) -> "tf.data.Dataset":
        """The same batches as a ``tf.data.Dataset`` of ``(x, y)``, one pass per epoch."""
        def gen():
            for e in range(epochs):
                yield from self.batches(split, batch_size, seed=seed, epoch=e)
        spec = (tf.TensorSpec([None] + list(self.shape), tf.float32), tf.TensorSpec([None], tf.int64))
        return tf.data.Dataset.from_generator(gen, output_signature=spec)

    def close(self):
        for f in self._files:
            f.close()
        self._buffers = self._resident = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_matches(reader: CacheReader, model) -> None:
    """Raise :class:`CacheError` unless ``model`` computes the cached tensor exactly as when it
    was cached (same subgraph, same frozen values)."""
    try:
        model.tensor(reader.tensor)
    except Exception:
        raise CacheError(f"{reader.directory}: cached tensor '{reader.tensor}' is not in the model") from None
    now = fingerprint(model, reader.tensor, reader.fingerprint["input"])
    header = {"fingerprint": now, "preprocessing": reader.manifest["preprocessing"], "dtype": reader.dtype,
              "shape": reader.shape}
    diff = _differences(reader.manifest, header)
    if diff:
        raise CacheError(f"{reader.directory} was made from another model ({'; '.join(diff)}); its activations "
                         "are stale: regenerate it with graphsurgeon cache")


def variables_below(model, tensor: str, names) -> list[str]:
    """Variables among ``names`` that ``tensor`` depends on (they cannot train from a cache of it)."""
    gd = model.graph.as_graph_def()
    up = subgraph.upstream(gd, [tensor])
    return sorted(n for n in names if select.normalize_name(n) in up)
