"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer of the toolkit goes through :func:`atomic_write`. The temporary file
has a unique name beside the target (two processes writing one folder never share
it), is flushed to disk with ``fsync`` and then renamed with :func:`os.replace`,
which is atomic on one file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _default_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 less the umask); mkstemp uses 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def _replacing(path: Path, mode: str, **open_args: Any) -> Iterator[IO]:
    path = Path(path)
    handle_fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle_fd, mode, **open_args) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(name, _default_mode())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def atomic_write(path: str | Path, write: Callable[[IO], Any], *, binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file, then move it onto ``path``."""
    mode = "wb" if binary else "w"
    extra = {} if binary else {"newline": "", "encoding": "utf-8"}
    with _replacing(Path(path), mode, **extra) as handle:
        write(handle)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda handle: handle.write(text))


def atomic_write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON with sorted keys, atomically."""
    return atomic_write(path, lambda handle: json.dump(payload, handle, indent=2, sort_keys=True))


def atomic_save_figure(fig: Any, path: str | Path, **savefig_args: Any) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    suffix = Path(path).suffix.lstrip(".") or "png"
    try:
        return atomic_write(path, lambda handle: fig.savefig(handle, format=suffix, **savefig_args),
                            binary=True)  # fmt: skip
    finally:
        plt.close(fig)


def atomic_torch_save(path: str | Path, payload: Any) -> Path:
    """``torch.save`` atomically."""
    import torch

    return atomic_write(path, lambda handle: torch.save(payload, handle), binary=True)
