"""Make the legacy model of this example: seed 004's MLP, trained on digits 0-4.

Writes DIR/original/model.ckpt-N (+ .meta, checkpoint) the way a TF 1.x user did
(raw ops, reference variables, tf.train.Saver) and DIR/digits59.npz (x, y) with
digits 5-9 relabelled 0-4: 20 labelled training images per class, the rest held out.

    python make_model.py DIR
"""
import os
import sys

import numpy as np

from graphsurgeon._src.demo import digits, train_mlp

LAYERS = (("hidden1", 300), ("hidden2", 100), ("hidden3", 50))


def main(out):
    import graphsurgeon._src.demo as demo

    demo.LAYERS = LAYERS  # seed 004's widths: 300 -> 100 -> 50 -> 5
    x, y = digits()
    old = y < 5
    os.makedirs(os.path.join(out, "original"), exist_ok=True)
    _, prefix = train_mlp(x[old], y[old], 5, epochs=20, seed=0, save_to=os.path.join(out, "original", "model.ckpt"))
    nx, ny = x[~old], y[~old] - 5
    rng = np.random.default_rng(0)
    split = np.array(["test"] * len(ny), dtype=object)
    for c in range(5):
        idx = rng.permutation(np.flatnonzero(ny == c))
        split[idx[:20]] = "train"
        split[idx[20:30]] = "validation"
    np.savez(os.path.join(out, "digits59.npz"), x=nx, y=ny, split=split.astype(str))
    print(f"original model: {prefix}\nnew task data: {os.path.join(out, 'digits59.npz')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "example-out")
