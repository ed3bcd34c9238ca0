"""Re-run committed runs from their recorded settings and say whether the numbers agree.

A committed sweep (``docs/results/<name>/``) holds ``results.csv`` and
``plan.json``. Sweeps made since runs kept their configs carry each run's
``RunConfig`` in ``plan.json``; older ones are re-planned from the YAML file that
made them (``configs/<name>.yaml``, or the file given), which must plan the same
run names. Each chosen run trains again into a scratch folder with the recorded
thread count, and its numbers are compared with the committed row *exactly*:
test and validation accuracy, best epoch, epochs completed. The outcome of a
check is written to ``rerun.json`` beside the results when asked, so tables can
say which committed sweeps re-ran and which were made by an earlier code state.
"""

from __future__ import annotations

import csv
import json
import random
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tensorrnn import PINNED_CPU_CAPABILITY
from tensorrnn.atomic import atomic_write_json
from tensorrnn.errors import ConfigError
from tensorrnn.runfolder import code_version, session_facts
from tensorrnn.sweep import PLAN_FILE, RESULTS_FILE, load_config_file, plan_sweep
from tensorrnn.train import RunConfig, train_run

__all__ = ["RerunOutcome", "rerun_check", "read_rerun_record", "RERUN_FILE", "COMPARED"]

RERUN_FILE = "rerun.json"
COMPARED = ("test_accuracy", "val_accuracy", "best_epoch", "epochs_completed")


@dataclass(frozen=True)
class RerunOutcome:
    run: str
    agrees: bool
    committed: dict[str, str]
    rerun: dict[str, str]

    def describe(self) -> str:
        if self.agrees:
            return f"{self.run}: agrees exactly ({_summary(self.rerun)})"
        return f"{self.run}: DIFFERS: committed {_summary(self.committed)}; re-run {_summary(self.rerun)}"


def _summary(values: dict[str, str]) -> str:
    return ", ".join(f"{k} {values.get(k, '?')}" for k in COMPARED)


def _committed_rows(sweep: Path) -> dict[str, dict[str, str]]:
    path = sweep / RESULTS_FILE
    if not path.is_file():
        raise ConfigError(f"{sweep} has no {RESULTS_FILE}; give a sweep folder such as docs/results/quick")
    with path.open() as handle:
        return {row["run"]: row for row in csv.DictReader(handle) if row.get("status") == "finished"}


def recorded_configs(sweep: Path, config_file: Path | None = None) -> dict[str, RunConfig]:
    """Each run's config: from ``plan.json`` where recorded, else re-planned from its YAML file."""
    plan_path = sweep / PLAN_FILE
    plan = json.loads(plan_path.read_text()) if plan_path.is_file() else {}
    if "configs" in plan and config_file is None:
        return {name: RunConfig.from_mapping(values, f"{plan_path} ({name})")
                for name, values in plan["configs"].items()}  # fmt: skip
    if config_file is None:
        name = plan.get("name", sweep.name)
        config_file = Path("configs") / f"{name}.yaml"
    if not config_file.is_file():
        raise ConfigError(f"{sweep}: its plan does not record run configs and {config_file} does not exist; "
                          "give the YAML file that made the sweep (config_file)")  # fmt: skip
    replanned = plan_sweep(load_config_file(config_file), str(config_file), out=sweep)
    return {run.name: run.config for run in replanned.runs}


def choose_runs(names: Sequence[str], runs: Sequence[str] | None, sample: int | None, seed: int) -> list[str]:
    """The runs named, or a seeded random sample of the finished ones (sorted, so any order of
    the CSV picks the same)."""
    if runs:
        unknown = sorted(set(runs) - set(names))
        if unknown:
            raise ConfigError(f"no finished run named {', '.join(unknown)}; "
                              f"finished: {', '.join(sorted(names))}")
        return list(runs)
    pool = sorted(names)
    if sample is None or sample >= len(pool):
        return pool
    if sample < 1:
        raise ConfigError(f"sample={sample} must be at least 1")
    return sorted(random.Random(seed).sample(pool, sample))


def rerun_check(
    sweep: str | Path, *, runs: Sequence[str] | None = None, sample: int | None = None, seed: int = 0,
    config_file: str | Path | None = None, threads: int | None = None, work: str | Path | None = None,
    record: bool = False, quiet: bool = False,
) -> list[RerunOutcome]:  # fmt: skip
    """Re-run the chosen committed runs of ``sweep`` and compare (see the module docstring).

    ``threads``: torch threads per run (default: the committed row's ``torch_threads``
    where recorded, else 1). ``work``: the scratch folder (default: a temporary one).
    ``record``: write ``rerun.json`` into ``sweep`` with the outcomes and the code version.
    """
    import torch

    sweep = Path(sweep)
    committed = _committed_rows(sweep)
    configs = recorded_configs(sweep, Path(config_file) if config_file else None)
    missing = sorted(set(committed) - set(configs))
    if missing:
        raise ConfigError(f"{sweep}: no config for {', '.join(missing)}; the YAML file plans other runs")
    chosen = choose_runs(list(committed), runs, sample, seed)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="tensorrnn-rerun-") as scratch:
        base = Path(work) if work is not None else Path(scratch)
        for name in chosen:
            torch.set_num_threads(threads or int(committed[name].get("torch_threads") or 1))
            result = train_run(configs[name], base / name, quiet=True)
            fresh = {k: _as_committed(result.get(k), committed[name].get(k, "")) for k in COMPARED}
            row = {k: committed[name].get(k, "") for k in COMPARED}
            outcome = RerunOutcome(name, fresh == row, row, fresh)
            outcomes.append(outcome)
            if not quiet:
                print(outcome.describe())
    capability = torch.backends.cpu.get_cpu_capability()
    if not quiet and not all(o.agrees for o in outcomes) and capability != PINNED_CPU_CAPABILITY:
        print(f"note: ATen ran its {capability} kernels here, not the {PINNED_CPU_CAPABILITY} ones the "
              "toolkit pins (ATEN_CPU_CAPABILITY); the committed numbers were made with the pin")  # fmt: skip
    if record:
        write_rerun_record(sweep, outcomes)
    return outcomes


def _as_committed(value: Any, like: str) -> str:
    """A fresh value written as the CSV writes it (``repr`` of the float, as ``csv`` does)."""
    if value is None:
        return ""
    return str(value) if not isinstance(value, float) else repr(value)


def write_rerun_record(sweep: Path, outcomes: Sequence[RerunOutcome]) -> Path:
    return atomic_write_json(sweep / RERUN_FILE, {
        "checked": datetime.now(UTC).date().isoformat(), "code": code_version(),
        "cpu_capability": session_facts()["cpu_capability"], "runs": [asdict(o) for o in outcomes],
        "verdict": "re-runs exactly" if all(o.agrees for o in outcomes) else "made by an earlier code state",
    })  # fmt: skip


def read_rerun_record(sweep: str | Path) -> dict[str, Any] | None:
    path = Path(sweep) / RERUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None
