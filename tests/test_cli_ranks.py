"""`tensorrnn ranks` end to end: files, resumption, and one-line errors with exit code 2."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tensorrnn.ranks.lab import COLUMNS

CLI = [sys.executable, "-c", "from tensorrnn.cli import main; main()"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def test_small_sweep_writes_three_files_and_resumes(tmp_path: Path):
    args = ["ranks", "--family", "tt,tt-shared,tt-uniform", "--n", "2,3", "--r", "3",
            "--d", "4..6", "--trials", "2", "--out", str(tmp_path), "-q"]  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    for name in ("ranks.csv", "ranks.md", "ranks.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = list(csv.DictReader((tmp_path / "ranks.csv").open()))
    assert list(rows[0]) == COLUMNS
    # 3 families x 2 n x 1 r x 2 d x 2 trials x 2 methods
    assert len(rows) == 48
    for row in rows:
        assert int(row["rank"]) <= int(row["mincut"])
    certified = {(r["family"], r["n"], r["d"]): int(r["rank"]) for r in rows if r["method"] == "exact"}
    # n = 3, r = 3, d = 6, shared core: q = min(3, 2) = 2, bound 8, reached.
    assert certified[("tt-shared", "3", "6")] >= 8
    table = (tmp_path / "ranks.md").read_text()
    assert "holds (certified)" in table and "VIOLATED" not in table

    again = run_cli(*args)
    assert again.returncode == 0
    assert "already in" in again.stdout or "skipping" in again.stdout
    assert len(list(csv.DictReader((tmp_path / "ranks.csv").open()))) == 48


def test_torn_csv_line_is_dropped_and_recomputed(tmp_path: Path):
    args = ["ranks", "--family", "tt-shared", "--n", "2", "--r", "3", "--d", "4",
            "--trials", "2", "--out", str(tmp_path), "-q", "--no-cp-fit"]  # fmt: skip
    assert run_cli(*args).returncode == 0
    path = tmp_path / "ranks.csv"
    text = path.read_text()
    path.write_text(text[: len(text) - 25])  # a crash in the middle of the last row
    assert run_cli(*args).returncode == 0
    assert len(list(csv.DictReader(path.open()))) == 4


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--d", "5", "--n", "2", "--r", "2"], "even"),
        (["--r", "0", "--n", "2", "--d", "4"], "r=0"),
        (["--n", "0", "--r", "2", "--d", "4"], "n=0"),
        (["--family", "mps", "--n", "2", "--r", "2", "--d", "4"], "unknown family"),
        (["--split", "1,1", "--n", "2", "--r", "2", "--d", "4"], "twice"),
        (["--split", "1,9", "--n", "2", "--r", "2", "--d", "4"], "outside"),
        (["--n", "2", "--r", "3", "--d", "60", "--split", "half"], "GiB"),
        (["--engine", "gpu", "--n", "2", "--r", "2", "--d", "4"], "unknown engine"),
        (["--n", "two", "--r", "2", "--d", "4"], "not a list of integers"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args, needle):
    result = run_cli("ranks", *args, "--out", str(tmp_path), "-q")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "ranks.csv").exists()


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("tensorrnn ")
    help_text = run_cli("ranks", "--help").stdout
    assert "Example" in help_text


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path):
    result = run_cli("ranks", "--device", "cuda", "--n", "2", "--r", "2", "--d", "4",
                     "--out", str(tmp_path), "-q")  # fmt: skip
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr
