"""``tensorrnn witness``: explicit witnesses, their exact ranks, closed forms and the min-cut."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import typer

from tensorrnn.cli.app import app

CSV_FILE = "witness.csv"
TABLE_FILE = "witness.md"
CSV_COLUMNS = ["kind", "family", "n", "r", "d", "rows", "cols", "exact", "closed_form", "formula",
               "mincut", "meets_mincut", "agrees", "construction", "prime", "engine", "seconds"]  # fmt: skip


@app.command("witness")
def witness_command(
    kind: str = typer.Option(
        "best",
        help="Comma list of delta, alternating, hub, matrix-unit, transfer; 'best' (the witness that "
        "meets the min-cut at each n, r) or 'all' (every kind whose regime holds).",
    ),
    n: str = typer.Option("2..4", help="Mode sizes: 2,3 or 2..4."),
    r: str = typer.Option("2,3", help="TT ranks: 2,3 or 2..5."),
    d: str = typer.Option("4,6", help="Even orders: 4,6 or 4..12 (ranges keep the even values)."),
    family: str = typer.Option(
        None, help="tt-uniform, tt-shared or tt (comma list); default each kind's own family."
    ),
    prime: int = typer.Option(None, help="Prime of the exact rank (default: the blas engine's)."),
    engine: str = typer.Option("blas", help="Exact engine: blas (fast) or flint (reference)."),
    max_side: int = typer.Option(4096, help="Refuse a matricization with a side above this."),
    out: Path = typer.Option(None, help=f"Folder for {CSV_FILE} and {TABLE_FILE} (default: print only)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Build explicit witnesses and set each one's exact odd/even rank over GF(p) beside its
    closed form (valid for every even d, docs/THEORY.md) and the min-cut upper bound.

    Where the closed form equals the min-cut, the generic odd/even rank of tt, tt-shared
    and tt-uniform tensors is determined for every even d. Exits with status 1 if an
    exact rank ever differs from its closed form.

    Example:

        tensorrnn witness --kind best --n 2..9 --r 3 --d 4,6

        tensorrnn witness --kind delta,hub,transfer --n 3 --r 3 --d 4..10 --out results/witness
    """
    from tqdm import tqdm

    from tensorrnn.cli.parsing import even_orders, parse_int_list, parse_name_list
    from tensorrnn.errors import ConfigError
    from tensorrnn.ranks.bounds import check_witness
    from tensorrnn.ranks.modp import DEFAULT_PRIME, check_prime
    from tensorrnn.witness import KINDS, WITNESS_KINDS, check_witness_sizes, mincut_kind

    # Everything is validated before any rank is computed or anything is written.
    ns = parse_int_list(n, "n")
    rs = parse_int_list(r, "r")
    try:
        ds = even_orders(d)
    except ConfigError:
        raise ConfigError(
            f"--d {d!r}: witness ranks are stated for the odd-even split, which needs even orders; "
            "give e.g. 4,6 or 4..12"
        ) from None
    for name, values in (("n", ns), ("r", rs), ("d", ds)):
        if values[0] < 1:
            raise ConfigError(f"--{name} {values[0]} must be at least 1")
    if max_side < 1:
        raise ConfigError(f"--max-side {max_side} must be at least 1")
    special = kind.strip().lower()
    kinds = None if special in ("best", "all") else parse_name_list(kind, "kind", WITNESS_KINDS)
    families = None if family is None else parse_name_list(
        family, "family", ("tt-uniform", "tt-shared", "tt"))  # fmt: skip
    if engine not in ("blas", "flint"):
        raise ConfigError(f"--engine {engine!r} is unknown; choose blas or flint")
    p = check_prime(DEFAULT_PRIME if prime is None else prime, engine)

    jobs = []
    for nn in ns:
        for rr in rs:
            if special == "best":
                here = [mincut_kind(nn, rr)]
            elif special == "all":
                here = [k for k in WITNESS_KINDS if _applies(k, nn, rr)]
            else:
                here = kinds
            for dd in ds:
                for k in here:
                    check_witness_sizes(k, nn, rr, dd)
                    fams = families or [KINDS[k].family]
                    for fam in fams:
                        if fam not in KINDS[k].families:
                            if special in ("best", "all") and families is None:
                                continue
                            raise ConfigError(
                                f"--family {fam}: the {k} witness exists as "
                                f"{', '.join(KINDS[k].families)} only"
                            )
                        side = nn ** (dd // 2)
                        if side > max_side:
                            raise ConfigError(
                                f"the {k} witness at n={nn}, d={dd} has a {side}x{side} matricization, "
                                f"above --max-side {max_side}; lower --d or raise --max-side"
                            )
                        jobs.append((k, fam, nn, rr, dd))
    if not jobs:
        raise ConfigError("no witness applies to these sizes; widen --n, --r or --kind")
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder; give a folder")

    checks = []
    for k, fam, nn, rr, dd in tqdm(jobs, desc="witnesses", disable=quiet, leave=False):
        checks.append(check_witness(k, nn, rr, dd, family=fam, prime=p, engine=engine))
    table = _table(checks)
    typer.echo(table)
    if out is not None:
        from tensorrnn.atomic import atomic_write_text

        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / CSV_FILE, _csv(checks))
        atomic_write_text(out / TABLE_FILE, _markdown(checks, table))
        typer.echo(f"wrote {out / CSV_FILE}, {out / TABLE_FILE}")
    wrong = [c for c in checks if not c.agrees]
    if wrong:
        for c in wrong:
            typer.echo(f"MISMATCH: {c.kind} n={c.n} r={c.r} d={c.d}: exact {c.exact} != closed form "
                       f"{c.closed_form}", err=True)  # fmt: skip
        raise typer.Exit(1)


def _applies(kind: str, n: int, r: int) -> bool:
    from tensorrnn.errors import ConfigError
    from tensorrnn.witness import check_witness_sizes

    try:
        check_witness_sizes(kind, n, r, 2)
    except ConfigError:
        return False
    return True


def _rows(checks) -> list[dict[str, object]]:
    from tensorrnn.witness import KINDS

    return [
        {"kind": c.kind, "family": c.family, "n": c.n, "r": c.r, "d": c.d, "rows": c.rows,
         "cols": c.cols, "exact": c.exact, "closed_form": c.closed_form,
         "formula": KINDS[c.kind].rank, "mincut": c.mincut,
         "meets_mincut": "yes" if c.meets_mincut else "no", "agrees": "yes" if c.agrees else "NO",
         "construction": c.construction, "prime": c.prime, "engine": c.engine,
         "seconds": f"{c.seconds:.3f}"}
        for c in checks
    ]  # fmt: skip


def _table(checks) -> str:
    head = ["kind", "family", "n", "r", "d", "N", "exact", "closed form", "formula", "min-cut",
            "= min-cut", "construction"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in _rows(checks):
        cells = [row["kind"], row["family"], row["n"], row["r"], row["d"], row["rows"], row["exact"],
                 row["closed_form"], row["formula"], row["mincut"], row["meets_mincut"],
                 row["construction"]]  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def _csv(checks) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_rows(checks))
    return buffer.getvalue()


def _markdown(checks, table: str) -> str:
    prime = checks[0].prime
    return (
        "# Witnesses: exact odd/even rank, closed form, min-cut\n\n"
        f"*exact*: rank over GF({prime}) of the witness's odd/even matricization (a certified lower "
        "bound on the rank over Q); *closed form*: the rank proved for every even d (docs/THEORY.md); "
        "*= min-cut*: the closed form equals the min-cut upper bound, so the generic odd/even rank of "
        "the family is determined for every even d.\n\n" + table + "\n"
    )
