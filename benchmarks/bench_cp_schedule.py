"""CPNet's two schedules on a CPU at the long-chain shapes of the tuned comparisons.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cp_schedule.py [--repeats 7] [--json F]

``schedule="auto"`` runs CP's per-position loop (``sequential``) on a CPU; ``parallel``
sums the d log-factors at once. Both compute the same function (only the order of the
summation differs). One training step each (forward, cross-entropy, backward), float32,
one torch thread, the variants timed round-robin so load falls on both alike; medians of
wall-clock and of this process's CPU time. The shapes are the CP winners of the equal-tuning
studies (docs/results/tune_long_chains_d196, tune_long_chains_d784) and the first trial of
the d = 784 study, with their feature sizes (cos-sin: n = 8 for 2x2 patches, 2 per pixel).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from tensorrnn.networks import CPNet

SHAPES = ((196, 8, 34, 32), (784, 2, 35, 32), (784, 2, 179, 64))  # d, n, R, B
SCHEDULES = ("sequential", "parallel")
C = 10


def _step(network: CPNet, phi: torch.Tensor, labels: torch.Tensor, schedule: str) -> None:
    network.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(network(phi, schedule=schedule), labels)
    loss.backward()


def measure(d: int, n: int, rank: int, batch: int, repeats: int) -> dict[str, dict[str, float]]:
    gen = torch.Generator().manual_seed(0)
    network = CPNet(d, n, rank, C, init="identity", generator=gen)
    phi = torch.rand(batch, d, n, generator=gen)
    labels = torch.randint(0, C, (batch,), generator=gen)
    times: dict[str, dict[str, list[float]]] = {s: {"wall": [], "cpu": []} for s in SCHEDULES}
    for round_ in range(repeats + 2):  # two untimed rounds first
        for schedule in SCHEDULES:
            wall, cpu = time.perf_counter(), time.process_time()
            _step(network, phi, labels, schedule)
            if round_ >= 2:
                times[schedule]["wall"].append(time.perf_counter() - wall)
                times[schedule]["cpu"].append(time.process_time() - cpu)
    return {s: {k: statistics.median(v) * 1e3 for k, v in t.items()} for s, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread; "
          "ms per training step, median (wall / CPU)\n")  # fmt: skip
    print("| d | n | R | B | sequential (auto) | parallel | × |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for d, n, rank, batch in SHAPES:
        result = measure(d, n, rank, batch, args.repeats)
        seq, par = result["sequential"], result["parallel"]
        ratio = seq["cpu"] / par["cpu"]
        print(f"| {d} | {n} | {rank} | {batch} | {seq['wall']:.1f} / {seq['cpu']:.1f} | "
              f"{par['wall']:.1f} / {par['cpu']:.1f} | {ratio:.1f} |")  # fmt: skip
        times = {f"{s}_ms": result[s] for s in SCHEDULES}
        rows.append({"d": d, "n": n, "rank": rank, "batch": batch, **times})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "threads": 1, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
