"""``tensorrnn rerun``: re-run committed runs and compare their numbers exactly."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app


@app.command("rerun")
def rerun_command(
    sweep: Path = typer.Argument(..., help="A sweep folder with results.csv, e.g. docs/results/quick."),
    runs: str = typer.Option(None, help="Comma-separated run names (default: all, or --sample)."),
    sample: int = typer.Option(None, help="Re-run this many finished runs, drawn with --seed."),
    seed: int = typer.Option(0, help="Seed of the sample."),
    config: Path = typer.Option(None, "--config", help="The YAML file that made the sweep, where its "
                                "plan.json records no run configs (default configs/<name>.yaml)."),
    threads: int = typer.Option(None, help="Torch threads per run (default: as recorded, else 1)."),
    record: bool = typer.Option(False, help="Write the outcome to rerun.json in the sweep folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Re-run committed runs from their recorded settings; exit 1 if any number differs.

    Example:

        tensorrnn rerun docs/results/quick --runs cp-rank2,tt-rank4

        tensorrnn rerun docs/results/targets_augmented --sample 2 --seed 0 --record
    """
    from tensorrnn.rerun import rerun_check

    names = [name.strip() for name in runs.split(",") if name.strip()] if runs else None
    outcomes = rerun_check(sweep, runs=names, sample=sample, seed=seed, config_file=config,
                           threads=threads, record=record, quiet=quiet)  # fmt: skip
    differing = [o.run for o in outcomes if not o.agrees]
    typer.echo(f"{len(outcomes) - len(differing)} of {len(outcomes)} run(s) re-ran exactly"
               + (f"; differ: {', '.join(differing)}" if differing else ""))  # fmt: skip
    if differing:
        raise typer.Exit(1)
