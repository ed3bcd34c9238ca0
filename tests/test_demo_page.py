"""The demo page: built from a small rank sweep and a small comparison, rendered in
headless Chromium, with every figure decoded."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tensorrnn.ranks import lab
from tensorrnn.report import write_comparison_report, write_demo_page
from tensorrnn.sweep import plan_sweep, run_sweep

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
    jobs = lab.make_grid(["tt", "tt-shared"], [2, 3], [3], [4, 6], "odd-even", trials=1)
    ranks = lab.run_rank_sweep(jobs, root / "ranks", lab.SweepSettings(cp_fit=False), quiet=True)
    plan = plan_sweep(GRID, "page", root / "compare")
    compare = run_sweep(plan, quiet=True)
    write_comparison_report(plan)
    return write_demo_page(ranks, compare, root)


def test_page_and_markdown_carry_the_same_sections(page: Path):
    html = page.read_text()
    markdown = (page.parent / "report.md").read_text()
    titles = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert titles == re.findall(r"<h2>(.+?)</h2>", html)
    assert "Rank laboratory" in titles and "Network laboratory" in titles
    # Conclusions, ranks, three network figures, and one per committed matched-budget sweep.
    assert html.count("data:image/png;base64,") == html.count("<img") >= 5
    assert "holds (certified)" in html and "min(n, r − 1)" in html


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
