"""Training throughput of the score networks against naive TT baselines.

    .venv/bin/python benchmarks/bench_networks.py [--threads 2] [--repeats 15]
                                                  [--omp-wait-policy passive]

Measures forward + backward (cross-entropy loss, gradients for every parameter
and for the features Φ, as when the feature map is learned) at B = 512, d = 49,
n = 16, r = 32, C = 10, float32, for CPNet, TTNet and TTNet(shared=True) under
both schedules, and two naive versions of the textbook RNN step, which forms
``M_t = Σ_i Φ[:, t, i] G_t[:, i, :]`` per sample, a ``(B, r, r)`` tensor, and then
multiplies the state by it with ``bmm``:

* ``naive (einsum)``: ``M_t`` by ``torch.einsum`` (which torch runs as a GEMM
  ``(B, n)(n, r·r)``); the fairest naive version;
* ``naive (broadcast)``: ``M_t`` by the literal sum
  ``(Φ[:, t, :, None, None] * G_t.transpose(0, 1)).sum(1)``.

Both use the same cores, normalisation and logits as :class:`TTNet`; only the
contraction differs. It also times float32 GEMMs of the three shapes the
sequential step runs. Every variant is timed once per round, round-robin, so
load from other processes falls on all of them alike. Two tables: medians of
wall-clock time, and medians of this process's CPU time (all threads
together; it leaves out time spent descheduled, so it is far less sensitive to
other processes, but counts OpenMP spin-waiting; with ``--threads 1`` it is the
time one core needs).
"""

from __future__ import annotations

import argparse
import os
import sys


def _option_from_argv(name: str, default: str) -> str:
    # OpenMP reads its settings once, when torch loads: they must be in the
    # environment before the import, so they are read from argv by hand here.
    for i, arg in enumerate(sys.argv):
        if arg == name and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


THREADS = int(_option_from_argv("--threads", "2"))
WAIT_POLICY = _option_from_argv("--omp-wait-policy", "passive")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
if WAIT_POLICY != "default":
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY.upper()

import datetime  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tensorrnn.networks import CPNet, TTNet, _normalize  # noqa: E402

B, D, N, R, C = 512, 49, 16, 32, 10


class NaiveTT(torch.nn.Module):
    """The textbook RNN step: per-sample ``M_t`` (B, r, r), then ``bmm`` with the state."""

    def __init__(self, net: TTNet, literal: bool) -> None:
        super().__init__()
        self.net, self.literal = net, literal

    def step_matrix(self, f: torch.Tensor, core: torch.Tensor) -> torch.Tensor:
        if self.literal:
            return (f[:, :, None, None] * core.transpose(0, 1)[None]).sum(1)
        return torch.einsum("bi,aic->bac", f, core)

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        net, eps = self.net, 10 * torch.finfo(phi.dtype).eps
        log_scale = phi.new_zeros(phi.shape[0])
        h, log_scale = _normalize(phi[:, 0] @ net.first, log_scale, eps, (-1,))
        for t in range(1, net.d - 1):
            m = self.step_matrix(phi[:, t], net.core(t))
            h = torch.bmm(h.unsqueeze(1), m).squeeze(1)
            h, log_scale = _normalize(h, log_scale, eps, (-1,))
        return torch.einsum("ba,aic,bi->bc", h, net.last, phi[:, -1])


def tt_forward_flops(schedule: str) -> int:
    """2 × multiply-adds of one TT forward pass (normalisation not counted)."""
    first = 2 * B * N * R
    last = 2 * B * R * N * C + 2 * B * N * C
    if schedule == "sequential":  # GEMM (B, r)(r, n·r), then (1, n)(n, r) per sample
        middle = (D - 2) * (2 * B * R * N * R + 2 * B * N * R)
    else:  # M_t for every t, then d − 3 products of (r, r) matrices per sample
        middle = (D - 2) * 2 * B * N * R * R + (D - 3) * 2 * B * R**3 + 2 * B * R * R
    return first + middle + last


def naive_forward_flops() -> int:
    return tt_forward_flops("sequential") + (D - 2) * (2 * B * R * R - 2 * B * N * R)


def cp_forward_flops() -> int:
    return 2 * B * D * N * R + 2 * B * R * C


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line)
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--omp-wait-policy",
        choices=("passive", "active", "default"),
        default="passive",
        help="OMP_WAIT_POLICY; passive (default) keeps idle OpenMP threads from spinning, "
        "which on shared cores made the sequential TT step ~10x faster",
    )
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    phi = torch.rand(B, D, N, generator=gen).requires_grad_()
    labels = torch.randint(0, C, (B,), generator=gen)
    tt = TTNet(D, N, R, C, generator=gen)
    shared = TTNet(D, N, R, C, shared=True, generator=gen)
    cp = CPNet(D, N, R, C, generator=gen)

    # name -> (model, parameters, training flops); backward ≈ 2 × forward.
    cases: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], list, int]] = {}
    for sched in ("sequential", "parallel"):
        cases[f"TTNet | {sched}"] = (
            lambda x, s=sched: tt(x, schedule=s),
            list(tt.parameters()),
            3 * tt_forward_flops(sched),
        )
        cases[f"TTNet(shared=True) | {sched}"] = (
            lambda x, s=sched: shared(x, schedule=s),
            list(shared.parameters()),
            3 * tt_forward_flops(sched),
        )
        cases[f"CPNet | {sched}"] = (
            lambda x, s=sched: cp(x, schedule=s),
            list(cp.parameters()),
            3 * cp_forward_flops(),
        )
    naive_flops = 3 * naive_forward_flops()
    cases["naive TT (einsum M_t, bmm) | sequential"] = (
        NaiveTT(tt, literal=False),
        list(tt.parameters()),
        naive_flops,
    )
    cases["naive TT (broadcast M_t, bmm) | sequential"] = (
        NaiveTT(tt, literal=True),
        list(tt.parameters()),
        naive_flops,
    )
    baseline = "naive TT (einsum M_t, bmm) | sequential"
    literal = "naive TT (broadcast M_t, bmm) | sequential"

    # The sequential step's GEMMs: forward (B, r)(r, n·r); backward (B, r)(r, r·n)
    # for the state and (r·n, B)(B, r) for the core.
    a, g = torch.randn(B, R), torch.randn(R, N * R)
    x, gu = torch.randn(R * N, B), torch.randn(B, R)
    gemms = {
        "(512x32)(32x512)": (lambda: a @ g, 2 * B * R * N * R),
        "(512x512)(512x32)": (lambda: x @ gu, 2 * B * N * R * R),
    }
    gemm_inner = 20  # one GEMM takes ~0.1 ms: time a batch of them

    def train_step(model: Callable, params: list) -> None:
        for p in [phi, *params]:
            p.grad = None
        F.cross_entropy(model(phi), labels).backward()

    wall: dict[str, list[float]] = {name: [] for name in [*cases, *gemms]}
    cpu: dict[str, list[float]] = {name: [] for name in [*cases, *gemms]}
    for rnd in range(args.warmup + args.repeats):
        for name, (model, params, _) in cases.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            train_step(model, params)
            if rnd >= args.warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - cpu_start)
        for name, (fn, _) in gemms.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(gemm_inner):
                fn()
            if rnd >= args.warmup:
                wall[name].append((time.perf_counter() - start) / gemm_inner)
                cpu[name].append((time.process_time() - cpu_start) / gemm_inner)

    wall_med = {k: statistics.median(v) for k, v in wall.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    # The step's GEMM mix: one forward-shaped and two backward-shaped GEMMs.
    fwd, bwd = "(512x32)(32x512)", "(512x512)(512x32)"
    mix_flops = gemms[fwd][1] + 2 * gemms[bwd][1]

    def gemm_rate(t: dict[str, float]) -> float:
        return mix_flops / (t[fwd] + 2 * t[bwd]) / 1e9

    print(
        f"machine: {machine()}; torch {torch.__version__}; threads {args.threads}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"
    )
    print(f"date: {datetime.datetime.now().isoformat(timespec='minutes')}")
    print(f"command: {' '.join(['python', *sys.argv])}")
    print(f"B={B} d={D} n={N} r={R} C={C} float32; {args.repeats} rounds after {args.warmup} warm-up")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    for label, t in (("wall-clock", wall_med), ("CPU time of this process", cpu_med)):
        gemm = gemm_rate(t)
        print()
        print(f"Medians of {label}:")
        print()
        print(
            "| network | schedule | ms/step | samples/s | × naive einsum | × naive broadcast "
            "| GFLOP/s | % of GEMM mix |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for name, (_, _, flops) in cases.items():
            net, sched = name.split(" | ")
            rate = flops / t[name] / 1e9
            print(
                f"| {net} | {sched} | {1e3 * t[name]:.1f} | {B / t[name]:,.0f} "
                f"| {t[baseline] / t[name]:.2f} | {t[literal] / t[name]:.2f} "
                f"| {rate:.1f} | {100 * rate / gemm:.0f}% |"
            )
        print()
        print("| float32 GEMM | ms | GFLOP/s |")
        print("|---|---:|---:|")
        for name, (_, flops) in gemms.items():
            print(f"| {name} | {1e3 * t[name]:.3f} | {flops / t[name] / 1e9:.1f} |")
        print(f"| step mix (1 forward + 2 backward shapes) | | {gemm:.1f} |")


if __name__ == "__main__":
    main()
