"""The witness lab (``tensorrnn witness``): explicit witnesses, their exact ranks, closed forms
and the min-cut, planned, measured and written here; the command only parses and calls.

A *job* is one witness (kind, family, n, r, d). For each, :func:`~tensorrnn.ranks.bounds.
check_witness` takes the exact odd/even rank over GF(p) and sets it beside the closed form
(valid for every even d, docs/THEORY.md) and the min-cut upper bound. The lab writes
``witness.csv`` (one row a witness) and ``witness.md`` (the table with its legend), whole
and atomically; it is not resumable (every witness takes seconds at the sides allowed).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tensorrnn.atomic import atomic_write_text
from tensorrnn.errors import ConfigError
from tensorrnn.labkit import check_output_folder
from tensorrnn.ranks.bounds import WitnessCheck, check_witness
from tensorrnn.ranks.modp import DEFAULT_PRIME, check_prime
from tensorrnn.witness import KINDS, WITNESS_KINDS, check_witness_sizes, mincut_kind

__all__ = [
    "CSV_COLUMNS", "CSV_FILE", "FAMILIES", "SELECTIONS", "TABLE_FILE", "WitnessJob", "check_witness_settings",
    "plan_witnesses", "run_witness_lab", "witness_table", "write_witness_files",
]  # fmt: skip

CSV_FILE = "witness.csv"
TABLE_FILE = "witness.md"
CSV_COLUMNS = ["kind", "family", "n", "r", "d", "rows", "cols", "exact", "closed_form", "formula",
               "mincut", "meets_mincut", "agrees", "construction", "prime", "engine", "seconds"]  # fmt: skip
FAMILIES = ("tt-uniform", "tt-shared", "tt")
SELECTIONS = ("best", "all")
"""Kinds chosen per (n, r): ``best`` the witness that meets the min-cut, ``all`` every kind whose
regime holds."""
ENGINES = ("blas", "flint")


@dataclass(frozen=True)
class WitnessJob:
    """One witness to build and measure."""

    kind: str
    family: str
    n: int
    r: int
    d: int


def _applies(kind: str, n: int, r: int) -> bool:
    try:
        check_witness_sizes(kind, n, r, 2)
    except ConfigError:
        return False
    return True


def _kinds_at(kinds: str | Sequence[str], n: int, r: int) -> list[str]:
    if kinds == "best":
        return [mincut_kind(n, r)]
    if kinds == "all":
        return [k for k in WITNESS_KINDS if _applies(k, n, r)]
    return list(kinds)


def _families_of(kind: str, families: Sequence[str] | None, chosen: bool) -> list[str]:
    """The families to build ``kind`` in; a family the kind lacks is skipped where the kind was
    chosen for the sizes (``best``/``all`` without families), refused where it was asked for."""
    wanted = list(families) if families else [KINDS[kind].family]
    usable = [fam for fam in wanted if fam in KINDS[kind].families]
    if len(usable) < len(wanted) and not (chosen and families is None):
        fam = next(f for f in wanted if f not in usable)
        raise ConfigError(f"family {fam}: the {kind} witness exists as "
                          f"{', '.join(KINDS[kind].families)} only")  # fmt: skip
    return usable


def plan_witnesses(
    kinds: str | Sequence[str],
    ns: Sequence[int],
    rs: Sequence[int],
    ds: Sequence[int],
    *,
    families: Sequence[str] | None = None,
    max_side: int = 4096,
) -> list[WitnessJob]:
    """Every witness of the grid, validated before any rank is computed.

    ``kinds``: ``"best"``, ``"all"`` (:data:`SELECTIONS`) or a list of
    :data:`~tensorrnn.witness.WITNESS_KINDS`; ``families``: default each kind's own.

    Raises
    ------
    ConfigError
        A size below 1, a kind outside its regime, a family the kind lacks, a
        matricization side above ``max_side``, or no witness at all.
    """
    for name, values in (("n", ns), ("r", rs), ("d", ds)):
        if min(values) < 1:
            raise ConfigError(f"{name} = {min(values)} must be at least 1")
    if max_side < 1:
        raise ConfigError(f"max_side = {max_side} must be at least 1")
    chosen = isinstance(kinds, str)
    if chosen and kinds not in SELECTIONS:
        raise ConfigError(f"kinds {kinds!r}: give best, all or a list of {', '.join(WITNESS_KINDS)}")
    jobs = []
    for n in ns:
        for r in rs:
            here = _kinds_at(kinds, n, r)
            for d in ds:
                for kind in here:
                    check_witness_sizes(kind, n, r, d)
                    for family in _families_of(kind, families, chosen):
                        side = n ** (d // 2)
                        if side > max_side:
                            raise ConfigError(
                                f"the {kind} witness at n={n}, d={d} has a {side}x{side} matricization, "
                                f"above max_side {max_side}; lower d or raise max_side"
                            )
                        jobs.append(WitnessJob(kind, family, n, r, d))
    if not jobs:
        raise ConfigError("no witness applies to these sizes; widen n, r or the kinds")
    return jobs


def check_witness_settings(engine: str, prime: int | None) -> int:
    """The prime of the exact ranks (``None``: the default), checked for ``engine``."""
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} is unknown; choose blas or flint")
    return check_prime(DEFAULT_PRIME if prime is None else prime, engine)


def _rows(checks: Sequence[WitnessCheck]) -> list[dict[str, object]]:
    return [
        {"kind": c.kind, "family": c.family, "n": c.n, "r": c.r, "d": c.d, "rows": c.rows,
         "cols": c.cols, "exact": c.exact, "closed_form": c.closed_form,
         "formula": KINDS[c.kind].rank, "mincut": c.mincut,
         "meets_mincut": "yes" if c.meets_mincut else "no", "agrees": "yes" if c.agrees else "NO",
         "construction": c.construction, "prime": c.prime, "engine": c.engine,
         "seconds": f"{c.seconds:.3f}"}
        for c in checks
    ]  # fmt: skip


def witness_table(checks: Sequence[WitnessCheck]) -> str:
    """The markdown table of the checks (no trailing newline)."""
    head = ["kind", "family", "n", "r", "d", "N", "exact", "closed form", "formula", "min-cut",
            "= min-cut", "construction"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in _rows(checks):
        cells = [row["kind"], row["family"], row["n"], row["r"], row["d"], row["rows"], row["exact"],
                 row["closed_form"], row["formula"], row["mincut"], row["meets_mincut"],
                 row["construction"]]  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def _csv_text(checks: Sequence[WitnessCheck]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_rows(checks))
    return buffer.getvalue()


def _markdown(checks: Sequence[WitnessCheck], table: str) -> str:
    prime = checks[0].prime
    return (
        "# Witnesses: exact odd/even rank, closed form, min-cut\n\n"
        f"*exact*: rank over GF({prime}) of the witness's odd/even matricization (a certified lower "
        "bound on the rank over Q); *closed form*: the rank proved for every even d (docs/THEORY.md); "
        "*= min-cut*: the closed form equals the min-cut upper bound, so the generic odd/even rank of "
        "the family is determined for every even d.\n\n" + table + "\n"
    )


def write_witness_files(checks: Sequence[WitnessCheck], out: Path) -> tuple[Path, Path]:
    """Write ``witness.csv`` and ``witness.md`` into ``out`` (created if missing)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CSV_FILE, _csv_text(checks))
    atomic_write_text(out / TABLE_FILE, _markdown(checks, witness_table(checks)))
    return out / CSV_FILE, out / TABLE_FILE


def run_witness_lab(
    jobs: Sequence[WitnessJob],
    *,
    prime: int | None = None,
    engine: str = "blas",
    out: str | Path | None = None,
    quiet: bool = False,
) -> list[WitnessCheck]:
    """Measure every witness of ``jobs``; with ``out``, write its files there.

    The settings and the output folder are checked before any rank is computed,
    so a refusal writes nothing.
    """
    from tqdm import tqdm

    p = check_witness_settings(engine, prime)
    if out is not None:
        check_output_folder(Path(out), (CSV_FILE, TABLE_FILE))
    checks = [
        check_witness(job.kind, job.n, job.r, job.d, family=job.family, prime=p, engine=engine)
        for job in tqdm(jobs, desc="witnesses", disable=quiet, leave=False)
    ]
    if out is not None:
        write_witness_files(checks, Path(out))
    return checks
