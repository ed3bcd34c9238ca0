"""``tensorrnn ranks``: the rank laboratory's sweep."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app


@app.command("ranks")
def ranks_command(
    family: str = typer.Option(
        None, help="Comma list of tt, tt-shared, tt-uniform, cp, tt-periodic, tt-periodic-shared."
    ),
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
    out: Path = typer.Option(
        None, help="Output folder; default results/ranks (resumable), results/trained_rank with --from-run."
    ),
    executor: str = typer.Option("local", help="local (this process) or ray (one task per instance)."),
    address: str = typer.Option(None, help="Ray head HOST:PORT (default: start a local Ray)."),
    threads: int = typer.Option(1, help="Ray only: torch threads (CPUs) per task."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    from_run: list[Path] = typer.Option(
        None,
        "--from-run",
        metavar="RUN",
        help="A finished training run (repeat for more): measure the odd/even rank of its learned "
        "coefficient tensors instead of a sweep; writes trained_rank.csv, .md and .png.",
    ),
) -> None:
    """Measure, certify and bound matricization ranks; write ranks.csv, ranks.md, ranks.png.

    With no options: the default sweep (tt, tt-shared, tt-uniform; n 2..4; r 2..5;
    even d from 4 while n^(d/2) <= 1024; 3 trials; float and exact). Rerunning
    the same command skips instances already in OUT/ranks.csv; a larger grid adds
    instances. OUT/settings.json records the seed, prime, engine, methods and
    cp-fit behind the stored numbers: a rerun with other values is refused.

    With --from-run RUN (repeatable): the rank of trained networks instead. For
    every class y of each finished run (n^(d/2) <= 4096, even d) the odd/even
    matricization of the learned coefficient tensor A^y: singular values, float
    rank and gap, set against the generic rank of the family (certified over
    GF(p) with --method float,exact, the default; --method float skips the
    certificate). --engine, --prime, --seed, --device and --max-memory keep their
    meaning; the grid options do not apply.

    Example:

        tensorrnn ranks --family tt,tt-shared --n 2,3 --r 2..5 --d 4..12 --out results/r

        tensorrnn ranks --from-run results/run-a --from-run results/run-b --out results/trained

        tensorrnn ranks --family tt-shared --n 4 --r 3 --d 4..14 --executor ray --address 10.0.0.5:6379

    With --executor ray every instance is a task that asks its node for the memory its
    matrices need; rows come home to OUT on this machine (no shared file system).
    """
    from tensorrnn.errors import ConfigError
    from tensorrnn.ranks import lab

    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor {executor!r} is not one of local, ray")
    if executor == "local" and address is not None:
        raise ConfigError("--address names a Ray cluster; add --executor ray")
    if threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    if from_run:
        if executor != "local":
            raise ConfigError("--from-run measures trained networks here; drop --executor ray")
        _trained_rank(from_run, family=family, n=n, r=r, d=d, split=split, method=method,
                      trials=trials, seed=seed, engine=engine, prime=prime, device=device,
                      cp_fit=cp_fit, max_memory=max_memory, max_side=max_side, out=out,
                      quiet=quiet)  # fmt: skip
        return
    if out is None:
        out = Path("results/ranks")
    # Everything is checked here or in lab.run_rank_sweep before OUT is created.
    if max_memory is not None and max_memory <= 0:
        raise ConfigError(f"--max-memory {max_memory} must be positive (GiB)")
    jobs = _sweep_jobs(family, n, r, d, split, trials, max_side)
    settings = lab.SweepSettings(
        methods=tuple(_parse_methods(method)),
        seed=seed,
        engine=engine,
        prime=prime if prime is not None else lab.DEFAULT_PRIME,
        device=device,
        cp_fit=cp_fit,
        max_bytes=None if max_memory is None else int(max_memory * 2**30),
    )
    measure = lab.MeasureHere()
    if executor == "ray":
        from tensorrnn.cluster import MeasureOnRay

        measure = MeasureOnRay(address, threads, quiet=quiet)
    try:
        folder = lab.run_rank_sweep(jobs, out, settings, quiet=quiet, executor=measure)
    except lab.SettingsMismatchError as error:
        raise ConfigError(_mismatch_message(error)) from None
    typer.echo(f"wrote {folder / 'ranks.csv'}, {folder / 'ranks.md'}, {folder / 'ranks.png'}")


def _parse_methods(method: str) -> list[str]:
    from tensorrnn.cli.parsing import parse_name_list
    from tensorrnn.ranks.lab import METHODS

    return parse_name_list(method, "method", METHODS)


def _sweep_jobs(family, n, r, d, split, trials, max_side) -> list:
    """The sweep's jobs: the default grid when no grid option is given, else the crossed grid."""
    from tensorrnn.cli.parsing import even_orders, parse_int_list, parse_name_list
    from tensorrnn.errors import ConfigError
    from tensorrnn.formats import FAMILIES
    from tensorrnn.ranks import lab

    if trials is not None and trials < 1:
        raise ConfigError(f"--trials {trials} must be at least 1")
    if max_side is not None and max_side < 1:
        raise ConfigError(f"--max-side {max_side} must be at least 1")
    grid_given = any(v is not None for v in (family, n, r, d, trials, max_side))
    if not grid_given and split == "odd-even":
        return lab.default_grid()
    families = parse_name_list(family or "tt,tt-shared,tt-uniform", "family", FAMILIES)
    orders = even_orders(d or "4..8") if split == "odd-even" else parse_int_list(d or "4..8", "d")
    return lab.make_grid(
        families,
        parse_int_list(n or "2,3", "n"),
        parse_int_list(r or "2..5", "r"),
        orders,
        split,
        3 if trials is None else trials,
        max_side,
    )


def _trained_rank(runs: list[Path], *, family, n, r, d, split, method, trials, seed, engine, prime,
                  device, cp_fit, max_memory, max_side, out, quiet) -> None:  # fmt: skip
    """``ranks --from-run``: the rank of trained networks (tensorrnn.ranks.trained)."""
    from tensorrnn.errors import ConfigError
    from tensorrnn.ranks import trained
    from tensorrnn.ranks.modp import DEFAULT_PRIME

    grid = {"--family": family, "--n": n, "--r": r, "--d": d, "--trials": trials,
            "--max-side": max_side}  # fmt: skip
    given = [flag for flag, value in grid.items() if value is not None]
    if split != "odd-even":
        given.append("--split")
    if not cp_fit:
        given.append("--no-cp-fit")
    if given:
        raise ConfigError(
            f"{', '.join(given)} set up a sweep of random tensors and do not apply to --from-run, "
            "whose sizes come from the runs (odd/even split); drop them"
        )
    methods = _parse_methods(method)
    if "float" not in methods:
        raise ConfigError(
            "--from-run measures singular values, so --method needs float "
            "(float,exact also certifies the generic rank)"
        )
    if max_memory is not None and max_memory <= 0:
        raise ConfigError(f"--max-memory {max_memory} must be positive (GiB)")
    folder = trained.run_trained_rank(
        runs, out if out is not None else Path("results/trained_rank"),
        certify="exact" in methods, prime=prime if prime is not None else DEFAULT_PRIME,
        engine=engine, seed=seed, device=device,
        max_bytes=None if max_memory is None else int(max_memory * 2**30), quiet=quiet,
    )  # fmt: skip
    names = (trained.CSV_FILE, trained.TABLE_FILE, trained.FIGURE_FILE)
    typer.echo("wrote " + ", ".join(str(folder / name) for name in names))


# How each recorded setting of the rank sweep is spelled on the command line.
_FLAGS = {"seed": "--seed", "prime": "--prime", "engine": "--engine", "methods": "--method"}


def _flag_value(name: str, value: object) -> str:
    if value is None:
        return f"{_FLAGS.get(name, name)} unset"
    if name == "cp_fit":
        return "--cp-fit" if value else "--no-cp-fit"
    if name == "methods" and isinstance(value, list):
        value = ",".join(map(str, value))
    return f"{_FLAGS.get(name, name)} {value}"


def _mismatch_message(error) -> str:
    """The lab's settings mismatch, with the settings spelled as flags."""
    parts = []
    for diff in error.differences:
        now = _flag_value(diff.name, diff.requested)
        stored = "another value" if diff.stored is None else _flag_value(diff.name, diff.stored)
        parts.append(f"{now} now, {stored} stored")
    where = error.folder
    kind = " (ranks.csv written before settings.json existed)" if error.legacy else ""
    return (
        f"--out {where}{kind} holds ranks measured with other settings: {'; '.join(parts)}. "
        f"Rerun with the stored settings, use another --out, or delete {where} to start over"
    )
