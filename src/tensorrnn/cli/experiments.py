"""``tensorrnn train`` (one run) and ``tensorrnn compare`` (a grid of runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app


@app.command("train")
def train_command(
    config: Path = typer.Option(None, "--config", help="YAML file of run settings; flags override it."),
    out: Path = typer.Option(None, help="Run folder (resumable). Default runs/<dataset>-<model>-r<rank>."),
    dataset: str = typer.Option(None, help="Data set (`tensorrnn data` lists them)."),
    model: str = typer.Option(None, help="cp, tt or tt-shared."),
    rank: int = typer.Option(None, help="CP rank R or TT rank r."),
    patch: int = typer.Option(None, help="Side k of the k×k patches; d = (H/k)(W/k)."),
    order: str = typer.Option(None, help="Patch order: row-major or snake."),
    feature_map: str = typer.Option(None, help="affine-relu, affine, cos-sin or identity."),
    feature_dim: int = typer.Option(None, help="Feature size n (affine maps)."),
    constant: bool = typer.Option(None, help="affine-relu: keep a constant feature."),
    init: str = typer.Option(None, help="identity (near-identity cores) or gaussian."),
    schedule: str = typer.Option(None, help="Contraction: sequential or parallel."),
    epochs: int = typer.Option(None, help="Maximum number of epochs."),
    batch_size: int = typer.Option(None, help="Mini-batch size."),
    optimizer: str = typer.Option(None, help="adam or adamw."),
    lr: float = typer.Option(None, help="Peak learning rate."),
    lr_schedule: str = typer.Option(None, help="cosine or constant (after warm-up)."),
    warmup_epochs: float = typer.Option(None, help="Linear warm-up length in epochs."),
    weight_decay: float = typer.Option(None, help="Weight decay."),
    dropout: float = typer.Option(None, help="Dropout on the features."),
    clip_grad: float = typer.Option(None, help="Gradient norm clipping."),
    patience: int = typer.Option(None, help="Early stopping: epochs without a better validation accuracy."),
    seed: int = typer.Option(None, help="Seed of data split, initialisation, batches and dropout."),
    device: str = typer.Option(None, help="auto (cuda if available), cpu or cuda."),
    train_limit: int = typer.Option(None, help="Train on this many examples only."),
    data_dir: str = typer.Option(None, help="Data root (default $TENSORRNN_DATA)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train one network; rerunning the same command resumes it or says it is finished.

    Example:

        tensorrnn train --dataset fashion-mnist --model tt-shared --rank 16 --patch 4
        --feature-map affine-relu --feature-dim 8 --epochs 10 --seed 0 --out runs/x
    """
    from tensorrnn.sweep import load_config_file
    from tensorrnn.train import RunConfig, read_result, train_run

    values = load_config_file(config) if config is not None else {}
    flags = {
        "dataset": dataset, "model": model, "rank": rank, "patch": patch, "order": order,
        "feature_map": feature_map, "feature_dim": feature_dim, "constant": constant, "init": init,
        "schedule": schedule, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer,
        "lr": lr, "lr_schedule": lr_schedule, "warmup_epochs": warmup_epochs,
        "weight_decay": weight_decay, "dropout": dropout, "clip_grad": clip_grad,
        "patience": patience, "seed": seed, "device": device, "train_limit": train_limit,
        "data_dir": data_dir,
    }  # fmt: skip
    values.update({k: v for k, v in flags.items() if v is not None})
    if "dataset" not in values:
        from tensorrnn.data import default_dataset

        values["dataset"] = default_dataset(values.get("data_dir"))
    run = RunConfig.from_mapping(values, str(config) if config else "command line")
    folder = out or Path("runs") / f"{run.dataset}-{run.model}-r{run.rank}-s{run.seed}"
    finished_before = read_result(folder) is not None
    result = train_run(run, folder, quiet=quiet)
    if finished_before:
        typer.echo(f"{folder}: already finished; nothing to do")
    typer.echo(f"test accuracy {result['test_accuracy']:.4f}; results in {folder}/result.json")


@app.command("compare")
def compare_command(
    config: Path = typer.Option(..., "--config", help="YAML grid: keys as in `train`, lists are axes."),
    executor: str = typer.Option("local", help="local (worker processes) or ray."),
    jobs: int = typer.Option(1, help="Worker processes of the local executor."),
    threads: int = typer.Option(None, help="Torch threads per local run (default: cores / jobs)."),
    address: str = typer.Option(None, help="Ray cluster address (default: start a local Ray)."),
    out: Path = typer.Option(None, help="Sweep folder (default: the config's `out`, or results/<name>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Run a grid of runs (datasets × models × ranks × seeds × ...), resumably.

    Writes results.csv, report.md and figures into the sweep folder; finished runs
    are skipped when the command is run again.

    Example:

        tensorrnn compare --config configs/quick.yaml --jobs 2
    """
    from tensorrnn.sweep import load_config_file, plan_sweep, run_sweep

    plan = plan_sweep(load_config_file(config), str(config), out)
    folder = run_sweep(plan, executor=executor, jobs=jobs, threads=threads, address=address, quiet=quiet)
    typer.echo(f"wrote {folder / 'results.csv'} and {folder / 'report.md'}")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("reports/demo"), help="Output folder of the page and its data."),
    config: Path = typer.Option(None, help="Comparison config (default configs/quick.yaml)."),
    jobs: int = typer.Option(2, help="Worker processes for the training runs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Run the default rank sweep and the quick comparison; write one HTML page.

    Example:

        tensorrnn demo --out reports/demo
    """
    from tensorrnn.demo import QUICK_CONFIG, run_demo

    page = run_demo(out, config=config or QUICK_CONFIG, jobs=jobs, quiet=quiet)
    typer.echo(f"open {page.resolve()}  (the same content as Markdown: {page.parent / 'report.md'})")
