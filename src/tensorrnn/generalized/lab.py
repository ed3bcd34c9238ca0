"""The ``generalized-ranks`` sweep: random instances of a grid of settings, measured and
written resumably.

The sweep :func:`run_generalized_ranks` (``tensorrnn generalized-ranks``) writes
``generalized.csv`` (one row per instance), ``generalized.md``,
``generalized.png`` and ``settings.json``, resumably, every file through
:mod:`tensorrnn.atomic`. It is the one part of the package that touches files.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tensorrnn.atomic import atomic_save_figure, atomic_write_text
from tensorrnn.errors import ConfigError
from tensorrnn.generalized.grids import GridSetting, check_setting, measure_instance
from tensorrnn.generalized.operators import get_xi
from tensorrnn.labkit import SETTINGS_FILE, RowStore, SettingsGuard, check_lab_folder, read_rows
from tensorrnn.ranks.modp import DEFAULT_PRIME, check_prime

__all__ = [
    "COLUMNS", "CSV_FILE", "FIGURE_FILE", "LabSettings", "METHODS", "OUTPUT_FILES", "TABLE_FILE",
    "check_output", "make_settings", "plot_distributions", "read_lab_rows", "run_generalized_ranks",
    "summary_table",
]  # fmt: skip

CSV_FILE, TABLE_FILE, FIGURE_FILE = "generalized.csv", "generalized.md", "generalized.png"
OUTPUT_FILES = (CSV_FILE, TABLE_FILE, FIGURE_FILE, SETTINGS_FILE)
COLUMNS = ["xi", "cores", "rank", "width", "M", "T", "weights", "trial", "seed", "side", "paper_value",
           "exact_rank", "float_rank", "gap", "agree", "shallow_bound", "rank_one_shallow", "max_abs",
           "seconds"]  # fmt: skip
KEY_COLUMNS = ("xi", "cores", "rank", "width", "M", "T", "weights", "trial")
METHODS = ("exact", "float")
# The committed CSVs end their lines in "\n"; kept so that a rerun regenerates them byte for byte.
LINE_END = "\n"


@dataclass(frozen=True)
class LabSettings:
    """What decides the numbers of a row (``settings.json``); the grid of settings may grow."""

    seed: int = 0
    methods: tuple[str, ...] = METHODS
    prime: int | None = None
    engine: str = "blas"

    def recorded(self) -> dict[str, Any]:
        """The JSON form stored in ``settings.json``."""
        out = asdict(self)
        out["methods"] = sorted(self.methods)
        out["prime"] = DEFAULT_PRIME if self.prime is None else self.prime
        return out


def make_settings(
    xis: Iterable[str],
    cores: Iterable[str],
    ranks: Iterable[int],
    widths: Iterable[int | str],
    Ms: Iterable[int],
    Ts: Iterable[int],
    weights: Iterable[str],
) -> list[GridSetting]:
    """The crossed grid of settings (``width`` may be ``"R"``: equal to the rank); each validated."""
    out: list[GridSetting] = []
    for xi in xis:
        for c in cores:
            if c not in ("distinct", "shared"):
                raise ConfigError(f"cores {c!r} must be distinct or shared")
            for w in weights:
                for M in Ms:
                    for T in Ts:
                        for R in ranks:
                            for L in widths:
                                width = R if L == "R" else L
                                s = GridSetting(xi, c == "shared", R, width, M, T, w)  # type: ignore[arg-type]
                                out.append(check_setting(s))
    return list(dict.fromkeys(out))


def _check_lab(settings: LabSettings, trials: int) -> None:
    if isinstance(settings.seed, bool) or not isinstance(settings.seed, int) or settings.seed < 0:
        raise ConfigError(f"seed={settings.seed!r} must be a non-negative integer")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials={trials!r} must be a positive integer")
    bad = [m for m in settings.methods if m not in METHODS]
    if bad or not settings.methods:
        raise ConfigError(f"methods {list(settings.methods)!r}: choose from {', '.join(METHODS)}")
    if settings.engine not in ("blas", "flint"):
        raise ConfigError(f"engine {settings.engine!r}: choose blas or flint")
    if settings.prime is not None:
        check_prime(settings.prime, settings.engine)


def read_lab_rows(path: Path) -> list[dict[str, str]]:
    """Rows of ``generalized.csv`` (empty if the file does not exist; a torn last line is dropped)."""
    return read_rows(Path(path), COLUMNS)


def _row_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in KEY_COLUMNS)


def check_output(out: Path, settings: LabSettings) -> None:
    """Refuse an output folder that is a file or holds rows measured with other settings
    (the message names each differing setting)."""
    check_lab_folder(out, settings.recorded(), csv_file=CSV_FILE, columns=COLUMNS, output_files=OUTPUT_FILES,
                     what="ranks")  # fmt: skip


def run_generalized_ranks(
    grid: Sequence[GridSetting],
    trials: int,
    out: str | Path,
    settings: LabSettings = LabSettings(),
    *,
    quiet: bool = False,
) -> Path:
    """Measure ``trials`` random instances of every setting; write the CSV, table and figure.

    Everything is validated before ``out`` is created. Instances already in
    ``out/generalized.csv`` are skipped (a killed sweep resumes by running the
    same command); each instance's row is appended (and synced) as it ends.
    """
    from tqdm import tqdm

    out = Path(out)
    for s in grid:
        check_setting(s)
    _check_lab(settings, trials)
    check_output(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    SettingsGuard(out).write(settings.recorded())
    store = RowStore(out / CSV_FILE, COLUMNS, _row_key, lineterminator=LINE_END)
    todo = [(s, t) for s in grid for t in range(trials) if s.key(t) not in store.done]
    bar = tqdm(todo, disable=quiet, desc="generalized ranks", unit="instance")
    for s, trial in bar:
        bar.set_postfix_str(f"{s.xi} {s.cores} R{s.rank} M{s.M} T{s.T}")
        row = measure_instance(s, s.seed(settings.seed, trial), methods=settings.methods,
                               prime=settings.prime, engine=settings.engine)  # fmt: skip
        row["trial"] = trial
        store.append(row)
    atomic_write_text(out / TABLE_FILE, summary_table(store.rows))
    plot_distributions(store.rows, out / FIGURE_FILE)
    return out


# --------------------------------------------------------------------------- #
# Tables and figures
# --------------------------------------------------------------------------- #


def _int(v: Any) -> int | None:
    return None if v in (None, "") else int(float(v))


def _bool(v: Any) -> bool | None:
    if v in (None, ""):
        return None
    return v if isinstance(v, bool) else str(v) == "True"


def _group(rows: Sequence[Mapping[str, Any]]) -> dict[tuple, list[Mapping[str, Any]]]:
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        key = (str(r["xi"]), str(r["weights"]), int(r["M"]), int(r["T"]), str(r["cores"]),
               int(r["rank"]), int(r["width"]))  # fmt: skip
        groups[key].append(r)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3],
                                                       kv[0][5], kv[0][4], kv[0][6])))  # fmt: skip


def _distribution(values: Sequence[int]) -> str:
    counts = Counter(values)
    return ", ".join(f"{v}×{c}" if c > 1 else f"{v}" for v, c in sorted(counts.items()))


def summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one line per setting (distinct and shared side by side in sort order).

    Columns: the odd/even rank over the instances (min / median / max; exact where
    certified, else float), the fraction reaching ``min(M, R)^⌊T/2⌋`` (Thm 5.2's
    value), the shallow-width lower bounds (distribution ``value×count``), the
    fraction with a width-1 shallow equivalent, and exact-vs-float agreement.
    """
    head = ["ξ", "weights", "M", "T", "cores", "R", "L", "instances", "odd/even rank min / median / max",
            "≥ min(M,R)^⌊T/2⌋", "shallow width ≥ (value×count)", "width-1 shallow equivalent",
            "exact = float"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (xi, weights, M, T, cores, R, L), members in _group(rows).items():
        ranks = [_int(r["exact_rank"]) if _int(r["exact_rank"]) is not None else _int(r["float_rank"])
                 for r in members]  # fmt: skip
        ranks = [x for x in ranks if x is not None]
        certified = all(_int(r["exact_rank"]) is not None for r in members)
        paper = min(M, R) ** (T // 2)
        bounds = [b for b in (_int(r["shallow_bound"]) for r in members) if b is not None]
        ones = [b for b in (_bool(r["rank_one_shallow"]) for r in members) if b is not None]
        agree = [a for a in (_bool(r["agree"]) for r in members) if a is not None]
        rank_cell = (f"{min(ranks)} / {statistics.median(ranks):g} / {max(ranks)}"
                     + ("" if certified else " (float)")) if ranks else "–"  # fmt: skip
        cells = [
            xi, weights, M, T, cores, R, L, len(members), rank_cell,
            f"{sum(x >= paper for x in ranks) / len(ranks):.0%}" if ranks else "–",
            _distribution(bounds) if bounds else "–",
            f"{sum(ones)}/{len(ones)}" if ones else "–",
            f"{sum(agree)}/{len(agree)}" if agree else "–",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot_distributions(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Histograms of the shallow-width bound (or the rank where ξ has no bound) per R,
    distinct and shared side by side, one row per (ξ, weights, M, T); a last column
    gives the fraction of instances with a width-1 shallow equivalent against R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple, dict[tuple[str, int], list[Mapping[str, Any]]]] = defaultdict(dict)
    for (xi, weights, M, T, cores, R, _L), members in _group(rows).items():
        panels[(xi, weights, M, T)].setdefault((cores, R), []).extend(members)
    n = max(1, len(panels))
    fig, axes = plt.subplots(n, 3, figsize=(13, 3.1 * n), squeeze=False)
    for ax_row, ((xi, weights, M, T), groups) in zip(axes, panels.items(), strict=False):
        use_bound = get_xi(xi).term_rank(M, T) is not None
        for ax, cores in zip(ax_row[:2], ("distinct", "shared"), strict=True):
            Rs = sorted(R for c, R in groups if c == cores)
            for R in Rs:
                vals = [_int(r["shallow_bound"] if use_bound else (r["exact_rank"] or r["float_rank"]))
                        for r in groups[(cores, R)]]  # fmt: skip
                vals = [v for v in vals if v is not None]
                if vals:
                    lo, hi = min(vals), max(vals)
                    bins = range(lo, hi + 2) if hi - lo < 60 else 30
                    ax.hist(vals, bins=bins, histtype="step", lw=1.5, label=f"R = {R}")
            what = "shallow width lower bound" if use_bound else "odd/even rank"
            ax.set_title(f"ξ={xi}, {weights}, M={M}, T={T}: {cores}", fontsize=9)
            ax.set_xlabel(what)
            ax.set_ylabel("instances")
            ax.grid(alpha=0.3)
            if Rs:
                ax.legend(fontsize=7)
        ax = ax_row[2]
        for cores, style in (("distinct", "o-"), ("shared", "s--")):
            pts = []
            for (c, R), members in sorted(groups.items(), key=lambda kv: kv[0][1]):
                ones = [b for b in (_bool(r["rank_one_shallow"]) for r in members) if b is not None]
                if c == cores and ones:
                    pts.append((R, sum(ones) / len(ones)))
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=cores)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title("width-1 shallow equivalent", fontsize=9)
        ax.set_xlabel("R")
        ax.set_ylabel("fraction of instances")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
