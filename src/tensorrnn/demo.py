"""The main job: the default rank sweep, the quick network comparison, one report page."""

from __future__ import annotations

from pathlib import Path

from tensorrnn.errors import ConfigError
from tensorrnn.ranks import lab
from tensorrnn.report import write_comparison_report, write_demo_page
from tensorrnn.sweep import load_config_file, plan_sweep, run_sweep

# Shipped with the package (package data), so an installed `tensorrnn demo` finds it;
# configs/quick.yaml in a checkout is a link to this file.
QUICK_CONFIG = Path(__file__).resolve().with_name("configs") / "quick.yaml"
# Largest matricization side of the default rank sweep (n ** (d / 2) <= 1024).
FULL_SIDE = 1024


def rank_jobs(max_side: int = FULL_SIDE) -> list[lab.RankJob]:
    """The default rank sweep's jobs whose odd/even matricization has at most ``max_side`` rows.

    Raises
    ------
    ConfigError
        ``max_side`` below 4, the smallest side of the sweep (n = 2, d = 4).
    """
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 4:
        raise ConfigError(f"max_side={max_side!r} is out of range; the rank sweep's smallest matrix has "
                          f"4 rows (n = 2, d = 4): use an integer from 4 to {FULL_SIDE}")  # fmt: skip
    return [job for job in lab.default_grid() if job.n ** (job.d // 2) <= max_side]


def run_demo(
    out: Path,
    *,
    config: Path = QUICK_CONFIG,
    jobs: int = 2,
    quiet: bool = False,
    max_side: int = FULL_SIDE,
) -> Path:
    """Run both laboratories into ``out`` and return the path of ``index.html``.

    Every step is resumable: rerunning skips what is already measured or trained.
    Without Fashion-MNIST installed, the comparison falls back to ``digits``.
    ``max_side`` keeps the rank sweep's settings whose matrices have at most that
    many rows (the default keeps all of them).
    """
    from tensorrnn.data import dataset_status, default_dataset

    out = Path(out)
    grid = rank_jobs(max_side)
    values = load_config_file(config)
    datasets = values.get("dataset")
    if isinstance(datasets, str) and not dataset_status(datasets).available:
        fallback = default_dataset()
        print(f"{datasets} is not installed (see `tensorrnn data`); the comparison uses {fallback}")
        values["dataset"] = fallback
        values["patch"] = 2  # the config's patch size fits 28x28 images, digits are 8x8
    plan = plan_sweep(values, str(config), out / "compare")  # a bad config fails before any work

    if not quiet:
        print("1/3 rank laboratory: default sweep" + ("" if max_side == FULL_SIDE else
                                                     f", matrices of at most {max_side} rows"))
    rank_dir = lab.run_rank_sweep(grid, out / "ranks", lab.SweepSettings(), quiet=quiet)
    if not quiet:
        print(f"2/3 network laboratory: {config}")
    compare_dir = run_sweep(plan, jobs=jobs, quiet=quiet)
    write_comparison_report(plan)

    if not quiet:
        print("3/3 report")
    return write_demo_page(rank_dir, compare_dir, out)
