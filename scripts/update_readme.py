"""Regenerate the README's results section from the result files in docs/results/.

    python scripts/update_readme.py --collect   # copy fresh results into docs/results/
    python scripts/update_readme.py             # rewrite the section from docs/results/
    python scripts/update_readme.py --check     # exit 1 if README.md is out of date

`--collect` takes reports/demo/ranks, reports/demo/compare and the sweeps named in
SWEEPS from results/, where present, and refreshes the package's copies of the sweeps
the demo page cites (src/tensorrnn/evidence/, shipped with the installed package).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"
TARGETS = [  # (sweep folder, dataset, model, target mean test accuracy, issue, patch or None)
    ("fashion_targets", "fashion-mnist", "tt", 0.90, 5, None),
    ("fashion_targets", "fashion-mnist", "tt-shared", 0.89, 5, None),
    ("mnist10k_targets", "mnist-10k", "tt", 0.96, 5, None),
    ("matched_budgets_fashion", "fashion-mnist", "tt", 0.910, 11, None),
    ("matched_budgets_fashion", "fashion-mnist", "tt-shared", 0.905, 11, None),
    ("matched_budgets_mnist", "mnist", "tt", 0.990, 11, None),
    ("matched_budgets_mnist", "mnist", "tt-shared", 0.988, 11, None),
    ("targets_augmented", "fashion-mnist", "tt", 0.910, 11, None),
    ("targets_augmented", "fashion-mnist", "tt-shared", 0.905, 11, None),
    ("targets_augmented", "mnist", "tt", 0.990, 11, None),
    ("targets_augmented", "mnist", "tt-shared", 0.988, 11, None),
    ("long_chains_quick", "fashion-mnist", "tt-shared", 0.85, 12, 4),
    ("long_chains_targets", "fashion-mnist", "tt-shared", 0.895, 12, 4),
    ("long_chains_targets", "fashion-mnist", "tt", 0.90, 12, 4),
    ("long_chains_targets", "mnist", "tt-shared", 0.985, 12, 2),
    ("long_chains_targets", "mnist", "tt-shared", 0.980, 12, 1),
    ("long_chains_three_epochs_seeds", "fashion-mnist", "tt-shared", 0.85, 12, 4),
    ("long_chains_cos_sin", "mnist", "tt-shared", 0.985, 12, 2),
    ("long_chains_cos_sin", "mnist", "tt-shared", 0.980, 12, 1),
    ("long_chains_targets_middle_lr", "fashion-mnist", "tt-shared", 0.895, 12, 4),
    ("long_chains_targets_middle_lr", "fashion-mnist", "tt", 0.90, 12, 4),
    ("long_chains_targets_middle_lr", "mnist", "tt-shared", 0.985, 12, 2),
    ("long_chains_targets_middle_lr", "mnist", "tt-shared", 0.980, 12, 1),
    ("long_chains_targets_middle_lr", "mnist", "tt", 0.980, 12, 1),
    ("long_chains_tt49", "fashion-mnist", "tt", 0.90, 12, 4),
    ("long_chains_tt49_long", "fashion-mnist", "tt", 0.90, 12, 4),
    ("long_chains_d49_long", "fashion-mnist", "tt-shared", 0.895, 12, 4),
    ("long_chains_rank64", "mnist", "tt-shared", 0.985, 12, 2),
    ("long_chains_three_epochs_batch32", "fashion-mnist", "tt-shared", 0.85, 12, 4),
    ("long_chains_d196_long", "mnist", "tt-shared", 0.985, 12, 2),
    ("long_chains_d196_aug", "mnist", "tt-shared", 0.985, 12, 2),
    ("long_chains_d196_aug40", "mnist", "tt-shared", 0.985, 12, 2),
    ("long_chains_d784_fused", "mnist", "tt-shared", 0.980, 12, 1),
    ("long_chains_d784_r128", "mnist", "tt-shared", 0.980, 12, 1),
    ("long_chains_d784_r128_long", "mnist", "tt-shared", 0.980, 12, 1),
]
SWEEPS = ("fashion_targets", "mnist10k_targets", "matched_budgets_fashion", "matched_budgets_mnist",
          "khrulkov2018_mnist", "long_chains_quick", "long_chains_ablation", "long_chains_targets",
          "matched_budgets_fashion_orthogonal", "khrulkov2018_mnist_dropout", "targets_augmented",
          "long_chains_three_epochs", "long_chains_three_epochs_seeds", "long_chains_cos_sin",
          "generalized_accuracy_full", "generalized_accuracy_r64", "long_chains_middle_lr",
          "long_chains_targets_middle_lr", "long_chains_tt49", "long_chains_tt49_long",
          "long_chains_d49_long", "long_chains_rank64", "long_chains_three_epochs_middle_lr",
          "long_chains_three_epochs_batch32", "long_chains_d196_long", "long_chains_d196_aug",
          "long_chains_d196_aug40", "long_chains_d784_fused", "long_chains_d784_r128",
          "long_chains_d784_r128_long", "long_chains_cp", "long_chains_cp_d784", "long_chains_tt_d49_budget",
          "long_chains_d784_r128_seeds", "generalized_accuracy_paper_lr", "generalized_accuracy_softplus",
          "fashion_shared_vs_distinct")
# Khrulkov, Novikov, Oseledets (2018), MNIST, 7x7 patches: test accuracy of TT and CP
# (their figure: both about 0.95 without regularisation, 0.98 with dropout).
KHRULKOV_2018 = {0.0: 0.95, 0.2: 0.98}
KEEP = ("ranks.csv", "ranks.md", "ranks.png", "results.csv", "plan.json", "report.md", "accuracy_vs_rank.png",
        "accuracy_vs_parameters.png", "training_curves.png", "test_correct.json")  # fmt: skip


def collect() -> None:
    sources = {"ranks": ROOT / "reports/demo/ranks", "quick": ROOT / "reports/demo/compare",
               "certified": ROOT / "results/certified"}  # fmt: skip
    sources |= {name: ROOT / "results" / name for name in SWEEPS}
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
    copy_evidence()


def copy_evidence() -> None:
    """Refresh the package's copies of the committed sweeps the demo page cites."""
    from tensorrnn.report import EVIDENCE_FILES, EVIDENCE_SWEEPS

    for name in EVIDENCE_SWEEPS:
        if not (RESULTS / name).is_dir():
            continue
        target = ROOT / "src" / "tensorrnn" / "evidence" / name
        target.mkdir(parents=True, exist_ok=True)
        for file in EVIDENCE_FILES:
            if (RESULTS / name / file).exists():
                shutil.copy2(RESULTS / name / file, target / file)


def _rows(sweep: str) -> tuple[list[dict[str, str]], list[str]]:
    path = RESULTS / sweep / "results.csv"
    if not path.exists():
        return [], []
    plan = RESULTS / sweep / "plan.json"
    axes = json.loads(plan.read_text())["axes"] if plan.exists() else []
    with path.open() as handle:
        return list(csv.DictReader(handle)), axes


# Sweeps planned after earlier test numbers of the same target were seen (follow-ups of a
# missed target, or a screen's winner re-run with its seed): reported, but post hoc.
POST_HOC_SWEEPS = {
    "long_chains_tt_d49_budget", "long_chains_d784_r128_seeds",
    "long_chains_targets_middle_lr", "long_chains_tt49", "long_chains_tt49_long", "long_chains_d49_long",
    "long_chains_rank64", "long_chains_three_epochs_batch32", "long_chains_three_epochs_seeds",
    "long_chains_d196_long", "long_chains_d196_aug", "long_chains_d196_aug40", "long_chains_d784_fused",
    "long_chains_d784_r128", "long_chains_d784_r128_long", "long_chains_cos_sin",
    "generalized_accuracy_paper_lr", "generalized_accuracy_softplus",
}
# Arms added to a sweep after its first test numbers were seen (run-name prefixes).
POST_HOC_ARMS = {"targets_augmented": ("tt-rank32-", "tt-rank24-fashion-mnist-dropout")}


def is_post_hoc(sweep: str, run: str | None = None) -> bool:
    return sweep in POST_HOC_SWEEPS or any((run or "").startswith(p) for p in POST_HOC_ARMS.get(sweep, ()))


def code_state(sweep: str) -> str:
    """What the re-run check found for a committed sweep (``tensorrnn rerun --record``)."""
    from tensorrnn.rerun import read_rerun_record

    record = read_rerun_record(RESULTS / sweep)
    if record is None:
        return "not re-run"
    return record["verdict"]


def targets_table() -> str:
    from tensorrnn.report import selection_score, summarize, test_examples
    from tensorrnn.stats import accuracy_interval, format_interval, target_words
    from tensorrnn.sweep import read_test_correct

    lines = ["| issue | sweep | data set | d | model | target | mean test accuracy of the best by validation "
             "[95 % interval] | seeds | rank | verdict | provenance |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for sweep, dataset, model, target, issue, patch in TARGETS:
        rows, axes = _rows(sweep)
        rows = [r for r in rows if patch is None or r.get("patch") == str(patch)]
        d = {None: "16", 4: "49", 2: "196", 1: "784"}[patch] if dataset != "mnist-10k" else "16"
        head = f"| {issue} | {sweep} | {dataset} | {d} | {model} | {100 * target:.1f} % |"
        cands = [s for s in summarize(rows, axes) if s["dataset"] == dataset and s["model"] == model
                 and s["finished"]]  # fmt: skip
        if not cands:
            lines.append(f"{head} {'not run yet' if not rows else 'no finished run'} | | | | |")
            continue
        best = max(cands, key=selection_score)  # the first of a tie, in summarize's fixed order
        runs = best["finished_runs"]
        correct = read_test_correct(RESULTS / sweep)
        interval = accuracy_interval([a for _, a in runs], test_examples(dataset),
                                     [correct.get(run) for run, _ in runs] if correct else None)
        provenance = [code_state(sweep)]
        if any(is_post_hoc(sweep, run) for run, _ in runs):
            provenance.append("post hoc")
        accuracy = format_interval(interval, unit=" %", signed=False)
        lines.append(f"{head} {accuracy} | {best['finished']} | {best['rank']} | "
                     f"{target_words(interval, target)} | {', '.join(provenance)} |")  # fmt: skip
    return "\n".join(lines)


def khrulkov_text() -> str:
    from tensorrnn.report import summarize

    rows, axes = _rows("khrulkov2018_mnist")
    if not rows:
        return ""
    failed = [r for r in rows if r["status"] == "failed"]
    # The rerun of the dropout arm with the fixed dropout (constant feature kept), if present.
    fixed, fixed_axes = _rows("khrulkov2018_mnist_dropout")

    # The rerun's dropout is a single value of its config, not a results.csv column.
    rerun_dropout = None
    if fixed:
        from tensorrnn.sweep import load_config_file

        rerun_dropout = load_config_file(ROOT / "configs" / "khrulkov2018_mnist_dropout.yaml")["dropout"]

    def arm(row: dict, kept: bool) -> str:
        dropout = float(rerun_dropout if kept else row["dropout"])
        return f"{dropout}" if dropout == 0 else f"{dropout} ({'constant kept' if kept else 'old dropout'})"

    summary, train = {}, {}
    for source, source_axes, kept in ((rows, axes, False), (fixed, fixed_axes, True)):
        for s in summarize(source, source_axes):
            summary[(s["model"], int(s["rank"]), arm(s, kept))] = s
        for row in source:
            if row["status"] == "finished":
                train.setdefault((row["model"], int(row["rank"]), arm(row, kept)), []).append(
                    float(row["train_accuracy"]))
    lines = ["| rank | dropout | TT test | CP test | TT train | CP train | paper, best rank (TT and CP) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for rank, label in sorted({(k[1], k[2]) for k in summary}):
        cells = []
        for family in ("tt", "cp"):
            s = summary.get((family, rank, label))
            cells.append("–" if s is None or not s["finished"]
                         else f"{100 * s['test_mean']:.2f} ± {100 * s['test_std']:.2f} %")  # fmt: skip
        for family in ("tt", "cp"):
            values = train.get((family, rank, label), [])
            cells.append(f"{100 * sum(values) / len(values):.2f} %" if values else "–")
        paper = KHRULKOV_2018.get(float(label.split(" ")[0]), float("nan"))
        lines.append(f"| {rank} | {label} | " + " | ".join(cells) + f" | about {100 * paper:.0f} % |")
    seeds = max(s["finished"] for s in summary.values())
    failures = ""
    if failed:
        arms = sorted({(r["model"], r["dropout"]) for r in failed})
        first = failed[0]["error"].split(": ", 1)[-1].split(";")[0].split(": ")[-1]
        names = ", ".join(f"{m} with dropout {d}" for m, d in arms)
        failures = (f" {len(failed)} of {len(rows)} runs failed ({names}: {first}); they ran with the "
                    "old feature dropout, which could drop the constant feature and zero the state "
                    "(fixed since, `dropout_keeps_constant`).")
        done = sum(r["status"] == "finished" for r in fixed)
        failures += (f" The rerun with the constant kept (`configs/khrulkov2018_mnist_dropout.yaml`) "
                     f"finished {done} of {len(fixed)} runs." if fixed else " They were not rerun.")
    return (
        "### Khrulkov, Novikov, Oseledets 2018 on full MNIST\n\n"
        "Their MNIST experiment (7×7 patches, learned σ(Ax + b) features, TT against CP of equal "
        f"rank, official test set), mean ± std over up to {seeds} seeds, beside the values read from "
        "their figure. The dropout arms use feature dropout 0.2 (their \"dropout 0.8\" read as a keep "
        "probability); optimiser and schedule are this toolkit's (`configs/khrulkov2018_mnist.yaml`)."
        + failures + "\n\n"
        + "\n".join(lines) + "\n"
    )


def long_chains_text() -> str:
    from tensorrnn.report import summarize

    rows, axes = _rows("long_chains_ablation")
    if not rows:
        return ""
    errors = {(r["model"], *(r.get(k, "") for k in axes)): r["error"]
              for r in rows if r["status"] == "failed"}  # fmt: skip
    lines = ["| change against the old default | model | d | test accuracy (1 seed) |", "|---|---|---|---|"]
    summary = summarize(rows, axes)
    # Finished rows by accuracy, then failed ones; the run name breaks ties.
    summary.sort(key=lambda s: (s["finished"] == 0, -(s["test_mean"] if s["finished"] else 0),
                                tuple(str(s.get(k, "")) for k in axes)))  # fmt: skip
    for s in summary:
        change = ", ".join(f"{k}={s[k]}" for k in axes if k not in ("dataset", "model", "rank", "seed")
                           and s.get(k) not in ("", None))  # fmt: skip
        d = {"4": 49, "7": 16}.get(str(s.get("patch") or 4), "?")
        if s["finished"]:
            outcome = f"{100 * s['test_mean']:.2f} %"
        else:
            error = errors.get((s["model"], *(s.get(k, "") for k in axes)), "did not finish")
            outcome = "failed: " + error.split(": ", 1)[-1].split(";")[0].split(": ")[-1]
        lines.append(f"| {change} | {s['model']} | {d} | {outcome} |")
    return (
        "### Long chains: what makes d = 49 learn\n\n"
        "One-seed screen (`configs/long_chains_ablation.yaml`: Fashion-MNIST, 4×4 patches, "
        "tt-shared r 16, n 8, 10,000 images, 3 epochs); every row is `tensorrnn train` with the "
        "config's settings and the change shown. The winner, the orthogonal start, is the default "
        "now; why: [`benchmarks/LONG_CHAINS.md`](benchmarks/LONG_CHAINS.md).\n\n" + "\n".join(lines) + "\n"
    )


def middle_lr_text() -> str:
    rows, _ = _rows("long_chains_middle_lr")
    finished = [r for r in rows if r["status"] == "finished"]
    if not finished:
        return ""
    lines = ["| d | n | middle-core rate / lr | epochs | validation | test |", "|---|---|---|---|---|---|"]
    for r in sorted(finished, key=lambda r: (int(r["d"]), -float(r["middle_lr_scale"]), r["run"])):
        lines.append(f"| {r['d']} | {r['n']} | {float(r['middle_lr_scale']):g} | {r['epochs_completed']} | "
                     f"{100 * float(r['val_accuracy']):.2f} % | {100 * float(r['test_accuracy']):.2f} % |")
    return (
        "### Long chains: the middle cores' rate\n\n"
        "One-seed screen (`configs/long_chains_middle_lr.yaml`: MNIST, 10,000 training images, "
        "tt-shared r 32, cos-sin features, Adam 3e-3 for the end cores). At the full rate the "
        "shared core stays at chance at d = 196 and 784; a rate that falls with d lets d = 196 "
        "learn. The default now is `min(1, 16/(d − 2))` of `lr` (1 at d ≤ 18, so every d = 16 "
        "result stands); why: [`benchmarks/LONG_CHAINS.md`](benchmarks/LONG_CHAINS.md).\n\n"
        + "\n".join(lines) + "\n"
    )


def _accuracy_table(sweep: str, columns: dict) -> tuple[list[dict], list[str]]:
    """The finished settings of ``sweep`` (best first per data set) and their Markdown table.

    ``columns``: title → cell of a summary row, placed between the model and the seeds.
    """
    from tensorrnn.models import short_name
    from tensorrnn.report import summarize

    rows, axes = _rows(sweep)
    summary = sorted((s for s in summarize(rows, axes) if s["finished"]),
                     key=lambda s: (s["dataset"], -s["test_mean"]))  # fmt: skip
    lines = ["| data set | model | " + " | ".join(columns) + " | seeds | test accuracy (mean ± std) |",
             "|---|---|" + "---|" * len(columns) + "---|---|"]  # fmt: skip
    for s in summary:
        cells = " | ".join(cell(s) for cell in columns.values())
        accuracy = f"{100 * s['test_mean']:.2f} ± {100 * s['test_std']:.2f} %"
        lines.append(f"| {s['dataset']} | {short_name(s['model'])} | {cells} | "
                     f"{s['finished']} | {accuracy} |")  # fmt: skip
    return summary, lines


def augmented_text() -> str:
    rows, axes = _rows("targets_augmented")
    if not rows:
        return ""
    from tensorrnn.report import summarize

    finished = [s for s in summarize(rows, axes) if s["finished"]]
    extra = [k for k in axes if k not in ("dataset", "model", "rank", "seed")
             and len({str(s.get(k)) for s in finished}) > 1]  # fmt: skip
    def other(s: dict) -> str:
        return ", ".join(f"{k} {s[k]}" for k in extra if s.get(k) not in ("", None)) or "–"

    _, lines = _accuracy_table("targets_augmented", {
        "rank": lambda s: str(s["rank"]),
        "other settings": other,
        "parameters": lambda s: f"{s['parameters']:,}",
        "s / epoch": lambda s: f"{s['sec_per_epoch']:.1f}",
    })  # fmt: skip
    return (
        "### Accuracy with shifted images (3 seeds)\n\n"
        "`configs/targets_augmented.yaml`: every training image shifted by up to one pixel, 40 "
        "epochs, n = 64, the same settings for all three families; d = 16, official test sets. "
        "TT-shared (r 32) and CP (R 96) have about the same number of parameters; the distinct-core "
        "TT networks have several times more. The paired comparison of TT-shared and CP is in the "
        "section \"Shifted images\" above.\n\n" + "\n".join(lines) + "\n"
    )


GENERALIZED_SWEEPS = {
    "generalized_accuracy_full": (
        "### Generalized (ReLU) RNNs on full data, rank 16 (CPU)\n\n"
        "`configs/generalized_accuracy_full.yaml`: ξ = max(x, y, 0) against the product, distinct "
        "and shared cores and the shallow network, T = d = 16 (7×7 patches), m = 32 features, 3 "
        "seeds, official test sets; cut from the paper's R = 64 to rank 16 and to 5 epochs to fit "
        "2 CPU cores, rates per family from a one-seed probe."
    ),
    "generalized_accuracy_r64": (
        "### Generalized (ReLU) RNNs at the paper's rank 64 (GPU)\n\n"
        "`configs/generalized_accuracy_r64.yaml`, run on a lent H200 by `benchmarks/gpu_session.sh`: "
        "the same networks at R = 64, batch 250, 10 epochs, 3 seeds, official test sets; each ReLU "
        "network at two rates (the rank-16 winner and a third of it), since nobody has probed R = 64; "
        "an unstable rate shows as a large std."
    ),
    "generalized_accuracy_paper_lr": (
        "### Generalized (ReLU) RNNs at the paper's rate 1e-4 (GPU, post hoc)\n\n"
        "`configs/generalized_accuracy_paper_lr.yaml`: the paper's recipe where it states one (Adam at a "
        "constant 1e-4, batch 250, R = 64, T = 16, m = 32), cut to 4 epochs; relu-tt, relu-tt-shared, "
        "relu-cp and the product RNN tt, 3 seeds, official test sets. Planned after the rank-64 "
        "results were seen."
    ),
    "generalized_accuracy_softplus": (
        "### Softplus RNN, ξ = ln(eˣ + eʸ) (GPU, post hoc)\n\n"
        "`configs/generalized_accuracy_softplus.yaml`: softplus-tt with exactly the budget of the "
        "rate-1e-4 grid above (Adam 1e-4, batch 250, R = 64, 4 epochs), 3 seeds; compare it with "
        "that grid's rows. Planned after the rank-64 results were seen."
    ),
}


GENERALIZED_REFERENCE = {"generalized_accuracy_softplus": "generalized_accuracy_paper_lr"}
"""A sweep of one family, and the sweep of the same budget and seeds its sentences pair it with."""


def _seed_runs(sweep: str, setting: dict) -> dict:
    """{"by_seed": {seed: (test accuracy, run)}} of the finished runs of ``sweep`` at ``setting``
    (its values on every axis of the sweep except the seed)."""
    rows, axes = _rows(sweep)
    keys = [a for a in axes if a != "seed" and a in setting]
    chosen = [row for row in rows
              if row.get("status") == "finished" and all(str(row[k]) == str(setting[k]) for k in keys)]
    return {"by_seed": {row["seed"]: (float(row["test_accuracy"]), row["run"]) for row in chosen}}


def generalized_accuracy_text(sweep: str) -> str:
    """The table of one generalized sweep, led by its paired comparisons with their 95 % intervals:
    the best multiplicative network against the best ReLU (and softplus) one, and the best ReLU RNN
    against the ReLU shallow network (the paper's Fig. 2), each "best" chosen by
    :func:`tensorrnn.report.selection_score` (validation).
    """
    from tensorrnn.models import short_name
    from tensorrnn.report import paired_interval, selection_score, test_examples
    from tensorrnn.stats import comparison_words
    from tensorrnn.sweep import read_test_correct

    if not _rows(sweep)[0]:
        return ""
    plan = json.loads((RESULTS / sweep / "plan.json").read_text())
    rates = {c["lr"] for c in plan.get("configs", {}).values()}
    fixed_lr = str(rates.pop()) if len(rates) == 1 else "varies"  # where the rate is no axis of the sweep
    summary, lines = _accuracy_table(sweep, {
        "lr": lambda s: str(s["lr"]) if "lr" in s else fixed_lr,
        "parameters": lambda s: f"{s['parameters']:,}",
        "validation": lambda s: f"{100 * s['val_mean']:.2f} %",
    })  # fmt: skip
    best = {}
    for s in summary:
        kind = next((k for k in ("relu", "softplus") if s["model"].startswith(k + "-")), "product")
        key = (s["dataset"], kind)
        if key not in best or selection_score(s) > selection_score(best[key]):
            best[key] = s
    # A sweep of one kind alone (softplus) is paired with the sweep of the same budget that has the rest.
    reference = GENERALIZED_REFERENCE.get(sweep)
    correct = read_test_correct(RESULTS / sweep)
    if reference:
        correct = {**read_test_correct(RESULTS / reference), **correct}
    sentences = []
    for d in sorted({d for d, _ in best}):
        others = [best[(d, kind)] for kind in ("relu", "softplus") if (d, kind) in best]
        if reference:  # this sweep's network against the reference sweep's product and ReLU RNNs
            pairs = [((reference, {"dataset": d, "model": m}), (sweep, o))
                     for o in others for m in ("tt", "relu-tt")]
        elif (d, "product") in best:
            pairs = [((sweep, best[(d, "product")]), (sweep, o)) for o in others]
        else:
            pairs = []
        # The paper's Fig. 2: the generalized RNN against the generalized shallow network.
        rnns = [r for r in summary if r["dataset"] == d and r["model"] in ("relu-tt", "relu-tt-shared")]
        shallow = [r for r in summary if r["dataset"] == d and r["model"] == "relu-cp"]
        if rnns and shallow and not reference:
            rnn, cp = max(rnns, key=selection_score), max(shallow, key=selection_score)
            pairs.append(((sweep, rnn), (sweep, cp)))
        for (sweep_a, a), (sweep_b, b) in pairs:
            runs_a, runs_b = _seed_runs(sweep_a, a), _seed_runs(sweep_b, b)
            interval = paired_interval(runs_a, runs_b, test_examples(d), correct)
            if interval.seeds:
                words = comparison_words(short_name(a["model"]), short_name(b["model"]), interval)
                sentences.append(f"On {d}: {words} (paired over {interval.seeds} seeds).")
    return GENERALIZED_SWEEPS[sweep] + " " + " ".join(sentences) + "\n\n" + "\n".join(lines) + "\n"


def certified_text() -> str:
    from tensorrnn.ranks.lab import read_rows
    from tensorrnn.ranks.report import status_counts
    from tensorrnn.ranks.report import summarize as summarize_ranks

    summaries = summarize_ranks(read_rows(RESULTS / "certified" / "ranks.csv"))
    determined = sum(s.determined for s in summaries)
    holds = sum(s.verdict == "holds (certified)" for s in summaries)
    largest = max(max(s.rows, s.cols) for s in summaries)
    distinct = {(s.n, s.r, s.d): s.certified for s in summaries if s.family == "tt"}
    paired = [s for s in summaries if s.family == "tt-shared" and (s.n, s.r, s.d) in distinct]
    equal = sum(s.certified == distinct[(s.n, s.r, s.d)] for s in paired)
    above = sum(s.certified > s.bound_q_rm1 for s in paired)
    return (
        "### Extended certified table\n\n"
        f"Exact ranks only (`tensorrnn ranks --family tt,tt-shared,tt-uniform --n 2,3,4,5 --r 2..6 "
        f"--d 4..28 --max-side {largest} --method exact --trials 1`): {len(summaries)} settings with "
        f"matrices up to {largest} × {largest}. The theorem's bound is certified in {holds} and the "
        f"generic odd/even rank is determined (certified = min-cut) in {determined} of them. One "
        f"shared core reaches the same certified rank as distinct cores in {equal} of {len(paired)} "
        f"paired settings (sharing costs no odd/even rank here), and exceeds the shared-core bound "
        f"min(n, r − 1)^(d/2) in {above} of them. With the witnesses of docs/THEORY.md, "
        f"{status_counts(summaries)['proved for all d']} of {len(summaries)} settings are proved for "
        f"every even d, not only certified up to N = {largest}. Table: "
        "[`docs/results/certified/ranks.md`](docs/results/certified/ranks.md).\n"
    )


DETAILS = RESULTS / "NETWORKS.md"
"""Every per-sweep text and the targets table, generated beside the results (linked from the README)."""


def render_details() -> str:
    """The long generated texts the README links to: targets, screens, per-sweep results."""
    parts = ["# Network laboratory: every sweep, generated", "",
             "Generated by `make readme` from the files in this folder; the README quotes the conclusions.",
             ""]  # fmt: skip
    if (RESULTS / "certified" / "ranks.csv").exists():
        parts.append(certified_text())
    for text in (augmented_text(), khrulkov_text(), long_chains_text(), middle_lr_text(),
                 *map(generalized_accuracy_text, GENERALIZED_SWEEPS)):
        if text:
            parts.append(text)
    parts.append("### Accuracy targets\n")
    parts.append("Best setting of each sweep by validation, its mean test accuracy with the 95 % interval "
                 "(seeds and the test set's noise; official test sets except mnist-10k), the verdict "
                 "against the target, and where the number comes from (re-run check, post hoc).\n")
    parts.append(targets_table())
    parts.append("\nSettings, commands and timings: "
                 "[`benchmarks/ACCURACY.md`](../../benchmarks/ACCURACY.md).")
    return "\n".join(parts).strip() + "\n"


def render() -> str:
    from tensorrnn.report import (
        conclusions_section,
        demo_sections,
        evidence_sections,
        long_chain_sections,
        sections_markdown,
        teacher_scaling_figure,
    )

    parts = []
    if not ((RESULTS / "ranks" / "ranks.csv").exists() and (RESULTS / "quick" / "results.csv").exists()):
        return ""
    page = demo_sections(RESULTS / "ranks", RESULTS / "quick")
    by_title = {s["title"]: s for s in page}
    rank_conclusion = by_title["Conclusions"]["text"].split("\n\n")[0].removeprefix("**Rank laboratory.** ")
    conclusions = conclusions_section(rank_conclusion, RESULTS)
    figures = [by_title["Certified ranks per regime"], *teacher_scaling_figure(RESULTS)]
    chains = long_chain_sections(RESULTS)
    parts.append(sections_markdown([conclusions], ROOT, level=3))
    parts.append(sections_markdown([*chains, *figures, by_title["Rank laboratory"]], ROOT, level=3))
    parts.append(sections_markdown(evidence_sections(RESULTS), ROOT, level=3))
    parts.append("### More\n")
    parts.append("- Every sweep's generated text, the screens and the accuracy-targets table with intervals "
                 "and provenance: [`docs/results/NETWORKS.md`](docs/results/NETWORKS.md).\n"
                 "- The full rank table with verdicts and flags: "
                 "[`docs/results/ranks/ranks.md`](docs/results/ranks/ranks.md); the certified table: "
                 "[`docs/results/certified/`](docs/results/certified/).\n"
                 "- The demo's own smoke run (one seed): [`docs/results/quick/report.md`]"
                 "(docs/results/quick/report.md).\n")  # fmt: skip
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
    details = render_details()
    if args.check:
        stale = [p.name for p, fresh in ((readme, updated), (DETAILS, details))
                 if not p.exists() or p.read_text() != fresh]  # fmt: skip
        if stale:
            print(f"{', '.join(stale)} out of date: run `make readme`")
            return 1
        return 0
    readme.write_text(updated)
    DETAILS.write_text(details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
