"""Shared by the test files: the CLI in a child process, one torch thread, a Ray of its own, and
derandomised hypothesis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import settings

import tensorrnn  # noqa: F401  - pins ATen's AVX2 kernels before any test runs a torch kernel

# Property tests draw the same examples on every run and machine (a failure reproduces; nothing
# passes or fails by the luck of a draw), and keep no example database in the checkout.
settings.register_profile("tensorrnn", derandomize=True, database=None)
settings.load_profile("tensorrnn")

# The console script's entry point under this interpreter (works without the venv's bin on PATH).
CLI = [sys.executable, "-c", "from tensorrnn.cli import main; main()"]


def _run_cli(*args: str | Path, cwd: str | Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:  # fmt: skip
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, **(env or {})})  # fmt: skip


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``tensorrnn ARGS`` in a child process: ``run_cli(*args, cwd=None, env=None, timeout=600)``.

    ``env`` adds to this process's environment.
    """
    return _run_cli


@pytest.fixture(scope="session")
def cli_command() -> list[str]:
    """The argv prefix that runs ``tensorrnn`` under this interpreter."""
    return list(CLI)


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny sizes gain nothing from threads, and on a shared 2-core
    machine OpenMP's spin-waiting makes them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def own_ray(tmp_path: Path, monkeypatch) -> Path:
    """A local Ray of the test's own: a short temp dir (Unix socket paths are short), a home of
    its own for the token a new local Ray writes to ~/.ray, no address or auth mode inherited.
    Returns the temp dir; Ray's processes started in the test must be shut down by it."""
    pytest.importorskip("ray")
    ray_tmp = Path(tempfile.mkdtemp(prefix="trr-", dir="/tmp"))
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    yield ray_tmp
    shutil.rmtree(ray_tmp, ignore_errors=True)
