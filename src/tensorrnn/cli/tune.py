"""``tensorrnn tune``: an equal Optuna budget per family, on validation only."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app


@app.command("tune")
def tune_command(
    config: Path = typer.Option(..., "--config", help="YAML tuning config: settings, families, search, "
                                "trials, epochs, seed (see configs/tune_*.yaml)."),
    out: Path = typer.Option(None, help="Study folder (default: the config's `out`, or "
                             "results/tune/<name>)."),
    storage: str = typer.Option(None, help="Optuna storage URL, e.g. postgresql://user@host/db for several "
                                "machines (default: sqlite in the study folder)."),
    trials: int = typer.Option(None, help="Trials per family (default: the config's `trials`)."),
    jobs: int = typer.Option(1, help="Trials at once (worker processes, or Ray tasks). Up to the number "
                             "of families (each runs one trial at a time): the same trials everywhere."),
    threads: int = typer.Option(1, help="Torch threads (Ray: CPUs) per trial."),
    executor: str = typer.Option("local", help="local or ray."),
    address: str = typer.Option(None, help="Ray head HOST:PORT (default: start a local Ray)."),
    heartbeat: int = typer.Option(10, help="Seconds between heartbeats of running trials; a trial silent for "
                                  "2x this + 1 s (its driver killed) is retried."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Tune every family with the same number of trials; objective: best validation accuracy.

    Each trial is a run folder under trials/<family>/; the study lives in study.db (or
    --storage). Killed at any moment, the same command continues it. Writes trials.csv,
    summary.json, best/<family>.yaml, report.md with figures, and compare.yaml: the
    winners with 3 seeds, evaluated on the test set by `tensorrnn compare`.

    Example:

        tensorrnn tune --config configs/tune_digits.yaml --out results/tune/digits

        tensorrnn compare --config results/tune/digits/compare.yaml
    """
    from tensorrnn.errors import ConfigError
    from tensorrnn.tune import load_tuning_config, run_tuning

    if trials is not None and trials < 1:
        raise ConfigError(f"--trials {trials} must be at least 1")
    plan = load_tuning_config(config, out=out, trials=trials)
    folder = run_tuning(plan, storage=storage, executor=executor, jobs=jobs, threads=threads,
                        address=address, heartbeat_s=heartbeat, quiet=quiet)  # fmt: skip
    typer.echo(f"wrote {folder / 'report.md'}, {folder / 'trials.csv'} and {folder / 'compare.yaml'}")
