"""Issue 23, item 1: a `tensorrnn train` epoch with the default chain against `--no-compile`.

    .venv/bin/python benchmarks/bench_default_chain.py [--threads 1] [--epochs 2]

Trains the same run twice per round in fresh folders, once with the defaults (the fused
C++ chain on a CPU) and once with ``--no-compile`` (the plain Python loops), alternating
the order each round, and prints the median seconds per epoch of each (from each run's
``metrics.jsonl``, so data loading and start-up are not counted) and their ratio. The
run: Fashion-MNIST, 4×4 patches (d = 49), affine-relu n 32, TT-shared r 32, batch 128,
10,000 training images: the long-chain setting of docs/results/long_chains_d49_long.
The chain each run used is read back from its ``result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = ["--dataset", "fashion-mnist", "--model", "tt-shared", "--rank", "32", "--patch", "4",
       "--feature-dim", "32", "--batch-size", "128", "--train-limit", "10000"]  # fmt: skip


def one_run(options: list[str], epochs: int, threads: int, folder: Path) -> tuple[float, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, "-c", "from tensorrnn.cli import main; main()", "train", *RUN,
               "--epochs", str(epochs), "--out", str(folder), "-q", *options]  # fmt: skip
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    epochs_seconds = [json.loads(line)["seconds"] for line in (folder / "metrics.jsonl").open()]
    chain = json.loads((folder / "result.json").read_text())["chain"]
    return statistics.median(epochs_seconds), chain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    versions = {"default": [], "--no-compile": ["--no-compile"]}
    seconds: dict[str, list[float]] = {name: [] for name in versions}
    chains: dict[str, str] = {}
    print(f"# load average at the start {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            order = list(versions) if round_ % 2 == 0 else list(reversed(versions))
            for name in order:
                median, chain = one_run(versions[name], args.epochs, args.threads,
                                        Path(scratch) / f"{name.strip('-')}-{round_}")  # fmt: skip
                seconds[name].append(median)
                chains[name] = chain
    print(f"\n| threads | run | chain | s/epoch (median of {args.rounds} runs) | × --no-compile |")
    print("|---:|---|---|---:|---:|")
    plain = statistics.median(seconds["--no-compile"])
    for name in versions:
        value = statistics.median(seconds[name])
        print(f"| {args.threads} | {name} | {chains[name]} | {value:.2f} | {plain / value:.2f} |")
    print(f"\n# load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
