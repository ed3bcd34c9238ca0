"""Exact ranks modulo p: the float64 BLAS engine against two independent references.

References: python-flint's ``nmod_mat.rank`` (integer arithmetic, different code) and
a plain Gaussian elimination over Python ints written here (tiny sizes only).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorrnn.errors import ConfigError, SizeError, TensorRNNError
from tensorrnn.ranks.modp import (
    DEFAULT_BLOCK_DEPTH,
    DEFAULT_PRIME,
    MAX_PRIME,
    _Eliminator,
    _working_copy,
    certify_rank_at_least,
    exact_rank,
    max_block_depth,
    rank_mod_p,
    rank_mod_p_flint,
)

PRIMES = [2, 3, 5, 7, 101, 65537, DEFAULT_PRIME, 16777213]  # 16777213: largest prime < 2^24


def rank_python(M: np.ndarray | list[list[int]], p: int) -> int:
    """Row reduction over GF(p) with Python ints: slow, obviously right."""
    A = [[int(x) % p for x in row] for row in np.asarray(M, dtype=object).tolist()]
    if not A:
        return 0
    rank = 0
    for c in range(len(A[0])):
        piv = next((i for i in range(rank, len(A)) if A[i][c]), None)
        if piv is None:
            continue
        A[rank], A[piv] = A[piv], A[rank]
        inv = pow(A[rank][c], -1, p)
        for i in range(rank + 1, len(A)):
            if A[i][c]:
                f = A[i][c] * inv % p
                A[i] = [(a - f * b) % p for a, b in zip(A[i], A[rank], strict=True)]
        rank += 1
    return rank


def low_rank(rng: np.random.Generator, m: int, n: int, r: int, p: int) -> np.ndarray:
    """A random m x n matrix of rank <= r mod p (U V with U: m x r, V: r x n)."""
    U = rng.integers(0, p, (m, r), dtype=np.int64)
    V = rng.integers(0, p, (r, n), dtype=np.int64)
    out = np.zeros((m, n), dtype=np.int64)
    for t in range(r):  # column by column keeps every product below 2^63
        out = (out + np.outer(U[:, t], V[t]) % p) % p
    return out


def family(rng: np.random.Generator, kind: str, m: int, n: int, p: int) -> np.ndarray:
    """Matrices built to hit the awkward paths: deficiency, zero pivots, reduction."""
    r = int(rng.integers(0, min(m, n) + 1))
    M = low_rank(rng, m, n, r, p)
    if kind == "zero_rows":
        M[rng.integers(0, m, size=max(1, m // 3))] = 0
    elif kind == "zero_cols":
        M[:, rng.integers(0, n, size=max(1, n // 3))] = 0
    elif kind == "dup_cols":
        src = rng.integers(0, n, size=n)
        keep = rng.random(n) < 0.5
        M[:, keep] = M[:, src[keep]]
    elif kind == "multiples_of_p":
        # Entries that vanish only after reduction, plus negative representatives.
        M = M + p * rng.integers(-5, 6, size=(m, n))
    elif kind == "leading_zeros":
        # Zero top-left corner: the first pivots must come from far down / far right.
        M[: m // 2 + 1, : n // 2 + 1] = 0
    elif kind == "permuted_identity":
        M = np.zeros((m, n), dtype=np.int64)
        d = min(m, n)
        M[rng.permutation(m)[:d], rng.permutation(n)[:d]] = rng.integers(1, p, size=d)
    elif kind == "full":
        M = rng.integers(0, p, (m, n), dtype=np.int64)
    elif kind == "sparse_pivots":
        # Dense but with many zeros: blocks stay invertible yet need row swaps.
        M = rng.integers(0, p, (m, n), dtype=np.int64) * (rng.random((m, n)) < 0.6)
    return M


KINDS = [
    "low_rank",
    "zero_rows",
    "zero_cols",
    "dup_cols",
    "multiples_of_p",
    "leading_zeros",
    "permuted_identity",
    "full",
    "sparse_pivots",
]


# --------------------------------------------------------------------------- agreement


# One literal seed per kind (never hash(kind): str hashes are salted per process,
# so a failure could not be reproduced); the seed shows in the test id.
@pytest.mark.parametrize("kind,seed", [(kind, 1000 + i) for i, kind in enumerate(KINDS)])
def test_agrees_with_flint_on_random_families(kind: str, seed: int) -> None:
    """Hundreds of matrices of every shape; small leaves and depths force recursion."""
    rng = np.random.default_rng(seed)
    for trial in range(40):
        p = PRIMES[trial % len(PRIMES)]
        m, n = (int(x) for x in rng.integers(1, 70, size=2))
        if trial % 5 == 0:
            m = 1 if trial % 10 == 0 else m
            n = 1 if trial % 10 == 5 else n
        M = family(rng, kind, m, n, p)
        leaf = int(rng.choice([1, 2, 3, 5, 8, 32]))
        depth = int(rng.integers(1, 12)) if trial % 3 == 0 else None
        expected = rank_mod_p_flint(M, p)
        got = rank_mod_p(M, p, leaf_width=leaf, block_depth=depth)
        assert got == expected, (kind, M.shape, p, leaf, depth)


def test_agrees_with_python_elimination_on_tiny_matrices() -> None:
    rng = np.random.default_rng(7)
    for trial in range(150):
        p = [2, 3, 5, 7, 11, 13][trial % 6]
        m, n = (int(x) for x in rng.integers(1, 7, size=2))
        M = family(rng, KINDS[trial % len(KINDS)], m, n, p)
        expected = rank_python(M, p)
        assert rank_mod_p(M, p, leaf_width=1 + trial % 3) == expected, (M, p)
        assert rank_mod_p_flint(M, p) == expected


def test_python_reference_itself() -> None:
    """The hand-written reference must be able to disagree, or it proves nothing."""
    assert rank_python([[1, 2], [2, 4]], 7) == 1
    assert rank_python([[1, 2], [2, 4]], 2) == 1
    assert rank_python([[1, 2], [3, 4]], 2) == 1  # det = -2 vanishes mod 2
    assert rank_python([[1, 2], [3, 4]], 3) == 2
    assert rank_python([[0, 0], [0, 0]], 5) == 0


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (0, 5), (5, 0), (0, 0), (2, 300), (300, 2)])
def test_degenerate_shapes(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    M = rng.integers(1, 50, size=shape)
    assert rank_mod_p(M, 101) == rank_mod_p_flint(M, 101) == min(shape)
    assert rank_mod_p(np.zeros(shape, dtype=np.int64), 101) == 0


def test_one_by_one() -> None:
    assert rank_mod_p(np.array([[0]]), 7) == 0
    assert rank_mod_p(np.array([[7]]), 7) == 0
    assert rank_mod_p(np.array([[-14]]), 7) == 0
    assert rank_mod_p(np.array([[3]]), 7) == 1
    assert rank_mod_p(np.array([[-1]]), 2) == 1


def test_medium_matrices_default_tuning() -> None:
    """Default leaf and depth, sizes where the recursion has several levels."""
    rng = np.random.default_rng(3)
    for m, n, r in [(200, 200, 200), (257, 190, 150), (190, 333, 101), (300, 300, 299)]:
        M = low_rank(rng, m, n, r, DEFAULT_PRIME)
        assert rank_mod_p(M) == rank_mod_p_flint(M, DEFAULT_PRIME) == r
        M[:, rng.integers(0, n, 20)] = 0
        assert rank_mod_p(M) == rank_mod_p_flint(M, DEFAULT_PRIME)


def test_rank_deficient_left_halves_need_compaction() -> None:
    """Rank-deficient column blocks at every level move pivot columns in place."""
    rng = np.random.default_rng(11)
    p = 65537
    for _ in range(10):
        n = 96
        cols = rng.integers(0, 6, size=n)  # only 6 distinct column directions...
        base = rng.integers(0, p, (80, 6))
        M = base[:, cols] * rng.integers(1, p, size=n) % p
        M[:, rng.choice(n, 30, replace=False)] = rng.integers(0, p, (80, 30))
        for leaf in (1, 4, 7, 32):
            assert rank_mod_p(M, p, leaf_width=leaf) == rank_mod_p_flint(M, p)


def test_extreme_entries_at_the_exactness_bound() -> None:
    """All entries +-(p-1) with the maximal depth: the worst case of the 2^53 argument."""
    p = DEFAULT_PRIME
    rng = np.random.default_rng(5)
    n = 3 * DEFAULT_BLOCK_DEPTH // 2 + 7  # one product sliced into two depth blocks
    signs = rng.choice([-1, 1], size=(40, n))
    M = np.vstack([signs * (p - 1), rng.integers(0, p, (8, n))])
    M = np.vstack([M, (M[0] + M[1]) % p, (3 * M[2] - M[5]) % p])
    assert rank_mod_p(M, p, leaf_width=16) == rank_mod_p_flint(M, p)
    assert rank_mod_p(M.T, p, leaf_width=16) == rank_mod_p_flint(M, p)


@pytest.mark.parametrize("p", [3, 5, 101])
def test_exactness_invariants_hold_at_every_product(p: int) -> None:
    """Checked mode asserts, at every GEMM and rank-1 update, that operands are
    reduced and accumulated entries obey ``|x| <= (p-1) + d (p-1)^2`` with ``d <= k``.
    Tiny primes and depths make a skipped reduction break the bound for real."""
    rng = np.random.default_rng(p)
    for trial in range(30):
        m, n = (int(x) for x in rng.integers(1, 60, size=2))
        M = family(rng, KINDS[trial % len(KINDS)], m, n, p)
        k = int(rng.integers(1, max_block_depth(p) + 1)) if trial % 2 else max_block_depth(p)
        leaf = int(rng.choice([1, 2, 3, 8, 32]))
        W = _working_copy(M, p)
        got = _Eliminator(W, p, min(k, 12), leaf, progress=False, check=True).rank()
        assert got == rank_mod_p_flint(M, p)


def test_largest_prime_slices_products() -> None:
    p = 16777213
    rng = np.random.default_rng(9)
    M = low_rank(rng, 70, 90, 60, p)
    assert max_block_depth(p) < 70  # the GEMMs really are sliced
    assert rank_mod_p(M, p, leaf_width=4) == rank_mod_p_flint(M, p) == 60


# --------------------------------------------------------------------------- inputs


def test_input_types_and_reduction() -> None:
    p = 101
    rng = np.random.default_rng(2)
    M = low_rank(rng, 23, 31, 17, p)
    expected = rank_mod_p_flint(M, p)
    big = M.astype(object) + p * (10**30)  # Python ints beyond int64
    variants = [
        M,
        M.astype(np.int32),
        M.astype(np.uint16),
        M.astype(np.float64),
        M.astype(np.float32),
        M - p * 7,  # negative representatives
        M + (np.iinfo(np.int64).max // p - 1) * p,  # near the int64 limit
        big,
        M.tolist(),
        torch.from_numpy(M),
        torch.from_numpy(M).to(torch.int32),
        torch.from_numpy(M).to(torch.float64),
        torch.from_numpy(M.T.copy()).t(),  # non-contiguous view
    ]
    for V in variants:
        assert rank_mod_p(V, p) == expected, type(V)
        assert rank_mod_p_flint(V, p) == expected, type(V)
    assert rank_mod_p(M[::2, ::3], p) == rank_mod_p_flint(M[::2, ::3], p)
    assert rank_mod_p(np.ones((4, 5), dtype=bool), p) == 1


def test_input_is_not_modified() -> None:
    M = np.arange(12).reshape(3, 4) * 5
    T = torch.from_numpy(M.copy()).double()
    before = M.copy()
    rank_mod_p(M, 7)
    rank_mod_p(T, 7)
    assert np.array_equal(M, before) and torch.equal(T, torch.from_numpy(before).double())


def test_overwrite_factors_the_matrix_itself() -> None:
    # In place (one copy of an 8.6 GB matrix at N = 32768): same rank as flint, on
    # numpy and torch float64 inputs of both orientations and with negative and
    # unreduced entries; other dtypes and non-integers are refused.
    p = 2_097_143
    rng = np.random.default_rng(11)
    for m, n, r in ((70, 90, 41), (90, 70, 64), (128, 128, 128)):
        M = low_rank(rng, m, n, r, p)
        expected = rank_mod_p_flint(M, p)
        shifted = M.astype(np.float64) - 3.0 * p
        for V in (shifted.copy(), torch.from_numpy(shifted.copy())):
            assert rank_mod_p(V, p, overwrite=True) == expected
        assert rank_mod_p(shifted.copy(), p, overwrite=True, leaf_width=8) == expected
        W = torch.from_numpy(shifted.copy())
        rank_mod_p(W, p, overwrite=True)
        assert not torch.equal(W, torch.from_numpy(shifted))  # it was the working copy
    with pytest.raises(ConfigError, match="must be float64"):
        rank_mod_p(np.eye(3, dtype=np.int64), 7, overwrite=True)
    with pytest.raises(ConfigError, match="non-integer"):
        rank_mod_p(np.full((2, 2), 0.5), 7, overwrite=True)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("p", [0, 1, 4, 9, -7, 2**21])
def test_rejects_non_primes(p: int) -> None:
    with pytest.raises(ConfigError, match="not a prime"):
        rank_mod_p(np.eye(3, dtype=np.int64), p)
    with pytest.raises(ConfigError, match="not a prime"):
        rank_mod_p_flint(np.eye(3, dtype=np.int64), p)


def test_rejects_primes_too_large_for_float64() -> None:
    with pytest.raises(ConfigError, match="too large") as info:
        rank_mod_p(np.eye(3, dtype=np.int64), 16777259)  # smallest prime above 2^24
    assert "engine='flint'" in str(info.value)
    assert rank_mod_p_flint(np.eye(3, dtype=np.int64), 16777259) == 3
    assert exact_rank(np.eye(3, dtype=np.int64), 2**61 - 1, engine="flint") == 3


@pytest.mark.parametrize("p", [2.0, "7", True, None])
def test_rejects_non_integer_p(p: object) -> None:
    with pytest.raises(ConfigError):
        rank_mod_p(np.eye(3, dtype=np.int64), p)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_rejects_non_2d(shape: tuple[int, ...]) -> None:
    M = np.ones(shape, dtype=np.int64)
    for fn in (rank_mod_p, rank_mod_p_flint):
        with pytest.raises(SizeError, match="2-D") as info:
            fn(M, 7)
        assert str(shape) in str(info.value)


def test_rejects_non_integer_entries() -> None:
    for M in (np.array([[0.5, 1.0]]), np.array([[np.nan, 1.0]]), torch.tensor([[1.5]])):
        with pytest.raises(ConfigError, match="integer"):
            rank_mod_p(M, 7)
    with pytest.raises(ConfigError):
        rank_mod_p(np.array([[1 + 2j]]), 7)


def test_rejects_unsafe_tuning() -> None:
    with pytest.raises(ConfigError, match="unsafe"):
        rank_mod_p(np.eye(3, dtype=np.int64), block_depth=DEFAULT_BLOCK_DEPTH + 1)
    with pytest.raises(ConfigError):
        rank_mod_p(np.eye(3, dtype=np.int64), block_depth=0)
    with pytest.raises(ConfigError):
        rank_mod_p(np.eye(3, dtype=np.int64), leaf_width=0)
    with pytest.raises(ConfigError, match="engine"):
        exact_rank(np.eye(3, dtype=np.int64), engine="magma")  # type: ignore[arg-type]


def test_errors_are_tensorrnn_errors() -> None:
    assert issubclass(ConfigError, TensorRNNError) and issubclass(SizeError, TensorRNNError)


def test_exactness_bound_is_tight() -> None:
    for p in PRIMES:
        k = max_block_depth(p)
        assert k >= 1
        assert k * (p - 1) ** 2 + (p - 1) <= 2**53
        assert (k + 1) * (p - 1) ** 2 + (p - 1) > 2**53
    assert DEFAULT_BLOCK_DEPTH == max_block_depth(DEFAULT_PRIME) == 2048
    assert DEFAULT_PRIME < 2**21 <= MAX_PRIME


# --------------------------------------------------------------------------- properties


small_matrices = st.integers(1, 9).flatmap(
    lambda m: st.integers(1, 9).flatmap(
        lambda n: st.lists(st.lists(st.integers(-40, 40), min_size=n, max_size=n), min_size=m, max_size=m)
    )
)


@settings(max_examples=150, deadline=None)
@given(rows=small_matrices, p=st.sampled_from([2, 3, 5, 7, 13]), leaf=st.integers(1, 4))
def test_property_matches_python_elimination(rows: list[list[int]], p: int, leaf: int) -> None:
    M = np.array(rows, dtype=np.int64)
    r = rank_mod_p(M, p, leaf_width=leaf)
    assert r == rank_python(rows, p)
    assert r == rank_mod_p(M.T, p, leaf_width=leaf)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    leaf=st.integers(1, 6),
)
def test_property_invariances(seed: int, m: int, n: int, leaf: int) -> None:
    """rank([M, M]) = rank(M) = rank(P M Q) for invertible P, Q; rank <= min(m, n)."""
    p = 65537
    rng = np.random.default_rng(seed)
    M = family(rng, KINDS[seed % len(KINDS)], m, n, p)
    r = rank_mod_p(M, p, leaf_width=leaf)
    assert 0 <= r <= min(m, n)
    assert rank_mod_p(np.hstack([M, M]), p, leaf_width=leaf) == r
    P = low_rank(rng, m, m, m, p)  # invertible with probability ~1 - m/p
    Q = low_rank(rng, n, n, n, p)
    if rank_mod_p_flint(P, p) == m and rank_mod_p_flint(Q, p) == n:
        PMQ = (P.astype(object) @ M.astype(object) @ Q.astype(object)) % p
        assert rank_mod_p(PMQ, p, leaf_width=leaf) == r


# --------------------------------------------------------------------------- API


def test_exact_rank_dispatch() -> None:
    rng = np.random.default_rng(4)
    M = low_rank(rng, 30, 40, 12, DEFAULT_PRIME)
    assert exact_rank(M) == exact_rank(M, engine="flint") == 12
    assert exact_rank(M, 101, engine="blas") == rank_mod_p_flint(M, 101)


def test_certify_rank_at_least() -> None:
    rng = np.random.default_rng(6)
    M = low_rank(rng, 120, 90, 70, DEFAULT_PRIME)
    assert certify_rank_at_least(M, 70, seed=1)
    assert certify_rank_at_least(M, 35, seed=2)
    assert certify_rank_at_least(M, 0)
    assert not certify_rank_at_least(M, 71, seed=1)  # rank(M S) <= rank(M) always
    assert not certify_rank_at_least(M, 91)
    assert certify_rank_at_least(M.T, 70, seed=3)
    assert certify_rank_at_least(torch.from_numpy(M), 70, p=65537, seed=4)
    assert certify_rank_at_least(M, 60, seed=5) == certify_rank_at_least(M, 60, seed=5)
    with pytest.raises(ConfigError):
        certify_rank_at_least(M, -1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(8)
    M = low_rank(rng, 300, 280, 250, DEFAULT_PRIME)
    assert rank_mod_p(torch.from_numpy(M).cuda()) == rank_mod_p_flint(M, DEFAULT_PRIME)


def test_threads_restored() -> None:
    before = torch.get_num_threads()
    rank_mod_p(np.eye(64, dtype=np.int64))
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_larger_low_rank_against_flint() -> None:
    rng = np.random.default_rng(12)
    p = DEFAULT_PRIME
    for m, n, r in [(900, 900, 850), (700, 1100, 650)]:
        U = rng.integers(0, p, (m, r))
        V = rng.integers(0, p, (r, n))
        M = torch.remainder(
            torch.from_numpy(U).double() @ torch.from_numpy(V).double(), p
        )  # not exact: any integers will do, flint sees the same ones
        M = M.round().to(torch.int64)
        M[:, rng.integers(0, n, 40)] = 0
        assert rank_mod_p(M) == rank_mod_p_flint(M, p)
