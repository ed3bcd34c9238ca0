"""Grids of runs: local and Ray executors agree, crashes are recorded, reruns skip."""

import csv
import subprocess
from pathlib import Path

import pytest
import yaml

from tensorrnn.errors import ConfigError
from tensorrnn.report import write_comparison_report
from tensorrnn.sweep import load_config_file, plan_sweep, run_sweep

GRID = {
    "name": "grid",
    "dataset": "synthetic-tt",
    "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 600},
    "model": ["tt", "tt-shared"], "rank": [2, 3], "seed": 0,
    "patch": 1, "feature_dim": 4, "batch_size": 32, "lr": 0.02, "epochs": 2, "init": "gaussian",
}  # fmt: skip
STABLE = ("run", "status", "dataset", "model", "rank", "seed", "patch", "d", "test_accuracy", "val_accuracy",
          "train_accuracy", "num_parameters", "epochs_completed", "best_epoch", "error")  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return [{k: row[k] for k in STABLE} for row in csv.DictReader(handle)]


def test_local_and_ray_executors_give_the_same_rows(tmp_path: Path, request):
    # Equal floats need equal torch thread counts: a reduction's order depends on them.
    plan = plan_sweep(GRID, "grid", tmp_path / "local")
    local = run_sweep(plan, jobs=2, threads=1, quiet=True)
    write_comparison_report(plan)
    # A Ray of its own (tests/conftest.py: own_ray); the runs' files travel as on a cluster
    # (test_cluster_ray.py runs them on nodes that share no files with the driver).
    request.getfixturevalue("own_ray")
    ray_out = run_sweep(plan_sweep(GRID, "grid", tmp_path / "ray"), executor="ray", threads=1, quiet=True)
    rows = read_csv(local / "results.csv")
    with (local / "results.csv").open() as handle:
        assert {row["patch"] for row in csv.DictReader(handle)} == {"1"}
    assert len(rows) == 4 and all(r["status"] == "finished" for r in rows)
    assert rows == read_csv(ray_out / "results.csv")
    for name in ("report.md", "accuracy_vs_rank.png", "accuracy_vs_parameters.png",
                 "training_curves.png"):  # fmt: skip
        assert (local / name).stat().st_size > 0


def test_a_crashing_run_is_recorded_and_the_sweep_completes(tmp_path: Path, cli_command):
    # Patch 3 does not divide the 1x4 synthetic images: that run fails at build time.
    grid = {**GRID, "model": "tt", "rank": 2, "patch": [1, 3]}
    plan = plan_sweep(grid, "grid", tmp_path)
    run_sweep(plan, quiet=True)
    write_comparison_report(plan)
    rows = {r["run"]: r for r in read_csv(tmp_path / "results.csv")}
    assert rows["patch1"]["status"] == "finished"
    assert rows["patch3"]["status"] == "failed" and "patch" in rows["patch3"]["error"]
    assert "Failed runs" in (tmp_path / "report.md").read_text()
    # Running again skips the finished run and retries the failed one.
    result = subprocess.run(
        [*cli_command, "compare", "--config", str(_write(tmp_path / "g.yaml", grid)), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 of 2 runs already finished" in result.stdout


def _write(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize(
    "values,needle",
    [
        ({**GRID, "rank": []}, "empty list"),
        ({**GRID, "optimiser": "sgd"}, "unknown key(s) optimiser"),
        ({**GRID, "rank": [2, 0]}, "rank=0"),
    ],
)
def test_bad_grids_are_refused_before_any_run(tmp_path: Path, values, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        plan_sweep(values, "grid", tmp_path)
    assert not (tmp_path / "runs").exists()


def test_missing_or_malformed_config_file(tmp_path: Path, cli_command):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [tt\nrank: 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    result = subprocess.run([*cli_command, "compare", "--config", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# Configs of other commands (the longest matching prefix names the command).
OTHER_COMMANDS = {"teacher_": "teacher", "teacher_scaling": "teacher-scaling", "tune_": "tune",
                  "generalized_expressivity": "generalized-ranks",
                  "generalized_long": "generalized-ranks", "generalized_rank_one": "generalized-ranks",
                  "generalized_shared_appendix": "generalized-ranks"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_expand(name):
    prefixes = sorted((p for p in OTHER_COMMANDS if name.startswith(p)), key=len)
    command = OTHER_COMMANDS[prefixes[-1]] if prefixes else "compare"
    if command == "teacher":
        from tensorrnn.teacher import load_config

        assert load_config(load_config_file(CONFIGS / name), name)
    elif command == "generalized-ranks":
        from tensorrnn.cli.generalized import _KEYS

        assert set(load_config_file(CONFIGS / name)) <= set(_KEYS) | {"name"}
    elif command == "teacher-scaling":
        from tensorrnn.teacher_scaling import load_config as load_scaling
        from tensorrnn.teacher_scaling import plan_jobs

        assert plan_jobs(load_scaling(load_config_file(CONFIGS / name), name))
    elif command == "tune":
        from tensorrnn.tune import load_tuning_config

        assert load_tuning_config(CONFIGS / name).families
    else:
        assert plan_sweep(load_config_file(CONFIGS / name), name).runs


def test_points_vary_settings_together_and_label_budgets(tmp_path: Path):
    grid = {**GRID, "model": None, "rank": None, "seed": [0, 1], "epochs": 1,
            "points": [{"budget": "small", "model": "tt", "rank": 2},
                       {"budget": "small", "model": "cp", "rank": 5}]}  # fmt: skip
    del grid["model"], grid["rank"]
    plan = plan_sweep(grid, "grid", tmp_path)
    assert plan.axes == ("budget", "model", "rank", "seed")
    assert [(r.config.model, r.config.rank, r.config.seed) for r in plan.runs] == [
        ("tt", 2, 0), ("tt", 2, 1), ("cp", 5, 0), ("cp", 5, 1)]
    assert plan.runs[0].name == "budgetsmall-tt-rank2-seed0"
    with pytest.raises(ConfigError, match="both a list and set in points"):
        plan_sweep({**grid, "model": ["tt", "cp"]}, "grid", tmp_path)
    with pytest.raises(ConfigError, match="points must be a non-empty list"):
        plan_sweep({**grid, "points": []}, "grid", tmp_path)


def test_an_empty_axis_value_stays_its_own_grid_point(tmp_path: Path):
    from tensorrnn.report import summarize
    from tensorrnn.sweep import collect_results

    grid = {**GRID, "model": "tt", "rank": 2, "points": [{"clip_grad": 1.0}, {"clip_grad": None}]}
    plan = plan_sweep(grid, "grid", tmp_path)
    rows = collect_results(plan)
    assert [r["clip_grad"] for r in rows] == [1.0, "null"]
    assert len(summarize(rows, plan.axes)) == 2
