"""The embedded demo (``graphsurgeon demo``).

1. Trains a small legacy-style TF1 network (raw ``tf.compat.v1`` ops, reference
   variables, ``tf.train.Saver``) on scikit-learn's bundled digits 0-4: the
   "original model".
2. Caches the top frozen layer (hidden2) once over the new data, then restores the
   model with graphsurgeon, keeps hidden3 trainable at half the learning rate,
   replaces the 5-class output with a new head for digits 5-9, and retrains hidden3
   and the head from the cache, with 20 labelled images per class.
3. Trains the same network from scratch on the same 100 images and compares.
4. Exports a checkpoint and a SavedModel, and checks the SavedModel's answers.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

LAYERS = (("hidden1", 64), ("hidden2", 48), ("hidden3", 32))


def digits():
    """scikit-learn's 1,797 8x8 digits, flattened and scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def _dense(x, units, scope, act=True, seed=0):
    with tf1.variable_scope(scope, use_resource=False):
        w = tf1.get_variable("weights", [x.shape[-1], units], initializer=tf1.glorot_uniform_initializer(seed=seed))
        b = tf1.get_variable("biases", [units], initializer=tf1.zeros_initializer())
        y = tf.nn.bias_add(tf.matmul(x, w), b)
        return tf.nn.relu(y) if act else y


def train_mlp(x, y, n_classes, *, epochs, seed, lr=1e-2, save_to=None, eval_sets=()):
    """Train the legacy-style MLP from scratch; optionally save it with ``Saver``.

    Returns ``(accuracies on eval_sets, checkpoint prefix or None)``.
    """
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(seed)
        X = tf1.placeholder(tf.float32, (None, 64), name="X")
        Y = tf1.placeholder(tf.int64, (None,), name="y")
        h = X
        for i, (scope, units) in enumerate(LAYERS):
            h = _dense(h, units, scope, seed=seed + i)
        logits = _dense(h, n_classes, "output", act=False, seed=seed + 9)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=Y, logits=logits), name="loss")
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), Y), tf.float32), name="accuracy")
        train = tf1.train.AdamOptimizer(lr).minimize(loss, global_step=tf1.train.get_or_create_global_step())
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            rng = np.random.default_rng(seed)
            for _ in range(epochs):
                order = rng.permutation(len(y))
                for i in range(0, len(y), 32):
                    idx = order[i:i + 32]
                    s.run(train, {X: x[idx], Y: y[idx]})
            accs = [float(s.run(acc, {X: ex, Y: ey})) for ex, ey in eval_sets]
            prefix = tf1.train.Saver().save(s, save_to, global_step=epochs) if save_to else None
    return accs, prefix


def run(out_dir=None, *, per_class: int = 20, epochs: int = 60, progress: bool = True, seed: int = 0) -> dict:
    """Run the demo; returns the accuracies. Writes only under ``out_dir`` (a temp dir if None)."""
    from graphsurgeon._src.cache import generate as generate_cache
    from graphsurgeon._src.retrain import RetrainConfig, retrain

    out_dir = out_dir or tempfile.mkdtemp(prefix="graphsurgeon-demo-")
    os.makedirs(os.path.join(out_dir, "original"), exist_ok=True)
    say = print
    x, y = digits()
    old = y < 5
    say(f"[1/4] Training the original legacy TF1 model on digits 0-4 ({old.sum()} images), saving with tf.train.Saver")
    (acc_old,), prefix = train_mlp(x[old], y[old], 5, epochs=30, seed=seed, save_to=os.path.join(out_dir, "original", "model.ckpt"),
                                   eval_sets=[(x[old], y[old])])
    say(f"      original model: {prefix} (accuracy on digits 0-4: {acc_old:.3f})")

    new_x, new_y = x[~old], y[~old] - 5
    rng = np.random.default_rng(seed)
    split = np.array(["test"] * len(new_y), dtype=object)
    for c in range(5):
        idx = rng.permutation(np.flatnonzero(new_y == c))
        split[idx[:per_class]] = "train"
        split[idx[per_class:per_class + 10]] = "validation"
    data_path = os.path.join(out_dir, "digits59.npz")
    np.savez(data_path, x=new_x, y=new_y, split=split.astype(str))
    n_train = int((split == "train").sum())

    say(f"[2/4] Retraining for digits 5-9 from {n_train} labelled images: hidden1+hidden2 frozen, "
        "hidden3 trainable at lr x0.5, output replaced by a new 5-class head")
    cache_dir = os.path.join(out_dir, "cache-hidden2")
    rep = generate_cache(os.path.dirname(prefix), "hidden2/Relu", data_path, cache_dir, progress=progress)
    say(f"      bottleneck cache of the top frozen layer (hidden2/Relu): {rep.computed} activations computed "
        f"once, {rep.reused} reused, in {cache_dir}")
    cfg = RetrainConfig(model=os.path.dirname(prefix), head="hidden3/Relu:5", trainable=["hidden3"],
                        lr_mult=["hidden3=0.5"], epochs=epochs, batch_size=32, lr=0.01, optimizer="adam", seed=seed)
    say(build_plan_text(cfg))
    say("      training hidden3 and the new head from the cache (hidden1 and hidden2 never run)")
    res = retrain(cfg, None, os.path.join(out_dir, "retrained"), cache=cache_dir, progress=progress, overwrite=True)
    acc_tl = res.metrics["test"]["accuracy"]

    say(f"[3/4] Training the same network from scratch on the same {n_train} images")
    tr = split == "train"
    (acc_scratch,), _ = train_mlp(new_x[tr], new_y[tr], 5, epochs=epochs, seed=seed + 1,
                                  eval_sets=[(new_x[split == "test"], new_y[split == "test"])])

    say("[4/4] Checking the exported SavedModel answers like the retrained graph")
    sm_acc = _saved_model_accuracy(res.export.saved_model, new_x[split == "test"], new_y[split == "test"])
    say("")
    say(f"  test accuracy on digits 5-9 ({int((split == 'test').sum())} images):")
    say(f"    transfer (graphsurgeon)   {acc_tl:.3f}")
    say(f"    from scratch              {acc_scratch:.3f}")
    say(f"    exported SavedModel       {sm_acc:.3f}")
    say(f"  checkpoint:  {res.export.checkpoint}")
    say(f"  SavedModel:  {res.export.saved_model}")
    say(f"  TensorBoard: tensorboard --logdir {os.path.join(out_dir, 'retrained', 'logs')}")
    return {"original": acc_old, "transfer": acc_tl, "scratch": acc_scratch, "saved_model": sm_acc, "out": out_dir}


def build_plan_text(cfg) -> str:
    from graphsurgeon._src.retrain import plan

    return "\n".join("      " + line for line in plan(cfg).format_text().splitlines())


def _saved_model_accuracy(export_dir, x, y) -> float:
    from graphsurgeon._src.restore import restore

    with restore(export_dir) as m:
        probs = m.run(m.outputs[1], {m.inputs[0]: x})
    return float((probs.argmax(1) == y).mean())
