"""Regenerate the README's results section from the result files in docs/results/.

    python scripts/update_readme.py --collect   # copy fresh results into docs/results/
    python scripts/update_readme.py             # rewrite the section from docs/results/
    python scripts/update_readme.py --check     # exit 1 if README.md is out of date

`--collect` takes reports/demo/ranks, reports/demo/compare and the accuracy-target
sweeps results/fashion_targets and results/mnist10k_targets, where present.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"
TARGETS = [  # (sweep folder, dataset, model, target test accuracy)
    ("fashion_targets", "fashion-mnist", "tt", 0.90),
    ("fashion_targets", "fashion-mnist", "tt-shared", 0.89),
    ("mnist10k_targets", "mnist-10k", "tt", 0.96),
]
KEEP = ("ranks.csv", "ranks.md", "ranks.png", "results.csv", "plan.json", "report.md",
        "accuracy_vs_rank.png", "accuracy_vs_parameters.png", "training_curves.png")  # fmt: skip


def collect() -> None:
    sources = {"ranks": ROOT / "reports/demo/ranks", "quick": ROOT / "reports/demo/compare"}
    sources |= {name: ROOT / "results" / name for name, *_ in TARGETS}
    for name, folder in sources.items():
        if not folder.is_dir():
            print(f"skip {name}: {folder} does not exist")
            continue
        target = RESULTS / name
        target.mkdir(parents=True, exist_ok=True)
        for file in KEEP:
            if (folder / file).exists():
                shutil.copy2(folder / file, target / file)
        print(f"collected {folder} -> {target}")


def targets_table() -> str:
    from tensorrnn.report import summarize

    lines = ["| data set | model | target | best mean test accuracy | seeds | rank | met |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for sweep, dataset, model, target in TARGETS:
        path = RESULTS / sweep / "results.csv"
        if not path.exists():
            lines.append(f"| {dataset} | {model} | {100 * target:.0f} % | not run yet | | | |")
            continue
        rows = list(csv.DictReader(path.open()))
        cands = [s for s in summarize(rows, ["seed"]) if s["dataset"] == dataset and s["model"] == model
                 and s["finished"]]  # fmt: skip
        if not cands:
            lines.append(f"| {dataset} | {model} | {100 * target:.0f} % | no finished run | | | |")
            continue
        best = max(cands, key=lambda s: s["test_mean"])
        met = "yes" if best["test_mean"] >= target else f"no (−{100 * (target - best['test_mean']):.2f} pt)"
        lines.append(f"| {dataset} | {model} | {100 * target:.0f} % | {100 * best['test_mean']:.2f} % "
                     f"| {best['finished']} | {best['rank']} | {met} |")  # fmt: skip
    return "\n".join(lines)


def render() -> str:
    from tensorrnn.report import demo_sections, sections_markdown

    parts = []
    if (RESULTS / "ranks" / "ranks.csv").exists() and (RESULTS / "quick" / "results.csv").exists():
        sections = [s for s in demo_sections(RESULTS / "ranks", RESULTS / "quick")
                    if s["title"] != "Rank table"]  # fmt: skip
        parts.append(sections_markdown(sections, ROOT, level=3))
        parts.append("The full rank table with verdicts and flags: "
                     "[`docs/results/ranks/ranks.md`](docs/results/ranks/ranks.md).\n")  # fmt: skip
    parts.append("### Accuracy targets\n")
    parts.append(targets_table())
    parts.append("\nSettings, commands and timings: [`benchmarks/ACCURACY.md`](benchmarks/ACCURACY.md).")
    return "\n".join(parts).strip()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collect", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.collect:
        collect()
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{render()}\n{END}{tail}"
    if args.check:
        if updated != text:
            print("README.md's results section is out of date: run `make readme`")
            return 1
        return 0
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
