"""The Typer application that every sub-command module registers itself on."""

import typer

from tensorrnn import __version__

app = typer.Typer(
    name="tensorrnn",
    help="Rank laboratory and network laboratory for recurrent networks as tensor networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tensorrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Rank laboratory and network laboratory for recurrent networks as tensor networks."""
