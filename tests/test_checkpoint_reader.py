"""CheckpointReader(concurrent=True): the same values as TensorFlow's reader, read so that other
Python threads run meanwhile (TensorFlow's get_tensor holds the GIL for the whole read)."""

import numpy as np
import pytest
import tensorflow as tf

from graphsurgeon._src.errors import CorruptCheckpointError
from graphsurgeon._src.storage import checkpoint
from graphsurgeon._src.storage.checkpoint import CheckpointReader

from helpers import longest_stall, save_v2

tf1 = tf.compat.v1
RNG = np.random.default_rng(5)
VALUES = {"f32": RNG.standard_normal((3, 4)).astype(np.float32),
          "f16": RNG.standard_normal(7).astype(np.float16),
          "bf16": tf.constant(RNG.standard_normal(5), tf.bfloat16).numpy(),
          "i64": np.array([1, -2, 3 << 40], np.int64),
          "flags": np.array([True, False, True]),
          "scalar": np.float64(2.5),
          "empty": np.zeros((0, 3), np.float32),
          "text": np.array([b"ab", b"", b"\xff"], object),
          "big": RNG.standard_normal(16 << 20).astype(np.float32)}  # 64 MiB


@pytest.fixture
def restores(monkeypatch):
    """The tensor names read through TensorFlow's RestoreV2 op."""
    seen, real = [], tf.raw_ops.RestoreV2

    def restore(**kw):
        seen.extend(kw["tensor_names"])
        return real(**kw)

    monkeypatch.setattr(tf.raw_ops, "RestoreV2", restore)
    return seen


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_v2(str(tmp_path_factory.mktemp("ckpt") / "c"), VALUES)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object:
        return b.dtype == object and a.shape == b.shape and list(a.ravel()) == list(b.ravel())
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_concurrent_reads_give_tensorflows_values_bit_for_bit(ckpt, restores, monkeypatch):
    monkeypatch.setattr(checkpoint, "CONCURRENT_BYTES", 0)
    r, plain_reader = CheckpointReader(ckpt, concurrent=True), CheckpointReader(ckpt)
    for name, value in VALUES.items():
        got = r.read(name)
        assert restores == [name]
        plain = plain_reader.read(name)
        assert restores == [name] and _same(got, plain) and _same(got, value), name
        restores.clear()


def test_other_threads_run_during_a_concurrent_read_and_not_during_a_plain_one(ckpt):
    readers = {c: CheckpointReader(ckpt, concurrent=c) for c in (False, True)}
    readers[True].read("big")  # the op's first run out of the way

    def stall_of(concurrent):
        """The longest time a spinning thread went without running while ``big`` was read 3 times, and the shortest read."""
        return longest_stall(lambda: readers[concurrent].read("big"))

    stall, read_time = stall_of(False)
    assert stall >= 0.5 * read_time, (stall, read_time)  # get_tensor: the spinner did not run during a read
    # concurrent: the spinner never went half a read without running; a busy machine may hold it off, so up to three tries
    tries = []
    while len(tries) < 3 and not any(stall < 0.5 * read_time for stall, read_time in tries):
        tries.append(stall_of(True))
    assert any(stall < 0.5 * read_time for stall, read_time in tries), tries


def test_tensors_under_1_mib_are_read_by_tensorflows_reader(ckpt, restores):
    r = CheckpointReader(ckpt, concurrent=True)
    assert _same(r.read("f32"), VALUES["f32"]) and restores == []
    assert _same(r.read("big"), VALUES["big"]) and restores == ["big"]


def test_partitioned_v1_and_graph_mode_reads_fall_back_to_tensorflows_reader(tmp_path, ckpt, restores, monkeypatch):
    monkeypatch.setattr(checkpoint, "CONCURRENT_BYTES", 0)
    with tf.Graph().as_default():
        parts = tf1.get_variable("w", shape=(6, 2), initializer=tf1.random_normal_initializer(),
                                 partitioner=tf1.fixed_size_partitioner(2))
        v1 = tf1.get_variable("v", initializer=np.arange(4, dtype=np.float32))
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            tf1.train.Saver([parts]).save(s, str(tmp_path / "parts"))
            tf1.train.Saver([v1], write_version=tf1.train.SaverDef.V1).save(s, str(tmp_path / "v1"))
            want = s.run(tf.concat(list(parts), 0))
    got = CheckpointReader(str(tmp_path / "parts"), concurrent=True).read("w")
    assert _same(got, want)
    got = CheckpointReader(str(tmp_path / "v1"), concurrent=True).read("v")
    assert _same(got, np.arange(4, dtype=np.float32)) and restores == []
    with tf.Graph().as_default():  # in a caller's graph: TensorFlow's reader, not an op added to the graph
        got = CheckpointReader(ckpt, concurrent=True).read("f32")
        assert not tf1.get_default_graph().get_operations()
    assert _same(got, VALUES["f32"]) and restores == []


def test_a_damaged_tensor_read_concurrently_is_refused_naming_the_file(tmp_path, ckpt, monkeypatch, restores):
    monkeypatch.setattr(checkpoint, "CONCURRENT_BYTES", 0)
    import shutil

    for f in ("c.index", "c.data-00000-of-00001"):
        shutil.copy(f"{ckpt[:-1]}{f}", tmp_path / f)
    data = tmp_path / "c.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    r = CheckpointReader(str(tmp_path / "c"), concurrent=True)
    offset = r.index[1]["f32"].offset
    raw[offset] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match=rf"{data}: cannot read tensor 'f32' .*truncated or damaged"):
        r.read("f32")
    assert restores == ["f32"]  # the error came from the op, worded as TensorFlow's reader's



def test_a_file_that_is_no_checkpoint_is_refused_with_tensorflow_s_words_cut_between_words(tmp_path):
    """TensorFlow's reason was cut at 200 characters inside a word ('... a different restore opera)')."""
    notes = tmp_path / "notes.md"
    notes.write_text("# not a model\n")
    with pytest.raises(tf.errors.OpError) as tf_error:
        tf.train.load_checkpoint(str(notes))
    full = str(tf_error.value).strip().splitlines()[0]
    with pytest.raises(CorruptCheckpointError) as e:
        CheckpointReader(str(notes))
    said = str(e.value)
    assert said.startswith(f"{notes}: cannot read the checkpoint index (Unable to open table file {notes}: ")
    assert said.endswith(" …); the file is truncated or not a TensorFlow checkpoint") and len(full) > 200
    reason = said.split(" (", 1)[1].rsplit(" …)", 1)[0]
    assert len(reason) <= 200 and full.startswith(reason) and full[len(reason)] == " "  # whole words
