"""CP-ALS against independent references: planted decompositions, TensorLy, Eckart–Young."""

from __future__ import annotations

import numpy as np
import pytest

from tensorrnn.errors import SizeError
from tensorrnn.ranks.cpals import cp_reconstruct, fit_cp_als, khatri_rao

tl = pytest.importorskip("tensorly")
from tensorly.cp_tensor import cp_to_tensor  # noqa: E402
from tensorly.decomposition import parafac  # noqa: E402
from tensorly.tenalg import khatri_rao as tl_khatri_rao  # noqa: E402


def planted(shape: tuple[int, ...], rank: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A tensor with a known rank-``rank`` decomposition (Gaussian factors), built by TensorLy."""
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal((size, rank)) for size in shape]
    return np.asarray(cp_to_tensor((np.ones(rank), factors))), factors


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (3, 2, 2, 3), (2, 3, 2, 2, 3)])
def test_reconstruct_and_khatri_rao_match_tensorly(shape):
    tensor, factors = planted(shape, 3, seed=0)
    np.testing.assert_allclose(cp_reconstruct(factors), tensor, rtol=1e-12, atol=1e-12)
    # TensorLy's Khatri–Rao also runs the first factor's index slowest.
    np.testing.assert_allclose(khatri_rao(factors, 3), np.asarray(tl_khatri_rao(factors)), rtol=1e-12)


@pytest.mark.parametrize(("shape", "rank", "seed"), [((3, 4, 5), 3, 1), ((3, 3, 3, 3), 4, 2),
                                                     ((2, 2, 2, 2, 2, 2), 3, 3)])  # fmt: skip
def test_recovers_a_planted_decomposition(shape, rank, seed):
    tensor, _ = planted(shape, rank, seed)
    fit = fit_cp_als(tensor, rank, restarts=3, max_sweeps=3000, stall=1e-9, seed=seed)
    assert fit.relative_error < 1e-9
    rebuilt = cp_reconstruct(fit.factors)  # the returned factors carry the tensor's scale
    assert np.linalg.norm(rebuilt - tensor) / np.linalg.norm(tensor) < 1e-9


def test_order_two_meets_eckart_young():
    # For a matrix the best rank-R approximation is the truncated SVD: ALS must reach its error.
    rng = np.random.default_rng(4)
    matrix = rng.standard_normal((12, 9))
    sigma = np.linalg.svd(matrix, compute_uv=False)
    for rank in (1, 3, 5):
        best = np.sqrt(np.sum(sigma[rank:] ** 2)) / np.linalg.norm(matrix)
        fit = fit_cp_als(matrix, rank, restarts=2, max_sweeps=5000, stall=1e-12, seed=rank)
        assert fit.relative_error >= best * (1 - 1e-9)
        assert fit.relative_error == pytest.approx(best, rel=1e-5)


def test_matches_tensorly_parafac_on_a_noisy_low_rank_tensor():
    # Planted rank 2 plus noise: the best rank-2 fit is unique and both ALS codes find it.
    tensor, _ = planted((4, 5, 6), 2, seed=5)
    tensor = tensor + 1e-2 * np.random.default_rng(6).standard_normal(tensor.shape)
    ours = fit_cp_als(tensor, 2, restarts=3, max_sweeps=2000, stall=1e-12, seed=0)
    weights, factors = parafac(tl.tensor(tensor), 2, n_iter_max=2000, tol=1e-14, init="svd")
    theirs = np.linalg.norm(np.asarray(cp_to_tensor((weights, factors))) - tensor) / np.linalg.norm(tensor)
    assert 1e-3 < theirs < 0.1  # the noise level, not a failed fit
    assert ours.relative_error == pytest.approx(theirs, rel=1e-6)


def test_errors_are_bounded_below_by_every_matricization():
    # No CP fit of rank R can beat the Eckart–Young tail of any matricization (a theorem).
    rng = np.random.default_rng(7)
    tensor = rng.standard_normal((3, 3, 3, 3))
    for rank in (2, 4):
        fit = fit_cp_als(tensor, rank, restarts=1, max_sweeps=300, seed=0)
        sigma = np.linalg.svd(tensor.reshape(9, 9), compute_uv=False)
        floor = np.sqrt(np.sum(sigma[rank:] ** 2)) / np.linalg.norm(tensor)
        assert fit.relative_error >= floor * (1 - 1e-9)


def test_line_search_and_restarts_are_reported():
    tensor, _ = planted((3, 3, 3), 2, seed=8)
    fit = fit_cp_als(tensor, 2, restarts=2, max_sweeps=500, line_search=False, seed=0)
    assert fit.restarts in (1, 2) and fit.sweeps >= 1 and fit.max_term_norm > 0


def test_zero_tensor_and_bad_sizes():
    assert fit_cp_als(np.zeros((2, 3)), 2).relative_error == 0.0
    with pytest.raises(SizeError, match="order >= 2"):
        fit_cp_als(np.ones(5), 1)
    with pytest.raises(SizeError, match="rank 0"):
        fit_cp_als(np.ones((2, 2)), 0)
