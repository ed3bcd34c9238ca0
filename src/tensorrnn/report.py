"""Tables and figures of a comparison, from its ``results.csv`` rows and run folders."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensorrnn.atomic import atomic_save_figure, atomic_write_text
from tensorrnn.models import family_names, plot_style, short_name
from tensorrnn.stats import (
    Interval,
    accuracy_interval,
    comparison_words,
    difference_interval,
    format_interval,
    signed_number,
)
from tensorrnn.sweep import TEST_CORRECT_FILE, SweepPlan, collect_results, read_test_correct

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
        val = _mean_std([float(m["val_accuracy"]) for m in done if m.get("val_accuracy") not in ("", None)])
        spe = _mean_std([float(m["seconds_per_epoch"]) for m in done])
        params = [int(m["num_parameters"]) for m in done]
        out.append({
            **dict(zip(keys, key, strict=True)), "runs": len(members), "finished": len(done),
            "test_mean": acc[0], "test_std": acc[1], "val_mean": val[0],
            "finished_runs": [(m.get("run"), float(m["test_accuracy"])) for m in done],
            "parameters": params[0] if params else None,
            "sec_per_epoch": spe[0], "sec_std": spe[1],
        })  # fmt: skip
    order = {"cp": 0, "tt": 1, "tt-shared": 2, "relu-cp": 3, "relu-tt": 4, "relu-tt-shared": 5,
             "softplus-cp": 6, "softplus-tt": 7, "softplus-tt-shared": 8}
    out.sort(key=lambda s: (str(s["dataset"]), order.get(s["model"], 9), int(s["rank"]),
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


def selection_score(s: Mapping[str, Any]) -> float:
    """What picks the best of several settings: the mean validation accuracy.

    Chosen on validation so that the test accuracy quoted for the winner is not
    selected on itself; a summary without validation accuracies falls back to the
    test accuracy.
    """
    val = s.get("val_mean", math.nan)
    return s["test_mean"] if math.isnan(val) else val


def best_by_model(summary: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The setting with the highest :func:`selection_score` per (dataset, model); the first wins a tie."""
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for s in summary:
        key = (s["dataset"], s["model"])
        if math.isnan(s["test_mean"]):
            continue
        if key not in best or selection_score(s) > selection_score(best[key]):
            best[key] = s
    return best




def _budget_groups(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, dict]]:
    """(dataset, budget) → model → {"rank", "parameters", "by_seed": {seed: (accuracy, run)}}."""
    groups: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for row in rows:
        if row.get("status") != "finished" or not row.get("budget"):
            continue
        entry = groups[(str(row["dataset"]), str(row["budget"]))].setdefault(
            str(row["model"]), {"rank": row["rank"], "parameters": int(row["num_parameters"]), "by_seed": {}}
        )
        entry["by_seed"][str(row["seed"])] = (float(row["test_accuracy"]), row.get("run"))
    return groups


def test_examples(dataset: str) -> int:
    """The size of ``dataset``'s test split (the N of the test part of every interval)."""
    from tensorrnn.data import dataset_status

    return dataset_status(dataset).split_sizes["test"]


def family_interval(entry: Mapping[str, Any], n_test: int, correct: Mapping[str, Any]) -> Interval:
    seeds = sorted(entry["by_seed"])
    runs = [entry["by_seed"][s][1] for s in seeds]
    flags = [correct.get(run) for run in runs] if correct else None
    return accuracy_interval([entry["by_seed"][s][0] for s in seeds], n_test, flags)


def paired_interval(a: Mapping[str, Any], b: Mapping[str, Any], n_test: int,
                    correct: Mapping[str, Any]) -> Interval:  # fmt: skip
    """A − B over the seeds both have (a seed pairs runs that share the data split)."""
    seeds = sorted(set(a["by_seed"]) & set(b["by_seed"]))
    flags_a = [correct.get(a["by_seed"][s][1]) for s in seeds] if correct else None
    flags_b = [correct.get(b["by_seed"][s][1]) for s in seeds] if correct else None
    return difference_interval([a["by_seed"][s][0] for s in seeds], [b["by_seed"][s][0] for s in seeds],
                               n_test, flags_a, flags_b)  # fmt: skip


@dataclass(frozen=True)
class BudgetComparison:
    """One (data set, budget): the family with the highest mean and its paired differences."""

    dataset: str
    budget: str
    leader: str
    leader_interval: Interval
    differences: dict[str, Interval]

    @property
    def clear_lead(self) -> bool:
        """The leader's interval of the difference excludes 0 against every other family."""
        return bool(self.differences) and all(i.has_interval and i.low > 0 for i in self.differences.values())

    def sentence(self) -> str:
        name = short_name(self.leader)
        head = (f"On {self.dataset} at the {self.budget} budget, {name} has the highest mean, "
                f"{format_interval(self.leader_interval, unit=' %', signed=False)}")  # fmt: skip
        parts = [comparison_words(name, short_name(other), interval)
                 for other, interval in self.differences.items()]  # fmt: skip
        seeds = sorted({i.seeds for i in self.differences.values()})
        paired = f" (paired over {' or '.join(map(str, seeds))} seeds, 95 % intervals)" if seeds else ""
        return head + ("; " + "; ".join(parts) if parts else "") + paired + "."


def budget_comparisons(rows: Sequence[Mapping[str, Any]],
                       correct: Mapping[str, Any] | None = None) -> list[BudgetComparison]:  # fmt: skip
    """Every (data set, budget) of matched-budget rows, smallest budget first."""
    groups = _budget_groups(rows)
    correct = correct or {}

    def size(key: tuple[str, str]) -> tuple[str, float]:
        return key[0], statistics.fmean(e["parameters"] for e in groups[key].values())

    comparisons = []
    for dataset, budget in sorted(groups, key=size):
        models, n_test = groups[(dataset, budget)], test_examples(dataset)
        intervals = {m: family_interval(e, n_test, correct) for m, e in models.items()}
        leader = max(models, key=lambda m: (intervals[m].mean, m))
        differences = {other: paired_interval(models[leader], models[other], n_test, correct)
                       for other in sorted(models, key=lambda m: (-intervals[m].mean, m)) if other != leader}
        comparisons.append(BudgetComparison(dataset, budget, leader, intervals[leader], differences))
    return comparisons


def budget_comparison(rows: Sequence[Mapping[str, Any]],
                      correct: Mapping[str, Any] | None = None) -> tuple[str, list[str]]:  # fmt: skip
    """Matched budgets: a table (mean and 95 % interval per family) and one sentence per budget.

    Intervals and words come from :mod:`tensorrnn.stats`: seeds and the test set's
    own noise together; "leads" only where the paired interval excludes 0.
    """
    groups = _budget_groups(rows)
    lines = ["| data set | budget | model | rank | parameters | seeds | test accuracy, mean [95 % interval] "
             "|", "|---|---|---|---|---|---|---|"]  # fmt: skip
    comparisons = budget_comparisons(rows, correct)
    for comparison in comparisons:
        models, n_test = groups[(comparison.dataset, comparison.budget)], test_examples(comparison.dataset)
        intervals = {m: family_interval(e, n_test, correct or {}) for m, e in models.items()}
        for model in sorted(models, key=lambda m: (-intervals[m].mean, m)):
            e = models[model]
            lines.append(f"| {comparison.dataset} | {comparison.budget} | {short_name(model)} | "
                         f"{e['rank']} | {e['parameters']:,} | {len(e['by_seed'])} | "
                         f"{format_interval(intervals[model], unit=' %', signed=False)} |")  # fmt: skip
    return "\n".join(lines), [c.sentence() for c in comparisons]


def _plot_accuracy(summary, path: Path, x_key: str, xlabel: str, log_x: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({s["dataset"] for s in summary})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for model in family_names():
            color, marker, label = plot_style(model)
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
        color, _, label = plot_style(row["model"])
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
    atomic_save_figure(fig, path, dpi=110)


def write_comparison_report(plan: SweepPlan, rows: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write ``report.md`` and the three figures into the sweep folder (rows: ``results.csv``'s)."""
    out = plan.out
    rows = collect_results(plan) if rows is None else rows
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
        "Best setting per model (by mean validation accuracy; its test accuracy): "
        + "; ".join(f"{m} on {d}: {100 * s['test_mean']:.2f} % (rank {s['rank']}, "
                    f"{s['parameters']} parameters)" for (d, m), s in best.items()) + ".",  # fmt: skip
        "",
        *[f"![{name}]({name})" for name in FIGURES],
    ]
    if "budget" in plan.axes:
        table, sentences = budget_comparison(rows, read_test_correct(out))
        lines += ["", "## Matched parameter budgets", "", table, "", *sentences]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- {r['run']}: {r['error']}" for r in failed]
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- #
# The demo page: rank laboratory + network laboratory, as Markdown and HTML
# --------------------------------------------------------------------------- #

THEOREM = (
    "An RNN whose hidden layers share one weight core computes a score "
    "h(X) = ⟨A, f(x_1) ⊗ ⋯ ⊗ f(x_d)⟩ whose coefficient tensor A is a tensor train with "
    "equal middle cores. The thesis proves that for even d almost every such tensor has "
    "CP rank ≥ q^(d/2) with q = min(n, r − 1) (n: feature size, r: TT rank): a shallow "
    "network needs exponentially many hidden units to imitate it. For distinct cores the "
    "known bound (Khrulkov, Novikov, Oseledets 2018) has q = min(n, r). Both bounds go "
    "through the rank of the odd/even matricization, which this page measures, certifies "
    "over GF(p) and sandwiches between the bound and the tensor network's min-cut. The "
    "generic rank turns out to be the min-cut, larger than both bounds (docs/THEORY.md)."
)


def _rank_sections(rank_dir: Path) -> list[dict[str, Any]]:
    from tensorrnn.ranks.lab import read_rows
    from tensorrnn.ranks.report import certified_reach, status_counts, status_label, write_status_figure
    from tensorrnn.ranks.report import summarize as summarize_ranks

    rows = read_rows(rank_dir / "ranks.csv")
    summaries = summarize_ranks(rows)
    reach = certified_reach(summaries)
    counts = status_counts(summaries)
    status_figure = rank_dir / "ranks_status.png"
    if not status_figure.exists():  # a folder from before the figure existed
        write_status_figure(rows, status_figure)
    covered = [s for s in summaries if s.theorem_bound is not None]
    holds = sum(s.verdict == "holds (certified)" for s in covered)
    violated = sum(s.verdict.startswith("VIOLATED") for s in covered)
    determined = sum(s.determined for s in summaries)
    disagreeing = [r for r in rows if r["method"] == "float" and "trust the certified" in r["flag"]]
    disagree = len(disagreeing)
    smallest = min((max(int(r["rows"]), int(r["cols"])) for r in disagreeing), default=None)
    floats = sum(1 for r in rows if r["method"] == "float")
    by_key = {(s.family, s.n, s.r, s.d): s for s in summaries if s.split == "odd-even"}
    pairs = [(by_key[("tt", n, r, d)], s) for (f, n, r, d), s in by_key.items()
             if f == "tt-shared" and ("tt", n, r, d) in by_key]  # fmt: skip
    shared_lower = [(t, s) for t, s in pairs if s.certified is not None and t.certified is not None
                    and s.certified < t.certified]  # fmt: skip
    at_bound = [s for _, s in pairs if s.certified == s.bound_q_rm1]
    full_size = sum(1 for s in at_bound if s.r - 1 >= s.n)
    above = sum(1 for _, s in pairs if s.certified is not None and s.certified > s.bound_q_rm1)
    paragraph = (
        f"{len(summaries)} settings (family, n, r, d), {len(rows)} measurements. The theorem's "
        f"bound is certified — an exact rank over GF(p) of an integer instance reaches it — in "
        f"{holds} of the {len(covered)} settings it covers and violated in {violated}. In "
        f"{determined} of {len(summaries)} settings the certified rank equals the min-cut upper "
        f"bound, so the generic matricization rank is determined exactly. Shared cores give a "
        f"strictly lower certified rank than distinct cores in {len(shared_lower)} of "
        f"{len(pairs)} paired settings. The shared-core rank equals the thesis bound "
        f"min(n, r−1)^(d/2) in {len(at_bound)} of them ({full_size} with r − 1 ≥ n, where the "
        f"bound is the full size n^(d/2)) and exceeds it in {above}. Float64 SVD ranks disagree "
        f"with the certified rank in {disagree} of {floats} instances"
        + (f", the smallest of them {smallest} × {smallest}" if smallest else "")
        + ": floating point is evidence, GF(p) is proof. Every setting with its verdict and flags: "
        "ranks.md beside the rank sweep."
    )
    head = ["family", "n", "r", "d", "certified", "float", "bound", "min-cut", "CP ≤", "verdict",
            "determined", "status"]  # fmt: skip
    table = [[s.family, s.n, s.r, s.d, s.certified, ",".join(map(str, s.float_ranks)),
              s.theorem_bound, s.mincut, s.cp_upper, s.verdict, "yes" if s.determined else "no",
              status_label(s, reach)] for s in summaries]  # fmt: skip
    conclusions = (
        f"{counts['proved for all d']} of {len(summaries)} settings are proved for every even d "
        "(explicit witnesses with closed-form ranks meet the min-cut; docs/THEORY.md), "
        f"{counts['certified']} more are certified up to the size measured, {counts['open']} are "
        "open. The generic odd/even rank is the min-cut min(n, r)·min(n, r²)^(d/2−1): equal to the "
        "2018 bound min(n, r)^(d/2) where n ≤ r and to the thesis bound where n < r, above both where "
        "n > r. One shared core loses no odd/even rank against distinct cores."
    )
    return [
        {"title": "Conclusions", "text": conclusions, "figure": status_figure,
         "caption": "Per regime: certified rank and both theorem bounds as fractions of the min-cut; "
                    "titles: how many settings are proved for all d, and by which witness."},
        {"title": "Rank laboratory", "text": paragraph, "figure": rank_dir / "ranks.png",
         "caption": "Certified odd/even matricization rank against d (log scale); lines: the two "
                    "bounds and the min-cut."},
        {"title": "Rank table", "text": "One row per setting; details and flags in ranks.md.",
         "head": head, "rows": table},
    ]  # fmt: skip


def _network_sections(compare_dir: Path) -> list[dict[str, Any]]:
    plan_file = compare_dir / "plan.json"
    axes = json.loads(plan_file.read_text())["axes"] if plan_file.exists() else []
    with (compare_dir / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    summary = summarize(rows, axes)
    best = best_by_model(summary)
    parts = []
    for (dataset, model), s in sorted(best.items()):
        parts.append(f"{plot_style(model)[2]} reaches "
                     f"{100 * s['test_mean']:.1f} % on {dataset} with rank {s['rank']} and {s['parameters']} "
                     f"parameters")  # fmt: skip
    dataset_names = ", ".join(sorted({str(s["dataset"]) for s in summary}))
    seeds = max((s["finished"] for s in summary), default=0)
    paragraph = (
        f"Trained on {dataset_names} ({len(rows)} runs): " + "; ".join(parts) + ". "
        "The shared-core network's parameter count does not grow with the sequence length, "
        "so at equal rank it is far smaller than the distinct-core network; the plots show "
        "what that costs in accuracy, against rank and against parameters."
    )
    if seeds < 2:
        paragraph = (
            "**Smoke run**: one seed per point and a short schedule, to show that the pipeline "
            "runs end to end. Differences between families here are not evidence; the matched-"
            "budget comparison below (3 seeds, full data) is. " + paragraph
        )
    head = ["dataset", "model", "rank", "runs", "test accuracy %", "parameters", "s / epoch"]
    table = [[s["dataset"], s["model"], s["rank"], f"{s['finished']}/{s['runs']}",
              f"{100 * s['test_mean']:.2f} ± {100 * s['test_std']:.2f}", s["parameters"],
              f"{s['sec_per_epoch']:.2f}"] for s in summary]  # fmt: skip
    return [
        {"title": "Network laboratory", "text": paragraph, "head": head, "rows": table},
        {"title": "Accuracy against rank", "figure": compare_dir / FIGURES[0],
         "caption": "Mean ± std over seeds of the test accuracy."},
        {"title": "Accuracy against parameters", "figure": compare_dir / FIGURES[1],
         "caption": "Same runs, against the number of parameters (log scale)."},
        {"title": "Training curves", "figure": compare_dir / FIGURES[2],
         "caption": "Validation accuracy per epoch, every run."},
    ]  # fmt: skip


# The committed sweeps the demo page cites, shipped with the package (an installed package has no
# docs/): copies of docs/results/<sweep>/{results.csv, accuracy_vs_parameters.png}, refreshed by
# `make readme` and checked against docs/results by tests/test_report.py.
COMMITTED_RESULTS = Path(__file__).resolve().with_name("evidence")
# test_correct.json only where the sweep was made since runs kept it.
EVIDENCE_FILES = ("results.csv", FIGURES[1], TEST_CORRECT_FILE, "scaling.csv", "scaling.png")
# (sweep, supplement with the recurrent families under the orthogonal start or None)
BUDGET_SWEEPS = (("matched_budgets_fashion", "matched_budgets_fashion_orthogonal"),
                 ("matched_budgets_mnist", None))  # fmt: skip
# Shifted images, 40 epochs: tt-shared r 32 and cp R 96 have about the same parameters.
AUGMENTED_SWEEP = "targets_augmented"


@dataclass(frozen=True)
class TunedSetting:
    """A long-chain comparison with equal tuning: each family's winner of ``tensorrnn tune``
    (configs/tune_<sweep's study>.yaml, the study in docs/results/<study>/), 3 seeds."""

    d: int
    sweep: str
    study: str
    trials: int  # per family


# A setting whose test runs are not committed adds no sentence until they are.
TUNED = (TunedSetting(49, "long_chains_d49_tuned", "tune_long_chains_d49", 12),
         TunedSetting(196, "long_chains_d196_tuned", "tune_long_chains_d196", 12),
         TunedSetting(784, "long_chains_d784_tuned", "tune_long_chains_d784", 12))  # fmt: skip


# The long chains' TT-shared winners and CP arms, and the teacher-scaling fits, for the conclusions.
LONG_CHAIN_SWEEPS = ("long_chains_d49_long", "long_chains_d196_aug40", "long_chains_d784_r128_long",
                     "long_chains_cp", "long_chains_cp_d784", "long_chains_tt_d49_budget",
                     "long_chains_d784_r128_seeds", *(t.sweep for t in TUNED),
                     "fashion_shared_vs_distinct")  # fmt: skip
EVIDENCE_SWEEPS = (*(name for pair in BUDGET_SWEEPS for name in pair if name), AUGMENTED_SWEEP,
                   *LONG_CHAIN_SWEEPS, "teacher_scaling")  # fmt: skip


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def evidence_sections(results: Path = COMMITTED_RESULTS) -> list[dict[str, Any]]:
    """The committed matched-budget comparisons (3 seeds, full data), where present."""
    sections = []
    for name, supplement in BUDGET_SWEEPS:
        folder = results / name
        if not (folder / "results.csv").exists():
            continue
        rows = _read_rows(folder / "results.csv")
        if supplement and (results / supplement / "results.csv").exists():
            extra = _read_rows(results / supplement / "results.csv")
            rows += [{**r, "model": f"{short_name(r['model'])} (orthogonal start)"} for r in extra]
        comparisons = budget_comparisons(rows, read_test_correct(folder))
        if not comparisons:
            continue
        sentences = [c.sentence() for c in comparisons]
        dataset = rows[0]["dataset"]
        recurrent_clear = sum(c.clear_lead and c.leader != "cp" for c in comparisons)
        sentences.append(
            f"A recurrent family leads every other family, outside noise, at {recurrent_clear} of "
            f"{len(comparisons)} budgets"
            + (": at d = 16 with this short schedule and no augmentation, the depth advantage the theorem "
               "predicts does not show in accuracy at equal parameters." if recurrent_clear == 0 else ".")
        )  # fmt: skip
        sections.append({
            "title": f"Matched parameter budgets: {dataset}",
            "text": " ".join(sentences) + f" (Committed results: docs/results/{name}/; the same "
                    "settings for every family, d = 16.)",
            "figure": folder / FIGURES[1],
            "caption": "Mean ± std over seeds of the test accuracy against the number of parameters.",
        })  # fmt: skip
    augmented = _augmented_section(results / AUGMENTED_SWEEP)
    return sections + ([augmented] if augmented else [])


def _augmented_section(folder: Path) -> dict[str, Any] | None:
    """TT-shared against CP at about equal parameters, trained longer on shifted images."""
    if not (folder / "results.csv").exists():
        return None
    rows = [{**r, "budget": "~100k"} for r in _read_rows(folder / "results.csv")
            if r["model"] in ("tt-shared", "cp")]  # fmt: skip
    comparisons = budget_comparisons(rows, read_test_correct(folder))
    if not comparisons:
        return None
    sentences = [c.sentence() for c in comparisons]
    shared_leads = sum(c.clear_lead and c.leader == "tt-shared" for c in comparisons)
    sentences.append(f"Trained for 40 epochs on images shifted by up to one pixel, the shared-core "
                     f"RNN leads the shallow network at about equal parameters, outside noise, on "
                     f"{shared_leads} of {len(comparisons)} data sets.")  # fmt: skip
    return {
        "title": "Shifted images: TT-shared against CP at ~100k parameters",
        "text": " ".join(sentences) + f" (Committed results: docs/results/{folder.name}/; TT-shared "
                "r 32 and CP R 96, 3 seeds, the same settings for both, d = 16.)",
        "figure": folder / FIGURES[1],
        "caption": "Mean ± std over 3 seeds of the test accuracy against the number of parameters "
                   "(the distinct-core TT runs of the same sweep included).",
    }  # fmt: skip


@dataclass(frozen=True)
class LongChainSetting:
    """One long-chain setting: the TT-shared winner's sweeps, the CP arm at its budget and
    half of it, and (where run) distinct-core TT at budgets around it."""

    d: int
    data: str
    tt_sweeps: tuple[str, ...]  # the TT-shared winner's seeds, from one sweep or several
    cp_sweep: str
    cp_budget: str
    cp_half_budget: str
    distinct_sweep: str | None = None
    distinct_budgets: tuple[str, ...] = ()


# d changes together with the patch size (and the data set, at d = 49): see the caveat below.
LONG_CHAINS = (
    LongChainSetting(49, "Fashion-MNIST, 4×4 patches", ("long_chains_d49_long",), "long_chains_cp", "d49-44k",
                     "d49-22k", "long_chains_tt_d49_budget", ("d49-39k", "d49-56k")),
    LongChainSetting(196, "MNIST, 2×2 patches", ("long_chains_d196_aug40",), "long_chains_cp", "d196-38k",
                     "d196-19k"),
    LongChainSetting(784, "MNIST pixels", ("long_chains_d784_r128_long", "long_chains_d784_r128_seeds"),
                     "long_chains_cp_d784", "d784-36k", "d784-18k"),
)  # fmt: skip


def _by_seed(rows: Sequence[Mapping[str, str]]) -> dict[str, tuple[float, str]]:
    return {str(r["seed"]): (float(r["test_accuracy"]), r["run"]) for r in rows
            if r.get("status") == "finished"}  # fmt: skip


def long_chain_comparison(results: Path = COMMITTED_RESULTS) -> dict[str, Any] | None:
    """TT-shared against CP at the long chains' budgets (and against distinct cores at d = 49):
    a table of paired differences and the generated sentences, all of them (``text``) and those
    the conclusions quote (``summary``); ``None`` until a CP arm has finished runs."""
    table = ["| d | data | against | its budget | seeds paired | TT-shared | against | "
             "TT-shared − against (points) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    matched: dict[int, Interval] = {}
    distinct: dict[tuple[int, str], Interval] = {}
    for setting in LONG_CHAINS:
        tt_csvs = [results / name / "results.csv" for name in setting.tt_sweeps]
        cp_csv = results / setting.cp_sweep / "results.csv"
        if not (tt_csvs[0].exists() and cp_csv.exists()):
            continue
        tt = _by_seed(r for path in tt_csvs if path.exists() for r in _read_rows(path)
                      if r["model"] == "tt-shared")  # fmt: skip
        tt_correct = {run: bits for name in setting.tt_sweeps
                      for run, bits in read_test_correct(results / name).items()}  # fmt: skip
        arms = [(cp_csv, "CP", budget) for budget in (setting.cp_budget, setting.cp_half_budget)]
        if setting.distinct_sweep:
            arms += [(results / setting.distinct_sweep / "results.csv", "TT (distinct)", budget)
                     for budget in setting.distinct_budgets]  # fmt: skip
        n_test = test_examples("mnist" if setting.d > 49 else "fashion-mnist")
        for csv_path, label, budget in arms:
            if not csv_path.exists():
                continue
            other = _by_seed(r for r in _read_rows(csv_path) if r.get("budget") == budget)
            seeds = sorted(set(tt) & set(other))
            if not seeds:
                continue
            correct = {**tt_correct, **read_test_correct(csv_path.parent)}
            entries = [{"by_seed": {s: side[s] for s in seeds}} for side in (tt, other)]
            difference = paired_interval(entries[0], entries[1], n_test, correct)
            if budget == setting.cp_budget:
                matched[setting.d] = difference
            elif label != "CP":
                distinct[setting.d, budget] = difference
            table.append(
                f"| {setting.d} | {setting.data} | {label} | {budget.split('-')[1]} | {len(seeds)} | "
                f"{format_interval(family_interval(entries[0], n_test, correct), unit=' %', signed=False)} | "
                f"{format_interval(family_interval(entries[1], n_test, correct), unit=' %', signed=False)} | "
                f"{format_interval(difference)} |"
            )  # fmt: skip
    if not matched:
        return None
    head = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    summary = _long_chain_sentences(matched)
    text = (summary + _distinct_sentence(distinct)
            + " Post hoc: every TT-shared arm is the winner of earlier screens re-run with its seeds "
            "(docs/results/NETWORKS.md), and TT-shared's second and third d = 784 seeds and the "
            "distinct-core arm were run after the CP test numbers were seen.")
    return {"title": "Long chains: TT-shared against CP and distinct cores at equal parameters",
            "table": "\n".join(table), "head": head, "rows": rows, "text": text,
            "summary": summary}  # fmt: skip


def _distinct_sentence(distinct: Mapping[tuple[int, str], Interval]) -> str:
    """Shared against distinct cores, per d: ``distinct`` is keyed by (d, budget label)."""
    sentences = []
    for d in sorted({d for d, _ in distinct}):
        parts = [f"{budget.split('-')[1]} parameters, " + comparison_words("TT-shared", "TT (distinct)", i)
                 for (at, budget), i in sorted(distinct.items()) if at == d]  # fmt: skip
        matched = next(s.cp_budget.split("-")[1] for s in LONG_CHAINS if s.d == d)
        sentences.append(f" Shared against distinct cores at d = {d} (TT ranks around TT-shared's {matched} "
                         "budget, TT-shared's recipe): against TT at " + "; at ".join(parts) + ".")
    return "".join(sentences)


def tuned_comparison(results: Path = COMMITTED_RESULTS) -> dict[str, Any] | None:
    """The long chains with equal tuning: every pair of families of each setting, paired over seeds,
    as a table and sentences (``text``), with whether TT-shared's lead over CP grows with d; the
    conclusions' form (``summary``): TT-shared − CP per setting with its interval, and the trend.
    ``None`` until a tuned setting has finished test runs."""
    head = ["d", "data", "test epochs", "pair", "parameters", "first", "second", "first − second (points)"]
    rows: list[list[str]] = []
    lead_over_cp: dict[int, Interval] = {}
    text = "".join(_tuned_setting(results, tuned, rows, lead_over_cp) for tuned in TUNED)
    if not lead_over_cp:
        return None
    trials = ", ".join(sorted({str(t.trials) for t in TUNED if t.d in lead_over_cp}))
    per_d = "; ".join(f"{format_interval(interval, unit=' points')} at d = {d}"
                      for d, interval in sorted(lead_over_cp.items()))  # fmt: skip
    summary = (f"With equal tuning (each family's own winner of {trials} trials chosen on validation, "
               f"committed before its test runs), TT-shared − CP = {per_d}.")
    if len(lead_over_cp) > 1:
        caveat = " (the same caveat on d and the patch size)."
        text += " " + _capitalized(_growth_words(lead_over_cp, "with equal tuning")) + caveat
        summary += " " + _capitalized(_growth_words(lead_over_cp, "with equal tuning", values=False)) + caveat
    return {"title": "Long chains with equal tuning", "text": text.strip(), "head": head, "rows": rows,
            "summary": summary}  # fmt: skip


def _capitalized(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def _tuned_setting(results: Path, tuned: TunedSetting, table: list[list[str]],
                   lead_over_cp: dict[int, Interval]) -> str:
    """One tuned setting's sentence; its table rows go to ``table``, TT-shared − CP to ``lead_over_cp``."""
    path = results / tuned.sweep / "results.csv"
    if not path.exists():
        return ""
    rows = _read_rows(path)
    by_model = {m: _by_seed(r for r in rows if r["model"] == m) for m in ("tt-shared", "tt", "cp")}
    finished = [r for r in rows if r.get("status") == "finished"]
    size = {r["model"]: int(r["num_parameters"]) for r in finished}
    rank = {r["model"]: r["rank"] for r in finished if r.get("rank")}
    correct = read_test_correct(results / tuned.sweep)
    n_test = test_examples(rows[0]["dataset"])
    epochs = "–".join(map(str, sorted({int(r["epochs_completed"]) for r in finished
                                       if r.get("epochs_completed")})))  # fmt: skip
    data = next((s.data for s in LONG_CHAINS if s.d == tuned.d), rows[0]["dataset"])

    def parameters(model: str) -> str:
        letter = "R" if model == "cp" else "r"
        return f"{size[model]:,}" + (f" ({letter} {rank[model]})" if model in rank else "")

    parts = []
    for a, b in (("tt-shared", "cp"), ("tt", "cp"), ("tt-shared", "tt")):
        seeds = sorted(set(by_model[a]) & set(by_model[b]))
        if not seeds:
            continue
        entries = [{"by_seed": {s: by_model[m][s] for s in seeds}} for m in (a, b)]
        interval = paired_interval(*entries, n_test, correct)
        if (a, b) == ("tt-shared", "cp"):
            lead_over_cp[tuned.d] = interval
        parts.append(f"{comparison_words(short_name(a), short_name(b), interval)} ({len(seeds)} seeds)")
        accuracy = [format_interval(family_interval(e, n_test, correct), unit=" %", signed=False)
                    for e in entries]  # fmt: skip
        table.append([str(tuned.d), data, epochs or "–", f"{short_name(a)} − {short_name(b)}",
                      f"{parameters(a)} / {parameters(b)}", *accuracy, format_interval(interval)])
    if not parts:
        return ""
    sizes = ", ".join(f"{short_name(m)} {size[m]:,}" for m in ("tt-shared", "tt", "cp") if m in size)
    length = f"; test runs of {epochs} epochs" if epochs else ""
    return (f" With equal tuning at d = {tuned.d} (each family's own winner of {tuned.trials} trials chosen "
            f"on validation, docs/results/{tuned.study}/, committed before its test runs; the rank was "
            f"searched too, so the parameters differ: {sizes}{length}): " + "; ".join(parts) + ".")


# The thesis's question at d = 49: ranks 2..64 of every family under one fixed recipe.
SHARED_VS_DISTINCT = "fashion_shared_vs_distinct"


def shared_vs_distinct_comparison(results: Path = COMMITTED_RESULTS) -> dict[str, Any] | None:
    """TT-shared against TT (distinct cores) and CP at equal rank, paired over seeds: a table, the
    sentences (``text``), the conclusions' sentence (``summary``) and the accuracy-against-parameters
    figure; ``None`` until the sweep has finished runs."""
    folder = results / SHARED_VS_DISTINCT
    if not (folder / "results.csv").exists():
        return None
    rows = _read_rows(folder / "results.csv")
    # Each rank is a "budget" of the matched-budget grouping: the families at equal rank.
    groups = _budget_groups([{**row, "budget": row["rank"]} for row in rows])
    entries = {(model, int(rank)): entry for (_, rank), models in groups.items()
               for model, entry in models.items()}  # fmt: skip
    ranks = sorted(r for m, r in entries if m == "tt-shared" and {("tt", r), ("cp", r)} <= entries.keys())
    if not ranks:
        return None
    correct, n_test = read_test_correct(folder), test_examples(rows[0]["dataset"])
    d = int(rows[0]["d"])
    data = next((s.data for s in LONG_CHAINS if s.d == d), rows[0]["dataset"])
    head = ["rank", "TT-shared", "TT (distinct)", "CP", "TT-shared − TT (points)", "TT-shared − CP (points)"]
    table, against = [], {"tt": {}, "cp": {}}
    for rank in ranks:
        cells = [str(rank)]
        for model in ("tt-shared", "tt", "cp"):
            entry = entries[model, rank]
            accuracy = format_interval(family_interval(entry, n_test, correct), unit=" %", signed=False)
            cells.append(f"{accuracy} ({entry['parameters']:,} parameters)")
        for other in ("tt", "cp"):
            pair = (entries["tt-shared", rank], entries[other, rank])
            against[other][rank] = paired_interval(*pair, n_test, correct)
            cells.append(format_interval(against[other][rank]))
        table.append(cells)
    fewer = [entries["tt", r]["parameters"] / entries["tt-shared", r]["parameters"] for r in ranks]
    seeds = sorted({i.seeds for i in against["tt"].values()})
    setting = (f"d = {d}: {data}, ranks {ranks[0]}–{ranks[-1]}, one fixed recipe for every family, "
               f"{' or '.join(map(str, seeds))} seeds; post hoc: the d = {d} budget comparison had been "
               f"seen; docs/results/{SHARED_VS_DISTINCT}/")  # fmt: skip
    fewer_words = f"{min(fewer):.1f}–{max(fewer):.1f}× fewer parameters than TT"
    cp_size = [entries["cp", r]["parameters"] / entries["tt-shared", r]["parameters"] for r in ranks]
    shared_over_cp, _, _ = _verdicts(against["cp"])
    gap = (f"TT-shared leads CP at r = {_listed(shared_over_cp)}" if shared_over_cp else
           "TT-shared leads CP at no rank: the exponential gap the theory proves for the tensors does not "
           f"show in trained accuracy at d = {d} under this recipe")  # fmt: skip
    text = (f"Shared against distinct cores at equal rank ({setting}): "
            + _verdict_words("TT-shared", "TT", against["tt"]) + f"; TT-shared has {fewer_words}. "
            + f"Against CP at equal rank (CP has {min(cp_size):.2f}–{max(cp_size):.2f}× TT-shared's "
            + "parameters): " + _verdict_words("TT-shared", "CP", against["cp"]) + f". {gap}.")
    shared_leads, tt_leads, noise = _verdicts(against["tt"])
    summary = (f"At equal rank on d = {d} (ranks {ranks[0]}–{ranks[-1]}, post hoc), TT-shared and TT with "
               f"distinct cores are within noise at {len(noise)} of {len(ranks)} ranks"
               + (f", TT leads at r = {_listed(tt_leads)}" if tt_leads else "")
               + (f", TT-shared leads at r = {_listed(shared_leads)}" if shared_leads else "")
               + f"; TT-shared has {fewer_words}, and leads CP at "
               + (f"r = {_listed(shared_over_cp)}." if shared_over_cp else "no rank."))
    return {"title": f"Shared against distinct cores at d = {d}: every rank", "text": text, "head": head,
            "rows": table, "summary": summary, "figure": folder / FIGURES[1],
            "caption": "Mean ± std over seeds of the test accuracy against the number of parameters, "
                       f"ranks {ranks[0]}–{ranks[-1]} of each family (d = {d}, {data})."}  # fmt: skip


def _listed(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))


def _verdicts(differences: Mapping[int, Interval]) -> tuple[list[int], list[int], list[int]]:
    """The keys (ranks, or d) of A − B intervals, sorted: where A leads, where B leads, and within noise."""
    a_leads = [k for k in sorted(differences) if differences[k].has_interval and differences[k].low > 0]
    b_leads = [k for k in sorted(differences) if differences[k].has_interval and differences[k].high < 0]
    return a_leads, b_leads, [k for k in sorted(differences) if k not in a_leads + b_leads]


def _verdict_words(a: str, b: str, by_rank: Mapping[int, Interval]) -> str:
    """Which ranks ``a`` leads at, which ``b`` leads at (with the largest lead) and which are noise."""
    a_leads, b_leads, noise = _verdicts(by_rank)
    parts = []
    if noise:
        parts.append(f"{a} and {b} are within noise at r = {_listed(noise)}")
    for leader, other, at, sign in ((a, b, a_leads, 1), (b, a, b_leads, -1)):
        if at:
            top = max(at, key=lambda r: (sign * by_rank[r].mean, r))
            parts.append(f"{leader} leads {other} at r = {_listed(at)} (by up to "
                         f"{signed_number(sign * by_rank[top].mean)} points, at r = {top})")  # fmt: skip
    return "; ".join(parts)


def _growth_words(matched: Mapping[int, Interval], how: str, values: bool = True) -> str:
    """Whether TT-shared's lead over CP grows with d: growth is called shown only where each
    interval lies above the one before, and "the direction the theory predicts" needs a lead."""
    ds = sorted(matched)
    at = f" ({', '.join(signed_number(matched[d].mean) for d in ds)} points at d = {_listed(ds)})"
    at = at if values else ""
    leads, cp_leads, _ = _verdicts(matched)
    cp_words = f"; CP leads outside noise at d = {_listed(cp_leads)}" if cp_leads else ""
    growing = len(ds) > 1 and all(matched[a].mean < matched[b].mean for a, b in zip(ds, ds[1:], strict=False))
    if leads and growing:
        shown = all(matched[a].has_interval and matched[b].has_interval and matched[b].low > matched[a].high
                    for a, b in zip(ds, ds[1:], strict=False))  # fmt: skip
        return (f"{how}, TT-shared's mean lead over CP grows with d{at}, the direction the theory predicts; "
                f"it is outside noise at d = {_listed(leads)}" + cp_words
                + ("" if shown else ", and the growth itself is within noise (the intervals overlap)"))
    if leads:
        return (f"{how}, TT-shared leads CP outside noise at d = {_listed(leads)}, but its lead "
                f"does not grow steadily with d{at}{cp_words}")
    return (f"{how}, TT-shared leads CP outside noise at no d{at}{cp_words}: the exponential gap the theory "
            "proves for the tensors does not show in trained accuracy here")


def _long_chain_sentences(matched: Mapping[int, Interval]) -> str:
    parts = [f"at d = {d}, " + comparison_words("TT-shared", "CP", interval)
             for d, interval in sorted(matched.items())]  # fmt: skip
    trend = _growth_words(matched, "at equal parameters")
    return ("At equal parameters (CP given TT-shared's recipe, no tuning of its own), " + "; ".join(parts)
            + f". {_capitalized(trend)}. Caveat: d changes together with the patch size (and the "
            "data set between d = 49 and 196), so a trend over d is not a clean function of the sequence "
            "length.")


TEACHER_SCALING = "teacher_scaling"


def matched_budget_summary(results: Path = COMMITTED_RESULTS) -> str:
    """One sentence over every d = 16 matched budget: where a recurrent family leads outside noise."""
    comparisons = []
    for name, _ in BUDGET_SWEEPS:
        if (results / name / "results.csv").exists():
            rows = _read_rows(results / name / "results.csv")
            comparisons += budget_comparisons(rows, read_test_correct(results / name))
    if not comparisons:
        return ""
    recurrent = sum(c.clear_lead and c.leader != "cp" for c in comparisons)
    shallow = sum(c.clear_lead and c.leader == "cp" for c in comparisons)
    head = f"At d = 16 (Fashion-MNIST and MNIST, {len(comparisons)} matched parameter budgets, 3 seeds)"
    if recurrent == shallow == 0:
        return (f"{head}, every comparison is within noise: no family leads outside the 95 % interval, "
                "so the depth advantage the theorem predicts does not show at this length.")
    return (f"{head}, a recurrent family leads every other outside noise at {recurrent} budgets and CP at "
            f"{shallow}; the rest are within noise.")  # fmt: skip


def teacher_scaling_summary(results: Path = COMMITTED_RESULTS) -> str:
    """The teacher-scaling lab's generated growth sentences (both regimes), where its results exist."""
    path = results / TEACHER_SCALING / "scaling.csv"
    if not path.exists():
        return ""
    from tensorrnn.teacher_scaling_report import Fits, growth_sentence

    fits = Fits(_read_rows(path))
    return " ".join(filter(None, (growth_sentence(fits, 4, 2), growth_sentence(fits, 3, 3))))


def conclusions_section(rank_conclusion: str, results: Path = COMMITTED_RESULTS) -> dict[str, Any]:
    """What both laboratories show, first on the page: generated from the numbers."""
    network = [matched_budget_summary(results)]
    # The sections' summaries: the distinct cores, what is post hoc and each pair: their own sections.
    network += [section["summary"] for section in (long_chain_comparison(results), tuned_comparison(results),
                                                    shared_vs_distinct_comparison(results)) if section]
    teacher = teacher_scaling_summary(results)
    text = f"**Rank laboratory.** {rank_conclusion}\n\n**Network laboratory.** "
    text += " ".join(filter(None, network))
    if teacher:
        text += f"\n\n**Teachers of known rank.** {teacher}"
    return {"title": "Conclusions", "text": text}


def demo_sections(rank_dir: Path, compare_dir: Path) -> list[dict[str, Any]]:
    """The sections of the demo page: the conclusions of both laboratories first, then the
    certified ranks and the teacher-scaling figure, the rank laboratory, the long chains (at equal
    parameters, with equal tuning), the committed comparisons and the demo's own smoke run.

    The full rank table is not on the page (it is ``ranks.md`` beside the rank sweep)."""
    ranks = [s for s in _rank_sections(Path(rank_dir)) if s["title"] != "Rank table"]
    status, rest = ranks[0], ranks[1:]
    status = {**status, "title": "Certified ranks per regime", "text": ""}
    return [conclusions_section(ranks[0]["text"]), status, *teacher_scaling_figure(), *rest,
            *long_chain_sections(), *evidence_sections(), *_network_sections(Path(compare_dir))]


def long_chain_sections(results: Path = COMMITTED_RESULTS) -> list[dict[str, Any]]:
    """The long chains at equal parameters, with equal tuning and (d = 49) at every rank, each with its
    table (and figure), where run."""
    sections = (long_chain_comparison(results), tuned_comparison(results),
                shared_vs_distinct_comparison(results))
    keys = ("title", "text", "head", "rows", "figure", "caption")
    return [{k: s[k] for k in keys if k in s} for s in sections if s]


def teacher_scaling_figure(results: Path = COMMITTED_RESULTS) -> list[dict[str, Any]]:
    """The teacher-scaling figure (empty where its results are not committed)."""
    figure = results / TEACHER_SCALING / "scaling.png"
    if not figure.exists():
        return []
    caption = ("Smallest CP rank (and its parameters) that fits a shared-core teacher, against d; "
               f"lines: the theory. docs/results/{TEACHER_SCALING}/.")
    return [{"title": "Teachers of known CP rank", "figure": figure, "caption": caption}]


def sections_markdown(sections: Sequence[Mapping[str, Any]], folder: Path, level: int = 2) -> str:
    """Markdown of ``sections``; figure links are relative to ``folder``."""
    lines = []
    for sec in sections:
        lines += [f"{'#' * level} {sec['title']}", ""]
        if sec.get("text"):
            lines += [sec["text"], ""]
        if sec.get("head"):
            lines.append("| " + " | ".join(sec["head"]) + " |")
            lines.append("|" + "---|" * len(sec["head"]))
            lines += ["| " + " | ".join("–" if c is None else str(c) for c in row) + " |"
                      for row in sec["rows"]]  # fmt: skip
            lines.append("")
        if sec.get("figure"):
            rel = os.path.relpath(sec["figure"], folder)
            lines += [f"![{sec['caption']}]({rel})", "", f"*{sec['caption']}*", ""]
    return "\n".join(lines)


def _markdown(sections: Sequence[Mapping[str, Any]], folder: Path) -> str:
    return "\n".join(["# tensorrnn demo", "", THEOREM, "", sections_markdown(sections, folder)])


def _html(sections: Sequence[Mapping[str, Any]]) -> str:
    import base64
    import html

    body = [f"<h1>tensorrnn demo</h1><p>{html.escape(THEOREM)}</p>"]
    for index, sec in enumerate(sections):
        if index:
            body.append("</section>")
        slug = re.sub(r"[^a-z0-9]+", "-", sec["title"].lower()).strip("-")
        body.append(f"<section id='{slug}'><h2>{html.escape(sec['title'])}</h2>")
        for paragraph in filter(None, sec.get("text", "").split("\n\n")):
            # The texts are markdown: **bold** is the only markup they use.
            body.append("<p>" + re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(paragraph)) + "</p>")
        if sec.get("head"):
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in sec["head"])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape('–' if c is None else str(c))}</td>" for c in row)
                + "</tr>" for row in sec["rows"]
            )  # fmt: skip
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        if sec.get("figure"):
            data = base64.b64encode(Path(sec["figure"]).read_bytes()).decode()
            body.append(f'<figure><img class="figure" alt="{html.escape(sec["caption"])}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f"{html.escape(sec['caption'])}</figcaption></figure>")  # fmt: skip
    body.append("</section>" if sections else "")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}img{max-width:100%}figcaption{color:#555;font-size:13px}")  # fmt: skip
    # The script records how many figures decoded, so a headless browser can check them.
    # ... and where the conclusions end, so a test can check they fit on the first screen.
    script = ("window.addEventListener('load',()=>{const ok=[...document.images].filter("
              "i=>i.complete&&i.naturalWidth>0).length;document.body.dataset.figuresLoaded=ok;"
              "const c=document.getElementById('conclusions');if(c){document.body.dataset.conclusionsBottom="
              "Math.ceil(c.getBoundingClientRect().bottom);document.body.dataset.screenHeight="
              "window.innerHeight;}});")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>tensorrnn demo</title>"
            f"<style>{style}</style><script>{script}</script></head><body>{''.join(body)}"
            f"</body></html>")  # fmt: skip


def write_demo_page(rank_dir: Path, compare_dir: Path, out: Path) -> Path:
    """Write ``out/index.html`` (self-contained) and ``out/report.md`` with the same content."""
    out.mkdir(parents=True, exist_ok=True)
    sections = demo_sections(rank_dir, compare_dir)
    atomic_write_text(out / "report.md", _markdown(sections, out))
    return atomic_write_text(out / "index.html", _html(sections))
