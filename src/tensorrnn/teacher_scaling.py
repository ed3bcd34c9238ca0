"""The exponential law, trained: CP students of teachers of known CP rank over a range of d.

The teacher lab (:mod:`tensorrnn.teacher`) fits one teacher at one ``d``; here the
order grows, so the growth of the CP rank a shallow network needs can be seen:

* **teachers** (:class:`~tensorrnn.teacher.TeacherSpec`, family ``tt-shared``):
  ``n = 4, r = 2`` (``n ≥ r²``: CP rank exactly ``2^(d−1)``) and ``n = r = 3``
  (CP rank between the generic odd/even rank ``3^(d/2)`` and ``3^(d−1)``), one
  instance per seed (teacher seed = the row's seed);
* **CP students** over a rank grid bracketing that rank, each fitted three ways:
  Levenberg–Marquardt (:func:`tensorrnn.ranks.cpfit.fit_cp`, where its dense
  Jacobian fits), ALS with line search (:func:`tensorrnn.ranks.cpals.fit_cp_als`)
  and gradient training of the network (:class:`~tensorrnn.networks.CPNet`, Adam
  then L-BFGS, :func:`tensorrnn.teacher.fit_student`);
* **TT and TT-shared students** at the teacher's ``r``, gradient-trained;
* **learning from samples**: students trained by mini-batch Adam on ``m`` random
  inputs and tested on all the others.

On one-hot inputs a network's scores are its coefficient tensor, so full-batch
gradient fits compute that tensor from the parameters (:func:`coefficient_scores`)
instead of scoring ``n^d`` one-hot inputs: the same loss and gradients, with one
GEMM in place of ``d`` batched products over ``n^d`` rows.

Results on disk (:func:`run_scaling`): ``scaling.csv`` gets one row per fit as it
ends (:class:`tensorrnn.labkit.RowStore`); ``settings.json`` holds what decides
the numbers and a rerun with other values is refused
(:func:`tensorrnn.labkit.check_lab_folder`); a larger grid adds rows. Jobs run
cheapest first (estimated multiply-adds), so a grid stopped early has every
small ``d`` and the large ones as far as time allowed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from tensorrnn.atomic import atomic_write_json
from tensorrnn.errors import ConfigError
from tensorrnn.labkit import SETTINGS_FILE, RowStore, check_lab_folder
from tensorrnn.networks import CPNet, ScoreNetwork, TTNet
from tensorrnn.ranks.cpals import fit_cp_als
from tensorrnn.ranks.cpfit import MAX_ENTRIES as LM_MAX_ENTRIES
from tensorrnn.ranks.cpfit import fit_cp
from tensorrnn.teacher import (
    TeacherSpec,
    balance_student,
    fit_student,
    lower_bound,
    make_student,
    singular_values,
    teacher_tensor,
)

CSV_FILE = "scaling.csv"
FACTS_FILE = "teachers.json"
OUTPUT_FILES = (CSV_FILE, SETTINGS_FILE, FACTS_FILE, "scaling.md", "scaling.png", "samples.png")
METHODS = ("lm", "als", "adam+lbfgs", "adam-minibatch")
COLUMNS = [
    "part", "teacher", "n", "r", "d", "family", "rank", "seed", "method", "train_inputs",
    "rel_error", "test_error", "lower_bound", "params", "max_term_norm", "iterations", "seconds",
]  # fmt: skip
MAX_TEACHER_ENTRIES = 1 << 20
"""Largest ``n^d`` (the teacher and every full student are dense)."""


# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class TeacherGrid:
    """One teacher regime over orders: ``n``, ``r`` and, per ``d``, the CP ranks to fit."""

    n: int
    r: int
    cp_ranks: dict[int, tuple[int, ...]]

    @property
    def orders(self) -> tuple[int, ...]:
        return tuple(sorted(self.cp_ranks))

    def label(self) -> str:
        return f"n{self.n}r{self.r}"


@dataclass(frozen=True)
class SampleGrid:
    """Learning from samples: teachers ``(n, r, d, cp_rank)``, training sizes, steps, batch."""

    teachers: tuple[tuple[int, int, int, int], ...]
    train_inputs: tuple[int, ...]
    steps: int
    batch: int


@dataclass(frozen=True)
class ScalingConfig:
    """A validated scaling experiment."""

    teachers: tuple[TeacherGrid, ...]
    seeds: tuple[int, ...]
    lrs: dict[str, float]
    adam_steps: int
    lbfgs_iters: int
    gradient_max_work: int
    lm_max_jacobian: int
    lm_restarts: int
    lm_evaluations: int
    als_restarts: int
    als_sweeps: int
    als_stall: float
    als_work: float
    samples: SampleGrid | None
    name: str = "teacher_scaling"
    out: str = "results/teacher_scaling"

    def recorded(self) -> dict[str, Any]:
        """What decides the numbers of a row (``settings.json``); the grids may grow."""
        # The caps on LM and gradient work choose which jobs exist (like the grid), not their numbers.
        grid = ("teachers", "seeds", "samples", "name", "out", "lm_max_jacobian", "gradient_max_work")
        fitting = {k: v for k, v in asdict(self).items() if k not in grid}
        if self.samples is not None:
            fitting["sample_steps"] = self.samples.steps
            fitting["sample_batch"] = self.samples.batch
        fitting.update({"dtype": "float64", "features": "one-hot", "teacher_family": "tt-shared",
                        "teacher_seed": "the row's seed"})  # fmt: skip
        return json_ready(fitting)


def json_ready(value: Any) -> Any:
    """Tuples as lists and int keys as strings, as ``settings.json`` reads back."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


CONFIG_KEYS = ("name", "out", "teachers", "seeds", "lrs", "adam_steps", "lbfgs_iters",
               "gradient_max_work", "lm_max_jacobian", "lm_restarts", "lm_evaluations",
               "als_restarts", "als_sweeps", "als_stall", "als_work", "samples")  # fmt: skip


def _integer(value: object, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{what} = {value!r} must be an integer >= {low}")
    return int(value)


def _int_list(value: object, what: str, low: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{what} = {value!r} must be a non-empty list of integers, e.g. [1, 2, 3]")
    return tuple(sorted({_integer(v, what, low) for v in value}))


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{what} = {value!r} must be a positive number")
    return float(value)


def als_sweeps(config: ScalingConfig, entries: int, rank: int) -> int:
    """Sweeps per ALS start: ``als_sweeps``, fewer where ``entries·rank·sweeps`` passes ``als_work``."""
    return max(1, min(config.als_sweeps, int(config.als_work // (entries * rank))))


def _teacher_grid(raw: object, where: str) -> TeacherGrid:
    if not isinstance(raw, Mapping) or set(raw) != {"n", "r", "cp_ranks"}:
        raise ConfigError(f"{where} must be a mapping with keys n, r, cp_ranks (d → list of ranks)")
    n, r = _integer(raw["n"], f"{where}.n", 2), _integer(raw["r"], f"{where}.r", 1)
    ranks = raw["cp_ranks"]
    if not isinstance(ranks, Mapping) or not ranks:
        raise ConfigError(f"{where}.cp_ranks must map each order d to a list of CP ranks, e.g. {{4: [4, 8]}}")
    grid = {}
    for d, values in ranks.items():
        d = _integer(d, f"{where}.cp_ranks key d", 4)
        if d % 2:
            raise ConfigError(f"{where}: d = {d} is odd; the odd/even bound needs an even order")
        if n**d > MAX_TEACHER_ENTRIES:
            raise ConfigError(f"{where}: n^d = {n}^{d} = {n**d} entries is over {MAX_TEACHER_ENTRIES}; "
                              "choose a smaller d")  # fmt: skip
        grid[d] = _int_list(values, f"{where}.cp_ranks.{d}", 1)
    return TeacherGrid(n, r, grid)


def _sample_grid(raw: object, source: str) -> SampleGrid | None:
    if raw is None:
        return None
    keys = {"teachers", "train_inputs", "steps", "batch"}
    if not isinstance(raw, Mapping) or set(raw) != keys:
        raise ConfigError(f"{source}: samples must be a mapping with keys {', '.join(sorted(keys))}")
    teachers = raw["teachers"]
    if not isinstance(teachers, list) or not teachers or not all(
        isinstance(t, list) and len(t) == 4 for t in teachers
    ):
        raise ConfigError(f"{source}: samples.teachers must list [n, r, d, cp_rank] entries, "
                          "e.g. [[4, 2, 6, 32]]")  # fmt: skip
    triples = tuple(tuple(_integer(v, "samples.teachers entry", 1) for v in t) for t in teachers)
    sizes = _int_list(raw["train_inputs"], "samples.train_inputs", 1)
    for n, _r, d, _rank in triples:
        if n**d > MAX_TEACHER_ENTRIES or 2 * sizes[0] > n**d:
            raise ConfigError(f"{source}: samples teacher n={n}, d={d} has {n**d} inputs; it must be at "
                              f"most {MAX_TEACHER_ENTRIES} and at least twice the smallest train_inputs "
                              f"{sizes[0]} (sizes over half the inputs are skipped for it)")  # fmt: skip
    return SampleGrid(triples, sizes, _integer(raw["steps"], "samples.steps", 1),
                      _integer(raw["batch"], "samples.batch", 1))  # fmt: skip


def load_config(values: Mapping[str, Any], source: str) -> ScalingConfig:
    """Validate a config mapping (from YAML); every problem is a one-line :class:`ConfigError`."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys to values")
    unknown = sorted(set(values) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys are "
                          f"{', '.join(CONFIG_KEYS)}")  # fmt: skip
    raw_teachers = values.get("teachers")
    if not isinstance(raw_teachers, list) or not raw_teachers:
        raise ConfigError(f"{source}: teachers must be a list of {{n, r, cp_ranks}} mappings")
    teachers = tuple(_teacher_grid(t, f"{source}: teachers[{i}]") for i, t in enumerate(raw_teachers))
    lrs = values.get("lrs", {"cp": 0.01, "tt": 0.03, "tt-shared": 0.01})
    if not isinstance(lrs, Mapping) or set(lrs) != {"cp", "tt", "tt-shared"} or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 10 for v in lrs.values()
    ):
        raise ConfigError(f"{source}: lrs must give one rate in (0, 10) to each of cp, tt, tt-shared")
    return ScalingConfig(
        teachers=teachers,
        seeds=_int_list(values.get("seeds", [0, 1, 2]), "seeds", 0),
        lrs={k: float(lrs[k]) for k in ("cp", "tt", "tt-shared")},
        adam_steps=_integer(values.get("adam_steps", 1000), "adam_steps", 0),
        lbfgs_iters=_integer(values.get("lbfgs_iters", 1000), "lbfgs_iters", 0),
        gradient_max_work=_integer(values.get("gradient_max_work", 1 << 24), "gradient_max_work", 1),
        lm_max_jacobian=_integer(values.get("lm_max_jacobian", 1 << 20), "lm_max_jacobian", 0),
        lm_restarts=_integer(values.get("lm_restarts", 2), "lm_restarts", 1),
        lm_evaluations=_integer(values.get("lm_evaluations", 100), "lm_evaluations", 1),
        als_restarts=_integer(values.get("als_restarts", 2), "als_restarts", 1),
        als_sweeps=_integer(values.get("als_sweeps", 2000), "als_sweeps", 1),
        als_stall=_positive(values.get("als_stall", 1e-6), "als_stall"),
        als_work=_positive(values.get("als_work", 1.2e11), "als_work"),
        samples=_sample_grid(values.get("samples"), source),
        name=str(values.get("name", "teacher_scaling")),
        out=str(values.get("out", "results/teacher_scaling")),
    )


# --------------------------------------------------------------------------- #
# Students on all inputs at once
# --------------------------------------------------------------------------- #


def _khatri_rao(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Column-wise Kronecker product of ``(n, R)`` factors, the first index most significant."""
    out = factors[0]
    for factor in factors[1:]:
        out = (out[:, None, :] * factor[None, :, :]).reshape(-1, out.shape[1])
    return out


def coefficient_scores(net: ScoreNetwork) -> Callable[[], torch.Tensor]:
    """A differentiable function giving the scores of all ``n^d`` one-hot inputs in C order.

    Equal to ``net.scores(one_hot_inputs(n, d))[:, 0]`` (tested), computed from the
    parameters: for CP one GEMM of the two halves' Khatri–Rao products, for TT the
    chain contracted left to right over all prefixes.
    """
    if isinstance(net, CPNet):
        half = net.d // 2

        def cp() -> torch.Tensor:
            left = _khatri_rao(list(net.factors[:half])) * net.weights[:, 0]
            return (left @ _khatri_rao(list(net.factors[half:])).T).reshape(-1)

        return cp
    if isinstance(net, TTNet):

        def tt() -> torch.Tensor:
            state = net.first  # (n, r): one row per prefix i_1
            for t in range(1, net.d - 1):
                core = net.core(t)  # (r, n, r)
                state = (state @ core.reshape(core.shape[0], -1)).reshape(-1, core.shape[2])
            return (state @ net.last[:, :, 0]).reshape(-1)

        return tt
    raise ConfigError(f"no coefficient scores for {type(net).__name__}")


def student_params(family: str, n: int, d: int, rank: int) -> int:
    """Trainable scalars of a one-output student (as the networks count them)."""
    if family == "cp":
        return d * n * rank + rank
    middle = 1 if family == "tt-shared" else d - 2
    return 2 * n * rank + middle * rank * n * rank


# --------------------------------------------------------------------------- #
# Jobs
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ScalingJob:
    """One fit: part ``fit`` (all inputs) or ``sample`` (``train_inputs`` of them)."""

    part: str
    n: int
    r: int
    d: int
    family: str
    rank: int
    seed: int
    method: str
    train_inputs: int
    cost: float

    def key(self) -> tuple[str, ...]:
        return tuple(str(v) for v in (self.part, self.n, self.r, self.d, self.family, self.rank,
                                      self.seed, self.method, self.train_inputs))  # fmt: skip


def row_key(row: Mapping[str, str]) -> tuple[str, ...]:
    """The job a CSV row belongs to (what :meth:`ScalingJob.key` gives)."""
    return tuple(str(row[c]) for c in ("part", "n", "r", "d", "family", "rank", "seed", "method",
                                       "train_inputs"))  # fmt: skip


def _fit_jobs(config: ScalingConfig, grid: TeacherGrid, d: int, seed: int) -> list[ScalingJob]:
    """The full-input fits of one teacher: each CP rank by every method that fits, TT at ``r``.

    Costs are rough multiply-add counts (with a per-step overhead), used only to order jobs.
    """
    n, r = grid.n, grid.r
    entries = n**d
    overhead = 2e5
    jobs = []
    for rank in grid.cp_ranks[d]:
        params = d * n * rank
        if entries <= LM_MAX_ENTRIES and entries * params <= config.lm_max_jacobian:
            cost = config.lm_restarts * config.lm_evaluations * (entries * params**2 / 4 + overhead)
            jobs.append(ScalingJob("fit", n, r, d, "cp", rank, seed, "lm", entries, cost))
        sweep = 3 * entries * rank + 3 * d * rank**3 + 50 * overhead
        sweeps = als_sweeps(config, entries, rank)
        jobs.append(ScalingJob("fit", n, r, d, "cp", rank, seed, "als", entries,
                               config.als_restarts * sweeps * sweep / 4))  # fmt: skip
        if entries * rank <= config.gradient_max_work:
            steps = config.adam_steps + 1.25 * config.lbfgs_iters
            jobs.append(ScalingJob("fit", n, r, d, "cp", rank, seed, "adam+lbfgs", entries,
                                   steps * (4 * entries * rank + 20 * overhead)))  # fmt: skip
    steps = config.adam_steps + 1.25 * config.lbfgs_iters
    for family in ("tt-shared", "tt"):
        if entries * r * r <= config.gradient_max_work:
            jobs.append(ScalingJob("fit", n, r, d, family, r, seed, "adam+lbfgs", entries,
                                   steps * (8 * entries * r * r + 40 * overhead)))  # fmt: skip
    return jobs


def _sample_jobs(samples: SampleGrid, seed: int) -> list[ScalingJob]:
    jobs = []
    for n, r, d, cp_rank in samples.teachers:
        # At least half of the inputs stay in the test set.
        for m in (m for m in samples.train_inputs if 2 * m <= n**d):
            batch = min(m, samples.batch)
            for family, rank in (("cp", cp_rank), ("tt-shared", r), ("tt", r)):
                width = rank if family == "cp" else 2 * rank * rank
                cost = samples.steps * (6 * batch * d * n * width + 40 * 2e5) + 4 * n**d * width
                jobs.append(ScalingJob("sample", n, r, d, family, rank, seed, "adam-minibatch", m, cost))
    return jobs


def plan_jobs(config: ScalingConfig) -> list[ScalingJob]:
    """Every job of the config, cheapest first (seeds of one point together)."""
    jobs = []
    for seed in config.seeds:
        for grid in config.teachers:
            for d in grid.orders:
                jobs += _fit_jobs(config, grid, d, seed)
        if config.samples is not None:
            jobs += _sample_jobs(config.samples, seed)
    return sorted(jobs, key=lambda j: (round(math.log10(j.cost), 1), j.part, j.n, j.d, j.family,
                                       j.rank, j.method, j.train_inputs, j.seed))  # fmt: skip


# --------------------------------------------------------------------------- #
# Running one job
# --------------------------------------------------------------------------- #


@dataclass
class Teacher:
    """One teacher instance and what every fit of it needs."""

    spec: TeacherSpec
    full: torch.Tensor  # (n,)*d float64
    sigmas: dict[str, torch.Tensor]


def load_teacher(n: int, r: int, d: int, seed: int) -> Teacher:
    """The ``tt-shared`` teacher of one row (teacher seed = the row's seed)."""
    spec = TeacherSpec("tt-shared", n, r, d, seed)
    full = teacher_tensor(spec).full()
    return Teacher(spec, full, singular_values(full))


def _run_cp_fitter(job: ScalingJob, teacher: Teacher, config: ScalingConfig) -> dict[str, Any]:
    array = teacher.full.numpy()
    if job.method == "lm":
        fit = fit_cp(array, job.rank, restarts=config.lm_restarts, max_evaluations=config.lm_evaluations,
                     seed=job.seed)  # fmt: skip
        return {"rel_error": fit.relative_error, "max_term_norm": fit.max_term_norm,
                "iterations": fit.restarts}  # fmt: skip
    fit = fit_cp_als(array, job.rank, restarts=config.als_restarts, stall=config.als_stall,
                     max_sweeps=als_sweeps(config, array.size, job.rank), seed=job.seed)  # fmt: skip
    return {"rel_error": fit.relative_error, "max_term_norm": fit.max_term_norm, "iterations": fit.sweeps}


def _run_gradient(job: ScalingJob, teacher: Teacher, config: ScalingConfig) -> dict[str, Any]:
    net = make_student(job.family, job.d, job.n, job.rank, job.seed)
    result = fit_student(net, torch.empty(0), teacher.full.reshape(-1), lr=config.lrs[job.family],
                         adam_steps=config.adam_steps, lbfgs_iters=config.lbfgs_iters,
                         predict=coefficient_scores(net))  # fmt: skip
    return {"rel_error": result.rel_error, "iterations": result.lbfgs_iters}


def train_on_samples(net: ScoreNetwork, teacher: Teacher, train_inputs: int, *, lr: float, steps: int,
                     batch: int, seed: int) -> tuple[float, float]:  # fmt: skip
    """Mini-batch Adam on ``train_inputs`` random inputs; (train error, test error on all others).

    The training inputs are the first ``train_inputs`` of one permutation per seed,
    so larger training sets contain the smaller ones. Batches are drawn with
    replacement from them; the rate decays by a cosine to zero. Errors are
    relative, ``‖A_S − A_T‖ / ‖A_T‖`` over the entries of each set.
    """
    n, d = teacher.spec.n, teacher.spec.d
    target = teacher.full.reshape(-1)
    order = torch.randperm(n**d, generator=torch.Generator().manual_seed(seed))
    train, test = order[:train_inputs], order[train_inputs:]
    digits = torch.stack([(train // n ** (d - 1 - k)) % n for k in range(d)], dim=1)
    phi = torch.nn.functional.one_hot(digits, n).to(torch.float64)
    y = target[train]
    mean_square = y.square().mean()
    balance_student(net, lambda: net.scores(phi)[:, 0], y)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    draws = torch.Generator().manual_seed(seed + 1)
    size = min(batch, train_inputs)
    for _ in range(steps):
        pick = torch.randint(0, train_inputs, (size,), generator=draws)
        opt.zero_grad(set_to_none=True)
        loss = (net.scores(phi[pick])[:, 0] - y[pick]).square().mean() / mean_square
        if not torch.isfinite(loss):
            break
        loss.backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        scores = coefficient_scores(net)()
    train_error = float((scores[train] - y).norm() / y.norm())
    test_error = float((scores[test] - target[test]).norm() / target[test].norm())
    return train_error, test_error


def run_job(job: ScalingJob, teacher: Teacher, config: ScalingConfig) -> dict[str, Any]:
    """Fit one job; the CSV row (formatted)."""
    start = time.perf_counter()
    row: dict[str, Any] = {"test_error": "", "max_term_norm": ""}
    if job.part == "sample":
        samples = config.samples
        assert samples is not None
        net = make_student(job.family, job.d, job.n, job.rank, job.seed)
        train_error, test_error = train_on_samples(
            net, teacher, job.train_inputs, lr=config.lrs[job.family], steps=samples.steps,
            batch=samples.batch, seed=job.seed)  # fmt: skip
        row.update(rel_error=train_error, test_error=f"{test_error:.6e}", iterations=samples.steps)
    elif job.method in ("lm", "als"):
        row.update(_run_cp_fitter(job, teacher, config))
        row["max_term_norm"] = f"{row['max_term_norm']:.4g}"
    else:
        row.update(_run_gradient(job, teacher, config))
    row.update({
        "part": job.part, "teacher": "tt-shared", "n": job.n, "r": job.r, "d": job.d,
        "family": job.family, "rank": job.rank, "seed": job.seed, "method": job.method,
        "train_inputs": job.train_inputs, "rel_error": f"{row['rel_error']:.6e}",
        "lower_bound": f"{lower_bound(teacher.sigmas, job.family, job.rank):.6e}",
        "params": student_params(job.family, job.n, job.d, job.rank),
        "seconds": f"{time.perf_counter() - start:.3f}",
    })  # fmt: skip
    return row


# --------------------------------------------------------------------------- #
# The experiment
# --------------------------------------------------------------------------- #


def teacher_facts_all(config: ScalingConfig) -> dict[str, Any]:
    """Per teacher instance: the odd/even rank (SVD, evidence), its gap and the CP bounds."""
    from tensorrnn.ranks.numerical import numerical_rank

    facts = {}
    for grid in config.teachers:
        for d in grid.orders:
            for seed in config.seeds:
                spec = TeacherSpec("tt-shared", grid.n, grid.r, d, seed)
                measured = numerical_rank(teacher_tensor(spec).matricize("odd-even"))
                facts[f"n{grid.n} r{grid.r} d{d} seed{seed}"] = {
                    "n": grid.n, "r": grid.r, "d": d, "seed": seed,
                    "odd_even_rank": measured.rank, "odd_even_gap": measured.gap,
                    "generic_odd_even_rank": spec.generic_odd_even_rank, "cp_upper": spec.cp_upper,
                    "cp_rank": spec.cp_upper if measured.rank >= spec.cp_upper else None,
                }  # fmt: skip
    return facts


def run_scaling(config: ScalingConfig, out_dir: str | Path, *, quiet: bool = False) -> list[dict[str, str]]:
    """Run every job not yet in ``out_dir/scaling.csv`` (cheapest first); return all its rows.

    The report is :func:`tensorrnn.teacher_scaling_report.write_report` of those rows
    (a floor above: the fits never wait on, or import, their presentation).

    The folder and settings are checked before anything is written; a killed run
    continues where it stopped when the same command is run again.
    """
    out = Path(out_dir)
    check_lab_folder(out, config.recorded(), csv_file=CSV_FILE, columns=COLUMNS, output_files=OUTPUT_FILES,
                     what="fits")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the output folder {out}: {error.strerror}") from None
    atomic_write_json(out / SETTINGS_FILE, config.recorded())
    store = RowStore(out / CSV_FILE, COLUMNS, row_key)
    if not (out / FACTS_FILE).exists() or not _facts_cover(out / FACTS_FILE, config):
        atomic_write_json(out / FACTS_FILE, teacher_facts_all(config))
    jobs = plan_jobs(config)
    todo = [job for job in jobs if job.key() not in store.done]
    if len(todo) < len(jobs) and not quiet:
        print(f"{len(jobs) - len(todo)} of {len(jobs)} fits already in {store.path}; skipping them")
    teachers: dict[tuple[int, ...], Teacher] = {}
    bar = tqdm(todo, desc="teacher-scaling", unit="fit", disable=quiet)
    for job in bar:
        bar.set_postfix_str(f"{job.part} n{job.n} d{job.d} {job.family} R{job.rank} {job.method} "
                            f"m{job.train_inputs} s{job.seed}")  # fmt: skip
        coords = (job.n, job.r, job.d, job.seed)
        if coords not in teachers:
            teachers[coords] = load_teacher(*coords)
        store.append(run_job(job, teachers[coords], config))
    bar.close()
    return store.rows


def _facts_cover(path: Path, config: ScalingConfig) -> bool:
    import json

    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    wanted = {f"n{g.n} r{g.r} d{d} seed{s}" for g in config.teachers for d in g.orders for s in config.seeds}
    return isinstance(stored, dict) and wanted <= set(stored)
