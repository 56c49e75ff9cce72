"""Verification's early checks: the sampled tensors computed into the new data file are read back
through a preview checkpoint and compared while the rest of the checkpoint is written."""
import errno
import threading

import numpy as np
import pytest

from graphsurgeon._src.errors import MigrateError
from graphsurgeon._src.migrate import assemble as assemble_mod
from graphsurgeon._src.migrate import migrate
from graphsurgeon._src.migrate import plan as phases
from graphsurgeon._src.migrate import verify as verify_mod
from graphsurgeon._src.migrate.rules import Rules
from graphsurgeon._src.migrate.sources import open_checkpoint
from graphsurgeon._src.storage import bundle_writer
from graphsurgeon._src.storage.checkpoint import CheckpointReader

from helpers import save_v2

RNG = np.random.default_rng(11)
VALUES = {**{f"big/{k}": RNG.standard_normal((300, 1000)).astype(np.float32) for k in range(6)},  # 1.2 MB each
          "small/a": RNG.standard_normal((10, 10)).astype(np.float32),
          "small/b": RNG.standard_normal((7,)).astype(np.float32)}
RULES = Rules(cast=[("big", "float64"), ("small", "float16")])  # every tensor computed; big ones 2.4 MB


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return save_v2(str(tmp_path_factory.mktemp("src") / "ckpt"), VALUES)


@pytest.fixture
def reads(monkeypatch):
    """``[(checkpoint prefix, key, thread name)]`` of every tensor read through CheckpointReader
    (``concurrent`` reads recorded in ``seen.concurrent`` too)."""
    seen, real = _Reads(), CheckpointReader.read

    def read(self, key):
        seen.append((self.prefix, key, threading.current_thread().name))
        if self.concurrent:
            seen.concurrent.append((self.prefix, key))
        return real(self, key)

    monkeypatch.setattr(CheckpointReader, "read", read)
    monkeypatch.setattr(verify_mod, "SAMPLE_BYTES", 5_000_000)  # two of the six big tensors in the sample
    return seen


class _Reads(list):
    def __init__(self):
        super().__init__()
        self.concurrent = []


def _early(src):
    """The sampled tensors the early check covers: every sampled one but the first written (the largest)."""
    tensors = phases.apply_casts(phases.plan(open_checkpoint(src), [], RULES), RULES)
    largest = sorted(tensors, key=lambda p: -p.nbytes)[0].new
    return {p.new for p in verify_mod.sample(tensors)} - {largest}, largest


def test_sampled_tensors_are_checked_through_a_preview_while_the_rest_is_written(src, tmp_path, reads):
    res = migrate(src, str(tmp_path / "m"), RULES)
    early, largest = _early(src)
    assert res.verified == "sample" and early == {"small/a", "small/b", "big/2", "big/4"} and largest == "big/0"
    preview = {(key, thread) for prefix, key, thread in reads if prefix.endswith(".preview")}
    assert {key for key, _ in preview} == early and all(t.startswith("graphsurgeon-verify-early") for _, t in preview)
    final = {key for prefix, key, _ in reads if "/.tmp-migrate-" in prefix and not prefix.endswith(".preview")}
    assert final == set()  # verify() read back nothing itself (the largest, big/0, is not in the sample)
    # the threads working while the checkpoint is written read so that the writing threads run meanwhile
    threads = {(prefix, key) for prefix, key, t in reads if t.startswith("graphsurgeon-verify")}
    assert threads == set(reads.concurrent) and {(src, k) for k in early} | {p for p in threads if
                                                                             p[0].endswith(".preview")} == threads
    assert not list(tmp_path.glob("*.preview*")) and sorted(p.name for p in tmp_path.iterdir()) == [
        "m.data-00000-of-00001", "m.index"]


def test_a_wrong_byte_is_caught_by_the_early_check(src, tmp_path, reads, monkeypatch):
    early, _ = _early(src)
    victim = sorted(early)[0]
    real = assemble_mod._chunks

    def chunks(p, converter):
        for chunk in real(p, converter):
            if p.new == victim:  # a converter that got one byte wrong
                chunk = np.array(chunk)
                chunk.view(np.uint8)[-1] ^= 0x40
            yield chunk

    monkeypatch.setattr(assemble_mod, "_chunks", chunks)
    with pytest.raises(MigrateError, match=f"the bytes of '{victim}' differ from the value computed from"):
        migrate(src, str(tmp_path / "m"), RULES)
    assert any(prefix.endswith(".preview") and key == victim for prefix, key, _ in reads)
    assert not any(key == victim for prefix, key, _ in reads if not prefix.endswith(".preview")
                   and "/.tmp-migrate-" in prefix)
    assert not list(tmp_path.glob("m*"))


def test_an_index_that_moved_a_tensor_since_the_preview_is_refused(src, tmp_path, reads, monkeypatch):
    """The finished index must locate each early-checked tensor where the preview did: here it points
    one of them at another tensor's bytes of the same size (TensorFlow would read those without complaint)."""
    victim, other = "big/2", "big/4"
    assert {victim, other} < _early(src)[0]
    real = bundle_writer.BundleWriter.finish

    def finish(self):
        a, b = self._entries[victim], self._entries[other]
        a.offset, a.crc32c = b.offset, b.crc32c
        return real(self)

    monkeypatch.setattr(bundle_writer.BundleWriter, "finish", finish)
    with pytest.raises(MigrateError, match=f"locates '{victim}' elsewhere than where it was read back"):
        migrate(src, str(tmp_path / "m"), RULES)


def test_without_hard_links_verification_reads_the_finished_checkpoint(src, tmp_path, reads, monkeypatch):
    def refused(a, b):
        raise OSError(errno.EPERM, "Operation not permitted", b)

    monkeypatch.setattr(bundle_writer.os, "link", refused)
    res = migrate(src, str(tmp_path / "m"), RULES)
    early, _ = _early(src)
    assert res.verified == "sample" and not any(prefix.endswith(".preview") for prefix, _, _ in reads)
    assert {key for prefix, key, _ in reads if "/.tmp-migrate-" in prefix} == early


def test_the_sampled_tensors_computed_come_right_after_the_largest(src, tmp_path, reads):
    """In the new data file: the largest tensor, then the sampled ones computed here (largest first), then the
    rest largest first; at the "full" level, every tensor largest first."""
    from graphsurgeon._src.storage import bundle

    early, largest = _early(src)
    for level in ("sample", "full"):
        migrate(src, str(tmp_path / level), RULES, verify=level)
        _, entries = bundle.read_index(str(tmp_path / level))
        order = sorted(entries, key=lambda k: entries[k].offset)
        size = {k: entries[k].size for k in entries}
        if level == "sample":
            assert order[0] == largest and set(order[1:1 + len(early)]) == early
            assert [size[k] for k in order[1:1 + len(early)]] == sorted((size[k] for k in early), reverse=True)
            assert [size[k] for k in order[1 + len(early):]] == sorted((size[k] for k in order[1 + len(early):]),
                                                                      reverse=True)
        else:
            assert [size[k] for k in order] == sorted(size.values(), reverse=True)


def test_the_finished_and_preview_indexes_are_each_parsed_once(src, tmp_path, reads, monkeypatch):
    """The check that the finished index locates each early-checked tensor where the preview's did compares the
    indexes as the readers of the two checkpoints read them (it read both again)."""
    from graphsurgeon._src.storage import bundle

    real, parsed = bundle.read_index, []

    def read_index(prefix):
        parsed.append(prefix)
        return real(prefix)

    monkeypatch.setattr(bundle, "read_index", read_index)
    assert migrate(src, str(tmp_path / "m"), RULES).verified == "sample"
    written = [p for p in parsed if "/.tmp-migrate-" in p]
    assert len(written) == 2 and len(set(written)) == 2 and any(p.endswith(".preview") for p in written)
