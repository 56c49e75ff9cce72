"""How long a user waits for help, a usage error or a wrong path, beside importing TensorFlow.

Runs, interleaved in rounds, as fresh processes (what a user's shell does):
  baseline   python -c "import tensorflow"
  help       graphsurgeon --help
  usage      graphsurgeon plan --head            (argparse error)
  path       graphsurgeon inspect /nonexistent/model.ckpt
and prints each command's median wall time and its ratio to the baseline. Goal: help and the
path error each <= 0.15 x the TensorFlow import.

    python benchmarks/cli_bench.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "baseline: import tensorflow": [sys.executable, "-c", "import tensorflow"],
    "graphsurgeon --help": [sys.executable, "-m", "graphsurgeon", "--help"],
    "usage error": [sys.executable, "-m", "graphsurgeon", "plan", "--head"],
    "missing path": [sys.executable, "-m", "graphsurgeon", "inspect", "/nonexistent/model.ckpt"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = root
    times = {name: [] for name in CASES}
    for _ in range(args.rounds):
        for name, argv in CASES.items():
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["baseline: import tensorflow"])
    print(f"{'command':<30} {'median s':>9} {'x import tensorflow':>20}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<30} {med:>9.3f} {med / base:>20.3f}")


if __name__ == "__main__":
    main()
