"""Table (``ranks.md``) and figure (``ranks.png``) of a rank sweep, from its CSV rows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tensorrnn.atomic import atomic_save_figure, atomic_write_text
from tensorrnn.ranks.bounds import (
    STATUS_CERTIFIED,
    STATUS_OPEN,
    STATUS_PROVED,
    THEOREM_BOUND_OF_FAMILY,
    cp_expansion_bound,
    proof_status,
)

PERIODIC = ("tt-periodic", "tt-periodic-shared")
FAMILY_ORDER = {"tt": 0, "tt-shared": 1, "tt-uniform": 2, "cp": 3, "tt-periodic": 4,
                "tt-periodic-shared": 5}  # fmt: skip


@dataclass
class Summary:
    """Everything measured for one (family, n, r, d, split)."""

    family: str
    n: int
    r: int
    d: int
    split: str
    rows: int
    cols: int
    float_ranks: list[int]
    min_gap: float
    certified: int | None
    bound_q_rm1: int | None
    bound_q_r: int | None
    mincut: int
    cp_upper: int | None
    flags: list[str]

    @property
    def theorem_bound(self) -> int | None:
        """The bound the literature proves for this family, on the odd-even split."""
        which = THEOREM_BOUND_OF_FAMILY.get(self.family)
        if which is None or self.split != "odd-even":
            return None
        return self.bound_q_rm1 if which == "q_rm1" else self.bound_q_r

    @property
    def determined(self) -> bool:
        """The certified lower bound meets the min-cut upper bound."""
        return self.certified is not None and self.certified == self.mincut

    @property
    def cp_rank(self) -> str:
        """The *CP rank determined* cell: where a CP upper bound meets the certified lower bound.

        The certified odd/even rank bounds the CP rank of almost every tensor of the family
        from below. ``"= R (expansion)"``: the chain's expansion (or ``n^(d-1)``) bounds every
        tensor's CP rank by the same R, so the generic CP rank is exactly R (proved).
        ``"= R (CP fit, float)"``: an exact CP fit of one float instance reached R (evidence
        for that instance, not a proof). ``"no"`` otherwise.
        """
        if self.certified is None:
            return "no"
        upper = cp_expansion_bound(self.family, self.n, self.r, self.d)
        if upper is not None and upper[0] == self.certified:
            return f"= {self.certified} ({upper[1]})"
        if self.cp_upper is not None and self.cp_upper == self.certified:
            return f"= {self.certified} (CP fit, float)"
        return "no"

    @property
    def status(self) -> str:
        """``"proved for all d"``, ``"certified"`` or ``"open"`` (see :func:`proof_status`)."""
        return proof_status(self.family, self.n, self.r, self.d, self.split, self.certified, self.mincut)[0]

    @property
    def witness(self) -> str | None:
        """The witness kind behind ``"proved for all d"`` (``None`` otherwise)."""
        return proof_status(self.family, self.n, self.r, self.d, self.split, self.certified, self.mincut)[1]

    @property
    def verdict(self) -> str:
        bound = self.theorem_bound
        if bound is None:
            return "no theorem for this family/split"
        if self.mincut < bound:
            return "VIOLATED (min-cut below bound)"
        if self.certified is not None and self.certified >= bound:
            return "holds (certified)"
        if self.float_ranks and max(self.float_ranks) >= bound:
            return "holds (float evidence only)"
        return "not shown by these instances"


def _int(text: str) -> int | None:
    return int(float(text)) if text not in ("", None) else None


def summarize(rows: Sequence[dict[str, str]]) -> list[Summary]:
    """Group CSV rows by (family, n, r, d, split)."""
    groups: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[(row["family"], int(row["n"]), int(row["r"]), int(row["d"]), row["split"])].append(row)
    out = []
    for (family, n, r, d, split), members in groups.items():
        floats = [m for m in members if m["method"] == "float"]
        exacts = [m for m in members if m["method"] == "exact"]
        gaps = [float(m["gap"]) for m in floats if m["gap"] not in ("", "nan")]
        fits = [_int(m["cp_upper"]) for m in floats if m["cp_upper"]]
        first = members[0]
        out.append(
            Summary(
                family=family, n=n, r=r, d=d, split=split,
                rows=int(first["rows"]), cols=int(first["cols"]),
                float_ranks=sorted({int(m["rank"]) for m in floats}),
                min_gap=min(gaps) if gaps else math.nan,
                certified=max((int(m["rank"]) for m in exacts), default=None),
                bound_q_rm1=_int(first["bound_q_rm1"]), bound_q_r=_int(first["bound_q_r"]),
                mincut=int(first["mincut"]),
                cp_upper=min(fits) if fits else None,
                flags=sorted({m["flag"] for m in members if m["flag"]}),
            )
        )  # fmt: skip
    out.sort(key=lambda s: (FAMILY_ORDER.get(s.family, 9), s.split, s.n, s.r, s.d))
    return out


def _cell(value: object) -> str:
    return "–" if value is None else str(value)


LEGEND = """\
Columns: *float* is the SVD rank of Gaussian float64 instances (evidence only;
*gap* is the smallest σ_R/σ_R+1 over the trials); *certified* is the largest rank
over GF(p) of integer instances, a proven lower bound on the generic rank;
*q=min(n,r−1)* is the thesis's bound for one shared core, *q=min(n,r)* the
Khrulkov–Novikov–Oseledets bound for distinct cores, both q^(d/2); *min-cut* is
the tensor network's upper bound on this matricization rank; *CP ≤* is the
smallest exact CP fit found for a float instance (an upper bound on that
instance's CP rank; "–" means no fit was tried or found, which proves nothing);
*determined* says the certified rank meets the min-cut, so the generic rank of
this matricization is known exactly. *CP rank determined*: "= R (expansion)" where the
chain's expansion into r^(d−1) rank-one terms (r^d for a ring; trimmed bonds) meets the
certified rank, so the generic CP rank is exactly R (proved; docs/THEORY.md Theorem 6);
"= R (CP fit, float)" where an exact CP fit of a float instance meets it (evidence for that
instance only); "no" otherwise. *status*: **proved for all d** when an explicit
witness with a closed-form rank (named in brackets; `tensorrnn witness`, proofs in
docs/THEORY.md) meets the min-cut in that setting's regime, so the generic odd/even
rank equals the min-cut for every even d (brackets: the witness kind, and how explicit the
witness is where it is not a closed-form one: a searched diagonal, free end cores, the
open-set argument, or existence by THEORY.md Theorem 8); **certified up to N=…** when the certified
rank equals the min-cut but no all-d proof is known (N: the largest matrix side at
which this family, n and r are determined here); **open** otherwise.
"""


def regime(n: int, r: int) -> str:
    """The regime of ``(n, r)`` that decides the min-cut and its witness."""
    if n < r:
        return "n < r"
    if n == r:
        return "n = r"
    if n < r * r:
        return "r < n < r²"
    return "n ≥ r²"


REGIMES = ("n < r", "n = r", "r < n < r²", "n ≥ r²")


def certified_reach(summaries: Sequence[Summary]) -> dict[tuple, int]:
    """Largest matrix side at which each (family, n, r, split) is determined."""
    reach: dict[tuple, int] = {}
    for s in summaries:
        if s.determined:
            key = (s.family, s.n, s.r, s.split)
            reach[key] = max(reach.get(key, 0), s.rows)
    return reach


def status_label(s: Summary, reach: dict[tuple, int]) -> str:
    """The status cell: "proved for all d (hub)", "certified up to N=4096" or "open"."""
    status = s.status
    if status == STATUS_PROVED:
        return f"{status} ({s.witness})"
    if status == STATUS_CERTIFIED:
        return f"certified up to N={reach.get((s.family, s.n, s.r, s.split), s.rows)}"
    return STATUS_OPEN


def status_counts(summaries: Sequence[Summary]) -> dict[str, int]:
    """How many settings are proved for all d, certified only, open."""
    counts = {STATUS_PROVED: 0, STATUS_CERTIFIED: 0, STATUS_OPEN: 0}
    for s in summaries:
        counts[s.status] += 1
    return counts


def write_table(rows: Sequence[dict[str, str]], path: Path) -> Path:
    """Write ``ranks.md``: one row per (family, n, r, d, split) with verdicts and status."""
    summaries = summarize(rows)
    reach = certified_reach(summaries)
    lines = [
        "# Matricization ranks of random tensors with distinct, shared and uniform cores",
        "",
        LEGEND,
        "| family | n | r | d | split | matrix | float | gap | certified | q=min(n,r−1) "
        "| q=min(n,r) | min-cut | CP ≤ | certified / bound | verdict | determined | CP rank determined "
        "| status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        bound = s.theorem_bound
        ratio = (
            f"{s.certified / bound:.3g}" if bound and s.certified is not None else "–"
        )
        float_text = ",".join(map(str, s.float_ranks)) or "–"
        gap = "–" if math.isnan(s.min_gap) else f"{s.min_gap:.2g}"
        lines.append(
            f"| {s.family} | {s.n} | {s.r} | {s.d} | {s.split} | {s.rows}×{s.cols} | {float_text} "
            f"| {gap} | {_cell(s.certified)} | {_cell(s.bound_q_rm1)} | {_cell(s.bound_q_r)} "
            f"| {s.mincut} | {_cell(s.cp_upper)} | {ratio} | {s.verdict} "
            f"| {'yes' if s.determined else 'no'} | {s.cp_rank} | {status_label(s, reach)} |"
        )
    total = len(summaries)
    determined = sum(s.determined for s in summaries)
    holds = sum(s.verdict.startswith("holds (certified)") for s in summaries)
    tested = sum(s.theorem_bound is not None for s in summaries)
    violated = sum(s.verdict.startswith("VIOLATED") for s in summaries)
    lines += [
        "",
        f"**Summary.** {total} settings; the theorem's bound is certified in {holds} of the "
        f"{tested} settings it covers, violated in {violated}; the generic matricization rank "
        f"is determined (certified = min-cut) in {determined} of {total}.",
    ]
    counts = status_counts(summaries)
    cp_proved = sum(s.cp_rank.endswith("(expansion)") for s in summaries)
    cp_fitted = sum(s.cp_rank.endswith("(CP fit, float)") for s in summaries)
    lines += [
        "",
        f"**Status.** {counts[STATUS_PROVED]} of {total} settings are proved for every even d "
        f"(a witness or argument meets the min-cut), {counts[STATUS_CERTIFIED]} are certified "
        f"at the listed N only, "
        f"{counts[STATUS_OPEN]} are open.",
        "",
        f"**CP rank.** The generic CP rank is determined exactly (certified rank = the "
        f"expansion's number of terms) in {cp_proved} of {total} settings; an exact CP fit of a "
        f"float instance meets the certified rank in {cp_fitted} more (evidence only).",
    ]
    flagged = [(s, f) for s in summaries for f in s.flags]
    if flagged:
        lines += ["", "## Flags", ""]
        lines += [f"- {s.family} n={s.n} r={s.r} d={s.d} {s.split}: {f}" for s, f in flagged]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def write_plot(rows: Sequence[dict[str, str]], path: Path) -> Path:
    """Write ``ranks.png``: rank against d, one panel per (n, r), bounds as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = [s for s in summarize(rows) if s.split == "odd-even"] or summarize(rows)
    panels = sorted({(s.n, s.r) for s in summaries})
    ns = sorted({n for n, _ in panels})
    rs = sorted({r for _, r in panels})
    fig, axes = plt.subplots(
        len(ns), len(rs), figsize=(max(8.0, 3.2 * len(rs)), 1.0 + 2.8 * len(ns)), squeeze=False
    )
    markers = {"tt": "o", "tt-shared": "s", "tt-uniform": "^", "cp": "D", "tt-periodic": "v",
               "tt-periodic-shared": "P"}  # fmt: skip
    offsets = {"tt": -0.15, "tt-shared": 0.0, "tt-uniform": 0.15, "cp": 0.3, "tt-periodic": -0.3,
               "tt-periodic-shared": 0.45}  # fmt: skip
    for i, n in enumerate(ns):
        for j, r in enumerate(rs):
            ax = axes[i][j]
            here = [s for s in summaries if (s.n, s.r) == (n, r)]
            if not here:
                ax.set_visible(False)
                continue
            ds = sorted({s.d for s in here})
            for which, style, label in (
                ("bound_q_r", "--", "q=min(n,r)"),
                ("bound_q_rm1", "-", "q=min(n,r−1)"),
            ):
                pairs = sorted({(s.d, getattr(s, which)) for s in here if getattr(s, which)})
                if pairs:
                    ax.plot(*zip(*pairs, strict=True), style, color="gray", lw=1, label=label)
            cut = sorted({(s.d, s.mincut) for s in here if s.family not in ("cp", *PERIODIC)})
            if cut:
                ax.plot(*zip(*cut, strict=True), ":", color="black", lw=1, label="min-cut")
            ring = sorted({(s.d, s.mincut) for s in here if s.family in PERIODIC})
            if ring:
                ax.plot(*zip(*ring, strict=True), "-.", color="black", lw=1, label="ring min-cut")
            for family in sorted({s.family for s in here}, key=FAMILY_ORDER.get):
                pts = [(s.d + offsets[family], s.certified) for s in here
                       if s.family == family and s.certified]  # fmt: skip
                if pts:
                    ax.plot(*zip(*pts, strict=True), markers.get(family, "x"), ms=5,
                            label=f"{family} (certified)")  # fmt: skip
                fl = [(s.d + offsets[family], max(s.float_ranks)) for s in here
                      if s.family == family and s.float_ranks]  # fmt: skip
                if fl and not pts:
                    ax.plot(*zip(*fl, strict=True), markers.get(family, "x"), ms=5, mfc="none",
                            label=f"{family} (float)")  # fmt: skip
            ax.set_yscale("log", base=2)
            ax.set_xticks(ds)
            ax.set_title(f"n={n}, r={r}", fontsize=9)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("odd-even rank")
            if i == len(ns) - 1:
                ax.set_xlabel("d")
    labels = _figure_legend(fig, axes, columns=3)
    fig.suptitle("Odd/even matricization rank vs order d (markers: certified over GF(p); lines: bounds)",
                 fontsize=10)  # fmt: skip
    legend_rows = (len(labels) + 2) // 3
    fig.tight_layout(rect=(0, 0.03 + 0.25 * legend_rows / fig.get_figheight(), 1, 0.95))
    atomic_save_figure(fig, path, dpi=110)
    return path


def _figure_legend(fig, axes, columns: int) -> list[str]:
    """One legend below all panels, each label once; returns the labels."""
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), columns), fontsize=8)
    return labels


def write_status_figure(rows: Sequence[dict[str, str]], path: Path) -> Path | None:
    """Write the at-a-glance figure: one panel per regime (n < r, n = r, r < n < r², n ≥ r²).

    Every odd-even setting of tt, tt-shared and tt-uniform is drawn as a fraction of its
    min-cut (1 = the min-cut, the most any tensor of the family can reach): the certified
    rank as markers, the thesis's bound min(n,r−1)^(d/2) and the Khrulkov–Novikov–Oseledets
    bound min(n,r)^(d/2) as thin lines, one per (n, r). Each panel's title says how many
    of its settings are proved for every d and by which witness.

    Parameters
    ----------
    rows
        The rows of a ``ranks.csv`` (:func:`tensorrnn.ranks.lab.read_rows`).
    path
        Where to write the PNG; nothing is written (``None`` is returned) when no row is an
        odd-even setting of tt, tt-shared or tt-uniform.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from tensorrnn.ranks.bounds import WITNESS_FAMILIES

    summaries = [s for s in summarize(rows)
                 if s.split == "odd-even" and s.family in WITNESS_FAMILIES and s.d % 2 == 0]  # fmt: skip
    if not summaries:  # e.g. a sweep of periodic chains only: four empty panels would say nothing
        return None
    # Two by two, not one strip: at a web page's width four panels in a row shrank to
    # unreadable lettering.
    fig, grid = plt.subplots(2, 2, figsize=(10, 8), sharey=True, squeeze=False)
    axes = grid.reshape(1, -1)
    markers = {"tt": "o", "tt-shared": "s", "tt-uniform": "^"}
    colors = {"tt": "tab:blue", "tt-shared": "tab:green", "tt-uniform": "tab:purple"}
    offsets = {"tt": -0.2, "tt-shared": 0.0, "tt-uniform": 0.2}
    for ax, reg in zip(axes[0], REGIMES, strict=True):
        here = [s for s in summaries if regime(s.n, s.r) == reg]
        ax.axhline(1.0, color="black", lw=1.5, label="min-cut (upper bound)")
        if not here:
            ax.set_title(f"{reg}\nno settings", fontsize=9)
            ax.set_xticks([])
            continue
        for n, r in sorted({(s.n, s.r) for s in here}):
            pts = sorted({(s.d, s.mincut, s.bound_q_rm1, s.bound_q_r) for s in here if (s.n, s.r) == (n, r)})
            for col, style, color, label in ((2, "-", "tab:red", "thesis min(n,r−1)^(d/2)"),
                                             (3, "--", "tab:orange", "KNO 2018 min(n,r)^(d/2)")):  # fmt: skip
                line = [(p[0], p[col] / p[1]) for p in pts if p[col]]
                if line:
                    ax.plot(*zip(*line, strict=True), style, color=color, lw=0.8, alpha=0.5, label=label)
        for family in WITNESS_FAMILIES:
            pts = [(s.d + offsets[family], s.certified / s.mincut) for s in here
                   if s.family == family and s.certified]  # fmt: skip
            if pts:
                ax.plot(*zip(*pts, strict=True), markers[family], color=colors[family], ms=4, mfc="none",
                        label=f"{family} certified")  # fmt: skip
        counts = status_counts(here)
        kinds = sorted({s.witness for s in here if s.witness})
        proved = f"{counts[STATUS_PROVED]}/{len(here)} proved for all d"
        if kinds:
            proved += f" ({', '.join(kinds)})"
        rest = []
        if counts[STATUS_CERTIFIED]:
            rest.append(f"{counts[STATUS_CERTIFIED]} certified only")
        if counts[STATUS_OPEN]:
            rest.append(f"{counts[STATUS_OPEN]} open")
        ax.set_title(f"{reg}: {proved}" + (f"\n{', '.join(rest)}" if rest else ""), fontsize=9)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("order d")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for row in grid:
        row[0].set_ylabel("rank / min-cut")
    _figure_legend(fig, axes, columns=3)
    fig.suptitle("Odd/even rank as a fraction of the min-cut, per regime:\ncertified ranks "
                 "(markers) sit at the min-cut; the theorems' bounds (lines) fall away with d",
                 fontsize=11)  # fmt: skip
    fig.tight_layout(rect=(0, 0.09, 1, 0.94))
    atomic_save_figure(fig, path, dpi=110)
    return path


def write_periodic_figure(rows: Sequence[dict[str, str]], path: Path) -> Path | None:
    """Write ``ranks_periodic.png``: certified odd/even rank of periodic chains over the ring's
    min-cut, against d, one panel per n, one line per (family, r); ``None`` without such rows.

    A point below 1 is a setting where every integer instance drawn stayed below the ring's
    min-cut: certified ranks are lower bounds, so such a point shows the shortfall is at most
    that large (docs/THEORY.md §9 proves some of them for every tensor of the family).
    """
    summaries = [s for s in summarize(rows)
                 if s.family in PERIODIC and s.split == "odd-even" and s.certified]  # fmt: skip
    if not summaries:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({s.n for s in summaries})
    fig, axes = plt.subplots(1, len(ns), figsize=(3.6 * len(ns), 3.6), sharey=True, squeeze=False)
    styles = {"tt-periodic": "--", "tt-periodic-shared": "-"}
    markers = {2: "o", 3: "s", 4: "^", 5: "D", 6: "v"}
    for ax, n in zip(axes[0], ns, strict=True):
        for family in PERIODIC:
            for r in sorted({s.r for s in summaries if s.n == n and s.family == family}):
                shift = -0.12 if family == "tt-periodic" else 0.12  # keep equal points apart
                pts = sorted((s.d + shift, s.certified / s.mincut) for s in summaries
                             if (s.n, s.r, s.family) == (n, r, family))  # fmt: skip
                ax.plot(*zip(*pts, strict=True), styles[family], marker=markers.get(r, "x"), ms=5,
                        mfc="none" if family == "tt-periodic" else None,
                        label=f"{family}, r={r}")  # fmt: skip
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_title(f"n={n}", fontsize=9)
        ax.set_xlabel("order d")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("certified rank / ring min-cut")
    _figure_legend(fig, axes, columns=6)
    fig.suptitle("Periodic chains tr(G[i_1]⋯G[i_d]): certified odd/even rank over GF(p) as a fraction "
                 "of the ring's min-cut", fontsize=10)  # fmt: skip
    fig.tight_layout(rect=(0, 0.12, 1, 0.93))
    atomic_save_figure(fig, path, dpi=110)
    return path
