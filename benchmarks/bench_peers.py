"""Issue 23, item 5: the shared-core training step against the peer library, in one process.

From a clean clone (nothing else needed; the first run builds a throwaway venv)::

    python3 benchmarks/bench_peers.py

Times one training step (forward, cross-entropy, backward into every parameter;
B = 512, d = 49, n = 16, r = 32, 10 classes, float32, CPU) for

* ``TTNet(shared=True)`` with the fused C++ chain (``compile_chain=True``) and with
  the plain loops;
* tensorkrowch's ``UMPSLayer`` (one core shared by every site, like ``tt-shared``)
  and ``MPSLayer`` (distinct cores), each traced (``model.trace``) and run with the
  fastest of its contraction options (``inline_input``, ``inline_mats``, each
  ``True``/``False``, with and without ``renormalize``) picked by a screen in this
  run (two steps per option) and then timed with the others;

at one torch thread and at two, round-robin (one untimed step, then ``--block``
timed steps per version and round), medians of wall-clock time.

tensorkrowch is not a dependency of the project: it is installed into a separate
venv (``--venv``, default ``/tmp/tensorrnn-peers-venv``) with the pinned CPU torch
first (``pip install torch==2.13.0``) and then ``pip install -c constraints.txt
tensorkrowch ninja numpy``; the script then runs itself again inside that venv with
this checkout's ``src`` on ``PYTHONPATH``. Every setting of one thread count runs in
one process (thread counts are fixed before torch loads, so each count is its own
process: the script starts them one after the other and prints one table).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default="/tmp/tensorrnn-peers-venv", help="throwaway venv for tensorkrowch")
    ap.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default 1 2)"
    )
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    ap.add_argument("--block", type=int, default=3, help="timed steps per version and round (default 3)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--d", type=int, default=49)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def ensure_venv(venv: Path) -> Path:
    """The venv's python, created with the CPU torch and tensorkrowch if missing."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import tensorkrowch, torch, ninja"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"# creating {venv} (torch==2.13.0, then tensorkrowch with constraints.txt)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "-c", str(REPO / "constraints.txt"), "tensorkrowch", "ninja", "numpy"], check=True)
    return python


def driver(args: argparse.Namespace) -> None:
    python = ensure_venv(Path(args.venv))
    # The fused chain is built for the venv's torch into the venv, never into the shared
    # ~/.cache/torch_extensions (another torch's build there would be rebuilt by each in turn).
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "TORCH_EXTENSIONS_DIR": str(Path(args.venv) / "torch_extensions"),
    }
    out = subprocess.run(
        [str(python), "-c", "import tensorkrowch, torch; print(tensorkrowch.__version__, torch.__version__)"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.split()  # fmt: skip
    print(f"# tensorkrowch {out[0]}, torch {out[1]} in {args.venv}; load average {os.getloadavg()}")
    print(f"# B={args.batch} d={args.d} n={args.n} r={args.rank}, float32, medians of {args.repeats} "
          f"rounds x {args.block} steps")  # fmt: skip
    print("\n| threads | step (options) | ms/step | samples/s | × tensorkrowch UMPSLayer |")
    print("|---:|---|---:|---:|---:|")
    sizes = ["--batch", str(args.batch), "--d", str(args.d), "--n", str(args.n), "--rank", str(args.rank)]
    rounds = ["--repeats", str(args.repeats), "--block", str(args.block)]
    for threads in args.threads:
        thread_env = {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        thread_env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        cmd = [str(python), str(Path(__file__).resolve()), *sizes, *rounds, "--worker", str(threads)]
        subprocess.run(cmd, check=True, env=thread_env)
    print(f"\n# load average at the end {os.getloadavg()}")


def worker(args: argparse.Namespace) -> None:
    import datetime
    import statistics
    import time
    import warnings
    from collections.abc import Callable

    import tensorkrowch as tk
    import torch
    import torch.nn.functional as F

    from tensorrnn import chain_kernel
    from tensorrnn.networks import TTNet

    warnings.filterwarnings("ignore")  # tensorkrowch's cropping / indexing warnings, once per step
    torch.set_num_threads(args.worker)
    B, D, N, R, C = args.batch, args.d, args.n, args.rank, 10
    gen = torch.Generator().manual_seed(0)
    phi = torch.rand(B, D, N, generator=gen)
    labels = torch.randint(0, C, (B,), generator=gen)
    if chain_kernel.load() is None:
        raise SystemExit("the fused chain could not be built here; nothing to compare")

    ours = TTNet(D, N, R, C, shared=True, init="orthogonal", generator=gen)

    def tt_step(fused: bool) -> Callable[[], None]:
        def run() -> None:
            ours.compile_chain = fused
            ours.zero_grad(set_to_none=True)
            F.cross_entropy(ours(phi), labels).backward()

        return run

    def tk_step(model: torch.nn.Module, **options: bool) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(phi, **options), labels).backward()

        return run

    # randn_eye: identity-like cores, so the unnormalised products stay finite at d = 49.
    peers = {}
    for name, cls in (
        ("tensorkrowch UMPSLayer", tk.models.UMPSLayer),
        ("tensorkrowch MPSLayer", tk.models.MPSLayer),
    ):
        torch.manual_seed(0)
        model = cls(n_features=D, in_dim=N, out_dim=C, bond_dim=R, init_method="randn_eye", std=1e-2)
        model.trace(phi[:2])
        peers[name] = model
    # Screen: every option of each peer, two single steps after a warm-up one; the
    # fastest (sum of the two) goes into the timed rounds.
    screen: dict[str, dict[str, float]] = {}
    chosen: dict[str, Callable[[], None]] = {}
    for name, model in peers.items():
        screen[name] = {}
        for inline_input in (False, True):
            for inline_mats in (False, True):
                for renormalize in (False, True):
                    opts = {"inline_input": inline_input, "inline_mats": inline_mats}
                    opts["renormalize"] = renormalize
                    fn = tk_step(model, **opts)
                    fn()
                    start = time.perf_counter()
                    fn()
                    fn()
                    screen[name][", ".join(f"{k}={v}" for k, v in opts.items())] = time.perf_counter() - start
        label = min(screen[name], key=screen[name].__getitem__)
        inline_input, inline_mats, renormalize = (part.endswith("True") for part in label.split(", "))
        chosen[f"{name} ({label})"] = tk_step(
            model, inline_input=inline_input, inline_mats=inline_mats, renormalize=renormalize
        )

    variants: dict[str, Callable[[], None]] = {
        "TTNet(shared=True), fused C++ chain": tt_step(True),
        "TTNet(shared=True), plain loops": tt_step(False),
        **chosen,
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for round_ in range(1 + args.repeats):
        for key, fn in variants.items():
            fn()
            start = time.perf_counter()
            for _ in range(args.block):
                fn()
            if round_:
                times[key].append((time.perf_counter() - start) / args.block)
    med = {k: statistics.median(v) for k, v in times.items()}
    reference = next(t for k, t in med.items() if k.startswith("tensorkrowch UMPSLayer"))
    for name, t in med.items():
        print(f"| {args.worker} | {name} | {1e3 * t:.1f} | {B / t:,.0f} | {reference / t:.2f} |")
    stamp = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M}Z"
    print(f"\n# {args.worker} thread(s), {stamp}, load {os.getloadavg()[0]:.1f}; screen of the options, "
          "ms per step (mean of 2):")  # fmt: skip
    for name, options in screen.items():
        for label, t in options.items():
            print(f"#   {name} {label}: {1e3 * t / 2:.0f}")
    print(flush=True)


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.worker is None:
        driver(ARGS)
    else:
        worker(ARGS)
