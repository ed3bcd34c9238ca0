"""Exact CP fits: TensorLy's ALS (parafac) against the Levenberg-Marquardt fitter.

For tt-shared tensors with n = 2, r = 3 and d = 4, 6 (CP rank = odd/even rank,
4 and 8), count how many of several random starts reach a relative error below
1e-10 (ALS) / 1e-12 with bounded terms (LM), and the time per start.

    python benchmarks/bench_cpfit.py --starts 6 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import tensorly as tl
    from tensorly.decomposition import parafac

    from tensorrnn.formats import random_tensor
    from tensorrnn.ranks import fit_cp

    print("| tensor | rank | method | starts reaching the threshold | best rel. error | s / start |")
    print("|---|---|---|---|---|---|")
    for d, rank in ((4, 4), (6, 8)):
        tensor = random_tensor("tt-shared", 2, 3, d, seed=0).full().numpy()
        norm = np.linalg.norm(tensor)
        als_errors, als_times = [], []
        for start in range(args.starts):
            began = time.perf_counter()
            cp = parafac(tl.tensor(tensor), rank, n_iter_max=20000, tol=1e-16, init="random",
                         random_state=start)  # fmt: skip
            als_times.append(time.perf_counter() - began)
            als_errors.append(np.linalg.norm(tl.cp_to_tensor(cp) - tensor) / norm)
        lm_errors, lm_ok, lm_times = [], 0, []
        for start in range(args.starts):
            began = time.perf_counter()
            fit = fit_cp(tensor, rank, restarts=1, seed=start)
            lm_times.append(time.perf_counter() - began)
            lm_errors.append(fit.relative_error)
            lm_ok += fit.exact
        als_ok = sum(e < 1e-10 for e in als_errors)
        print(f"| 2^{d} tt-shared r=3 | {rank} | ALS (parafac) | {als_ok}/{args.starts} (< 1e-10) "
              f"| {min(als_errors):.1e} | {statistics.median(als_times):.2f} |")  # fmt: skip
        print(f"| 2^{d} tt-shared r=3 | {rank} | LM (fit_cp) | {lm_ok}/{args.starts} (< 1e-12, bounded) "
              f"| {min(lm_errors):.1e} | {statistics.median(lm_times):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
