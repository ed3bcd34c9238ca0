"""The README's results section is generated from docs/results/, never typed by hand."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_results_section_matches_the_result_files():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py"), "--check"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_names_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text


def test_collect_copies_fresh_results_and_the_packaged_evidence(tmp_path: Path):
    # In a copy of the files the script touches: --collect writes into docs/results and src/.
    for part in ("scripts/update_readme.py", "README.md"):
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / part, tmp_path / part)
    shutil.copytree(ROOT / "docs" / "results", tmp_path / "docs" / "results")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    script = [sys.executable, str(tmp_path / "scripts" / "update_readme.py")]
    assert subprocess.run(script, capture_output=True).returncode == 0  # the section from these files
    rendered = (tmp_path / "README.md").read_text()
    sweep = "matched_budgets_mnist"
    shutil.copytree(ROOT / "docs" / "results" / sweep, tmp_path / "results" / sweep)  # a fresh run
    (tmp_path / "docs" / "results" / sweep / "report.md").unlink()
    (tmp_path / "docs" / "results" / sweep / "results.csv").write_text("stale\n")
    result = subprocess.run([*script, "--collect"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"collected {tmp_path / 'results' / sweep}" in result.stdout
    assert "skip ranks:" in result.stdout  # no reports/demo in the copy
    for name in ("report.md", "results.csv", "accuracy_vs_parameters.png"):
        assert (tmp_path / "docs/results" / sweep / name).read_bytes() == (ROOT / "docs/results" / sweep /
                                                                          name).read_bytes(), name
    evidence = tmp_path / "src" / "tensorrnn" / "evidence" / sweep
    for name in ("results.csv", "accuracy_vs_parameters.png"):
        assert (evidence / name).read_bytes() == (ROOT / "docs/results" / sweep / name).read_bytes()
    # The results section regenerated from the collected files is the one before the damage.
    assert (tmp_path / "README.md").read_text() == rendered
