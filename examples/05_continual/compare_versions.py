"""Serve one task of two many-heads versions on the same inputs and compare the answers bit for bit.

    python compare_versions.py OLD_DIR NEW_DIR DATA.npz TASK_ID

Prints the task's test accuracy in each version and whether every logit is identical.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from graphsurgeon._src.continual.write import predict  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("data")
    ap.add_argument("task_id", type=int)
    args = ap.parse_args()
    with np.load(args.data) as d:
        test = d["split"] == "test"
        x, y = d["x"][test], d["y"][test]
    a, b = (predict(p, x, args.task_id)["logits"] for p in (args.old, args.new))
    for name, logits in ((args.old, a), (args.new, b)):
        print(f"task {args.task_id} in {name}: test accuracy {(logits.argmax(1) == y).mean():.4f}")
    print(f"logits identical bit for bit: {a.shape == b.shape and a.tobytes() == b.tobytes()}")


if __name__ == "__main__":
    main()
