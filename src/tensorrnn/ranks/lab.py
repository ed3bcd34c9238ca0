"""The rank laboratory: sweep families and sizes, measure, certify, bound, report.

One *job* is one instance of (family, n, r, d, split, trial). For it the sweep
measures

* ``float``: the SVD rank of a Gaussian float64 instance, with the singular
  value gap (evidence only), and, for tiny tensors, an exact CP fit of that
  same instance (an upper bound on its CP rank);
* ``exact``: the rank over GF(p) of an integer instance, a certified lower bound
  on the generic matricization rank of the family. An instance whose exact rank
  falls below the min-cut upper bound may be non-generic, so up to
  ``max_draws`` instances are drawn and the largest rank is kept (still a
  certificate: every instance's rank is a lower bound).

Rows are appended to ``ranks.csv`` as soon as a job ends, so a sweep killed at
any moment resumes by running the same command again; ``ranks.md`` and
``ranks.png`` and ``ranks_status.png`` are rebuilt from the whole CSV.

Resuming is safe only with the settings that produced the stored numbers, so
the output folder records them in ``settings.json`` (:func:`recorded_settings`:
base seed, methods, and, where they matter, cp_fit, engine, prime and
max_draws). A run whose settings differ is refused with a
:class:`SettingsMismatchError` before anything is written; the grid (families,
sizes, split, trials) may differ, since adding jobs to a folder is what resuming
is for. A folder written before ``settings.json`` existed (a ``ranks.csv``
without it) is accepted only if its rows agree with the run's settings (seeds
recomputed from the base seed, engine, prime, methods, whether a CP fit was
tried, the number of draws) and is then given its ``settings.json``.
"""

from __future__ import annotations

import operator
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from tensorrnn.devices import resolve_device
from tensorrnn.errors import ConfigError
from tensorrnn.formats import (
    FAMILIES,
    check_fits,
    check_sizes,
    default_memory_limit,
    matrix_shape,
    parse_split,
    random_tensor,
    split_label,
)
from tensorrnn.labkit import SETTINGS_FILE, RowStore, SettingsGuard
from tensorrnn.labkit import check_output_folder as check_lab_output
from tensorrnn.labkit import read_rows as read_lab_rows
from tensorrnn.ranks.bounds import (
    family_mincut,
    theorem_bound,
)
from tensorrnn.ranks.cpfit import MAX_ENTRIES, cp_upper_bound
from tensorrnn.ranks.modp import DEFAULT_PRIME, check_prime, exact_rank
from tensorrnn.ranks.numerical import numerical_rank

COLUMNS = [
    "family", "n", "r", "d", "split", "trial", "seed", "method", "evidence", "rank", "gap",
    "bound_q_rm1", "bound_q_r", "mincut", "cp_upper", "cp_fit_error", "cp_term_norm",
    "engine", "prime", "draws", "rows", "cols", "flag", "seconds",
]  # fmt: skip
KEY_COLUMNS = ("family", "n", "r", "d", "split", "trial", "method")
METHODS = ("float", "exact")
ENGINES = ("blas", "flint")
CSV_FILE = "ranks.csv"
OUTPUT_FILES = (CSV_FILE, SETTINGS_FILE, "ranks.md", "ranks.png", "ranks_status.png", "ranks_periodic.png")

# Exact CP fits are tried only where they take seconds: dense Jacobians of at
# most MAX_ENTRIES rows and this many unknowns.
CP_FIT_MAX_PARAMS = 160
CP_FIT_EXTRA_RANKS = 2


@dataclass(frozen=True)
class RankJob:
    """One instance of the sweep."""

    family: str
    n: int
    r: int
    d: int
    split: str
    trial: int

    @property
    def row_modes(self) -> tuple[int, ...]:
        return parse_split(self.split, self.d)

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return matrix_shape([self.n] * self.d, self.row_modes)

    def instance_seed(self, base_seed: int, kind: str, draw: int = 0) -> int:
        """A seed that depends on every coordinate of the job, stable across runs."""
        text = f"{base_seed}|{self.family}|{self.n}|{self.r}|{self.d}|{self.trial}|{kind}|{draw}"
        return zlib.crc32(text.encode())

    def mincut(self) -> int:
        # Periodic families are rings: their cut crosses two bonds (bounds.ring_mincut_bound).
        return family_mincut(self.family, self.n, self.r, self.d, self.row_modes)

    def cp_fit_applies(self, rank: int) -> bool:
        """Whether an exact CP fit is tried for an instance of this matricization rank."""
        return self.n**self.d <= MAX_ENTRIES and rank * self.n * self.d <= CP_FIT_MAX_PARAMS


@dataclass(frozen=True)
class SweepSettings:
    """How each job is measured."""

    methods: tuple[str, ...] = METHODS
    seed: int = 0
    engine: str = "blas"
    prime: int = DEFAULT_PRIME
    device: str = "cpu"
    cp_fit: bool = True
    max_draws: int = 3
    max_bytes: int | None = None


def check_settings(settings: SweepSettings) -> None:
    """Refuse unknown methods or engines, a bad prime, device or draw count.

    Raises
    ------
    ConfigError
        Naming the bad value and the valid choices.
    """
    if not settings.methods:
        raise ConfigError(f"no method given; choose from {', '.join(METHODS)}")
    for method in settings.methods:
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if settings.engine not in ENGINES:
        raise ConfigError(f"unknown engine {settings.engine!r}; choose blas or flint")
    if "exact" in settings.methods:
        check_prime(settings.prime, settings.engine)
    if isinstance(settings.max_draws, bool) or not isinstance(settings.max_draws, int) \
            or settings.max_draws < 1:  # fmt: skip
        raise ConfigError(f"max_draws = {settings.max_draws!r} must be a positive integer")
    if isinstance(settings.seed, bool) or not hasattr(settings.seed, "__index__"):
        raise ConfigError(f"seed = {settings.seed!r} must be an integer")
    if settings.max_bytes is not None and settings.max_bytes <= 0:
        raise ConfigError(f"max_bytes = {settings.max_bytes} must be positive")
    resolve_device(settings.device)


def recorded_settings(settings: SweepSettings) -> dict[str, object]:
    """The settings that decide the numbers of a row, as ``settings.json`` holds them.

    Always the base seed and the methods (in :data:`METHODS` order); ``cp_fit``
    only with the float method; ``engine``, ``prime`` and ``max_draws`` only with
    the exact one. ``device`` and ``max_bytes`` are left out: float ranks are
    evidence (each row names its SVD device) and the memory limit only refuses.
    """
    methods = [m for m in METHODS if m in settings.methods]
    # Plain Python values: numpy integers would neither compare with nor dump to JSON.
    recorded: dict[str, object] = {"seed": operator.index(settings.seed), "methods": methods}
    if "float" in methods:
        recorded["cp_fit"] = bool(settings.cp_fit)
    if "exact" in methods:
        recorded.update(engine=settings.engine, prime=operator.index(settings.prime),
                        max_draws=operator.index(settings.max_draws))  # fmt: skip
    return recorded


def default_grid() -> list[RankJob]:
    """The default sweep: tt, tt-shared, tt-uniform; n in 2..4; r in 2..5; even d
    from 4 while n**(d/2) <= 1024; 3 trials; odd-even split."""
    jobs = []
    for family in ("tt", "tt-shared", "tt-uniform"):
        for n in (2, 3, 4):
            for r in (2, 3, 4, 5):
                d = 4
                while n ** (d // 2) <= 1024:
                    jobs.extend(RankJob(family, n, r, d, "odd-even", t) for t in range(3))
                    d += 2
    return jobs


def make_grid(
    families: Sequence[str],
    ns: Sequence[int],
    rs: Sequence[int],
    ds: Sequence[int],
    split: str,
    trials: int,
    max_side: int | None = None,
) -> list[RankJob]:
    """All jobs of a grid, validated up front (names, sizes, splits).

    ``max_side`` drops grid points whose matrix has more rows or columns than
    that, so one grid can span mode sizes with different reachable orders.
    """
    if trials < 1:
        raise ConfigError(f"trials = {trials}: every setting needs at least 1 trial")
    for family in families:
        if family not in FAMILIES:
            raise ConfigError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    jobs = []
    for family in families:
        for n in ns:
            for r in rs:
                for d in ds:
                    check_sizes(family, n, r, d)
                    parse_split(split, d)
                    point = [RankJob(family, n, r, d, split_label(split), t) for t in range(trials)]
                    if max_side is None or max(point[0].matrix_shape) <= max_side:
                        jobs.extend(point)
    if not jobs and max_side is not None:
        raise ConfigError(f"no grid point has a matrix side <= {max_side}; raise the side limit")
    if not jobs:
        raise ConfigError("the grid is empty; give at least one family, n, r and d")
    return jobs


def bytes_per_entry(settings: SweepSettings) -> int:
    # The exact path holds the int64 matrix and one float64 working copy.
    return 16 if "exact" in settings.methods else 8


def job_bytes(job: RankJob, settings: SweepSettings) -> int:
    """The memory the matrices of ``job`` need (what a Ray task asks its node for)."""
    rows, cols = job.matrix_shape
    return rows * cols * bytes_per_entry(settings)


def check_memory(jobs: Iterable[RankJob], settings: SweepSettings) -> None:
    """Refuse the whole sweep before it starts if one matrix would not fit."""
    limit = settings.max_bytes if settings.max_bytes is not None else default_memory_limit()
    for job in jobs:
        rows, cols = job.matrix_shape
        check_fits(
            rows * cols,
            bytes_per_entry(settings),
            limit,
            f"the {rows}x{cols} matricization of {job.family} n={job.n} r={job.r} d={job.d}",
        )


# --------------------------------------------------------------------------- #
# Measuring one job
# --------------------------------------------------------------------------- #


def _bounds(job: RankJob) -> dict[str, object]:
    rows, cols = job.matrix_shape
    return {
        "bound_q_rm1": theorem_bound(job.n, job.r, job.d, shared=True),
        "bound_q_r": theorem_bound(job.n, job.r, job.d, shared=False),
        "mincut": job.mincut(),
        "rows": rows,
        "cols": cols,
    }


def _base_row(job: RankJob) -> dict[str, object]:
    return {
        "family": job.family, "n": job.n, "r": job.r, "d": job.d, "split": job.split,
        "trial": job.trial,
    }  # fmt: skip


def measure_float(job: RankJob, settings: SweepSettings) -> dict[str, object]:
    """SVD rank of a Gaussian instance, and an exact CP fit where it is cheap."""
    start = time.perf_counter()
    seed = job.instance_seed(settings.seed, "float")
    tensor = random_tensor(job.family, job.n, job.r, job.d, seed=seed)
    matrix = tensor.matricize(job.split, max_bytes=settings.max_bytes)
    measured = numerical_rank(matrix, device=settings.device)
    row = {
        **_base_row(job), **_bounds(job), "seed": seed, "method": "float",
        "evidence": "numerical", "rank": measured.rank, "gap": f"{measured.gap:.3g}",
        "engine": f"svd-{resolve_device(settings.device).type}",
    }  # fmt: skip
    if settings.cp_fit and job.cp_fit_applies(measured.rank):
        # The instance's CP rank is at least its matricization rank: start there.
        lowest = max(measured.rank, 1)
        ranks = range(lowest, lowest + CP_FIT_EXTRA_RANKS + 1)
        upper, fit = cp_upper_bound(tensor.full().numpy(), ranks, seed=seed)
        row["cp_upper"] = "" if upper is None else upper
        if fit is not None:
            row["cp_fit_error"] = f"{fit.relative_error:.2e}"
            row["cp_term_norm"] = f"{fit.max_term_norm:.3g}"
        if upper is None:
            row["flag"] = f"no CP fit found at ranks {ranks.start}..{ranks.stop - 1}"
    row["seconds"] = f"{time.perf_counter() - start:.4f}"
    return row


def measure_exact(job: RankJob, settings: SweepSettings) -> dict[str, object]:
    """Rank over GF(p) of integer instances: a certified lower bound."""
    start = time.perf_counter()
    mincut = job.mincut()
    ranks, seeds = [], []
    for draw in range(settings.max_draws):
        seed = job.instance_seed(settings.seed, "exact", draw)
        tensor = random_tensor(job.family, job.n, job.r, job.d, seed=seed, modulus=settings.prime)
        matrix = tensor.matricize(job.split, max_bytes=settings.max_bytes)
        ranks.append(exact_rank(matrix, settings.prime, engine=settings.engine))
        seeds.append(seed)
        if ranks[-1] >= mincut:
            break
    best = max(range(len(ranks)), key=lambda i: ranks[i])
    flag = ""
    if min(ranks) < ranks[best]:
        flag = f"non-generic draw: ranks {ranks} over {len(ranks)} instances, kept the largest"
    return {
        **_base_row(job), **_bounds(job), "seed": seeds[best], "method": "exact",
        "evidence": "certified", "rank": ranks[best], "engine": settings.engine,
        "prime": settings.prime, "draws": len(ranks), "flag": flag,
        "seconds": f"{time.perf_counter() - start:.4f}",
    }  # fmt: skip


def measure_job(
    job: RankJob, settings: SweepSettings, methods: Sequence[str]
) -> dict[str, dict[str, object]]:
    """The rows of ``job`` for ``methods`` (``float`` and/or ``exact``), keyed by method.

    A pure function of its arguments (every instance seed derives from the job and
    ``settings.seed``), so it runs on whichever process or node an executor picks.
    """
    return {m: (measure_float if m == "float" else measure_exact)(job, settings) for m in methods}


class RankExecutor(Protocol):
    """Where a sweep's instances are measured: here (:class:`MeasureHere`) or on a Ray
    cluster (``cluster.MeasureOnRay``)."""

    def check(self, jobs: Sequence[RankJob], settings: SweepSettings) -> None:
        """Refuse what cannot run (before the sweep writes anything)."""

    def __call__(
        self, pending: Sequence[tuple[RankJob, tuple[str, ...]]], settings: SweepSettings
    ) -> Iterator[tuple[RankJob, dict[str, dict[str, object]]]]:
        """Measure ``(job, methods)`` pairs; yield ``(job, rows by method)`` as each finishes."""


class MeasureHere:
    """The local executor: one job after the other, in this process."""

    def check(self, jobs: Sequence[RankJob], settings: SweepSettings) -> None:
        return None

    def __call__(
        self, pending: Sequence[tuple[RankJob, tuple[str, ...]]], settings: SweepSettings
    ) -> Iterator[tuple[RankJob, dict[str, dict[str, object]]]]:
        for job, methods in pending:
            yield job, measure_job(job, settings, methods)


def _flag_disagreement(float_row: dict, exact_row: dict) -> None:
    if int(float_row["rank"]) != int(exact_row["rank"]):
        note = (
            f"float rank {float_row['rank']} != certified {exact_row['rank']} "
            f"(gap {float_row['gap']}); trust the certified rank"
        )
        float_row["flag"] = "; ".join(filter(None, [str(float_row.get("flag", "")), note]))


# --------------------------------------------------------------------------- #
# The results store
# --------------------------------------------------------------------------- #


def _key(row: dict) -> tuple[str, ...]:
    return tuple(str(row[c]) for c in KEY_COLUMNS)


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a ``ranks.csv``; a torn last line (killed mid-write) is dropped."""
    return read_lab_rows(path, COLUMNS)


def open_store(path: Path) -> RowStore:
    """The append-only ``ranks.csv`` of a sweep, keyed by :data:`KEY_COLUMNS`."""
    return RowStore(path, COLUMNS, _key)


# --------------------------------------------------------------------------- #
# The output folder and its settings
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class SettingDifference:
    """One setting of a run that differs from the one behind the stored rows.

    ``stored`` is ``None`` where an old folder's rows only show that they were
    measured otherwise, not how.
    """

    name: str
    stored: object
    requested: object


class SettingsMismatchError(ConfigError):
    """The output folder holds numbers measured with other settings."""

    def __init__(self, folder: Path, differences: Sequence[SettingDifference], legacy: bool) -> None:
        self.folder = folder
        self.differences = list(differences)
        self.legacy = legacy
        parts = []
        for diff in self.differences:
            stored = "a different value" if diff.stored is None else repr(diff.stored)
            parts.append(f"{diff.name} {stored} there, {diff.requested!r} now")
        where = f"{folder / CSV_FILE} (a folder without {SETTINGS_FILE})" if legacy else str(folder)
        super().__init__(
            f"{where} holds ranks measured with other settings: {'; '.join(parts)}. "
            f"Run with the stored settings, write to another output folder, or delete {folder}"
        )


def check_output_folder(out: Path) -> None:
    """Refuse an output path that cannot be, or hold, the sweep's folder.

    Raises
    ------
    ConfigError
        ``out`` is a file, lies under a file, or holds a folder where a result
        file belongs.
    """
    check_lab_output(out, OUTPUT_FILES)


def _compare(stored: dict, wanted: dict) -> list[SettingDifference]:
    """Differing settings; with other methods, only the settings both runs use."""
    names = [*wanted, *(k for k in stored if k not in wanted)]
    if stored.get("methods") != wanted["methods"]:
        names = [k for k in names if k in stored and k in wanted]
    return [
        SettingDifference(name, stored.get(name), wanted.get(name))
        for name in names
        if stored.get(name) != wanted.get(name)
    ]


def _row_job(row: dict[str, str]) -> RankJob:
    return RankJob(row["family"], int(row["n"]), int(row["r"]), int(row["d"]), row["split"],
                   int(row["trial"]))  # fmt: skip


def _seed_agrees(row: dict[str, str], base_seed: int) -> bool:
    job, seed = _row_job(row), int(row["seed"])
    if row["method"] == "float":
        return seed == job.instance_seed(base_seed, "float")
    draws = int(row["draws"] or 1)
    return any(seed == job.instance_seed(base_seed, "exact", k) for k in range(draws))


def _cp_fit_tried(row: dict[str, str]) -> bool:
    return bool(row["cp_upper"] or row["cp_fit_error"] or row["flag"].startswith("no CP fit"))


def _legacy_differences(rows: Sequence[dict[str, str]], settings: SweepSettings) -> list[SettingDifference]:
    """What the rows of a folder without ``settings.json`` show to differ from ``settings``."""
    wanted = recorded_settings(settings)
    diffs = []
    methods = [m for m in METHODS if any(row["method"] == m for row in rows)]
    if methods != wanted["methods"]:
        diffs.append(SettingDifference("methods", methods, wanted["methods"]))
    if not all(_seed_agrees(row, settings.seed) for row in rows if row["method"] in METHODS):
        diffs.append(SettingDifference("seed", None, settings.seed))
    floats = [row for row in rows if row["method"] == "float"]
    if "cp_fit" in wanted and floats:
        expected = [settings.cp_fit and _row_job(row).cp_fit_applies(int(row["rank"])) for row in floats]
        if any(_cp_fit_tried(row) != want for row, want in zip(floats, expected, strict=True)):
            diffs.append(SettingDifference("cp_fit", not settings.cp_fit, settings.cp_fit))
    exacts = [row for row in rows if row["method"] == "exact"]
    if "engine" in wanted and exacts:
        for name, value in (("engine", settings.engine), ("prime", settings.prime)):
            there = sorted({row[name] for row in exacts})
            if there != [str(value)]:
                shown = [int(v) if v.isdigit() else v for v in there]
                diffs.append(SettingDifference(name, shown[0] if len(shown) == 1 else shown, value))
        draws = [int(row["draws"]) for row in exacts]
        # Drawing stops early only at the min-cut; short of it, max_draws instances were drawn.
        short = any(k < settings.max_draws and int(row["rank"]) < int(row["mincut"])
                    for k, row in zip(draws, exacts, strict=True))  # fmt: skip
        if max(draws) > settings.max_draws or short:
            diffs.append(SettingDifference("max_draws", None, settings.max_draws))
    return diffs


def check_resume(out: Path, settings: SweepSettings) -> None:
    """Refuse to add rows to ``out`` if its stored rows were measured with other settings.

    A folder with ``settings.json`` must record exactly :func:`recorded_settings`;
    one without it (written by an older tensorrnn) must have rows that agree
    with ``settings`` (see the module docstring). A folder with no rows takes
    any settings. Nothing is written.

    Raises
    ------
    SettingsMismatchError
        Naming every differing setting, its stored and its requested value.
    ConfigError
        ``settings.json`` or ``ranks.csv`` cannot be read.
    """
    rows = read_rows(out / CSV_FILE)
    if not rows:
        return
    stored = SettingsGuard(out).stored()
    if stored is not None:
        diffs = _compare(stored, recorded_settings(settings))
        legacy = False
    else:
        try:
            diffs = _legacy_differences(rows, settings)
        except (KeyError, ValueError) as error:
            raise ConfigError(
                f"{out / CSV_FILE} has an unreadable row ({error!r}); use another output "
                f"folder or delete {out}"
            ) from None
        legacy = True
    if diffs:
        raise SettingsMismatchError(out, diffs, legacy)


def run_rank_sweep(
    jobs: Sequence[RankJob], out_dir: str | Path, settings: SweepSettings, *, quiet: bool = False,
    executor: RankExecutor | None = None,
) -> Path:
    """Measure every job not yet in ``out_dir/ranks.csv``; write the table and the plot.

    ``executor`` measures the missing jobs (:class:`MeasureHere` by default; on a Ray
    cluster ``cluster.MeasureOnRay``); each job's rows are appended as it finishes, so
    a crash or a lost node loses no finished row.

    Everything is checked before the folder is created or touched: the
    settings, the memory each matrix needs, the output path, and that rows
    already in the folder were measured with the same settings
    (:func:`check_resume`). Then ``settings.json`` is written and the missing
    jobs are measured.

    Returns the output folder.

    Raises
    ------
    ConfigError
        A bad setting, output path or stored folder; nothing is written then.
    SizeError
        A matrix would not fit in memory.
    """
    check_settings(settings)
    check_memory(jobs, settings)
    out = Path(out_dir)
    check_output_folder(out)
    check_resume(out, settings)
    executor = executor or MeasureHere()
    executor.check(jobs, settings)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the output folder {out}: {error.strerror}") from None
    SettingsGuard(out).write(recorded_settings(settings))
    store = open_store(out / CSV_FILE)

    pending = []
    for job in jobs:
        missing = tuple(m for m in settings.methods
                        if _key({**_base_row(job), "method": m}) not in store.done)  # fmt: skip
        if missing:
            pending.append((job, missing))
    skipped = len(jobs) - len(pending)
    if skipped:
        print(f"{skipped} of {len(jobs)} instances already in {store.path}; skipping them")
    with tqdm(total=len(pending), desc="ranks", unit="instance", disable=quiet) as bar:
        for job, fresh in executor(pending, settings):
            if "float" in fresh:
                exact = fresh.get("exact") or _stored(store, job, "exact")
                if exact is not None:
                    _flag_disagreement(fresh["float"], exact)
            for method in settings.methods:  # one order of rows whatever order the executor used
                if method in fresh:
                    store.append(fresh[method])
            bar.update()

    from tensorrnn.ranks.report import write_periodic_figure, write_plot, write_status_figure, write_table

    write_table(store.rows, out / "ranks.md")
    write_plot(store.rows, out / "ranks.png")
    write_status_figure(store.rows, out / "ranks_status.png")
    write_periodic_figure(store.rows, out / "ranks_periodic.png")  # only where periodic rows exist
    return out


def _stored(store: RowStore, job: RankJob, method: str) -> dict | None:
    key = _key({**_base_row(job), "method": method})
    return next((row for row in store.rows if _key(row) == key), None)


__all__ = [
    "COLUMNS",
    "RankJob",
    "SettingDifference",
    "SettingsMismatchError",
    "SweepSettings",
    "check_output_folder",
    "check_resume",
    "check_settings",
    "default_grid",
    "job_bytes",
    "make_grid",
    "MeasureHere",
    "RankExecutor",
    "measure_job",
    "recorded_settings",
    "run_rank_sweep",
]
