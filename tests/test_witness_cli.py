"""`tensorrnn witness`: the table, the recorded files, and one-line refusals with exit code 2."""

import csv
import sys
from pathlib import Path

import pytest

from tensorrnn.cli import main
from tensorrnn.witness_lab import CSV_COLUMNS, CSV_FILE, TABLE_FILE


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["tensorrnn", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def test_best_witnesses_meet_the_min_cut_and_are_recorded(monkeypatch, capsys, tmp_path: Path):
    out = tmp_path / "w"
    code, stdout, _ = run_main(monkeypatch, capsys, "witness", "--n", "2..9", "--r", "3", "--d", "4,6",
                               "--out", str(out), "-q")  # fmt: skip
    assert code == 0
    assert "| hub | tt-uniform | 3 | 3 | 6 | 27 | 27 | 27 |" in stdout
    with open(out / CSV_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == 16  # n = 2..9, d = 4, 6
    assert {row["kind"] for row in rows} == {"delta", "hub", "transfer", "matrix-unit"}
    assert all(row["exact"] == row["closed_form"] == row["mincut"] for row in rows)
    assert all(row["meets_mincut"] == "yes" and row["agrees"] == "yes" for row in rows)
    assert "closed form" in (out / TABLE_FILE).read_text()


def test_all_kinds_in_another_family(monkeypatch, capsys):
    code, stdout, _ = run_main(monkeypatch, capsys, "witness", "--kind", "all", "--n", "4", "--r", "2",
                               "--d", "4", "--family", "tt", "-q")  # fmt: skip
    assert code == 0
    lines = [line for line in stdout.splitlines() if line.startswith("| ") and "| tt |" in line]
    kinds = [line.split("|")[1].strip() for line in lines]
    assert kinds == ["delta", "alternating", "hub", "matrix-unit", "transfer"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--kind", "hub", "--d", "5"], "even orders"),
        (["--kind", "diagonal"], "unknown kind"),
        (["--kind", "matrix-unit", "--n", "3", "--r", "3"], "n >= r^2"),
        (["--kind", "transfer", "--n", "2", "--r", "3"], "r <= n <= r^2"),
        (["--kind", "alternating", "--family", "tt-shared"], "exists as tt"),
        (["--family", "cp"], "unknown family"),
        (["--prime", "12"], "not a prime"),
        (["--engine", "gpu"], "engine 'gpu'"),
        (["--n", "0"], "n = 0"),
        (["--n", "9", "--r", "3", "--d", "12"], "above max_side"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(monkeypatch, capsys, tmp_path, args, fragment):
    out = tmp_path / "never"
    code, _, stderr = run_main(monkeypatch, capsys, "witness", *args, "--out", str(out), "-q")
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr and fragment in lines[0]
    assert not out.exists()
