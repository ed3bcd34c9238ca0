"""Issue 12, item 4: the TTNet(shared=True) training step against the GEMM of its shape.

    .venv/bin/python benchmarks/bench_shared_step.py [--threads 2] [--repeats 21]
    .venv/bin/python benchmarks/bench_shared_step.py --d 784 --n 2 --rank 64 --batch 128

Times forward + backward (cross-entropy, gradients for the cores and for the
features Φ) of ``TTNet(d=49, n=16, r=32, shared=True)`` at B = 512 (the issue's
shape; ``--d``, ``--n``, ``--rank`` and ``--batch`` set others), float32, and
in the same rounds the float32 GEMM ``(B×r)·(r×n·r)``. The issue's yardstick:
the step does ``6·B·(d−2)·n·r²`` flops of matrix products (forward and the two
backward products), and its rate in GFLOP/s should be at least half the rate
of that GEMM. Two versions of the same step are timed round-robin, each round
running every version as a block: one untimed step, then ``--block`` timed
consecutive steps, as a training loop runs them back to back (the untimed step
warms the caches and the allocator after the other version's step):

* ``eager``: the hand-written forward and backward loops of ``_SequentialChain``
  in Python;
* ``fused`` (``compile_chain=True``, ``tensorrnn train --compile``): the same
  loops in C++ (``tensorrnn/chain_kernel.cpp``), each step's elementwise work in
  one pass (the build, once per machine, is printed, not counted).

Medians of wall-clock and of this process's CPU time (the steadier measure on
a shared machine). Threads and OpenMP's wait policy are set before torch loads.
"""

from __future__ import annotations

import argparse
import os
import sys


def _threads_from_argv() -> int:
    # OpenMP reads its settings when torch loads, so they are taken from argv by hand.
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 2


THREADS = _threads_from_argv()
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import datetime  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tensorrnn import chain_kernel  # noqa: E402
from tensorrnn.networks import TTNet  # noqa: E402

C = 10


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=21, help="timed rounds (default 21)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--block", type=int, default=4, help="timed steps per version and round (default 4)")
    parser.add_argument("--d", type=int, default=49, help="positions (default 49)")
    parser.add_argument("--n", type=int, default=16, help="feature size (default 16)")
    parser.add_argument("--rank", type=int, default=32, help="TT rank r (default 32)")
    parser.add_argument("--batch", type=int, default=512, help="batch size B (default 512)")
    args = parser.parse_args()
    B, D, N, R = args.batch, args.d, args.n, args.rank  # the names
    step_flops = 6 * B * (D - 2) * N * R * R  # the count: matrix products only
    gemm_flops = 2 * B * R * N * R
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    phi = torch.rand(B, D, N, generator=gen).requires_grad_()
    labels = torch.randint(0, C, (B,), generator=gen)
    net = TTNet(D, N, R, C, shared=True, init="orthogonal", generator=gen)
    a, b = torch.randn(B, R, generator=gen), torch.randn(R, N * R, generator=gen)
    gemm_out = torch.empty(B, N * R)

    def step(fused: bool) -> Callable[[], object]:
        def run() -> None:
            net.compile_chain = fused
            net.zero_grad(set_to_none=True)
            phi.grad = None
            F.cross_entropy(net(phi), labels).backward()

        return run

    build_seconds = _timed(chain_kernel.load)[0]
    if chain_kernel.load() is None:
        raise SystemExit("the fused chain could not be built on this machine; nothing to compare")

    def gemm() -> None:
        for _ in range(D - 2):  # as many as the step has positions, so timer overhead is shared
            torch.mm(a, b, out=gemm_out)

    variants = {"eager": step(False), "fused": step(True), "gemm": gemm}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for round_ in range(args.warmup + args.repeats):
        for name, fn in variants.items():
            fn()

            def block(fn: Callable[[], object] = fn) -> None:
                for _ in range(args.block):
                    fn()

            wall, cpu = _timed(block)
            if round_ >= args.warmup:
                times[name].append((wall / args.block, cpu / args.block))

    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M}Z; torch {torch.__version__}; "
          f"threads {args.threads}; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")  # fmt: skip
    print(f"B={B} d={D} n={N} r={R} float32; {args.repeats} rounds of {args.block} steps after "
          f"{args.warmup} warm-up; "
          f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}; "
          f"building the fused chain (or loading it): {build_seconds:.0f} s\n")  # fmt: skip
    for column, label in ((0, "wall-clock"), (1, "CPU time")):
        gemm_rate = (D - 2) * gemm_flops / statistics.median(t[column] for t in times["gemm"]) / 1e9
        print(f"Medians of {label}: GEMM (B×r)(r×n·r) at {gemm_rate:.1f} GFLOP/s\n")
        print("| step | ms/step | samples/s | GFLOP/s | % of the GEMM rate |")
        print("|---|---:|---:|---:|---:|")
        for name in ("eager", "fused"):
            seconds = statistics.median(t[column] for t in times[name])
            rate = step_flops / seconds / 1e9
            print(f"| {name} | {1e3 * seconds:.1f} | {B / seconds:,.0f} | {rate:.1f} | "
                  f"{100 * rate / gemm_rate:.0f}% |")  # fmt: skip
        print()


if __name__ == "__main__":
    main()
