"""A teacher experiment that isolates rank: students fit a random TT teacher exactly.

The data set ``synthetic-tt`` mixes three things: the rank a student needs, the
features it must learn and the optimiser. Here only rank is left:

* the **teacher** is a random tensor ``A_T`` of family ``tt-shared`` (or ``tt``)
  with mode size ``n``, TT rank ``r`` and even order ``d``
  (:func:`tensorrnn.formats.random_tensor`, float64);
* the **inputs** are all ``n**d`` index tuples ``(i_1, …, i_d)``, read through
  one-hot features ``Φ_t = e_{i_t}``, so a student reads exactly what the
  teacher reads and its score on input ``i`` *is* its coefficient ``A_S[i]``;
* the **students** are the library's score networks (:class:`~tensorrnn.networks.CPNet`,
  ``TTNet(shared=False)``, ``TTNet(shared=True)``, one output, float64, exact
  :meth:`~tensorrnn.networks.ScoreNetwork.scores`), fitted by full-batch Adam
  and then L-BFGS to the relative error ``‖A_S − A_T‖_F / ‖A_T‖_F``.

What theory says before any training (:func:`teacher_facts`, :func:`lower_bound`):
every matricization of a CP tensor of rank ``R`` has rank ``≤ R``, so by
Eckart–Young a CP student of rank ``R`` has error at least
``sqrt(Σ_{j>R} σ_j²) / ‖A_T‖`` for the singular values ``σ`` of any
matricization of ``A_T``; a TT student of rank ``r`` obeys the same bound on
every sequential matricization ``(i_1..i_k | i_{k+1}..i_d)``. The bound is a
theorem, so a student's measured error can never fall below it. The teacher's
odd/even rank is measured on the instance (SVD, with its gap) and the family's
generic rank is certified over GF(p); the teacher's CP rank is at most
``r**(d−1)`` (expand the chain), so where both meet (``n ≥ r²``) the CP rank is
known exactly.

The learning rate is chosen per student family from a small set: one *tuning*
fit per rate at the family's probe rank (``r`` for TT students, the certified
odd/even rank for CP) with a seed outside the reported ones; the rate with the
lowest final error wins (errors below :data:`TIE_FLOOR` count as equal; ties go
to the lower error after the Adam phase, then to the rate listed first, so no
choice hinges on rounding).

Results on disk (:func:`run_teacher`): ``teacher.csv`` gets one row per fit as
soon as it ends, so a killed run resumes by running the same command again;
``settings.json`` records what decides the numbers (teacher, rates, steps), and
a rerun with other values is refused; ``teacher.json`` holds the teacher's
ranks and bounds; ``teacher.md`` and ``teacher.png`` are rebuilt from the CSV.
"""

from __future__ import annotations

import copy
import math
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from tensorrnn.atomic import atomic_save_figure, atomic_write_json, atomic_write_text
from tensorrnn.errors import ConfigError
from tensorrnn.formats import TensorFormat, parse_split, random_tensor
from tensorrnn.labkit import SETTINGS_FILE, RowStore, check_lab_folder
from tensorrnn.models import family_names, get_family, make_network
from tensorrnn.networks import CPNet, ScoreNetwork
from tensorrnn.ranks.bounds import effective_bonds, mincut_bound, theorem_bound
from tensorrnn.ranks.modp import DEFAULT_PRIME, exact_rank
from tensorrnn.ranks.numerical import numerical_rank

STUDENTS = family_names("student")
TEACHER_FAMILIES = family_names("teacher")
MAX_INPUTS = 65536
"""Largest ``n**d``: every input is scored at every step."""
EXACT = 1e-6
"""A fit with relative error below this counts as reaching the teacher (float64)."""
TIE_FLOOR = 1e-10
"""Tuning errors below this are equal: the choice of rate must not hinge on rounding."""
CERTIFY_DRAWS = 3

COLUMNS = [
    "stage", "family", "rank", "seed", "lr", "params", "rel_error", "adam_error",
    "lower_bound", "exact", "lbfgs_iters", "evals", "seconds",
]  # fmt: skip
CSV_FILE, FACTS_FILE = "teacher.csv", "teacher.json"
OUTPUT_FILES = (CSV_FILE, SETTINGS_FILE, FACTS_FILE, "teacher.md", "teacher.png")


# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class TeacherSpec:
    """The teacher tensor: ``random_tensor(family, n, r, d, seed=seed)``."""

    family: str = "tt-shared"
    n: int = 4
    r: int = 2
    d: int = 6
    seed: int = 0

    @property
    def generic_odd_even_rank(self) -> int:
        """``min(n, r)·min(n, r²)^(d/2−1)``: the generic odd/even rank of tt and tt-shared
        (certified for every setting tried so far, see the shared design notes)."""
        n, r, d = self.n, self.r, self.d
        return min(n, r) * min(n, r * r) ** (d // 2 - 1)

    @property
    def cp_upper(self) -> int:
        """``r^(d−1)``: expanding the chain over its ``d − 1`` bonds gives that many CP terms."""
        return self.r ** (self.d - 1)


@dataclass(frozen=True)
class TeacherConfig:
    """A validated experiment: the teacher, the students and how each is fitted."""

    teacher: TeacherSpec
    students: dict[str, tuple[int, ...]]
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    tune_seed: int
    tune_ranks: dict[str, int]
    adam_steps: int
    lbfgs_iters: int
    name: str = "teacher"
    out: str = "results/teacher"

    def recorded(self) -> dict[str, Any]:
        """What decides the numbers of a row (``settings.json``); the grid may grow."""
        return {
            "teacher": asdict(self.teacher),
            "lrs": list(self.lrs),
            "tune_seed": self.tune_seed,
            "tune_ranks": dict(sorted(self.tune_ranks.items())),
            "adam_steps": self.adam_steps,
            "lbfgs_iters": self.lbfgs_iters,
            "dtype": "float64",
            "features": "one-hot",
        }


CONFIG_KEYS = ("name", "out", "teacher", "students", "seeds", "lrs", "tune_seed", "tune_ranks",
               "adam_steps", "lbfgs_iters")  # fmt: skip


def _integer(value: object, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{what} = {value!r} must be an integer >= {low}")
    return int(value)


def _int_list(value: object, what: str, low: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{what} = {value!r} must be a non-empty list of integers, e.g. [1, 2, 3]")
    return tuple(sorted({_integer(v, what, low) for v in value}))


def load_config(values: Mapping[str, Any], source: str) -> TeacherConfig:
    """Validate a config mapping (from YAML); every problem is a one-line :class:`ConfigError`.

    Keys: ``teacher`` (``family``, ``n``, ``r``, ``d``, ``seed``), ``students``
    (family → list of ranks), ``seeds``, ``lrs``, ``tune_seed``, ``tune_ranks``
    (optional, family → rank), ``adam_steps``, ``lbfgs_iters``, ``name``, ``out``.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys to values")
    unknown = sorted(set(values) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                          f"known keys are {', '.join(CONFIG_KEYS)}")  # fmt: skip

    raw = values.get("teacher", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: teacher must be a mapping with family, n, r, d, seed")
    bad = sorted(set(raw) - {"family", "n", "r", "d", "seed"})
    if bad:
        raise ConfigError(f"{source}: unknown teacher key(s) {', '.join(bad)}; use family, n, r, d, seed")
    spec = TeacherSpec(**{k: raw[k] for k in raw})
    if spec.family not in TEACHER_FAMILIES:
        raise ConfigError(f"{source}: teacher family {spec.family!r} is not one of "
                          f"{', '.join(TEACHER_FAMILIES)}")  # fmt: skip
    n = _integer(spec.n, "teacher n", 2)
    r = _integer(spec.r, "teacher r", 1)
    d = _integer(spec.d, "teacher d", 2)
    _integer(spec.seed, "teacher seed", 0)
    if d % 2:
        raise ConfigError(f"{source}: teacher d = {d} is odd; the odd/even bound needs an even order")
    if n**d > MAX_INPUTS:
        raise ConfigError(f"{source}: n^d = {n}^{d} = {n**d} inputs is over {MAX_INPUTS}; "
                          "choose smaller n or d (every input is scored at every step)")  # fmt: skip

    students = values.get("students")
    if not isinstance(students, Mapping) or not students:
        raise ConfigError(f"{source}: students must map families ({', '.join(STUDENTS)}) to rank lists")
    for family in students:
        if family not in STUDENTS:
            raise ConfigError(f"{source}: unknown student family {family!r}; "
                              f"choose from {', '.join(STUDENTS)}")  # fmt: skip
    ranks = {f: _int_list(students[f], f"students.{f}", 1) for f in STUDENTS if f in students}

    lrs = values.get("lrs", [0.003, 0.01, 0.03])
    if isinstance(lrs, int | float) and not isinstance(lrs, bool):
        lrs = [lrs]
    if not isinstance(lrs, list) or not lrs or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 10 for v in lrs
    ):
        raise ConfigError(f"{source}: lrs = {lrs!r} must be a non-empty list of rates in (0, 10)")
    if len(set(lrs)) != len(lrs):
        raise ConfigError(f"{source}: lrs = {lrs!r} lists a rate twice")

    spec = TeacherSpec(spec.family, n, r, d, int(spec.seed))
    defaults = {"cp": spec.generic_odd_even_rank, "tt": r, "tt-shared": r}
    tune_raw = values.get("tune_ranks") or {}
    if not isinstance(tune_raw, Mapping) or any(f not in STUDENTS for f in tune_raw):
        raise ConfigError(f"{source}: tune_ranks must map student families to one rank each")
    tune_ranks = {f: _integer(tune_raw.get(f, defaults[f]), f"tune_ranks.{f}", 1) for f in ranks}

    seeds = _int_list(values.get("seeds", [0, 1, 2]), "seeds", 0)
    tune_seed = _integer(values.get("tune_seed", 100), "tune_seed", 0)
    if tune_seed in seeds:
        raise ConfigError(f"{source}: tune_seed {tune_seed} is also a reported seed; "
                          "pick one outside seeds so the rate is not tuned on reported fits")  # fmt: skip
    return TeacherConfig(
        teacher=spec,
        students=ranks,
        seeds=seeds,
        lrs=tuple(float(v) for v in lrs),
        tune_seed=tune_seed,
        tune_ranks=tune_ranks,
        adam_steps=_integer(values.get("adam_steps", 1000), "adam_steps", 0),
        lbfgs_iters=_integer(values.get("lbfgs_iters", 1000), "lbfgs_iters", 0),
        name=str(values.get("name", "teacher")),
        out=str(values.get("out", "results/teacher")),
    )


# --------------------------------------------------------------------------- #
# Teacher, inputs, bounds
# --------------------------------------------------------------------------- #


def teacher_tensor(spec: TeacherSpec) -> TensorFormat:
    """The float64 teacher instance."""
    return random_tensor(spec.family, spec.n, spec.r, spec.d, seed=spec.seed)


def one_hot_inputs(n: int, d: int) -> torch.Tensor:
    """All ``n**d`` inputs as one-hot features ``(n**d, d, n)``, float64.

    Input ``b`` is the index tuple of entry ``b`` of ``A.reshape(-1)`` (C order:
    the first mode most significant), so a student's score vector lines up with
    the flattened teacher.
    """
    grids = torch.meshgrid(*[torch.arange(n)] * d, indexing="ij")
    index = torch.stack([g.reshape(-1) for g in grids], dim=1)  # (n^d, d)
    return torch.nn.functional.one_hot(index, n).to(torch.float64)


def _splits(d: int) -> dict[str, tuple[int, ...]]:
    """The odd/even split and the ``d − 1`` sequential ones, as 0-based row modes."""
    splits = {"odd-even": parse_split("odd-even", d)}
    splits.update({f"1..{k}": tuple(range(k)) for k in range(1, d)})
    return splits


def singular_values(tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """Singular values of the odd/even and every sequential matricization of a full tensor.

    Values at the rounding level of the SVD, ``≤ σ_max · max(rows, cols) · eps``
    (the tolerance of :func:`~tensorrnn.ranks.numerical.numerical_rank`), are set
    to zero: they are noise, and a lower bound built from them would claim more
    than float64 knows (lowering a lower bound keeps it a lower bound).
    """
    d = tensor.ndim
    out = {}
    for name, rows in _splits(d).items():
        cols = tuple(k for k in range(d) if k not in rows)
        matrix = tensor.permute(*rows, *cols).reshape(math.prod(tensor.shape[k] for k in rows), -1)
        sigma = torch.linalg.svdvals(matrix)
        tol = float(sigma[0]) * max(matrix.shape) * torch.finfo(sigma.dtype).eps
        out[name] = torch.where(sigma > tol, sigma, torch.zeros_like(sigma))
    return out


def lower_bound(sigmas: Mapping[str, torch.Tensor], family: str, rank: int) -> float:
    """A proven lower bound on the relative error of any student of this family and rank.

    A CP tensor of rank ``R`` has every matricization of rank ``≤ R``; a TT (or
    TT with shared cores) of rank ``r`` has every sequential one ``(i_1..i_k | …)``
    of rank ``≤ r``. By Eckart–Young, ``‖A_S − A_T‖ ≥ sqrt(Σ_{j>R} σ_j²)`` for
    each such matricization of ``A_T``; the largest of these, divided by
    ``‖A_T‖``, is returned.
    """
    names = list(sigmas) if family == "cp" else [k for k in sigmas if k != "odd-even"]
    total = float(sigmas["odd-even"].square().sum())
    best = 0.0
    for name in names:
        tail = float(sigmas[name][rank:].square().sum())
        best = max(best, math.sqrt(tail / total))
    return best


def teacher_facts(spec: TeacherSpec, prime: int = DEFAULT_PRIME) -> dict[str, Any]:
    """Ranks and bounds of the teacher, before any student is trained.

    * ``odd_even_rank`` / ``odd_even_gap``: SVD rank of this float instance's
      odd/even matricization and ``σ_R / σ_{R+1}`` (evidence);
    * ``certified_rank``: the largest GF(p) rank over up to three integer
      instances of the family, a proof that the generic odd/even rank is at least
      that; ``mincut``: the tensor network's upper bound on it;
    * ``generic_formula``: ``min(n, r)·min(n, r²)^(d/2−1)``; ``theorem_bound``:
      ``min(n, r−1)^(d/2)`` (the thesis, shared cores; ``min(n, r)`` for tt);
    * ``cp_upper``: ``r^(d−1)``; ``cp_rank``: the teacher's CP rank when the
      instance's odd/even rank meets ``cp_upper`` (then it is exact), else ``None``.
    """
    tensor = teacher_tensor(spec)
    measured = numerical_rank(tensor.matricize("odd-even"))
    rows = parse_split("odd-even", spec.d)
    mincut = mincut_bound([spec.n] * spec.d, effective_bonds(spec.n, spec.r, spec.d), rows)
    certified = 0
    for draw in range(CERTIFY_DRAWS):
        instance = random_tensor(spec.family, spec.n, spec.r, spec.d, seed=1000 + draw, modulus=prime)
        certified = max(certified, exact_rank(instance.matricize("odd-even"), prime))
        if certified >= mincut:
            break
    full = tensor.full()
    sigmas = singular_values(full)
    return {
        "teacher": asdict(spec),
        "entries": spec.n**spec.d,
        "norm": float(full.norm()),
        "params": _teacher_params(spec),
        "odd_even_rank": measured.rank,
        "odd_even_gap": measured.gap,
        "odd_even_sigma": [float(s) for s in sigmas["odd-even"]],
        "certified_rank": certified,
        "certified_prime": prime,
        "mincut": mincut,
        "generic_formula": spec.generic_odd_even_rank,
        "theorem_bound": theorem_bound(spec.n, spec.r, spec.d, shared=spec.family == "tt-shared"),
        "cp_upper": spec.cp_upper,
        "cp_rank": spec.cp_upper if measured.rank >= spec.cp_upper else None,
    }


def _teacher_params(spec: TeacherSpec) -> int:
    n, r, d = spec.n, spec.r, spec.d
    middle = n * r * r if spec.family == "tt-shared" else (d - 2) * n * r * r
    return 2 * n * r + middle


# --------------------------------------------------------------------------- #
# Students and their fit
# --------------------------------------------------------------------------- #


def student_seed(seed: int, family: str, rank: int) -> int:
    """Initialisation seed of one student: a literal function of its coordinates."""
    return zlib.crc32(f"{seed}|{family}|{rank}".encode())


def make_student(family: str, d: int, n: int, rank: int, seed: int) -> ScoreNetwork:
    """A float64 student with one output, Gaussian initialisation from ``seed``."""
    gen = torch.Generator().manual_seed(student_seed(seed, get_family(family, "student").name, rank))
    return make_network(family, d, n, rank, 1, generator=gen).double()


@torch.no_grad()
def balance_student(net: ScoreNetwork, predict: Callable[[], torch.Tensor], target: torch.Tensor) -> None:
    """Scale the initial student so that ``‖A_S‖ = ‖A_T‖``.

    The networks' initialisation assumes features of unit root-mean-square; one-hot
    features have ``1/√n``, so the initial scores would be about ``n^(−d/2)`` of
    the teacher's. Every per-position parameter (CP factors; TT first, middle and
    last cores) is multiplied by ``c = (‖A_T‖ / ‖A_S‖)^(1/d)``: each of the ``d``
    positions contributes one factor ``c``.
    """
    scale = float(predict().norm() / target.norm())
    if not math.isfinite(scale) or scale <= 0:
        return
    c = scale ** (-1.0 / net.d)
    params = [net.factors] if isinstance(net, CPNet) else [net.first, net.middle, net.last]
    for p in params:
        p.mul_(c)


@dataclass
class FitResult:
    """Outcome of one fit; errors are ``‖A_S − A_T‖_F / ‖A_T‖_F``."""

    rel_error: float
    adam_error: float
    lbfgs_iters: int
    evals: int
    seconds: float


def fit_student(
    net: ScoreNetwork,
    phi: torch.Tensor,
    target: torch.Tensor,
    *,
    lr: float,
    adam_steps: int,
    lbfgs_iters: int,
    predict: Callable[[], torch.Tensor] | None = None,
) -> FitResult:
    """Fit ``net.scores(phi)[:, 0]`` to ``target`` on the full batch: Adam, then L-BFGS.

    ``predict``, when given, computes the same scores another way (for example
    the student's coefficient tensor built from its parameters, which equals the
    scores on one-hot inputs at a fraction of the cost); ``phi`` is then unused.
    The loss is ``½ ‖A_S − A_T‖² / ‖A_T‖²``. Adam runs ``adam_steps`` with a
    cosine decay of ``lr`` to zero; L-BFGS (strong Wolfe line search, history
    100) then runs at most ``lbfgs_iters`` iterations. If L-BFGS ends worse or
    not finite, the Adam parameters are kept.
    """
    start = time.perf_counter()
    norm2 = target.square().sum()
    evals = 0
    if predict is None:

        def predict() -> torch.Tensor:
            return net.scores(phi)[:, 0]

    def loss() -> torch.Tensor:
        nonlocal evals
        evals += 1
        return 0.5 * (predict() - target).square().sum() / norm2

    @torch.no_grad()
    def error() -> float:
        return float((predict() - target).norm() / target.norm())

    balance_student(net, predict, target)
    params = list(net.parameters())
    if adam_steps:
        opt = torch.optim.Adam(params, lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, adam_steps)
        for _ in range(adam_steps):
            opt.zero_grad(set_to_none=True)
            value = loss()
            if not torch.isfinite(value):
                break
            value.backward()
            opt.step()
            schedule.step()
    adam_error = error()
    iters = 0
    if lbfgs_iters and math.isfinite(adam_error):
        kept = copy.deepcopy(net.state_dict())
        lbfgs = torch.optim.LBFGS(
            params, lr=1.0, max_iter=lbfgs_iters, max_eval=lbfgs_iters * 5 // 4 + 1,
            history_size=100, line_search_fn="strong_wolfe",
            tolerance_grad=1e-15, tolerance_change=1e-24,
        )  # fmt: skip

        def closure() -> torch.Tensor:
            lbfgs.zero_grad(set_to_none=True)
            value = loss()
            value.backward()
            return value

        lbfgs.step(closure)
        iters = int(lbfgs.state[params[0]].get("n_iter", 0))
        final = error()
        if not math.isfinite(final) or final > adam_error:
            net.load_state_dict(kept)
    return FitResult(error(), adam_error, iters, evals, time.perf_counter() - start)


# --------------------------------------------------------------------------- #
# Jobs and the results store
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Job:
    """One fit: a tuning fit (one per rate) or a reported fit (rate chosen by tuning)."""

    stage: str  # "tune" or "fit"
    family: str
    rank: int
    seed: int
    lr: float | None = field(default=None)

    def key(self) -> tuple[str, ...]:
        lr = "" if self.stage == "fit" else repr(float(self.lr))
        return (self.stage, self.family, str(self.rank), str(self.seed), lr)


def _row_key(row: Mapping[str, str]) -> tuple[str, ...]:
    lr = "" if row["stage"] == "fit" else repr(float(row["lr"]))
    return (row["stage"], row["family"], str(row["rank"]), str(row["seed"]), lr)


def plan_jobs(config: TeacherConfig) -> tuple[list[Job], list[Job]]:
    """Tuning jobs (one per family and rate) and reported jobs (family × rank × seed)."""
    tune = [Job("tune", f, config.tune_ranks[f], config.tune_seed, lr)
            for f in config.students for lr in config.lrs]  # fmt: skip
    fits = [Job("fit", f, rank, seed) for f, ranks in config.students.items()
            for rank in ranks for seed in config.seeds]  # fmt: skip
    return tune, fits


def choose_lr(rows: Sequence[Mapping[str, str]], family: str, lrs: Sequence[float]) -> float | None:
    """The rate of a family: the lowest final tuning error, then the lowest Adam-phase error.

    Errors below :data:`TIE_FLOOR` count as equal (so two fits that both reach
    the teacher tie, and the one whose Adam phase got there wins over one that
    needed L-BFGS); a remaining tie goes to the rate listed first. ``None`` while
    a tuning fit of the family is missing.
    """
    scores = {}
    for row in rows:
        if row["stage"] == "tune" and row["family"] == family:
            scores[float(row["lr"])] = tuple(
                math.inf if math.isnan(e) else max(e, TIE_FLOOR)
                for e in (float(row["rel_error"]), float(row["adam_error"]))
            )
    if any(lr not in scores for lr in lrs):
        return None
    return min(lrs, key=lambda lr: scores[lr])  # min keeps the first of equal scores


# --------------------------------------------------------------------------- #
# The experiment
# --------------------------------------------------------------------------- #


def run_teacher(config: TeacherConfig, out_dir: str | Path, *, quiet: bool = False) -> Path:
    """Run every fit not yet in ``out_dir/teacher.csv``; write the table and the figure.

    Settings and the output folder are checked before anything is written; then
    ``settings.json`` and ``teacher.json`` are written, the tuning fits run, the
    rate of each family is chosen, and the reported fits run, each appended to
    the CSV as it ends.

    Returns
    -------
    Path
        The output folder.

    Raises
    ------
    ConfigError
        A bad output folder, or one holding fits made with other settings.
    """
    out = Path(out_dir)
    check_lab_folder(out, config.recorded(), csv_file=CSV_FILE, columns=COLUMNS, output_files=OUTPUT_FILES,
                     what="fits")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the output folder {out}: {error.strerror}") from None
    atomic_write_json(out / SETTINGS_FILE, config.recorded())
    spec = config.teacher
    facts = teacher_facts(spec)
    atomic_write_json(out / FACTS_FILE, facts)
    store = RowStore(out / CSV_FILE, COLUMNS, _row_key)

    full = teacher_tensor(spec).full()
    target = full.reshape(-1)
    phi = one_hot_inputs(spec.n, spec.d)
    sigmas = singular_values(full)

    tune, fits = plan_jobs(config)
    todo = [job for job in tune + fits if job.key() not in store.done]
    skipped = len(tune) + len(fits) - len(todo)
    if skipped and not quiet:
        print(f"{skipped} of {len(tune) + len(fits)} fits already in {store.path}; skipping them")
    bar = tqdm(todo, desc="teacher", unit="fit", disable=quiet)
    for job in bar:
        if job.stage == "fit":
            lr = choose_lr(store.rows, job.family, config.lrs)
            if lr is None:  # pragma: no cover - tuning jobs come first
                raise RuntimeError(f"no tuning rows for {job.family}")
        else:
            lr = float(job.lr)
        bar.set_postfix_str(f"{job.stage} {job.family} r{job.rank} s{job.seed} lr{lr:g}")
        net = make_student(job.family, spec.d, spec.n, job.rank, job.seed)
        result = fit_student(net, phi, target, lr=lr, adam_steps=config.adam_steps,
                             lbfgs_iters=config.lbfgs_iters)  # fmt: skip
        store.append({
            "stage": job.stage, "family": job.family, "rank": job.rank, "seed": job.seed,
            "lr": repr(lr), "params": net.num_parameters(),
            "rel_error": f"{result.rel_error:.6e}", "adam_error": f"{result.adam_error:.6e}",
            "lower_bound": f"{lower_bound(sigmas, job.family, job.rank):.6e}",
            "exact": int(result.rel_error < EXACT), "lbfgs_iters": result.lbfgs_iters,
            "evals": result.evals, "seconds": f"{result.seconds:.3f}",
        })  # fmt: skip
    bar.close()
    write_table(store.rows, facts, config, out / "teacher.md")
    write_plot(store.rows, facts, out / "teacher.png")
    return out


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


@dataclass
class Summary:
    """The reported fits of one (family, rank)."""

    family: str
    rank: int
    params: int
    lr: float
    lower_bound: float
    errors: list[float]
    seconds: list[float]

    @property
    def mean(self) -> float:
        return sum(self.errors) / len(self.errors)

    @property
    def std(self) -> float:
        if len(self.errors) < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((e - m) ** 2 for e in self.errors) / (len(self.errors) - 1))

    @property
    def median(self) -> float:
        ordered = sorted(self.errors)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    @property
    def exact(self) -> int:
        return sum(e < EXACT for e in self.errors)


def summarize(rows: Sequence[Mapping[str, str]]) -> list[Summary]:
    """Reported fits grouped by (family, rank), in the order cp, tt-shared, tt."""
    groups: dict[tuple[str, int], list[Mapping[str, str]]] = defaultdict(list)
    for row in rows:
        if row["stage"] == "fit":
            groups[(row["family"], int(row["rank"]))].append(row)
    out = [
        Summary(family, rank, int(m[0]["params"]), float(m[0]["lr"]), float(m[0]["lower_bound"]),
                [float(x["rel_error"]) for x in m], [float(x["seconds"]) for x in m])
        for (family, rank), m in groups.items()
    ]  # fmt: skip
    out.sort(key=lambda s: (STUDENTS.index(s.family), s.rank))
    return out


def write_table(rows: Sequence[Mapping[str, str]], facts: Mapping[str, Any],
                config: TeacherConfig, path: Path) -> Path:  # fmt: skip
    """``teacher.md``: the teacher's ranks, the chosen rates, mean ± std per family and rank."""
    t = facts["teacher"]
    cp_rank = facts["cp_rank"]
    if cp_rank is not None:
        cp_text = (f"exactly **{cp_rank}** (odd/even rank of the instance = r^(d−1), the number of "
                   "terms of the expanded chain)")  # fmt: skip
    else:
        cp_text = f"between {facts['odd_even_rank']} (odd/even rank) and {facts['cp_upper']} (r^(d−1))"
    lines = [
        f"# Teacher experiment: {t['family']} teacher, n = {t['n']}, r = {t['r']}, d = {t['d']}",
        "",
        f"Teacher: `random_tensor({t['family']!r}, n={t['n']}, r={t['r']}, d={t['d']}, seed={t['seed']})`, "
        f"float64, {facts['params']} parameters, {facts['entries']} entries (every input is fitted), "
        f"‖A_T‖_F = {facts['norm']:.4g}. Inputs are one-hot, so a student's scores are its "
        "coefficient tensor A_S; error = ‖A_S − A_T‖_F / ‖A_T‖_F.",
        "",
        f"- odd/even rank of this instance (SVD, evidence): **{facts['odd_even_rank']}** "
        f"(gap σ_R/σ_R+1 = {facts['odd_even_gap']:.3g})",
        f"- certified generic odd/even rank of the family (GF({facts['certified_prime']}), integer "
        f"instances): ≥ {facts['certified_rank']}; min-cut upper bound {facts['mincut']}; formula "
        f"min(n, r)·min(n, r²)^(d/2−1) = {facts['generic_formula']}",
        f"- the theorem's bound min(n, r−1)^(d/2) = {facts['theorem_bound']}",
        f"- CP rank of the teacher: {cp_text}",
        "",
        f"Fits: full batch, {config.adam_steps} Adam steps (cosine decay), then at most "
        f"{config.lbfgs_iters} L-BFGS iterations (strong Wolfe), float64, seeds "
        f"{', '.join(map(str, config.seeds))}. Learning rate per family: one tuning fit per rate in "
        f"{{{', '.join(f'{v:g}' for v in config.lrs)}}} at the probe rank with seed {config.tune_seed} "
        "(not reported below); the lowest final error wins, errors below "
        f"{TIE_FLOOR:g} tie and ties go to the lower error after the Adam phase, then to the first "
        "rate listed.",
        "",
        "| family | probe rank | " + " | ".join(f"lr {v:g}" for v in config.lrs) + " | chosen |",
        "|---|---|" + "---|" * len(config.lrs) + "---|",
    ]
    for family in config.students:
        tuned = {float(r["lr"]): float(r["rel_error"]) for r in rows
                 if r["stage"] == "tune" and r["family"] == family}  # fmt: skip
        chosen = choose_lr(rows, family, config.lrs)
        cells = " | ".join(f"{tuned[v]:.2e}" if v in tuned else "–" for v in config.lrs)
        lines.append(f"| {family} | {config.tune_ranks[family]} | {cells} | "
                     f"{'–' if chosen is None else f'{chosen:g}'} |")  # fmt: skip
    lines += [
        "",
        "Lower bound: the largest Eckart–Young tail sqrt(Σ_{j>R} σ_j²)/‖A_T‖ over the odd/even and "
        "the sequential matricizations (CP), or over the sequential ones (TT), a theorem: no student "
        f"of that rank can do better. *exact* counts seeds with error < {EXACT:g}.",
        "",
        "| family | rank | params | lr | lower bound | error mean ± std | median | min | max | exact "
        "| s/fit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summarize(rows):
        lines.append(
            f"| {s.family} | {s.rank} | {s.params} | {s.lr:g} | {s.lower_bound:.2e} | "
            f"{s.mean:.2e} ± {s.std:.1e} | {s.median:.2e} | {min(s.errors):.2e} | {max(s.errors):.2e} | "
            f"{s.exact}/{len(s.errors)} | {sum(s.seconds) / len(s.seconds):.1f} |"
        )
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def write_plot(rows: Sequence[Mapping[str, str]], facts: Mapping[str, Any], path: Path) -> Path:
    """``teacher.png``: error against rank and against parameters (log-y), bounds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    t = facts["teacher"]
    summaries = summarize(rows)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2))
    colors = {"cp": "tab:red", "tt-shared": "tab:blue", "tt": "tab:green"}
    markers = {"cp": "D", "tt-shared": "s", "tt": "o"}
    shift = {"cp": 1.0, "tt-shared": 0.94, "tt": 1.06}  # keep overlapping points apart
    floor = 1e-17
    marks = [(facts["theorem_bound"], "theorem min(n, r−1)^(d/2)", ":"),
             (facts["certified_rank"], "certified generic odd/even rank", "--")]  # fmt: skip
    for ax, xkey in zip(axes, ("rank", "params"), strict=True):
        for family in STUDENTS:
            group = [s for s in summaries if s.family == family]
            if not group:
                continue
            xs = [getattr(s, xkey) * shift[family] for s in group]
            ax.plot(xs, [max(s.median, floor) for s in group], marker=markers[family],
                    color=colors[family], label=f"{family} (median of seeds; dots: each seed)")  # fmt: skip
            for s, x in zip(group, xs, strict=True):
                ax.scatter([x] * len(s.errors), [max(e, floor) for e in s.errors], s=12,
                           color=colors[family], alpha=0.45)  # fmt: skip
            if family == "cp":
                pos = [(x, s.lower_bound) for s, x in zip(group, xs, strict=True) if s.lower_bound > 0]
                if pos:
                    ax.plot(*zip(*pos, strict=True), color="black", linestyle="--", linewidth=1,
                            label="cp lower bound (Eckart–Young; 0 beyond)")  # fmt: skip
        cp = {s.rank: s.params for s in summaries if s.family == "cp"}
        for value, label, style in marks:
            if value is None:
                continue
            x = value
            if xkey == "params":
                if value not in cp:
                    continue
                x, label = cp[value], f"cp params at rank {value}: {label}"
            ax.axvline(x, color="gray", linestyle=style, linewidth=1, label=f"{label} = {value}")
        ax.set_xscale("log", base=2 if xkey == "rank" else 10)
        if xkey == "rank":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_yscale("log")
        ax.set_xlabel("student rank" if xkey == "rank" else "student parameters")
        ax.set_ylabel("‖A_S − A_T‖ / ‖A_T‖")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.suptitle(f"Students fitting a {t['family']} teacher (n={t['n']}, r={t['r']}, d={t['d']}, "
                 f"{facts['entries']} inputs, one-hot features)")  # fmt: skip
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    return path


__all__ = [
    "COLUMNS",
    "FitResult",
    "Job",
    "TeacherConfig",
    "TeacherSpec",
    "choose_lr",
    "fit_student",
    "load_config",
    "lower_bound",
    "make_student",
    "one_hot_inputs",
    "plan_jobs",
    "run_teacher",
    "singular_values",
    "teacher_facts",
    "teacher_tensor",
]
