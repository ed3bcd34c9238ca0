"""Grids of runs, their executors (local processes or Ray) and the results table.

A comparison config is a YAML mapping whose keys are :class:`RunConfig` fields;
a key given as a list is an axis of the grid (``dataset``, ``model``, ``rank``,
``seed`` and any other), plus two sweep keys: ``name`` and ``out`` (the sweep
folder). Every grid point is an independent run in ``out/runs/<run name>``; a
finished run (``result.json``) is skipped, an unfinished one resumes from its
checkpoint, a crashed one is recorded with its error in ``error.json`` and in
``results.csv`` while the others go on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from tensorrnn.atomic import atomic_write_json, atomic_write_text
from tensorrnn.errors import ConfigError
from tensorrnn.executors import execute_run
from tensorrnn.runfolder import RunFolder, decode_correct
from tensorrnn.train import RunConfig

SWEEP_KEYS = ("name", "out", "points")
LABEL_KEYS = ("budget",)
EXECUTORS = ("local", "ray")
PLAN_FILE, RESULTS_FILE, TEST_CORRECT_FILE = "plan.json", "results.csv", "test_correct.json"
RESULT_COLUMNS = (
    "patch", "d", "n", "num_parameters_network", "test_accuracy", "val_accuracy", "train_accuracy",
    "num_parameters", "epochs_completed", "best_epoch", "seconds", "seconds_per_epoch",
)  # fmt: skip


@dataclass(frozen=True)
class PlannedRun:
    """One grid point: its folder name, the values of the grid axes, its config."""

    name: str
    axes: dict[str, Any]
    config: RunConfig


@dataclass(frozen=True)
class SweepPlan:
    name: str
    out: Path
    axes: tuple[str, ...]
    runs: tuple[PlannedRun, ...]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; give the path of a YAML file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}; check its indentation and colons") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(values).__name__}")
    return values


def _slug(value: Any) -> str:
    return str(value).replace("/", "-").replace(" ", "")


def _points(values: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The ``points`` list: settings that vary together (one model with its rank, ...)."""
    points = values.pop("points", None)
    if points is None:
        return [{}]
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) and p for p in points):
        raise ConfigError(f"{source}: points must be a non-empty list of mappings, e.g. "
                          "[{model: tt, rank: 4}, {model: cp, rank: 16}]")  # fmt: skip
    crossed = sorted({k for p in points for k in p} & {k for k, v in values.items() if isinstance(v, list)})
    if crossed:
        raise ConfigError(f"{source}: {', '.join(crossed)} is both a list and set in points; keep one")
    return points


def plan_sweep(values: Mapping[str, Any], source: str, out: str | Path | None = None) -> SweepPlan:
    """Expand a comparison config into validated runs (every run is checked up front).

    Keys given as lists are crossed with each other; ``points`` is a list of
    mappings whose settings vary together (matched budgets: each family with its
    own rank), crossed with the lists. ``budget`` inside a point is a label for
    reports (a results column), not a run setting.
    """
    values = dict(values)
    name = str(values.pop("name", Path(source).stem))
    folder = Path(out) if out is not None else Path(values.pop("out", f"results/{name}"))
    values.pop("out", None)
    points = _points(values, source)
    listed = tuple(k for k, v in values.items() if isinstance(v, list))
    for key in listed:
        if not values[key]:
            raise ConfigError(f"{source}: {key} is an empty list; give at least one value")
    point_keys = tuple(dict.fromkeys(k for p in points for k in p))
    axes = point_keys + listed
    runs = []
    for fixed in points:
        for combo in itertools.product(*(values[k] for k in listed)):
            point = {**fixed, **dict(zip(listed, combo, strict=True))}
            settings = {k: v for k, v in point.items() if k not in LABEL_KEYS}
            config = RunConfig.from_mapping({**values, **settings}, source)
            run_name = "-".join(_slug(point[k]) if k in ("dataset", "model") else f"{k}{_slug(point[k])}"
                                for k in axes if k in point) or "run"  # fmt: skip
            runs.append(PlannedRun(run_name, point, config))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: two grid points share a run name; list each value once")
    return SweepPlan(name, folder, axes, tuple(runs))


# --------------------------------------------------------------------------- #
# Executors
# --------------------------------------------------------------------------- #


def _run_local(
    tasks: list[tuple[dict, str]], jobs: int, threads: int | None, progress: Callable[[], None]
) -> None:
    threads = threads or max((os.cpu_count() or 1) // jobs, 1)
    if jobs == 1:
        for config_json, folder in tasks:
            execute_run(config_json, folder, threads)
            progress()
        return
    # spawn: fork after torch has started its thread pools can deadlock.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(execute_run, c, f, threads) for c, f in tasks]
        for future in as_completed(futures):
            future.result()
            progress()


def _run_ray(
    tasks: list[tuple[dict, str]], address: str | None, threads: int, progress: Callable[[], None],
    *, storage: str | None = None, sweep_name: str = "sweep", quiet: bool = False,
) -> list[str]:  # fmt: skip
    """Ray tasks whose files come home into the driver's run folders (:mod:`tensorrnn.cluster`).

    Returns the outcomes that could not be recorded in any file (raised after ``results.csv``).
    """
    from tensorrnn.cluster import run_on_ray

    return run_on_ray(tasks, address, threads, progress, storage=storage, sweep_name=sweep_name,
                      quiet=quiet)  # fmt: skip


def run_sweep(
    plan: SweepPlan,
    *,
    executor: str = "local",
    jobs: int = 1,
    threads: int | None = None,
    address: str | None = None,
    quiet: bool = False,
    storage: str | None = None,
) -> Path:
    """Run every unfinished grid point, write ``results.csv`` and return the sweep folder.

    The report (``tensorrnn.report.write_comparison_report``) is the caller's
    step: this layer only runs and collects.

    ``threads`` is the torch thread count of each run (default: the cores divided
    by ``jobs`` for the local executor, 1 for Ray); on cores shared with other
    work, 1 is often fastest. Float results are identical across executors only
    at equal thread counts (the order of a reduction depends on it).

    With ``executor="ray"`` no file system is assumed shared: each run's files
    travel to its node and back into ``out`` (``tensorrnn.cluster``); ``storage``
    (a folder every node mounts, or a ``pyarrow.fs`` URI) also keeps each epoch's
    checkpoint, so a run whose node is lost continues from it.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose local or ray")
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs} must be at least 1")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    if storage is not None and executor != "ray":
        raise ConfigError("--storage keeps checkpoints where every Ray node reaches them; "
                          "use it with --executor ray")  # fmt: skip
    cluster: contextlib.AbstractContextManager = contextlib.nullcontext()
    if executor == "ray":
        from tensorrnn.cluster import ray_session

        # Connected (or refused in seconds) before any folder or output exists.
        cluster = ray_session(address, threads or 1, storage=storage, quiet=quiet)
    with cluster:
        return _run_grid(plan, executor, jobs, threads, address, quiet, storage)


def _run_grid(
    plan: SweepPlan, executor: str, jobs: int, threads: int | None, address: str | None, quiet: bool,
    storage: str | None,
) -> Path:  # fmt: skip
    plan.out.mkdir(parents=True, exist_ok=True)
    # Each run's config is kept beside the results: a committed row re-runs from it
    # (`tensorrnn rerun`) without the YAML file that planned it.
    atomic_write_json(plan.out / PLAN_FILE, {
        "name": plan.name, "axes": list(plan.axes), "runs": [r.name for r in plan.runs],
        "configs": {r.name: r.config.to_json() for r in plan.runs},
    })  # fmt: skip
    tasks = []
    for run in plan.runs:
        folder = RunFolder(plan.out / "runs" / run.name)
        if folder.read_result() is None:
            folder.error_path.unlink(missing_ok=True)
            tasks.append((run.config.to_json(), str(folder.path)))
    if not quiet:
        print(f"{plan.name}: {len(plan.runs) - len(tasks)} of {len(plan.runs)} runs already finished")
    bar = tqdm(total=len(tasks), desc=plan.name, unit="run", disable=quiet)
    unrecorded: list[str] = []
    if executor == "local":
        _run_local(tasks, jobs, threads, bar.update)
    else:
        unrecorded = _run_ray(tasks, address, threads or 1, bar.update, storage=storage,
                              sweep_name=plan.name, quiet=quiet)  # fmt: skip
    bar.close()
    rows = collect_results(plan)
    write_results_csv(rows, plan)
    write_test_correct(plan)
    if unrecorded:
        from tensorrnn.cluster import raise_unrecorded

        raise_unrecorded(unrecorded)
    failed = [r for r in rows if r["status"] == "failed"]
    if failed and not quiet:
        print(f"{len(failed)} run(s) failed; see error.json in their folders and results.csv")
    return plan.out


# --------------------------------------------------------------------------- #
# Results
# --------------------------------------------------------------------------- #


def collect_results(plan: SweepPlan) -> list[dict[str, Any]]:
    """One row per grid point, from ``result.json`` or ``error.json``."""
    rows = []
    for run in plan.runs:
        folder = RunFolder(plan.out / "runs" / run.name)
        # An empty value (clip_grad: null) is written "null", not "", so that it
        # stays a grid point of its own in every table read back from the CSV.
        axes = {k: "null" if v is None else v for k, v in run.axes.items()}
        row: dict[str, Any] = {"run": run.name, **axes}
        row.setdefault("dataset", run.config.dataset)
        row.setdefault("model", run.config.model)
        row.setdefault("rank", run.config.rank)
        row.setdefault("seed", run.config.seed)
        row.setdefault("patch", run.config.patch)
        result = folder.read_result()
        error = folder.read_error()
        if result is not None:
            network = result.get("num_parameters_by_part", {}).get("network", "")
            values = {k: result.get(k, "") for k in RESULT_COLUMNS if k not in row}
            row.update(values, status="finished", error="", num_parameters_network=network)
        elif error is not None:
            row.update(status="failed", error=error["error"])
        else:
            row.update(status="missing", error="")
        rows.append(row)
    return rows


def write_test_correct(plan: SweepPlan) -> Path:
    """``test_correct.json``: per finished run, which test examples its model got right.

    Kept beside ``results.csv`` (and committed with it) so that every interval can
    include the test set's own noise (:mod:`tensorrnn.stats`); runs from before the
    record was kept are absent.
    """
    record = {}
    for run in plan.runs:
        result = RunFolder(plan.out / "runs" / run.name).read_result()
        if result is not None and result.get("test_correct"):
            record[run.name] = result["test_correct"]
    return atomic_write_json(plan.out / TEST_CORRECT_FILE, record)


def read_test_correct(sweep_folder: str | Path) -> dict[str, np.ndarray]:
    """The per-example correctness of a sweep's runs (see :func:`write_test_correct`)."""
    path = Path(sweep_folder) / TEST_CORRECT_FILE
    if not path.exists():
        return {}
    return {name: decode_correct(value) for name, value in json.loads(path.read_text()).items()}


def result_columns(plan: SweepPlan) -> list[str]:
    keys = ["run", "status", "dataset", "model", "rank", "seed"]
    keys += [a for a in plan.axes if a not in keys]
    return keys + [c for c in RESULT_COLUMNS if c not in keys] + ["error"]


def write_results_csv(rows: Sequence[Mapping[str, Any]], plan: SweepPlan) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, result_columns(plan), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in result_columns(plan)})
    return atomic_write_text(plan.out / "results.csv", buffer.getvalue())
