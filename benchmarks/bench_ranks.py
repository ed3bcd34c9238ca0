"""Rank-laboratory benchmarks: float path vs the naive pipeline, exact rank at N = 8192,
and the default sweep. Medians over repeats; thread count pinned before torch loads.

    python benchmarks/bench_ranks.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch
    from tensorly.tt_tensor import tt_to_tensor

    from tensorrnn.formats import parse_split, random_tensor
    from tensorrnn.ranks import DEFAULT_PRIME, exact_rank, numerical_rank

    torch.set_num_threads(args.threads)

    def median_time(fn) -> tuple[float, object]:
        times, out = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times), out

    print(f"threads={args.threads} repeats={args.repeats} torch={torch.__version__}")
    print("\n## float path, tt-shared n=2 r=3 d=24 (4096 x 4096 odd-even matricization)\n")
    tensor = random_tensor("tt-shared", 2, 3, 24, seed=0)
    rows = list(parse_split("odd-even", 24))
    cols = [k for k in range(24) if k not in rows]

    def naive():
        full = tt_to_tensor([c.numpy() for c in tensor.tt_cores()])
        matrix = np.transpose(full, rows + cols).reshape(2**12, 2**12)
        return int(np.linalg.matrix_rank(matrix))

    def ours():
        return numerical_rank(tensor.matricize("odd-even")).rank

    t_naive, r_naive = median_time(naive)
    t_ours, r_ours = median_time(ours)
    t_build, _ = median_time(lambda: tensor.matricize("odd-even"))
    print("| pipeline | seconds (median) | rank |\n|---|---|---|")
    print(f"| naive: tt_to_tensor, transpose, numpy matrix_rank | {t_naive:.2f} | {r_naive} |")
    print(f"| tensorrnn: matricize from cores + torch svdvals | {t_ours:.2f} | {r_ours} |")
    print(f"| (of which building the matrix from the cores) | {t_build:.3f} | |")
    print(f"\nratio naive / tensorrnn: {t_naive / t_ours:.2f}x")

    print("\n## exact rank, tt-shared n=2 r=3 d=26 (8192 x 8192), blas engine\n")
    integer = random_tensor("tt-shared", 2, 3, 26, seed=0, modulus=DEFAULT_PRIME)
    t_mat, matrix = median_time(lambda: integer.matricize("odd-even"))
    t_rank, rank = median_time(lambda: exact_rank(matrix, DEFAULT_PRIME, engine="blas"))
    print(f"matricize mod p: {t_mat:.2f} s; rank {rank} in {t_rank:.2f} s; total {t_mat + t_rank:.2f} s")

    if not args.skip_sweep:
        print("\n## default sweep (`tensorrnn ranks` with no arguments), one run\n")
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from tensorrnn.cli import main; main()",
                            "ranks", "--out", out, "-q"], check=True)  # fmt: skip
            print(f"default sweep: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
