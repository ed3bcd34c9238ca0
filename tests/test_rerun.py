"""`tensorrnn rerun`: committed numbers re-run from their recorded settings, differences reported."""

import csv
import shutil
from pathlib import Path

import pytest

from tensorrnn.data import dataset_status

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "docs" / "results" / "quick"
TINY_SWEEP = """
name: tiny
dataset: digits
model: [cp, tt-shared]
rank: 3
patch: 4
feature_dim: 4
epochs: 1
seed: 0
compile: false
"""


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, run_cli):
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "tiny.yaml").write_text(TINY_SWEEP)
    done = run_cli("compare", "--config", "tiny.yaml", "--out", "tiny", "--threads", "1", "-q", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder / "tiny"


def test_a_fresh_sweep_re_runs_exactly_from_its_plan(tiny_sweep, run_cli):
    done = run_cli("rerun", tiny_sweep, "--threads", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 of 2 run(s) re-ran exactly" in done.stdout


def test_a_changed_number_is_reported_and_exits_1(tiny_sweep, tmp_path, run_cli):
    copy = tmp_path / "tampered"
    shutil.copytree(tiny_sweep, copy, ignore=shutil.ignore_patterns("runs"))
    with (copy / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["test_accuracy"] = "0.123"  # what an earlier code state might have written
    with (copy / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    done = run_cli("rerun", copy, "--runs", rows[0]["run"], "--threads", "1", "--record")
    assert done.returncode == 1
    assert f"{rows[0]['run']}: DIFFERS: committed test_accuracy 0.123" in done.stdout
    assert '"verdict": "made by an earlier code state"' in (copy / "rerun.json").read_text()


@pytest.mark.parametrize(("args", "needle"), [
    (["nowhere"], "has no results.csv"),
    ([str(QUICK), "--runs", "no-such-run"], "no finished run named no-such-run"),
])  # fmt: skip
def test_bad_input_is_one_line_exit_2(args, needle, run_cli, tmp_path):
    done = run_cli("rerun", *args, cwd=tmp_path)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not dataset_status("fashion-mnist").available, reason="Fashion-MNIST not installed")
def test_the_committed_quick_sweep_re_runs_exactly(run_cli):
    # CI's cheap re-run check: one committed run of the demo's comparison, drawn by seed.
    done = run_cli("rerun", QUICK, "--sample", "1", "--seed", "3", "--threads", "1", cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
