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
``ranks.png`` are rebuilt from the whole CSV.
"""

from __future__ import annotations

import csv
import os
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
from tensorrnn.ranks.bounds import (
    effective_bonds,
    mincut_bound,
    theorem_bound,
)
from tensorrnn.ranks.cpfit import MAX_ENTRIES, cp_upper_bound
from tensorrnn.ranks.modp import DEFAULT_PRIME, exact_rank
from tensorrnn.ranks.numerical import numerical_rank

COLUMNS = [
    "family", "n", "r", "d", "split", "trial", "seed", "method", "evidence", "rank", "gap",
    "bound_q_rm1", "bound_q_r", "mincut", "cp_upper", "cp_fit_error", "cp_term_norm",
    "engine", "prime", "draws", "rows", "cols", "flag", "seconds",
]  # fmt: skip
KEY_COLUMNS = ("family", "n", "r", "d", "split", "trial", "method")
METHODS = ("float", "exact")
ENGINES = ("blas", "flint")

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
        return mincut_bound([self.n] * self.d, effective_bonds(self.n, self.r, self.d), self.row_modes)


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
        raise ConfigError(f"--trials {trials} must be at least 1")
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
    if not jobs:
        raise ConfigError(f"no grid point has a matrix side <= {max_side}; raise --max-side")
    return jobs


def check_memory(jobs: Iterable[RankJob], settings: SweepSettings) -> None:
    """Refuse the whole sweep before it starts if one matrix would not fit."""
    limit = settings.max_bytes if settings.max_bytes is not None else default_memory_limit()
    for job in jobs:
        rows, cols = job.matrix_shape
        # The exact path holds the int64 matrix and one float64 working copy.
        bytes_per_entry = 16 if "exact" in settings.methods else 8
        check_fits(
            rows * cols,
            bytes_per_entry,
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
        "engine": f"svd-{settings.device}",
    }  # fmt: skip
    num_params = measured.rank * job.n * job.d
    if settings.cp_fit and job.n**job.d <= MAX_ENTRIES and num_params <= CP_FIT_MAX_PARAMS:
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
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != COLUMNS:
            raise ConfigError(
                f"{path} was not written by this version of tensorrnn (columns differ); "
                "use another --out folder or delete the file"
            )
        return [row for row in reader if None not in row.values() and row["seconds"] != ""]


class RowStore:
    """Append-only CSV with one header; rewritten clean when opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = read_rows(path)
        self.done = {_key(row) for row in self.rows}
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, path)

    def append(self, row: dict) -> None:
        full = {c: row.get(c, "") for c in COLUMNS}
        full = {c: ("" if v is None else v) for c, v in full.items()}
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, COLUMNS).writerow(full)
            handle.flush()
            os.fsync(handle.fileno())
        self.rows.append({c: str(v) for c, v in full.items()})
        self.done.add(_key(full))


def run_sweep(
    jobs: Sequence[RankJob], out_dir: str | Path, settings: SweepSettings, *, quiet: bool = False
) -> Path:
    """Measure every job not yet in ``out_dir/ranks.csv``; write the table and the plot.

    Returns the output folder.
    """
    for method in settings.methods:
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if settings.engine not in ENGINES:
        raise ConfigError(f"unknown engine {settings.engine!r}; choose blas or flint")
    resolve_device(settings.device)
    check_memory(jobs, settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = RowStore(out / "ranks.csv")

    todo = [
        job for job in jobs
        if any(_key({**_base_row(job), "method": m}) not in store.done for m in settings.methods)
    ]  # fmt: skip
    skipped = len(jobs) - len(todo)
    if skipped:
        print(f"{skipped} of {len(jobs)} instances already in {store.path}; skipping them")
    for job in tqdm(todo, desc="ranks", unit="instance", disable=quiet):
        fresh = {}
        for method in settings.methods:
            if _key({**_base_row(job), "method": method}) in store.done:
                continue
            measure = measure_float if method == "float" else measure_exact
            fresh[method] = measure(job, settings)
        if "float" in fresh:
            exact = fresh.get("exact") or _stored(store, job, "exact")
            if exact is not None:
                _flag_disagreement(fresh["float"], exact)
        for row in fresh.values():
            store.append(row)

    from tensorrnn.ranks.report import write_plot, write_table

    write_table(store.rows, out / "ranks.md")
    write_plot(store.rows, out / "ranks.png")
    return out


def _stored(store: RowStore, job: RankJob, method: str) -> dict | None:
    key = _key({**_base_row(job), "method": method})
    return next((row for row in store.rows if _key(row) == key), None)


def parse_int_list(text: str, what: str) -> list[int]:
    """``"2,3"`` or ``"4..12"`` (inclusive) or a mix, such as ``"2,4..6"``."""
    values: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if ".." in part:
                low, high = (int(x) for x in part.split(".."))
                if high < low:
                    raise ConfigError(f"--{what} range {part} is empty; write low..high")
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise ConfigError(
            f"--{what} {text!r} is not a list of integers; write e.g. 2,3 or 4..12"
        ) from None
    if not values:
        raise ConfigError(f"--{what} is empty; give values like 2,3 or 4..12")
    return sorted(set(values))


def even_orders(text: str) -> list[int]:
    """Orders for the odd-even split: ranges keep their even values, an explicit odd
    value is an error."""
    explicit = [p.strip() for p in text.split(",") if p.strip() and ".." not in p]
    odd = [int(p) for p in explicit if p.lstrip("-").isdigit() and int(p) % 2]
    if odd:
        raise ConfigError(
            f"the odd-even split needs even d, got d={odd}; use even orders or --split half"
        )
    return [d for d in parse_int_list(text, "d") if d % 2 == 0]


__all__ = [
    "COLUMNS",
    "RankJob",
    "SweepSettings",
    "default_grid",
    "make_grid",
    "run_sweep",
    "parse_int_list",
    "even_orders",
]
