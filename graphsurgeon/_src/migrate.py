"""Migrate checkpoints: rename, drop, keep, cast, merge — streaming, verified, never touching the source.

Every migration is a new index over data bytes. Tensors whose bytes do not change
(renamed, kept, merged) keep their data: the destination's data files are hard links to
the sources' (copies across file systems), so a rename of a 500 MB checkpoint costs a few
kilobytes of index. Tensors whose bytes change (cast; V1 sources) are read one at a time,
converted, and written by TensorFlow's own ``SaveV2`` in bounded chunks into temporary
bundles that join the destination as extra data shards. Everything is written under a
temporary prefix, verified against the source through the rules, then renamed into place.

>>> rules = Rules(rename=[(r"^old/", "new/")], drop=["global_step"])
>>> sorted(plan_names(["old/w", "global_step", "b"], rules).items())
[('b', 'b'), ('old/w', 'new/w')]
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from graphsurgeon._src import select
from graphsurgeon._src.errors import ConfigError, CorruptCheckpointError, MigrateError
from graphsurgeon._src.storage import bundle
from graphsurgeon._src.storage.checkpoint import CheckpointReader
from graphsurgeon._src.storage.paths import checkpoint_files
from graphsurgeon._src.surgery.plan import is_optimizer_state

_CELLS = ["basic_lstm_cell", "lstm_cell", "gru_cell", "basic_rnn_cell", "layer_norm_basic_lstm_cell", "ugrnn_cell",
          "nas_rnn", "intersection_rnn_cell", "phased_lstm_cell", "attention_cell_wrapper", "lstm_block_wrapper",
          "output_projection_wrapper", "input_projection_wrapper", "attention_decoder"]
_CELL_CLASSES = {"BasicLSTMCell": "basic_lstm_cell", "LSTMCell": "lstm_cell", "GRUCell": "gru_cell",
                 "BasicRNNCell": "basic_rnn_cell", "LayerNormBasicLSTMCell": "layer_norm_basic_lstm_cell",
                 "UGRNNCell": "ugrnn_cell", "NASCell": "nas_rnn", "IntersectionRNNCell": "intersection_rnn_cell",
                 "PhasedLSTMCell": "phased_lstm_cell", "AttentionCellWrapper": "attention_cell_wrapper",
                 "LSTMBlockWrapper": "lstm_block_wrapper", "OutputProjectionWrapper": "output_projection_wrapper",
                 "InputProjectionWrapper": "input_projection_wrapper"}
_CELL_RE = "|".join(_CELLS)

# TF 1.0 / 1.1 RNN variable names -> TF 1.2+ names (the cells contrib's checkpoint_convert covered,
# plus the TF 1.0 class-named scopes and sharded W_<N> forms), applied in order.
RNN_CELL_RENAMES = [
    (r"(^|/)MultiRNNCell/Cell(\d+)(?=/|$)", r"\1multi_rnn_cell/cell_\2"),
    *[(rf"(^|/){cls}(?=/|$)", rf"\1{new}") for cls, new in sorted(_CELL_CLASSES.items(), key=lambda kv: -len(kv[0]))],
    (r"(^|/)gru_cell/Gates(?=/|$)", r"\1gru_cell/gates"),
    (r"(^|/)gru_cell/Candidate(?=/|$)", r"\1gru_cell/candidate"),
    (r"/Linear/Matrix(_(\d+))?$", r"/weights\1"),  # 1.0's _linear scope
    (r"/Linear/Bias$", r"/biases"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/W_(\d+)$", r"\1\2/kernel/part_\3"),  # sharded LSTMCell/W_0
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/weights_(\d+)$", r"\1\2/kernel/part_\3"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/B$", r"\1\2/bias"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/W_([FIO])_diag$", lambda m: f"{m.group(1)}{m.group(2)}/w_{m.group(3).lower()}_diag"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/W_P_(\d+)$", r"\1\2/projection/kernel"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/weights$", r"\1\2/kernel"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/biases$", r"\1\2/bias"),
    (rf"(^|/)((?:{_CELL_RE})(?:/[^/]+)*?)/recurrent_weights$", r"\1\2/recurrent_kernel"),
]
PRESETS = ("optimizer-slots", "rnn-cell-names", "strip-scope=NAME")
CAST_DTYPES = {"float16": tf.float16, "bfloat16": tf.bfloat16, "float32": tf.float32, "float64": tf.float64}
_CHUNK_BYTES = 64 << 20


@dataclasses.dataclass
class Rules:
    """What a migration does. Name rules apply in this order: ``rename`` regexes (each
    ``(pattern, replacement)`` with ``re.sub`` on the whole name), ``map_scope`` pairs
    (``'old/' -> 'new/'``), then presets' renames. ``drop``, ``keep`` and ``cast`` patterns
    (scope globs / ``re:``, see :mod:`graphsurgeon._src.select`) match the *source* names.
    Name rules shape the main checkpoint; each ``merge`` checkpoint comes in whole under its
    prefix (a clash is an error unless a rule on the main checkpoint resolves it); ``cast``
    applies to both."""

    rename: list = dataclasses.field(default_factory=list)
    map_scope: list = dataclasses.field(default_factory=list)
    drop: list = dataclasses.field(default_factory=list)
    keep: list = dataclasses.field(default_factory=list)
    cast: list = dataclasses.field(default_factory=list)   # (pattern, dtype name)
    merge: list = dataclasses.field(default_factory=list)  # (other checkpoint, prefix or "")
    presets: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        compiled = []
        for pat, repl in self.rename:
            try:
                compiled.append((re.compile(pat), repl))
            except re.error as e:
                raise ConfigError(f"--rename '{pat}={repl}': invalid regular expression ({e})") from None
        self._rename = compiled
        for old, new in self.map_scope:
            if not old.endswith("/") or (new and not new.endswith("/")):
                raise ConfigError(f"--map-scope '{old}={new}': expected OLD/=NEW/ (scopes end with '/'; NEW may be empty)")
        for _, dt in self.cast:
            if dt not in CAST_DTYPES:
                raise ConfigError(f"--cast: dtype '{dt}' is not one of {', '.join(CAST_DTYPES)}")
        self._preset_renames, self._drop_optimizer = [], False
        for p in self.presets:
            if p == "optimizer-slots":
                self._drop_optimizer = True
            elif p == "rnn-cell-names":
                self._preset_renames += [(re.compile(a), b) for a, b in RNN_CELL_RENAMES]
            elif p.startswith("strip-scope="):
                scope = p.split("=", 1)[1].strip("/")
                if not scope:
                    raise ConfigError("--preset strip-scope=NAME needs a scope name")
                self._preset_renames.append((re.compile("^" + re.escape(scope) + "/"), ""))
            else:
                raise ConfigError(f"unknown preset '{p}'; expected one of {', '.join(PRESETS)}")

    def new_name(self, name: str) -> str:
        for rx, repl in self._rename:
            name = rx.sub(repl, name)
        for old, new in self.map_scope:
            if name.startswith(old):
                name = new + name[len(old):]
        for rx, repl in self._preset_renames:
            name = rx.sub(repl, name)
        return name


def plan_names(names, rules: Rules, *, check_rules: bool = True) -> dict:
    """``{old name: new name}`` of the tensors the migration writes (dropped ones are absent).

    Raises:
      MigrateError: a rule matches nothing (presets excepted), or two names map to one.
    """
    names = list(names)
    kept = set(names)
    if rules.keep:
        kept = set(select.match(rules.keep, names, what="tensor"))
    if rules.drop:
        kept -= set(select.match(rules.drop, names, what="tensor"))
    if rules._drop_optimizer:
        kept = {n for n in kept if not is_optimizer_state(n)}
    if check_rules:
        for (pat, repl), (rx, _) in zip(rules.rename, rules._rename):
            if not any(rx.search(n) for n in names):
                raise MigrateError(f"--rename '{pat}={repl}' matches no tensor")
        for old, new in rules.map_scope:
            if not any(n.startswith(old) for n in names):
                raise MigrateError(f"--map-scope '{old}={new}' matches no tensor; scopes: "
                                   f"{', '.join(select.closest(old.rstrip('/'), names))}")
        for pat, _ in rules.cast:
            select.match(pat, names, what="tensor")
    mapping = {n: rules.new_name(n) for n in names if n in kept}
    seen = {}
    for old, new in mapping.items():
        if not new:
            raise MigrateError(f"'{old}' would be renamed to an empty name")
        if new in seen:
            raise MigrateError(f"'{seen[new]}' and '{old}' would both be named '{new}'; add a rule that tells them apart")
        seen[new] = old
    return mapping


@dataclasses.dataclass
class Source:
    """A V2 bundle the destination takes tensors from."""

    prefix: str
    header: object
    entries: dict
    temporary: bool = False


def _open_v2(prefix: str) -> Source:
    header, entries = bundle.read_index(prefix)
    bundle.check_data_files(prefix, header, entries)
    return Source(prefix, header, entries)


def _write_tensors(items, tmpdir: str, tag: str, digests: dict | None = None) -> list[Source]:
    """Write ``(name, ndarray)`` pairs with TensorFlow's SaveV2, in chunks of at most 64 MiB
    (one temporary bundle per chunk). Memory stays near one chunk plus the largest tensor.
    If ``digests`` is given, it receives ``{name: sha256 of the bytes handed to SaveV2}``."""
    out, chunk, size = [], [], 0

    def flush():
        nonlocal chunk, size
        if not chunk:
            return
        prefix = os.path.join(tmpdir, f"{tag}-{len(out):05d}")
        names = [n for n, _ in chunk]
        tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.constant(v) for _, v in chunk])
        src = _open_v2(prefix)
        src.temporary = True
        out.append(src)
        chunk, size = [], 0

    for name, value in items:
        if digests is not None:
            digests[name] = (value.dtype, value.shape, hashlib.sha256(np.ascontiguousarray(value)).hexdigest())
        chunk.append((name, value))
        size += value.nbytes
        if size >= _CHUNK_BYTES:
            flush()
    flush()
    return out


def _sources_for(path: str, tmpdir: str, tag: str) -> list[Source]:
    """V2 checkpoints are used in place; a V1 checkpoint is streamed into temporary V2 bundles."""
    from graphsurgeon._src.storage.paths import resolve

    src = resolve(path)
    if not src.prefix:
        raise MigrateError(f"{path}: no checkpoint data to migrate")
    if os.path.isfile(src.prefix + ".index"):
        return [_open_v2(src.prefix)]
    reader = CheckpointReader(src.prefix)  # V1: TensorFlow's reader, one tensor at a time
    return _write_tensors(((n, reader.read(n)) for n in reader.entries), tmpdir, tag)


@dataclasses.dataclass
class MigrationResult:
    """``mapping``: ``{old name: new name}`` per source (``{source path: {...}}``);
    ``cast``: names of the tensors whose bytes were computed (casts, joined partitions)."""

    destination: str
    mapping: dict
    cast: list
    verified: bool


OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


SAVE_COUNTER_KEY = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


def tf2_names(source_entries_prefix: str, keep_save_counter: bool = False) -> dict:
    """``{checkpoint key: variable name}`` of a TF2 object-based checkpoint (each
    ``.../.ATTRIBUTES/VARIABLE_VALUE`` key to its variable's ``full_name``); the root's
    ``save_counter`` (bookkeeping of ``Checkpoint.save``) is left out unless asked for.

    Raises:
      MigrateError: the checkpoint has no object graph (it is not object-based).
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = CheckpointReader(source_entries_prefix)
    if OBJECT_GRAPH_KEY not in reader.entries:
        raise MigrateError(f"{source_entries_prefix}: no {OBJECT_GRAPH_KEY}; not a TF2 object-based checkpoint "
                           "(drop --from tf2)")
    raw = reader.read(OBJECT_GRAPH_KEY)
    raw = raw if isinstance(raw, bytes) else np.asarray(raw).item()
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(raw)
    out = {}
    for node in graph.nodes:
        for attr in node.attributes:
            if attr.name == "VARIABLE_VALUE":
                if attr.checkpoint_key == SAVE_COUNTER_KEY and not keep_save_counter:
                    continue
                name = attr.full_name or attr.checkpoint_key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")
                out[attr.checkpoint_key] = name
    return out


def _tf2_layout(names_dtypes: dict, tmpdir: str):
    """What ``tf.train.Checkpoint(vars={name: variable})`` writes for these names: ``{name:
    checkpoint key}`` and a bundle holding its object graph. Made by writing that checkpoint
    with scalar stand-ins (the object graph records names, not shapes)."""
    if not tf.executing_eagerly():
        raise ConfigError("--to tf2 needs eager execution (TensorFlow 2's default); it is disabled in this process")
    variables = {n: tf.Variable(tf.zeros([], dt), name=n) for n, dt in names_dtypes.items()}
    # save(), as the migration guide's convert_tf1_to_tf2 does: it records save_counter too
    path = tf.train.Checkpoint(vars=variables).save(os.path.join(tmpdir, "tf2-layout"))
    keys = {n: k for k, n in tf2_names(path, keep_save_counter=True).items() if k != SAVE_COUNTER_KEY}
    src = _open_v2(path)
    src.temporary = True
    return keys, src


def migrate(src: str, dst: str, rules: Rules | None = None, *, dry_run: bool = False, verify: bool = True,
            link: bool = True, to: str = "tf1", from_format: str = "tf1",
            merge_partitions: bool = False) -> MigrationResult:
    """Write checkpoint ``dst`` from ``src`` (and ``rules.merge`` sources) through ``rules``.

    Args:
      src: a checkpoint prefix or directory (V2 or V1).
      dst: the destination prefix (or a directory: the source's base name inside it); it must
        not exist and must not be ``src``.
      dry_run: plan only; nothing is written.
      verify: read the result back and check every tensor against its source (index
        fields and crc32c for unchanged bytes, values for cast tensors).
      link: hard-link unchanged data files (copy when linking is impossible).
      to: ``"tf1"`` (name-based) or ``"tf2"``: what ``tf.train.Checkpoint(vars={name: variable})``
        writes, so ``tf.train.Checkpoint(vars=...).restore(dst).assert_consumed()`` passes.
      merge_partitions: join ``name/part_0..part_N`` into one tensor ``name`` (along the first axis).
      from_format: ``"tf2"`` reads an object-based checkpoint (or a TF2 SavedModel's variables)
        by its variables' names; its other objects are left out.

    Returns:
      A :class:`MigrationResult` with the old->new mapping.

    Raises:
      MigrateError, ConfigError, CorruptCheckpointError: nothing is left at ``dst``.
    """
    rules = rules or Rules()
    if to not in ("tf1", "tf2") or from_format not in ("tf1", "tf2"):
        raise ConfigError(f"formats are tf1 or tf2, not to={to!r} from={from_format!r}")
    src_prefix = _source_prefix(src)
    if os.path.isdir(dst) or dst.endswith(os.sep):  # a directory: the source's base name inside it
        dst = os.path.join(dst, os.path.basename(src_prefix))
    dst = os.path.abspath(dst)
    if dst == os.path.abspath(src_prefix) or any(dst == os.path.abspath(_source_prefix(m)) for m, _ in rules.merge):
        raise MigrateError(f"destination {dst} is a source checkpoint; migrate never writes over its input")
    if checkpoint_files(dst) or os.path.exists(dst + ".index"):
        raise MigrateError(f"destination {dst} already exists (its .index is there); choose another prefix")
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    tmpdir = tempfile.mkdtemp(prefix=".tmp-migrate-", dir=os.path.dirname(dst) or ".")
    try:
        return _migrate(src, src_prefix, dst, rules, tmpdir, dry_run, verify, link, to, from_format,
                        merge_partitions)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _source_prefix(path: str) -> str:
    from graphsurgeon._src.storage.paths import resolve

    s = resolve(path)
    if not s.prefix:
        raise MigrateError(f"{path}: no checkpoint data to migrate")
    return s.prefix


def _migrate(src, src_prefix, dst, rules, tmpdir, dry_run, verify, link, to, from_format, merge_partitions):
    groups = [(src, "", _sources_for(src, tmpdir, "v1-main"))]
    for k, (other, prefix) in enumerate(rules.merge):
        groups.append((other, prefix, _sources_for(other, tmpdir, f"v1-merge{k}")))
    # name -> (source, entry) per group, then rules
    planned, mapping, taken, sliced = [], {}, {}, []
    for gi, (path, prefix, sources) in enumerate(groups):
        entries = {n: (s, e) for s in sources for n, e in s.entries.items()}
        # slices of TF1 partitioned variables travel with their variable's name
        slices_of = {}
        for n in list(entries):
            owner = bundle.slice_key_name(n)
            if owner is not None:
                slices_of.setdefault(owner, []).append((n, entries.pop(n)))
        names = sorted(entries)
        # the rules shape the main checkpoint; a merged one comes in whole, under its prefix
        if gi == 0 and from_format == "tf2":
            keys = tf2_names(src_prefix)  # object-graph keys -> variable names, then the rules
            by_name = {v: k for k, v in keys.items()}
            m = {by_name[n]: new for n, new in plan_names(sorted(by_name), rules).items()}
        else:
            m = plan_names(names, rules) if gi == 0 else {n: prefix + n for n in names}
        for old, new in m.items():
            if new in taken:
                raise MigrateError(f"'{new}' comes from both {taken[new]} and {path}; add a merge prefix "
                                   "(--merge OTHER:PREFIX/) or a rule that renames one of them")
            taken[new] = path
            planned.append((old, new, entries[old][0], entries[old][1]))
            for key, (s_src, s_entry) in slices_of.get(old, ()):
                sliced.append((key, bundle.rename_slice_key(key, new), s_src, s_entry, old))
        mapping[path] = m
    readers = {}

    def read(src, name):
        if src.prefix not in readers:
            readers[src.prefix] = CheckpointReader(src.prefix)
        return readers[src.prefix].read(name)

    # tensors whose bytes change ("computed"): casts and joined partitions; each is a
    # (dtype, producer) pair, produced one at a time when written and again when verified
    cast_to = {}
    for old, new, src, e in planned:
        for pat, dt in rules.cast:
            if select.compile_pattern(pat)(old):
                src_dtype = tf.as_dtype(e.dtype)
                if not src_dtype.is_floating:
                    raise MigrateError(f"--cast {pat}={dt}: '{old}' is {src_dtype.name}; only float tensors are cast")
                if src_dtype != CAST_DTYPES[dt]:
                    cast_to[new] = CAST_DTYPES[dt]

    def value(src, old, new):
        v = read(src, old)
        return v.astype(cast_to[new].as_numpy_dtype) if new in cast_to else v

    sliced_vars = {old for *_, old in sliced}
    if sliced_vars and (cast_to or to == "tf2" or merge_partitions):
        if cast_to.keys() & {new for old, new, *_ in planned if old in sliced_vars} or to == "tf2" or merge_partitions:
            raise MigrateError(f"{', '.join(sorted(sliced_vars)[:3])}: saved in slices (TF1 partitioned variables); "
                               "renames, drops, keeps and merges keep them, but --cast, --to tf2 and "
                               "--merge-partitions do not handle slices yet")
    computed = {}
    for old, new, src, e in planned:
        if new in cast_to:
            computed[new] = (cast_to[new], lambda src=src, old=old, new=new: value(src, old, new))
    if merge_partitions:
        groups_of = {}
        for old, new, src, e in planned:
            m = re.match(r"^(.*)/part_(\d+)$", new)
            if m:
                groups_of.setdefault(m.group(1), []).append((int(m.group(2)), old, new, src, e))
        for base, parts in groups_of.items():
            parts.sort()
            if [k for k, *_ in parts] != list(range(len(parts))):
                raise MigrateError(f"partitions of '{base}' are {[k for k, *_ in parts]}; expected part_0..part_N")
            if base in {new for _, new, _, _ in planned}:
                raise MigrateError(f"'{base}' exists beside its partitions; cannot join them into it")
            shapes = {tuple(d.size for d in e.shape.dim)[1:] for *_, e in parts}
            if len(shapes) != 1:
                raise MigrateError(f"partitions of '{base}' differ beyond their first axis: {sorted(shapes)}")
            for _, old, new, src, e in parts:
                computed.pop(new, None)
            dt = cast_to.get(parts[0][2], tf.as_dtype(parts[0][4].dtype))
            computed[base] = (dt, lambda parts=parts: np.concatenate([value(src, old, new)
                                                                     for _, old, new, src, _ in parts]))
            for group in mapping.values():
                for _, old, *_ in parts:
                    if old in group:
                        group[old] = base
        part_names = {new for parts in groups_of.values() for _, _, new, _, _ in parts}
        planned = [p for p in planned if p[1] not in part_names]
    extra = []
    if to == "tf2":
        dtypes = {new: tf.as_dtype(e.dtype) for _, new, _, e in planned}
        dtypes.update({n: dt for n, (dt, _) in computed.items()})
        keys, layout = _tf2_layout(dtypes, tmpdir)
        planned = [(old, keys[new], src, e) for old, new, src, e in planned]
        computed = {keys[n]: c for n, c in computed.items()}
        for group in mapping.values():
            for old in group:
                group[old] = keys[group[old]]
        extra = [(n, e) for n, e in layout.entries.items() if n not in set(keys.values())]
    if dry_run:
        return MigrationResult(dst, mapping, sorted(computed), False)
    digests = {}
    computed_sources = _write_tensors(((n, fn()) for n, (_, fn) in computed.items()), tmpdir, "computed", digests)
    computed_entries = {n: (cs, e) for cs in computed_sources for n, e in cs.entries.items()}
    # the destination: one data shard per (used source shard), entries remapped
    final = {}
    shard_of = {}
    used = []
    items = [(new, src, e) for _, new, src, e in planned if new not in computed]
    items += [(n, *computed_entries[n]) for n in computed]
    items += [(n, layout, e) for n, e in extra]  # the object graph and save_counter (--to tf2)
    items += [(new_key, s_src, s_entry) for _, new_key, s_src, s_entry, _ in sliced]
    for new, s2, e2 in items:
        key = (s2.prefix, e2.shard_id)
        if key not in shard_of:
            shard_of[key] = len(used)
            used.append((s2, e2.shard_id))
        ne = type(e2)()
        ne.CopyFrom(e2)
        ne.shard_id = shard_of[key]
        final[new] = ne
    header = type(groups[0][2][0].header)()
    header.CopyFrom(groups[0][2][0].header)
    header.num_shards = max(1, len(used))
    tmp_prefix = os.path.join(tmpdir, "out")
    for i, (s, shard) in enumerate(used):
        a = bundle.data_file(s.prefix, shard, s.header.num_shards)
        b = bundle.data_file(tmp_prefix, i, header.num_shards)
        if s.temporary:
            os.replace(a, b)
        else:
            _link_or_copy(a, b, link)
    if not used:  # an empty checkpoint still has one (empty) data file
        open(bundle.data_file(tmp_prefix, 0, 1), "wb").close()
    bundle.write_index(tmp_prefix + ".index", header, final)
    if verify:
        _verify(tmp_prefix, planned, digests, final, sliced)
    # move into place: data files first, the index last
    for i in range(header.num_shards):
        os.replace(bundle.data_file(tmp_prefix, i, header.num_shards), bundle.data_file(dst, i, header.num_shards))
    os.replace(tmp_prefix + ".index", dst + ".index")
    return MigrationResult(dst, mapping, sorted(computed), verify)


def _link_or_copy(a: str, b: str, link: bool) -> None:
    if link:
        try:
            os.link(a, b)
            return
        except OSError:
            pass
    shutil.copyfile(a, b)


def _verify(prefix, planned, computed, final, sliced=()) -> None:
    """Check the written checkpoint against its sources: TensorFlow opens it and holds exactly
    the planned tensors; unchanged tensors have the source's dtype, shape, size and crc32c over
    data that is the source's (the same file, or a copy read back through TensorFlow, which
    checks crc32c); computed tensors (casts, joined partitions) read back with the dtype, shape
    and sha256 of the values computed from the source (``computed``: ``{name: (dtype, shape, sha256)}``)."""
    try:
        reader = CheckpointReader(prefix)
    except CorruptCheckpointError as e:
        raise MigrateError(f"verification failed: the written index does not open ({e})") from None
    if set(reader.entries) != {n for n in final if bundle.slice_key_name(n) is None}:
        raise MigrateError("verification failed: the written checkpoint holds other tensors than planned")
    for name, (dtype, shape, digest) in computed.items():
        got = reader.read(name)
        if got.dtype != dtype or got.shape != shape or hashlib.sha256(np.ascontiguousarray(got)).hexdigest() != digest:
            raise MigrateError(f"verification failed: '{name}' differs from the value computed from the source")
    n_shards = len({x.shard_id for x in final.values()}) or 1
    for key, new_key, s, e, _ in sliced:  # each slice: same bytes under its new key
        ne = final[new_key]
        if (ne.dtype, list(ne.shape.dim), ne.size, ne.crc32c) != (e.dtype, list(e.shape.dim), e.size, e.crc32c):
            raise MigrateError(f"verification failed: a slice of '{bundle.slice_key_name(new_key)}' does not match")
    for old, new, s, e in planned:
        if new in computed:
            continue
        ne = final[new]
        if (ne.dtype, list(ne.shape.dim), ne.size, ne.crc32c) != (e.dtype, list(e.shape.dim), e.size, e.crc32c):
            raise MigrateError(f"verification failed: '{new}' does not match '{old}' in {s.prefix}")
        src_file = bundle.data_file(s.prefix, e.shard_id, s.header.num_shards)
        dst_file = bundle.data_file(prefix, ne.shard_id, n_shards)
        if not (os.path.exists(src_file) and os.path.exists(dst_file) and os.path.samefile(src_file, dst_file)):
            reader.read(new)  # a copy: TensorFlow's reader checks the bytes against the crc32c


def diff(a: str, b: str) -> dict:
    """Compare two checkpoints: ``added``, ``removed``, ``renamed`` (same dtype, shape and
    crc32c under another name), ``changed`` (``{name: max abs difference}``),
    ``dtype_changed`` and ``shape_changed`` (``{name: [a, b]}``)."""
    ea, eb = _entries_with_crc(a), _entries_with_crc(b)
    only_a = sorted(set(ea) - set(eb))
    only_b = sorted(set(eb) - set(ea))
    sig_b = {}
    for n in only_b:
        sig_b.setdefault(ea_sig(eb[n]), []).append(n)
    renamed = {}
    for n in only_a:
        cands = sig_b.get(ea_sig(ea[n]))
        if cands and ea[n][3] is not None:
            renamed[n] = cands.pop(0)
    out = {"added": sorted(set(only_b) - set(renamed.values())), "removed": sorted(set(only_a) - set(renamed)),
           "renamed": renamed, "changed": {}, "dtype_changed": {}, "shape_changed": {}}
    ra = rb = None
    for n in sorted(set(ea) & set(eb)):
        (da, sa, _, ca), (db, sb, _, cb) = ea[n], eb[n]
        if da != db:
            out["dtype_changed"][n] = [da, db]
        elif sa != sb:
            out["shape_changed"][n] = [list(sa), list(sb)]
        elif ca is None or cb is None or ca != cb:
            ra = ra or CheckpointReader(_source_prefix(a))
            rb = rb or CheckpointReader(_source_prefix(b))
            va, vb = ra.read(n), rb.read(n)
            if va.tobytes() != vb.tobytes():
                d = np.abs(va.astype(np.float64) - vb.astype(np.float64)).max() if va.dtype.kind in "fiu" else None
                out["changed"][n] = None if d is None else float(d)
    return out


def ea_sig(t):
    return (t[0], tuple(t[1]), t[2], t[3])


def _entries_with_crc(path: str) -> dict:
    """``{name: (dtype, shape, size, crc32c or None)}`` (crc32c from a V2 index, None for V1)."""
    prefix = _source_prefix(path)
    if os.path.isfile(prefix + ".index"):
        _, entries = bundle.read_index(prefix)
        return {n: (tf.as_dtype(e.dtype).name, tuple(d.size for d in e.shape.dim), e.size,
                    None if e.slices else e.crc32c)  # a sliced variable is compared by value
                for n, e in entries.items() if bundle.slice_key_name(n) is None}
    r = CheckpointReader(prefix)
    return {n: (e.dtype.name, e.shape, e.nbytes, None) for n, e in r.entries.items()}
