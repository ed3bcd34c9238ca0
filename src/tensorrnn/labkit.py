"""The lab kit: what every resumable experiment of the toolkit shares.

An experiment ("lab": rank sweeps, teachers, generalized ranks, trained ranks,
witnesses) writes one CSV row per finished job and is resumed by running the same
command again. Three pieces make that safe, and live here once:

* :class:`RowStore`: an append-only CSV whose rows carry a *resume key*; a row is
  appended (and fsynced) as its job ends, a torn last line from a kill is dropped
  when the store is opened, and jobs whose key is present are skipped;
* :class:`SettingsGuard`: ``settings.json`` records what decides the numbers of a
  row; a rerun with other settings is refused with a message naming *each*
  difference (``lr: 0.01 there, 0.03 now``), while the grid of jobs may grow;
* :func:`check_output_folder`: an output path that is a file, or holds a folder
  where a result file belongs, is refused before anything is written.

Each lab keeps only its own science: its columns, its key, its settings.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tensorrnn.atomic import atomic_write, atomic_write_json
from tensorrnn.errors import ConfigError

__all__ = [
    "RowStore", "SettingsGuard", "check_lab_folder", "check_output_folder", "read_rows",
    "setting_differences", "SETTINGS_FILE",
]  # fmt: skip

SETTINGS_FILE = "settings.json"


def read_rows(path: Path, columns: Sequence[str], finished: str = "seconds") -> list[dict[str, str]]:
    """The rows of a lab's CSV; a torn last line (killed mid-write) is dropped.

    ``finished`` is the column written when a job ends (empty in a torn line).
    """
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != list(columns):
            raise ConfigError(f"{path} was not written by this version of tensorrnn (columns differ); "
                              "use another output folder or delete the file")  # fmt: skip
        return [row for row in reader if None not in row.values() and row.get(finished) not in ("", None)]


class RowStore:
    """Append-only CSV with one header, rewritten clean (without a torn line) when opened.

    ``key(row)`` says which job a row belongs to; ``done`` holds the keys present.
    """

    def __init__(self, path: Path, columns: Sequence[str], key: Callable[[Mapping[str, str]], tuple],
                 finished: str = "seconds", lineterminator: str = "\r\n") -> None:  # fmt: skip
        self.path = Path(path)
        self.columns = list(columns)
        self.key = key
        # csv's own default; a lab whose committed files end lines in "\n" keeps them byte for byte.
        self.lineterminator = lineterminator
        self.rows = read_rows(self.path, self.columns, finished)
        self.done = {key(row) for row in self.rows}

        def write(handle) -> None:
            writer = csv.DictWriter(handle, self.columns, lineterminator=self.lineterminator)
            writer.writeheader()
            writer.writerows(self.rows)

        atomic_write(self.path, write)

    def append(self, row: Mapping[str, object]) -> None:
        full = {c: "" if row.get(c) is None else row.get(c) for c in self.columns}
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, self.columns, lineterminator=self.lineterminator).writerow(full)
            handle.flush()
            os.fsync(handle.fileno())
        stored = {c: str(v) for c, v in full.items()}
        self.rows.append(stored)
        self.done.add(self.key(stored))


def setting_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"name X there, Y now"`` for each setting that differs (nested mappings by dotted name)."""
    parts = []
    for key in sorted(set(stored) | set(wanted), key=str):
        there, now = stored.get(key), wanted.get(key)
        if isinstance(there, Mapping) and isinstance(now, Mapping):
            parts += setting_differences(there, now, f"{prefix}{key}.")
        elif there != now:
            parts.append(f"{prefix}{key} {json.dumps(there)} there, {json.dumps(now)} now")
    return parts


class SettingsGuard:
    """``settings.json`` of a lab folder: what decides the numbers of its rows."""

    def __init__(self, folder: Path, file: str = SETTINGS_FILE) -> None:
        self.path = Path(folder) / file

    def stored(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"cannot read {self.path} ({error}); delete the folder {self.path.parent}") \
                from None
        if not isinstance(stored, dict):
            raise ConfigError(f"{self.path} is not a settings object; delete the folder {self.path.parent}")
        return stored

    def check(self, wanted: Mapping[str, Any], has_rows: bool, what: str = "results") -> None:
        """Refuse ``wanted`` where the folder's rows were measured with other settings.

        Rows without a settings file are refused too: their settings are unknown.
        """
        stored = self.stored()
        folder = self.path.parent
        if stored is None:
            if has_rows:
                raise ConfigError(f"{folder} has {what} but no {self.path.name}, so their settings are "
                                  f"unknown; use another output folder or delete {folder}")  # fmt: skip
            return
        differences = setting_differences(stored, json.loads(json.dumps(dict(wanted))))
        if differences and has_rows:
            raise ConfigError(f"{folder} holds {what} made with other settings: {'; '.join(differences)}. "
                              f"Rerun with the stored settings, use another output folder, or delete "
                              f"{folder} to start over")  # fmt: skip

    def write(self, settings: Mapping[str, Any]) -> None:
        atomic_write_json(self.path, dict(settings))


def check_output_folder(out: Path, output_files: Iterable[str]) -> None:
    """Refuse an output path that is a file, lies under a file, or holds a folder where a
    result file belongs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the output folder {out} is an existing file; name a folder")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"the output folder {out} lies under the file {parent}; name another folder")
    for name in output_files:
        if (out / name).is_dir():
            raise ConfigError(f"{out / name} is a folder; remove it or use another output folder")


def check_lab_folder(out: Path, settings: Mapping[str, Any], *, csv_file: str, columns: Sequence[str],
                     output_files: Iterable[str], what: str = "results") -> None:  # fmt: skip
    """Everything a lab checks before it writes: the paths, then the stored settings against
    ``settings`` (refused, naming each difference, where rows were measured otherwise)."""
    check_output_folder(out, output_files)
    rows = read_rows(Path(out) / csv_file, columns)
    SettingsGuard(out).check(settings, bool(rows), what)
