"""``tensorrnn ranks``: the rank laboratory's sweep."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app


@app.command("ranks")
def ranks_command(
    family: str = typer.Option(None, help="Comma list of tt, tt-shared, tt-uniform, cp."),
    n: str = typer.Option(None, help="Mode sizes: 2,3 or 2..4."),
    r: str = typer.Option(None, help="TT ranks (CP rank for cp): 2,3 or 2..5."),
    d: str = typer.Option(None, help="Orders: 4,6 or 4..12 (ranges keep even d for odd-even)."),
    split: str = typer.Option("odd-even", help="odd-even, half, or 1-based row modes like 1,2,5,6."),
    method: str = typer.Option("float,exact", help="float (SVD, evidence), exact (GF(p), certificate)."),
    trials: int = typer.Option(None, help="Instances per setting (default 3)."),
    seed: int = typer.Option(0, help="Base seed; every instance seed derives from it."),
    engine: str = typer.Option("blas", help="Exact engine: blas (fast) or flint (reference)."),
    prime: int = typer.Option(None, help="Prime of the exact path (default: the blas engine's)."),
    device: str = typer.Option("cpu", help="Device of the float SVD: cpu or cuda."),
    cp_fit: bool = typer.Option(True, help="Exact CP fits of tiny tensors (upper bounds)."),
    max_memory: float = typer.Option(None, help="Refuse matrices above this many GiB."),
    max_side: int = typer.Option(None, help="Skip grid points whose matrix has a side above this."),
    out: Path = typer.Option(Path("results/ranks"), help="Output folder (resumable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Measure, certify and bound matricization ranks; write ranks.csv, ranks.md, ranks.png.

    With no options: the default sweep (tt, tt-shared, tt-uniform; n 2..4; r 2..5;
    even d from 4 while n^(d/2) <= 1024; 3 trials; float and exact). Rerunning
    the same command skips instances already in OUT/ranks.csv.

    Example:

        tensorrnn ranks --family tt,tt-shared --n 2,3 --r 2..5 --d 4..12 --out results/r
    """
    from tensorrnn.errors import ConfigError
    from tensorrnn.ranks import lab

    grid_given = any(v is not None for v in (family, n, r, d, trials, max_side))
    if not grid_given and split == "odd-even":
        jobs = lab.default_grid()
    else:
        families = [f.strip() for f in (family or "tt,tt-shared,tt-uniform").split(",") if f.strip()]
        orders = lab.even_orders(d or "4..8") if split == "odd-even" else lab.parse_int_list(d or "4..8", "d")
        jobs = lab.make_grid(
            families,
            lab.parse_int_list(n or "2,3", "n"),
            lab.parse_int_list(r or "2..5", "r"),
            orders,
            split,
            3 if trials is None else trials,
            max_side,
        )
    if max_memory is not None and max_memory <= 0:
        raise ConfigError(f"--max-memory {max_memory} must be positive (GiB)")
    settings = lab.SweepSettings(
        methods=tuple(m.strip() for m in method.split(",") if m.strip()),
        seed=seed,
        engine=engine,
        prime=prime if prime is not None else lab.DEFAULT_PRIME,
        device=device,
        cp_fit=cp_fit,
        max_bytes=None if max_memory is None else int(max_memory * 2**30),
    )
    folder = lab.run_sweep(jobs, out, settings, quiet=quiet)
    typer.echo(f"wrote {folder / 'ranks.csv'}, {folder / 'ranks.md'}, {folder / 'ranks.png'}")
