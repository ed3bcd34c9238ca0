"""``tensorrnn generalized-ranks``: grid-tensor ranks of generalized (ReLU, max, softplus) RNNs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tensorrnn.cli.app import app

# Config keys (YAML) and their flags; a flag given on the command line wins.
_KEYS = ("xi", "cores", "R", "width", "M", "T", "weights", "trials", "seed", "method", "prime", "engine",
         "out")  # fmt: skip


def _text(value: Any) -> str:
    """A YAML value (scalar or list) as the comma text the flags take."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


@app.command("generalized-ranks")
def generalized_ranks_command(
    config: Path = typer.Option(None, "--config", help="YAML file with any of the options below."),
    xi: str = typer.Option(None, help="Comma list of product, relu, max, softplus, sqsum (default relu)."),
    cores: str = typer.Option(None, help="distinct, shared or distinct,shared (the default)."),
    R: str = typer.Option(None, "--R", help="Hidden widths (the paper's rank): 1,2,4,8 or 1..8."),
    width: str = typer.Option(None, help="Input widths L: integers, or R (the default: L = R)."),
    M: str = typer.Option(None, "--M", help="Numbers of templates, e.g. 10."),
    T: str = typer.Option(None, "--T", help="Sequence lengths, e.g. 6 or 4..8."),
    weights: str = typer.Option(None, help="Comma list of int:K, nonneg:K, gauss (default int:3)."),
    trials: int = typer.Option(None, help="Random instances per setting (default 20)."),
    seed: int = typer.Option(None, help="Base seed; every instance seed derives from it (default 0)."),
    method: str = typer.Option(None, help="exact (GF(p), integer instances), float (SVD + gap), or both."),
    prime: int = typer.Option(None, help="Prime of the exact ranks (default: the blas engine's)."),
    engine: str = typer.Option(None, help="Exact engine: blas (fast) or flint (reference)."),
    out: Path = typer.Option(None, help="Output folder (resumable; default results/generalized)."),
    threads: int = typer.Option(1, help="Torch threads (one keeps numbers identical across runs)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Grid tensors of random generalized RNNs: odd/even ranks, shallow-width bounds, rank-1 equivalents.

    For every setting (ξ, distinct or shared cores, R, L, M templates, length T,
    weight distribution) TRIALS random instances: the grid tensor
    Γ[i_1..i_T] = ℓ(X^(i_1), …, X^(i_T)), its odd/even matricization rank (exact
    over GF(p) for integer weights when ξ keeps integers; float SVD with its gap),
    the width a shallow network with the same ξ needs (⌈rank / min(M⌊T/2⌋,
    M^⌊T/2⌋)⌉ for relu and max, the rank itself for the product), and whether a
    width-1 shallow network is equivalent (exact test, relu and max). Writes
    generalized.csv, generalized.md, generalized.png and settings.json; a rerun
    skips finished instances, one with other settings is refused.

    Example (the paper's expressivity experiment):

        tensorrnn generalized-ranks --xi relu --R 1,2,4,8 --M 10 --T 6 --trials 20 --out results/g
    """
    import torch

    from tensorrnn.errors import ConfigError
    from tensorrnn.generalized import run_generalized_ranks

    flags = {"xi": xi, "cores": cores, "R": R, "width": width, "M": M, "T": T, "weights": weights,
             "trials": trials, "seed": seed, "method": method, "prime": prime, "engine": engine,
             "out": out}  # fmt: skip
    merged = _merged_options(config, flags)
    if threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    grid, settings = _grid_and_settings(merged)
    torch.set_num_threads(threads)
    out_folder = Path(merged.get("out", "results/generalized"))
    folder = run_generalized_ranks(grid, merged.get("trials", 20), out_folder, settings, quiet=quiet)
    names = ("generalized.csv", "generalized.md", "generalized.png")
    typer.echo("wrote " + ", ".join(str(folder / name) for name in names))


def _merged_options(config: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    """The config file's values with the flags given on the command line over them."""
    from tensorrnn.errors import ConfigError

    values: dict[str, Any] = {}
    if config is not None:
        from tensorrnn.sweep import load_config_file

        values = load_config_file(config)
        unknown = sorted(set(values) - set(_KEYS) - {"name"})
        if unknown:
            raise ConfigError(f"{config}: unknown key(s) {', '.join(unknown)}; "
                              f"known keys are {', '.join(_KEYS)}")  # fmt: skip
    return {**values, **{k: v for k, v in flags.items() if v is not None}}


def _grid_and_settings(merged: dict[str, Any]) -> tuple[list, Any]:
    """The crossed grid of settings and the lab settings, every value parsed and checked."""
    from tensorrnn.cli.parsing import parse_int_list, parse_name_list
    from tensorrnn.errors import ConfigError
    from tensorrnn.generalized import XIS, LabSettings, make_settings, parse_weights

    def pick(key: str, default: Any) -> Any:
        return merged.get(key, default)

    widths_text = _text(pick("width", "R"))
    widths: list[int | str] = (
        ["R"] if widths_text.strip() == "R" else list(parse_int_list(widths_text, "width"))
    )
    weight_list = [w.strip() for w in _text(pick("weights", "int:3")).split(",") if w.strip()]
    for w in weight_list:
        parse_weights(w)
    for key in ("trials", "seed", "prime"):
        v = merged.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise ConfigError(f"{key} = {v!r} must be an integer")
    grid = make_settings(
        parse_name_list(_text(pick("xi", "relu")), "xi", tuple(XIS)),
        parse_name_list(_text(pick("cores", "distinct,shared")), "cores", ("distinct", "shared")),
        parse_int_list(_text(pick("R", "1,2,4,8")), "R"),
        widths,
        parse_int_list(_text(pick("M", "10")), "M"),
        parse_int_list(_text(pick("T", "6")), "T"),
        weight_list,
    )
    settings = LabSettings(
        seed=pick("seed", 0),
        methods=tuple(parse_name_list(_text(pick("method", "exact,float")), "method", ("exact", "float"))),
        prime=pick("prime", None),
        engine=str(pick("engine", "blas")),
    )
    return grid, settings
