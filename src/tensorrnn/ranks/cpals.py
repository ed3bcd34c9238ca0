"""CP by alternating least squares for dense float64 tensors, sized for millions of entries.

Levenberg–Marquardt (:mod:`tensorrnn.ranks.cpfit`) needs a dense Jacobian of
``entries × (Σ n_j)·R`` numbers, so it stops at a few thousand entries. ALS needs
only the tensor and the factors: each factor in turn is the exact least-squares
solution with the others fixed, ``A_j = MTTKRP_j · V_j⁻¹`` with ``V_j`` the
Hadamard product of the other factors' Gram matrices.

Cost. The modes are split into a left half and a right half, and the tensor is
read as the matrix ``M`` (left indices × right indices). One sweep contracts ``M``
twice with a Khatri–Rao product (two GEMMs of ``entries × R`` multiply-adds): once
with the right factors, which gives every left MTTKRP after a contraction of
``n^(d/2) × R`` numbers, and once with the new left factors, for the right half.
At ``4^10`` entries and ``R = 512`` a sweep is two ``1024 × 1024 × 512`` GEMMs.

Line search (Bro's extrapolation): after each sweep the step from the previous
factors is stretched by ``sweep^(1/k)``; the stretched point is kept when its
error is lower, and ``k`` grows after each refusal, so the stretch shrinks where
it does not help. Without it ALS crawls through the long plateaus ("swamps")
that near-degenerate CP fits pass through.

Errors reported are exact: ``‖T − X‖ / ‖T‖`` from the reconstructed tensor, not
the cancelling expansion ``‖T‖² − 2⟨T, X⟩ + ‖X‖²`` (which floors near 1e-8).
A fit at rank ``R`` to ~1e-12 with bounded terms shows ``rank_CP ≤ R``; a fit that
stalls shows nothing about the rank.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from tensorrnn.errors import SizeError

MAX_ENTRIES = 1 << 24
"""Largest tensor fitted (16.8 M float64 entries, 134 MB; the model adds as much again)."""

CHECK_EVERY = 5
"""Sweeps between exact error evaluations (each one costs a third GEMM)."""


@dataclass(frozen=True)
class ALSFit:
    """The best of several ALS restarts at one rank.

    ``relative_error`` is exact; ``max_term_norm`` is the largest product of the
    factor column norms of one rank-one term relative to ``‖T‖`` (large values
    mean terms that cancel: a border-rank fit, not a CP decomposition).
    """

    rank: int
    relative_error: float
    max_term_norm: float
    sweeps: int
    restarts: int
    seconds: float
    factors: list[np.ndarray] = field(repr=False, compare=False, default_factory=list)


def khatri_rao(factors: list[np.ndarray], rank: int) -> np.ndarray:
    """Column-wise Kronecker product ``(Π n_j, R)``; the first factor's index is most significant.

    With no factors this is a row of ones (the empty product).
    """
    out = np.ones((1, rank))
    for factor in factors:
        out = (out[:, None, :] * factor[None, :, :]).reshape(-1, rank)
    return out


def cp_reconstruct(factors: list[np.ndarray]) -> np.ndarray:
    """The dense tensor ``Σ_k a_k^(1) ⊗ ⋯ ⊗ a_k^(d)`` of factors ``(n_j, R)``."""
    rank = factors[0].shape[1]
    half = len(factors) // 2
    left, right = khatri_rao(factors[:half], rank), khatri_rao(factors[half:], rank)
    return (left @ right.T).reshape([f.shape[0] for f in factors])


def _half_mttkrp(
    contracted: np.ndarray, shape: tuple[int, ...], factors: list[np.ndarray], j: int
) -> np.ndarray:
    """MTTKRP of mode ``j`` of one half, from the half already contracted with the other half.

    ``contracted`` is ``(Π shape, R)``; the modes of this half other than ``j`` are
    summed against their factors (``Π shape × R`` multiply-adds).
    """
    rank = contracted.shape[1]
    before, after = math.prod(shape[:j]), math.prod(shape[j + 1 :])
    blocks = contracted.reshape(before, shape[j], after, rank)
    kr_after = khatri_rao(factors[j + 1 :], rank)
    kr_before = khatri_rao(factors[:j], rank)
    partial = np.einsum("ajbr,br->ajr", blocks, kr_after)
    return np.einsum("ajr,ar->jr", partial, kr_before)


def _solve_normal(gram: np.ndarray, mttkrp: np.ndarray) -> np.ndarray:
    """``mttkrp · gram⁻¹`` for a symmetric positive semi-definite ``gram`` (pseudo-inverse if singular)."""
    try:
        factor = scipy.linalg.cho_factor(gram, check_finite=False)
        out = scipy.linalg.cho_solve(factor, mttkrp.T, check_finite=False).T
        if np.all(np.isfinite(out)):
            return out
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        pass
    return mttkrp @ np.linalg.pinv(gram, hermitian=True)


def _update_half(matrix_side: np.ndarray, factors: list[np.ndarray], grams: list[np.ndarray],
                 modes: range, other: range) -> np.ndarray:  # fmt: skip
    """Solve for every factor of ``modes`` in turn; return the last mode's MTTKRP.

    ``matrix_side`` is the tensor as a matrix whose rows run over ``modes``.
    """
    rank = factors[0].shape[1]
    contracted = matrix_side @ khatri_rao([factors[k] for k in other], rank)
    half = [factors[k] for k in modes]
    shape = tuple(f.shape[0] for f in half)
    mttkrp = contracted[:0]
    for position, mode in enumerate(modes):
        mttkrp = _half_mttkrp(contracted, shape, half, position)
        gram = np.ones((rank, rank))
        for k, g in enumerate(grams):
            if k != mode:
                gram = gram * g
        factors[mode] = half[position] = _solve_normal(gram, mttkrp)
        grams[mode] = factors[mode].T @ factors[mode]
    return mttkrp


def _exact_error(matrix: np.ndarray, factors: list[np.ndarray], half: int) -> float:
    rank = factors[0].shape[1]
    model = khatri_rao(factors[:half], rank) @ khatri_rao(factors[half:], rank).T
    return float(np.linalg.norm(matrix - model))


def _expansion_error(matrix: np.ndarray, factors: list[np.ndarray], half: int) -> float:
    """``sqrt(1 − 2⟨T, X⟩ + ‖X‖²)`` for a unit-norm ``T``: one GEMM, good to ~1e-8."""
    rank = factors[0].shape[1]
    right = matrix.T @ khatri_rao(factors[:half], rank)
    inner = float(np.sum(right * khatri_rao(factors[half:], rank)))
    gram = np.ones((rank, rank))
    for f in factors:
        gram = gram * (f.T @ f)
    return math.sqrt(max(1.0 - 2.0 * inner + float(gram.sum()), 0.0))


def _als_run(matrix: np.ndarray, factors: list[np.ndarray], *, max_sweeps: int, target: float,
             stall: float, line_search: bool) -> tuple[list[np.ndarray], float, int]:  # fmt: skip
    """One ALS run from ``factors`` on the unit-norm tensor ``matrix``; returns (factors, error, sweeps)."""
    d = len(factors)
    half = d // 2
    left, right = range(half), range(half, d)
    grams = [f.T @ f for f in factors]
    previous: list[np.ndarray] | None = None
    exponent, error, checked = 3.0, math.inf, math.inf
    sweep = 0
    for sweep in range(1, max_sweeps + 1):
        _update_half(matrix, factors, grams, left, right)
        last = _update_half(matrix.T, factors, grams, right, left)
        gram = np.ones_like(grams[0])
        for g in grams:
            gram = gram * g
        error = math.sqrt(max(1.0 - 2.0 * float(np.sum(factors[-1] * last)) + float(gram.sum()), 0.0))
        if line_search and previous is not None and sweep > 2:
            step = sweep ** (1.0 / exponent)
            stretched = [p + step * (f - p) for p, f in zip(previous, factors, strict=True)]
            stretched_error = _expansion_error(matrix, stretched, half)
            if stretched_error < error:
                factors[:], error = stretched, stretched_error
                grams[:] = [f.T @ f for f in factors]
            else:
                exponent += 1.0
        previous = [f.copy() for f in factors]
        if sweep % CHECK_EVERY == 0:
            exact = _exact_error(matrix, factors, half)
            # Stop when the teacher is reached, or when CHECK_EVERY sweeps gained less than `stall`.
            if exact <= target or exact > checked * (1.0 - stall):
                return factors, exact, sweep
            checked = exact
    return factors, _exact_error(matrix, factors, half), sweep


def fit_cp_als(
    tensor: np.ndarray,
    rank: int,
    *,
    restarts: int = 3,
    max_sweeps: int = 500,
    target: float = 1e-12,
    stall: float = 1e-4,
    line_search: bool = True,
    seed: int = 0,
) -> ALSFit:
    """Best rank-``rank`` CP fit of a dense tensor over ``restarts`` random starts (ALS).

    Parameters
    ----------
    tensor
        A real tensor of order ≥ 2 with at most :data:`MAX_ENTRIES` entries.
    rank
        CP rank of the model.
    restarts
        Random starts; the fit stops at the first one whose error is ``≤ target``.
    max_sweeps
        Sweeps per start (each updates every factor once).
    target
        Relative error at which a start counts as done.
    stall
        A start ends when :data:`CHECK_EVERY` sweeps lower the exact error by a
        fraction less than this.
    line_search
        Extrapolate after each sweep (see the module docstring).
    seed
        Seed of the starts (Gaussian factors scaled so that ``‖X‖ ≈ ‖T‖``).
    """
    start = time.perf_counter()
    tensor = np.asarray(tensor, dtype=np.float64)
    if tensor.ndim < 2 or tensor.size > MAX_ENTRIES:
        raise SizeError(f"ALS fits tensors of order >= 2 with at most {MAX_ENTRIES} entries, got shape "
                        f"{tensor.shape}; use a smaller n or d")  # fmt: skip
    if rank < 1:
        raise SizeError(f"CP rank {rank} must be at least 1")
    shape, half = tensor.shape, tensor.ndim // 2
    scale = float(np.linalg.norm(tensor))
    if scale == 0.0:
        return ALSFit(rank, 0.0, 0.0, 0, 0, time.perf_counter() - start)
    matrix = (tensor / scale).reshape(math.prod(shape[:half]), -1)
    rng = np.random.default_rng(seed)
    best: tuple[float, list[np.ndarray]] = (math.inf, [])
    total_sweeps, attempts = 0, 0
    for _ in range(restarts):
        attempts += 1
        # Entries N(0, σ²) with σ = (entries·R)^(−1/2d): then E‖X‖² = entries·R·σ^(2d) = 1 = ‖T‖².
        sigma = (tensor.size * rank) ** (-0.5 / tensor.ndim)
        factors = [rng.standard_normal((size, rank)) * sigma for size in shape]
        factors, error, sweeps = _als_run(matrix, factors, max_sweeps=max_sweeps, target=target,
                                          stall=stall, line_search=line_search)  # fmt: skip
        total_sweeps += sweeps
        if error < best[0]:
            best = (error, [f.copy() for f in factors])
        if error <= target:
            break
    error, factors = best
    norms = np.prod([np.linalg.norm(f, axis=0) for f in factors], axis=0)
    scaled = [f.copy() for f in factors]
    scaled[0] *= scale
    seconds = time.perf_counter() - start
    return ALSFit(rank, error, float(norms.max()), total_sweeps, attempts, seconds, scaled)
