"""`pip install .` (not editable) into a fresh virtual environment outside the checkout: the
commands a new user runs first work from the installed package alone (no configs/, docs/ or
src/ beside it), and the fused chain builds from the C++ source shipped as package data."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[1]
# What a build needs: the package and the files pyproject.toml names. Copied, so that the
# build writes nothing into the checkout (setuptools builds in the source tree).
SOURCE_FILES = ("pyproject.toml", "README.md", "constraints.txt")


def _run(command: list, *, cwd: Path, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    source.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so"))  # fmt: skip
    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    _run([sys.executable, "-m", "venv", venv], cwd=root, env=env)
    python = venv / "bin" / "python"
    # As the Makefile does: the pinned CPU torch first, then the package under the constraints.
    _run([python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", "torch"], cwd=root,
         env=env)  # fmt: skip
    _run([python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", source], cwd=root,
         env=env)  # fmt: skip
    work = root / "work"
    work.mkdir()
    env.update(TENSORRNN_DATA=str(root / "no-data"), TORCH_EXTENSIONS_DIR=str(root / "extensions"),
               OMP_NUM_THREADS="1", XDG_CACHE_HOME=str(root / "cache"))  # fmt: skip
    return {"python": python, "tensorrnn": venv / "bin" / "tensorrnn", "work": work, "env": env,
            "source": source}  # fmt: skip


def test_the_package_is_installed_not_linked_to_the_checkout(installed):
    code = ("import importlib.metadata as m, tensorrnn; "
            "from tensorrnn.demo import QUICK_CONFIG; print(tensorrnn.__file__); "
            "print(m.metadata('tensorrnn')['License-Expression']); print(QUICK_CONFIG.is_file())")
    where, license_, quick = _run([installed["python"], "-c", code], cwd=installed["work"],
                           env=installed["env"]).stdout.split()  # fmt: skip
    assert "site-packages" in where and str(ROOT) not in where and str(installed["source"]) not in where
    assert license_ == "MIT"  # an SPDX expression, not the deprecated table
    assert quick == "True"  # the demo's default comparison ships with the package
    package = Path(where).parent
    for data in ("chain_kernel.cpp", "configs/quick.yaml", "evidence/targets_augmented/results.csv"):
        assert (package / data).is_file(), data


def test_ranks_certifies_the_min_cut(installed):
    _run([installed["tensorrnn"], "ranks", "--family", "tt-shared", "--n", "2", "--r", "3", "--d", "4",
          "--trials", "1", "--no-cp-fit", "--out", "ranks", "-q"], cwd=installed["work"],
         env=installed["env"])  # fmt: skip
    rows = list(csv.DictReader((installed["work"] / "ranks" / "ranks.csv").open()))
    exact = [int(r["rank"]) for r in rows if r["method"] == "exact"]
    # Odd/even matricization of a 2x2x2x2 tensor: 4 x 4; the min-cut min(n, r) * min(n, r^2) = 4.
    assert exact == [4]


def test_train_on_digits_with_the_fused_chain_built_from_the_installed_source(installed):
    done = _run([installed["tensorrnn"], "train", "--dataset", "digits", "--model", "tt", "--rank", "8",
                 "--patch", "2", "--feature-dim", "6", "--epochs", "4", "--lr", "0.02", "--batch-size", "32",
                 "--compile", "--seed", "0", "--out", "run", "-q"], cwd=installed["work"],
                env=installed["env"])  # fmt: skip
    assert "failed" not in done.stderr, done.stderr  # the kernel's build warning would say so
    built = list((installed["work"].parent / "extensions").rglob("tensorrnn_chain_kernel_*.so"))
    assert len(built) == 1, "the fused chain was not built from the installed package"
    result = json.loads((installed["work"] / "run" / "result.json").read_text())
    assert result["chain"] == "fused" and result["epochs_completed"] == 4
    # Ten balanced classes: chance is 0.1; the plain loops reach 0.89 with these settings (seed 0).
    assert result["test_accuracy"] > 0.6


def test_witness_meets_its_closed_form(installed):
    _run([installed["tensorrnn"], "witness", "--kind", "delta", "--n", "3", "--r", "3", "--d", "4",
          "--out", "witness", "-q"], cwd=installed["work"], env=installed["env"])  # fmt: skip
    (row,) = list(csv.DictReader((installed["work"] / "witness" / "witness.csv").open()))
    # The delta witness: q = min(n, r - 1) = 2 open pairs, an identity of size q^(d/2) = 4.
    assert (int(row["exact"]), int(row["rows"]), int(row["cols"])) == (4, 9, 9)


def test_demo_writes_its_page_from_the_installed_package(installed):
    tiny = {"name": "tiny", "dataset": "digits", "model": ["cp", "tt-shared"], "rank": 2, "patch": 2,
            "feature_dim": 4, "epochs": 1, "seed": 0}  # fmt: skip
    config = installed["work"] / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny))
    done = _run([installed["tensorrnn"], "demo", "--out", "demo", "--config", config, "--max-side", "4",
                 "--jobs", "1", "-q"], cwd=installed["work"], env=installed["env"])  # fmt: skip
    page = installed["work"] / "demo" / "index.html"
    assert done.stdout.startswith(f"open {page}")
    markdown = (installed["work"] / "demo" / "report.md").read_text()
    # The committed evidence ships with the package: its sections are on the page.
    for title in ("Rank laboratory", "Network laboratory", "Matched parameter budgets: fashion-mnist",
                  "Shifted images: TT-shared against CP at ~100k parameters"):  # fmt: skip
        assert f"## {title}" in markdown, title
    rows = list(csv.DictReader((installed["work"] / "demo" / "ranks" / "ranks.csv").open()))
    assert {(r["n"], r["d"]) for r in rows} == {("2", "4")}
    assert {int(r["rank"]) for r in rows if r["method"] == "exact"} == {4}
