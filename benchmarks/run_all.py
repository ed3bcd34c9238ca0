"""Run every benchmark with its documented settings (``make bench``).

Each benchmark is its own script with its own flags; this runs them in turn in
fresh processes, pinned to ``--threads`` threads, and stops at the first failure.
The numbers go to stdout; copy the tables into ``BENCHMARKS.md`` with the date,
the machine and the command.

    .venv/bin/python benchmarks/run_all.py [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def commands(threads: int, quick: bool) -> list[list[str]]:
    repeats = "1" if quick else "3"
    sizes = ["1024", "2048"] if quick else ["2048", "4096", "8192"]
    return [
        ["bench_networks.py", "--threads", str(threads), "--repeats", "3" if quick else "15"],
        ["bench_ranks.py", "--threads", str(threads), "--repeats", repeats,
         *(["--skip-sweep"] if quick else [])],
        ["bench_modp.py", "--threads", str(threads), "--repeats", repeats, "--sizes", *sizes],
        ["bench_cpfit.py", "--threads", "1", "--starts", "2" if quick else "6"],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads per benchmark (default 2)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    args = parser.parse_args()
    for script, *flags in commands(args.threads, args.quick):
        print(f"\n=== {script} {' '.join(flags)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *flags], check=True)


if __name__ == "__main__":
    main()
