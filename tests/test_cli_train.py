"""`tensorrnn train` and `compare`: every setting has a flag; bad input is one line, exit 2, no files."""

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from tensorrnn.errors import ConfigError
from tensorrnn.train import RunConfig, deterministic_algorithms, train_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
OPTIONS = "{family: tt, d: 4, n: 3, rank: 2, n_classes: 3, n_samples: 300}"
SYNTHETIC = ["--dataset", "synthetic-tt", "--patch", "1", "--feature-dim", "4", "--rank", "2",
             "--set", f"dataset_options={OPTIONS}"]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_installed_data(tmp_path: Path, monkeypatch):
    # The CLI in a child process sees no data set but scikit-learn's digits.
    monkeypatch.setenv("TENSORRNN_DATA", str(tmp_path / "no-data"))


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--train-limit", "0"], "train_limit=0 is out of range"),
        (["--clip-grad", "-1"], "clip_grad=-1.0 is out of range"),
        (["--val-fraction", "0"], "val_fraction=0.0 is out of range"),
        (["--lr", "nan"], "lr=nan is out of range"),
        (["--seed", "-1"], "seed=-1 is out of range"),
        (["--dropout", "1"], "dropout=1.0 is out of range"),
        (["--set", "init_noise=-0.5"], "init_noise=-0.5 is out of range"),
        (["--set", "no_equals_sign"], "write KEY=VALUE"),
        (["--set", "colour=red"], "unknown key(s) colour"),
        (["--data-dir", "/nonexistent/tensorrnn-data"], "/nonexistent/tensorrnn-data"),
        (["--config", str(CONFIGS / "fashion_targets.yaml")], "pick one run, e.g. --model tt"),
        (["--config", str(CONFIGS / "matched_budgets_fashion.yaml"), "--seed", "0"],
         "points that fit these flags; pick one run, e.g. --model tt --rank 4,"),
    ],
)
def test_bad_train_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, args, needle, run_cli):
    before = snapshot(tmp_path)
    result = run_cli("train", "--dataset", "digits", *args, "--out", "run", "-q", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], lines
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


def test_out_naming_a_file_is_refused(tmp_path: Path, run_cli):
    (tmp_path / "taken").write_text("not a run folder")
    result = run_cli("train", *SYNTHETIC, "--out", "taken", "-q", cwd=tmp_path)
    assert result.returncode == 2 and "is a file" in result.stderr
    assert (tmp_path / "taken").read_text() == "not a run folder"


def test_every_run_setting_has_a_flag(cli_command):
    result = subprocess.run([*cli_command, "train", "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    for spec in dataclasses.fields(RunConfig):
        flag = "--set" if spec.name == "dataset_options" else "--" + spec.name.replace("_", "-")
        assert flag in result.stdout, flag


def test_a_comparison_config_trains_once_its_axes_are_pinned(tmp_path: Path, run_cli):
    grid = {"name": "g", "out": "elsewhere", "dataset": "synthetic-tt", "model": ["tt", "cp"],
            "rank": [2, 3], "patch": 1, "feature_dim": 4, "epochs": 1, "init_noise": 0.05,
            "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3,
                                "n_samples": 300}}  # fmt: skip
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    result = run_cli("train", "--config", "grid.yaml", "--model", "cp", "--rank", "3",
                     "--set", "dataset_options.n_samples=400", "--out", "run", "-q",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (stored["model"], stored["rank"], stored["init_noise"]) == ("cp", 3, 0.05)
    assert stored["dataset_options"]["n_samples"] == 400 and stored["dataset_options"]["d"] == 4
    assert not (tmp_path / "elsewhere").exists()


def test_a_point_is_picked_by_its_flags_and_a_key_it_leaves_out_keeps_the_files_value(tmp_path, run_cli):
    # As configs/targets_augmented.yaml: one point sets dropout, the others take the file's value.
    grid = {"name": "g", "dataset": "synthetic-tt", "patch": 1, "feature_dim": 4, "epochs": 1,
            "dropout": 0.0, "seed": [0, 1],
            "points": [{"model": "tt", "rank": 2}, {"model": "tt", "rank": 2, "dropout": 0.1},
                       {"model": "cp", "rank": 3, "budget": "small"}],
            "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3,
                                "n_samples": 300}}  # fmt: skip
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    ambiguous = run_cli("train", "--config", "grid.yaml", "--model", "tt", "--rank", "2", "--seed", "0",
                        "--out", "run", "-q", cwd=tmp_path)  # fmt: skip
    assert ambiguous.returncode == 2 and not (tmp_path / "run").exists()
    assert "2 points that fit these flags; pick one run, e.g. --dropout 0.0," in ambiguous.stderr
    result = run_cli("train", "--config", "grid.yaml", "--model", "cp", "--rank", "3", "--seed", "1",
                     "--out", "run", "-q", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (stored["model"], stored["rank"], stored["dropout"], stored["seed"]) == ("cp", 3, 0.0, 1)


def test_deterministic_mode_is_scoped_to_the_run(tmp_path: Path):
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    config = RunConfig.from_mapping({
        "dataset": "synthetic-tt", "patch": 1, "feature_dim": 4, "rank": 2, "epochs": 1,
        "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 300},
    })  # fmt: skip
    train_run(config, tmp_path / "run", quiet=True)
    assert not torch.are_deterministic_algorithms_enabled()


def test_metrics_log_gradient_norms_per_parameter_group(tmp_path: Path):
    config = RunConfig.from_mapping({
        "dataset": "synthetic-tt", "model": "tt-shared", "patch": 1, "feature_dim": 4, "rank": 2,
        "epochs": 1,
        "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 300},
    })  # fmt: skip
    result = train_run(config, tmp_path / "run", quiet=True)
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"network.first", "network.middle", "network.last"} <= set(line["grad_norm_mean"])
    assert all(v >= 0 for v in line["grad_norm_max"].values())
    assert (result["patch"], result["d"]) == (1, 4)


def test_feature_dropout_keeps_the_constant_and_the_old_behaviour_stays_reachable():
    from tensorrnn.train import FeatureDropout

    # The constant, then features that are all nonzero: a dropped entry shows as a zero.
    features = torch.rand(64, 49, 7, generator=torch.Generator().manual_seed(5)) + 0.5
    phi = torch.cat([torch.ones(64, 49, 1), features], dim=2)
    new = FeatureDropout(0.5, torch.Generator().manual_seed(0), keep_first=True).train()(phi)
    old = FeatureDropout(0.5, torch.Generator().manual_seed(0), keep_first=False).train()(phi)
    # Reference: inverted dropout with the mask drawn from the same seed over the whole shape.
    keep = torch.rand(phi.shape, generator=torch.Generator().manual_seed(0)) >= 0.5
    assert torch.equal(old, torch.where(keep, 2 * phi, torch.zeros_like(phi)))
    assert torch.equal(new[..., 0], torch.ones(64, 49))
    assert torch.equal(new[..., 1:], old[..., 1:])  # the same stream drops the same features
    assert 0.45 < (new[..., 1:] == 0).float().mean() < 0.55  # 22,000 draws at p = 0.5
    assert (old[..., 0] == 0).any()  # the old behaviour zeroed whole feature vectors


def test_a_run_recorded_before_a_setting_existed_resumes_with_its_legacy_value(tmp_path: Path):
    config = RunConfig.from_mapping({
        "dataset": "synthetic-tt", "patch": 1, "feature_dim": 4, "rank": 2, "epochs": 1, "dropout": 0.1,
        "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 300},
    })  # fmt: skip
    folder = tmp_path / "run"
    folder.mkdir()
    old = {k: v for k, v in config.to_json().items() if k != "dropout_keeps_constant"}
    (folder / "config.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="dropout_keeps_constant"):
        train_run(config, folder, quiet=True)  # today's default is not what that run used
    legacy = RunConfig.from_mapping({**config.to_json(), "dropout_keeps_constant": False})
    assert train_run(legacy, folder, quiet=True)["epochs_completed"] == 1


def test_a_run_another_process_is_training_is_refused_until_it_ends(tmp_path: Path):
    """Two processes training one folder would interleave checkpoints: the second is refused, and a
    killed holder (here: a child process killed with SIGKILL) leaves no lock behind."""
    import signal
    import sys

    from tensorrnn.runfolder import RunFolder

    config = RunConfig.from_mapping({
        "dataset": "synthetic-tt", "patch": 1, "feature_dim": 4, "rank": 2, "epochs": 1,
        "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 300},
    })  # fmt: skip
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tensorrnn.runfolder import RunFolder\n"
         f"with RunFolder({str(folder)!r}).training():\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match="another process is training this run"):
            train_run(config, folder, quiet=True)
        assert not (folder / RunFolder.CONFIG).exists()  # refused before writing anything of the run
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert train_run(config, folder, quiet=True)["epochs_completed"] == 1


def test_feature_dropout_never_zeroes_a_whole_feature_vector():
    """One-hot-like features (cos-sin of binary pixels): a vector the mask would zero keeps its values;
    vectors with a constant feature come out exactly as under the plain mask (so old runs re-run)."""
    from tensorrnn.train import FeatureDropout

    gen = torch.Generator().manual_seed(1)
    one_hot = torch.nn.functional.one_hot(torch.randint(1, 16, (64, 196), generator=gen), 16).float()
    out = FeatureDropout(0.5, torch.Generator().manual_seed(0), keep_nonzero=True).train()(one_hot)
    assert (out != 0).any(dim=-1).all()  # no position lost its only entry
    keep = torch.rand(one_hot.shape, generator=torch.Generator().manual_seed(0)) >= 0.5
    kept = (one_hot * keep).any(dim=-1, keepdim=True)  # the mask's own survivors, independently
    assert torch.equal(torch.where(kept, 2 * one_hot * keep, one_hot), out)
    assert 0.4 < (~kept).float().mean() < 0.6  # about half the vectors were saved, at p = 0.5
    with_constant = torch.cat([torch.ones(64, 49, 1), torch.rand(64, 49, 7, generator=gen)], dim=2)
    mask = torch.rand(with_constant.shape, generator=torch.Generator().manual_seed(3)) >= 0.5
    plain = with_constant * mask * 2
    plain[..., 0] = 1
    new = FeatureDropout(0.5, torch.Generator().manual_seed(3), keep_first=True, keep_nonzero=True).train()(
        with_constant)
    assert torch.equal(new, plain)
