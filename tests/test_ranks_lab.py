"""The rank laboratory as a library: settings recorded and checked, atomic files,
the same numbers for the same seed."""

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

import tensorrnn.ranks
from tensorrnn.errors import ConfigError
from tensorrnn.ranks import lab

SETTINGS = lab.SweepSettings(cp_fit=False)


def tiny_jobs(trials: int = 1) -> list[lab.RankJob]:
    return lab.make_grid(["tt-shared"], [2], [3], [4], "odd-even", trials)


def numbers(folder: Path) -> list[dict[str, str]]:
    """The rows of ranks.csv without the timings."""
    rows = list(csv.DictReader((folder / "ranks.csv").open()))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_recorded_settings_hold_what_decides_the_numbers():
    assert lab.recorded_settings(lab.SweepSettings()) == {
        "seed": 0, "methods": ["float", "exact"], "cp_fit": True, "engine": "blas",
        "prime": lab.DEFAULT_PRIME, "max_draws": 3,
    }  # fmt: skip
    # Methods in one order; settings a method does not use are left out.
    assert lab.recorded_settings(lab.SweepSettings(methods=("exact", "float"))) == lab.recorded_settings(
        lab.SweepSettings(methods=("float", "exact"))
    )
    assert lab.recorded_settings(lab.SweepSettings(methods=("float",), seed=4)) == {
        "seed": 4, "methods": ["float"], "cp_fit": True,
    }  # fmt: skip
    assert lab.recorded_settings(lab.SweepSettings(methods=("exact",), cp_fit=False)) == {
        "seed": 0, "methods": ["exact"], "engine": "blas", "prime": lab.DEFAULT_PRIME, "max_draws": 3,
    }  # fmt: skip


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"methods": ()}, "no method"),
        ({"methods": ("svd",)}, "unknown method"),
        ({"engine": "gpu"}, "unknown engine"),
        ({"prime": 9}, "not a prime"),
        ({"prime": 16777259}, "too large"),
        ({"max_draws": 0}, "max_draws"),
        ({"seed": 1.5}, "seed"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_settings_are_refused_before_the_folder_exists(tmp_path: Path, change, needle):
    with pytest.raises(ConfigError, match=needle):
        lab.run_rank_sweep(tiny_jobs(), tmp_path / "out", replace(SETTINGS, **change), quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_a_large_prime_is_fine_for_flint_and_unused_without_exact():
    lab.check_settings(replace(SETTINGS, engine="flint", prime=16777259))
    lab.check_settings(replace(SETTINGS, methods=("float",), prime=9))


def test_a_sweep_leaves_only_its_four_files(tmp_path: Path):
    lab.run_rank_sweep(tiny_jobs(2), tmp_path, SETTINGS, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ranks.csv", "ranks.md", "ranks.png", "ranks_status.png", "settings.json",
    ]  # fmt: skip
    assert json.loads((tmp_path / "settings.json").read_text()) == lab.recorded_settings(SETTINGS)


def test_same_seed_same_numbers_other_seed_other_instances(tmp_path: Path):
    # n 3, r 2, d 4: rank 6 of a 9 x 9 matricization, so each float row has a finite gap.
    jobs = lab.make_grid(["tt-shared"], [3], [2], [4], "odd-even", 2)
    one = lab.run_rank_sweep(jobs, tmp_path / "a", SETTINGS, quiet=True)
    two = lab.run_rank_sweep(jobs, tmp_path / "b", SETTINGS, quiet=True)
    assert numbers(one) == numbers(two)
    other = lab.run_rank_sweep(jobs, tmp_path / "c", replace(SETTINGS, seed=1), quiet=True)
    assert [r["seed"] for r in numbers(other)] != [r["seed"] for r in numbers(one)]
    # The instances themselves differ: the singular-value gap of each float row is a property of
    # its tensor (the generic rank 6 is not, it is the same for almost every instance).
    gaps = [[float(r["gap"]) for r in numbers(folder) if r["method"] == "float"] for folder in (one, other)]
    assert len(gaps[0]) == len(gaps[1]) == 2
    assert all(a != b for a, b in zip(*gaps, strict=True)), gaps


def test_mismatch_error_lists_every_difference(tmp_path: Path):
    lab.run_rank_sweep(tiny_jobs(), tmp_path, SETTINGS, quiet=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    wanted = replace(SETTINGS, seed=2, prime=101, engine="flint", max_draws=5)
    with pytest.raises(lab.SettingsMismatchError) as info:
        lab.run_rank_sweep(tiny_jobs(), tmp_path, wanted, quiet=True)
    error = info.value
    assert isinstance(error, ConfigError) and not error.legacy and error.folder == tmp_path
    assert {(d.name, d.stored, d.requested) for d in error.differences} == {
        ("seed", 0, 2), ("prime", lab.DEFAULT_PRIME, 101), ("engine", "blas", "flint"),
        ("max_draws", 3, 5),
    }  # fmt: skip
    assert "seed 0 there, 2 now" in str(error) and "another output folder" in str(error)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_other_methods_name_only_the_methods(tmp_path: Path):
    lab.run_rank_sweep(tiny_jobs(), tmp_path, SETTINGS, quiet=True)
    with pytest.raises(lab.SettingsMismatchError) as info:
        lab.run_rank_sweep(tiny_jobs(), tmp_path, replace(SETTINGS, methods=("exact",)), quiet=True)
    assert [(d.name, d.stored, d.requested) for d in info.value.differences] == [
        ("methods", ["float", "exact"], ["exact"])
    ]


def test_unreadable_settings_file_is_a_clear_error(tmp_path: Path):
    lab.run_rank_sweep(tiny_jobs(), tmp_path, SETTINGS, quiet=True)
    (tmp_path / "settings.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read .*settings.json"):
        lab.run_rank_sweep(tiny_jobs(), tmp_path, SETTINGS, quiet=True)


def test_old_folder_rows_decide_max_draws_and_cp_fit(tmp_path: Path):
    """A ranks.csv without settings.json: only what the rows show matters."""
    settings = lab.SweepSettings(max_draws=2)
    jobs = lab.make_grid(["tt-shared", "tt"], [2], [2, 3], [4], "odd-even", 2)
    lab.run_rank_sweep(jobs, tmp_path, settings, quiet=True)
    (tmp_path / "settings.json").unlink()
    rows = numbers(tmp_path)
    # Every exact draw here reaches the min-cut at once: any max_draws >= 1 gives these rows.
    assert all(r["draws"] == "1" for r in rows if r["method"] == "exact")
    lab.check_resume(tmp_path, replace(settings, max_draws=1))
    lab.check_resume(tmp_path, replace(settings, max_draws=9))
    with pytest.raises(lab.SettingsMismatchError) as info:
        lab.check_resume(tmp_path, replace(settings, cp_fit=False))
    assert [(d.name, d.stored) for d in info.value.differences] == [("cp_fit", True)]
    assert info.value.legacy

    # A row that needed 2 draws short of the min-cut was drawn with max_draws = 2.
    path = tmp_path / "ranks.csv"
    stored = list(csv.DictReader(path.open()))
    row = next(r for r in stored if r["method"] == "exact")
    row["draws"], row["rank"] = "2", str(int(row["mincut"]) - 1)
    job = lab.RankJob(row["family"], int(row["n"]), int(row["r"]), int(row["d"]), row["split"],
                      int(row["trial"]))  # fmt: skip
    row["seed"] = str(job.instance_seed(0, "exact", 1))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, lab.COLUMNS)
        writer.writeheader()
        writer.writerows(stored)
    lab.check_resume(tmp_path, settings)
    for other in (1, 3):
        with pytest.raises(lab.SettingsMismatchError, match="max_draws"):
            lab.check_resume(tmp_path, replace(settings, max_draws=other))


def test_output_path_checks(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    for bad, needle in ((tmp_path / "file", "existing file"), (tmp_path / "file" / "a", "under the file")):
        with pytest.raises(ConfigError, match=needle):
            lab.check_output_folder(bad)
    lab.check_output_folder(tmp_path / "new" / "deeper")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_ranks_layer_knows_no_flag_names():
    """Only cli parses arguments (docs/DESIGN.md): no '--flag' in the ranks package."""
    package = Path(tensorrnn.ranks.__file__).parent
    for source in package.glob("*.py"):
        assert not re.findall(r"--[a-z]", source.read_text()), source.name
