"""Tables and figures of a comparison, from its ``results.csv`` rows and run folders."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MODEL_STYLE = {
    "cp": ("tab:gray", "D", "CP (shallow)"),
    "tt": ("tab:blue", "o", "TT (distinct cores)"),
    "tt-shared": ("tab:red", "s", "TT (shared core)"),
}
FIGURES = ("accuracy_vs_rank.png", "accuracy_vs_parameters.png", "training_curves.png")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> list[dict[str, Any]]:
    """Mean ± std over seeds, per (dataset, model, rank, other axes)."""
    keys = ["dataset", "model", "rank"] + [a for a in axes if a not in ("dataset", "model", "rank", "seed")]
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(k) for k in keys)].append(row)
    out = []
    for key, members in groups.items():
        done = [m for m in members if m["status"] == "finished"]
        acc = _mean_std([float(m["test_accuracy"]) for m in done])
        spe = _mean_std([float(m["seconds_per_epoch"]) for m in done])
        params = [int(m["num_parameters"]) for m in done]
        out.append({
            **dict(zip(keys, key, strict=True)), "runs": len(members), "finished": len(done),
            "test_mean": acc[0], "test_std": acc[1], "parameters": params[0] if params else None,
            "sec_per_epoch": spe[0], "sec_std": spe[1],
        })  # fmt: skip
    order = {"cp": 0, "tt": 1, "tt-shared": 2}
    out.sort(key=lambda s: (str(s["dataset"]), order.get(s["model"], 9), s["rank"],
                            tuple(str(s[k]) for k in keys[3:])))  # fmt: skip
    return out


def comparison_table(summary: Sequence[Mapping[str, Any]], extra_keys: Sequence[str] = ()) -> str:
    """Markdown table of a summary."""
    head = ["dataset", "model", "rank", *extra_keys, "runs", "test accuracy (mean ± std)",
            "parameters", "seconds / epoch"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        acc = (
            "–" if math.isnan(s["test_mean"])
            else f"{100 * s['test_mean']:.2f} ± {100 * s['test_std']:.2f} %"
        )  # fmt: skip
        spe = "–" if math.isnan(s["sec_per_epoch"]) else f"{s['sec_per_epoch']:.2f}"
        cells = [s["dataset"], s["model"], s["rank"], *(s[k] for k in extra_keys),
                 f"{s['finished']}/{s['runs']}", acc, s["parameters"] or "–", spe]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def best_by_model(summary: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The setting with the highest mean test accuracy per (dataset, model)."""
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for s in summary:
        key = (s["dataset"], s["model"])
        if not math.isnan(s["test_mean"]) and (key not in best or s["test_mean"] > best[key]["test_mean"]):
            best[key] = s
    return best


def _plot_accuracy(summary, path: Path, x_key: str, xlabel: str, log_x: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({s["dataset"] for s in summary})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for model, (color, marker, label) in MODEL_STYLE.items():
            pts = sorted((s[x_key], 100 * s["test_mean"], 100 * s["test_std"]) for s in summary
                         if s["dataset"] == dataset and s["model"] == model
                         and not math.isnan(s["test_mean"]) and s[x_key] is not None)  # fmt: skip
            if pts:
                xs, ys, es = zip(*pts, strict=True)
                ax.errorbar(xs, ys, yerr=es, color=color, marker=marker, capsize=3, label=label)
        if log_x:
            ax.set_xscale("log")
        elif x_key == "rank":
            ax.set_xscale("log", base=2)
        ax.set_title(dataset)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _plot_curves(out: Path, rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    seen = set()
    for row in rows:
        metrics = out / "runs" / row["run"] / "metrics.jsonl"
        if not metrics.exists():
            continue
        history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        if not history:
            continue
        color, _, label = MODEL_STYLE.get(row["model"], ("black", "x", row["model"]))
        ax.plot([h["epoch"] for h in history], [100 * h["val_accuracy"] for h in history],
                color=color, alpha=0.6, lw=1, label=None if label in seen else label)  # fmt: skip
        seen.add(label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("training curves (every run)")
    ax.grid(alpha=0.3)
    if seen:
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_comparison_report(plan, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``report.md`` and the three figures into the sweep folder."""
    out = plan.out
    extra = [a for a in plan.axes if a not in ("dataset", "model", "rank", "seed")]
    summary = summarize(rows, plan.axes)
    _plot_accuracy(summary, out / FIGURES[0], "rank", "rank (R for CP, r for TT)", log_x=False)
    _plot_accuracy(summary, out / FIGURES[1], "parameters", "number of parameters", log_x=True)
    _plot_curves(out, rows, out / FIGURES[2])
    failed = [r for r in rows if r["status"] == "failed"]
    best = best_by_model(summary)
    lines = [
        f"# Comparison: {plan.name}",
        "",
        f"{len(rows)} runs ({sum(r['status'] == 'finished' for r in rows)} finished, "
        f"{len(failed)} failed). Mean ± std over seeds of the test accuracy of the model "
        "with the best validation accuracy.",
        "",
        comparison_table(summary, extra),
        "",
        "Best setting per model: "
        + "; ".join(f"{m} on {d}: {100 * s['test_mean']:.2f} % (rank {s['rank']}, "
                    f"{s['parameters']} parameters)" for (d, m), s in best.items()) + ".",  # fmt: skip
        "",
        *[f"![{name}]({name})" for name in FIGURES],
    ]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- {r['run']}: {r['error']}" for r in failed]
    tmp = out / "report.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out / "report.md")
    return out / "report.md"
