"""The storage layer of migrations: V2 index round trips, data files, bundles TensorFlow reads, staging."""
import mmap
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import tensor_bundle_pb2

from graphsurgeon._src.errors import CorruptCheckpointError
from graphsurgeon._src.storage import bundle, staging
from graphsurgeon._src.storage.bundle_data import DataWriter, encode_strings, read_chunks
from graphsurgeon._src.storage.bundle_writer import BundleWriter, new_entry


def _entries(n):
    """``n`` entries with varied names (shared prefixes, a binary slice key), sizes and crcs."""
    out = {}
    for i in range(n):
        out[f"scope{i % 7}/layer_{i}/weights"] = new_entry(tf.float32, (i % 5 + 1, 3), offset=i * 60, size=60,
                                                          crc32c=(i * 2654435761) & 0xFFFFFFFF)
    sliced = new_entry(tf.float32, (10, 4))
    sliced.slices.add()
    out["emb/table"] = sliced
    out[bundle.rename_slice_key("\x00emb/table\x00\x01\x02\x03", "emb/table")] = new_entry(tf.float32, (4, 4), size=64)
    return out


def test_crc32c_check_value_and_mask_round_trip():
    assert bundle.crc32c(b"123456789") == 0xE3069283
    assert bundle.crc32c(b"6789", bundle.crc32c(b"12345")) == 0xE3069283  # continued
    assert bundle.crc32c(np.frombuffer(b"123456789", np.uint8)) == 0xE3069283  # any buffer
    for c in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert bundle.unmask(bundle.mask(c)) == c and bundle.mask(c) != c


@pytest.mark.parametrize("n", [0, 3, 700])  # 700 entries span several 4 KiB blocks
def test_index_write_read_round_trip(tmp_path, n):
    header = tensor_bundle_pb2.BundleHeaderProto(num_shards=2)
    entries = _entries(n)
    bundle.write_index(str(tmp_path / "c.index"), header, entries)
    h, got = bundle.read_index(str(tmp_path / "c"))
    assert h == header
    assert list(got) == sorted(entries, key=lambda k: k.encode("utf-8", "surrogateescape"))  # stored sorted
    assert all(got[k] == entries[k] for k in entries)  # every field, crc32c included


def test_tensorflow_reads_the_index_we_write(tmp_path):
    """Our index over TensorFlow's own data file: TF's reader gives the same values."""
    src = str(tmp_path / "tf")
    values = {f"v{i}": np.arange(i + 2, dtype=np.float32) * i for i in range(40)}
    tf.raw_ops.SaveV2(prefix=src, tensor_names=list(values), shape_and_slices=[""] * 40,
                      tensors=[tf.constant(v) for v in values.values()])
    header, entries = bundle.read_index(src)
    bundle.write_index(str(tmp_path / "ours.index"), header, entries)
    os.link(src + ".data-00000-of-00001", str(tmp_path / "ours.data-00000-of-00001"))
    r = tf.train.load_checkpoint(str(tmp_path / "ours"))
    assert all(r.get_tensor(n).tobytes() == v.tobytes() for n, v in values.items())


@pytest.mark.parametrize("damage", ["data block", "index block", "truncated", "entry"])
def test_damaged_index_is_refused(tmp_path, damage):
    bundle.write_index(str(tmp_path / "c.index"), tensor_bundle_pb2.BundleHeaderProto(num_shards=1), _entries(50))
    raw = bytearray((tmp_path / "c.index").read_bytes())
    if damage == "data block":
        raw[100] ^= 0x01
        needle = "block checksum mismatch"
    elif damage == "index block":
        raw[-bundle.FOOTER_SIZE - 10] ^= 0x01
        needle = "block checksum mismatch|truncated varint|past the end"
    elif damage == "truncated":
        raw = raw[: len(raw) // 2]
        needle = "no table magic number"
    else:  # a well-formed block holding an entry that is not a BundleEntryProto
        raw = _index_with_raw_value(tmp_path, b"\xff\xff\xff")
        needle = "damaged index entry"
    (tmp_path / "c.index").write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match=needle):
        bundle.read_index(str(tmp_path / "c"))


def _index_with_raw_value(tmp_path, value):
    class Raw:  # serializes to arbitrary bytes
        def SerializeToString(self):
            return value
    bundle.write_index(str(tmp_path / "c.index"), tensor_bundle_pb2.BundleHeaderProto(num_shards=1), {"x": Raw()})
    return (tmp_path / "c.index").read_bytes()


def test_strings_are_encoded_as_tensorflow_encodes_them(tmp_path):
    values = {"a": np.array([b"hello", b"", "ünïcode".encode(), b"x" * 300], object), "b": np.array(b"one", object),
              "c": np.array([[b"p", b"q"], [b"", b"rr"]], object)}
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "s"), tensor_names=list(values), shape_and_slices=[""] * 3,
                      tensors=[tf.constant(v) for v in values.values()])
    _, entries = bundle.read_index(str(tmp_path / "s"))
    data = (tmp_path / "s.data-00000-of-00001").read_bytes()
    for name, v in values.items():
        e = entries[name]
        assert encode_strings(v) == (data[e.offset:e.offset + e.size], e.crc32c), name


def test_bundle_writer_output_reads_back_in_tensorflow(tmp_path):
    big = np.random.default_rng(0).standard_normal((600, 1000)).astype(np.float32)
    w = BundleWriter(str(tmp_path / "w"))
    w.write("big", tf.float32, big.shape, [big[:250], big[250:]])  # chunks make up the tensor
    w.write_value("names", np.array([b"a", b"bc"], object), tf.string)
    w.write_value("step", np.array(7, np.int64), tf.int64)
    w.write_value("empty", np.zeros((0, 3), np.float16), tf.float16)
    files = w.finish()
    assert [os.path.basename(f) for f in files] == ["w.data-00000-of-00001", "w.index"]
    r = tf.train.load_checkpoint(str(tmp_path / "w"))  # TensorFlow checks every crc32c on read
    assert r.get_tensor("big").tobytes() == big.tobytes()
    assert list(r.get_tensor("names")) == [b"a", b"bc"] and r.get_tensor("step") == 7
    assert r.get_tensor("empty").shape == (0, 3)


def test_bundle_writer_links_and_copies(tmp_path):
    a = np.arange(10, dtype=np.float64)
    src = BundleWriter(str(tmp_path / "src"))
    src.write_value("a", a, tf.float64)
    src.write_value("b", a * 2, tf.float64)
    src.finish()
    _, entries = bundle.read_index(str(tmp_path / "src"))
    src_data = str(tmp_path / "src.data-00000-of-00001")
    w = BundleWriter(str(tmp_path / "out"))
    shards = w.link(str(tmp_path / "src"), 1)
    linked = tensor_bundle_pb2.BundleEntryProto()
    linked.CopyFrom(entries["a"])
    linked.shard_id = shards[0]
    w.add("linked_a", linked)
    w.copy("copied_b", entries["b"], src_data)
    files = w.finish()
    assert [os.path.basename(f) for f in files] == ["out.data-00000-of-00002", "out.data-00001-of-00002", "out.index"]
    assert os.path.samefile(files[0], src_data)  # a hard link
    assert os.path.getsize(files[1]) == a.nbytes  # only b's bytes
    r = tf.train.load_checkpoint(str(tmp_path / "out"))
    assert r.get_tensor("linked_a").tobytes() == a.tobytes() and r.get_tensor("copied_b").tobytes() == (a * 2).tobytes()


def test_read_chunks_checks_length_and_crc(tmp_path):
    payload = np.random.default_rng(1).integers(0, 255, 5000, dtype=np.uint8).tobytes()
    (tmp_path / "d").write_bytes(payload)
    crc = bundle.mask(bundle.crc32c(payload[100:4100]))
    got = b"".join(bytes(c) for c in read_chunks(str(tmp_path / "d"), 100, 4000, crc=crc, chunk_bytes=512))
    assert got == payload[100:4100]
    with pytest.raises(CorruptCheckpointError, match="do not match their crc32c"):
        list(read_chunks(str(tmp_path / "d"), 100, 4000, crc=crc ^ 1, what="tensor 'w'"))
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        list(read_chunks(str(tmp_path / "d"), 4000, 4000))


def test_read_chunks_converts_ahead_in_a_pool_and_checks_the_crc_in_order(tmp_path):
    """With a pool, chunks are mapped and converted by its threads and yielded in order; the crc32c
    still covers the bytes in order; a caller that stops early returns only once no conversion runs."""
    payload = np.random.default_rng(4).integers(0, 255, 10_000, dtype=np.uint8).tobytes()
    (tmp_path / "d").write_bytes(payload)
    crc, path = bundle.mask(bundle.crc32c(payload[100:9100])), str(tmp_path / "d")
    threads, running, done = [], [0], threading.Event()

    def convert(chunk):
        threads.append(threading.current_thread().name)
        return bytes(chunk)[::-1]

    with ThreadPoolExecutor(2, thread_name_prefix="conv") as pool:
        got = list(read_chunks(path, 100, 9000, crc=crc, chunk_bytes=1000, convert=convert, pool=pool, ahead=2))
        assert got == [payload[i:i + 1000][::-1] for i in range(100, 9100, 1000)]
        assert len(threads) == 9 and all(t.startswith("conv") for t in threads)
        threads.clear()  # a range of one chunk: converted by the caller, which would only wait for it
        got = list(read_chunks(path, 100, 1000, crc=bundle.mask(bundle.crc32c(payload[100:1100])), chunk_bytes=1000,
                               convert=convert, pool=pool, ahead=2))
        assert got == [payload[100:1100][::-1]] and threads == [threading.current_thread().name]
        with pytest.raises(CorruptCheckpointError, match="do not match their crc32c"):
            list(read_chunks(path, 100, 9000, crc=crc ^ 1, chunk_bytes=1000, convert=convert, pool=pool))

        def slow(chunk):
            running[0] += 1
            done.wait(0.2)
            running[0] -= 1
            return bytes(chunk)

        chunks = read_chunks(path, 100, 9000, crc=crc, chunk_bytes=1000, convert=slow, pool=pool, ahead=2)
        assert next(chunks) == payload[100:1100]
        chunks.close()
        assert running[0] == 0


@pytest.mark.parametrize("cached", [(True, True), (True, False), (False, True), (False, False), (True, 0)])
def test_read_ahead_is_asked_unless_the_first_and_last_pages_are_cached(monkeypatch, cached):
    """The probe reads one byte at each end of the range with RWF_NOWAIT (a read that would wait
    for the disk fails with EAGAIN); read-ahead is asked for unless both ends read at once: a
    probe that reads no byte (0: past the file's end) does not count as cached."""
    from graphsurgeon._src.storage import bundle_data

    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("no RWF_NOWAIT here: read-ahead is always asked for")
    probes, asked = [], []

    def preadv(fd, buffers, offset, flags):
        probes.append((offset, flags))
        end = cached[0 if offset == 4096 else 1]
        if end is False:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return 1 if end is True else end

    monkeypatch.setattr(bundle_data.os, "preadv", preadv)
    monkeypatch.setattr(bundle_data.os, "posix_fadvise", lambda fd, o, n, advice: asked.append((o, n, advice)))
    bundle_data._read_ahead(7, 4096, 65536)
    assert probes[0] == (4096, os.RWF_NOWAIT) and set(probes) <= {(4096, os.RWF_NOWAIT), (69631, os.RWF_NOWAIT)}
    assert asked == ([] if cached == (True, True) else [(4096, 65536, os.POSIX_FADV_WILLNEED)])


def test_read_ahead_is_asked_only_for_pages_not_cached(tmp_path, monkeypatch):
    """With the kernel's own page cache: a file written by direct I/O gets read-ahead, the same
    file once read does not. Whether the pages were cached is what ``_read_ahead``'s own probes
    saw (at its offsets, 4096 and 69631), recorded as they ran: a probe of our own beforehand
    would itself start the kernel's read-ahead (a RWF_NOWAIT read that misses does; here the
    pages were in memory about 0.2 ms later) and could make the case it checks. Skipped where a
    direct write leaves the pages in memory (the uncached case cannot be made there; the test
    above covers the decision)."""
    from graphsurgeon._src.storage import bundle_data

    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("no RWF_NOWAIT here: read-ahead is always asked for")
    path = tmp_path / "d"
    data = mmap.mmap(-1, 1 << 20)  # page-aligned, as direct I/O needs
    data.write(np.random.default_rng(2).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    try:  # written by direct I/O, the file's pages are not in the page cache (DONTNEED is only advice)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
    except (AttributeError, OSError):
        pytest.skip("no direct I/O on this file system: the uncached case cannot be made")
    try:
        assert os.pwrite(fd, data, 0) == 1 << 20
        os.fsync(fd)
    except OSError:
        pytest.skip("no direct I/O on this file system: the uncached case cannot be made")
    finally:
        os.close(fd)
    asked, probes, preadv = [], [], os.preadv

    def recorded(fd, buffers, offset, flags):  # the real read, its outcome noted
        try:
            got = preadv(fd, buffers, offset, flags)
        except OSError as e:
            probes.append((offset, type(e).__name__))
            raise
        probes.append((offset, got))
        return got

    monkeypatch.setattr(bundle_data.os, "preadv", recorded)
    monkeypatch.setattr(bundle_data.os, "posix_fadvise", lambda fd, o, n, advice: asked.append((o, n, advice)))
    with open(path, "rb", buffering=0) as f:
        bundle_data._read_ahead(f.fileno(), 4096, 65536)
        if probes == [(4096, 1), (69631, 1)]:
            pytest.skip("this file system keeps a file written by direct I/O in memory")
        if probes[0][1] not in (1, "BlockingIOError"):
            pytest.skip(f"this file system has no RWF_NOWAIT reads ({probes[0][1]})")
        assert probes[0] == (4096, "BlockingIOError") or probes == [(4096, 1), (69631, "BlockingIOError")], probes
        assert asked == [(4096, 65536, os.POSIX_FADV_WILLNEED)]
        f.read()  # now in the page cache
        asked.clear()
        probes.clear()
        bundle_data._read_ahead(f.fileno(), 4096, 65536)
        assert probes == [(4096, 1), (69631, 1)] and asked == []


def test_data_writer_refuses_an_existing_file(tmp_path):
    (tmp_path / "d").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        DataWriter(str(tmp_path / "d"))


@pytest.mark.parametrize("direct", ["used", "absent", "refused"])
def test_data_writer_blocks_tails_and_copies_give_the_exact_bytes(tmp_path, monkeypatch, direct):
    """Chunks of every size across a (shrunk) 16 KiB stage, copies in between, and a file system
    without direct I/O, or one refusing it at the first write: the file holds exactly the bytes,
    and each tensor's offset, size and crc32c are right."""
    from graphsurgeon._src.storage import bundle_data

    monkeypatch.setattr(DataWriter, "STAGE_BYTES", 16384)
    if direct == "absent":
        monkeypatch.setattr(bundle_data, "_open_direct", lambda path: None)
    rng = np.random.default_rng(3)
    source = rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    (tmp_path / "src").write_bytes(source)
    w = DataWriter(str(tmp_path / "d"))
    if direct == "used" and w._direct is None:
        pytest.skip("this file system has no direct I/O")
    if direct == "refused":
        real, refused = os.pwrite, w._direct

        def pwrite(fd, data, offset):
            if fd == refused:
                raise OSError(22, "Invalid argument")
            return real(fd, data, offset)
        monkeypatch.setattr(bundle_data.os, "pwrite", pwrite)
    want = bytearray()
    for sizes in ([5000], [3, 40_000, 1], [4096, 4096, 4096], [], [16384], [70_000, 123]):
        chunks = [rng.integers(0, 256, n, dtype=np.uint8) for n in sizes]
        offset, size, crc = w.write(iter(chunks[:1] + [c.tobytes() for c in chunks[1:]]))
        data = b"".join(c.tobytes() for c in chunks)
        assert (offset, size, crc) == (len(want), len(data), bundle.mask(bundle.crc32c(data)))
        want += data
        assert w.copy(str(tmp_path / "src"), 7, 9000) == len(want)
        want += source[7:9007]
    if direct == "refused":
        assert w._direct is None
    w.close()
    assert (tmp_path / "d").read_bytes() == bytes(want)


def test_data_writer_reads_back_only_the_tensors_asked_as_their_blocks_are_written(tmp_path, monkeypatch):
    """read_back asks the kernel to read exactly the tensor's bytes into the page cache, each part
    once the stage holding it is written directly (a tensor across three stages here)."""
    from graphsurgeon._src.storage import bundle_data

    monkeypatch.setattr(DataWriter, "STAGE_BYTES", 16384)
    monkeypatch.setattr(DataWriter, "READ_AHEAD_BYTES", 4096)
    asked, real = [], os.posix_fadvise

    def fadvise(fd, offset, n, advice):
        if advice == os.POSIX_FADV_WILLNEED:
            asked.append((offset, n))
        return real(fd, offset, n, advice)

    monkeypatch.setattr(bundle_data.os, "posix_fadvise", fadvise)
    w = DataWriter(str(tmp_path / "d"))
    if w._direct is None:
        w.abandon()
        pytest.skip("this file system has no direct I/O: nothing is written past the page cache")
    rng = np.random.default_rng(5)
    parts = [rng.integers(0, 256, n, dtype=np.uint8) for n in (20_000, 30_000, 40_000)]
    assert [w.write(iter([part]), read_back=i == 1)[0] for i, part in enumerate(parts)] == [0, 20_000, 50_000]
    w.close()
    assert (tmp_path / "d").read_bytes() == b"".join(p.tobytes() for p in parts)
    covered = sorted(asked)
    assert all(n <= 4096 for _, n in covered)
    assert [(a, a + n) for a, n in covered] == [(a, min(a + 4096, b)) for a, b in
                                               [(20_000, 32_768), (32_768, 49_152), (49_152, 50_000)]
                                               for a in range(a, b, 4096)]


def test_tensors_read_back_one_after_another_share_one_span(tmp_path):
    """The I/O threads scan the read-back spans at every write: tensors written back to back make one."""
    w = DataWriter(str(tmp_path / "d"))
    for back in (True, False, True, True, True):
        w.write(iter([np.ones(100, np.uint8)]), read_back=back)
    w.close()
    assert w._read_back == [[0, 100], [200, 500]]


@pytest.mark.parametrize("first", ["write", "copy"])
def test_data_writer_makes_its_stages_ahead_when_much_is_expected(tmp_path, monkeypatch, first):
    """With more than a stage expected, every stage is made (its pages at once) by an I/O thread
    before it is needed, the first one even when a copy comes first; the bytes are exact. With
    less, the first stage is made by the caller, its pages as they are written."""
    from graphsurgeon._src.storage import bundle_data

    monkeypatch.setattr(DataWriter, "STAGE_BYTES", 16384)
    made, real = [], bundle_data.aligned

    def stage(size, *, populate):
        made.append((threading.current_thread().name.split("_")[0], populate))
        return real(size, populate=populate)

    monkeypatch.setattr(bundle_data, "aligned", stage)
    rng = np.random.default_rng(6)
    source = rng.integers(0, 256, 9000, dtype=np.uint8).tobytes()
    (tmp_path / "src").write_bytes(source)
    data = rng.integers(0, 256, 100_000, dtype=np.uint8)
    w = DataWriter(str(tmp_path / "d"), expected_bytes=109_000)
    if first == "copy":
        assert w.copy(str(tmp_path / "src"), 0, 9000) == 0
    w.write(iter([data]))
    if first == "write":
        w.copy(str(tmp_path / "src"), 0, 9000)
    w.close()
    want = source + data.tobytes() if first == "copy" else data.tobytes() + source
    assert (tmp_path / "d").read_bytes() == want
    assert made == [("graphsurgeon-io", True)] * DataWriter.STAGES
    made.clear()
    DataWriter(str(tmp_path / "small"), expected_bytes=16384).close()
    assert made == [(threading.current_thread().name.split("_")[0], False)]


def test_data_writer_tells_waiters_when_bytes_are_in_the_file(tmp_path, monkeypatch):
    """wait_written returns True once every byte before the offset is in the file (a full stage is
    written at once, the rest at close), False when the writer is abandoned or a write fails first."""
    from graphsurgeon._src.storage import bundle_data

    monkeypatch.setattr(DataWriter, "STAGE_BYTES", 16384)

    def waiting(w, end):
        got = []
        t = threading.Thread(target=lambda: got.append(w.wait_written(end)), daemon=True)
        t.start()
        return t, got

    w = DataWriter(str(tmp_path / "d"))
    w.write(iter([np.ones(20_000, np.uint8)]))
    assert w.wait_written(16384)  # the first stage, written by an I/O thread
    t, got = waiting(w, 20_000)
    t.join(0.3)
    assert t.is_alive() and got == []  # the last 3,616 bytes wait in the stage
    w.close()
    t.join(5)
    assert got == [True] and not t.is_alive()
    w = DataWriter(str(tmp_path / "e"))
    w.write(iter([np.ones(100, np.uint8)]))
    t, got = waiting(w, 100)
    w.abandon()
    t.join(5)
    assert got == [False]
    real = os.pwrite

    def full(fd, data, offset):
        raise OSError(28, "No space left on device")

    for name in ("f", "g"):  # a failed direct write, then (no direct I/O) a failed write through the page cache
        if name == "g":
            monkeypatch.setattr(bundle_data, "_open_direct", lambda path: None)
        w = DataWriter(str(tmp_path / name))
        t, got = waiting(w, 16384)
        monkeypatch.setattr(bundle_data.os, "pwrite", full)
        with pytest.raises(OSError, match="No space"):
            w.write(iter([np.ones(40_000, np.uint8)]))
            w.close()
        t.join(5)
        assert got == [False], name
        monkeypatch.setattr(bundle_data.os, "pwrite", real)
        w.abandon()


def test_bundle_writer_hands_read_back_to_its_data_file(tmp_path):
    w = BundleWriter(str(tmp_path / "out"))
    w.write("a", tf.float32, (10,), [np.ones(10, np.float32)])
    w.write("b", tf.float32, (10,), [np.ones(10, np.float32)], read_back=True)
    w.write("c", tf.float32, (10,), [np.ones(10, np.float32)])
    assert w._own()._read_back == [[40, 80]]
    w.finish()


def test_a_preview_holds_only_its_tensors_where_the_finished_checkpoint_has_them(tmp_path, monkeypatch):
    from graphsurgeon._src.storage.bundle_writer import moved_since_preview

    monkeypatch.setattr(DataWriter, "STAGE_BYTES", 16384)
    a, b, c = (np.arange(n, dtype=np.float32) * k for n, k in ((3000, 1), (5000, 2), (9000, 3)))
    w = BundleWriter(str(tmp_path / "out"))
    w.write("a", tf.float32, a.shape, [a])
    w.write("b", tf.float32, b.shape, [b])
    make = w.preview(str(tmp_path / "early"), ["a", "b"])
    w.write("c", tf.float32, c.shape, [c])  # fills the stage holding a and b: they reach the file
    assert make()
    r = tf.train.load_checkpoint(str(tmp_path / "early"))
    assert sorted(r.get_variable_to_shape_map()) == ["a", "b"]
    assert r.get_tensor("a").tobytes() == a.tobytes() and r.get_tensor("b").tobytes() == b.tobytes()
    w.finish()

    def moved():
        out, early = str(tmp_path / "out"), str(tmp_path / "early")
        return moved_since_preview(out, early, ["a", "b"], index=bundle.read_index(out),
                                   preview_index=bundle.read_index(early))

    assert moved() == []
    header, entries = bundle.read_index(str(tmp_path / "out"))
    entries["a"].offset += 4
    bundle.write_index(str(tmp_path / "out") + ".index", header, entries)
    assert moved() == ["a"]
    linked = bundle.data_file(str(tmp_path / "early"), 0, 1)  # the same bytes in another file: not where it was read
    os.remove(linked)
    shutil.copyfile(bundle.data_file(str(tmp_path / "out"), 0, 1), linked)
    assert moved() == ["a", "b"]


def test_data_writer_raises_a_write_error_of_its_io_threads(tmp_path, monkeypatch):
    """A full disk met by a background write surfaces from write() or close(), and abandon() then
    returns (no thread left waiting)."""
    import errno

    from graphsurgeon._src.storage import bundle_data

    monkeypatch.setattr(DataWriter, "STAGE_BYTES", 16384)
    real, calls = os.pwrite, []

    def pwrite(fd, data, offset):
        calls.append(offset)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)
    monkeypatch.setattr(bundle_data.os, "pwrite", pwrite)
    w = DataWriter(str(tmp_path / "d"))
    with pytest.raises(OSError, match="No space"):
        w.write(iter([np.zeros(16384, np.uint8)] * 8))
        w.close()
    w.abandon()


def test_chunks_under_inline_bytes_are_appended_by_the_caller_and_larger_ones_by_the_writer_thread(tmp_path,
                                                                                                    monkeypatch):
    import threading

    monkeypatch.setattr(DataWriter, "STAGE_BYTES", 16384)
    monkeypatch.setattr(DataWriter, "INLINE_BYTES", 1000)
    real, seen = DataWriter._append, []

    def append(self, chunk, crc):
        seen.append((len(chunk), threading.current_thread().name))
        return real(self, chunk, crc)
    monkeypatch.setattr(DataWriter, "_append", append)
    rng = np.random.default_rng(6)
    chunks = [rng.integers(0, 256, n, dtype=np.uint8) for n in (999, 1000, 20_000, 5, 3000)]
    w = DataWriter(str(tmp_path / "d"))
    offset, size, crc = w.write(iter(chunks))
    w.close()
    data = b"".join(c.tobytes() for c in chunks)
    assert (offset, size, crc) == (0, len(data), bundle.mask(bundle.crc32c(data)))
    assert (tmp_path / "d").read_bytes() == data
    me = threading.current_thread().name
    assert [(n, t == me) for n, t in seen] == [(999, True), (1000, False), (20_000, False), (5, True), (3000, False)]
    assert all(t.startswith("graphsurgeon-write") for _, t in seen if t != me)


def test_the_last_stage_is_written_while_the_stages_before_it_still_are(tmp_path, monkeypatch):
    """close() hands the last, partial stage's whole blocks to an I/O thread without first waiting for
    the full stages being written: here the first stage's write waits until the last one's has begun."""
    import threading

    from graphsurgeon._src.storage import bundle_data

    monkeypatch.setattr(DataWriter, "STAGE_BYTES", 16384)
    real, last_begun, waited = os.pwrite, threading.Event(), []

    def pwrite(fd, data, offset):
        if offset == 2 * 16384:  # the last stage's whole blocks
            last_begun.set()
        if offset == 0:  # the first stage
            waited.append(last_begun.wait(10))
        return real(fd, data, offset)
    monkeypatch.setattr(bundle_data.os, "pwrite", pwrite)
    w = DataWriter(str(tmp_path / "d"))
    data = np.random.default_rng(4).integers(0, 256, 2 * 16384 + 3 * 4096 + 100, dtype=np.uint8)
    w.write(iter([data]))
    w.close()
    assert waited == [True] and (tmp_path / "d").read_bytes() == data.tobytes()


HOLD = r"""
import sys, time
sys.path.insert(0, {root!r})
from graphsurgeon._src.storage.staging import StagingDir
with StagingDir(sys.argv[1], "migrate") as path:
    print(path, flush=True)
    time.sleep(60)
"""


def test_staging_sweeps_only_what_killed_runs_left(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    running = subprocess.Popen([sys.executable, "-c", HOLD.format(root=root), str(tmp_path)], stdout=subprocess.PIPE,
                               text=True)
    killed = subprocess.Popen([sys.executable, "-c", HOLD.format(root=root), str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        live, dead = running.stdout.readline().strip(), killed.stdout.readline().strip()
        (tmp_path / "data").write_bytes(b"source bytes")
        os.link(tmp_path / "data", os.path.join(dead, "linked"))
        killed.kill()
        assert killed.wait() == -9
        young = tmp_path / ".tmp-migrate-being-created"  # no owner file yet: left alone for an hour
        young.mkdir()
        other = tmp_path / ".tmp-checkpoint-x"  # another kind of staging directory
        other.mkdir()
        with staging.StagingDir(str(tmp_path), "migrate") as mine:
            assert os.path.isdir(mine)
            assert not os.path.exists(dead) and os.path.isdir(live) and young.is_dir() and other.is_dir()
        assert not os.path.exists(mine)
        old = time.time() - 7200
        os.utime(young, (old, old))
        assert staging.sweep(str(tmp_path), ".tmp-migrate-") == [str(young)]
        assert os.path.isdir(live) and (tmp_path / "data").read_bytes() == b"source bytes"
    finally:
        running.kill()
        killed.kill()


def test_commit_renames_in_order_then_syncs_the_directory(tmp_path, monkeypatch):
    events = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("rename", os.path.basename(b))), real_replace(a, b)))
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd)))
    (tmp_path / "s").mkdir()
    for name in ("x.data", "x.index"):
        (tmp_path / "s" / name).write_text(name)
    staging.commit([(str(tmp_path / "s" / n), str(tmp_path / n)) for n in ("x.data", "x.index")])
    assert events == [("rename", "x.data"), ("rename", "x.index"), ("fsync", str(tmp_path))]
    (tmp_path / "s" / "y").write_text("y")
    with pytest.raises(FileExistsError):
        staging.commit([(str(tmp_path / "s" / "y"), str(tmp_path / "x.index"))])
    assert (tmp_path / "x.index").read_text() == "x.index"
