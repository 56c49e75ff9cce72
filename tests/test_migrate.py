"""Checkpoint migration: renames, presets, casts, merges, V1 -> V2; the source never changes."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src.migrate import Rules, migrate
from graphsurgeon._src.storage import bundle

from helpers import ROOT, ckpt, cli, tree_hash

tf1 = tf.compat.v1


def save_vars(prefix, values, v1=False):
    """A checkpoint holding ``values`` ({name: array}) written by tf.train.Saver."""
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    g = tf.Graph()
    with g.as_default():
        vs = [tf1.Variable(v, name=n, use_resource=False) for n, v in values.items()]
        saver = tf1.train.Saver(vs, write_version=tf1.train.SaverDef.V1 if v1 else tf1.train.SaverDef.V2)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            return saver.save(s, prefix, write_meta_graph=False)


def nothing_at(prefix):
    return not glob.glob(prefix + "*")


def test_rename_only_links_the_data_and_verifies(seed004_adam, tmp_path):
    prefix, _, _ = seed004_adam
    before = tree_hash(prefix)
    res = migrate(prefix, str(tmp_path / "out/m"), Rules(rename=[(r"^hidden(\d)/", r"layer\1/")]))
    assert res.verified
    src, new = ckpt(prefix), ckpt(str(tmp_path / "out/m"))
    assert res.mapping[prefix]["hidden1/weights/Adam"] == "layer1/weights/Adam"
    for old, name in res.mapping[prefix].items():
        assert new[name].tobytes() == src[old].tobytes() and new[name].dtype == src[old].dtype
    assert os.path.samefile(glob.glob(prefix + ".data-*")[0], glob.glob(str(tmp_path / "out/m.data-*"))[0])
    assert tree_hash(prefix) == before


def test_optimizer_slot_preset_on_an_adam_checkpoint(seed004_adam, tmp_path):
    prefix, _, _ = seed004_adam
    res = migrate(prefix, str(tmp_path / "m"), Rules(presets=["optimizer-slots"]))
    assert sorted(ckpt(str(tmp_path / "m"))) == sorted(
        f"{l}/{p}" for l in ("hidden1", "hidden2", "hidden3", "output") for p in ("weights", "biases"))
    assert res.dropped == sorted(set(ckpt(prefix)) - set(ckpt(str(tmp_path / "m"))))  # the slots, named


def test_v1_to_v2(tmp_path):
    values = {"a/w": np.arange(12, dtype=np.float32).reshape(3, 4), "a/b": np.ones(4, np.float64),
              "step": np.array(7, np.int64)}
    p = save_vars(str(tmp_path / "v1" / "model.ckpt"), values, v1=True)
    assert not os.path.exists(p + ".index")  # a V1 checkpoint: one file
    before = tree_hash(p)
    migrate(p, str(tmp_path / "v2/model"))
    assert os.path.exists(str(tmp_path / "v2/model.index"))
    got = ckpt(str(tmp_path / "v2/model"))
    for n, v in values.items():
        assert got[n].dtype == v.dtype and got[n].tobytes() == v.tobytes()
    assert tree_hash(p) == before


def test_old_rnn_names_restore_into_todays_graph(tmp_path):
    """Names as TF 1.0 wrote them; after --preset rnn-cell-names they restore by name into a graph
    whose variables carry the names TF 1.2+ cells create. Dense layers keep their names."""
    rng = np.random.default_rng(0)
    old = {
        "rnn/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Matrix": rng.normal(size=(8, 16)).astype(np.float32),
        "rnn/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Bias": rng.normal(size=(16,)).astype(np.float32),
        "rnn/MultiRNNCell/Cell1/BasicLSTMCell/Linear/Matrix": rng.normal(size=(8, 16)).astype(np.float32),
        "rnn/MultiRNNCell/Cell1/BasicLSTMCell/Linear/Bias": rng.normal(size=(16,)).astype(np.float32),
        "enc/LSTMCell/W_0": rng.normal(size=(5, 8)).astype(np.float32),
        "enc/LSTMCell/W_1": rng.normal(size=(5, 8)).astype(np.float32),
        "enc/LSTMCell/B": rng.normal(size=(8,)).astype(np.float32),
        "enc/LSTMCell/W_F_diag": rng.normal(size=(2,)).astype(np.float32),
        "enc/LSTMCell/W_P_0": rng.normal(size=(2, 2)).astype(np.float32),
        "dec/GRUCell/Gates/Linear/Matrix": rng.normal(size=(6, 4)).astype(np.float32),
        "dec/GRUCell/Candidate/Linear/Bias": rng.normal(size=(2,)).astype(np.float32),
        "cls/gru_cell/weights": rng.normal(size=(3, 3)).astype(np.float32),  # TF 1.1 form
        "softmax/weights": rng.normal(size=(16, 3)).astype(np.float32),
        "softmax/biases": rng.normal(size=(3,)).astype(np.float32),
    }
    p = save_vars(str(tmp_path / "old/model.ckpt"), old)
    res = migrate(p, str(tmp_path / "new/model"), Rules(presets=["rnn-cell-names"]))
    expected = {
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel", "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias",
        "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel", "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias",
        "enc/lstm_cell/kernel/part_0", "enc/lstm_cell/kernel/part_1", "enc/lstm_cell/bias",
        "enc/lstm_cell/w_f_diag", "enc/lstm_cell/projection/kernel", "dec/gru_cell/gates/kernel",
        "dec/gru_cell/candidate/bias", "cls/gru_cell/kernel", "softmax/weights", "softmax/biases"}
    assert set(res.mapping[p].values()) == expected
    g = tf.Graph()
    with g.as_default():
        for name in sorted(expected):
            tf1.get_variable(name, shape=old[{v: k for k, v in res.mapping[p].items()}[name]].shape)
    m = gs.restore(str(tmp_path / "new/model"), graph=g)
    assert set(m.status.values()) == {"restored"} and len(m.status) == len(expected)
    vals = m.values()
    for o, n in res.mapping[p].items():
        assert vals[n].tobytes() == old[o].tobytes()
    m.close()


def test_cast_streams_and_verifies_values(seed004, tmp_path):
    prefix, _, _ = seed004
    res = migrate(prefix, str(tmp_path / "h"), Rules(cast=[("hidden*", "float16")], drop=["global_step"]))
    got, src = ckpt(str(tmp_path / "h")), ckpt(prefix)
    assert res.cast == sorted(f"hidden{i}/{p}" for i in (1, 2, 3) for p in ("biases", "weights"))
    assert got["hidden1/weights"].dtype == np.float16
    assert got["hidden1/weights"].tobytes() == src["hidden1/weights"].astype(np.float16).tobytes()
    assert got["output/weights"].tobytes() == src["output/weights"].tobytes()


def test_merge_under_prefixes_then_split_back_bit_identical(seed004, seed004_adam, tmp_path):
    a, _, _ = seed004
    b, _, _ = seed004_adam
    ha, hb = tree_hash(a), tree_hash(b)
    merged = str(tmp_path / "merged/m")
    res = migrate(a, merged, Rules(rename=[("^", "A/")], merge=[(b, "B/")]))
    assert len(res.mapping) == 2
    both = ckpt(merged)
    assert len(both) == len(ckpt(a)) + len(ckpt(b))
    for src, scope in ((a, "A"), (b, "B")):
        out = str(tmp_path / f"split/{scope}")
        migrate(merged, out, Rules(keep=[scope], presets=[f"strip-scope={scope}"]))
        back, orig = ckpt(out), ckpt(src)
        assert sorted(back) == sorted(orig)
        for n in orig:
            assert back[n].dtype == orig[n].dtype and back[n].tobytes() == orig[n].tobytes(), n
    assert tree_hash(a) == ha and tree_hash(b) == hb


def test_merge_clash_is_an_error(seed004, tmp_path):
    a, _, _ = seed004
    with pytest.raises(gs.MigrateError, match="twice: the same checkpoint is given as the source and as a merge"):
        migrate(a, str(tmp_path / "m"), Rules(merge=[(a, "")]))
    assert nothing_at(str(tmp_path / "m"))


def test_a_checkpoint_merged_into_itself_keeps_both_mappings(seed004, tmp_path, capfd):
    """The mapping was keyed by path alone: a source merged again lost the first one's names (the
    table and --json showed half the tensors written, and '-- N tensors' counted that half)."""
    a, _, _ = seed004
    n = len(ckpt(a))
    res = migrate(a, str(tmp_path / "m"), Rules(merge=[(a, "copy/"), (a, "again/")]), dry_run=True)
    assert list(res.mapping) == [a, f"{a}:copy/", f"{a}:again/"]
    assert res.mapping[a]["output/weights"] == "output/weights"
    assert res.mapping[f"{a}:copy/"]["output/weights"] == "copy/output/weights"
    code, out, err = cli(capfd, "migrate", a, tmp_path / "m2", "--merge", f"{a}:copy/", "--quiet")
    assert code == 0, err
    assert f"# from {a}\n" in out and f"# from {a}:copy/\n" in out
    assert f"-- {2 * n} tensors written to" in out and len(ckpt(str(tmp_path / "m2"))) == 2 * n
    # it said "comes from both A and A:;" of one checkpoint given twice
    said = (f"comes from {a} twice: the same checkpoint is given as the source and as a merge without a prefix; "
            "give that merge a prefix, or add a rule that renames one of them")
    with pytest.raises(gs.MigrateError, match=f"^'[^']+' {re.escape(said)}$"):
        migrate(a, str(tmp_path / "m3"), Rules(merge=[(a, "")]))
    said = f"comes from {a} twice: the same checkpoint is given twice as a merge under p/; give that merge another prefix"
    with pytest.raises(gs.MigrateError, match=re.escape(said)):
        migrate(a, str(tmp_path / "m3"), Rules(merge=[(a, "p/"), (a, "p/")]))
    b = save_vars(str(tmp_path / "b/m"), ckpt(a))
    with pytest.raises(gs.MigrateError, match=f"comes from both {re.escape(a)} and {re.escape(b)}; give that merge a"):
        migrate(a, str(tmp_path / "m3"), Rules(merge=[(b, "")]))
    code, _, err = cli(capfd, "migrate", a, tmp_path / "m3", "--merge", a)
    assert code == 2 and f"comes from {a} twice: the same checkpoint is given as the source and as a merge without a " \
        "prefix; give that merge a prefix" in err


def test_dry_run_writes_nothing(seed004, tmp_path):
    prefix, _, _ = seed004
    res = migrate(prefix, str(tmp_path / "d"), Rules(map_scope=[("output/", "old_output/")]), dry_run=True)
    assert res.mapping[prefix]["output/weights"] == "old_output/weights" and not res.verified
    assert nothing_at(str(tmp_path / "d")) and os.listdir(tmp_path) == []


def test_dry_run_writes_nothing_not_even_directories(tmp_path):
    """A V1 source and --to tf2 used to write temporary bundles; a new directory was created."""
    p = save_vars(str(tmp_path / "v1" / "model.ckpt"), {"w": np.ones((2, 3), np.float32)}, v1=True)
    before = sorted(os.listdir(tmp_path / "v1"))
    res = migrate(p, str(tmp_path / "new" / "dir" / "m"), to="tf2", dry_run=True,
                  rules=Rules(cast=[("w", "float16")]))
    assert res.mapping[p] == {"w": "vars/w/.ATTRIBUTES/VARIABLE_VALUE"} and res.cast == [res.mapping[p]["w"]]
    assert sorted(os.listdir(tmp_path)) == ["v1"] and sorted(os.listdir(tmp_path / "v1")) == before


@pytest.mark.parametrize("rules,needle", [
    (Rules(rename=[("^nothing/", "x/")]), re.escape("rename=('^nothing/', 'x/') matches no tensor")),
    (Rules(map_scope=[("hiden1/", "x/")]), re.escape("map_scope=('hiden1/', 'x/') matches no tensor; scopes: hidden1")),
    (Rules(rename=[("^hidden[12]/", "same/")]), "would both be named 'same/"),
    (Rules(cast=[("global_step", "float16")]),
     re.escape("cast=('global_step', 'float16'): 'global_step' is int64; only float tensors are cast")),
    (Rules(cast=[("hidden9", "float16")]), "cast: pattern 'hidden9' matches no tensor; closest scopes: hidden3, hidden2, hidden1"),
    (Rules(drop=["hidden9"]), "drop: pattern 'hidden9' matches no tensor"),
    (Rules(keep=["hidden9"]), "keep: pattern 'hidden9' matches no tensor"),
])
def test_rule_errors_leave_nothing(seed004, tmp_path, rules, needle):
    prefix, _, _ = seed004
    with pytest.raises((gs.MigrateError, gs.PatternError), match=needle):
        migrate(prefix, str(tmp_path / "m"), rules)
    assert nothing_at(str(tmp_path / "m")) and os.listdir(tmp_path) == []


def test_destination_equal_to_source_is_refused(seed004, tmp_path):
    prefix, _, _ = seed004
    d = tmp_path / "copy"
    shutil.copytree(os.path.dirname(prefix), d)
    p = str(d / os.path.basename(prefix))
    before = tree_hash(p)
    with pytest.raises(gs.MigrateError, match="is a source checkpoint"):
        migrate(p, p, Rules(drop=["output"]))
    migrate(p, str(tmp_path / "other"), Rules(drop=["output"]))
    with pytest.raises(gs.MigrateError, match="already exists"):
        migrate(p, str(tmp_path / "other"), Rules(drop=["hidden1"]))
    assert tree_hash(p) == before


@pytest.mark.parametrize("damage", ["truncate-index", "truncate-data", "missing-data"])
def test_damaged_sources_leave_nothing(seed004, tmp_path, damage):
    prefix, _, _ = seed004
    d = tmp_path / "src"
    shutil.copytree(os.path.dirname(prefix), d)
    p = str(d / os.path.basename(prefix))
    data = glob.glob(p + ".data-*")[0]
    if damage == "truncate-index":
        raw = open(p + ".index", "rb").read()
        open(p + ".index", "wb").write(raw[:len(raw) // 2])
        needle = "index"
    elif damage == "truncate-data":
        raw = open(data, "rb").read()
        open(data, "wb").write(raw[:len(raw) // 2])
        needle = "truncated"  # "data shard is truncated", or the first tensor past its end
    else:
        os.remove(data)
        needle = "data shard is missing"
    with pytest.raises(gs.CorruptCheckpointError, match=needle):
        migrate(p, str(tmp_path / "out/m"))
    assert not os.path.exists(tmp_path / "out")  # not even the destination's directory


def test_restore_accepts_migration_rules(seed004):
    """restore() applies the same name rules: a checkpoint's 'hidden1/...' restores into 'enc/h1/...'."""
    prefix, _, _ = seed004
    from legacy_models import fully_connected

    g = tf.Graph()
    with g.as_default():
        X = tf1.placeholder(tf.float32, (None, 500))
        fully_connected(X, 300, "enc/h1")
    m = gs.restore(prefix, graph=g, rules=Rules(rename=[(r"^hidden1/", "enc/h1/")]))
    assert m.status == {"enc/h1/weights": "restored", "enc/h1/biases": "restored"}
    assert m.values(["enc/h1/weights"])["enc/h1/weights"].tobytes() == ckpt(prefix)["hidden1/weights"].tobytes()
    m.close()



def test_cli_migrate_diff_and_errors(seed004_adam, tmp_path, capfd):
    prefix, _, _ = seed004_adam
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "m", "--preset", "optimizer-slots", "--map-scope",
                         "output/=head/", "--dry-run", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["dry_run"] is True and r["mapping"][prefix]["output/weights"] == "head/weights"
    assert r["data"] == "would be written" and r["files"] == [] and r["verified"] == "" and os.listdir(tmp_path) == []
    res = migrate(prefix, str(tmp_path / "m"), Rules(map_scope=[("output/", "head/")]), dry_run=True)
    assert res.dry_run is True and res.data == "would be linked" and res.files == [] and os.listdir(tmp_path) == []
    slots = sorted(n for n in ckpt(prefix) if n.endswith(("/Adam", "/Adam_1")) or "_power" in n) + ["global_step"]
    assert r["dropped"] == sorted(slots) and len(slots) == 19  # every dropped tensor, named
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "m", "--preset", "optimizer-slots", "--dry-run")
    lines = out.splitlines()
    at = lines.index(f"# dropped from {prefix}: 19 tensors")
    assert [l.split()[0] for l in lines[at + 1:at + 20]] == sorted(slots) and lines[at + 1].endswith("  (dropped)")
    assert lines[-1].startswith("-- 8 tensors (19 dropped); dry run, nothing written")
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "m", "--preset", "optimizer-slots", "--map-scope",
                         "output/=head/")
    assert code == 0, err
    assert f"-- 8 tensors (19 dropped) written to {tmp_path / 'm'}; verified against the source (sample)" in out
    assert "-- data: a new data file holding only these tensors" in out
    code, out, _ = cli(capfd, "diff", prefix, tmp_path / "m", "--json")
    d = json.loads(out)
    assert d["renamed"] == {"output/biases": "head/biases", "output/weights": "head/weights"}
    assert "global_step" in d["removed"] and d["changed"] == {}
    for args, needle in [(("--rename", "^nope/=x/"), "--rename '^nope/=x/' matches no tensor"),
                         (("--cast", "global_step=float16"), "--cast 'global_step=float16': 'global_step' is int64"),
                         (("--drop", "hiden1"), "--drop: pattern 'hiden1' matches no tensor; closest scopes: hidden1"),
                         (("--preset", "strip-scope="), "--preset strip-scope=: strip-scope=NAME needs a scope name"),
                         (("--from", "tf2"), "not a TF2 object-based checkpoint (--from tf2 reads only those)")]:
        code, out, err = cli(capfd, "migrate", prefix, tmp_path / "m2", *args)
        assert code == 2 and err.count("\n") == 1 and needle in err, (args, err)
    with pytest.raises(SystemExit) as exit_:
        cli(capfd, "migrate", prefix, tmp_path / "m3", "--link", "--copy")
    assert exit_.value.code == 2 and "not allowed with argument --link" in capfd.readouterr().err
    assert nothing_at(str(tmp_path / "m3"))


def test_cli_levels_and_data_modes(seed004_adam, tmp_path, capfd):
    prefix, _, _ = seed004_adam
    src_data = glob.glob(prefix + ".data-*")[0]
    runs = {"full": ("--verify", "full"), "none": ("--no-verify",), "link": ("--link",), "copy": ("--copy",)}
    for name, flags in runs.items():
        code, out, err = cli(capfd, "migrate", prefix, tmp_path / name, "--drop", "global_step", "--json", *flags)
        assert code == 0, err
        r = json.loads(out)
        data = glob.glob(str(tmp_path / name) + ".data-*")[0]
        assert r["verified"] == {"full": "full", "none": ""}.get(name, "sample")
        assert r["data"] == ("linked" if name == "link" else "written") and r["dry_run"] is False
        assert os.path.samefile(data, src_data) == (name == "link")  # --link keeps the dropped bytes
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "renamed", "--map-scope", "hidden1/=h1/")
    assert code == 0 and "-- data: hard links to the source's data files, a new index" in out
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "copied", "--map-scope", "hidden1/=h1/", "--copy")
    assert code == 0 and not os.path.samefile(glob.glob(str(tmp_path / "copied") + ".data-*")[0], src_data)


def test_data_line_says_what_was_written(seed004_adam, tmp_path, capfd):
    """'-- data: hard links …, a new index' was said of a V1 source (nothing can be linked: one new data file
    was written), of --link with casts and of --to tf2 (a new data file beside the links), and an empty
    result was written (a data file of 0 bytes); a data file alone at the destination was called its .index."""
    prefix, _, _ = seed004_adam
    v1 = save_vars(str(tmp_path / "v1" / "model.ckpt"), {"w": np.ones((2, 3), np.float32)}, v1=True)
    code, out, err = cli(capfd, "migrate", v1, tmp_path / "from_v1", "--json")
    assert code == 0 and json.loads(out)["data"] == "written"
    code, out, err = cli(capfd, "migrate", v1, tmp_path / "from_v1_text", "--link")  # nothing to link
    assert code == 0 and out.splitlines()[-1] == "-- data: a new data file holding only these tensors"
    floats = save_vars(str(tmp_path / "v2" / "model.ckpt"), {"w": np.ones((2, 3), np.float32), "b": np.zeros(3)})
    code, out, err = cli(capfd, "migrate", floats, tmp_path / "all_cast", "--link", "--cast", "**=float16", "--json")
    assert code == 0 and json.loads(out)["data"] == "written"  # every tensor cast: nothing copied, nothing to link
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "linked_cast", "--link", "--cast", "hidden1=float16")
    assert code == 0 and out.splitlines()[-1] == (
        "-- data: hard links to the source's data files, a new data file holding the 6 tensors cast, a new index")
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "tf2", "--to", "tf2", "--dry-run")
    assert code == 0 and out.splitlines()[-1].endswith(
        "(would write hard links to the source's data files, a new data file holding the object graph and save "
        "counter of --to tf2, a new index)")
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "empty", "--drop", "**")
    assert code == 2 and out == "" and nothing_at(str(tmp_path / "empty"))
    assert err.strip() == f"graphsurgeon migrate: error: {prefix}: the rules leave none of its tensors; there is " \
        "nothing to write"
    open(str(tmp_path / "taken.data-00000-of-00001"), "w").close()
    code, out, err = cli(capfd, "migrate", prefix, tmp_path / "taken")
    assert code == 2 and "already exists (taken.data-00000-of-00001 is there)" in err


def test_tf1_to_tf2_to_tf1_round_trip_bit_identical(seed004, tmp_path):
    prefix, _, _ = seed004
    src = ckpt(prefix)
    res = migrate(prefix, str(tmp_path / "tf2/m"), to="tf2")
    assert res.mapping[prefix]["hidden1/weights"] == "vars/hidden1.Sweights/.ATTRIBUTES/VARIABLE_VALUE"
    variables = {n: tf.Variable(tf.zeros(v.shape, v.dtype)) for n, v in src.items()}
    tf.train.Checkpoint(vars=variables).restore(str(tmp_path / "tf2/m")).assert_consumed()
    for n, v in src.items():
        assert variables[n].numpy().tobytes() == v.tobytes()
    migrate(str(tmp_path / "tf2/m"), str(tmp_path / "tf1/m"), from_format="tf2")
    back = ckpt(str(tmp_path / "tf1/m"))
    assert sorted(back) == sorted(src)
    for n in src:
        assert back[n].dtype == src[n].dtype and back[n].tobytes() == src[n].tobytes()


def test_tf2_saved_model_variables_to_tf1_names(tmp_path):
    module = tf.Module()
    module.dense = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="dense/kernel")
    module.bias = tf.Variable(np.ones(3, np.float32), name="dense/bias")
    module.f = tf.function(lambda x: tf.matmul(x, module.dense) + module.bias,
                           input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "sm"))
    res = migrate(str(tmp_path / "sm"), str(tmp_path / "tf1/m"), from_format="tf2")
    got = ckpt(str(tmp_path / "tf1/m"))
    assert sorted(got) == ["dense/bias", "dense/kernel"]
    assert got["dense/kernel"].tobytes() == np.arange(6, dtype=np.float32).reshape(2, 3).tobytes()
    assert set(res.mapping[str(tmp_path / "sm")].values()) == {"dense/bias", "dense/kernel"}


def test_a_graph_without_variable_values_is_refused_in_words_true_of_each_kind(tmp_path):
    """A frozen .pb, a .meta without its checkpoint and a TF1 SavedModel without variables/ reach one
    refusal (it said "a frozen graph or a bare meta graph" of the SavedModel too), from migrate and diff."""
    with tf.Graph().as_default() as g, tf1.Session() as s:
        w = tf1.Variable(np.ones(3, np.float32), name="w")
        s.run(w.initializer)
        builder = tf1.saved_model.Builder(str(tmp_path / "sm"))
        builder.add_meta_graph_and_variables(s, ["serve"])
        builder.save()
        tf1.train.export_meta_graph(str(tmp_path / "bare.meta"), graph=g)
    shutil.rmtree(tmp_path / "sm" / "variables")
    with tf.Graph().as_default() as g:
        tf.constant(np.ones(3, np.float32), name="w")
    (tmp_path / "frozen.pb").write_bytes(g.as_graph_def().SerializeToString())
    other = save_vars(str(tmp_path / "ok/m"), {"w": np.ones(3, np.float32)})
    for name in ("frozen.pb", "bare.meta", "sm"):
        path = str(tmp_path / name)
        said = re.escape(f"{path}: holds no variable values beside its graph (a frozen graph, a meta graph without "
                         "its checkpoint or a SavedModel without a checkpoint in variables/)")
        with pytest.raises(gs.MigrateError, match=f"^{said}$"):
            migrate(path, str(tmp_path / "out" / name))
        with pytest.raises(gs.MigrateError, match=f"^{said}$"):
            gs.diff(path, other)
    assert nothing_at(str(tmp_path / "out"))


def test_partitions_stay_together_and_join_on_request(tmp_path):
    rng = np.random.default_rng(0)
    parts = {f"emb/part_{k}": rng.normal(size=(3 + k, 4)).astype(np.float32) for k in range(3)}
    p = save_vars(str(tmp_path / "src/m.ckpt"), {**parts, "dense/w": np.ones((4, 2), np.float32)})
    res = migrate(p, str(tmp_path / "renamed"), Rules(map_scope=[("emb/", "embedding/")]))
    assert {res.mapping[p][n] for n in parts} == {f"embedding/part_{k}" for k in range(3)}
    res = migrate(p, str(tmp_path / "joined"), merge_partitions=True, rules=Rules(cast=[("emb", "float16")]))
    got = ckpt(str(tmp_path / "joined"))
    assert sorted(got) == ["dense/w", "emb"]
    expected = np.concatenate([parts[f"emb/part_{k}"] for k in range(3)]).astype(np.float16)
    assert got["emb"].tobytes() == expected.tobytes() and res.mapping[p]["emb/part_2"] == "emb"


def test_merge_partitions_says_when_there_is_nothing_to_join(tmp_path, capfd):
    """--merge-partitions on a checkpoint without name/part_N tensors wrote it unchanged and said nothing."""
    rng = np.random.default_rng(0)
    parts = {f"emb/part_{k}": rng.normal(size=(3, 4)).astype(np.float32) for k in range(2)}
    plain = save_vars(str(tmp_path / "plain/m.ckpt"), {"dense/w": np.ones((4, 2), np.float32)})
    split = save_vars(str(tmp_path / "split/m.ckpt"), {**parts, "dense/w": np.ones((4, 2), np.float32)})
    said = "-- --merge-partitions: no partitioned tensors (name/part_0, name/part_1, ...) to join"
    for src, says in ((plain, True), (split, False)):
        code, out, err = cli(capfd, "migrate", src, str(tmp_path / "out" / os.path.basename(os.path.dirname(src))),
                             "--merge-partitions", "--dry-run")
        assert code == 0, err
        assert (said in out.splitlines()) is says
        code, out, err = cli(capfd, "migrate", src, str(tmp_path / "out" / os.path.basename(os.path.dirname(src))),
                             "--merge-partitions", "--dry-run", "--json")
        assert code == 0 and json.loads(out)["joined"] == ([] if says else ["emb"])  # --json says it too
    code, out, err = cli(capfd, "migrate", split, str(tmp_path / "out" / "m"), "--dry-run", "--json")
    assert json.loads(out)["joined"] is None  # not asked


def test_diff_reports_dtype_changes_and_value_changes(seed004, tmp_path):
    prefix, _, _ = seed004
    migrate(prefix, str(tmp_path / "half"), Rules(cast=[("hidden1", "float16")]))
    d = gs.diff(prefix, str(tmp_path / "half"))
    assert d["dtype_changed"] == {"hidden1/biases": ["float32", "float16"], "hidden1/weights": ["float32", "float16"]}
    assert d["added"] == d["removed"] == [] and d["changed"] == {}
    vals = ckpt(prefix)
    vals["output/biases"] = vals["output/biases"] + 0.25
    other = save_vars(str(tmp_path / "other/m.ckpt"), vals)
    d = gs.diff(prefix, other)
    assert list(d["changed"]) == ["output/biases"] and d["changed"]["output/biases"] == pytest.approx(0.25, abs=1e-6)


def test_diff_does_not_pair_tensors_of_one_content_it_cannot_tell_apart(tmp_path, capfd):
    """Two zero biases of one shape renamed: diff paired them in sorted-name order (a/bias -> x/bias, b/bias ->
    y/bias), reported as fact; it now pairs a removed and an added tensor only when each is the one of its
    contents, names the others as ambiguous (--json's 'ambiguous', '?' in the text), and the text ends with
    the counts of its keys."""
    zero = np.zeros(4, np.float32)
    a = save_vars(str(tmp_path / "a/m"), {"a/bias": zero, "b/bias": zero, "c/bias": np.zeros(3, np.float32),
                                          "k": np.arange(3, dtype=np.float32), "w": np.ones(2, np.float32)})
    b = save_vars(str(tmp_path / "b/m"), {"x/bias": zero, "y/bias": zero, "z/bias": np.zeros(3, np.float32),
                                          "k2": np.arange(3, dtype=np.float32), "w": np.full(2, 3, np.float32),
                                          "new": np.zeros(3, np.float32)})
    d = gs.diff(a, b)
    assert d["renamed"] == {"k": "k2"}
    assert d["ambiguous"] == [{"removed": ["a/bias", "b/bias"], "added": ["x/bias", "y/bias"]},
                              {"removed": ["c/bias"], "added": ["new", "z/bias"]}]
    assert d["added"] == ["new", "x/bias", "y/bias", "z/bias"] and d["removed"] == ["a/bias", "b/bias", "c/bias"]
    code, out, err = cli(capfd, "diff", a, b)
    assert code == 0, err
    assert out.splitlines()[-4:] == [
        "? a/bias, b/bias -> x/bias, y/bias  (all of one dtype, shape and crc32c: not paired, which became which "
        "cannot be told)",
        "? c/bias -> new, z/bias  (all of one dtype, shape and crc32c: not paired, which became which cannot be told)",
        "! w  max abs difference 2.0",
        "-- 4 added, 3 removed, 1 renamed, 1 changed (of these, 3 removed and 4 added may be renames diff cannot "
        "pair: ?)"]
    assert "~ k -> k2  (same dtype, shape and crc32c)" in out.splitlines()
    assert json.loads(cli(capfd, "diff", a, b, "--json")[1])["ambiguous"] == d["ambiguous"]
    assert cli(capfd, "diff", a, a)[1] == "no differences\n"
    migrate(a, str(tmp_path / "half"), Rules(cast=[("w", "float16")]))
    assert cli(capfd, "diff", a, tmp_path / "half")[1].splitlines() == [
        "! w  dtype float32 -> float16", "-- 0 added, 0 removed, 0 renamed, 0 changed, 1 dtype changed"]


def test_inspect_marks_partitions_slots_and_step(tmp_path):
    p = save_vars(str(tmp_path / "m.ckpt"), {"emb/part_0": np.ones((2, 2), np.float32),
                                             "w/Adam": np.ones(2, np.float32), "global_step": np.array(3, np.int64),
                                             "w": np.ones(2, np.float32)})
    r = gs.inspect(p)
    assert {v["name"]: v["kind"] for v in r["variables"]} == {
        "emb/part_0": "partition", "w/Adam": "optimizer", "global_step": "optimizer", "w": "model"}
    assert r["scopes"]["w"] == {"variables": 2, "bytes": 16, "optimizer_bytes": 8}


def test_tf1_partitioned_variables_saved_in_slices_follow_their_renames(tmp_path):
    """A PartitionedVariable saved by a TF1 Saver is stored as slices under binary keys."""
    g = tf.Graph()
    with g.as_default():
        with tf1.variable_scope("emb", partitioner=tf1.fixed_size_partitioner(3), use_resource=False):
            tf1.get_variable("table", [10, 4], initializer=tf1.random_normal_initializer(seed=1))
        tf1.get_variable("w", [2], use_resource=False)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            p = tf1.train.Saver().save(s, str(tmp_path / "src/m.ckpt"))
    before = tree_hash(p)
    res = migrate(p, str(tmp_path / "out/m"), Rules(map_scope=[("emb/", "embedding/")]))
    assert res.mapping[p] == {"emb/table": "embedding/table", "w": "w"}
    assert ckpt(str(tmp_path / "out/m"))["embedding/table"].tobytes() == ckpt(p)["emb/table"].tobytes()
    migrate(p, str(tmp_path / "out/kept"), Rules(keep=["w"]))
    assert sorted(ckpt(str(tmp_path / "out/kept"))) == ["w"]
    with pytest.raises(gs.MigrateError, match="saved in slices"):
        migrate(p, str(tmp_path / "out/half"), Rules(cast=[("emb", "float16")]))
    d = gs.diff(p, str(tmp_path / "out/m"))
    assert d["removed"] == ["emb/table"] and d["added"] == ["embedding/table"]
    assert tree_hash(p) == before


def test_destination_directory_takes_the_source_name(seed004, tmp_path):
    prefix, _, _ = seed004
    (tmp_path / "outdir").mkdir()
    res = migrate(prefix, str(tmp_path / "outdir"), Rules(drop=["global_step"]))
    assert res.destination == str(tmp_path / "outdir" / os.path.basename(prefix))
    assert os.path.exists(res.destination + ".index")
    with pytest.raises(gs.MigrateError, match="is a source checkpoint"):
        migrate(prefix, os.path.dirname(prefix))


STALLED = r"""
import sys, time
sys.path.insert(0, {root!r})
from graphsurgeon._src.migrate import run
def stall(prefix, tensors, level, *ahead):  # killed while the staged copy waits for verification
    print(prefix, flush=True)
    time.sleep(120)
run.verify_bundle = stall
run.migrate(sys.argv[1], sys.argv[2], link=True)
"""


def test_a_killed_migration_is_swept_by_the_next_run(seed004, tmp_path):
    prefix, _, _ = seed004
    before = tree_hash(prefix)
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", STALLED.format(root=ROOT), prefix, str(out / "m")],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        staged = child.stdout.readline().strip()
        staging = os.path.dirname(staged)
        assert os.path.basename(staging).startswith(".tmp-migrate-")
        assert os.path.samefile(glob.glob(staged + ".data-*")[0], glob.glob(prefix + ".data-*")[0])  # a hard link
        other = migrate(prefix, str(out / "other"))  # a run beside a live one leaves it alone
        assert other.swept == [] and os.path.isdir(staging)
        child.kill()
        assert child.wait() == -9
        assert os.path.isdir(staging)  # left behind, holding a hard link to the source
        res = migrate(prefix, str(out / "m"))
        assert res.swept == [staging] and not os.path.exists(staging)
        assert sorted(os.listdir(out)) == sorted(os.path.basename(f) for f in other.files + res.files)
        assert tree_hash(prefix) == before
    finally:
        child.kill()


def test_dropping_optimizer_slots_saves_their_bytes(seed004_adam, tmp_path):
    prefix, _, _ = seed004_adam
    res = migrate(prefix, str(tmp_path / "m"), Rules(presets=["optimizer-slots"]))
    _, entries = bundle.read_index(res.destination)
    kept = sum(e.size for e in entries.values())
    assert res.data == "written" and os.path.getsize(res.files[0]) == kept
    assert kept < os.path.getsize(glob.glob(prefix + ".data-*")[0]) / 2  # Adam keeps two slots per weight
    res = migrate(prefix, str(tmp_path / "linked"), Rules(presets=["optimizer-slots"]), link=True)
    assert res.data == "linked" and os.path.samefile(res.files[0], glob.glob(prefix + ".data-*")[0])


# ../shared beside the clone (CI), or beside the main clone of a git worktree in wt/NAME
REAL_GAN = next((p for p in (os.path.join(ROOT, *[".."] * k, "shared", "realmodels", "gan_chadpro") for k in (1, 2))
                 if os.path.isdir(p)), "")


@pytest.mark.skipif(not os.path.isdir(REAL_GAN), reason="../shared/realmodels is not here (a user's clone)")
def test_real_gan_without_its_adam_slots_is_a_third_of_the_size(tmp_path, capfd):
    before = tree_hash(os.path.join(REAL_GAN, "model.ckpt"))
    code, out, err = cli(capfd, "migrate", REAL_GAN, tmp_path / "gan", "--preset", "optimizer-slots", "--json")
    assert code == 0, err
    r = json.loads(out)
    src, new = ckpt(os.path.join(REAL_GAN, "model.ckpt")), ckpt(r["destination"])
    model = {n for n in src if not n.endswith(("/Adam", "/Adam_1")) and "_power" not in n}
    assert set(new) == model and all(new[n].tobytes() == src[n].tobytes() for n in model)
    assert r["dropped"] == sorted(set(src) - model)
    data = [f for f in r["files"] if ".data-" in f]
    size = os.path.getsize(data[0])
    assert len(data) == 1 and size == sum(src[n].nbytes for n in model)
    assert os.path.getsize(os.path.join(REAL_GAN, "model.ckpt.data-00000-of-00001")) - size > 2_400_000
    assert tree_hash(os.path.join(REAL_GAN, "model.ckpt")) == before


def test_tf2_sources_cast_by_variable_name_and_refuse_shared_names(tmp_path, capfd):
    m = tf.Module()
    m.kernel = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="dense/kernel")
    m.step = tf.Variable(3, name="step")
    path = tf.train.Checkpoint(model=m).write(str(tmp_path / "named"))
    res = migrate(path, str(tmp_path / "half"), Rules(cast=[("dense", "float16")]), from_format="tf2")
    assert res.cast == ["dense/kernel"] and res.mapping[path] == {"dense/kernel": "dense/kernel", "step": "step"}
    got = ckpt(str(tmp_path / "half"))
    assert got["dense/kernel"].dtype == np.float16 and got["dense/kernel"].tobytes() == \
        np.arange(6, dtype=np.float16).reshape(2, 3).tobytes()
    m.a, m.b = tf.Variable(1.0), tf.Variable(2.0)  # unnamed: both "Variable"
    path = tf.train.Checkpoint(model=m).write(str(tmp_path / "unnamed"))
    code, _, err = cli(capfd, "migrate", path, tmp_path / "x", "--from", "tf2")
    assert code == 2 and "2 variables are named 'Variable'" in err and "(--from tf1)" in err
    assert nothing_at(str(tmp_path / "x"))
    res = migrate(path, str(tmp_path / "by_key"))  # by checkpoint key, nothing is lost
    assert {"model/a/.ATTRIBUTES/VARIABLE_VALUE", "model/b/.ATTRIBUTES/VARIABLE_VALUE"} <= set(ckpt(res.destination))


def test_a_strip_scope_preset_that_matches_nothing_is_an_error(seed004, tmp_path, capfd):
    """It was the one rule a typo left silently undone (the names kept their scope)."""
    a, _, _ = seed004
    with pytest.raises(gs.MigrateError, match=r"presets=\['strip-scope=hiden1'\] matches no tensor; scopes: hidden1"):
        migrate(a, str(tmp_path / "m"), Rules(presets=["strip-scope=hiden1"]), dry_run=True)
    res = migrate(a, str(tmp_path / "m"), Rules(map_scope=[("hidden1/", "h/")], presets=["strip-scope=h"]), dry_run=True)
    assert res.mapping[a]["hidden1/weights"] == "weights"  # matched against the names map_scope gives
    code, out, err = cli(capfd, "migrate", a, tmp_path / "m2", "--preset", "strip-scope=hidden1", "--map-scope",
                         "hidden1/=h/")
    assert code == 2 and err.startswith("graphsurgeon migrate: error: --preset strip-scope=hidden1 matches no tensor; "
                                        "scopes: hidden3, hidden2") and err.count("\n") == 1
    assert nothing_at(str(tmp_path / "m2"))


def test_rules_are_checked_before_the_destination(seed004, tmp_path, capfd):
    """A user fixing 'already exists' met the mistyped pattern next (the destination was checked first)."""
    a, _, _ = seed004
    migrate(a, str(tmp_path / "m"), Rules(map_scope=[("hidden1/", "h/")]))
    code, out, err = cli(capfd, "migrate", a, tmp_path / "m", "--drop", "hiden1")
    assert code == 2 and err.startswith("graphsurgeon migrate: error: --drop: pattern 'hiden1' matches no tensor")
    code, out, err = cli(capfd, "migrate", a, tmp_path / "m", "--drop", "hidden1")
    assert code == 2 and "already exists (m.index is there)" in err
