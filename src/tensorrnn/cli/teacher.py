"""``tensorrnn teacher``: students of growing rank fit a random TT teacher exactly."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app


@app.command("teacher")
def teacher_command(
    config: Path = typer.Option(..., "--config", help="YAML file: teacher, students, seeds, lrs, steps."),
    out: Path = typer.Option(None, help="Output folder (resumable; default: the config's `out`)."),
    threads: int = typer.Option(1, help="Torch threads (one keeps numbers identical across runs)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fit CP, TT and TT-shared students to every entry of a random tt-shared teacher.

    Writes teacher.csv (one row per fit, appended as each ends), teacher.md
    (mean ± std over seeds per family and rank), teacher.png, teacher.json (the
    teacher's ranks and bounds) and settings.json. Rerunning the same command
    skips finished fits; a rerun with other settings is refused.

    Example:

        tensorrnn teacher --config configs/teacher_rank.yaml --out results/teacher
    """
    import torch

    from tensorrnn.errors import ConfigError
    from tensorrnn.sweep import load_config_file
    from tensorrnn.teacher import load_config, run_teacher

    if threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    settings = load_config(load_config_file(config), str(config))
    torch.set_num_threads(threads)
    folder = run_teacher(settings, out if out is not None else Path(settings.out), quiet=quiet)
    typer.echo(f"wrote {folder / 'teacher.csv'}, {folder / 'teacher.md'}, {folder / 'teacher.png'}")


# The scaling lab's command registers itself on import (beside the teacher it extends).
from tensorrnn.cli import teacher_scaling as _teacher_scaling  # noqa: E402, F401
