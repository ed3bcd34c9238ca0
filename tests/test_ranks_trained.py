"""Rank of a trained network: known-rank cores planted in run folders, refusals, the CLI."""

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tensorrnn.atomic import atomic_torch_save, atomic_write_json
from tensorrnn.cli import main
from tensorrnn.errors import ConfigError, DataError, SizeError
from tensorrnn.formats import delta_witness
from tensorrnn.models import make_network
from tensorrnn.ranks import trained
from tensorrnn.train import RunConfig, train_run

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = {
    "dataset": "synthetic-tt",
    "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 300},
    "patch": 1, "feature_dim": 4, "rank": 2, "epochs": 1, "device": "cpu",
}  # fmt: skip
# Float ranks are decided with numpy's tolerance; the planted tensors have exact
# zeros or O(1) singular values, so every decision below has a gap above 1e6.
CLEAR_GAP = 1e6


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real (tiny) finished tt run on synthetic-tt: n = 4, r = 2, d = 4, 3 classes."""
    folder = tmp_path_factory.mktemp("runs") / "tt"
    torch.set_num_threads(1)
    train_run(RunConfig.from_mapping({**TINY, "model": "tt"}), folder, quiet=True)
    return folder


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def plant(folder: Path, **parameters: torch.Tensor) -> None:
    """Overwrite score-network parameters in ``best_model`` of a run's checkpoint."""
    path = folder / "checkpoint.pt"
    saved = torch.load(path, weights_only=True)
    for name, value in parameters.items():
        key = f"network.{name}"
        assert saved["best_model"][key].shape == value.shape, name
        saved["best_model"][key] = value.to(saved["best_model"][key].dtype)
    atomic_torch_save(path, saved)


def hand_made_run(folder: Path, model: str, d: int, n: int, r: int, n_classes: int,
                  **parameters: torch.Tensor) -> Path:  # fmt: skip
    """A finished run folder written without training: config, result, checkpoint."""
    network = make_network(model, d, n, r, n_classes, generator=torch.Generator().manual_seed(1))
    state = {f"network.{k}": v for k, v in network.state_dict().items()}
    state |= {f"network.{k}": v.float() for k, v in parameters.items()}
    folder.mkdir(parents=True)
    atomic_write_json(folder / "config.json", {**TINY, "model": model, "rank": r, "feature_dim": n})
    atomic_write_json(folder / "result.json", {"test_accuracy": 0.5, "d": d, "n": n, "rank": r,
                                               "model": model})  # fmt: skip
    atomic_torch_save(folder / "checkpoint.pt", {"best_model": state})
    return folder


# --------------------------------------------------------------------------- #
# Generic ranks
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("family", ["tt", "tt-shared"])
def test_generic_upper_bound_is_the_distinct_core_formula(family):
    for n in (2, 3, 4, 9, 16, 64):
        for r in (1, 2, 3, 5, 8, 32):
            for d in (2, 4, 6):
                if n ** (d // 2) > 10**6:
                    continue
                expected = min(n, r) * min(n, r * r) ** (d // 2 - 1)
                assert trained.generic_upper_bound(family, n, r, d) == expected, (n, r, d)


def test_generic_upper_bound_of_cp_and_odd_d():
    assert trained.generic_upper_bound("cp", 4, 5, 4) == 5
    assert trained.generic_upper_bound("cp", 4, 50, 4) == 16
    with pytest.raises(ConfigError, match="odd"):
        trained.generic_upper_bound("tt", 3, 2, 5)
    with pytest.raises(ConfigError, match="unknown family"):
        trained.generic_upper_bound("tt-uniform", 3, 2, 4)


@pytest.mark.parametrize("family,n,r,d", [("tt", 3, 2, 4), ("tt-shared", 3, 3, 6), ("cp", 3, 4, 4),
                                          ("tt-shared", 4, 2, 4)])  # fmt: skip
def test_generic_rank_is_certified_over_gf_p(family, n, r, d):
    g = trained.generic_rank(family, n, r, d)
    assert g.certified == g.upper == g.value and g.determined
    assert g.evidence.startswith("certified")
    unchecked = trained.generic_rank(family, n, r, d, certify=False)
    assert unchecked.certified is None and unchecked.value == g.upper
    assert "not certified" in unchecked.evidence


# --------------------------------------------------------------------------- #
# Known ranks planted in a trained run
# --------------------------------------------------------------------------- #


def test_trained_run_loads_and_matches_the_network(trained_run: Path):
    run = trained.load_run(trained_run)
    assert (run.model, run.n, run.r, run.d, run.n_classes, run.side) == ("tt", 4, 2, 4, 3, 16)
    best = torch.load(trained_run / "checkpoint.pt", weights_only=True)["best_model"]
    tensor = run.coefficient_tensor(2)
    assert tensor.family == "tt" and tensor.tt_cores()[0].dtype == torch.float64
    expected_last = best["network.last"].double()[:, :, 2:3]
    assert torch.equal(tensor.tt_cores()[-1], expected_last)


def test_a_trained_tensor_has_the_generic_rank(trained_run: Path):
    """Trained parameters are generic: the float rank is the certified generic rank, 8."""
    analysis = trained.analyse_run(trained.load_run(trained_run))
    assert analysis.generic.value == 8 and analysis.generic.determined
    for s in analysis.spectra:
        assert s.rank == 8 and s.gap > CLEAR_GAP
        assert torch.all(s.sigma[:-1] >= s.sigma[1:])


def test_planted_rank_one_cores(trained_run: Path, tmp_path: Path):
    """Cores that use one bond state: every A^y is an outer product, odd/even rank 1."""
    folder = copy_run(trained_run, tmp_path / "rank1")
    gen = torch.Generator().manual_seed(3)
    n, r, d = 4, 2, 4
    first = torch.zeros(n, r)
    first[:, 0] = torch.rand(n, generator=gen) + 0.5
    middle = torch.zeros(d - 2, r, n, r)
    middle[:, 0, :, 0] = torch.rand(d - 2, n, generator=gen) + 0.5
    last = torch.zeros(r, n, 3)
    last[0] = torch.rand(n, 3, generator=gen) + 0.5
    plant(folder, first=first, middle=middle, last=last)
    analysis = trained.analyse_run(trained.load_run(folder))
    for s in analysis.spectra:
        assert s.rank == 1 and s.gap > CLEAR_GAP and s.energy_rank() == 1
        assert s.ratio_at(analysis.generic.value) < 1e-12
    rows = analysis.rows()
    assert all(row["flag"] == "float rank below the generic rank" for row in rows)


def test_planted_delta_witness_in_a_shared_run(tmp_path: Path):
    """The Kronecker-delta witness of DESIGN.md: odd/even rank q^(d/2), q = min(n, r - 1)."""
    n, r, d = 4, 3, 4
    witness = delta_witness("tt-shared", n, r, d)
    last = torch.zeros(r, n, 2)
    last[:, :, 0] = witness.last[:, :, 0]
    # Class 1 ends in any open state with any i4: A¹ = δ(i1, i2)·[i3 < q], odd/even rank q.
    last[1:, :, 1] = 1.0
    folder = hand_made_run(tmp_path / "shared", "tt-shared", d, n, r, 2,
                           first=witness.first[0], middle=witness.middle.unsqueeze(0), last=last)  # fmt: skip
    run = trained.load_run(folder)
    assert torch.equal(run.coefficient_tensor(0).full(), witness.full())
    analysis = trained.analyse_run(run)
    q = min(n, r - 1)
    witness_rank = analysis.spectra[0]
    assert witness_rank.rank == q ** (d // 2) == 4 and witness_rank.gap > CLEAR_GAP
    # The identity block: every nonzero singular value is 1.
    assert torch.allclose(witness_rank.sigma[:4], torch.ones(4, dtype=torch.float64))
    # Class 1, independently: contract the planted 0/1 cores in numpy and take the rank of the
    # odd/even matricization (rows i1 i3, columns i2 i4) of that integer matrix.
    cores = [c.double().numpy() for c in (witness.first[0], witness.middle, witness.middle, last[:, :, 1])]
    full = np.einsum("ia,ajb,bkc,cl->ijkl", *cores)
    expected_other = int(np.linalg.matrix_rank(full.transpose(0, 2, 1, 3).reshape(n * n, n * n)))
    assert expected_other == q == 2  # one distinct row per closed pair value i1 = i2 < q
    assert analysis.spectra[1].rank == expected_other
    assert analysis.generic.value == min(n, r) * min(n, r * r) == 12
    assert analysis.generic.theorem_bound == q ** (d // 2)


def test_planted_cp_weights_give_their_rank(tmp_path: Path):
    """CP with R = 5 generic factors and weights on 2 (class 0) or 5 (class 1) terms."""
    d, n, r = 4, 3, 5
    factors = torch.randn(d, n, r, generator=torch.Generator().manual_seed(4))
    weights = torch.zeros(r, 2)
    weights[:2, 0] = 1.0
    weights[:, 1] = torch.arange(1.0, 6.0)
    folder = hand_made_run(tmp_path / "cp", "cp", d, n, r, 2, factors=factors, weights=weights)
    analysis = trained.analyse_run(trained.load_run(folder))
    assert [s.rank for s in analysis.spectra] == [2, 5]
    assert all(s.gap > CLEAR_GAP for s in analysis.spectra)
    assert analysis.generic.value == 5 and analysis.generic.theorem_bound is None


# --------------------------------------------------------------------------- #
# Refusals
# --------------------------------------------------------------------------- #


def test_refusals(trained_run: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        trained.load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        trained.load_run(tmp_path / "empty")
    unfinished = copy_run(trained_run, tmp_path / "unfinished")
    (unfinished / "result.json").unlink()
    with pytest.raises(ConfigError, match="unfinished"):
        trained.load_run(unfinished)
    odd = hand_made_run(tmp_path / "odd", "tt", 5, 3, 2, 2)
    with pytest.raises(ConfigError, match="d = 5 is odd"):
        trained.load_run(odd)
    big = hand_made_run(tmp_path / "big", "cp", 4, 65, 1, 2)
    with pytest.raises(SizeError, match="4225 is above 4096"):
        trained.load_run(big)
    lost = copy_run(trained_run, tmp_path / "lost")
    (lost / "checkpoint.pt").unlink()
    with pytest.raises(DataError, match="missing"):
        trained.load_run(lost)
    mixed = copy_run(trained_run, tmp_path / "mixed")
    result = json.loads((mixed / "result.json").read_text())
    atomic_write_json(mixed / "result.json", {**result, "n": 5})
    with pytest.raises(DataError, match="n=5"):
        trained.load_run(mixed)


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["tensorrnn", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def test_cli_writes_csv_table_and_figure(trained_run: Path, tmp_path: Path, monkeypatch, capsys):
    cp = hand_made_run(tmp_path / "cp", "cp", 4, 3, 2, 2)
    out = tmp_path / "out"
    code, stdout, stderr = run_main(monkeypatch, capsys, "ranks", "--from-run", str(trained_run),
                                    "--from-run", str(cp), "--out", str(out), "-q")  # fmt: skip
    assert code == 0, stderr
    assert "trained_rank.csv" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["trained_rank.csv", "trained_rank.md",
                                                     "trained_rank.png"]  # fmt: skip
    rows = list(csv.DictReader((out / "trained_rank.csv").open()))
    assert list(rows[0]) == trained.COLUMNS
    assert [(r["model"], r["class"]) for r in rows] == [("tt", "0"), ("tt", "1"), ("tt", "2"),
                                                        ("cp", "0"), ("cp", "1")]  # fmt: skip
    tt_row = rows[0]
    assert (tt_row["n"], tt_row["r"], tt_row["d"], tt_row["N"]) == ("4", "2", "4", "16")
    assert tt_row["certified_generic_rank"] == tt_row["mincut"] == tt_row["numerical_rank"] == "8"
    assert tt_row["theorem_bound"] == "4" and tt_row["certificate"].startswith("certified")
    assert rows[3]["certified_generic_rank"] == "2" and rows[3]["theorem_bound"] == ""
    table = (out / "trained_rank.md").read_text()
    assert "| 3 of 3 classes |" in table and "σ_g/σ_1" in table
    assert (out / "trained_rank.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --method float: no certificate, the upper bound is reported as such.
    code, _, stderr = run_main(monkeypatch, capsys, "ranks", "--from-run", str(cp), "--method",
                               "float", "--out", str(tmp_path / "float"), "-q")  # fmt: skip
    assert code == 0, stderr
    rows = list(csv.DictReader((tmp_path / "float" / "trained_rank.csv").open()))
    assert rows[0]["certificate"] == "upper bound (not certified)"


@pytest.mark.parametrize("case", ["missing", "unfinished", "odd", "big", "grid", "exact-only",
                                  "twice", "out-is-file"])  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2_nothing_written(case, trained_run: Path, tmp_path: Path,
                                                          monkeypatch, capsys):  # fmt: skip
    runs = tmp_path / "runs"
    runs.mkdir()
    out = tmp_path / "out"
    args = ["ranks", "--from-run", str(trained_run)]
    needle = {"missing": "does not exist", "unfinished": "unfinished", "odd": "is odd",
              "big": "above 4096", "grid": "--n", "exact-only": "--method needs float",
              "twice": "given twice", "out-is-file": "existing file"}[case]  # fmt: skip
    if case == "missing":
        args = ["ranks", "--from-run", str(runs / "nope")]
    elif case == "unfinished":
        (copy_run(trained_run, runs / "u") / "result.json").unlink()
        args += ["--from-run", str(runs / "u")]
    elif case == "odd":
        args += ["--from-run", str(hand_made_run(runs / "odd", "tt-shared", 3, 3, 2, 2))]
    elif case == "big":
        args += ["--from-run", str(hand_made_run(runs / "big", "tt", 4, 65, 1, 2))]
    elif case == "grid":
        args += ["--n", "3"]
    elif case == "exact-only":
        args += ["--method", "exact"]
    elif case == "twice":
        args += ["--from-run", str(trained_run / ".")]
    elif case == "out-is-file":
        out.write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, stderr = run_main(monkeypatch, capsys, *args, "--out", str(out), "-q")
    assert code == 2
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case != "out-is-file":
        assert not out.exists()


def test_the_sweep_default_folder_is_unchanged(monkeypatch, tmp_path: Path, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["ranks", "--family", "tt", "--n", "2", "--r", "2", "--d", "4", "--trials", "1",
            "--method", "float", "--no-cp-fit", "-q"]  # fmt: skip
    code, _, stderr = run_main(monkeypatch, capsys, *args)
    assert code == 0, stderr
    assert (tmp_path / "results" / "ranks" / "ranks.csv").exists()
    assert not (tmp_path / "results" / "trained_rank").exists()
