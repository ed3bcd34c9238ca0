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

``--graphs`` times every case above under both schedules, each with and without
the CUDA graph (which decides what ``auto`` picks on CUDA). ``--long`` times
instead the case of issue 23 (d = 784, n = 2, r = 100, B = 512, where the whole
tree needs 45 GiB) under every way of training it: the sequential
loop, the same step replayed as one CUDA graph (``torch.cuda.CUDAGraph``: forward and
backward captured once, so ~10^4 kernel launches become one), the whole tree, and
the ``chunked`` schedule at each ``--chunks`` k (the tree inside k positions,
checkpointed, sequential across chunks). Each row gives the speed against the
sequential loop and the peak memory; the target is a schedule under 4 GiB and at
least 5x faster than the sequential loop.

Without a GPU it runs the same cases on the CPU at B = 8 (a smoke test of the
script, not a measurement).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from tensorrnn.networks import TTNet
from tensorrnn.train import GraphedStep

CASES = (  # (d, n, r, B)
    (49, 16, 32, 512),
    (196, 4, 32, 512),
    (784, 2, 32, 512),
    (784, 2, 100, 512),
)
N_CLASSES = 10
LONG_CASE = (784, 2, 100, 512)


def _time_step(
    net: TTNet, phi: torch.Tensor, labels: torch.Tensor, schedule: str, warmup: int, repeats: int
) -> float:
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


def _time_callable(step: Callable[[], None], cuda: bool, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if cuda:
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


def _eager_step(net: TTNet, phi: torch.Tensor, labels: torch.Tensor, schedule: str) -> Callable[[], None]:
    def step() -> None:
        for p in net.parameters():
            p.grad = None
        F.cross_entropy(net(phi, schedule=schedule), labels).backward()

    return step


def every_schedule(
    case: tuple[int, int, int, int], chunks: list[int], warmup: int, repeats: int
) -> list[dict]:
    """Every way of training one chain (d, n, r, B): rows with seconds and peak GiB.

    As in training, Φ needs no gradient here (the feature maps are fixed); the
    CUDA-graph rows replay :class:`tensorrnn.train.GraphedStep`, the step that
    ``tensorrnn train`` runs on CUDA.
    """
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    d, n, r, batch = case
    batch = batch if cuda else 8
    gen = torch.Generator().manual_seed(0)
    phi = torch.rand(batch, d, n, generator=gen).to(device)
    labels = torch.randint(0, N_CLASSES, (batch,), generator=gen).to(device)
    print(f"\n## d = {d}, n = {n}, r = {r}, B = {batch}: every schedule (median of {repeats} steps)")
    print("| network | schedule | ms/step | speed vs sequential | peak GiB |")
    print("|---|---|---:|---:|---:|")
    rows = []
    for shared in (False, True):
        net = TTNet(d, n, r, N_CLASSES, shared=shared, init="orthogonal", generator=gen).to(device)
        name = "TTNet(shared=True)" if shared else "TTNet"
        variants = [(f"{schedule}{', CUDA graph' if graphed else ''}", schedule, None, graphed)
                    for schedule in ("sequential", "parallel") for graphed in (False, True)]  # fmt: skip
        variants += [(f"chunked k = {k}", "chunked", k, False) for k in chunks]
        base = None
        for label, schedule, chunk, graphed in variants:
            if graphed and not cuda:
                continue
            net.chunk, net.schedule = chunk, schedule
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            row = {"shared": shared, "schedule": label, "d": d, "n": n, "r": r, "B": batch}
            try:
                if graphed:
                    graph = GraphedStep(net, phi, labels)
                    step = functools.partial(graph, phi, labels)
                else:
                    step = _eager_step(net, phi, labels, schedule)
                row["seconds"] = _time_callable(step, cuda, warmup, repeats)
            except torch.OutOfMemoryError:
                row["seconds"], row["error"] = None, "out of memory"
            finally:
                for p in net.parameters():
                    p.grad = None  # the graph's gradients go with the graph
                graph = None
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            if label == "sequential":
                base = row["seconds"]
            row["speed_vs_sequential"] = base / row["seconds"] if base and row["seconds"] else None
            rows.append(row)
            ms = row.get("error") or f"{row['seconds'] * 1e3:.2f}"
            speed = "–" if row["speed_vs_sequential"] is None else f"{row['speed_vs_sequential']:.2f}×"
            peak = "–" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
            print(f"| {name} | {label} | {ms} | {speed} | {peak} |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--long", action="store_true", help="only the d = 784, r = 100 case, every schedule")
    parser.add_argument(
        "--graphs",
        action="store_true",
        help="every case, each schedule with and without a CUDA graph (no chunks)",
    )
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 32, 64, 128])
    args = parser.parse_args()
    if args.long or args.graphs:
        where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (smoke test)"
        print(f"# {where}, torch {torch.__version__}, {datetime.date.today()}, float32")
        cases, chunks = ([LONG_CASE], args.chunks) if args.long else (CASES, [])
        rows = [row for case in cases for row in every_schedule(case, chunks, args.warmup, args.repeats)]
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"device": where, "torch": torch.__version__, "rows": rows}, f, indent=1)
        return

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    where = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})"
    print(
        f"# {where}, torch {torch.__version__}, {datetime.date.today()}, float32, "
        f"median of {args.repeats} steps"
    )
    print(
        "| d | n | r | B | network | sequential ms | parallel ms | parallel / sequential speed "
        "| samples/s (faster) | peak GiB seq / par |"
    )
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
            peak = f"{row['sequential_peak_gib']:.2f} / {row['parallel_peak_gib']:.2f}" if cuda else "n/a"
            name = "TTNet(shared=True)" if shared else "TTNet"
            fmt = lambda t: "out of memory" if t is None else f"{t * 1e3:.2f}"  # noqa: E731
            print(
                f"| {d} | {n} | {r} | {batch} | {name} | {fmt(seq)} | {fmt(par)} | {ratio} "
                f"| {'–' if best is None else f'{batch / best:,.0f}'} | {peak} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
