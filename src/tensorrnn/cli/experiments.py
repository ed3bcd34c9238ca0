"""``tensorrnn train`` (one run) and ``tensorrnn compare`` (a grid of runs)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from tensorrnn.cli.app import app
from tensorrnn.errors import ConfigError


def _option_type(spec: dataclasses.Field) -> type:
    return {"int": int, "float": float, "bool": bool, "str": str}[str(spec.type).split(" ")[0]]


def _run_config_flags() -> list[inspect.Parameter]:
    """One ``--flag`` per :class:`RunConfig` field, with the field's help text."""
    from tensorrnn.train import RunConfig

    flags = []
    for spec in dataclasses.fields(RunConfig):
        if str(spec.type).startswith("dict"):
            continue  # set with --set dataset_options.KEY=VALUE
        name, kind = spec.name.replace("_", "-"), _option_type(spec)
        declaration = f"--{name}/--no-{name}" if kind is bool else f"--{name}"
        option = typer.Option(None, declaration, help=spec.metadata["help"], show_default=False)
        flags.append(inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                       annotation=Optional[kind]))  # noqa: UP045 - typer reads it
    return flags


def _parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``--set key=value`` (YAML value; ``dataset_options.d=4`` sets one data-set option)."""
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set init_noise=0.05")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        head, _, option = key.strip().partition(".")
        if option:
            values.setdefault(head, {})[option] = value
        else:
            values[head] = value
    return values


def _flag_example(settings: dict[str, Any]) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(settings.items()))


def _pick_point(path: Path, values: dict[str, Any], points: list[dict[str, Any]],
                flags: dict[str, Any]) -> dict[str, Any]:
    """The settings of the one point the flags select (a key a point leaves out: the file's value)."""
    from tensorrnn.sweep import LABEL_KEYS

    keys = sorted({k for p in points for k in p} - set(LABEL_KEYS))
    settings = [{k: p.get(k, values.get(k)) for k in keys} for p in points]
    matching = [s for s in settings if all(s[k] == flags[k] for k in keys if k in flags)]
    free = [k for k in keys if k not in flags]
    choices = list({repr(sorted((k, s[k]) for k in free)): {k: s[k] for k in free}
                    for s in matching}.values())  # fmt: skip
    if len(choices) == 1:
        return choices[0]
    if not free:  # every key of the points pinned by a flag: a run beside the grid, as the flags say
        return {}
    if not matching:
        listed = "; ".join(_flag_example({k: v for k, v in p.items() if k not in LABEL_KEYS}) for p in points)
        raise ConfigError(f"{path}: no point has {_flag_example({k: flags[k] for k in keys if k in flags})};"
                          f" its points are: {listed}; pick one, or run the grid with tensorrnn compare")
    varying = [k for k in free if len({repr(c[k]) for c in choices}) > 1]
    raise ConfigError(f"{path} lists {len(choices)} points that fit these flags; pick one run, e.g. "
                      f"{_flag_example({k: choices[0][k] for k in varying})}, or run the grid with "
                      "tensorrnn compare")  # fmt: skip


def _values_from_config_file(path: Path, flags: dict[str, Any]) -> dict[str, Any]:
    """A run config, or a comparison config whose grid axes (or points) the flags pin to one run."""
    from tensorrnn.sweep import SWEEP_KEYS, load_config_file

    raw = load_config_file(path)
    values = {k: v for k, v in raw.items() if k not in SWEEP_KEYS}
    points = raw.get("points")
    if isinstance(points, list) and all(isinstance(p, dict) for p in points) and points:
        values.update(_pick_point(path, values, points, flags))
    axes = sorted(k for k, v in values.items() if isinstance(v, list) and k not in flags)
    if axes:
        choices = "; ".join(f"{k} is one of {values[k]}" for k in axes)
        example = " ".join(f"--{k.replace('_', '-')} {values[k][0]}" for k in axes)
        raise ConfigError(f"{path} is a grid ({choices}); pick one run, e.g. {example}, "
                          "or run the grid with tensorrnn compare")  # fmt: skip
    return values


def train_command(
    config: Path | None, out: Path | None, assignments: list[str] | None, quiet: bool, **flags: Any
) -> None:
    """Train one network; rerunning the same command resumes it or says it is finished.

    Every setting has a flag (and a YAML key of the same name in --config);
    flags override the file. A comparison config works too once each of its grid
    axes is pinned by a flag.

    Example:

        tensorrnn train --dataset fashion-mnist --model tt-shared --rank 16 --patch 4
        --feature-map affine-relu --feature-dim 8 --epochs 10 --seed 0 --out runs/x

        tensorrnn train --config configs/fashion_targets.yaml --model cp --rank 64
    """
    from tensorrnn.train import RunConfig, read_result, train_run

    flags = {k: v for k, v in flags.items() if v is not None}
    settings = _parse_assignments(assignments or [])
    flags.update(settings)
    values = _values_from_config_file(config, flags) if config is not None else {}
    for key, value in flags.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    if "dataset" not in values:
        from tensorrnn.data import default_dataset

        values["dataset"] = default_dataset(values.get("data_dir"))
    run = RunConfig.from_mapping(values, str(config) if config else "command line")
    folder = out or Path("runs") / f"{run.dataset}-{run.model}-r{run.rank}-s{run.seed}"
    finished_before = folder.is_dir() and read_result(folder) is not None
    result = train_run(run, folder, quiet=quiet)
    if finished_before:
        typer.echo(f"{folder}: already finished; nothing to do")
    typer.echo(f"test accuracy {result['test_accuracy']:.4f}; results in {folder}/result.json")


train_command.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],  # noqa: UP045
                      default=typer.Option(None, "--config", help="YAML file of run settings.")),
    inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],  # noqa: UP045
                      default=typer.Option(None, help="Run folder (resumable). Default "
                                           "runs/<dataset>-<model>-r<rank>-s<seed>.")),
    inspect.Parameter("assignments", inspect.Parameter.KEYWORD_ONLY,
                      annotation=Optional[list[str]],  # noqa: UP045
                      default=typer.Option(None, "--set", help="KEY=VALUE for any setting, e.g. "
                                           "--set dataset_options.d=6 (repeatable).")),
    inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(False, "--quiet", "-q", help="No progress bars.")),
    *_run_config_flags(),
])  # fmt: skip
train_command.__annotations__ = {
    p.name: p.annotation for p in train_command.__signature__.parameters.values()
}
app.command("train")(train_command)


@app.command("compare")
def compare_command(
    config: Path = typer.Option(..., "--config", help="YAML grid: keys as in `train`, lists are axes."),
    executor: str = typer.Option("local", help="local (worker processes) or ray."),
    jobs: int = typer.Option(1, help="Worker processes of the local executor."),
    threads: int = typer.Option(None, help="Torch threads (Ray: CPUs) per run (default: cores / jobs "
                                "locally, 1 on Ray)."),
    address: str = typer.Option(None, help="Ray head HOST:PORT (default: start a local Ray). Checked "
                                "first: a bad address fails in seconds."),
    storage: str = typer.Option(None, help="Ray only: a folder every node mounts, or a pyarrow.fs URI "
                                "(s3://...), for each epoch's checkpoint; a run whose node is lost "
                                "continues from it. Results always come home to the sweep folder."),
    out: Path = typer.Option(None, help="Sweep folder (default: the config's `out`, or results/<name>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Run a grid of runs (datasets × models × ranks × seeds × ...), resumably.

    Writes results.csv, report.md and figures into the sweep folder; finished runs
    are skipped when the command is run again. On a Ray cluster each run's files
    come back into the sweep folder on this machine; no shared file system is needed.

    Example:

        tensorrnn compare --config configs/quick.yaml --jobs 2

        tensorrnn compare --config configs/quick.yaml --executor ray --address 10.0.0.5:6379
    """
    from tensorrnn.report import write_comparison_report
    from tensorrnn.sweep import load_config_file, plan_sweep, run_sweep

    plan = plan_sweep(load_config_file(config), str(config), out)
    folder = run_sweep(plan, executor=executor, jobs=jobs, threads=threads, address=address,
                       quiet=quiet, storage=storage)  # fmt: skip
    write_comparison_report(plan)
    typer.echo(f"wrote {folder / 'results.csv'} and {folder / 'report.md'}")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("reports/demo"), help="Output folder of the page and its data."),
    config: Path = typer.Option(None, help="Comparison config (default: quick.yaml, shipped with the "
                                "package; configs/quick.yaml in a checkout)."),
    jobs: int = typer.Option(2, help="Worker processes for the training runs."),
    max_side: int = typer.Option(1024, help="Rank sweep: only settings whose odd/even matrix has at most "
                                 "this many rows (1024: the whole default sweep; 4: its smallest, n = 2, "
                                 "d = 4)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Run the default rank sweep and the quick comparison; write one HTML page.

    Example:

        tensorrnn demo --out reports/demo

        tensorrnn demo --out /tmp/small --max-side 16 --config my_small_grid.yaml
    """
    from tensorrnn.demo import QUICK_CONFIG, run_demo

    if max_side < 4:
        raise ConfigError(f"--max-side {max_side} leaves no setting (the smallest matrix has 4 rows, "
                          "n = 2 and d = 4); give 4 or more")  # fmt: skip
    page = run_demo(out, config=config or QUICK_CONFIG, jobs=jobs, quiet=quiet, max_side=max_side)
    typer.echo(f"open {page.resolve()}  (the same content as Markdown: {page.parent / 'report.md'})")
