"""Make this example's task models: seed 000's 200 text classifiers that share one backbone.

A synthetic language (pseudo-words grouped into topics) stands in for the user's text. A text
backbone built with ``tf.compat.v1`` — raw strings -> tokens (split on spaces, hashed into
buckets) -> embedding -> a per-token dense layer -> mean pooling -> a dense layer, the features
``encoder/features`` — is pretrained once on a pretext task (how much of a sentence is about each topic, regressed).
Then each task gets its own data, labels and a softmax head trained on the frozen backbone's
features; each head's loss and gradients involve only its own task's data (all heads run in one
batched graph to save time). Every task model is saved as its user would have: a checkpoint with
a meta graph (backbone + head + loss + optimizer over the head) and a ``labels.txt``.

    python make_tasks.py DIR [--tasks 200] [--buckets 4096]

Writes DIR/tasks/task_NNN/{model.ckpt-300.*, checkpoint, labels.txt}, DIR/accuracy.json,
DIR/test.json (each task's 200 test sentences, labels and its head's own predictions) and
DIR/queries.txt (one test sentence per task, to query the merged model with).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
TOPICS, WORDS_PER_TOPIC, VOCAB = 40, 50, 3000
EMBED, HIDDEN, FEATURES = 64, 128, 64
HEAD_STEPS = 300


class Language:
    """Pseudo-words in topics; a sentence mixes one to three topics with some noise words."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        words = set()
        while len(words) < VOCAB:
            words.add("".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))))
        self.vocab = np.array(sorted(words))
        self.topics = [rng.choice(VOCAB, WORDS_PER_TOPIC, replace=False) for _ in range(TOPICS)]
        zipf = 1.0 / np.arange(1, WORDS_PER_TOPIC + 1)
        self.zipf = zipf / zipf.sum()

    def sentences(self, n: int, rng) -> tuple[list, np.ndarray]:
        """``n`` sentences and their topic words' share: ``[n, TOPICS]`` (rows sum to at most 1)."""
        k = rng.choice([1, 2, 3], size=n, p=[0.4, 0.4, 0.2])
        chosen = np.argsort(rng.random((n, TOPICS)), axis=1)[:, :3]  # up to 3 distinct topics each
        lengths = rng.integers(6, 16, size=n)
        row = np.repeat(np.arange(n), lengths)
        topic = chosen[row, (rng.random(row.size) * k[row]).astype(int)]
        rank = rng.choice(WORDS_PER_TOPIC, size=row.size, p=self.zipf)
        word = np.asarray(self.topics)[topic, rank]
        noise = rng.random(row.size) < 0.15
        word[noise] = rng.integers(0, VOCAB, size=int(noise.sum()))
        tokens = self.vocab[word]
        ends = np.cumsum(lengths)
        share = np.zeros((n, TOPICS), np.float32)
        np.add.at(share, (row[~noise], topic[~noise]), 1.0)
        return [" ".join(tokens[e - n_:e]) for e, n_ in zip(ends, lengths)], share / lengths[:, None]


def _dense(x, units, name, activation=None):
    with tf1.variable_scope(name):
        w = tf1.get_variable("kernel", [x.shape[-1], units], initializer=tf1.glorot_uniform_initializer(seed=1))
        b = tf1.get_variable("bias", [units], initializer=tf1.zeros_initializer())
        y = tf.nn.bias_add(tf.matmul(x, w), b)
        return activation(y) if activation else y


def backbone(texts, buckets: int):
    """string [batch] -> features [batch, FEATURES]: tokenization happens in the graph."""
    with tf1.variable_scope("encoder", use_resource=False):
        tokens = tf.strings.split(tf.strings.lower(texts))
        ids = tf.strings.to_hash_bucket_fast(tokens.values, buckets)
        table = tf1.get_variable("embedding", [buckets, EMBED],
                                 initializer=tf1.random_normal_initializer(0, 0.1, seed=2))
        per_token = _dense(tf.nn.embedding_lookup(table, ids), HIDDEN, "layer_1", tf.nn.relu)
        pooled = tf.math.unsorted_segment_mean(per_token, tokens.value_rowids(), tf.shape(texts, out_type=tf.int64)[0])
        return tf.identity(_dense(pooled, FEATURES, "layer_2", tf.tanh), name="features")


def pretrain(lang: Language, buckets: int, steps: int, seed: int) -> dict:
    """Train the backbone on the pretext task (regress each topic's share of a sentence's words);
    returns its weights ``{name: ndarray}``."""
    rng = np.random.default_rng(seed + 1)
    texts, topics = lang.sentences(20000, rng)
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(seed)
        x = tf1.placeholder(tf.string, [None], name="text")
        y = tf1.placeholder(tf.float32, [None, TOPICS], name="topics")
        logits = _dense(backbone(x, buckets), TOPICS, "pretext")
        loss = tf.reduce_mean(tf.square(logits - y))
        train = tf1.train.AdamOptimizer(0.003).minimize(loss)
        enc = [v for v in tf1.global_variables() if v.name.startswith("encoder/")]
        with tf1.Session(graph=g) as s:
            s.run(tf1.global_variables_initializer())
            for step in range(steps):
                idx = rng.integers(0, len(texts), 256)
                s.run(train, {x: [texts[i] for i in idx], y: topics[idx]})
            return {v.op.name: value for v, value in zip(enc, s.run(enc))}


def make_task(lang: Language, t: int, n: int = 500):
    """Task ``t``: its class count, class names, sentences and labels (each topic votes for one
    class with a weight, in proportion to its share of the sentence's words; the label is the class
    with the most votes)."""
    rng = np.random.default_rng(1000 + t)
    classes = int(rng.integers(2, 6))
    owner = rng.integers(0, classes, TOPICS)
    owner[rng.choice(TOPICS, classes, replace=False)] = np.arange(classes)  # every class owns a topic
    weight = rng.uniform(0.5, 1.5, TOPICS)
    texts, share = lang.sentences(n, rng)
    votes = np.stack([(share * weight * (owner == c)).sum(1) for c in range(classes)], 1)
    names = [str(lang.vocab[lang.topics[np.flatnonzero(owner == c)[0]][0]]) for c in range(classes)]
    names = [n if names.index(n) == c else f"{n}_{c}" for c, n in enumerate(names)]  # unique
    return classes, names, texts, votes.argmax(1)


def features_of(texts: list, weights: dict, buckets: int) -> np.ndarray:
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.string, [None])
        f = backbone(x, buckets)
        with tf1.Session(graph=g) as s:
            for v in tf1.global_variables():
                v.load(weights[v.op.name], s)
            return np.concatenate([s.run(f, {x: texts[i:i + 4096]}) for i in range(0, len(texts), 4096)])


def train_heads(feats, labels, classes, train_n: int):
    """One softmax head per task, trained with Adam on its own training split only (the loss is a sum
    of per-task losses, so no task's gradients involve another task's data). Returns kernels,
    biases, test accuracies and test predictions."""
    T, cmax = len(classes), max(classes)
    mask = np.where(np.arange(cmax)[None, :] < np.array(classes)[:, None], 0.0, -1e9).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [T, None, FEATURES])
        y = tf1.placeholder(tf.int64, [T, None])
        w = tf1.get_variable("w", [T, FEATURES, cmax], initializer=tf1.zeros_initializer())
        b = tf1.get_variable("b", [T, cmax], initializer=tf1.zeros_initializer())
        logits = tf.matmul(x, w) + b[:, None, :] + mask[:, None, :]
        loss = tf.reduce_sum(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), 1))
        train = tf1.train.AdamOptimizer(0.05).minimize(loss)
        predicted = tf.argmax(logits, 2)
        acc = tf.reduce_mean(tf.cast(tf.equal(predicted, y), tf.float32), 1)
        with tf1.Session(graph=g) as s:
            s.run(tf1.global_variables_initializer())
            for _ in range(HEAD_STEPS):
                s.run(train, {x: feats[:, :train_n], y: labels[:, :train_n]})
            test_acc, test_pred = s.run([acc, predicted], {x: feats[:, train_n:], y: labels[:, train_n:]})
            wv, bv = s.run([w, b])
    kernels = [wv[t, :, :c] for t, c in enumerate(classes)]
    return kernels, [bv[t, :c] for t, c in enumerate(classes)], test_acc, test_pred


def save_task_models(out, weights, heads, buckets: int) -> list[str]:
    """Each task as its user saved it: backbone + head + loss + Adam over the head, Saver."""
    paths = [None] * len(heads)
    for classes in sorted({len(h["names"]) for h in heads}):
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.string, [None], name="text")
            y = tf1.placeholder(tf.int64, [None], name="label")
            logits = _dense(backbone(x, buckets), classes, "head/logits")
            tf.nn.softmax(logits, name="head/probabilities")
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), name="loss")
            head_vars = [v for v in tf1.global_variables() if v.name.startswith("head/")]
            step = tf1.train.get_or_create_global_step()
            tf1.train.AdamOptimizer(0.05).minimize(loss, var_list=head_vars, global_step=step)
            saver = tf1.train.Saver(max_to_keep=None)
            with tf1.Session(graph=g) as s:
                s.run(tf1.global_variables_initializer())
                for v in tf1.global_variables():
                    if v.op.name in weights:
                        v.load(weights[v.op.name], s)
                step.load(HEAD_STEPS, s)
                for t, h in enumerate(heads):
                    if len(h["names"]) != classes:
                        continue
                    d = os.path.join(out, "tasks", f"task_{t:03d}")
                    os.makedirs(d, exist_ok=True)
                    head_vars[0].load(h["kernel"], s)
                    head_vars[1].load(h["bias"], s)
                    paths[t] = saver.save(s, os.path.join(d, "model.ckpt"), global_step=step)
                    with open(os.path.join(d, "labels.txt"), "w") as f:
                        f.write("\n".join(h["names"]) + "\n")
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--buckets", type=int, default=4096, help="hash buckets of the embedding")
    p.add_argument("--pretrain-steps", type=int, default=400)
    args = p.parse_args(argv)
    lang = Language(0)
    weights = pretrain(lang, args.buckets, args.pretrain_steps, 0)
    tasks = [make_task(lang, t) for t in range(args.tasks)]
    all_texts = [s for _, _, texts, _ in tasks for s in texts]
    feats = features_of(all_texts, weights, args.buckets).reshape(args.tasks, -1, FEATURES)
    labels = np.stack([lab for _, _, _, lab in tasks])
    kernels, biases, acc, predicted = train_heads(feats, labels, [c for c, _, _, _ in tasks], 300)
    majority = [np.bincount(lab[300:]).max() / len(lab[300:]) for lab in labels]
    heads = [{"names": names, "kernel": k, "bias": b} for (_, names, _, _), k, b in zip(tasks, kernels, biases)]
    paths = save_task_models(args.out, weights, heads, args.buckets)
    with open(os.path.join(args.out, "accuracy.json"), "w") as f:
        json.dump({f"task_{t:03d}": {"classes": len(h["names"]), "test_accuracy": float(a), "majority": float(m)}
                   for t, (h, a, m) in enumerate(zip(heads, acc, majority))}, f, indent=1)
    with open(os.path.join(args.out, "test.json"), "w") as f:
        json.dump({f"task_{t:03d}": {"texts": texts[300:], "labels": lab[300:].tolist(), "predicted": p.tolist()}
                   for t, ((_, _, texts, lab), p) in enumerate(zip(tasks, predicted))}, f)
    with open(os.path.join(args.out, "queries.txt"), "w") as f:
        f.write("".join(f"{t}\t{texts[300]}\t{names[lab[300]]}\n" for t, (_, names, texts, lab) in enumerate(tasks)))
    print(f"backbone: encoder/features ({FEATURES} floats) from raw strings, pretrained {args.pretrain_steps} steps")
    print(f"trained {args.tasks} heads, 300 examples each; test accuracy (200 examples each): mean {acc.mean():.3f}, "
          f"min {acc.min():.3f}, max {acc.max():.3f}; majority class: mean {np.mean(majority):.3f}")
    print(f"task models: {os.path.dirname(os.path.dirname(paths[0]))}/task_000 .. task_{args.tasks - 1:03d}")


if __name__ == "__main__":
    main()
