"""Exact rank mod p on a CUDA device: the float64 engine at N up to 65536, beside the device's DGEMM rate.

    python benchmarks/bench_modp_gpu.py --sizes 8192 16384 32768 65536 --budget 240 --json out.json

Each matrix is drawn on the device straight into one float64 tensor (65536² is 34 GB)
with entries uniform in [0, p), except its last row, which is row 0 + row 1 mod p: the
rank is N − 1 for almost every draw, and a wrong elimination would not find that
dependency. ``rank_mod_p(W, p, overwrite=True)`` factors it in place; the time is the
rank alone, synchronised. Before the sizes, one N = ``--check`` matrix is ranked on the
device and by FLINT on the CPU (they must agree), and the device's float64 GEMM rate
is timed (8192³, CUDA events): each row quotes ``(2/3) N³ / t`` as a share of it.

A size whose predicted time (the last one's × 8) would pass ``--budget`` seconds is
not started, so the script ends inside a lease; its row says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

import numpy as np
import torch

from tensorrnn.ranks.modp import DEFAULT_PRIME, rank_mod_p, rank_mod_p_flint


def dgemm_tflops(device: torch.device, n: int = 8192, repeats: int = 5) -> float:
    a = torch.randn(n, n, dtype=torch.float64, device=device)
    b = torch.randn(n, n, dtype=torch.float64, device=device)
    torch.mm(a, b)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        torch.mm(a, b)
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (start.elapsed_time(end) / 1e3) / 1e12


def planted_matrix(n: int, p: int, seed: int, device: torch.device) -> torch.Tensor:
    """Uniform entries in [0, p), last row = row 0 + row 1 mod p; float64, drawn in row slices."""
    W = torch.empty(n, n, dtype=torch.float64, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    step = max(1, (1 << 26) // n)
    for i in range(0, n, step):
        torch.randint(0, p, W[i : i + step].shape, generator=gen, dtype=torch.float64, device=device,
                      out=W[i : i + step])  # fmt: skip
    W[-1] = torch.fmod(W[0] + W[1], p)
    return W


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8192, 16384, 32768, 65536])
    ap.add_argument("--check", type=int, default=2048, help="N of the device-against-FLINT check")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds; larger sizes are not started")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_modp_gpu.py needs a CUDA device (the CPU engine: bench_modp.py)")
    device = torch.device("cuda")
    p = DEFAULT_PRIME

    check = planted_matrix(args.check, p, args.seed, device)
    expected = rank_mod_p_flint(check.cpu().numpy().astype(np.int64), p)
    got = rank_mod_p(check, p)
    if got != expected:
        raise SystemExit(f"MISMATCH at N={args.check}: device rank {got}, FLINT {expected}")
    del check
    tflops = dgemm_tflops(device)
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "prime": p,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "check": {"n": args.check, "rank": got, "flint": expected}, "dgemm_tflops": tflops}  # fmt: skip
    print(f"# {info['device']}, torch {torch.__version__}, p = {p}; N = {args.check}: device rank "
          f"{got} = FLINT's; float64 GEMM {tflops:.1f} TFLOP/s (8192³, same run)")
    print("| N | rank (expected N − 1) | seconds | TFLOP/s ((2/3) N³ / t) | share of DGEMM | peak GiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    rows, last = [], None
    for n in args.sizes:
        if last is not None and last[1] * (n / last[0]) ** 3 > args.budget:
            rows.append({"n": n, "skipped": f"predicted over the {args.budget:.0f} s budget"})
            print(f"| {n} | not started: predicted {last[1] * (n / last[0]) ** 3:.0f} s > budget | | | | |")
            continue
        W = planted_matrix(n, p, args.seed, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        rank = rank_mod_p(W, p, overwrite=True)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        del W
        torch.cuda.empty_cache()
        rate = (2 / 3) * n**3 / seconds / 1e12
        peak = torch.cuda.max_memory_allocated() / 2**30
        row = {"n": n, "rank": rank, "expected": n - 1, "seconds": seconds, "tflops": rate,
               "share_of_dgemm": rate / tflops, "peak_gib": peak}  # fmt: skip
        rows.append(row)
        last = (n, seconds)
        flag = "" if rank == n - 1 else " **≠ N − 1**"
        print(f"| {n} | {rank}{flag} | {seconds:.2f} | {rate:.2f} | {100 * rate / tflops:.0f} % "
              f"| {row['peak_gib']:.1f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**info, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
