"""Floating-point (SVD) rank of a matrix: exploration, never a certificate."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tensorrnn.devices import resolve_device
from tensorrnn.errors import ConfigError


@dataclass(frozen=True)
class NumericalRank:
    """An SVD rank with the evidence for the decision.

    Attributes
    ----------
    rank
        Number of singular values above ``tolerance``.
    gap
        ``sigma_rank / sigma_{rank+1}``: how clear the decision was (``inf`` when
        the matrix has full rank, ``nan`` for the zero matrix). A gap near 1
        means the rank is a guess.
    tolerance
        The threshold used.
    sigma_max, sigma_min
        Largest and smallest singular values.
    """

    rank: int
    gap: float
    tolerance: float
    sigma_max: float
    sigma_min: float


def numerical_rank(
    matrix: torch.Tensor,
    tolerance: float | None = None,
    device: str | torch.device | None = None,
) -> NumericalRank:
    """SVD rank in float64.

    The default tolerance is numpy's: ``sigma_max * max(m, n) * eps`` with
    ``eps = 2.2e-16``, the size of the rounding error of a backward-stable SVD.
    Singular values of the matricizations studied here fall like
    ``10^(-0.4 d ... -1.3 d)``, so from about N = 729 true singular values sink
    below this tolerance and the float rank undercounts; exact ranks over GF(p)
    do not. Report float ranks as evidence only.

    Parameters
    ----------
    matrix
        A 2-D real tensor (converted to float64).
    tolerance
        Absolute threshold on singular values; ``None`` for the default above.
    device
        Where to compute the SVD (``"cpu"`` or ``"cuda"``).
    """
    if matrix.ndim != 2:
        raise ConfigError(f"numerical_rank needs a matrix, got shape {tuple(matrix.shape)}")
    dev = resolve_device(device or "cpu")
    m = matrix.to(device=dev, dtype=torch.float64)
    if m.numel() == 0:
        return NumericalRank(0, math.nan, 0.0, 0.0, 0.0)
    sigma = torch.linalg.svdvals(m).cpu()
    s_max = float(sigma[0])
    tol = s_max * max(m.shape) * torch.finfo(torch.float64).eps if tolerance is None else tolerance
    rank = int((sigma > tol).sum())
    if rank == 0:
        gap = math.nan
    elif rank == len(sigma):
        gap = math.inf
    else:
        below = float(sigma[rank])
        gap = math.inf if below == 0.0 else float(sigma[rank - 1]) / below
    return NumericalRank(rank, gap, float(tol), s_max, float(sigma[-1]))
