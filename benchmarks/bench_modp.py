"""Benchmark exact ranks mod p: float64-BLAS engine vs python-flint vs the DGEMM rate.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_modp.py --sizes 2048 4096 8192 16384 --threads 2 \\
        --repeats 3 --json modp.json

For every size the script times, per repeat, a float64 DGEMM (to know what this
machine delivers *right now*: other processes may share the cores) and then
``rank_mod_p`` on a random (full-rank) matrix; it reports medians, the rate
``(2/3) N^3 / t`` and its ratio to the DGEMM rate measured alongside. flint is timed
up to ``--flint-max`` with its list conversion reported separately.

From ``--inplace-from`` on (default 16384) the matrix is drawn straight into one
float64 tensor and factored in place (``rank_mod_p(..., overwrite=True)``): at
N = 32768 it is 8.6 GB, and there is room for one copy only. There ``blas s`` is the
rank alone (reduction and checks included), and drawing the matrix is timed apart.
Every row records the load average and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192, 16384])
    ap.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size (median)")
    ap.add_argument(
        "--flint-max", type=int, default=8192, help="largest N also run with flint (default 8192)"
    )
    ap.add_argument(
        "--flint-repeats",
        type=int,
        default=1,
        help="flint runs per size (default 1: flint at N=8192 takes over a minute)",
    )
    ap.add_argument(
        "--dgemm-size",
        type=int,
        default=4096,
        help="N of the square DGEMM timed next to every rank run (default 4096)",
    )
    ap.add_argument("--prime", type=int, default=None, help="modulus (default: DEFAULT_PRIME)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--inplace-from",
        type=int,
        default=16384,
        help="from this N on, draw the matrix as float64 and factor it in place (default 16384)",
    )
    ap.add_argument("--json", metavar="OUT", default=None, help="write the numbers as JSON")
    return ap.parse_args(argv)


ARGS = parse_args()
# Thread counts must be fixed before numpy/torch load their BLAS and OpenMP runtimes.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import flint  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tensorrnn.ranks.modp import DEFAULT_PRIME, max_block_depth, rank_mod_p  # noqa: E402

torch.set_num_threads(ARGS.threads)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def dgemm_gflops(n: int) -> float:
    """One float64 n x n product on the current threads, in GFLOP/s."""
    a = torch.randn(n, n, dtype=torch.float64)
    b = torch.randn(n, n, dtype=torch.float64)
    torch.mm(a[:256], b)  # wake the thread pool
    t = time.perf_counter()
    torch.mm(a, b)
    return 2 * n**3 / (time.perf_counter() - t) / 1e9


def time_blas(M: np.ndarray, p: int) -> tuple[float, int]:
    t = time.perf_counter()
    r = rank_mod_p(M, p)
    return time.perf_counter() - t, r


def draw_float64(n: int, p: int, seed: int) -> tuple[torch.Tensor, float]:
    """A uniform n x n matrix with entries in [0, p), drawn as float64 in place (one copy)."""
    t = time.perf_counter()
    W = torch.empty(n, n, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    step = max(1, (1 << 22) // n)
    for i in range(0, n, step):
        torch.randint(0, p, W[i : i + step].shape, generator=gen, dtype=torch.float64, out=W[i : i + step])
    return W, time.perf_counter() - t


def time_blas_inplace(n: int, p: int, seed: int) -> tuple[float, float, int]:
    W, t_draw = draw_float64(n, p, seed)
    t = time.perf_counter()
    r = rank_mod_p(W, p, overwrite=True)
    t_rank = time.perf_counter() - t
    del W
    return t_draw, t_rank, r


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def time_flint(M: np.ndarray, p: int) -> tuple[float, float, int]:
    t = time.perf_counter()
    A = flint.nmod_mat(M.shape[0], M.shape[1], M.ravel().tolist(), p)
    t_conv = time.perf_counter() - t
    t = time.perf_counter()
    r = int(A.rank())
    return t_conv, time.perf_counter() - t, r


def main() -> None:
    p = ARGS.prime or DEFAULT_PRIME
    rng = np.random.default_rng(ARGS.seed)
    info = {
        "cpu": cpu_model(),
        "threads": ARGS.threads,
        "torch": torch.__version__,
        "python_flint": flint.__version__,
        "prime": p,
        "block_depth": max_block_depth(p),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_start": os.getloadavg(),
    }
    print(f"# {info['cpu']}, {ARGS.threads} threads, torch {torch.__version__}, p = {p}")
    print(f"# load average at start: {info['loadavg_start']}", flush=True)
    rows = []
    for n in ARGS.sizes:
        inplace = n >= ARGS.inplace_from
        M = None if inplace else rng.integers(0, p, size=(n, n), dtype=np.int64)
        dgemm, blas, ranks, draws, loads = [], [], set(), [], []
        for rep in range(ARGS.repeats):
            dgemm.append(dgemm_gflops(ARGS.dgemm_size))
            loads.append(os.getloadavg())
            if inplace:
                t_draw, t, r = time_blas_inplace(n, p, ARGS.seed + rep)
                draws.append(t_draw)
            else:
                t, r = time_blas(M, p)
            blas.append(t)
            ranks.add(r)
            print(
                f"  N={n}: blas {t:.2f} s (rank {r}{', in place' if inplace else ''}), "
                f"dgemm {dgemm[-1]:.1f} GF/s, load {loads[-1][0]:.2f}, peak RSS {peak_rss_gib():.1f} GiB",
                flush=True,
            )
        row = {
            "n": n,
            "in_place": inplace,
            "draw_s": draws,
            "loadavg": loads,
            "peak_rss_gib": peak_rss_gib(),
            "rank": sorted(ranks),
            "blas_s": statistics.median(blas),
            "blas_runs_s": blas,
            "dgemm_gflops": statistics.median(dgemm),
            "dgemm_runs_gflops": dgemm,
        }
        row["blas_gflops"] = (2 / 3) * n**3 / row["blas_s"] / 1e9
        row["pct_of_dgemm"] = 100 * row["blas_gflops"] / row["dgemm_gflops"]
        if n <= ARGS.flint_max and M is not None:
            conv, rank_t = [], []
            for _ in range(ARGS.flint_repeats):
                c, t, r = time_flint(M, p)
                conv.append(c)
                rank_t.append(t)
                if r not in ranks:
                    raise SystemExit(f"MISMATCH at N={n}: flint rank {r}, blas {sorted(ranks)}")
                print(f"  N={n}: flint convert {c:.2f} s + rank {t:.2f} s", flush=True)
            row["flint_convert_s"] = statistics.median(conv)
            row["flint_rank_s"] = statistics.median(rank_t)
            row["flint_total_s"] = row["flint_convert_s"] + row["flint_rank_s"]
            row["speedup_vs_flint_total"] = row["flint_total_s"] / row["blas_s"]
            row["speedup_vs_flint_rank"] = row["flint_rank_s"] / row["blas_s"]
        rows.append(row)
        del M
    info["loadavg_end"] = os.getloadavg()

    def fmt(row: dict, key: str, spec: str) -> str:
        return format(row[key], spec) if key in row else "-"

    print()
    print(
        "| N | rank | blas s | GFLOP/s | DGEMM GFLOP/s | % of DGEMM "
        "| flint convert s | flint rank s | speedup vs flint (total) | vs flint (rank only) "
        "| load (1 min) | peak RSS GiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['n']} | {','.join(map(str, row['rank']))} | {row['blas_s']:.2f} "
            f"| {row['blas_gflops']:.1f} | {row['dgemm_gflops']:.1f} | {row['pct_of_dgemm']:.0f}% "
            f"| {fmt(row, 'flint_convert_s', '.2f')} | {fmt(row, 'flint_rank_s', '.2f')} "
            f"| {fmt(row, 'speedup_vs_flint_total', '.1f')} "
            f"| {fmt(row, 'speedup_vs_flint_rank', '.1f')} "
            f"| {'/'.join(f'{x[0]:.1f}' for x in row['loadavg'])} | {row['peak_rss_gib']:.1f} |"
        )
    print(f"\n# load average at end: {info['loadavg_end']}")
    if ARGS.json:
        with open(ARGS.json, "w") as fh:
            json.dump({"info": info, "rows": rows}, fh, indent=2)
        print(f"# wrote {ARGS.json}")


if __name__ == "__main__":
    main()
