"""``tensorrnn data``: list the data sets, where they were found and their split sizes."""

from __future__ import annotations

from pathlib import Path

import typer

from tensorrnn.cli.app import app


def _table(rows: list[list[str]]) -> str:
    """Left-aligned columns; the last column is not padded (it holds long paths)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


@app.command("data")
def data_command(
    data_dir: Path = typer.Option(
        None,
        "--data-dir",
        help="The only data root searched (default: $TENSORRNN_DATA, data/, ~/.cache/tensorrnn).",
    ),
    download: list[str] = typer.Option(
        None,
        "--download",
        metavar="NAME",
        help="Fetch this data set's official files (SHA-256 checked) first; repeatable.",
    ),
    val_fraction: float = typer.Option(
        0.1, "--val-fraction", help="Share of the training data shown as validation split."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No download progress bars."),
) -> None:
    """List every data set: where its files were found (or how to get them) and its split sizes.

    Sizes are those of the standard files at --val-fraction. With --data-dir,
    that folder alone is searched (it must exist). Without it, data roots are
    searched in this order: $TENSORRNN_DATA, the Debian package folder
    /usr/share/datasets/fashion-mnist, the project's data/ folder,
    ~/.cache/tensorrnn.

    Example:

        tensorrnn data --data-dir ~/datasets --download mnist
    """
    from tensorrnn.data import dataset_status, default_dataset, download_dataset, list_datasets
    from tensorrnn.errors import DataError

    for name in download or []:
        folder = download_dataset(name, data_dir, quiet=quiet)
        typer.echo(f"downloaded {name} into {folder}")
    if data_dir is not None and not data_dir.expanduser().is_dir():
        raise DataError(
            f"--data-dir {data_dir} is not an existing folder; create it, pass another one, or "
            "leave it out to search the default places"
        )
    rows = [["dataset", "status", "train", "val", "test", "where / how to get it"]]
    for name in list_datasets():
        status = dataset_status(name, data_dir, val_fraction=val_fraction)
        sizes = status.split_sizes
        if status.available:
            where = f"{status.location} ({status.origin})"
        else:
            where = status.message
        rows.append(
            [
                name,
                "found" if status.available else "missing",
                str(sizes["train"]),
                str(sizes["val"]),
                str(sizes["test"]),
                where,
            ]
        )
    typer.echo(_table(rows))
    typer.echo(f"\ndefault data set: {default_dataset(data_dir)}")
