"""Fair tuning on Optuna: an equal budget of trials per family, on validation only.

A tuning config (YAML) names the data and shape shared by every trial
(``settings``: :class:`RunConfig` fields), the families (``cp``, ``tt``,
``tt-shared``, ...), a search space (shared, and per family), the trials per
family (equal by default), the epochs per trial and a seed. Each family is one
Optuna study in one storage (a SQLite file in the output folder by default, or
any URL Optuna accepts). Layout of the output folder::

    study.db                  the Optuna studies (default storage)
    trials/<family>/trial-NNN one run folder per trial: config.json, metrics.jsonl, checkpoint.pt
    trials.csv, summary.json  every trial; per family the best one and the compute pruning saved
    best/<family>.yaml        the best trial's full run config
    compare.yaml              the winners with 3+ seeds on the test set: ``tensorrnn compare``
    report.md, figures/       trials table, optimisation history, parameter importances

How the rules of fair tuning are kept:

* **The test set is never read.** A trial is :func:`tensorrnn.train.train_run`
  with ``evaluate_test=False``: its ``result.json`` has ``test_accuracy: null``
  and no test predictions; the objective is the best validation accuracy of its
  epochs (``metrics.jsonl``). (The data loader still reads the test file from
  disk with the rest of the data set; no model ever sees it.)
* **Ask and tell on the driver.** Trials run one epoch at a time (a *segment*),
  locally, in worker processes or as Ray tasks whose files come home
  (:mod:`tensorrnn.cluster`); only the driver touches the study. After each
  epoch it reports the validation accuracy and asks the pruner, so pruning and
  SQLite work on a cluster without a shared file system.
* **Killed at any moment, the same command continues.** The driver records a
  heartbeat for each of its running trials; a trial whose driver died is failed
  once its heartbeat is stale and retried with the same parameters, in the same
  run folder (so from its last checkpoint). Completed and pruned trials are
  counted, so the final count is the one asked for, and no trial counts twice.
* **The same trials on every machine.** The sampler is reseeded before each
  trial from the seed and the number of trials already in the study, and a
  family runs one trial at a time unless jobs outnumber the families; with
  ``jobs`` up to the number of families and one thread per trial the trials
  are identical everywhere.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from tensorrnn.atomic import atomic_write_json, atomic_write_text
from tensorrnn.errors import ConfigError, DataError, TensorRNNError
from tensorrnn.runfolder import RunFolder
from tensorrnn.train import RunConfig, with_legacy_settings

TUNE_KEYS = ("name", "out", "seed", "trials", "epochs", "settings", "search", "families", "sampler",
             "pruner", "compare")  # fmt: skip
# Not searchable: they define the data, the family or the budget, equal for every trial.
FIXED_KEYS = ("dataset", "model", "seed", "epochs", "device", "data_dir", "dataset_options",
              "deterministic", "val_fraction", "train_limit")  # fmt: skip
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "successive-halving", "none")
EXECUTORS = ("local", "ray")
DEFAULT_SEEDS = (0, 1, 2)
SIGNIFICANT_DIGITS = 4  # sampled floats are rounded, so a trial's config says exactly what trained
MAX_RETRY = 3  # a trial whose driver died this often is dropped and a new one asked for
DONE_STATES = ("COMPLETE", "PRUNED")


# --------------------------------------------------------------------------- #
# The plan: a validated tuning config
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Param:
    """One searched setting: a float or integer range (``log`` scale), or a list of choices."""

    name: str
    kind: str  # "float", "int" or "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        value = trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")

    def describe(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        described = {"low": self.low, "high": self.high, "log": self.log}
        return {**described, "step": self.step} if self.step is not None else described


@dataclass(frozen=True)
class FamilyPlan:
    """One family: its fixed settings (a full run config but the searched keys) and its search space."""

    family: str
    settings: dict[str, Any]
    search: tuple[Param, ...]

    def spec(self, plan: TunePlan) -> dict[str, Any]:
        """What a trial of this family means; a stored study with another spec is refused."""
        return {"settings": self.settings, "search": {p.name: p.describe() for p in self.search},
                "epochs": plan.epochs, "seed": plan.seed, "sampler": plan.sampler,
                "pruner": plan.pruner}  # fmt: skip


@dataclass(frozen=True)
class TunePlan:
    name: str
    out: Path
    seed: int
    trials: int
    epochs: int
    sampler: str
    pruner: dict[str, Any]
    families: tuple[FamilyPlan, ...]
    compare: dict[str, Any]

    def study_name(self, family: str) -> str:
        return f"{self.name}-{family}"


def _parse_param(name: str, raw: Any, source: str) -> Param:
    from tensorrnn.train import _FIELDS

    where = f"{source}: search.{name}"
    if name not in _FIELDS or name in FIXED_KEYS:
        tunable = sorted(k for k in _FIELDS if k not in FIXED_KEYS)
        raise ConfigError(f"{where}: unknown parameter {name!r}; searchable settings are "
                          f"{', '.join(tunable)}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: write {{low: A, high: B}} (log: true for a log scale) "
                          "or {choices: [...]}")
    unknown = sorted(set(raw) - {"low", "high", "log", "step", "choices"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; use low, high, log, step "
                          "or choices")
    if "choices" in raw:
        choices = raw["choices"]
        if set(raw) != {"choices"}:
            raise ConfigError(f"{where}: give either choices or low/high, not both")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices is empty; list at least one value")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ConfigError(f"{where}: choices lists a value twice; list each once")
        return Param(name, "choice", choices=tuple(choices))
    low, high, log, step = raw.get("low"), raw.get("high"), raw.get("log", False), raw.get("step")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not all(math.isfinite(v) for v in (low, high)):
        raise ConfigError(f"{where}: low and high must be finite numbers, got {low!r} and {high!r}")
    if low >= high:
        what = "empty" if low == high else "inverted"
        raise ConfigError(f"{where}: the range [{low}, {high}] is {what}; give low < high")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range must stay above 0, got [{low}, {high}]; raise low")
    if step is not None and (log or not isinstance(step, int | float) or step <= 0):
        raise ConfigError(f"{where}: step must be a number > 0 and cannot go with log: true")
    integer = str(_FIELDS[name].type).startswith("int")
    if integer and not all(isinstance(v, int) for v in (low, high, step or 1)):
        raise ConfigError(f"{where}: {name} is an integer setting; give integer low, high and step")
    return Param(name, "int" if integer else "float", low, high, log, step)


def _check_param_values(param: Param, settings: dict[str, Any], source: str) -> None:
    """Every end of a range and every choice must make a valid run config."""
    values = param.choices if param.kind == "choice" else (param.low, param.high)
    for value in values:
        RunConfig.from_mapping({**settings, param.name: value}, f"{source}: search.{param.name}")


def _family_entries(raw: Any, source: str) -> dict[str, dict[str, Any]]:
    from tensorrnn.models import family_names

    if isinstance(raw, list):
        raw = {family: {} for family in raw}
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{source}: families must name at least one family, e.g. [cp, tt, tt-shared]")
    entries = {}
    for family, entry in raw.items():
        if family not in family_names("train"):
            known = ", ".join(family_names("train"))
            raise ConfigError(f"{source}: families: {family!r} is not one of {known}")
        entry = entry or {}
        if not isinstance(entry, dict) or set(entry) - {"settings", "search"}:
            raise ConfigError(f"{source}: families.{family} may hold settings and search only")
        entries[family] = entry
    return entries


def _mapping(values: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = values.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _whole(values: Mapping[str, Any], key: str, default: int, low: int, source: str) -> int:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{source}: {key}={value!r} must be an integer >= {low}")
    return value


def plan_tuning(
    values: Mapping[str, Any], source: str, *, out: str | Path | None = None, trials: int | None = None
) -> TunePlan:
    """Validate a tuning config completely (no file is touched); ``trials`` overrides its ``trials``."""
    unknown = sorted(set(values) - set(TUNE_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys are "
                          f"{', '.join(TUNE_KEYS)}")
    name = str(values.get("name", Path(source).stem))
    seed = _whole(values, "seed", 0, 0, source)
    count = _whole({"trials": trials} if trials is not None else values, "trials", 20, 1, source)
    epochs = _whole(values, "epochs", 3, 1, source)
    sampler = values.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{source}: sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
    pruner = _pruner_spec(values.get("pruner", "median"), source)
    shared_settings = _mapping(values, "settings", source)
    for key in ("model", "epochs", "seed"):
        if key in shared_settings:
            owner = "families" if key == "model" else key
            raise ConfigError(f"{source}: settings.{key} is set by the tuning config itself ({owner}); "
                              "remove it from settings")  # fmt: skip
    shared_search = _mapping(values, "search", source)
    _refuse_both(shared_settings, shared_search, source)
    families = []
    for family, entry in _family_entries(values.get("families"), source).items():
        settings = {**shared_settings, **_mapping(entry, "settings", f"{source}: families.{family}"),
                    "model": family, "epochs": epochs, "seed": seed}  # fmt: skip
        family_search = _mapping(entry, "search", f"{source}: families.{family}")
        _refuse_both(_mapping(entry, "settings", source), family_search, f"{source}: families.{family}")
        search_raw = {**shared_search, **family_search}
        # A setting fixed for this family (a rank set by a budget) is not searched. Sorted by
        # name: the sampler draws in suggestion order, so the key order of the YAML must not matter.
        params = tuple(_parse_param(k, v, f"{source}: families.{family}")
                       for k, v in sorted(search_raw.items()) if k not in settings)  # fmt: skip
        base = RunConfig.from_mapping(settings, f"{source}: families.{family}.settings").to_json()
        for param in params:
            _check_param_values(param, base, f"{source}: families.{family}")
        families.append(FamilyPlan(family, base, params))
    compare = _compare_spec(values.get("compare"), source)
    folder = Path(out) if out is not None else Path(values.get("out", f"results/tune/{name}"))
    return TunePlan(name, folder, seed, count, epochs, sampler, pruner, tuple(families), compare)


def _refuse_both(settings: Mapping[str, Any], search: Mapping[str, Any], source: str) -> None:
    both = sorted(set(settings) & set(search))
    if both:
        raise ConfigError(f"{source}: {', '.join(both)} is both fixed in settings and searched; keep one "
                          "(a family's own settings may fix a shared search key)")  # fmt: skip


def _pruner_spec(raw: Any, source: str) -> dict[str, Any]:
    spec = {"kind": raw} if isinstance(raw, str) else dict(raw or {})
    kind = spec.get("kind", "median")
    if kind not in PRUNERS:
        raise ConfigError(f"{source}: pruner kind {kind!r} is not one of {', '.join(PRUNERS)}")
    allowed = {"median": {"startup_trials": 5, "warmup_epochs": 1},
               "successive-halving": {"min_epochs": 1, "reduction_factor": 3}, "none": {}}[kind]  # fmt: skip
    unknown = sorted(set(spec) - {"kind", *allowed})
    if unknown:
        raise ConfigError(f"{source}: pruner {kind} takes {', '.join(allowed) or 'no options'}, "
                          f"not {', '.join(unknown)}")  # fmt: skip
    full = {"kind": kind, **allowed, **{k: v for k, v in spec.items() if k != "kind"}}
    for key in allowed:
        _whole(full, key, 0, 2 if key == "reduction_factor" else 0, f"{source}: pruner")
    return full


def _compare_spec(raw: Any, source: str) -> dict[str, Any]:
    spec = dict(raw or {})
    unknown = sorted(set(spec) - {"seeds", "epochs", "settings", "out"})
    if unknown:
        raise ConfigError(f"{source}: compare takes seeds, epochs, settings and out, "
                          f"not {', '.join(unknown)}")
    seeds = spec.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or len(seeds) < 3 or len(set(map(str, seeds))) != len(seeds):
        raise ConfigError(f"{source}: compare.seeds must list at least 3 different seeds, e.g. [0, 1, 2]")
    settings = spec.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{source}: compare.settings must be a mapping of run settings")
    return {"seeds": seeds, "epochs": spec.get("epochs"), "settings": settings, "out": spec.get("out")}


# --------------------------------------------------------------------------- #
# A trial's epochs: a train_run that stops where the driver says, never reading test
# --------------------------------------------------------------------------- #


class _SegmentEnd(Exception):
    """Raised after the last epoch of a segment, once its checkpoint is written."""


def train_epochs(config_json: dict[str, Any], folder: str, until: int, threads: int) -> dict[str, Any]:
    """Train the run in ``folder`` up to epoch ``until`` (resuming its checkpoint); never evaluates test.

    The run is :func:`tensorrnn.train.train_run` with ``evaluate_test=False``; its
    ``on_epoch`` hook stops it after epoch ``until`` (the next call resumes there).
    Returns ``{"status": "ok", "history": [...], "finished", "stopped_early",
    "num_parameters"}``, or ``{"status": "failed" | "data", "error": ...}``: a run
    whose loss diverged fails as a trial ("failed"); missing data stops the tuning ("data").
    """
    import torch

    from tensorrnn.runfolder import RunFolder
    from tensorrnn.train import train_run

    def stop_after_segment(record: dict[str, Any]) -> None:
        if record["epoch"] >= until:
            raise _SegmentEnd

    before = torch.get_num_threads()
    torch.set_num_threads(max(threads, 1))
    result = None
    try:
        result = train_run(RunConfig(**config_json), folder, quiet=True, evaluate_test=False,
                           on_epoch=stop_after_segment)  # fmt: skip
    except _SegmentEnd:
        pass
    except DataError as error:
        return {"status": "data", "error": str(error)}
    except TensorRNNError as error:
        return {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    finally:
        torch.set_num_threads(before)
    history = [{"epoch": h["epoch"], "val_accuracy": h["val_accuracy"], "seconds": h["seconds"]}
               for h in RunFolder(folder).read_metrics()]  # fmt: skip
    return {"status": "ok", "history": history, "finished": result is not None,
            "stopped_early": bool(result and result["stopped_early"]),
            "num_parameters": result["num_parameters"] if result else None}  # fmt: skip


def train_epochs_on_node(
    config_json: dict[str, Any], home: str, until: int, threads: int, shipped: Mapping[str, bytes]
) -> dict[str, Any]:
    """A segment as a Ray task: the run's files arrive, train in a temporary folder, files go home."""
    from tensorrnn.cluster import node_label, pack_run, unpack_run

    work = Path(tempfile.mkdtemp(prefix="tensorrnn-trial-"))
    folder = work / Path(home).name
    try:
        unpack_run(folder, shipped)
        outcome = train_epochs(config_json, str(folder), until, threads)
        if "error" in outcome:
            outcome["error"] = f"on {node_label()}: {outcome['error'].replace(str(folder), home)}"
        return {**outcome, "files": pack_run(folder)}  # result.json, written last, once finished
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- #
# The study store
# --------------------------------------------------------------------------- #


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out / 'study.db').resolve()}"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat or {prefix: {}}
    return {prefix: value}


def spec_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``key (stored X, now Y)`` for every leaf that differs between two specs."""
    old, new = _flatten(json.loads(json.dumps(stored))), _flatten(json.loads(json.dumps(wanted)))
    missing = "absent"
    return [f"{k} (stored {old.get(k, missing)}, now {new.get(k, missing)})"
            for k in sorted(set(old) | set(new)) if old.get(k, missing) != new.get(k, missing)]  # fmt: skip


def open_storage(url: str, heartbeat_s: int) -> Any:
    """An Optuna relational storage whose trials send heartbeats; a dead driver's trial is retried."""
    import optuna

    try:
        import sqlalchemy.engine

        sqlalchemy.engine.make_url(url)
    except Exception:  # noqa: BLE001 - any parse failure is the user's URL
        raise ConfigError(f"storage {url!r} is no database URL; write e.g. sqlite:///study.db or "
                          "postgresql://user@host/db") from None  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our bar and report say what happened
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat_s, grace_period=2 * heartbeat_s + 1,
                heartbeat_stale_trial_callback=retry,
            )  # fmt: skip
        except Exception as error:  # noqa: BLE001 - a database that cannot be opened
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ConfigError(f"storage {url}: cannot open it ({first}); check the URL and the "
                              "server") from None


def check_stored_studies(plan: TunePlan, storage: Any) -> None:
    """Refuse a storage whose study for a family was made with another search space or budget."""
    import optuna

    names = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    for family in plan.families:
        summary = names.get(plan.study_name(family.family))
        if summary is None:
            continue
        stored = summary.user_attrs.get("spec") or {}
        if "settings" in stored:
            stored = {**stored, "settings": with_legacy_settings(stored["settings"])}
        differences = spec_differences(stored, family.spec(plan))
        if differences:
            raise ConfigError(
                f"the study {summary.study_name} was made with another search space or budget; it "
                f"differs in {'; '.join(differences)}; use another out folder or storage, or the old config"
            )


def _create_studies(plan: TunePlan, storage: Any) -> dict[str, Any]:
    import optuna

    studies = {}
    for family in plan.families:
        study = optuna.create_study(storage=storage, study_name=plan.study_name(family.family),
                                    direction="maximize", load_if_exists=True)  # fmt: skip
        if "spec" not in study.user_attrs:
            study.set_user_attr("spec", family.spec(plan))
        studies[family.family] = study
    return studies


def _sampler(plan: TunePlan, trials_so_far: int) -> Any:
    """A sampler seeded by the seed and the trial's place: a resumed study samples as an uninterrupted one."""
    import optuna

    seed = plan.seed * 100_003 + trials_so_far
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(plan: TunePlan) -> Any:
    import optuna

    spec = plan.pruner
    if spec["kind"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec["startup_trials"],
                                           n_warmup_steps=spec["warmup_epochs"])  # fmt: skip
    if spec["kind"] == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec["min_epochs"],
                                                      reduction_factor=spec["reduction_factor"])  # fmt: skip
    return optuna.pruners.NopPruner()


class _Heartbeats:
    """Records a heartbeat for every trial this driver runs, every ``interval`` seconds."""

    def __init__(self, storage: Any, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trial-heartbeats", daemon=True)

    def add(self, trial_id: int) -> None:
        with self._lock:
            self.trial_ids.add(trial_id)
        self.storage.record_heartbeat(trial_id)  # a trial without one is never found stale

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self.trial_ids.discard(trial_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = sorted(self.trial_ids)
            for trial_id in ids:
                with contextlib.suppress(Exception):  # a missed beat only risks a retry
                    self.storage.record_heartbeat(trial_id)

    def __enter__(self) -> _Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- #
# Where segments run: this process, worker processes, or Ray
# --------------------------------------------------------------------------- #


class _Runner:
    """Starts a segment of a trial and hands back a future of its outcome."""

    def __init__(self, executor: str, jobs: int, threads: int) -> None:
        self.executor, self.jobs, self.threads = executor, jobs, threads
        self._pool: ProcessPoolExecutor | None = None
        self._remote: Any = None

    @contextlib.contextmanager
    def session(self, address: str | None, quiet: bool) -> Iterator[_Runner]:
        if self.executor == "ray":
            from tensorrnn.cluster import MAX_RETRIES, ray_session

            with ray_session(address, self.threads, quiet=quiet):
                import ray

                remote = ray.remote(num_cpus=self.threads, max_retries=MAX_RETRIES)
                self._remote = remote(train_epochs_on_node)
                yield self
            return
        if self.jobs > 1:
            # spawn: fork after torch has started its thread pools can deadlock.
            with ProcessPoolExecutor(max_workers=self.jobs, mp_context=get_context("spawn")) as pool:
                self._pool = pool
                yield self
            return
        yield self

    def submit(self, config_json: dict[str, Any], folder: Path, until: int) -> Future:
        if self._remote is not None:
            from tensorrnn.cluster import SHIPPED_FILES, pack_run

            home = folder.resolve()
            return self._remote.remote(config_json, str(home), until, self.threads,
                                       pack_run(home, SHIPPED_FILES)).future()  # fmt: skip
        if self._pool is not None:
            return self._pool.submit(train_epochs, config_json, str(folder), until, self.threads)
        future: Future = Future()
        future.set_result(train_epochs(config_json, str(folder), until, self.threads))
        return future

    def bring_home(self, folder: Path, outcome: dict[str, Any]) -> None:
        """Ray: write the files a node sent into the driver's trial folder."""
        if "files" in outcome:
            from tensorrnn.cluster import unpack_run

            unpack_run(folder, outcome.pop("files"))


# --------------------------------------------------------------------------- #
# The driver: ask, run epoch by epoch, report, prune, tell
# --------------------------------------------------------------------------- #


@dataclass
class _Active:
    """A trial this driver runs now."""

    family: FamilyPlan
    study: Any
    trial: Any
    folder: Path
    config_json: dict[str, Any]
    reported: int = 0
    num_parameters: int | None = None


def _states(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def _done(states: Mapping[str, int]) -> int:
    return sum(states.get(s, 0) for s in DONE_STATES)


class _Driver:
    def __init__(self, plan: TunePlan, studies: dict[str, Any], runner: _Runner, heartbeats: _Heartbeats,
                 bar: tqdm) -> None:  # fmt: skip
        self.plan, self.studies, self.runner = plan, studies, runner
        self.heartbeats, self.bar = heartbeats, bar
        self.active: dict[Future, _Active] = {}
        self.turn = 0  # families take turns, so an interrupted study has even counts
        # A family whose trials run one after another asks its sampler and pruner with the same
        # finished trials on every machine; more at once only when jobs outnumber the families.
        self.per_family = -(-runner.jobs // len(plan.families))

    def running(self, family: FamilyPlan) -> int:
        return sum(item.family.family == family.family for item in self.active.values())

    def wants_trial(self, family: FamilyPlan) -> bool:
        import optuna

        study = self.studies[family.family]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead driver's trial: failed, queued again
        states = _states(study)
        return _done(states) + states.get("RUNNING", 0) < self.plan.trials

    def run(self) -> None:
        families = list(self.plan.families)
        while True:
            while len(self.active) < self.runner.jobs:
                turns = [(self.turn + i) % len(families) for i in range(len(families))]
                ready = [i for i in turns if self.running(families[i]) < self.per_family
                         and self.wants_trial(families[i])]  # fmt: skip
                if not ready:
                    break
                family = families[ready[0]]
                self.turn = (ready[0] + 1) % len(families)
                item = self.start(family)
                self.active[self.runner.submit(item.config_json, item.folder, 1)] = item
            if not self.active:
                if all(_done(_states(s)) >= self.plan.trials for s in self.studies.values()):
                    return
                # Trials RUNNING under another (or a dead) driver: wait for them or their staleness.
                time.sleep(self.heartbeats.interval)
                continue
            done, _ = wait(list(self.active), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: self.active[f].trial.number):
                item = self.active.pop(future)
                following = self.advance(item, future.result())
                if following is not None:
                    self.active[following] = item

    def start(self, family: FamilyPlan) -> _Active:
        study = self.studies[family.family]
        study.sampler = _sampler(self.plan, len(study.get_trials(deepcopy=False)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize": ask-and-tell
            trial = study.ask()
        self.heartbeats.add(trial._trial_id)
        values = {p.name: p.suggest(trial) for p in family.search}
        config = RunConfig.from_mapping({**family.settings, **values}, f"trial {trial.number}")
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        # A retried trial continues in its original's folder, from its last checkpoint.
        original = frozen.system_attrs.get("failed_trial", trial.number)
        folder = self.plan.out / "trials" / family.family / f"trial-{original:03d}"
        trial.set_user_attr("folder", str(folder.relative_to(self.plan.out)))
        return _Active(family, study, trial, folder, config.to_json())

    def advance(self, item: _Active, outcome: dict[str, Any]) -> Future | None:
        """Report the new epochs; prune, tell, or start the next epoch."""
        self.runner.bring_home(item.folder, outcome)
        if outcome["status"] == "data":
            self.finish(item, "FAIL", outcome["error"])
            raise DataError(outcome["error"])
        if outcome["status"] == "failed":  # a diverged run is a hopeless trial: pruned, with its error
            self.finish(item, "PRUNED", outcome["error"])
            return None
        item.num_parameters = outcome["num_parameters"] or item.num_parameters
        history = outcome["history"]
        for record in history[item.reported :]:
            item.trial.report(record["val_accuracy"], record["epoch"])
            item.reported += 1
            if item.reported < self.plan.epochs and item.trial.should_prune():
                self.finish(item, "PRUNED")
                return None
        if outcome["finished"]:
            self.finish(item, "COMPLETE")
            return None
        return self.runner.submit(item.config_json, item.folder, len(history) + 1)

    def finish(self, item: _Active, state: str, error: str | None = None) -> None:
        import optuna

        records = RunFolder(item.folder).read_metrics()
        best = max((r["val_accuracy"] for r in records), default=None)
        trial = item.trial
        trial.set_user_attr("epochs", len(records))
        trial.set_user_attr("seconds", sum(r["seconds"] for r in records))
        trial.set_user_attr("best_val_accuracy", best)
        trial.set_user_attr("num_parameters", item.num_parameters)
        if error:
            trial.set_user_attr("error", error)
        if state == "COMPLETE":
            item.study.tell(trial, best)
        else:
            item.study.tell(trial, state=getattr(optuna.trial.TrialState, state))
        self.heartbeats.discard(trial._trial_id)
        self.bar.update()
        self.bar.set_postfix_str(f"{item.family.family} trial {trial.number}: {state.lower()}")


def _check_data(config: RunConfig) -> None:
    from tensorrnn.data import load_dataset

    load_dataset(config.dataset, data_dir=config.data_dir, val_fraction=config.val_fraction,
                 seed=config.seed, quiet=True, **config.dataset_options)  # fmt: skip


def run_tuning(
    plan: TunePlan,
    *,
    storage: str | None = None,
    executor: str = "local",
    jobs: int = 1,
    threads: int = 1,
    address: str | None = None,
    heartbeat_s: int = 10,
    quiet: bool = False,
) -> Path:
    """Run every family's study to ``plan.trials`` finished trials, then write the outputs.

    ``jobs`` trials run at once (worker processes, or Ray tasks with ``executor="ray"``),
    each on ``threads`` torch threads. Everything a user can get wrong is refused
    before a file is written: the executor and counts, the storage URL, a stored
    study with another spec, a data set that cannot be loaded, a Ray address.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    for key, value in (("jobs", jobs), ("threads", threads), ("heartbeat_s", heartbeat_s)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}={value!r} must be an integer >= 1")
    if plan.out.exists() and not plan.out.is_dir():
        raise ConfigError(f"out {plan.out} is a file; give a folder for the study")
    url = storage or default_storage(plan.out)
    store = None
    if storage is not None or (plan.out / "study.db").exists():
        store = open_storage(url, heartbeat_s)
        check_stored_studies(plan, store)
    if executor == "local":
        _check_data(RunConfig(**plan.families[0].settings))  # missing data: nothing written
    runner = _Runner(executor, jobs, threads)
    with runner.session(address, quiet):
        plan.out.mkdir(parents=True, exist_ok=True)
        store = store or open_storage(url, heartbeat_s)
        studies = _create_studies(plan, store)
        for study in studies.values():
            study.pruner = _pruner(plan)
        done = sum(min(_done(_states(s)), plan.trials) for s in studies.values())
        bar = tqdm(total=plan.trials * len(studies), initial=done, desc=plan.name, unit="trial",
                   disable=quiet)  # fmt: skip
        with _Heartbeats(store, heartbeat_s) as heartbeats:
            _Driver(plan, studies, runner, heartbeats, bar).run()
        bar.close()
    write_outputs(plan, studies)
    return plan.out


# --------------------------------------------------------------------------- #
# Outputs: trials table, best configs, the comparison config, the report
# --------------------------------------------------------------------------- #


def _trial_rows(plan: TunePlan, studies: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for family in plan.families:
        for trial in studies[family.family].get_trials(deepcopy=False):
            attrs = trial.user_attrs
            rows.append({"family": family.family, "trial": trial.number, "state": trial.state.name,
                         "best_val_accuracy": attrs.get("best_val_accuracy"), "epochs": attrs.get("epochs"),
                         "seconds": attrs.get("seconds"), "num_parameters": attrs.get("num_parameters"),
                         **{p.name: trial.params.get(p.name) for p in family.search},
                         "folder": attrs.get("folder"), "error": attrs.get("error", "")})  # fmt: skip
    return rows


def _family_summary(plan: TunePlan, family: FamilyPlan, study: Any) -> dict[str, Any]:
    """Counts, the best trial, and the compute pruning saved (epochs, and seconds at each trial's pace)."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.name in DONE_STATES]
    complete = [t for t in finished if t.state.name == "COMPLETE"]
    epochs = sum(t.user_attrs.get("epochs", 0) for t in finished)
    seconds = sum(t.user_attrs.get("seconds", 0.0) for t in finished)
    unpruned = 0.0
    for t in finished:
        done, spent = t.user_attrs.get("epochs", 0), t.user_attrs.get("seconds", 0.0)
        unpruned += spent + (spent / done * (plan.epochs - done) if done else 0.0)
    best = max(complete, key=lambda t: (t.value, -t.number), default=None)
    return {
        "study": plan.study_name(family.family), "trials_requested": plan.trials,
        "complete": len(complete), "pruned": len(finished) - len(complete),
        "failed": sum(t.state.name == "FAIL" for t in study.get_trials(deepcopy=False)),
        "epochs_trained": epochs, "epochs_without_pruning": plan.epochs * len(finished),
        "seconds": seconds, "seconds_without_pruning_estimate": unpruned,
        "compute_saved_fraction": 1 - epochs / max(plan.epochs * len(finished), 1),
        "best": None if best is None else {
            "trial": best.number, "val_accuracy": best.value, "params": best.params,
            "folder": best.user_attrs.get("folder"), "config": f"best/{family.family}.yaml"},
    }  # fmt: skip


def comparison_config(plan: TunePlan, best_configs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """A ``tensorrnn compare`` config: each family's winner, with the compare seeds, on the test set."""
    compare = plan.compare
    configs = []
    for config in best_configs.values():
        config = {k: v for k, v in config.items() if k != "seed"}
        config.update(compare["settings"])
        if compare["epochs"] is not None:
            config["epochs"] = compare["epochs"]
        configs.append(config)
    common = {k: v for k, v in configs[0].items() if all(c.get(k) == v for c in configs)}
    points = [{k: v for k, v in c.items() if k not in common} or {"model": c["model"]} for c in configs]
    common = {k: v for k, v in common.items() if not any(k in p for p in points)}
    out = compare["out"] or str(plan.out / "compare")
    return {"name": f"{plan.name}-compare", "out": out, **common, "seed": list(compare["seeds"]),
            "points": points}  # fmt: skip


def write_outputs(plan: TunePlan, studies: Mapping[str, Any]) -> dict[str, Any]:
    """``trials.csv``, ``summary.json``, ``best/<family>.yaml``, ``compare.yaml``, ``report.md``, figures."""
    from tensorrnn.sweep import plan_sweep

    rows = _trial_rows(plan, studies)
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["family", "trial", "state"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    atomic_write_text(plan.out / "trials.csv", buffer.getvalue())
    summary = {f.family: _family_summary(plan, f, studies[f.family]) for f in plan.families}
    best_configs = {}
    for family, entry in summary.items():
        if entry["best"] is None:
            continue
        config = RunFolder(plan.out / entry["best"]["folder"]).read_config()
        best_configs[family] = config
        (plan.out / "best").mkdir(exist_ok=True)
        header = (f"# Best {family} trial of {entry['study']} (trial {entry['best']['trial']}): validation "
                  f"accuracy {entry['best']['val_accuracy']:.4f}.\n# Train it: tensorrnn train --config "
                  "<this file>\n")  # fmt: skip
        text = header + yaml.safe_dump(config, sort_keys=False)
        atomic_write_text(plan.out / "best" / f"{family}.yaml", text)
    if best_configs:
        values = comparison_config(plan, best_configs)
        plan_sweep(dict(values), "compare.yaml")  # a config tensorrnn compare accepts, or a bug here
        header = (f"# The winners of tuning study {plan.name} (chosen on validation), each with "
                  f"{len(values['seed'])} seeds on the test set.\n# Run: tensorrnn compare --config <this>\n")
        atomic_write_text(plan.out / "compare.yaml", header + yaml.safe_dump(values, sort_keys=False))
    figures = _write_figures(plan, studies)
    atomic_write_json(plan.out / "summary.json", {"name": plan.name, "families": summary, "figures": figures})
    atomic_write_text(plan.out / "report.md", _report(plan, summary, rows, figures))
    return summary


def _write_figures(plan: TunePlan, studies: Mapping[str, Any]) -> dict[str, str]:
    """Optuna's matplotlib history and importance plots; a figure that cannot be drawn is named why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as views

    figures: dict[str, str] = {}
    (plan.out / "figures").mkdir(exist_ok=True)
    for family, study in studies.items():
        drawings = {
            "history": lambda s=study: views.plot_optimization_history(s),
            "importance": lambda s=study: views.plot_param_importances(
                s, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=plan.seed)),
        }  # fmt: skip
        for kind, draw in drawings.items():
            name = f"figures/{family}_{kind}.png"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    axes = draw()
                axes.figure.savefig(plan.out / name, dpi=110, bbox_inches="tight")
                plt.close(axes.figure)
                figures[f"{family}_{kind}"] = name
            except Exception as error:  # noqa: BLE001 - too few finished trials, one-value parameters
                figures[f"{family}_{kind}"] = f"not drawn: {(str(error).splitlines() or [''])[0]}"
                plt.close("all")
    return figures


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _report(plan: TunePlan, summary: Mapping[str, Any], rows: list[dict], figures: Mapping[str, str]) -> str:
    lines = [f"# Tuning study {plan.name}", "",
             f"{plan.trials} trials per family, {plan.epochs} epochs per trial, seed {plan.seed}, sampler "
             f"{plan.sampler}, pruner {plan.pruner['kind']}. Objective: best validation accuracy; the test "
             "set was not read. Evaluate the winners on test with `tensorrnn compare --config compare.yaml`.",
             "", "## Best per family", "",
             "| family | complete | pruned | best trial | validation | its settings | epochs trained | "
             "without pruning | saved |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for family, entry in summary.items():
        best = entry["best"] or {}
        params = ", ".join(f"{k} {_fmt(v)}" for k, v in best.get("params", {}).items())
        lines.append(f"| {family} | {entry['complete']} | {entry['pruned']} | {best.get('trial', '')} | "
                     f"{_fmt(best.get('val_accuracy'))} | {params} | {entry['epochs_trained']} | "
                     f"{entry['epochs_without_pruning']} | "
                     f"{entry['compute_saved_fraction']:.0%} |")  # fmt: skip
    lines += ["", "## Figures", ""]
    for key, name in figures.items():
        lines.append(f"![{key}]({name})" if not name.startswith("not drawn") else f"- {key}: {name}")
    lines += ["", "## Trials", ""]
    if rows:
        keys = [k for k in rows[0] if k not in ("folder", "error")]
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def load_tuning_config(
    path: str | Path, *, out: str | Path | None = None, trials: int | None = None
) -> TunePlan:
    from tensorrnn.sweep import load_config_file

    return plan_tuning(load_config_file(path), str(path), out=out, trials=trials)


__all__ = ["TunePlan", "FamilyPlan", "Param", "plan_tuning", "load_tuning_config", "run_tuning",
           "train_epochs", "write_outputs", "comparison_config", "spec_differences"]  # fmt: skip
