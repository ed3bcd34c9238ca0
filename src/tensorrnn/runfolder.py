"""The run folder: the one owner of a training run's files and of its provenance.

A run lives in one folder (DESIGN.md, "Results on disk"):

* ``config.json``: the full run config;
* ``metrics.jsonl``: one line per finished epoch;
* ``checkpoint.pt``: everything needed to resume, written after every epoch;
* ``provenance.jsonl``: one line per session that trained the run (its start, or
  a resume): code version (commit, and whether the tree had uncommitted changes),
  torch, Python, thread count, device, the chain that ran, and the epoch it
  started from, so what decided the numbers can be read back;
* ``result.json``: written last; its presence means "finished". It holds the
  accuracies, the provenance of the finishing session, the number of sessions,
  and which test examples the chosen model classified correctly (packed bits),
  so an interval can include the test set's own noise (:mod:`tensorrnn.stats`);
* ``error.json``: the error of a crashed run (a sweep's record);
* ``.lock``: empty; the process training the run holds an exclusive lock on it
  (:meth:`RunFolder.training`), released by the system when that process ends.

Every file is written through :mod:`tensorrnn.atomic`. Other modules name these
files only through this class.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import json
import platform
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tensorrnn import __version__
from tensorrnn.atomic import atomic_write_json, atomic_write_text
from tensorrnn.errors import ConfigError

__all__ = ["RunFolder", "code_version", "encode_correct", "decode_correct"]


class RunFolder:
    """The files of one run in ``path`` (which need not exist yet)."""

    CONFIG = "config.json"
    METRICS = "metrics.jsonl"
    CHECKPOINT = "checkpoint.pt"
    PROVENANCE = "provenance.jsonl"
    ERROR = "error.json"
    RESULT = "result.json"
    LOCK = ".lock"
    # What travels home from a cluster node, in this order: result.json last, so
    # its presence means "all of it arrived".
    FILES = (CONFIG, METRICS, CHECKPOINT, PROVENANCE, ERROR, RESULT)
    # What travels to a node so that a run resumes there.
    RESUME_FILES = (CONFIG, METRICS, CHECKPOINT, PROVENANCE)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def checkpoint_path(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def result_path(self) -> Path:
        return self.path / self.RESULT

    @property
    def error_path(self) -> Path:
        return self.path / self.ERROR

    # -- reading ------------------------------------------------------------ #

    def read_config(self) -> dict[str, Any] | None:
        return _read_json(self.config_path)

    def read_result(self) -> dict[str, Any] | None:
        """The ``result.json`` of a finished run, or ``None``."""
        return _read_json(self.result_path)

    def read_error(self) -> dict[str, Any] | None:
        return _read_json(self.error_path)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def sessions(self) -> list[dict[str, Any]]:
        """The provenance lines, oldest first (empty for runs from before they were kept)."""
        path = self.path / self.PROVENANCE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def test_correct(self) -> np.ndarray | None:
        """0/1 correctness of the reported model on each test example, or ``None`` (older runs)."""
        result = self.read_result()
        return None if result is None else decode_correct(result.get("test_correct"))

    # -- writing ------------------------------------------------------------ #

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """Hold the run for this process; another process holding it is a one-line error.

        Why: two processes training one folder interleave their checkpoints and
        metrics. It happened: a sweep driver was killed, its worker processes trained
        on, and a new driver started the same runs. The lock is ``flock``'s, so a killed
        process cannot leave it behind.
        """
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / self.LOCK).open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"{self.path}: another process is training this run; wait for it to "
                                  "finish, or stop it (a killed sweep's workers may still run: "
                                  "`pkill -f spawn_main`)") from None  # fmt: skip
            try:
                yield
            except BaseException:
                # A run refused before it wrote anything leaves no folder behind.
                if created and [p.name for p in self.path.iterdir()] == [self.LOCK]:
                    shutil.rmtree(self.path)
                raise
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write_config(self, config_json: Mapping[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_path, dict(config_json))

    def rewrite_metrics(self, history: Sequence[Mapping[str, Any]]) -> None:
        atomic_write_text(self.metrics_path, "".join(json.dumps(h) + "\n" for h in history))

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def record_session(self, **facts: Any) -> dict[str, Any]:
        """Append this process's provenance line (see the module) and return it."""
        line = {"started": datetime.now(UTC).isoformat(timespec="seconds"), **session_facts(), **facts}
        previous = self.sessions()
        atomic_write_text(self.path / self.PROVENANCE,
                          "".join(json.dumps(s) + "\n" for s in [*previous, line]))  # fmt: skip
        return line

    def write_result(self, result: Mapping[str, Any]) -> None:
        atomic_write_json(self.result_path, dict(result))

    def write_error(self, message: str, detail: str = "") -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.error_path, {"error": message, "traceback": detail})


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


# --------------------------------------------------------------------------- #
# Provenance
# --------------------------------------------------------------------------- #


@functools.cache
def code_version() -> dict[str, Any]:
    """The commit this package runs from and whether its tree had uncommitted changes.

    An installed package (no git checkout around it) says so: its version only.
    Untracked files (results, caches) do not make a tree dirty; changes to
    tracked files do.
    """
    source = Path(__file__).resolve().parent
    try:
        commit = _git(source, "rev-parse", "HEAD")
        dirty = bool(_git(source, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"version": __version__, "commit": None, "dirty": None}
    return {"version": __version__, "commit": commit, "dirty": dirty}


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30,
                          check=True)  # fmt: skip
    return done.stdout.strip()


def session_facts() -> dict[str, Any]:
    """What this process brings to a run's numbers, besides the config."""
    import torch

    return {
        "code": code_version(), "torch": torch.__version__, "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }  # fmt: skip


# --------------------------------------------------------------------------- #
# Per-example correctness
# --------------------------------------------------------------------------- #


def encode_correct(correct: np.ndarray) -> dict[str, Any]:
    """0/1 correctness per test example as packed bits in base64 (1,250 bytes per 10,000)."""
    flags = np.asarray(correct, dtype=bool)
    return {"examples": int(flags.size), "bits": base64.b64encode(np.packbits(flags)).decode("ascii")}


def decode_correct(encoded: Mapping[str, Any] | None) -> np.ndarray | None:
    if not encoded:
        return None
    bits = np.unpackbits(np.frombuffer(base64.b64decode(encoded["bits"]), dtype=np.uint8))
    return bits[: int(encoded["examples"])].astype(np.int8)
