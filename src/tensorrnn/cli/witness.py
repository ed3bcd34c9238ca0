"""``tensorrnn witness``: explicit witnesses, their exact ranks, closed forms and the min-cut."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app

# The lab's file names, for the help text (tensorrnn.witness_lab owns them).
CSV_FILE, TABLE_FILE = "witness.csv", "witness.md"


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
    from tensorrnn.cli.parsing import even_orders, parse_int_list, parse_name_list
    from tensorrnn.errors import ConfigError
    from tensorrnn.witness import WITNESS_KINDS
    from tensorrnn.witness_lab import (
        FAMILIES,
        check_witness_settings,
        plan_witnesses,
        run_witness_lab,
        witness_table,
    )

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
    special = kind.strip().lower()
    kinds = special if special in ("best", "all") else parse_name_list(kind, "kind", WITNESS_KINDS)
    families = None if family is None else parse_name_list(family, "family", FAMILIES)
    check_witness_settings(engine, prime)
    jobs = plan_witnesses(kinds, ns, rs, ds, families=families, max_side=max_side)
    checks = run_witness_lab(jobs, prime=prime, engine=engine, out=out, quiet=quiet)
    typer.echo(witness_table(checks))
    if out is not None:
        typer.echo(f"wrote {out / CSV_FILE}, {out / TABLE_FILE}")
    wrong = [c for c in checks if not c.agrees]
    if wrong:
        for c in wrong:
            typer.echo(f"MISMATCH: {c.kind} n={c.n} r={c.r} d={c.d}: exact {c.exact} != closed form "
                       f"{c.closed_form}", err=True)  # fmt: skip
        raise typer.Exit(1)
