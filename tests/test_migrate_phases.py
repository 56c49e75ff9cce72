"""Each phase of a migration on its own: plan, casts, joins, TF2 keys, the link decision, assembly,
and verification, which must fail on every kind of damaged output it claims to catch."""
import functools
import io
import json
import os
import re
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import tensor_bundle_pb2

from graphsurgeon._src.errors import ConfigError, CorruptCheckpointError, MigrateError, PatternError
from graphsurgeon._src.migrate import migrate, sources
from graphsurgeon._src.migrate import plan as phases
from graphsurgeon._src.migrate import run as run_mod
from graphsurgeon._src.migrate import verify as verify_mod
from graphsurgeon._src.migrate.assemble import assemble, should_link
from graphsurgeon._src.migrate.rules import Rules
from graphsurgeon._src.migrate.sources import open_checkpoint
from graphsurgeon._src.storage import bundle
from graphsurgeon._src.storage.bundle_data import encode_strings, read_chunks

from helpers import save_v2

tf1 = tf.compat.v1
RNG = np.random.default_rng(0)
VALUES = {
    "small/a": RNG.standard_normal((10, 10)).astype(np.float32),
    "small/c": RNG.standard_normal((10, 10)).astype(np.float32),
    "small/step": np.array(5, np.int64),
    "small/names": np.array([b"alpha", b"beta"], object),
    **{f"big/{k}": RNG.standard_normal((300, 1000)).astype(np.float32) for k in range(6)},  # 1.2 MB each
    "emb/part_0": RNG.standard_normal((3, 4)).astype(np.float32),
    "emb/part_1": RNG.standard_normal((5, 4)).astype(np.float32),
}


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return save_v2(str(tmp_path_factory.mktemp("src") / "ckpt"), VALUES)


def stage(src_prefix, out, rules=None, *, join=False, tf2=False, link=False):
    """Plan and assemble (no verification): the planned tensors and the prefix written."""
    rules = rules or Rules()
    tensors = phases.apply_casts(phases.plan(open_checkpoint(src_prefix), [], rules), rules)
    if join:
        tensors = phases.join_partitions(tensors)
    extra = []
    if tf2:
        tensors, extra = phases.to_tf2_keys(tensors)
    assemble(tensors + extra, str(out), link=link)
    return tensors + extra, str(out)


def records(tensors):
    return sorted((p.old, p.new, p.dtype.name, p.shape, p.action) for p in tensors)


# ---- plan, casts, joins, TF2 keys ------------------------------------------------------------

def test_plan_records_name_dtype_shape_action(src):
    tensors = phases.plan(open_checkpoint(src), [], Rules(map_scope=[("small/", "s/")], drop=["big"]))
    assert records(tensors) == [
        ("emb/part_0", "emb/part_0", "float32", (3, 4), "copy"), ("emb/part_1", "emb/part_1", "float32", (5, 4), "copy"),
        ("small/a", "s/a", "float32", (10, 10), "copy"), ("small/c", "s/c", "float32", (10, 10), "copy"),
        ("small/names", "s/names", "string", (2,), "copy"), ("small/step", "s/step", "int64", (), "copy")]


def test_plan_merges_under_a_prefix_and_refuses_clashes(src, tmp_path):
    other = save_v2(str(tmp_path / "o"), {"small/a": np.ones(2, np.float32)})
    tensors = phases.plan(open_checkpoint(src), [(open_checkpoint(other), "B/")], Rules(keep=["small/a"]))
    assert records(tensors) == [("small/a", "B/small/a", "float32", (2,), "copy"),
                                ("small/a", "small/a", "float32", (10, 10), "copy")]
    assert phases.mapping_of(tensors, [open_checkpoint(src)]) == {src: {"small/a": "small/a"}, other: {"small/a": "B/small/a"}}
    with pytest.raises(MigrateError, match="'small/a' comes from both"):
        phases.plan(open_checkpoint(src), [(open_checkpoint(other), "")], Rules())


def test_casts_change_dtype_and_action_only_where_needed(src):
    rules = Rules(cast=[("small", "float16"), ("small/c", "float32")], keep=["small/a", "small/c"])
    tensors = phases.apply_casts(phases.plan(open_checkpoint(src), [], rules), rules)
    assert records(tensors) == [("small/a", "small/a", "float16", (10, 10), "cast"),
                                ("small/c", "small/c", "float32", (10, 10), "copy")]  # the last rule wins: no change


@pytest.mark.parametrize("rules,error,needle", [
    (Rules(cast=[("small/step", "float16")]), MigrateError, r"cast=\('small/step', 'float16'\): 'small/step' is int64"),
    (Rules(cast=[("nothing", "float16")]), PatternError, "cast: pattern 'nothing' matches no tensor"),
    (Rules(cast=[("big", "float16")], drop=["big"]), PatternError, "cast: pattern 'big' matches no tensor"),
])
def test_cast_errors(src, rules, error, needle):
    with pytest.raises(error, match=needle):
        phases.apply_casts(phases.plan(open_checkpoint(src), [], rules), rules)


def test_join_partitions_concatenates_along_the_first_axis(src, tmp_path):
    rules = Rules(keep=["emb"], cast=[("emb", "float16")])
    tensors = phases.join_partitions(phases.apply_casts(phases.plan(open_checkpoint(src), [], rules), rules))
    assert records(tensors) == [("emb/part_0", "emb", "float16", (8, 4), "join")]
    assert [p.old for p in tensors[0].parts] == ["emb/part_0", "emb/part_1"]
    assert phases.mapping_of(tensors, [open_checkpoint(src)]) == {src: {"emb/part_0": "emb", "emb/part_1": "emb"}}
    bad = save_v2(str(tmp_path / "bad"), {"w/part_0": np.ones((2, 3), np.float32), "w/part_2": np.ones((2, 3), np.float32),
                                         "v/part_0": np.ones((2, 3), np.float32), "v/part_1": np.ones((2, 4), np.float32)})
    with pytest.raises(MigrateError, match=r"partitions of 'v' differ beyond their first axis"):
        phases.join_partitions(phases.plan(open_checkpoint(bad), [], Rules(keep=["v"])))
    with pytest.raises(MigrateError, match=r"partitions of 'w' are \[0, 2\]"):
        phases.join_partitions(phases.plan(open_checkpoint(bad), [], Rules(keep=["w"])))


def test_tf2_keys_come_from_an_object_graph_made_in_memory(src, tmp_path):
    before = set(os.listdir(tmp_path))
    tensors, extra = phases.to_tf2_keys(phases.plan(open_checkpoint(src), [], Rules(keep=["small/a", "small/step"])))
    assert sorted(p.new for p in tensors) == ["vars/small.Sa/.ATTRIBUTES/VARIABLE_VALUE",
                                              "vars/small.Sstep/.ATTRIBUTES/VARIABLE_VALUE"]
    assert sorted(p.new for p in extra) == ["_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"]
    assert all(p.source.kind == "memory" for p in extra) and set(os.listdir(tmp_path)) == before


def test_tf2_sources_read_by_variable_name(tmp_path):
    m = tf.Module()
    m.a, m.b = tf.Variable([1.0, 2.0], name="dense/kernel"), tf.Variable(3, name="step")
    path = tf.train.Checkpoint(model=m).write(str(tmp_path / "named"))
    tensors = phases.plan(open_checkpoint(path), [], Rules(), from_tf2=True)
    assert records(tensors) == [("dense/kernel", "dense/kernel", "float32", (2,), "copy"),
                                ("step", "step", "int32", (), "copy")]
    assert tensors[0].source_key == "model/a/.ATTRIBUTES/VARIABLE_VALUE"
    m.c = tf.Variable(1.0)  # unnamed: "Variable"
    m.d = tf.Variable(2.0)
    path = tf.train.Checkpoint(model=m).write(str(tmp_path / "unnamed"))
    with pytest.raises(MigrateError, match=r"2 variables are named 'Variable' \(model/c/\.ATTRIBUTES/VARIABLE_VALUE, "
                                           r"model/d/\.ATTRIBUTES/VARIABLE_VALUE\)"):
        phases.plan(open_checkpoint(path), [], Rules(), from_tf2=True)
    with pytest.raises(MigrateError, match="not a TF2 object-based checkpoint"):
        phases.plan(open_checkpoint(save_v2(str(tmp_path / "tf1"), {"x": np.ones(1)})), [], Rules(), from_tf2=True)


def test_link_only_when_every_byte_is_used_unchanged(src):
    main = open_checkpoint(src)
    assert should_link(phases.plan(main, [], Rules(map_scope=[("big/", "large/")])), None) is True
    assert should_link(phases.plan(main, [], Rules(drop=["small/step"])), None) is False
    rules = Rules(cast=[("small/a", "float16")])
    assert should_link(phases.apply_casts(phases.plan(main, [], rules), rules), None) is False
    assert should_link(phases.plan(main, [], Rules(drop=["big"])), True) is True
    assert should_link(phases.plan(main, [], Rules()), False) is False


def test_compact_output_holds_exactly_the_kept_bytes(src, tmp_path):
    tensors, out = stage(src, tmp_path / "c", Rules(drop=["big"]))
    _, entries = bundle.read_index(out)
    data = out + ".data-00000-of-00001"
    assert os.path.getsize(data) == sum(e.size for e in entries.values())
    assert not os.path.samefile(data, src + ".data-00000-of-00001")
    r = tf.train.load_checkpoint(out)
    assert all(r.get_tensor(p.new).tobytes() == tf.train.load_checkpoint(src).get_tensor(p.old).tobytes()
               for p in tensors if p.dtype != tf.string)


# ---- verification: passes on good outputs, fails on each damage --------------------------------

@pytest.mark.parametrize("level", ["sample", "full"])
@pytest.mark.parametrize("case", ["linked", "compact", "cast", "join", "tf2"])
def test_verification_passes_on_intact_outputs(src, tmp_path, level, case):
    kw = {"linked": dict(link=True), "compact": dict(rules=Rules(drop=["big/0"])),
          "cast": dict(rules=Rules(cast=[("re:.*", "bfloat16")], drop=["small/step", "small/names"])),
          "join": dict(join=True), "tf2": dict(tf2=True)}[case]
    tensors, out = stage(src, tmp_path / "o", **kw)
    verify_mod.verify(out, tensors, level)


def rewrite_index(prefix, change):
    """Apply ``change(entries)`` to the index of checkpoint ``prefix`` (in place)."""
    header, entries = bundle.read_index(prefix)
    change(entries)
    os.remove(prefix + ".index")
    bundle.write_index(prefix + ".index", header, entries)


def damage_bytes(prefix, name, *, fix_crc=True):
    """Flip a byte of tensor ``name`` in its data file; with ``fix_crc`` the index gets the crc32c of
    the damaged bytes, so TensorFlow reads them without complaint (a writer that got the bytes wrong)."""
    _, entries = bundle.read_index(prefix)
    e = entries[name]
    path = bundle.data_file(prefix, e.shard_id, 1)
    with open(path, "r+b") as f:
        f.seek(e.offset + e.size - 1)
        last = f.read(1)[0]
        f.seek(e.offset + e.size - 1)
        f.write(bytes([last ^ 0x40]))
        f.seek(e.offset)
        damaged = f.read(e.size)
    if fix_crc:
        rewrite_index(prefix, lambda es: setattr(es[name], "crc32c", bundle.mask(bundle.crc32c(damaged))))


def _swap(es, a, b):
    for field in ("offset", "crc32c"):
        x, y = getattr(es[a], field), getattr(es[b], field)
        setattr(es[a], field, y)
        setattr(es[b], field, x)


def _set_dtype(es, name, dtype):
    es[name].dtype = dtype.as_datatype_enum


def _set_shape(es, name, dims):
    del es[name].shape.dim[:]
    for d in dims:
        es[name].shape.dim.add(size=d)


DAMAGES = {  # what is damaged -> (how, the message verification must give)
    "index block": (lambda out: _flip_index_byte(out), "TensorFlow cannot open the written checkpoint"),
    "a missing key": (lambda out: rewrite_index(out, lambda es: es.pop("small/a")), "lacks small/a"),
    "an extra key": (lambda out: rewrite_index(out, lambda es: es.update(extra=es["small/a"])), "also holds extra"),
    "a dtype": (lambda out: rewrite_index(out, lambda es: _set_dtype(es, "small/a", tf.int32)),
                "'small/a' is int32, expected float32"),
    "a shape": (lambda out: rewrite_index(out, lambda es: _set_shape(es, "small/a", (20, 5))),
                r"'small/a' has shape \[20, 5\], expected \[10, 10\]"),
    # sample compares a copied tensor's crc32c with the source index's; full compares every byte
    "bytes, crc32c rewritten": (lambda out: damage_bytes(out, "small/a"),
                                "the crc32c of 'small/a' differs|the bytes of 'small/a' differ"),
    "bytes": (lambda out: damage_bytes(out, "small/a", fix_crc=False), "'small/a' does not read back"),
    "string bytes": (lambda out: damage_strings(out, "small/names"), "the bytes of 'small/names' differ"),
}


def damage_strings(prefix, name):
    """Change one character of string tensor ``name``, re-encoded with a matching crc32c."""
    _, entries = bundle.read_index(prefix)
    value = tf.train.load_checkpoint(prefix).get_tensor(name)
    value[0] = value[0][:-1] + b"?"
    data, crc = encode_strings(value)
    e = entries[name]
    assert len(data) == e.size
    with open(bundle.data_file(prefix, e.shard_id, 1), "r+b") as f:
        f.seek(e.offset)
        f.write(data)
    rewrite_index(prefix, lambda es: setattr(es[name], "crc32c", crc))


def _flip_index_byte(prefix):
    raw = bytearray(open(prefix + ".index", "rb").read())
    raw[20] ^= 0x01
    open(prefix + ".index", "wb").write(bytes(raw))


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_each_check_fails_on_a_damaged_output(src, tmp_path, damage):
    tensors, out = stage(src, tmp_path / "o", Rules(drop=["big"]))  # compact: damaging it leaves the source alone
    verify_mod.verify(out, tensors, "sample")
    how, needle = DAMAGES[damage]
    how(out)
    for level in ("sample", "full"):
        with pytest.raises(MigrateError, match="verification failed: .*" + needle):
            verify_mod.verify(out, tensors, level)
    verify_mod.verify(out, tensors, "none")  # checks nothing, as documented


def test_hard_linked_bytes_are_read_back(src, tmp_path):
    """Two equal-sized tensors swapped in the new index over the linked (unchanged) data file."""
    tensors, out = stage(src, tmp_path / "o", Rules(), link=True)
    assert os.path.samefile(out + ".data-00000-of-00001", src + ".data-00000-of-00001")
    rewrite_index(out, lambda es: _swap(es, "small/a", "small/c"))
    with pytest.raises(MigrateError, match="the crc32c of 'small/[ac]' differs"):
        verify_mod.verify(out, tensors, "sample")


def test_casts_and_joins_are_checked_against_values_recomputed_from_the_source(src, tmp_path):
    rules = Rules(keep=["small/a", "emb"], cast=[("small/a", "float16")])
    tensors, out = stage(src, tmp_path / "o", rules, join=True)
    for name in ("small/a", "emb"):
        damage_bytes(out, name)
        with pytest.raises(MigrateError, match=f"the bytes of '{name}' differ from the value computed from"):
            verify_mod.verify(out, tensors, "sample")
        damage_bytes(out, name)  # flipped back


def _cast_and_join(src, keep=("small/a", "emb")):
    rules = Rules(keep=list(keep), cast=[("small/a", "float16")])
    return phases.join_partitions(phases.apply_casts(phases.plan(open_checkpoint(src), [], rules), rules))


def test_values_computed_while_writing_are_the_ones_compared(src, tmp_path, monkeypatch):
    tensors, out = _cast_and_join(src, keep=["small", "emb"]), str(tmp_path / "o")
    prefetch = verify_mod.Prefetch(tensors, "sample")
    assemble(tensors, out, link=False)
    copied = {p.new for p in tensors if p.action == "copy" and p.dtype != tf.string}
    assert copied and not copied & prefetch.computed()  # checked by crc32c: no value needed
    assert prefetch.computed() == {p.new for p in tensors} - copied
    for p in tensors:
        if p.new in copied:
            continue
        ahead, want = prefetch.take(p), verify_mod.expected_value(p)
        assert ahead.dtype == want.dtype and ahead.shape == want.shape
        assert ahead.tolist() == want.tolist() if p.dtype == tf.string else ahead.tobytes() == want.tobytes()
    assert prefetch.computed() == set() and prefetch.take(tensors[0]) is None  # each value is handed out once
    prefetch.close()
    tensors, out = _cast_and_join(src), str(tmp_path / "o2")
    assemble(tensors, out, link=False)

    def inline(p, read=None):
        raise AssertionError(f"'{p.new}' computed again while checked")

    for name in ("small/a", "emb"):  # a damaged output is caught against the values computed ahead
        prefetch = verify_mod.Prefetch(tensors, "sample")
        assert prefetch.computed() == {"small/a", "emb"}
        monkeypatch.setattr(verify_mod, "expected_value", inline)
        damage_bytes(out, name)
        with pytest.raises(MigrateError, match=f"the bytes of '{name}' differ from the value computed from"):
            verify_mod.verify(out, tensors, "sample", prefetch)
        damage_bytes(out, name)  # flipped back
        monkeypatch.undo()
        prefetch.close()
    for level in ("full", "none"):  # "full" reads each tensor when it is checked
        assert verify_mod.Prefetch(tensors, level).computed() == set()


def test_a_source_that_fails_while_writing_fails_when_its_tensor_is_checked(src, tmp_path, monkeypatch):
    tensors, out = _cast_and_join(src), str(tmp_path / "o")
    order = [p.new for p in verify_mod.sample(tensors)]
    real = verify_mod.expected_value

    def failing(p, read=None):
        if p.new == order[-1]:
            raise CorruptCheckpointError(f"cannot read '{p.new}'")
        return real(p, read)

    monkeypatch.setattr(verify_mod, "expected_value", failing)
    first, second = verify_mod.Prefetch(tensors, "sample"), verify_mod.Prefetch(tensors, "sample")
    assert first.computed() == second.computed() == set(order[:-1])
    monkeypatch.undo()
    assemble(tensors, out, link=False)
    verify_mod.verify(out, tensors, "sample")  # the source reads well when checked
    with pytest.raises(CorruptCheckpointError, match=f"cannot read '{order[-1]}'"):
        verify_mod.verify(out, tensors, "sample", first)
    damage_bytes(out, order[0])  # an earlier tensor's damage is still reported first
    with pytest.raises(MigrateError, match=f"the bytes of '{order[0]}' differ"):
        verify_mod.verify(out, tensors, "sample", second)


def test_prefetch_takes_only_the_sample_within_its_budget_and_stops_at_an_error(src, monkeypatch):
    rules = Rules(keep=["big"], cast=[("big", "float64")])  # six 2.4 MB tensors, each checked by value
    tensors = phases.apply_casts(phases.plan(open_checkpoint(src), [], rules), rules)
    monkeypatch.setattr(verify_mod, "SAMPLE_BYTES", 5_000_000)  # two of the six in the sample
    sampled = [p.new for p in verify_mod.sample(tensors)]
    assert len(sampled) == 2
    assert verify_mod.Prefetch(tensors, "sample").computed() == set(sampled)  # the sample only
    assert verify_mod.PREFETCH_BYTES == 64 << 20  # the README's and the docstrings' budget
    monkeypatch.setattr(verify_mod, "PREFETCH_BYTES", 3_000_000)  # room for one
    assert verify_mod.Prefetch(tensors, "sample").computed() == {sampled[0]}
    monkeypatch.setattr(verify_mod, "PREFETCH_BYTES", 64 << 20)
    real, calls = verify_mod.expected_value, []

    def first_fails(p, read=None):
        calls.append(p.new)
        if p.new == sampled[0]:
            raise CorruptCheckpointError(f"cannot read '{p.new}'")
        return real(p, read)

    monkeypatch.setattr(verify_mod, "expected_value", first_fails)
    assert verify_mod.Prefetch(tensors, "sample").computed() == set() and calls == [sampled[0]]  # stops there


def test_migrate_computes_the_compared_values_in_a_thread_while_it_writes(src, tmp_path, monkeypatch):
    """migrate() hands verification the values a Prefetch computed: in its own thread, with readers of
    its own (never the source's shared one), while assemble() runs."""
    assembling, computed, threads = threading.Event(), threading.Event(), []
    real_value, real_assemble, real_read = verify_mod.expected_value, run_mod.assemble, sources.SourceCheckpoint.read

    def value(p, read=None):
        assert assembling.wait(10), "computed before the checkpoint was being written"
        threads.append(threading.current_thread().name)
        out = real_value(p, read)
        computed.set()
        return out

    def assemble(*args, **kw):
        assembling.set()
        assert computed.wait(10), "no value computed while the checkpoint was written"
        return real_assemble(*args, **kw)

    def shared_read(self, key):
        assert not threading.current_thread().name.startswith("graphsurgeon-verify"), "the thread used a shared reader"
        return real_read(self, key)

    monkeypatch.setattr(verify_mod, "expected_value", value)
    monkeypatch.setattr(run_mod, "assemble", assemble)
    monkeypatch.setattr(sources.SourceCheckpoint, "read", shared_read)
    res = migrate(src, str(tmp_path / "m"), Rules(keep=["small/a", "emb"], cast=[("small/a", "float16")]),
                  merge_partitions=True)
    assert res.verified == "sample" and len(threads) == 2
    assert all(t.startswith("graphsurgeon-verify") for t in threads), threads


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own priority on Linux only")
def test_values_computed_while_writing_take_only_cpu_the_write_leaves(src, tmp_path, monkeypatch):
    """The thread computing verification's values runs at nice 19; the caller's priority is left as it was."""
    seen, real = [], verify_mod.expected_value

    def value(p, read=None):
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return real(p, read)

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    monkeypatch.setattr(verify_mod, "expected_value", value)
    migrate(src, str(tmp_path / "m"), Rules(keep=["small/a", "emb"], cast=[("small/a", "float16")]),
            merge_partitions=True)
    assert {(name.split("_")[0], nice) for name, nice in seen} == {("graphsurgeon-verify", 19)}, seen
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


@pytest.mark.parametrize("level", ["sample", "full", "none"])
def test_migrate_reads_back_the_sampled_tensors_as_they_are_written(src, tmp_path, monkeypatch, level):
    """At the "sample" level the computed tensors verification reads are read back into the page cache
    as soon as they are written (the others not); "full" and "none" ask for none."""
    from graphsurgeon._src.storage import bundle_writer

    asked, real = {}, bundle_writer.BundleWriter.write

    def write(self, key, dtype, shape, chunks, *, read_back=False):
        asked[key] = read_back
        return real(self, key, dtype, shape, chunks, read_back=read_back)

    monkeypatch.setattr(verify_mod, "SAMPLE_BYTES", 5_000_000)  # two of the six 2.4 MB tensors (float64)
    monkeypatch.setattr(bundle_writer.BundleWriter, "write", write)
    rules = Rules(cast=[("big", "float64"), ("small/a", "float16")], drop=["small/names"])
    migrate(src, str(tmp_path / "m"), rules, link=False, verify=level)
    tensors = phases.apply_casts(phases.plan(open_checkpoint(src), [], rules), rules)
    sampled, computed = {p.new for p in verify_mod.sample(tensors)}, {p.new for p in tensors if p.action == "cast"}
    assert set(asked) == computed and len(computed) == 7  # (the copied ones go through the page cache)
    assert {k for k, back in asked.items() if back} == (sampled & computed if level == "sample" else set())
    assert level != "sample" or len(sampled & {f"big/{k}" for k in range(6)}) == 2


def test_data_file_holds_the_tensors_largest_first(src, tmp_path):
    """In the new data file the tensors lie largest first (the disk starts writing at once), and each
    is where its index entry says (verification passes)."""
    rules = Rules(cast=[("small/a", "float16")], drop=["small/names"])
    res = migrate(src, str(tmp_path / "m"), rules, link=False, verify="full")
    _, entries = bundle.read_index(str(tmp_path / "m"))
    by_offset = sorted(entries, key=lambda k: entries[k].offset)
    sizes = [entries[k].size for k in by_offset]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert by_offset[:6] == sorted(f"big/{k}" for k in range(6)) and res.verified == "full"


def test_sample_reads_small_tensors_and_a_seeded_share_of_large_ones(src, tmp_path, monkeypatch):
    monkeypatch.setattr(verify_mod, "SAMPLE_BYTES", 2_500_000)  # two of the six 1.2 MB tensors
    tensors, out = stage(src, tmp_path / "o", Rules(drop=["small"]))
    chosen = {p.new for p in verify_mod.sample(tensors)}
    assert chosen == {p.new for p in verify_mod.sample(list(reversed(tensors)))}  # seeded: same every time
    large = sorted(n for n in chosen if n.startswith("big/"))
    assert len(large) == 2 and {"emb/part_0", "emb/part_1"} <= chosen
    skipped = sorted({f"big/{k}" for k in range(6)} - chosen)
    damage_bytes(out, skipped[0])
    verify_mod.verify(out, tensors, "sample")  # outside the sample: not seen, as documented
    with pytest.raises(MigrateError, match=f"the bytes of '{skipped[0]}' differ"):
        verify_mod.verify(out, tensors, "full")
    damage_bytes(out, large[0])
    with pytest.raises(MigrateError, match=f"the crc32c of '{large[0]}' differs"):
        verify_mod.verify(out, tensors, "sample")


def test_v1_sources_are_checked_against_the_v1_file(tmp_path):
    (tmp_path / "v1").mkdir()
    g = tf.Graph()
    with g.as_default():
        v = tf1.Variable(np.arange(6, dtype=np.float32), name="w", use_resource=False)
        s = tf1.Variable(np.array([b"x", b"yz"], object), name="names", use_resource=False)
        saver = tf1.train.Saver([v, s], write_version=tf1.train.SaverDef.V1)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            p = saver.save(sess, str(tmp_path / "v1" / "m.ckpt"), write_meta_graph=False)
    assert not os.path.exists(p + ".index")
    tensors, out = stage(p, tmp_path / "o")
    verify_mod.verify(out, tensors, "sample")
    r = tf.train.load_checkpoint(out)
    assert r.get_tensor("w").tobytes() == np.arange(6, dtype=np.float32).tobytes()
    assert list(r.get_tensor("names")) == [b"x", b"yz"]
    damage_bytes(out, "w")
    with pytest.raises(MigrateError, match=f"the bytes of 'w' differ from the value computed from 'w' in {p}"):
        verify_mod.verify(out, tensors, "sample")


def test_bad_levels_and_formats_are_refused(src, tmp_path):
    from graphsurgeon._src.migrate import migrate

    for kw, needle in ((dict(verify="most"), "verify='most': expected one of"), (dict(to="tf3"), "to='tf3'"),
                       (dict(from_format="v1"), "from_format='v1'"), (dict(link="yes"), "link='yes'")):
        with pytest.raises(ConfigError, match=needle):
            migrate(src, str(tmp_path / "x"), **kw)
    assert os.listdir(tmp_path) == []


def test_header_of_a_written_bundle(src, tmp_path):
    _, out = stage(src, tmp_path / "o", Rules(drop=["big"]))
    header, _ = bundle.read_index(out)
    assert header.num_shards == 1 and header.endianness == tensor_bundle_pb2.BundleHeaderProto.LITTLE
    assert header.version.producer == 1


SPECIAL = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 65504, 65519.99, 65520, 1e-8, 6e-8, 5.96e-8,
                    6.1e-5, 1 + 2**-11, 1 + 3 * 2**-11, 3.4e38, -1.5e-45], np.float32)


@pytest.mark.parametrize("src_dtype,dst_dtype", [(np.float32, tf.float16), (np.float32, tf.bfloat16),
                                                 (np.float64, tf.float16), (np.float16, tf.float32),
                                                 (np.float64, tf.bfloat16)])
@pytest.mark.parametrize("workers", [1, 3])
def test_converter_gives_the_bits_of_numpy_astype(src_dtype, dst_dtype, workers, tmp_path):
    from graphsurgeon._src.migrate.assemble import Converter

    x = np.concatenate([SPECIAL, RNG.standard_normal(600_000).astype(np.float32) * 1e3,
                        np.frombuffer(RNG.bytes(4 * 300_000), np.float32)]).astype(src_dtype)  # random bit patterns
    dst = np.dtype(dst_dtype.as_numpy_dtype)
    offset = 4 if workers == 3 else 4096  # mapped 4 bytes past an aligned address, or aligned (TensorFlow is
    path = tmp_path / "data"              # given aligned buffers only)
    path.write_bytes(b"\0" * offset + x.tobytes())
    read = functools.partial(read_chunks, str(path), offset, x.nbytes, crc=bundle.mask(bundle.crc32c(x.view(np.uint8))),
                             chunk_bytes=2**20)  # several chunks, each converted
    converter = Converter(workers)
    try:
        got = np.concatenate([c.copy() for c in converter.converted(read, np.dtype(src_dtype), dst)])
    finally:
        converter.close()
    want = x.astype(dst)
    assert got.dtype == dst and np.array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("dst_dtype,elements,by_tensorflow", [(tf.float16, 2**15 - 1, False), (tf.float16, 2**15, True),
                                                               (tf.bfloat16, 2**20, False)])
def test_tensorflow_casts_only_float16_chunks_of_128_kib_or_more(dst_dtype, elements, by_tensorflow, tmp_path,
                                                                 monkeypatch):
    """Smaller float16 chunks, and bfloat16 ones of any size, are cast by numpy, faster there; the bits are
    numpy's either way."""
    from graphsurgeon._src.migrate import assemble as assemble_mod

    x = np.concatenate([SPECIAL, RNG.standard_normal(elements - len(SPECIAL)).astype(np.float32)])
    (tmp_path / "data").write_bytes(x.tobytes())
    read = functools.partial(read_chunks, str(tmp_path / "data"), 0, x.nbytes,
                             crc=bundle.mask(bundle.crc32c(x.view(np.uint8))))
    calls, real = [], assemble_mod._tf_cast
    monkeypatch.setattr(assemble_mod, "_tf_cast", lambda chunk, dst: calls.append(chunk.nbytes) or real(chunk, dst))
    converter = assemble_mod.Converter(2)
    dst = np.dtype(dst_dtype.as_numpy_dtype)
    try:
        got = np.concatenate([c.copy() for c in converter.converted(read, np.dtype(np.float32), dst)])
    finally:
        converter.close()
    assert got.view(np.uint8).tobytes() == x.astype(dst).view(np.uint8).tobytes()
    assert calls == ([x.nbytes] if by_tensorflow else [])


# ---- progress --------------------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_one_bar_of_mib_written_and_only_for_long_work(src, tmp_path, monkeypatch, capsys):
    from graphsurgeon._src.migrate import run

    rules = Rules(cast=[("big", "float16")])
    run.migrate(src, str(tmp_path / "small"), rules, progress=True)  # 3 MiB: under PROGRESS_MIB
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(run, "PROGRESS_MIB", 1)
    run.migrate(src, str(tmp_path / "quiet"), rules, progress=False)
    assert capsys.readouterr().err == ""
    run.migrate(src, str(tmp_path / "log"), rules, progress=True)  # stderr not a terminal: one plain line at the end
    assert re.fullmatch(r"migrating: 3/3 MiB \(\d+ s\)\n", capsys.readouterr().err)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run.migrate(src, str(tmp_path / "tty"), rules, progress=True)
    bar = terminal.getvalue()
    assert bar.count("\n") == 1 and "migrating" in bar and "3/3" in bar and "MiB" in bar, bar


def test_cli_migrate_quiet_shows_no_progress_and_json_carries_a_version(src, tmp_path, monkeypatch, capfd):
    from graphsurgeon._src.cli import main
    from graphsurgeon._src.migrate import run

    monkeypatch.setattr(run, "PROGRESS_MIB", 1)
    for quiet in (True, False):
        capfd.readouterr()
        code = main(["migrate", src, str(tmp_path / f"q{quiet}"), "--cast", "big=float16", "--json"]
                    + ["--quiet"] * quiet)
        out, err = capfd.readouterr()
        assert code == 0 and json.loads(out)["version"] == 1
        assert ("migrating: 3/3 MiB" in err) != quiet, err
    code = main(["diff", src, str(tmp_path / "qTrue"), "--json"])
    d = json.loads(capfd.readouterr().out)
    assert code == 0 and d["version"] == 1 and (d["a"], d["b"]) == (src, str(tmp_path / "qTrue"))
    assert sorted(d["dtype_changed"]) == [f"big/{k}" for k in range(6)]


def test_the_converter_casts_float32_chunks_in_its_threads(tmp_path, monkeypatch):
    """TensorFlow's casts run in the converter's threads, each mapping and casting whole chunks, ahead of the one
    being consumed, and come out in order."""
    from graphsurgeon._src.migrate import assemble as assemble_mod

    x = RNG.standard_normal(3 * 2**18).astype(np.float32)  # three 1 MiB chunks
    (tmp_path / "data").write_bytes(x.tobytes())
    read = functools.partial(read_chunks, str(tmp_path / "data"), 0, x.nbytes,
                             crc=bundle.mask(bundle.crc32c(x.view(np.uint8))), chunk_bytes=2**20)
    threads, real, second, waited = [], assemble_mod._tf_cast, threading.Event(), []

    def cast(chunk, dst):
        threads.append(threading.current_thread().name)
        if len(threads) == 1:  # the first chunk's cast ends only once the next one's has begun: they run ahead
            waited.append(second.wait(5))
        else:
            second.set()
        return real(chunk, dst)

    monkeypatch.setattr(assemble_mod, "_tf_cast", cast)
    converter = assemble_mod.Converter(2)
    try:
        got = np.concatenate([c.copy() for c in converter.converted(read, np.dtype(np.float32), np.dtype(np.float16))])
    finally:
        converter.close()
    assert got.tobytes() == x.astype(np.float16).tobytes()
    assert len(threads) == 3 and threading.current_thread().name not in threads
    assert waited == [True]  # the second chunk was cast while the first was
