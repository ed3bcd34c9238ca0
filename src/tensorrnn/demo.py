"""The main job: the default rank sweep, the quick network comparison, one report page."""

from __future__ import annotations

from pathlib import Path

from tensorrnn.ranks import lab
from tensorrnn.report import write_comparison_report, write_demo_page
from tensorrnn.sweep import load_config_file, plan_sweep, run_sweep

QUICK_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quick.yaml"


def run_demo(out: Path, *, config: Path = QUICK_CONFIG, jobs: int = 2, quiet: bool = False) -> Path:
    """Run both laboratories into ``out`` and return the path of ``index.html``.

    Every step is resumable: rerunning skips what is already measured or trained.
    Without Fashion-MNIST installed, the comparison falls back to ``digits``.
    """
    from tensorrnn.data import dataset_status, default_dataset

    out = Path(out)
    if not quiet:
        print("1/3 rank laboratory: default sweep")
    rank_dir = lab.run_rank_sweep(lab.default_grid(), out / "ranks", lab.SweepSettings(), quiet=quiet)

    values = load_config_file(config)
    datasets = values.get("dataset")
    if isinstance(datasets, str) and not dataset_status(datasets).available:
        fallback = default_dataset()
        print(f"{datasets} is not installed (see `tensorrnn data`); the comparison uses {fallback}")
        values["dataset"] = fallback
        values["patch"] = 2  # the config's patch size fits 28x28 images, digits are 8x8
    if not quiet:
        print(f"2/3 network laboratory: {config}")
    plan = plan_sweep(values, str(config), out / "compare")
    compare_dir = run_sweep(plan, jobs=jobs, quiet=quiet)
    write_comparison_report(plan)

    if not quiet:
        print("3/3 report")
    return write_demo_page(rank_dir, compare_dir, out)
