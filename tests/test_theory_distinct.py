"""THEORY.md Theorem 2' (distinct cores: an alternating pair X, Y) and Theorem 6's lower bound at
odd d, against exact ranks over GF(p) of tensors built here from explicit cores."""

import numpy as np
import pytest
import torch

from tensorrnn.formats import TTTensor, TTUniformTensor
from tensorrnn.ranks import exact_rank

P = 2_097_143


def pair_transfer(Y, X):
    """K_{Y,X}[(a, e), (f, b)] = (Y[f] X[e])_ab, by loops."""
    r, n, _ = X.shape
    K = np.zeros((r * n, n * r), dtype=np.int64)
    for e in range(n):
        for f in range(n):
            product = (Y[:, f, :] @ X[:, e, :]) % P
            for a in range(r):
                for b in range(r):
                    K[a * n + e, f * r + b] = product[a, b]
    return K


def alternating_tt(U, Y, X, B, d):
    """U[i_1] Y[i_2] X[i_3] ... Y[i_{d-2}] X[i_{d-1}] B[i_d] as TT cores (mod P)."""
    n, r = U.shape
    middle = [Y if k % 2 == 0 else X for k in range(d - 2)]
    cores = [U.reshape(1, n, r), *middle, B.reshape(r, n, 1)]
    return TTTensor([torch.tensor(c % P, dtype=torch.int64) for c in cores], modulus=P)


@pytest.mark.parametrize("n,r", [(3, 2), (4, 2), (4, 3), (7, 3)])  # r <= n <= r^2
def test_invertible_alternating_pair_reaches_the_min_cut_at_every_even_d(n, r):
    rng = np.random.default_rng(10 * n + r)
    X, Y = (rng.integers(0, P, (r, n, r)) for _ in range(2))
    assert exact_rank(pair_transfer(Y, X), P) == r * n
    U, B = np.zeros((n, r), dtype=np.int64), np.zeros((r, n), dtype=np.int64)
    U[:r, :r] = np.eye(r, dtype=np.int64)
    B[:r, :r] = np.eye(r, dtype=np.int64)
    for d in (2, 4, 6, 8):
        if n ** (d // 2) > 1024:
            break
        rank = exact_rank(alternating_tt(U, Y, X, B, d).matricize("odd-even"), P)
        assert rank == r * n ** (d // 2 - 1)


def test_singular_pair_stays_below_the_min_cut_at_d_4():
    """The d = 4 rank is rank K_{Y,X} (Theorem 2'(i)): a pair whose X letters share one
    column space has a singular K and a d = 4 rank below rn."""
    n, r = 3, 2
    rng = np.random.default_rng(3)
    Y = rng.integers(0, P, (r, n, r))
    X = np.zeros((r, n, r), dtype=np.int64)
    X[:, :, 0] = rng.integers(0, P, (r, n))  # every X[e] has a zero second column
    K = pair_transfer(Y, X)
    U = rng.integers(0, P, (n, r))
    B = rng.integers(0, P, (r, n))
    rank = exact_rank(alternating_tt(U, Y, X, B, 4).matricize("odd-even"), P)
    assert rank == exact_rank(K, P) < r * n


@pytest.mark.parametrize("r,n,d", [(2, 4, 3), (2, 4, 5), (2, 5, 5), (3, 9, 3), (2, 4, 7)])
def test_matrix_unit_flattening_has_rank_r_to_the_d_minus_1_at_odd_d(r, n, d):
    """Theorem 6 at odd d: rows = odd positions; G[(a, b)] = E_ab, u = v = all ones."""
    core = torch.zeros(r, n, r, dtype=torch.int64)
    for a in range(r):
        for b in range(r):
            core[a, a * r + b, b] = 1
    ones = torch.ones(r, dtype=torch.int64)
    tensor = TTUniformTensor(core, ones, ones.clone(), d, modulus=P)
    rows = ",".join(str(k) for k in range(1, d + 1, 2))
    assert exact_rank(tensor.matricize(rows), P) == r ** (d - 1)
