"""Optimizer state in TF2 object-based checkpoints: the keys Keras 3, tf_keras (its optimizers since 2.11
and its legacy ones) and tf.compat.v1 optimizers write under ``tf.train.Checkpoint(model=..., optimizer=...)``
are told from the model's variables by ``inspect`` and dropped by ``--preset optimizer-slots``."""
import json
import os
import subprocess
import sys

import pytest

import graphsurgeon as gs
from graphsurgeon._src.migrate import migrate
from graphsurgeon._src.rules import is_optimizer_state

from helpers import ckpt, cli

# One training step of a two-layer dense model, then tf.train.Checkpoint(model=m, optimizer=opt).save(...),
# in a process of its own (Keras 3 and tf_keras would otherwise share this one).
MAKE = """
import sys
import numpy as np
import tensorflow as tf
kind, path = sys.argv[1:]
keras = __import__("keras" if kind == "keras3" else "tf_keras")
m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
opt = {"keras3": lambda: keras.optimizers.Adam(), "tf_keras": lambda: keras.optimizers.Adam(),
       "tf_keras_legacy": lambda: keras.optimizers.legacy.Adam(), "v1": lambda: tf.compat.v1.train.AdamOptimizer()}[kind]()
with tf.GradientTape() as tape:
    loss = tf.reduce_sum((m(np.ones((2, 3), np.float32)) - 1.0) ** 2)
opt.apply_gradients(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))
print(tf.train.Checkpoint(model=m, optimizer=opt).save(path))
"""
VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"
LAYERS = [f"model/layer_with_weights-{i}/{w}" for i in (0, 1) for w in ("bias", "kernel")]
KERAS3_MODEL = [f"optimizer/_trainable_variables/{i}{VALUE}" for i in range(4)]  # the model's own variables
SLOTS = [f"{layer}/.OPTIMIZER_SLOT/optimizer/{s}{VALUE}" for layer in LAYERS for s in "mv"]
# kind: (the model's keys, the optimizer's keys), as each library writes them (TF 2.21, Keras 3, tf_keras 2.21)
EXPECTED = {
    "keras3": (KERAS3_MODEL, [f"optimizer/_{n}{VALUE}" for n in ("iterations", "learning_rate")]
               + [f"optimizer/_variables/{i}{VALUE}" for i in range(2, 10)]),
    "tf_keras": ([f"{layer}{VALUE}" for layer in LAYERS], [f"optimizer/_{n}{VALUE}" for n in ("iterations", "learning_rate")]
                 + [f"optimizer/_variables/{i}{VALUE}" for i in range(1, 9)]),
    "tf_keras_legacy": ([f"{layer}{VALUE}" for layer in LAYERS], SLOTS + [
        f"optimizer/{n}{VALUE}" for n in ("beta_1", "beta_2", "decay", "iter", "learning_rate")]),
    "v1": ([f"{layer}{VALUE}" for layer in LAYERS], SLOTS + [f"optimizer/beta{i}_power{VALUE}" for i in (1, 2)]),
}
COUNTER = "save_counter" + VALUE


@pytest.fixture(scope="module")
def adam_ckpts(tmp_path_factory):
    """``{kind: checkpoint prefix}``: each kind of optimizer's real checkpoint after one step."""
    root = tmp_path_factory.mktemp("tf2_adam")
    out = {}
    for kind in EXPECTED:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        r = subprocess.run([sys.executable, "-c", MAKE, kind, str(root / kind / "ckpt")], capture_output=True,
                           text=True, env=env, check=True)
        out[kind] = r.stdout.split()[-1]
    return out


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_inspect_tells_a_tf2_checkpoints_optimizer_state_from_its_model(adam_ckpts, kind):
    model, optimizer = EXPECTED[kind]
    report = gs.inspect(adam_ckpts[kind])
    kinds = {v["name"]: v["kind"] for v in report["variables"]}
    assert sorted(kinds) == sorted(model + optimizer + [COUNTER])
    assert sorted(n for n, k in kinds.items() if k == "optimizer") == sorted(optimizer)
    assert sum(s["optimizer_bytes"] for s in report["scopes"].values()) > 0


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_the_optimizer_slots_preset_drops_a_tf2_checkpoints_optimizer_state(adam_ckpts, kind, tmp_path):
    model, optimizer = EXPECTED[kind]
    src = adam_ckpts[kind]
    by_key = migrate(src, str(tmp_path / "keys"), gs.Rules(presets=["optimizer-slots"]))
    assert sorted(by_key.dropped) == sorted(optimizer)
    assert sorted(ckpt(by_key.destination)) == sorted(model + [COUNTER])  # the stale object graph left out
    by_name = migrate(src, str(tmp_path / "names"), gs.Rules(presets=["optimizer-slots"]), from_format="tf2")
    assert sorted(by_name.source_keys[src].values()) == sorted(model)
    assert len(by_name.dropped) == len(optimizer)


def test_the_cli_drops_keras3_optimizer_state_by_variable_name(adam_ckpts, tmp_path, capfd):
    src = adam_ckpts["keras3"]
    code, out, err = cli(capfd, "migrate", src, tmp_path / "m", "--from", "tf2", "--preset", "optimizer-slots",
                         "--dry-run", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert sorted(r["mapping"][src]) == ["sequential/dense/bias", "sequential/dense/kernel",
                                         "sequential/dense_1/bias", "sequential/dense_1/kernel"]
    assert "adam/sequential_dense_kernel_momentum" in r["dropped"] and "adam/iteration" in r["dropped"]


def test_tf2_optimizer_keys_and_what_is_not_one():
    assert is_optimizer_state("optimizer/_variables/3" + VALUE)
    assert is_optimizer_state("net/dense/kernel/.OPTIMIZER_SLOT/optimizer/m" + VALUE)
    for name in ["optimizer/_trainable_variables/0" + VALUE, "model/optimizer/w" + VALUE, "optimizer/w",
                 "vars/w" + VALUE, COUNTER]:
        assert not is_optimizer_state(name), name


def test_a_plans_message_counts_tf2_optimizer_keys_apart_from_slots():
    from graphsurgeon._src.surgery.plan import _state_parts

    names = ["optimizer/_variables/1" + VALUE, "optimizer/_iterations" + VALUE, "w/Adam", "beta1_power"]
    assert _state_parts(names) == "1 Adam slot, 2 TF2 optimizer keys, beta1_power"


SAVED = """
import sys
import numpy as np
import tensorflow as tf
import tf_keras as keras
m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="fc1"), keras.layers.Dense(2, name="logits")])
m.compile(optimizer=keras.optimizers.Adam(), loss="mse")
m.fit(np.ones((8, 3), np.float32), np.ones((8, 2), np.float32), epochs=1, verbose=0)
tf.saved_model.save(m, sys.argv[1])
"""


def test_inspect_of_a_tf2_saved_model_names_the_optimizer_state_its_serving_function_does_not_read(tmp_path, capfd):
    """A tf_keras model compiled and fitted with Adam, saved with tf.saved_model.save: its checkpoint holds the
    optimizer's state beside the weights, which inspect (listing the serving graph's variables) left out unsaid."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", SAVED, str(tmp_path / "sm")], capture_output=True, env=env, check=True)
    report = gs.inspect(str(tmp_path / "sm"))
    assert [(v["name"], v["kind"]) for v in report["variables"]] == [
        ("fc1/bias", "model"), ("fc1/kernel", "model"), ("logits/bias", "model"), ("logits/kernel", "model")]
    assert report["total_bytes"] == 104
    optimizer = EXPECTED["tf_keras"][1]
    metrics = [f"keras_api/metrics/0/{n}{VALUE}" for n in ("count", "total")]
    assert sorted((v["name"], v["kind"]) for v in report["unread"]) == sorted(
        [(n, "optimizer") for n in optimizer] + [(n, "other") for n in metrics])
    assert sum(v["bytes"] for v in report["unread"] if v["kind"] == "optimizer") == 8 + 4 + 2 * 104
    code, out, err = cli(capfd, "inspect", tmp_path / "sm")
    assert code == 0, err
    lines = out.splitlines()
    i = lines.index("not read by the serving function, not counted above: 12 checkpoint tensors, 228 B, "
                    "optimizer state 220 B")
    assert lines[i + 1].split() == [metrics[0], "float32", "[]", "4", "B"]
    assert lines[i + 3].split() == [f"optimizer/_iterations{VALUE}", "int64", "[]", "8", "B", "(optimizer)"]
    code, out, err = cli(capfd, "inspect", tmp_path / "sm" / "variables" / "variables", "--json")
    assert json.loads(out)["unread"] == []  # the checkpoint itself: every tensor is listed


def test_migrate_from_tf2_says_which_optimizer_state_it_carried_over(tmp_path, capfd):
    """migrate --from tf2 of a tf_keras model fitted with Adam and saved with tf.saved_model.save carried its
    Adam's slots, iteration and learning rate over as variables like any other, unsaid; the table tags them,
    a line counts them, and --json lists them (optimizer_state); --preset optimizer-slots leaves none."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    sm = str(tmp_path / "sm")
    subprocess.run([sys.executable, "-c", SAVED, sm], capture_output=True, env=env, check=True)
    slots = [f"Adam/{s}/{layer}/{w}" for s in "mv" for layer in ("fc1", "logits") for w in ("bias", "kernel")]
    state = sorted(slots + ["iteration", "learning_rate"])
    code, out, err = cli(capfd, "migrate", sm, tmp_path / "m", "--from", "tf2", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["optimizer_state"] == state
    assert sorted(r["mapping"][sm].values()) == sorted(state + ["count", "total", "fc1/bias", "fc1/kernel",
                                                                "logits/bias", "logits/kernel"])
    assert sorted(ckpt(r["destination"])) == sorted(r["mapping"][sm].values())  # carried over, as said
    code, out, err = cli(capfd, "migrate", sm, tmp_path / "t", "--from", "tf2", "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert f"# optimizer state carried over from {sm}: 10 of these tensors (tagged: their keys are the optimizer's, " \
           "its slots, step count, learning rate); --preset optimizer-slots drops them" in lines
    tagged = sorted(line.split()[2] for line in lines if line.endswith("  (optimizer state)"))
    assert tagged == state
    assert [line.split()[2] for line in lines if line.startswith("layer_with_weights-0/kernel/")] == ["fc1/kernel"]
    assert not any(line.endswith("(optimizer state)") for line in lines if "layer_with_weights" in line)
    r = migrate(sm, str(tmp_path / "p"), gs.Rules(presets=["optimizer-slots"]), from_format="tf2", dry_run=True)
    assert r.optimizer_state == [] and sorted(r.dropped) == state
    assert migrate(sm, str(tmp_path / "k"), dry_run=True).optimizer_state is None  # read by its keys: not told
