"""`tensorrnn ranks` end to end: files, resumption, and one-line errors with exit code 2."""

import csv
import inspect
import json
import sys
from pathlib import Path

import pytest

from tensorrnn.cli import main
from tensorrnn.cli.parsing import even_orders, parse_int_list, parse_name_list
from tensorrnn.errors import ConfigError
from tensorrnn.ranks.lab import COLUMNS

TINY = ["ranks", "--family", "tt-shared", "--n", "2", "--r", "3", "--d", "4", "--trials", "1",
        "--no-cp-fit", "-q"]  # fmt: skip


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``tensorrnn ARGS`` in this process, through the console script's entry point."""
    monkeypatch.setattr(sys, "argv", ["tensorrnn", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (temporary files included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_small_sweep_writes_its_files_and_resumes(tmp_path: Path, run_cli):
    args = ["ranks", "--family", "tt,tt-shared,tt-uniform", "--n", "2,3", "--r", "3",
            "--d", "4..6", "--trials", "2", "--out", str(tmp_path), "-q"]  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ranks.csv", "ranks.md", "ranks.png", "ranks_status.png", "settings.json",
    ]  # fmt: skip  (no temporary file left behind)
    for name in ("ranks.csv", "ranks.md", "ranks.png"):
        assert (tmp_path / name).stat().st_size > 0
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings == {"seed": 0, "methods": ["float", "exact"], "cp_fit": True,
                        "engine": "blas", "prime": 2097143, "max_draws": 3}  # fmt: skip
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


def test_torn_csv_line_is_dropped_and_recomputed(tmp_path: Path, run_cli):
    args = ["ranks", "--family", "tt-shared", "--n", "2", "--r", "3", "--d", "4",
            "--trials", "2", "--out", str(tmp_path), "-q", "--no-cp-fit"]  # fmt: skip
    assert run_cli(*args).returncode == 0
    path = tmp_path / "ranks.csv"
    text = path.read_text()

    def numbers() -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(path.open())]

    whole = numbers()
    path.write_text(text[: len(text) - 25])  # a crash in the middle of the last row
    assert run_cli(*args).returncode == 0
    # The torn row is measured again, to the same numbers (same seed), and nothing else changed.
    assert len(whole) == 4 and numbers() == whole


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--d", "5", "--n", "2", "--r", "2"], "even"),
        (["--d", "5..5", "--n", "2", "--r", "2"], "no even order"),
        (["--r", "0", "--n", "2", "--d", "4"], "r=0"),
        (["--n", "0", "--r", "2", "--d", "4"], "n=0"),
        (["--n", "two", "--r", "2", "--d", "4"], "not a list of integers"),
        (["--n", "3..2", "--r", "2", "--d", "4"], "range 3..2 is empty"),
        (["--n", ",", "--r", "2", "--d", "4"], "--n is empty"),
        (["--family", "mps", "--n", "2", "--r", "2", "--d", "4"], "unknown family"),
        (["--family", ",", "--n", "2", "--r", "2", "--d", "4"], "--family is empty"),
        (["--split", "1,1", "--n", "2", "--r", "2", "--d", "4"], "twice"),
        (["--split", "1,9", "--n", "2", "--r", "2", "--d", "4"], "outside"),
        (["--split", "banana", "--n", "2", "--r", "2", "--d", "4"], "unknown split"),
        (["--n", "2", "--r", "3", "--d", "60", "--split", "half"], "GiB"),
        (["--engine", "gpu", "--n", "2", "--r", "2", "--d", "4"], "unknown engine"),
        (["--method", "svd", "--n", "2", "--r", "2", "--d", "4"], "unknown method"),
        (["--method", ",", "--n", "2", "--r", "2", "--d", "4"], "--method is empty"),
        (["--prime", "4", "--n", "2", "--r", "2", "--d", "4"], "not a prime"),
        (["--prime", "16777259", "--n", "2", "--r", "2", "--d", "4"], "too large"),
        (["--trials", "0", "--n", "2", "--r", "2", "--d", "4"], "--trials 0"),
        (["--max-side", "0"], "--max-side 0"),
        (["--max-side", "1", "--n", "2", "--r", "2", "--d", "4"], "no grid point"),
        (["--max-memory", "-1", "--n", "2", "--r", "2", "--d", "4"], "--max-memory"),
        (["--device", "tpu", "--n", "2", "--r", "2", "--d", "4"], "device"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(monkeypatch, capsys, tmp_path, args, needle):
    out = tmp_path / "deep" / "out"
    code, _, err = run_main(monkeypatch, capsys, "ranks", *args, "--out", str(out), "-q")
    assert code == 2
    assert needle in one_line(err)
    assert list(tmp_path.iterdir()) == []  # not even the parent folder


def test_bad_input_through_the_console_script(tmp_path: Path, run_cli):
    result = run_cli("ranks", "--n", "0", "--r", "2", "--d", "4", "--out", str(tmp_path / "o"), "-q")
    assert result.returncode == 2
    assert "n=0" in one_line(result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_out_naming_an_existing_file_is_refused(tmp_path: Path, run_cli):
    taken = tmp_path / "taken.csv"
    taken.write_text("precious\n")
    result = run_cli(*TINY, "--out", str(taken))
    assert result.returncode == 2
    assert "existing file" in one_line(result.stderr) and str(taken) in result.stderr
    assert taken.read_text() == "precious\n"
    assert snapshot(tmp_path) == {"taken.csv": b"precious\n"}


def test_out_below_an_existing_file_is_refused(monkeypatch, capsys, tmp_path: Path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    code, _, err = run_main(monkeypatch, capsys, *TINY, "--out", str(taken / "sub" / "dir"))
    assert code == 2 and "under the file" in one_line(err)
    assert snapshot(tmp_path) == {"taken": b"x"}


def test_out_folder_holding_a_folder_named_like_a_result(monkeypatch, capsys, tmp_path: Path):
    (tmp_path / "ranks.csv").mkdir()
    code, _, err = run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path))
    assert code == 2 and "is a folder" in one_line(err)
    assert [p.name for p in tmp_path.iterdir()] == ["ranks.csv"]


# --------------------------------------------------------------------------- resume checks


def test_resume_with_another_seed_is_refused_and_writes_nothing(tmp_path: Path, run_cli):
    assert run_cli(*TINY, "--out", str(tmp_path)).returncode == 0
    before = snapshot(tmp_path)
    result = run_cli(*TINY, "--out", str(tmp_path), "--seed", "1")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "--seed 1 now, --seed 0 stored" in line
    assert "another --out" in line and f"delete {tmp_path}" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "change,needle",
    [
        (["--prime", "101"], "--prime 101 now, --prime 2097143 stored"),
        (["--engine", "flint"], "--engine flint now, --engine blas stored"),
        (["--method", "exact"], "--method exact now, --method float,exact stored"),
        (["--cp-fit"], "--cp-fit now, --no-cp-fit stored"),
    ],
)
def test_resume_with_other_settings_names_each_of_them(monkeypatch, capsys, tmp_path, change, needle):
    assert run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path))[0] == 0
    before = snapshot(tmp_path)
    code, _, err = run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path), *change)
    assert code == 2
    assert needle in one_line(err)
    assert snapshot(tmp_path) == before


def test_resume_may_grow_the_grid(monkeypatch, capsys, tmp_path: Path):
    assert run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path))[0] == 0
    first = list(csv.DictReader((tmp_path / "ranks.csv").open()))
    grown = ["ranks", "--family", "tt-shared,tt", "--n", "2", "--r", "3", "--d", "4,6",
             "--trials", "2", "--no-cp-fit", "-q", "--out", str(tmp_path)]  # fmt: skip
    code, out, _ = run_main(monkeypatch, capsys, *grown)
    assert code == 0 and "1 of 8 instances already in" in out
    rows = list(csv.DictReader((tmp_path / "ranks.csv").open()))
    assert len(rows) == 16 and rows[:2] == first


def test_folder_without_settings_json_is_checked_against_its_rows(monkeypatch, capsys, tmp_path: Path):
    """A folder written before settings.json: accepted when its rows agree, then upgraded."""
    assert run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path))[0] == 0
    (tmp_path / "settings.json").unlink()
    before = snapshot(tmp_path)

    for change, needle in (
        (["--seed", "7"], "--seed 7 now, another value stored"),
        (["--cp-fit"], "--cp-fit now, --no-cp-fit stored"),
        (["--prime", "101"], "--prime 101 now, --prime 2097143 stored"),
        (["--method", "exact"], "--method exact now, --method float,exact stored"),
    ):
        code, _, err = run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path), *change)
        assert code == 2
        line = one_line(err)
        assert needle in line and "written before settings.json existed" in line
        assert snapshot(tmp_path) == before

    code, out, _ = run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path))
    assert code == 0 and "already in" in out
    assert json.loads((tmp_path / "settings.json").read_text())["seed"] == 0


def test_folder_without_rows_takes_any_settings(monkeypatch, capsys, tmp_path: Path):
    assert run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path))[0] == 0
    (tmp_path / "ranks.csv").write_text(",".join(COLUMNS) + "\n")
    assert run_main(monkeypatch, capsys, *TINY, "--out", str(tmp_path), "--seed", "4")[0] == 0
    assert json.loads((tmp_path / "settings.json").read_text())["seed"] == 4


# --------------------------------------------------------------------------- parsing


def test_parse_int_list():
    assert parse_int_list("2,3", "n") == [2, 3]
    assert parse_int_list("4..6", "d") == [4, 5, 6]
    assert parse_int_list(" 6, 2,4..5,2 ", "n") == [2, 4, 5, 6]
    for bad, needle in (("x", "--r 'x' is not a list"), ("5..2", "--r range 5..2"), ("", "--r is empty")):
        with pytest.raises(ConfigError, match=needle):
            parse_int_list(bad, "r")


def test_even_orders():
    assert even_orders("4..9") == [4, 6, 8]
    assert even_orders("4,8") == [4, 8]
    with pytest.raises(ConfigError, match="needs even d"):
        even_orders("4,5")
    with pytest.raises(ConfigError, match="no even order"):
        even_orders("3..3")


def test_parse_name_list():
    assert parse_name_list("exact, float,exact", "method", ("float", "exact")) == ["exact", "float"]
    with pytest.raises(ConfigError, match="unknown method 'svd' in --method"):
        parse_name_list("float,svd", "method", ("float", "exact"))
    with pytest.raises(ConfigError, match="--method is empty"):
        parse_name_list(" , ", "method", ("float", "exact"))


def test_version_and_help(run_cli):
    assert run_cli("--version").stdout.startswith("tensorrnn ")
    help_text = run_cli("ranks", "--help").stdout
    assert "Example" in help_text


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path, run_cli):
    result = run_cli("ranks", "--device", "cuda", "--n", "2", "--r", "2", "--d", "4",
                     "--out", str(tmp_path / "o"), "-q")  # fmt: skip
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_family_help_names_every_family():
    # The CLI does not import formats (torch) to build its help; this keeps the literal true.
    from tensorrnn.cli.ranks import ranks_command
    from tensorrnn.formats import FAMILIES

    help_text = next(p.default.help for p in inspect.signature(ranks_command).parameters.values()
                     if p.name == "family")  # fmt: skip
    assert help_text == "Comma list of " + ", ".join(FAMILIES) + "."
