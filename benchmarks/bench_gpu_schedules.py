"""Sequential against parallel (tree) contraction on a GPU: which schedule to train long chains with.

    python benchmarks/bench_gpu_schedules.py [--repeats 10] [--json out.json]

Times one training step (forward, cross-entropy, backward into every core and into
Φ) of ``TTNet`` and ``TTNet(shared=True)`` at the long-chain sizes of issue 12, under
both schedules, with CUDA events (median of ``--repeats`` after 3 warm-up steps):

* d = 49, n = 16, r = 32, B = 512 (Fashion-MNIST 4×4 patches);
* d = 196, n = 4, r = 32, B = 512 (MNIST 2×2 patches);
* d = 784, n = 2, r = 32 and r = 100, B = 512 (one pixel per site; r = 100 is
  TorchMPS's bond dimension).

The sequential schedule is d − 2 dependent steps of a few small kernels each, so on
a GPU it is bound by launch latency; the parallel schedule forms every
``M_t = Σ_i Φ_t[i] G[:, i, :]`` at once, ``(B, d−2, r, r)``, and multiplies
neighbours pairwise in ⌈log2(d − 2)⌉ levels: r/1 times the flops of a vector-matrix
step, but a handful of large batched products. Peak memory is reported beside the
time, since the tree keeps ``(B, d−2, r, r)`` and its levels for the backward. A
case that does not fit is reported as such, not skipped silently.

Without a GPU it runs the same cases on the CPU at B = 8 (a smoke test of the
script, not a measurement).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from tensorrnn.networks import TTNet

CASES = (  # (d, n, r, B)
    (49, 16, 32, 512),
    (196, 4, 32, 512),
    (784, 2, 32, 512),
    (784, 2, 100, 512),
)
N_CLASSES = 10


def _time_step(net: TTNet, phi: torch.Tensor, labels: torch.Tensor, schedule: str,
               warmup: int, repeats: int) -> float:
    """Median seconds of one forward + backward step."""
    def step() -> None:
        for p in [phi, *net.parameters()]:
            p.grad = None
        F.cross_entropy(net(phi, schedule=schedule), labels).backward()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if phi.is_cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    where = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})"
    print(f"# {where}, torch {torch.__version__}, {datetime.date.today()}, float32, "
          f"median of {args.repeats} steps")
    print("| d | n | r | B | network | sequential ms | parallel ms | parallel / sequential speed "
          "| samples/s (faster) | peak GiB seq / par |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for d, n, r, batch in CASES:
        batch = batch if cuda else 8
        gen = torch.Generator().manual_seed(0)
        phi = torch.rand(batch, d, n, generator=gen).to(device).requires_grad_()
        labels = torch.randint(0, N_CLASSES, (batch,), generator=gen).to(device)
        for shared in (False, True):
            net = TTNet(d, n, r, N_CLASSES, shared=shared, init="orthogonal", generator=gen).to(device)
            row = {"d": d, "n": n, "r": r, "B": batch, "shared": shared}
            for schedule in ("sequential", "parallel"):
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                try:
                    row[schedule] = _time_step(net, phi, labels, schedule, args.warmup, args.repeats)
                except torch.OutOfMemoryError:
                    row[schedule] = None
                row[f"{schedule}_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            rows.append(row)
            seq, par = row["sequential"], row["parallel"]
            best = min((t for t in (seq, par) if t is not None), default=None)
            ratio = f"{seq / par:.2f}×" if seq and par else "n/a"
            peak = (f"{row['sequential_peak_gib']:.2f} / {row['parallel_peak_gib']:.2f}"
                    if cuda else "n/a")
            name = "TTNet(shared=True)" if shared else "TTNet"
            fmt = lambda t: "out of memory" if t is None else f"{t * 1e3:.2f}"  # noqa: E731
            print(f"| {d} | {n} | {r} | {batch} | {name} | {fmt(seq)} | {fmt(par)} | {ratio} "
                  f"| {'–' if best is None else f'{batch / best:,.0f}'} | {peak} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
