"""Table (``ranks.md``) and figure (``ranks.png``) of a rank sweep, from its CSV rows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tensorrnn.atomic import atomic_save_figure, atomic_write_text
from tensorrnn.ranks.bounds import THEOREM_BOUND_OF_FAMILY

FAMILY_ORDER = {"tt": 0, "tt-shared": 1, "tt-uniform": 2, "cp": 3}


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
this matricization is known exactly.
"""


def write_table(rows: Sequence[dict[str, str]], path: Path) -> Path:
    """Write ``ranks.md``: one row per (family, n, r, d, split) with verdicts."""
    summaries = summarize(rows)
    lines = [
        "# Matricization ranks of random tensors with distinct, shared and uniform cores",
        "",
        LEGEND,
        "| family | n | r | d | split | matrix | float | gap | certified | q=min(n,r−1) "
        "| q=min(n,r) | min-cut | CP ≤ | certified / bound | verdict | determined |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
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
            f"| {'yes' if s.determined else 'no'} |"
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
    markers = {"tt": "o", "tt-shared": "s", "tt-uniform": "^", "cp": "D"}
    offsets = {"tt": -0.15, "tt-shared": 0.0, "tt-uniform": 0.15, "cp": 0.3}
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
            cut = sorted({(s.d, s.mincut) for s in here if s.family != "cp"})
            if cut:
                ax.plot(*zip(*cut, strict=True), ":", color="black", lw=1, label="min-cut")
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
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8)
    fig.suptitle("Odd/even matricization rank vs order d (markers: certified over GF(p); lines: bounds)",
                 fontsize=10)  # fmt: skip
    legend_rows = (len(labels) + 2) // 3
    fig.tight_layout(rect=(0, 0.03 + 0.25 * legend_rows / fig.get_figheight(), 1, 0.95))
    atomic_save_figure(fig, path, dpi=110)
    return path
