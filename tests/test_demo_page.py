"""`tensorrnn demo` on a small grid: its rank sweep, comparison and page; the page rendered in
headless Chromium, with every figure decoded; a bad config refused before any work."""

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tensorrnn.demo import run_demo
from tensorrnn.errors import ConfigError

GRID = {
    "name": "page",
    "dataset": "synthetic-tt",
    "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 400},
    "model": ["cp", "tt", "tt-shared"], "rank": [2, 3], "patch": 1, "feature_dim": 4,
    "epochs": 1, "batch_size": 32, "lr": 0.02,
}  # fmt: skip


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    config = root / "grid.yaml"
    config.write_text(yaml.safe_dump(GRID))
    return run_demo(root / "out", config=config, jobs=1, quiet=True, max_side=4)


def test_the_demo_measures_its_rank_sweep_and_trains_its_grid(page: Path):
    rows = list(csv.DictReader((page.parent / "ranks" / "ranks.csv").open()))
    # max_side 4 keeps n = 2, d = 4 of the default sweep: 3 families x r 2..5 x 3 trials x 2 methods.
    assert {(r["n"], r["d"]) for r in rows} == {("2", "4")} and len(rows) == 72
    # A 4 x 4 odd/even matricization; the min-cut min(n, r) * min(n, r^2) = 4 for every r >= 2.
    assert {int(r["rank"]) for r in rows if r["method"] == "exact"} == {4}
    runs = list(csv.DictReader((page.parent / "compare" / "results.csv").open()))
    assert len(runs) == 6 and {r["status"] for r in runs} == {"finished"}


def test_a_bad_config_is_refused_before_any_work(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        run_demo(tmp_path / "out", config=tmp_path / "missing.yaml", quiet=True, max_side=4)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**GRID, "rank": [0]}))
    with pytest.raises(ConfigError, match="rank"):
        run_demo(tmp_path / "out", config=tmp_path / "bad.yaml", quiet=True, max_side=4)
    with pytest.raises(ConfigError, match="max_side=3"):
        run_demo(tmp_path / "out", config=tmp_path / "bad.yaml", quiet=True, max_side=3)
    assert not (tmp_path / "out").exists()


def test_page_and_markdown_carry_the_same_sections(page: Path):
    html = page.read_text()
    markdown = (page.parent / "report.md").read_text()
    titles = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert titles == re.findall(r"<h2>(.+?)</h2>", html)
    assert "Rank laboratory" in titles and "Network laboratory" in titles
    # Conclusions, ranks, three network figures, and one per committed matched-budget sweep.
    assert html.count("data:image/png;base64,") == html.count("<img") >= 5
    assert "ranks.md beside the rank sweep" in html and "min(n, r − 1)" in html


def test_page_renders_in_headless_chromium_with_every_figure(page: Path, tmp_path: Path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it as root: scripts/get-chromium.sh)")
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = re.search(r'data-figures-loaded="(\d+)"', result.stdout)
    assert loaded is not None, "the page's load script did not run"
    assert int(loaded.group(1)) == page.read_text().count("<img") >= 5


def test_the_conclusions_of_both_laboratories_come_first_and_fit_the_first_screen(page: Path, tmp_path: Path):
    titles = re.findall(r"<h2>(.+?)</h2>", page.read_text())
    assert titles[0] == "Conclusions" and "Rank table" not in titles
    conclusions = page.read_text().split("<h2>Conclusions</h2>", 1)[1].split("</section>", 1)[0]
    assert "<b>Rank laboratory.</b>" in conclusions and "<b>Network laboratory.</b>" in conclusions
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it as root: scripts/get-chromium.sh)")
    shot = tmp_path / "first-screen.png"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
              "--window-size=1280,1000"]  # fmt: skip
    shown = subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert shown.returncode == 0 and shot.stat().st_size > 10_000
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    bottom = int(re.search(r'data-conclusions-bottom="(\d+)"', dom.stdout).group(1))
    screen = int(re.search(r'data-screen-height="(\d+)"', dom.stdout).group(1))
    assert bottom <= screen, f"the conclusions end at {bottom} px, below the first screen ({screen} px)"
