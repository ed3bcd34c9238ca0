"""Command line: ``tensorrnn <command>``.

Only this package parses arguments. A :class:`TensorRNNError` raised anywhere below
is printed on one line and the process exits with status 2, without a traceback.
"""

import os
import sys

# Before torch loads: OpenMP threads that spin while waiting slowed training steps
# several-fold on shared cores (figures in benchmarks/BENCH_NETWORKS.md); sleeping
# costs nothing on an idle machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Each sub-command module registers its commands on ``app`` when imported.
from tensorrnn.cli import data as _data  # noqa: E402,F401
from tensorrnn.cli import experiments as _experiments  # noqa: F401
from tensorrnn.cli import generalized as _generalized  # noqa: F401
from tensorrnn.cli import ranks as _ranks  # noqa: F401
from tensorrnn.cli import rerun as _rerun  # noqa: F401
from tensorrnn.cli import teacher as _teacher  # noqa: F401
from tensorrnn.cli import tune as _tune  # noqa: F401
from tensorrnn.cli import witness as _witness  # noqa: F401
from tensorrnn.cli.app import app
from tensorrnn.errors import TensorRNNError


def main() -> None:
    """Entry point of the ``tensorrnn`` console script."""
    try:
        app(standalone_mode=True)
    except TensorRNNError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
