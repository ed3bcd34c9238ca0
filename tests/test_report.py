"""Summaries behind the tables: verdicts of the rank table, means over seeds."""

import pytest

from tensorrnn.ranks.lab import COLUMNS
from tensorrnn.ranks.report import summarize as summarize_ranks
from tensorrnn.report import best_by_model, summarize


def rank_row(method, rank, *, family="tt-shared", mincut=8, q_rm1=8, q_r=27, gap="inf"):
    row = dict.fromkeys(COLUMNS, "")
    row.update(family=family, n="3", r="3", d="6", split="odd-even", trial="0", method=method,
               rank=str(rank), mincut=str(mincut), bound_q_rm1=str(q_rm1), bound_q_r=str(q_r),
               rows="27", cols="27", gap=gap if method == "float" else "", seconds="0.1")  # fmt: skip
    return row


@pytest.mark.parametrize(
    "rows,verdict,determined",
    [
        ([rank_row("exact", 8), rank_row("float", 8)], "holds (certified)", True),
        ([rank_row("exact", 7, mincut=27), rank_row("float", 8)], "holds (float evidence only)", False),
        ([rank_row("exact", 7, mincut=27), rank_row("float", 7)], "not shown by these instances", False),
        ([rank_row("exact", 4, mincut=4)], "VIOLATED (min-cut below bound)", True),
        # distinct cores are judged against q = min(n, r) = 3: 27
        ([rank_row("exact", 8, family="tt")], "VIOLATED (min-cut below bound)", True),
    ],
)
def test_rank_verdicts(rows, verdict, determined):
    (summary,) = summarize_ranks(rows)
    assert summary.verdict == verdict
    assert summary.determined == determined


def test_certified_rank_is_the_largest_over_instances():
    rows = [rank_row("exact", 6, mincut=27), rank_row("exact", 9, mincut=27)]
    rows[1]["trial"] = "1"
    assert summarize_ranks(rows)[0].certified == 9


def run_row(model, rank, seed, acc, params=100, spe=1.0, status="finished"):
    return {"run": f"{model}-{rank}-{seed}", "status": status, "dataset": "digits", "model": model,
            "rank": rank, "seed": seed, "test_accuracy": acc, "num_parameters": params,
            "seconds_per_epoch": spe}  # fmt: skip


def test_mean_and_sample_std_over_seeds_and_failed_runs_left_out():
    rows = [run_row("tt", "4", 0, "0.80"), run_row("tt", "4", 1, "0.90"), run_row("tt", "4", 2, "0.70"),
            run_row("tt", "4", 3, "", status="failed"), run_row("cp", "16", 0, "0.85"),
            run_row("cp", "2", 0, "0.50")]  # fmt: skip
    summary = summarize(rows, ["model", "rank", "seed"])
    tt = next(s for s in summary if s["model"] == "tt")
    assert tt["runs"] == 4 and tt["finished"] == 3
    assert tt["test_mean"] == pytest.approx(0.80)
    assert tt["test_std"] == pytest.approx(0.10)  # sample std of 0.7, 0.8, 0.9
    assert [(s["model"], s["rank"]) for s in summary] == [("cp", "2"), ("cp", "16"), ("tt", "4")]
    assert best_by_model(summary)[("digits", "cp")]["rank"] == "16"


def test_the_best_setting_is_chosen_on_validation_not_on_the_test_it_quotes():
    # Rank 8 has the better test accuracy, rank 4 the better validation accuracy (by hand).
    rows = [{**run_row("tt", "4", seed, test), "val_accuracy": val}
            for seed, (test, val) in enumerate([("0.80", "0.90"), ("0.82", "0.88")])]
    rows += [{**run_row("tt", "8", seed, test), "val_accuracy": val}
             for seed, (test, val) in enumerate([("0.85", "0.84"), ("0.87", "0.86")])]  # fmt: skip
    summary = summarize(rows, ["model", "rank", "seed"])
    assert [s["val_mean"] for s in summary] == [pytest.approx(0.89), pytest.approx(0.85)]
    assert best_by_model(summary)[("digits", "tt")]["rank"] == "4"


def test_budget_sentences_are_generated_from_paired_seeds():
    import math

    import numpy as np

    from tensorrnn.report import budget_comparison

    accuracy = {"tt": [0.90, 0.91, 0.92], "tt-shared": [0.80, 0.81, 0.82], "cp": [0.905, 0.905, 0.925]}
    rows = [{"status": "finished", "dataset": "fashion-mnist", "budget": "10k", "model": model,
             "rank": 4, "num_parameters": 10_000, "seed": seed, "test_accuracy": acc}
            for model, values in accuracy.items() for seed, acc in enumerate(values)]  # fmt: skip
    rows.append({**rows[0], "status": "failed"})
    table, sentences = budget_comparison(rows)
    assert table.count("| fashion-mnist | 10k |") == 3
    t2, n = 4.302652729911275, 10_000  # t(0.975, 2 dof); the Fashion-MNIST test set

    def half(a, b):  # by hand: seed variance of the differences + the bounded test part
        delta = np.subtract(a, b)
        bound = (1 - np.mean(a)) + (1 - np.mean(b)) - delta.mean() ** 2
        return t2 * math.sqrt(np.var(delta, ddof=1) / 3 + bound / n)

    # CP − TT: (0.005, −0.005, 0.005), mean 0.17 points, half-width 2.31: within noise.
    # CP − TT-shared: (0.105, 0.095, 0.105), mean 10.17 points, half-width 2.65: a lead.
    assert half(accuracy["cp"], accuracy["tt"]) == pytest.approx(0.02315, abs=5e-5)
    assert half(accuracy["cp"], accuracy["tt-shared"]) == pytest.approx(0.02649, abs=5e-5)
    assert sentences == [
        "On fashion-mnist at the 10k budget, CP has the highest mean, 91.17 % [88.05, 94.28; test part "
        "bounded]; CP and TT are within noise (CP − TT = +0.17 points [−2.15, +2.48; test part bounded]); "
        "CP leads TT-shared by +10.17 points [+7.52, +12.82; test part bounded] (paired over 3 seeds, "
        "95 % intervals)."
    ]


def test_shifted_images_section_pairs_tt_shared_with_cp(tmp_path):
    import csv

    from tensorrnn.report import _augmented_section

    folder = tmp_path / "targets_augmented"
    folder.mkdir()
    accuracy = {"tt-shared": [0.91, 0.92, 0.93], "cp": [0.90, 0.90, 0.92], "tt": [0.99, 0.99, 0.99]}
    fields = ["status", "dataset", "model", "rank", "num_parameters", "seed", "test_accuracy"]
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for model, values in accuracy.items():
            for seed, acc in enumerate(values):
                writer.writerow({"status": "finished", "dataset": "mnist", "model": model, "rank": 8,
                                 "num_parameters": 1000, "seed": seed, "test_accuracy": acc})
    section = _augmented_section(folder)
    # TT (distinct cores, far more parameters) stays out of the pairing. TT-shared − CP is
    # (0.01, 0.02, 0.01): 1.33 points, but with 3 seeds (t = 4.30) and the test set's noise the
    # interval is [−0.7, +3.4]: within noise, and the summary counts no lead.
    assert "TT-shared and CP are within noise (TT-shared − CP = +1.33 points [" in section["text"]
    assert "outside noise, on 0 of 1 data sets" in section["text"] and "TT by" not in section["text"]
    assert _augmented_section(tmp_path / "missing") is None


def test_the_packaged_evidence_is_the_committed_results_byte_for_byte():
    # The demo page of an installed package reads these copies (there is no docs/ beside it).
    from pathlib import Path

    from tensorrnn.report import COMMITTED_RESULTS, EVIDENCE_FILES, EVIDENCE_SWEEPS, evidence_sections

    docs = Path(__file__).resolve().parents[1] / "docs" / "results"
    for name in EVIDENCE_SWEEPS:
        for file in EVIDENCE_FILES:
            shipped, committed = COMMITTED_RESULTS / name / file, docs / name / file
            if not committed.exists():  # not every sweep has every file (older ones: no test_correct)
                assert not shipped.exists()
                continue
            assert shipped.read_bytes() == committed.read_bytes(), f"{shipped}: run `make readme`"
    committed = {n for n in EVIDENCE_SWEEPS if (docs / n).is_dir()}
    assert {p.name for p in COMMITTED_RESULTS.iterdir()} == committed
    titles = [section["title"] for section in evidence_sections()]
    assert titles == ["Matched parameter budgets: fashion-mnist", "Matched parameter budgets: mnist",
                      "Shifted images: TT-shared against CP at ~100k parameters"]  # fmt: skip


def _sweep(results, name, rows):
    import csv

    folder = results / name
    folder.mkdir(parents=True)
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["run", "status", "model", "seed", "budget", "test_accuracy"])
        writer.writeheader()
        writer.writerows(rows)


def _arm(model, budget, accuracies, prefix):
    return [{"run": f"{prefix}{seed}", "status": "finished", "model": model, "seed": seed, "budget": budget,
             "test_accuracy": accuracy} for seed, accuracy in enumerate(accuracies)]  # fmt: skip


def test_long_chain_table_pairs_seeds_across_sweeps_and_names_each_arm(tmp_path):
    from tensorrnn.report import long_chain_comparison

    # d = 49: CP 10 points behind on every seed (a lead); distinct TT +1, -1, +0.5 points (noise).
    _sweep(tmp_path, "long_chains_d49_long", _arm("tt-shared", "", [0.90, 0.91, 0.92], "s"))
    cp = _arm("cp", "d49-44k", [0.80, 0.81, 0.82], "cp")
    _sweep(tmp_path, "long_chains_cp", cp)
    _sweep(tmp_path, "long_chains_tt_d49_budget", _arm("tt", "d49-39k", [0.89, 0.92, 0.915], "tt"))
    # d = 784: TT-shared's seeds 0 and 1 come from two sweeps; CP has three seeds, so two pair.
    _sweep(tmp_path, "long_chains_d784_r128_long", _arm("tt-shared", "", [0.98], "run"))
    _sweep(tmp_path, "long_chains_d784_r128_seeds",
           [{**row, "seed": 1} for row in _arm("tt-shared", "", [0.97], "seed1-")])  # fmt: skip
    _sweep(tmp_path, "long_chains_cp_d784", _arm("cp", "d784-36k", [0.90, 0.91, 0.50], "c"))

    found = long_chain_comparison(tmp_path)
    rows = {(row[0], row[2], row[3]): row for row in found["rows"]}
    assert set(rows) == {("49", "CP", "44k"), ("49", "TT (distinct)", "39k"), ("784", "CP", "36k")}
    # Hand-computed means of the per-seed differences (points) and the paired seed counts.
    assert rows["49", "CP", "44k"][4] == "3" and rows["49", "CP", "44k"][7].startswith("+10.00")
    assert rows["49", "TT (distinct)", "39k"][7].startswith("+0.17")
    assert rows["784", "CP", "36k"][4] == "2" and rows["784", "CP", "36k"][7].startswith("+7.00")
    assert "at d = 49, TT-shared leads CP by +10.00 points" in found["text"]
    assert "TT-shared and TT (distinct) are within noise" in found["text"]
    assert "Post hoc" in found["text"]


def test_the_equally_tuned_d49_comparison_pairs_every_two_families(tmp_path):
    """The tuned sweep's sentence: hand-computed paired means; a lead only where every seed agrees."""
    import csv

    from tensorrnn.report import TUNED, tuned_comparison

    rows = []
    arms = (("tt-shared", [0.86, 0.87, 0.88], 30_000), ("tt", [0.85, 0.88, 0.86], 70_000),
            ("cp", [0.80, 0.82, 0.81], 200_000))
    for model, accuracies, size in arms:
        rows += [{**row, "num_parameters": size, "dataset": "fashion-mnist"}
                 for row in _arm(model, "", accuracies, model)]  # fmt: skip
    tuned = next(t for t in TUNED if t.d == 49)
    (tmp_path / tuned.sweep).mkdir()
    with (tmp_path / tuned.sweep / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    found = tuned_comparison(tmp_path)
    text = found["text"]
    assert "With equal tuning at d = 49 (each family's own winner of 12 trials" in text
    assert "d = 196" not in text  # no tuned d = 196 sweep here
    assert "TT-shared 30,000, TT 70,000, CP 200,000" in text
    # TT-shared − CP: 6, 5, 7 points (mean 6.00, a lead); TT − CP: 5, 6, 5 (5.33, a lead);
    # TT-shared − TT: 1, −1, 2 (0.67: within noise).
    assert "TT-shared leads CP by +6.00 points" in text
    assert "TT leads CP by +5.33 points" in text
    assert "TT-shared and TT are within noise (TT-shared − TT = +0.67 points" in text
    table = {row[3]: row for row in found["rows"]}
    assert list(table) == ["TT-shared − CP", "TT − CP", "TT-shared − TT"]
    assert table["TT − CP"][:3] == ["49", "Fashion-MNIST, 4×4 patches", "–"]  # no epochs recorded
    assert table["TT − CP"][4] == "70,000 / 200,000"
    assert table["TT − CP"][5].startswith("86.33 %") and table["TT − CP"][6].startswith("81.00 %")
    assert table["TT − CP"][7].startswith("+5.33 [")


def _tuned_sweep(results, d, arms, epochs):
    import csv

    from tensorrnn.report import TUNED

    rows = []
    for model, accuracies in arms:
        rows += [{**row, "num_parameters": 1000, "dataset": "mnist", "epochs_completed": epochs}
                 for row in _arm(model, "", accuracies, model)]  # fmt: skip
    folder = results / next(t for t in TUNED if t.d == d).sweep
    folder.mkdir()
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_tuned_settings_say_whether_tt_shareds_lead_over_cp_grows_with_d(tmp_path):
    """CP leads at d = 49 (TT-shared − CP: −3, −3.5, −2.5 points), TT-shared at d = 196 (+5, +6, +7):
    a growing lead whose intervals separate, with CP's own lead named."""
    from tensorrnn.report import tuned_comparison

    _tuned_sweep(tmp_path, 49, (("tt-shared", [0.80, 0.805, 0.815]), ("cp", [0.83, 0.84, 0.84])), 40)
    _tuned_sweep(tmp_path, 196, (("tt-shared", [0.95, 0.96, 0.97]), ("cp", [0.90, 0.90, 0.90])), 12)
    found = tuned_comparison(tmp_path)
    text = found["text"]
    assert [row[2] for row in found["rows"]] == ["40", "12"]
    assert "test runs of 40 epochs" in text and "test runs of 12 epochs" in text
    assert "CP leads TT-shared by +3.00 points" in text and "TT-shared leads CP by +6.00 points" in text
    assert ("With equal tuning, TT-shared's mean lead over CP grows with d (−3.00, +6.00 points at "
            "d = 49, 196), the direction the theory predicts; it is outside noise at d = 196; CP leads "
            "outside noise at d = 49 (the same caveat") in text


def test_a_growing_mean_lead_is_not_called_growth_when_the_intervals_overlap(tmp_path):
    from tensorrnn.report import long_chain_comparison

    _sweep(tmp_path, "long_chains_d49_long", _arm("tt-shared", "", [0.90, 0.91, 0.92], "s"))
    _sweep(tmp_path, "long_chains_cp", _arm("cp", "d49-44k", [0.89, 0.91, 0.91], "cp")  # +1, 0, +1
           + _arm("cp", "d196-38k", [0.87, 0.87, 0.87], "cq"))  # +3, +4, +5 against the d = 196 arm
    _sweep(tmp_path, "long_chains_d196_aug40", _arm("tt-shared", "", [0.90, 0.91, 0.92], "t"))
    text = long_chain_comparison(tmp_path)["text"]
    assert "TT-shared's mean lead over CP grows with d (+0.67, +4.00 points at d = 49, 196)" in text
    assert "it is outside noise at d = 196" in text
    assert "the growth itself is within noise" in text


def test_a_tuned_lead_that_falls_again_at_the_longest_chain_is_not_called_growth(tmp_path):
    """TT-shared − CP: +6 points at d = 196 (+5, +6, +7), −6 at d = 784 (−5, −6, −7)."""
    from tensorrnn.report import conclusions_section, tuned_comparison

    _tuned_sweep(tmp_path, 196, (("tt-shared", [0.95, 0.96, 0.97]), ("cp", [0.90, 0.90, 0.90])), 40)
    _tuned_sweep(tmp_path, 784, (("tt-shared", [0.85, 0.84, 0.83]), ("cp", [0.90, 0.90, 0.90])), 12)
    found = tuned_comparison(tmp_path)
    assert ("With equal tuning, TT-shared leads CP outside noise at d = 196, but its lead does not grow "
            "steadily with d (+6.00, −6.00 points at d = 196, 784); CP leads outside noise at d = 784"
            ) in found["text"]  # fmt: skip
    # The first screen's version: each setting's difference with its interval, then the trend.
    assert "TT-shared − CP = +6.00 points [" in found["summary"]
    assert "] at d = 196; −6.00 points [" in found["summary"]
    assert "With equal tuning (12 trials" not in found["summary"] and "test runs of" not in found["summary"]
    assert found["summary"] in conclusions_section("(ranks)", tmp_path)["text"]


def test_shared_against_distinct_cores_at_every_rank(tmp_path):
    """Hand-computed paired means: at r 2 TT leads TT-shared (−5, −5.2, −4.8 points: −5.00), at r 4
    they are within noise (+1, −1, +0.5: +0.17); TT-shared leads CP at r 4 (+5, +6, +4: +5.00)."""
    import csv

    from tensorrnn.report import SHARED_VS_DISTINCT, conclusions_section, shared_vs_distinct_comparison

    arms = {("tt-shared", 2, 100): [0.80, 0.80, 0.80], ("tt", 2, 300): [0.85, 0.852, 0.848],
            ("cp", 2, 200): [0.80, 0.79, 0.81], ("tt-shared", 4, 200): [0.86, 0.85, 0.865],
            ("tt", 4, 1000): [0.85, 0.86, 0.86], ("cp", 4, 400): [0.81, 0.79, 0.825]}  # fmt: skip
    rows = [{**row, "rank": rank, "num_parameters": size, "dataset": "fashion-mnist", "d": 49}
            for (model, rank, size), accuracies in arms.items()
            for row in _arm(model, "", accuracies, f"{model}-r{rank}-s")]  # fmt: skip
    (tmp_path / SHARED_VS_DISTINCT).mkdir()
    with (tmp_path / SHARED_VS_DISTINCT / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    found = shared_vs_distinct_comparison(tmp_path)
    table = {row[0]: row for row in found["rows"]}
    assert list(table) == ["2", "4"]
    assert table["2"][4].startswith("−5.00 [") and table["4"][4].startswith("+0.17 [")
    assert table["4"][5].startswith("+5.00 [") and table["2"][2].startswith("85.00 % [")
    assert "(300 parameters)" in table["2"][2]
    assert "TT-shared and TT are within noise at r = 4" in found["text"]
    assert "TT leads TT-shared at r = 2 (by up to +5.00 points, at r = 2)" in found["text"]
    assert "TT-shared has 3.0–5.0× fewer parameters than TT" in found["text"]
    assert "TT-shared leads CP at r = 4 (by up to +5.00 points, at r = 4)" in found["text"]
    assert "Against CP at equal rank (CP has 2.00–2.00× TT-shared's parameters)" in found["text"]
    assert "TT-shared leads CP at r = 4." in found["text"]
    assert "post hoc" in found["text"]
    assert found["summary"] == (
        "At equal rank on d = 49 (ranks 2–4, post hoc), TT-shared and TT with distinct cores are within "
        "noise at 1 of 2 ranks, TT leads at r = 2; TT-shared has 3.0–5.0× fewer parameters than TT, and "
        "leads CP at r = 4.")  # fmt: skip
    assert found["summary"] in conclusions_section("(ranks)", tmp_path)["text"]
