"""Numerical ranks, bounds and CP fits against independent references."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorrnn.formats import parse_split, random_tensor
from tensorrnn.ranks import (
    cp_upper_bound,
    effective_bonds,
    exact_rank,
    fit_cp,
    mincut_bound,
    numerical_rank,
    theorem_bound,
)
from tensorrnn.ranks.modp import DEFAULT_PRIME


def test_numerical_rank_matches_numpy_and_reports_gap():
    rng = np.random.default_rng(0)
    for true_rank in (0, 1, 5, 12):
        m = rng.standard_normal((20, true_rank)) @ rng.standard_normal((true_rank, 15))
        got = numerical_rank(torch.from_numpy(m))
        assert got.rank == np.linalg.matrix_rank(m) == true_rank
        if 0 < true_rank < 15:
            assert got.gap > 1e8  # a clear decision
    full = numerical_rank(torch.from_numpy(rng.standard_normal((6, 6))))
    assert full.rank == 6 and math.isinf(full.gap)


def brute_force_mincut(mode_sizes, bonds, rows):
    best = None
    for sides in itertools.product((True, False), repeat=len(mode_sizes)):
        cost = 1
        for k, side in enumerate(sides):
            if side != (k in rows):
                cost *= mode_sizes[k]
            if k and sides[k - 1] != side:
                cost *= bonds[k - 1]
        best = cost if best is None else min(best, cost)
    return best


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=7),
    bond=st.integers(1, 6),
    data=st.data(),
)
def test_mincut_dynamic_programming_equals_exhaustive_search(sizes, bond, data):
    d = len(sizes)
    bonds = data.draw(st.lists(st.integers(1, bond), min_size=d - 1, max_size=d - 1))
    rows = data.draw(st.sets(st.integers(0, d - 1), min_size=1, max_size=d))
    assert mincut_bound(sizes, bonds, rows) == brute_force_mincut(sizes, bonds, rows)


@pytest.mark.parametrize("family", ["tt", "tt-shared", "tt-uniform", "cp"])
@pytest.mark.parametrize("split", ["odd-even", "half", "1,2,5"])
def test_mincut_is_above_every_measured_rank(family, split):
    for n, r in [(2, 2), (2, 4), (3, 2), (3, 3)]:
        tensor = random_tensor(family, n, r, 6, seed=n + r)
        rank = np.linalg.matrix_rank(tensor.matricize(split).numpy())
        cut = mincut_bound([n] * 6, effective_bonds(n, r, 6), parse_split(split, 6))
        assert rank <= cut


def test_theorem_bounds():
    assert theorem_bound(3, 3, 6, shared=True) == 8  # q = min(3, 2) = 2
    assert theorem_bound(3, 3, 6, shared=False) == 27
    assert theorem_bound(4, 1, 4, shared=True) == 0
    assert theorem_bound(2, 5, 7, shared=True) is None


@pytest.mark.parametrize("family", ["tt", "tt-shared", "tt-uniform"])
def test_exact_and_float_ranks_agree_where_the_gap_is_large(family):
    for n, r, d in [(2, 3, 6), (3, 2, 6), (2, 4, 8), (3, 3, 4)]:
        real = random_tensor(family, n, r, d, seed=11).matricize("odd-even")
        measured = numerical_rank(real)
        integer = random_tensor(family, n, r, d, seed=11, modulus=DEFAULT_PRIME)
        certified = exact_rank(integer.matricize("odd-even"), DEFAULT_PRIME)
        assert measured.gap > 1e6
        assert certified == measured.rank


def test_generic_shared_core_rank_reaches_the_theorem_bound():
    # n = 3, r = 3: q = min(3, 2) = 2, bound 2^3 = 8 at d = 6; certified over GF(p).
    integer = random_tensor("tt-shared", 3, 3, 6, seed=5, modulus=DEFAULT_PRIME)
    assert exact_rank(integer.matricize("odd-even"), DEFAULT_PRIME) >= 8


def test_cp_fit_recovers_known_rank_and_refuses_border_rank():
    rng = np.random.default_rng(1)
    factors = [rng.standard_normal((2, 3)) for _ in range(4)]
    rank3 = np.einsum("az,bz,cz,dz->abcd", *factors)
    upper, fit = cp_upper_bound(rank3, range(1, 5))
    assert upper == 3 and fit.relative_error < 1e-12
    # W = e1⊗e0⊗e0 + e0⊗e1⊗e0 + e0⊗e0⊗e1 has rank 3 but border rank 2: rank-2 fits
    # approach it only with diverging terms, which must not count.
    w = np.zeros((2, 2, 2))
    w[1, 0, 0] = w[0, 1, 0] = w[0, 0, 1] = 1.0
    assert not fit_cp(w, 2, restarts=4).exact
    assert cp_upper_bound(w, range(1, 4))[0] == 3


def test_cp_fit_of_a_shared_core_tensor_meets_its_matricization_rank():
    # 2x2x2x2x2x2 tt-shared, r = 3: odd-even rank 8 and a CP fit of rank 8, so the
    # CP rank of this instance is exactly 8.
    tensor = random_tensor("tt-shared", 2, 3, 6, seed=0)
    assert np.linalg.matrix_rank(tensor.matricize("odd-even").numpy()) == 8
    # A fit is an optimisation whose path shifts with the BLAS and its thread count:
    # 9 of 20 single starts reached 1e-15 here, so 16 starts miss with odds ~1e-4
    # on any machine (8 would miss with ~1 %).
    upper, fit = cp_upper_bound(tensor.full().numpy(), range(8, 9), seed=0, restarts=16)
    assert upper == 8 and fit.max_term_norm < 1e3
