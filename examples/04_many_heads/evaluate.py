"""Score the merged model on every task's test sentences, queried by task in mixed batches.

    python evaluate.py MERGED_DIR TEST_JSON

TEST_JSON is make_tasks.py's ``test.json``: for each task (by name) its test sentences, labels and
the predictions its own head made when it was trained. The merged SavedModel is called through
``tf.saved_model.load(MERGED_DIR).signatures["by_name"]`` with raw strings and task names, in
batches of 256 that mix all tasks. Prints the accuracy over the tasks and how many predictions
differ from the heads' own.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(merged_dir, test_json):
    with open(test_json, encoding="utf-8") as f:
        tests = json.load(f)
    with open(os.path.join(merged_dir, "tasks.json"), encoding="utf-8") as f:
        classes = {t["name"]: t["classes"] for t in json.load(f)["tasks"]}
    rows = [(name, text, label, own) for name, t in sorted(tests.items()) if name in classes
            for text, label, own in zip(t["texts"], t["labels"], t["predicted"])]
    order = np.random.default_rng(0).permutation(len(rows))  # batches mix the tasks
    fn = tf.saved_model.load(merged_dir).signatures["by_name"]
    got = {}
    for start in range(0, len(rows), 256):
        batch = [rows[i] for i in order[start:start + 256]]
        out = fn(inputs=tf.constant([r[1] for r in batch]), task=tf.constant([r[0] for r in batch]))
        for i, p in zip(order[start:start + 256], out["probabilities"].numpy()):
            got[i] = int(np.argmax(p))  # padded classes have probability 0
    per_task, differ = {}, 0
    for i, (name, _, label, own) in enumerate(rows):
        per_task.setdefault(name, []).append(got[i] == label)
        differ += got[i] != own
    acc = np.array([np.mean(v) for v in per_task.values()])
    print(f"{len(per_task)} tasks, {len(rows)} test sentences through the merged model in mixed batches of 256: "
          f"accuracy mean {acc.mean():.3f}, min {acc.min():.3f}, max {acc.max():.3f}")
    print(f"predictions that differ from the task models' own heads: {differ}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
