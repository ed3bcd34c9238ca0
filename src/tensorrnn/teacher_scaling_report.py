"""Tables, figures and generated sentences of the teacher-scaling lab (from ``scaling.csv`` only).

A floor above :mod:`tensorrnn.teacher_scaling` (which never imports it), so that the
report can be rebuilt (and improved) while a grid is running; the CLI runs the fits,
then :func:`write_report`.

The headline number of each teacher and ``d`` is the smallest CP rank whose best
fit (the lowest error over the methods that ran: LM, ALS, gradient) is at or below
a threshold in at least :data:`NEED` seeds. A rank that no method fits says nothing
about the CP rank (the fitter may have failed); a rank below the teacher's CP rank
can still reach 1e-3 when the Eckart–Young floor is lower than that (an
approximation, not a decomposition).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tensorrnn.atomic import atomic_save_figure, atomic_write_text

THRESHOLDS = (1e-3, 1e-6)
NEED = 2
"""Seeds (of the configured three) that must reach a threshold."""
SAMPLE_THRESHOLD = 1e-2
CP_METHODS = ("lm", "als", "adam+lbfgs")
COMMAND = ("OMP_NUM_THREADS=1 tensorrnn teacher-scaling --config configs/teacher_scaling.yaml "
           "--out docs/results/teacher_scaling")  # fmt: skip


def theory(n: int, r: int, d: int) -> tuple[int, int]:
    """``(low, high)`` of the teacher's CP rank: the generic odd/even rank and ``r^(d−1)``.

    Equal when ``n ≥ r²`` (then the CP rank is exactly ``r^(d−1)``).
    """
    return min(n, r) * min(n, r * r) ** (d // 2 - 1), r ** (d - 1)


def theory_text(n: int, r: int, d: int) -> str:
    low, high = theory(n, r, d)
    return f"exactly {high}" if low == high else f"{low}–{high}"


def _threshold(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-")


def cp_params(n: int, d: int, rank: int) -> int:
    return d * n * rank + rank


# --------------------------------------------------------------------------- #
# Reading the rows
# --------------------------------------------------------------------------- #


class Fits:
    """The ``fit`` rows indexed by teacher ``(n, r, d)``: CP errors per rank, method and seed."""

    def __init__(self, rows: Sequence[Mapping[str, str]]) -> None:
        self.cp: dict[tuple[int, int, int], dict[int, dict[str, dict[int, float]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(dict)))  # fmt: skip
        self.tt: dict[tuple[int, int, int], dict[str, dict[int, float]]] = defaultdict(
            lambda: defaultdict(dict))  # fmt: skip
        self.floors: dict[tuple[int, int, int], dict[int, dict[int, float]]] = defaultdict(
            lambda: defaultdict(dict))  # fmt: skip
        for row in rows:
            if row["part"] != "fit":
                continue
            teacher = (int(row["n"]), int(row["r"]), int(row["d"]))
            rank, seed, error = int(row["rank"]), int(row["seed"]), float(row["rel_error"])
            error = math.inf if math.isnan(error) else error
            if row["family"] == "cp":
                self.cp[teacher][rank][row["method"]][seed] = error
                # The floor depends on the teacher instance and rank only, not on the method.
                self.floors[teacher][rank][seed] = float(row["lower_bound"])
            else:
                self.tt[teacher][row["family"]][seed] = error

    def best(self, teacher: tuple[int, int, int], rank: int, methods: Sequence[str] = CP_METHODS
             ) -> dict[int, float]:  # fmt: skip
        """Per seed, the lowest error over ``methods`` at this rank."""
        out: dict[int, float] = {}
        for method, errors in self.cp[teacher][rank].items():
            if method in methods:
                for seed, error in errors.items():
                    out[seed] = min(out.get(seed, math.inf), error)
        return out

    def tried(self, n: int, r: int, d: int, methods: Sequence[str] = CP_METHODS) -> list[int]:
        """Ranks at which any of ``methods`` ran."""
        return [k for k, by in self.cp.get((n, r, d), {}).items() if any(m in by for m in methods)]

    def smallest_rank(self, teacher: tuple[int, int, int], threshold: float,
                      methods: Sequence[str] = CP_METHODS) -> int | None:  # fmt: skip
        """The smallest rank whose best fit is ≤ ``threshold`` in at least :data:`NEED` seeds."""
        for rank in sorted(self.cp[teacher]):
            if sum(e <= threshold for e in self.best(teacher, rank, methods).values()) >= NEED:
                return rank
        return None


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _reach(errors: Mapping[int, float], threshold: float) -> str:
    return f"{sum(e <= threshold for e in errors.values())}/{len(errors)}"


# --------------------------------------------------------------------------- #
# Sentences
# --------------------------------------------------------------------------- #


def growth_sentence(fits: Fits, n: int, r: int) -> str:
    """The measured growth of the smallest CP rank with ``d``, against the theory, for one regime."""
    teachers = sorted(t for t in fits.cp if t[:2] == (n, r))
    if not teachers:
        return ""
    parts = []
    for threshold in THRESHOLDS:
        found = {t[2]: fits.smallest_rank(t, threshold) for t in teachers}
        reached = [(d, rank) for d, rank in found.items() if rank is not None]
        text = ", ".join(f"{rank} at d = {d}" if rank is not None
                         else f"none up to {max(fits.cp[(n, r, d)])} at d = {d}"
                         for d, rank in found.items())  # fmt: skip
        sentence = f"≤ {_threshold(threshold)} in ≥ {NEED} of 3 seeds: {text}"
        if len(reached) >= 2:
            (d0, r0), (d1, r1) = reached[0], reached[-1]
            base = (r1 / r0) ** (1 / (d1 - d0))
            sentence += (f"; the rank grew ×{base:.2f} per unit of d from d = {d0} to {d1} "
                         f"(2^(d−1) grows ×2, 3^(d/2) ×{math.sqrt(3):.2f}, 3^(d−1) ×3)")  # fmt: skip
        parts.append(sentence)
    low_high = ", ".join(f"{theory_text(*t)} at d = {t[2]}" for t in teachers)
    return (f"**Teacher tt-shared n = {n}, r = {r}** (CP rank by theory: {low_high}). Smallest CP rank "
            f"whose best fit reached relative error {parts[0]}. At {parts[1]}.")  # fmt: skip


def shortfall_sentence(fits: Fits, n: int, r: int) -> str:
    """Plainly, where the predicted rank does not show: ``d`` whose CP rank (or upper end) was not fitted."""
    misses = []
    for teacher in sorted(t for t in fits.cp if t[:2] == (n, r)):
        low, high = theory(*teacher)
        ranks = sorted(fits.cp[teacher])
        at = [k for k in ranks if k >= high] or [k for k in ranks if k >= low]
        if not at:
            misses.append(f"d = {teacher[2]}: no rank ≥ {low} was fitted")
            continue
        best = {k: fits.best(teacher, k) for k in at}
        if not any(sum(e <= THRESHOLDS[1] for e in b.values()) >= NEED for b in best.values()):
            lowest = min(min(b.values(), default=math.inf) for b in best.values())
            span = f"rank {at[0]}" if len(at) == 1 else f"ranks {at[0]}–{at[-1]}"
            misses.append(f"d = {teacher[2]}: no fit at {span} reached "
                          f"{_threshold(THRESHOLDS[1])} in {NEED} seeds "
                          f"(lowest error {lowest:.1e})")  # fmt: skip
    if not misses:
        return f"For n = {n}, r = {r} every d has a rank at or above the CP rank's bound fitted to ≤ 1e-6."
    return (f"Where the prediction does not show (n = {n}, r = {r}): " + "; ".join(misses) +
            ". These are failures to find a fit, not evidence of a larger rank: a decomposition of rank "
            "r^(d−1) exists (expand the chain).")  # fmt: skip


def samples_sentence(rows: Sequence[Mapping[str, str]]) -> str:
    """Per sample teacher, the fewest training inputs at which each family's median test error ≤ 1e-2."""
    table = _sample_table(rows)
    parts = []
    for teacher, by_family in sorted(table.items()):
        n, r, d = teacher
        words = []
        for family in sorted(by_family, key=lambda f: ("tt-shared", "tt", "cp").index(f[0])):
            name, rank = family
            by_m = by_family[family]
            ok = [m for m, got in sorted(by_m.items()) if _median([t for _, t in got]) <= SAMPLE_THRESHOLD]
            largest = max(by_m)
            # A student that does not fit its own training inputs says nothing about generalising.
            train = _median([e for e, _ in by_m[largest]])
            where = (f"from {ok[0]} inputs" if ok else
                     f"at no size up to {largest} (median train error there {train:.1e})")  # fmt: skip
            words.append(f"{name} (rank {rank}) {where}")
        parts.append(f"n = {n}, r = {r}, d = {d} ({n**d} inputs): " + ", ".join(words))
    if not parts:
        return ""
    return (f"Median test error ≤ {SAMPLE_THRESHOLD:g} on the held-out inputs — " + "; ".join(parts) +
            ". Mini-batch Adam alone (no L-BFGS) often leaves the training error far above zero, so these "
            "sizes measure the optimiser and the format together, not sample complexity alone.")  # fmt: skip


def _sample_table(rows: Sequence[Mapping[str, str]]) -> dict:
    """``{(n, r, d): {(family, rank): {m: [(train, test) per seed]}}}``."""
    table: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        if row["part"] == "sample":
            key = (int(row["n"]), int(row["r"]), int(row["d"]))
            table[key][(row["family"], int(row["rank"]))][int(row["train_inputs"])].append(
                (float(row["rel_error"]), float(row["test_error"])))  # fmt: skip
    return table


# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #


def _rank_cell(fits: Fits, teacher: tuple[int, int, int], threshold: float,
               methods: Sequence[str] = CP_METHODS) -> str:  # fmt: skip
    rank = fits.smallest_rank(teacher, threshold, methods)
    if rank is None:
        ran = fits.tried(*teacher, methods)
        return f"none ≤ {max(ran)}" if ran else "–"
    return f"{rank} ({cp_params(teacher[0], teacher[2], rank)})"


def summary_table(fits: Fits) -> list[str]:
    """Per teacher and d: the theory, the smallest rank (parameters) per threshold, overall and per method."""
    lines = ["| teacher | d | CP rank (theory) | ≤ 1e-3: any method | ≤ 1e-6: any method | LM ≤ 1e-6 | "
             "ALS ≤ 1e-6 | gradient ≤ 1e-3 | gradient ≤ 1e-6 | tt-shared r: params, ≤1e-3, ≤1e-6 | "
             "tt r: params, ≤1e-3, ≤1e-6 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for teacher in sorted(fits.cp):
        n, r, d = teacher
        cells = [f"n {n}, r {r}", str(d), theory_text(n, r, d)]
        cells += [_rank_cell(fits, teacher, t) for t in THRESHOLDS]
        cells += [_rank_cell(fits, teacher, 1e-6, ("lm",)), _rank_cell(fits, teacher, 1e-6, ("als",))]
        cells += [_rank_cell(fits, teacher, t, ("adam+lbfgs",)) for t in THRESHOLDS]
        for family in ("tt-shared", "tt"):
            errors = fits.tt[teacher].get(family, {})
            middle = 1 if family == "tt-shared" else d - 2
            params = 2 * n * r + middle * n * r * r
            cells.append(f"{params}, {_reach(errors, 1e-3)}, {_reach(errors, 1e-6)}" if errors else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def detail_table(fits: Fits) -> list[str]:
    """Per teacher, d and CP rank: the proven floor and each method's median error and successes."""
    lines = ["| teacher | d | rank | params | floor (median) | " +
             " | ".join(f"{m}: median, ≤1e-3, ≤1e-6" for m in CP_METHODS) + " |",
             "|---|---|---|---|---|" + "---|" * len(CP_METHODS)]  # fmt: skip
    for teacher in sorted(fits.cp):
        n, r, d = teacher
        for rank in sorted(fits.cp[teacher]):
            floors = list(fits.floors[teacher][rank].values())
            cells = [f"n {n}, r {r}", str(d), str(rank), str(cp_params(n, d, rank)),
                     f"{_median(floors):.1e}" if floors else "–"]  # fmt: skip
            for method in CP_METHODS:
                errors = fits.cp[teacher][rank].get(method, {})
                cells.append(f"{_median(list(errors.values())):.1e}, {_reach(errors, 1e-3)}, "
                             f"{_reach(errors, 1e-6)}" if errors else "–")  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def sample_lines(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """Per sample teacher: median test (and train) error per family and number of training inputs."""
    lines = []
    for (n, r, d), by_family in sorted(_sample_table(rows).items()):
        families = sorted(by_family, key=lambda f: ("tt-shared", "tt", "cp").index(f[0]))
        sizes = sorted({m for f in families for m in by_family[f]})
        lines += ["", f"**n = {n}, r = {r}, d = {d}** ({n**d} inputs; test = all inputs not trained on). "
                  "Cells: median test error (median train error), seeds.", "",
                  "| training inputs | " + " | ".join(f"{f} r {k}" for f, k in families) + " |",
                  "|---|" + "---|" * len(families)]  # fmt: skip
        for m in sizes:
            cells = []
            for family in families:
                got = by_family[family].get(m, [])
                cells.append(f"{_median([t for _, t in got]):.2e} ({_median([e for e, _ in got]):.1e}), "
                             f"{len(got)}" if got else "–")  # fmt: skip
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def seconds_lines(rows: Sequence[Mapping[str, str]]) -> list[str]:
    totals: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        totals[(row["part"], f"{row['family']} {row['method']}")].append(float(row["seconds"]))
    lines = ["| part | student, method | fits | seconds (sum) | seconds (max) |", "|---|---|---|---|---|"]
    for (part, what), secs in sorted(totals.items()):
        lines.append(f"| {part} | {what} | {len(secs)} | {sum(secs):.0f} | {max(secs):.1f} |")
    return lines


def write_table(rows: Sequence[Mapping[str, str]], path: Path) -> Path:
    """``scaling.md``: summary, every CP rank by method, samples, time."""
    fits = Fits(rows)
    lines = ["# Teacher scaling: the smallest CP rank over d", "",
             f"A rank counts when its best fit (lowest error over the methods that ran) is at or below the "
             f"threshold in at least {NEED} of 3 seeds; cells give the rank (CP parameters). Seed s means "
             "teacher instance s and students initialised from s. *floor*: the proven Eckart–Young lower "
             "bound on any CP fit of that rank (median over seeds).", ""]  # fmt: skip
    lines += summary_table(fits) + ["", "## Every CP rank, by method", ""] + detail_table(fits)
    lines += ["", "## Learning from samples"] + sample_lines(rows)
    lines += ["", "## Time (one thread)", ""] + seconds_lines(rows)
    return atomic_write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- #
# Figures
# --------------------------------------------------------------------------- #


def _scaling_panels(fits: Fits, axes_rank: Any, axes_params: Any, n: int, r: int) -> None:
    """One regime: smallest CP rank (top) and its parameters (bottom) against d, with the theory."""
    teachers = sorted(t for t in fits.cp if t[:2] == (n, r))
    ds = [t[2] for t in teachers]
    low = [theory(*t)[0] for t in teachers]
    high = [theory(*t)[1] for t in teachers]
    if low == high:
        # Wide and pale, beneath: measured points that meet the theory must not hide it.
        axes_rank.plot(ds, high, color="0.6", linewidth=6, alpha=0.5, zorder=0,
                       label=f"theory: CP rank = {r}^(d−1)")  # fmt: skip
    else:
        axes_rank.fill_between(ds, low, high, color="0.85",
                               label=f"theory: odd/even rank {n}^(d/2) ≤ CP rank ≤ {r}^(d−1)")  # fmt: skip
    axes_params.plot(ds, [cp_params(n, d, h) for d, h in zip(ds, high, strict=True)], color="0.6",
                     linewidth=6, alpha=0.5, zorder=0, label=f"CP params at rank {r}^(d−1)")  # fmt: skip
    if low != high:
        axes_params.plot(ds, [cp_params(n, d, k) for d, k in zip(ds, low, strict=True)], "k:",
                         label=f"CP params at the odd/even rank {n}^(d/2)")  # fmt: skip
    styles = [(1e-3, CP_METHODS, "o", "tab:red", "CP ≤ 1e-3, best method"),
              (1e-6, CP_METHODS, "s", "tab:purple", "CP ≤ 1e-6, best method"),
              (1e-3, ("adam+lbfgs",), "x", "tab:orange", "CP network (gradient) ≤ 1e-3")]  # fmt: skip
    for shift, (threshold, methods, marker, color, label) in zip((0.0, 0.08, -0.08), styles, strict=True):
        got = [(t[2], fits.smallest_rank(t, threshold, methods)) for t in teachers]
        hits = [(d + shift, k) for d, k in got if k is not None]
        # Not reached: an open triangle above the largest rank any of these methods tried.
        misses = [(d + shift, max(tried) * 1.25) for d, k in got
                  if k is None and (tried := fits.tried(n, r, d, methods))]  # fmt: skip
        if hits:
            axes_rank.plot(*zip(*hits, strict=True), marker=marker, color=color, linestyle="-", label=label)
            axes_params.plot(*zip(*[(d, cp_params(n, round(d), k)) for d, k in hits], strict=True),
                             marker=marker, color=color, linestyle="-", label=label)  # fmt: skip
        if misses:
            axes_rank.scatter(*zip(*misses, strict=True), marker="^", facecolors="none", edgecolors=color,
                              label=f"{label}: none up to the largest rank tried")  # fmt: skip
    for family, color in (("tt-shared", "tab:blue"), ("tt", "tab:green")):
        middle = [1 if family == "tt-shared" else d - 2 for d in ds]
        axes_params.plot(ds, [2 * n * r + m * n * r * r for m in middle], color=color, marker=".",
                         label=f"{family} student at r = {r} (the teacher's format)" if family == "tt-shared"
                         else f"{family} student at r = {r}")  # fmt: skip
    for ax, what in ((axes_rank, "smallest CP rank"), (axes_params, "parameters")):
        ax.set_yscale("log")
        ax.set_xticks(ds)
        ax.set_xlim(ds[0] - 0.6, ds[-1] + 0.6)
        ax.set_xlabel("d (sequence length)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes_rank.set_title(f"tt-shared teacher n = {n}, r = {r} (≥ {NEED} of 3 seeds)")


def write_scaling_plot(fits: Fits, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = sorted({t[:2] for t in fits.cp}, key=lambda nr: (-nr[0], nr[1]))
    columns = max(len(regimes), 1)
    fig, axes = plt.subplots(2, columns, figsize=(6.5 * columns, 10), squeeze=False)
    for column, (n, r) in enumerate(regimes):
        _scaling_panels(fits, axes[0][column], axes[1][column], n, r)
    fig.suptitle("Smallest CP rank fitting a shared-core RNN teacher, against d (log scale)")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def write_samples_plot(rows: Sequence[Mapping[str, str]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = _sample_table(rows)
    teachers = sorted(table)
    columns = max(len(teachers), 1)
    fig, axes = plt.subplots(1, columns, figsize=(6 * columns, 4.8), squeeze=False)
    colors = {"tt-shared": "tab:blue", "tt": "tab:green", "cp": "tab:red"}
    for ax, teacher in zip(axes[0], teachers, strict=False):
        n, r, d = teacher
        for (family, rank), by_m in sorted(table[teacher].items()):
            sizes = sorted(by_m)
            ax.plot(sizes, [max(_median([t for _, t in by_m[m]]), 1e-16) for m in sizes], marker="o",
                    color=colors[family], label=f"{family} r {rank} (median)")  # fmt: skip
            for m in sizes:
                ax.scatter([m] * len(by_m[m]), [max(t, 1e-16) for _, t in by_m[m]], s=10,
                           color=colors[family], alpha=0.4)  # fmt: skip
            params = cp_params(n, d, rank) if family == "cp" else (
                2 * n * rank + (1 if family == "tt-shared" else d - 2) * n * rank * rank)  # fmt: skip
            ax.axvline(params, color=colors[family], linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training inputs (dotted: each student's parameter count)")
        ax.set_ylabel("relative error on the held-out inputs")
        ax.set_title(f"n = {n}, r = {r}, d = {d} ({n**d} inputs)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- #
# README and the whole report
# --------------------------------------------------------------------------- #


def cut_lines(config: Any) -> list[str]:
    """What the sizing left out, computed from the config (so the README cannot drift from it)."""
    from tensorrnn.ranks.cpals import CHECK_EVERY
    from tensorrnn.ranks.cpfit import MAX_ENTRIES as LM_MAX_ENTRIES
    from tensorrnn.teacher_scaling import als_sweeps

    lm, no_gradient, capped = [], [], []
    for grid in config.teachers:
        for d in grid.orders:
            entries = grid.n**d
            ranks = grid.cp_ranks[d]
            with_lm = [k for k in ranks if entries <= LM_MAX_ENTRIES and entries * d * grid.n * k
                       <= config.lm_max_jacobian]  # fmt: skip
            if with_lm:
                lm.append(f"n {grid.n} d {d}: ranks {', '.join(map(str, with_lm))}")
            without = [k for k in ranks if entries * k > config.gradient_max_work]
            if without:
                no_gradient.append(f"n {grid.n} d {d}: ranks {', '.join(map(str, without))}")
            short = [f"{k}: {als_sweeps(config, entries, k)}" for k in ranks
                     if als_sweeps(config, entries, k) < config.als_sweeps]  # fmt: skip
            if short:
                capped.append(f"n {grid.n} d {d} (rank: sweeps) {', '.join(short)}")
    lines = [f"- Levenberg–Marquardt ({config.lm_restarts} starts × {config.lm_evaluations} evaluations) ran "
             f"only where its dense Jacobian has ≤ {config.lm_max_jacobian} entries: "
             f"{'; '.join(lm) or 'nowhere'}.",
             f"- ALS with line search: {config.als_restarts} start(s), at most {config.als_sweeps} sweeps, "
             f"stopping when {CHECK_EVERY} sweeps gain less than a fraction {config.als_stall:g}; fewer "
             f"sweeps where entries × rank × sweeps would pass {config.als_work:.3g}: "
             f"{'; '.join(capped) or 'none'}.",
             f"- Full-batch gradient training of the CP network ({config.adam_steps} Adam steps, then ≤ "
             f"{config.lbfgs_iters} L-BFGS iterations) was cut where entries × rank > "
             f"{config.gradient_max_work}: {'; '.join(no_gradient) or 'none'}."]  # fmt: skip
    if config.samples is not None:
        s = config.samples
        lines.append(f"- Learning from samples: {s.steps} mini-batch Adam steps (batch {s.batch}, no "
                     "L-BFGS) per fit; training sizes above half of a teacher's inputs were skipped, so "
                     "at least half the inputs are always test inputs; at d = 10 this sampled form is the "
                     "only "
                     "gradient training of the CP network.")  # fmt: skip
    return lines


def progress_lines(rows: Sequence[Mapping[str, str]], config: Any) -> list[str]:
    from tensorrnn.teacher_scaling import plan_jobs, row_key

    jobs = plan_jobs(config)
    done = {row_key(row) for row in rows}
    left = [j for j in jobs if j.key() not in done]
    seconds = sum(float(row["seconds"]) for row in rows)
    text = [f"{len(jobs) - len(left)} of {len(jobs)} planned fits are in `scaling.csv`; their fitting "
            f"time sums to {seconds:.0f} s ({seconds / 60:.0f} min) on one thread."]  # fmt: skip
    if left:
        groups: dict[str, int] = defaultdict(int)
        for job in left:
            groups[f"{job.part} n {job.n} d {job.d}"] += 1
        text.append("**Not yet run** (the grid continues where it stopped when the command is run again): "
                    + "; ".join(f"{k} ({v})" for k, v in groups.items()) + ".")  # fmt: skip
    return text


def write_readme(rows: Sequence[Mapping[str, str]], config: Any, path: Path) -> Path:
    fits = Fits(rows)
    regimes = sorted({t[:2] for t in fits.cp}, key=lambda nr: (-nr[0], nr[1]))
    lines = ["# The exponential law, trained (issue 26)", "", "    " + COMMAND, "",
             "re-runs it (finished fits are skipped; a rerun with other fitting settings is refused). "
             "Sized for one CPU thread: `OMP_NUM_THREADS=1`, `--threads 1`.", ""]  # fmt: skip
    lines += progress_lines(rows, config) + ["", "## What it shows (generated from scaling.csv)", ""]
    for n, r in regimes:
        lines += [growth_sentence(fits, n, r), "", shortfall_sentence(fits, n, r), ""]
    sentence = samples_sentence(rows)
    if sentence:
        lines += [sentence, ""]
    lines += ["![smallest CP rank against d](scaling.png)", "", "![test error against training inputs]"
              "(samples.png)", "", "Tables: [scaling.md](scaling.md) (per d; every CP rank by method; "
              "learning from samples; time).", "", "## How it was run, and what was cut", ""]  # fmt: skip
    seeds = ", ".join(map(str, config.seeds))
    lines += [f"- Teachers: random tt-shared tensors, one instance per seed ({seeds}); "
              "CP students are fitted to all n^d entries (one-hot inputs: the scores are the coefficient "
              "tensor). Rates: " + ", ".join(f"{k} {v:g}" for k, v in config.lrs.items()) + "."]  # fmt: skip
    lines += cut_lines(config)
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_report(rows: Sequence[Mapping[str, str]], config: Any, out: Path) -> None:
    """``scaling.md``, ``scaling.png``, ``samples.png`` and ``README.md`` from the rows."""
    write_table(rows, out / "scaling.md")
    write_scaling_plot(Fits(rows), out / "scaling.png")
    write_samples_plot(rows, out / "samples.png")
    write_readme(rows, config, out / "README.md")
