"""`tensorrnn tune`: equal trials per family, validation only, resumable, the same trials twice."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tensorrnn import train
from tensorrnn.errors import ConfigError
from tensorrnn.sweep import plan_sweep
from tensorrnn.tune import load_tuning_config, plan_tuning, run_tuning

CLI = [sys.executable, "-c", "from tensorrnn.cli import main; main()"]
DIGITS = {
    "name": "digits", "seed": 3, "trials": 3, "epochs": 2,
    "settings": {"dataset": "digits", "patch": 2, "feature_dim": 4, "rank": 4, "compile": False},
    "families": ["cp", "tt-shared"],
    "search": {"lr": {"low": 1.0e-3, "high": 3.0e-2, "log": True}, "batch_size": {"choices": [32, 64]}},
    "pruner": {"kind": "median", "startup_trials": 1, "warmup_epochs": 0},
}  # fmt: skip


def write_config(folder: Path, values: dict, name: str = "tune.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(values))
    return path


def trial_list(out: Path, family: str) -> list[tuple]:
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name=f"digits-{family}", storage=storage)
    return [(t.number, t.state.name, t.params, t.value, t.user_attrs.get("epochs")) for t in study.trials]


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --------------------------------------------------------------------------- #
# A small study: the same trials twice, counts, outputs, and no test set
# --------------------------------------------------------------------------- #


@pytest.fixture
def test_set_spy(monkeypatch):
    """Records every evaluation of a test split (found by the storage of its labels)."""
    import tensorrnn.data as data

    test_labels, kept, evaluated = set(), [], []
    load = data.load_dataset

    def loading(*args, **kwargs):
        dataset = load(*args, **kwargs)
        kept.append(dataset.test.labels)  # alive, so no other tensor gets its address
        test_labels.add(dataset.test.labels.data_ptr())
        return dataset

    evaluate_examples = train.evaluate_examples

    def evaluating(model, images, labels, *args, **kwargs):
        if labels.data_ptr() in test_labels:
            evaluated.append(len(labels))
        return evaluate_examples(model, images, labels, *args, **kwargs)

    monkeypatch.setattr(data, "load_dataset", loading)
    monkeypatch.setattr(train, "evaluate_examples", evaluating)
    return evaluated


def test_the_spy_sees_a_test_evaluation(tmp_path, test_set_spy):
    # Without this, the next test could pass because the spy sees nothing at all.
    config = train.RunConfig.from_mapping({**DIGITS["settings"], "model": "cp", "epochs": 1})
    train.train_run(config, tmp_path / "run", quiet=True)
    assert test_set_spy, "the spy missed the test evaluation of an ordinary run"


def test_small_study_is_the_same_twice_and_never_reads_test(tmp_path, test_set_spy):
    runs = []
    for name in ("first", "second"):
        plan = plan_tuning(DIGITS, "digits.yaml", out=tmp_path / name)
        run_tuning(plan, quiet=True)
        runs.append({family: trial_list(tmp_path / name, family) for family in DIGITS["families"]})
    assert runs[0] == runs[1]
    assert test_set_spy == [], "a trial evaluated the test split"
    out = tmp_path / "first"
    for family, trials in runs[0].items():
        assert [t[0] for t in trials] == [0, 1, 2]
        assert all(t[1] in ("COMPLETE", "PRUNED") for t in trials)
        for _, _, params, _, _ in trials:
            assert 1.0e-3 <= params["lr"] <= 3.0e-2 and params["batch_size"] in (32, 64)
        for folder in (out / "trials" / family).iterdir():
            result = folder / "result.json"
            if result.exists():
                assert json.loads(result.read_text())["test_accuracy"] is None
    # The objective is the best validation accuracy in the trial's own metrics file.
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and "test_accuracy" not in rows[0]
    for row in rows:
        lines = (out / row["folder"] / "metrics.jsonl").read_text().splitlines()
        best = max(json.loads(line)["val_accuracy"] for line in lines)
        assert float(row["best_val_accuracy"]) == pytest.approx(best, abs=1e-12)
        assert int(row["epochs"]) == len(lines)


def test_outputs_best_configs_and_a_comparison_config(tmp_path):
    plan = plan_tuning(DIGITS, "digits.yaml", out=tmp_path / "study")
    run_tuning(plan, quiet=True)
    out = tmp_path / "study"
    summary = json.loads((out / "summary.json").read_text())["families"]
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for family in DIGITS["families"]:
        mine = [r for r in rows if r["family"] == family]
        complete = [r for r in mine if r["state"] == "COMPLETE"]
        best = max(complete, key=lambda r: (float(r["best_val_accuracy"]), -int(r["trial"])))
        assert summary[family]["best"]["trial"] == int(best["trial"])
        stored = json.loads((out / best["folder"] / "config.json").read_text())
        assert yaml.safe_load((out / "best" / f"{family}.yaml").read_text()) == stored
        # Compute accounting from the trial folders themselves.
        assert summary[family]["epochs_trained"] == sum(int(r["epochs"]) for r in mine)
        assert summary[family]["epochs_without_pruning"] == 2 * len(mine)
    compare = yaml.safe_load((out / "compare.yaml").read_text())
    sweep = plan_sweep(compare, "compare.yaml")
    assert len(sweep.runs) == 3 * len(DIGITS["families"])
    assert sorted({r.config.seed for r in sweep.runs}) == [0, 1, 2]
    for run in sweep.runs:
        best = yaml.safe_load((out / "best" / f"{run.config.model}.yaml").read_text())
        assert {k: v for k, v in run.config.to_json().items() if k != "seed"} == \
            {k: v for k, v in best.items() if k != "seed"}
    assert (out / "figures" / "cp_history.png").is_file()
    assert "| cp |" in (out / "report.md").read_text()


def test_a_rerun_with_more_trials_adds_them(tmp_path):
    run_tuning(plan_tuning({**DIGITS, "trials": 2}, "digits.yaml", out=tmp_path / "s"), quiet=True)
    before = trial_list(tmp_path / "s", "cp")
    run_tuning(plan_tuning(DIGITS, "digits.yaml", out=tmp_path / "s"), quiet=True)
    after = trial_list(tmp_path / "s", "cp")
    assert after[:2] == before and len(after) == 3


@pytest.mark.slow
def test_jobs_run_trials_at_once_and_count_each_once(tmp_path):
    plan = plan_tuning({**DIGITS, "trials": 4}, "digits.yaml", out=tmp_path / "s")
    run_tuning(plan, jobs=3, quiet=True)  # more jobs than families: a family runs 2 trials at once
    for family in DIGITS["families"]:
        trials = trial_list(tmp_path / "s", family)
        assert [t[1] for t in trials].count("COMPLETE") + [t[1] for t in trials].count("PRUNED") == 4
        assert sorted(t[0] for t in trials) == [0, 1, 2, 3]


@pytest.mark.slow
def test_one_job_per_family_gives_the_trials_of_one_job(tmp_path):
    """Families in parallel, each one trial at a time: the sequential study's trials, exactly."""
    values = {**DIGITS, "trials": 4, "pruner": {"kind": "median", "startup_trials": 2, "warmup_epochs": 0}}
    run_tuning(plan_tuning(values, "digits.yaml", out=tmp_path / "one"), jobs=1, quiet=True)
    run_tuning(plan_tuning(values, "digits.yaml", out=tmp_path / "two"), jobs=2, quiet=True)
    for family in DIGITS["families"]:
        assert trial_list(tmp_path / "two", family) == trial_list(tmp_path / "one", family)


@pytest.mark.slow
def test_with_fewer_jobs_than_families_no_family_runs_two_trials_at_once(tmp_path):
    values = {**DIGITS, "trials": 3, "families": ["cp", "tt", "tt-shared"]}
    run_tuning(plan_tuning(values, "digits.yaml", out=tmp_path / "s"), jobs=2, quiet=True)
    for family in values["families"]:
        storage = f"sqlite:///{tmp_path / 's' / 'study.db'}"
        study = optuna.load_study(study_name=f"digits-{family}", storage=storage)
        spans = sorted((t.datetime_start, t.datetime_complete) for t in study.trials)
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:], strict=False)), family


# --------------------------------------------------------------------------- #
# Bad input: one line, exit 2, nothing written
# --------------------------------------------------------------------------- #


def run_main(args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, list[str]]:
    from tensorrnn.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["tensorrnn", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return exit_info.value.code, lines


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"search": {"learning_rate": {"low": 1e-3, "high": 1e-2}}}, "unknown parameter 'learning_rate'"),
        ({"search": {"lr": {"low": 1e-2, "high": 1e-2}}}, "is empty"),
        ({"search": {"lr": {"low": 1e-2, "high": 1e-3}}}, "is inverted"),
        ({"search": {"dropout": {"low": 0.0, "high": 0.5, "log": True}}}, "a log range must stay above 0"),
        ({"search": {"batch_size": {"choices": []}}}, "choices is empty"),
        ({"search": {"dropout": {"low": 0.0, "high": 1.5}}}, "dropout=1.5 is out of range"),
        ({"search": {"augment_shift": {"low": 0.5, "high": 2}}}, "give integer low, high and step"),
        ({"search": {"rank": {"low": 2, "high": 8}}}, "rank is both fixed in settings and searched"),
        ({"families": ["cp", "rnn"]}, "'rnn' is not one of"),
        ({"trials": 0}, "trials=0 must be an integer >= 1"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, change, needle):
    config = write_config(tmp_path, {**DIGITS, **change})
    before = snapshot(tmp_path)
    code, lines = run_main(["tune", "--config", str(config), "--out", "study", "-q"], tmp_path,
                           monkeypatch, capsys)  # fmt: skip
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert snapshot(tmp_path) == before


def test_trials_flag_zero_is_refused(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, DIGITS)
    before = snapshot(tmp_path)
    code, lines = run_main(["tune", "--config", str(config), "--trials", "0", "-q"], tmp_path,
                           monkeypatch, capsys)  # fmt: skip
    assert code == 2 and len(lines) == 1 and "--trials 0" in lines[0], lines
    assert snapshot(tmp_path) == before


def test_a_folder_with_another_search_space_is_refused_naming_the_differences(tmp_path, monkeypatch, capsys):
    small = {**DIGITS, "trials": 1, "epochs": 1}
    run_tuning(plan_tuning(small, "digits.yaml", out=tmp_path / "study"), quiet=True)
    other = {**small, "search": {**DIGITS["search"], "lr": {"low": 1.0e-4, "high": 3.0e-2, "log": True}}}
    config = write_config(tmp_path, other)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "study").rglob("*") if p.is_file()}
    code, lines = run_main(["tune", "--config", str(config), "--out", "study", "-q"], tmp_path,
                           monkeypatch, capsys)  # fmt: skip
    assert code == 2 and len(lines) == 1, lines
    assert "search.lr.low (stored 0.001, now 0.0001)" in lines[0]
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "study").rglob("*") if p.is_file()}
    assert after == before


def test_a_study_made_before_a_setting_existed_continues(tmp_path):
    """A setting added to RunConfig later (cuda_graph, say) is absent from an older study's spec: the
    study continues, as its runs do (train.with_legacy_settings), instead of being refused."""
    out = tmp_path / "study"
    run_tuning(plan_tuning({**DIGITS, "trials": 1, "epochs": 1}, "digits.yaml", out=out), quiet=True)
    storage = f"sqlite:///{out / 'study.db'}"
    for family in DIGITS["families"]:
        study = optuna.load_study(study_name=f"digits-{family}", storage=storage)
        spec = study.user_attrs["spec"]
        del spec["settings"]["cuda_graph"]
        study.set_user_attr("spec", spec)
    run_tuning(plan_tuning({**DIGITS, "trials": 2, "epochs": 1}, "digits.yaml", out=out), quiet=True)
    assert [state for _, state, *_ in trial_list(out, "cp")] == ["COMPLETE", "COMPLETE"]


def test_help_shows_an_example():
    done = subprocess.run([*CLI, "tune", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "tensorrnn tune --config" in done.stdout


def test_committed_tuning_configs_plan(tmp_path):
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("tune_*.yaml"))
    assert configs
    for path in configs:
        plan = load_tuning_config(path, out=tmp_path / path.stem)
        trials = {f.family: plan.trials for f in plan.families}
        assert len(set(trials.values())) == 1  # the same budget for every family


def test_library_errors_name_fields_not_flags():
    with pytest.raises(ConfigError, match="search.lr: the range"):
        plan_tuning({**DIGITS, "search": {"lr": {"low": 1, "high": 1}}}, "x.yaml")


# --------------------------------------------------------------------------- #
# kill -9 during a trial, then the same command
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_kill_9_during_a_trial_then_rerun(tmp_path):
    # Long enough trials (6 epochs of a rank-16 TT) that the kill lands inside one.
    values = {**DIGITS, "trials": 3, "epochs": 6, "families": ["tt"], "pruner": "none",
              "settings": {**DIGITS["settings"], "rank": 16}}  # fmt: skip
    config = write_config(tmp_path, values)
    command = [*CLI, "tune", "--config", str(config), "--out", "study", "--heartbeat", "1", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = tmp_path / "study" / "trials" / "tt" / "trial-001" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert driver.poll() is None, driver.communicate()
    os.kill(driver.pid, signal.SIGKILL)
    driver.communicate()
    killed_after = len(metrics.read_text().splitlines())
    assert killed_after < 6, "the trial finished before the kill"

    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="digits-tt", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    trials = study.trials
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [1]
    retry = [t for t in finished if t.system_attrs.get("failed_trial") == 1]
    assert len(retry) == 1 and retry[0].params == failed[0].params
    # The retry continued the killed trial's run folder: one metrics line per epoch, none twice.
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == list(range(1, 7))
    sessions = (metrics.parent / "provenance.jsonl").read_text().splitlines()
    assert any(json.loads(s)["resumed_after_epoch"] == killed_after for s in sessions)


# --------------------------------------------------------------------------- #
# Ray: trials on the nodes of a local test cluster, the study on the driver
# --------------------------------------------------------------------------- #


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_trials_match_the_local_study(tmp_path, request):
    pytest.importorskip("ray")
    import test_cluster_ray as ray_cluster

    if not ray_cluster.RAY.exists():
        pytest.skip(f"no ray command beside {sys.executable}")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(os.urandom(16).hex())
    nodes = ray_cluster.LocalCluster(home)
    try:
        nodes.start("head", head=True)
        nodes.start("worker")
        config = write_config(tmp_path, DIGITS)
        # The driver runs as a user of the cluster would: the head's token in ~/.ray, no RAY_ variables.
        env = {**ray_cluster._driver_env(nodes)}
        command = [*CLI, "tune", "--config", str(config), "--out", "ray-study", "--executor", "ray",
                   "--address", nodes.address, "--jobs", "2", "-q"]  # fmt: skip
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        nodes.stop()
    run_tuning(plan_tuning(DIGITS, "digits.yaml", out=tmp_path / "local-study"), quiet=True)
    for family in DIGITS["families"]:
        on_ray = trial_list(tmp_path / "ray-study", family)
        assert len([t for t in on_ray if t[1] in ("COMPLETE", "PRUNED")]) == 3
        # Files came home: every trial folder holds its epochs; finished ones their result.
        for folder in (tmp_path / "ray-study" / "trials" / family).iterdir():
            assert (folder / "checkpoint.pt").is_file() and (folder / "metrics.jsonl").is_file()
    # The first trial of each family has no history to depend on: the same numbers as locally.
    for family in DIGITS["families"]:
        first_on_ray = trial_list(tmp_path / "ray-study", family)[0]
        assert first_on_ray == trial_list(tmp_path / "local-study", family)[0]
