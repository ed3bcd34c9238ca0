"""``tensorrnn teacher-scaling``: CP students of tt-shared teachers of known CP rank over d."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app


@app.command("teacher-scaling")
def teacher_scaling_command(
    config: Path = typer.Option(..., "--config", help="YAML file: teachers, rank grids, fitters, samples."),
    out: Path = typer.Option(None, help="Output folder (resumable; default: the config's `out`)."),
    threads: int = typer.Option(1, help="Torch threads (one keeps numbers identical across runs)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fit CP (Levenberg–Marquardt, ALS, gradient), TT and TT-shared students to tt-shared
    teachers over a range of d, and train them on samples of the inputs.

    Writes scaling.csv (one row per fit, appended as each ends, cheapest fits
    first), scaling.md, scaling.png, samples.png, teachers.json and settings.json.
    Rerunning the same command skips finished fits; a rerun with other settings
    is refused.

    Example:

        tensorrnn teacher-scaling --config configs/teacher_scaling.yaml --out results/teacher_scaling
    """
    import torch

    from tensorrnn.errors import ConfigError
    from tensorrnn.sweep import load_config_file
    from tensorrnn.teacher_scaling import load_config, run_scaling
    from tensorrnn.teacher_scaling_report import write_report

    if threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    settings = load_config(load_config_file(config), str(config))
    torch.set_num_threads(threads)
    folder = out if out is not None else Path(settings.out)
    write_report(run_scaling(settings, folder, quiet=quiet), settings, folder)
    typer.echo(f"wrote {folder / 'scaling.csv'}, {folder / 'scaling.md'}, {folder / 'scaling.png'}")
