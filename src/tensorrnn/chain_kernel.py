"""The fused C++ loops of the normalised TT chain (``chain_kernel.cpp``), built on first use.

``load()`` compiles the source with torch's extension builder (a C++ compiler and
ninja; about a minute, once per machine: the build is cached under
``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``) and returns the
module, or ``None`` with one ``RuntimeWarning`` where building or importing
fails; callers then run the plain Python loops, which compute the same thing.

Flags: ``-O3``, plus AVX2 and FMA where torch reports the CPU has them; the
capability is part of the module's name, so a build cached in a home folder that
machines of different CPUs share is never loaded on the wrong one.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("chain_kernel.cpp")
STALE_LOCK_SECONDS = 600
"""A build lock older than this is a dead build's (a build takes about a minute)."""
_lock = threading.Lock()
_loaded: dict[str, ModuleType | None] = {}


def load() -> ModuleType | None:
    """The built module, or ``None`` where it cannot be built here (warned once)."""
    with _lock:
        if "module" not in _loaded:
            _loaded["module"] = _build()
        return _loaded["module"]


def _build() -> ModuleType | None:
    try:
        import torch
        from torch.utils.cpp_extension import load as build_extension

        capability = torch.backends.cpu.get_cpu_capability()
        vector_flags = ["-mavx2", "-mfma"] if capability in ("AVX2", "AVX512") else []
        name = f"tensorrnn_chain_kernel_{capability.lower()}"
        _find_ninja()
        _clear_stale_lock(name)
        if not _is_built(name):
            print("building the fused TT chain (once per machine, about a minute) ...", file=sys.stderr)
        return build_extension(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-fopenmp-simd", *vector_flags],
            verbose=False,
        )
    except Exception as error:  # noqa: BLE001 - any build failure falls back to the plain loops
        warnings.warn(
            f"building the fused TT chain failed ({type(error).__name__}: {str(error)[:200]}); "
            "running the plain loops instead (same results, slower)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _find_ninja() -> None:
    """Put the ninja that pip installed beside this Python on PATH, where torch looks for it.

    A virtual environment's ``bin`` is on PATH only when activated; ``.venv/bin/python``
    alone would otherwise fail to build for want of a tool it has.
    """
    beside = Path(sys.executable).parent
    if shutil.which("ninja") is None and (beside / "ninja").is_file():
        os.environ["PATH"] = f"{beside}{os.pathsep}{os.environ.get('PATH', '')}"


def _clear_stale_lock(name: str) -> None:
    """Remove a build lock older than :data:`STALE_LOCK_SECONDS`, with a warning.

    torch's builder holds a ``lock`` file while it compiles, and every other process
    waits for it to vanish, without a timeout. A build killed midway (its process
    group killed, say) leaves the file behind, and every later run then waits
    forever, silently: seen here. A build takes about a minute, so an old lock is
    a dead build's.
    """
    try:
        from torch.utils.cpp_extension import _get_build_directory

        lock = Path(_get_build_directory(name, False)) / "lock"
        age = time.time() - lock.stat().st_mtime
    except Exception:  # noqa: BLE001 - no lock (the usual case), or torch's private helper moved
        return
    if age > STALE_LOCK_SECONDS:
        warnings.warn(f"removing {lock}, left {age / 60:.0f} minutes ago by a build of the fused TT chain "
                      "that did not finish; building again", RuntimeWarning, stacklevel=4)  # fmt: skip
        lock.unlink(missing_ok=True)


def _is_built(name: str) -> bool:
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return (Path(_get_build_directory(name, False)) / f"{name}.so").is_file()
    except Exception:  # noqa: BLE001 - a private helper of torch's; without it, say "building"
        return False
