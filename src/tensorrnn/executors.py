"""One grid point, run where a worker runs it: the piece the local and the Ray executors share.

Below both :mod:`tensorrnn.sweep` (the local executor) and :mod:`tensorrnn.cluster` (the
Ray executor), so neither imports the other for it.
"""

from __future__ import annotations

import traceback
from typing import Any

from tensorrnn.errors import TensorRNNError
from tensorrnn.runfolder import RunFolder
from tensorrnn.train import RunConfig, train_run

__all__ = ["execute_run"]


def execute_run(config_json: dict[str, Any], folder: str, threads: int) -> dict[str, Any]:
    """Train one grid point in ``folder``; never raises (a failure is returned and written to
    the run folder's error file, so one crashed run does not stop a sweep)."""
    import torch

    torch.set_num_threads(max(threads, 1))
    try:
        result = train_run(RunConfig(**config_json), folder, quiet=True)
        return {"status": "finished", **result}
    except Exception as error:  # noqa: BLE001 - a crashed run must not stop the sweep
        message = f"{type(error).__name__}: {error}"
        detail = "" if isinstance(error, TensorRNNError) else traceback.format_exc()
        RunFolder(folder).write_error(message, detail)
        return {"status": "failed", "error": message}
