"""Upper bounds on the CP rank of tiny tensors from exact CP fits.

A CP decomposition of rank ``R`` that reproduces a tensor to ~1e-15 relative
error, with bounded factors, shows ``rank_CP <= R`` for that tensor (up to the
rounding of the fit). Bounded matters: a sequence of rank-``R`` fits whose error
goes to zero while the rank-one terms blow up and cancel only shows the *border*
rank is ``<= R``. A failed fit shows nothing.

The fitter is Levenberg-Marquardt (MINPACK through ``scipy.optimize.least_squares``)
with the analytic Jacobian; alternating least squares (TensorLy's ``parafac``)
stalls near 1e-7 to 1e-10 on these tensors and is kept only as the baseline of
``benchmarks/bench_cpfit.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from tensorrnn.errors import SizeError

FIT_TOLERANCE = 1e-12
"""Largest relative error that counts as an exact fit."""

NORM_LIMIT = 1e3
"""Largest product of factor norms of one rank-one term, relative to the tensor's norm."""

MAX_ENTRIES = 4096
"""Only tensors with at most this many entries are fitted (the Jacobian is dense)."""


@dataclass(frozen=True)
class CPFit:
    """Outcome of the best of several restarts at one rank."""

    rank: int
    relative_error: float
    max_term_norm: float
    restarts: int

    @property
    def exact(self) -> bool:
        """Whether this fit counts as ``rank_CP <= rank``."""
        return self.relative_error < FIT_TOLERANCE and self.max_term_norm < NORM_LIMIT


def _unpack(x: np.ndarray, shape: tuple[int, ...], rank: int) -> list[np.ndarray]:
    factors, start = [], 0
    for size in shape:
        factors.append(x[start : start + size * rank].reshape(size, rank))
        start += size * rank
    return factors


def _reconstruct(factors: list[np.ndarray]) -> np.ndarray:
    out = factors[0]
    for factor in factors[1:]:
        out = (out[..., None, :] * factor).reshape(*out.shape[:-1], factor.shape[0], -1)
    return out.sum(axis=-1)


def _jacobian(factors: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    d, rank = len(shape), factors[0].shape[1]
    blocks = []
    for j in range(d):
        # prod[i_1..i_d, k] = prod_{l != j} A_l[i_l, k]  (constant along mode j)
        prod = np.ones((1,) * d + (rank,))
        for l in range(d):
            if l != j:
                prod = prod * factors[l].reshape((1,) * l + (shape[l],) + (1,) * (d - 1 - l) + (rank,))
        prod = np.broadcast_to(prod, shape + (rank,))
        selector = np.eye(shape[j]).reshape(
            (1,) * j + (shape[j],) + (1,) * (d - 1 - j) + (shape[j], 1)
        )
        blocks.append((prod[..., None, :] * selector).reshape(int(np.prod(shape)), -1))
    return np.concatenate(blocks, axis=1)


def fit_cp(
    tensor: np.ndarray, rank: int, *, restarts: int = 8, max_evaluations: int = 300, seed: int = 0
) -> CPFit:
    """Best rank-``rank`` CP fit of ``tensor`` over ``restarts`` random starts.

    Parameters
    ----------
    tensor
        A real tensor with at most :data:`MAX_ENTRIES` entries.
    rank
        CP rank of the model.
    restarts
        Random initialisations; the fit stops early at the first exact one.
    max_evaluations
        Residual evaluations per start. Measured on 2^6 tensors of CP rank 8:
        many short starts find exact fits faster than few long ones.
    seed
        Seed of the initialisations.
    """
    tensor = np.asarray(tensor, dtype=np.float64)
    if tensor.size > MAX_ENTRIES:
        raise SizeError(
            f"CP fits are limited to {MAX_ENTRIES} entries (dense Jacobian), got shape "
            f"{tensor.shape}; use a smaller n or d"
        )
    shape = tensor.shape
    scale = float(np.linalg.norm(tensor))
    if scale == 0.0:
        return CPFit(rank, 0.0, 0.0, 0)
    target = (tensor / scale).ravel()
    rng = np.random.default_rng(seed)
    best = CPFit(rank, np.inf, np.inf, 0)

    num_params = sum(shape) * rank
    # MINPACK's LM needs at least as many residuals as unknowns: zero rows pad
    # an over-parametrised model without changing its solutions.
    padding = max(num_params - target.size, 0)

    def residual(x: np.ndarray) -> np.ndarray:
        misfit = _reconstruct(_unpack(x, shape, rank)).ravel() - target
        return np.concatenate([misfit, np.zeros(padding)])

    def jacobian(x: np.ndarray) -> np.ndarray:
        jac = _jacobian(_unpack(x, shape, rank), shape)
        return np.concatenate([jac, np.zeros((padding, num_params))])

    for attempt in range(1, restarts + 1):
        x0 = rng.standard_normal(num_params) * rank ** (-1.0 / len(shape))
        solution = least_squares(
            residual, x0, jac=jacobian, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15,
            max_nfev=max_evaluations,
        )
        factors = _unpack(solution.x, shape, rank)
        error = float(np.linalg.norm(residual(solution.x)))
        term_norms = np.prod([np.linalg.norm(f, axis=0) for f in factors], axis=0)
        fit = CPFit(rank, error, float(term_norms.max()), attempt)
        if fit.exact:
            return fit
        if fit.relative_error < best.relative_error:
            best = fit
    return CPFit(best.rank, best.relative_error, best.max_term_norm, restarts)


def cp_upper_bound(
    tensor: np.ndarray, ranks: range, *, restarts: int = 8, seed: int = 0
) -> tuple[int | None, CPFit | None]:
    """Smallest rank in ``ranks`` with an exact fit, and that fit.

    Returns ``(None, best_failed_fit)`` when no rank in the range fits: that is
    "no fit found", never a proof that the CP rank is larger.
    """
    last = None
    for rank in ranks:
        fit = fit_cp(tensor, rank, restarts=restarts, seed=seed + rank)
        if fit.exact:
            return rank, fit
        last = fit
    return None, last
