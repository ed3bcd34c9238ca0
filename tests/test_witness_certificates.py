"""Checked transfer cores (docs/results/certificates), Theorem 8's diagonal-shift family, the
free-end-core and open-set
arguments for closed-form cores without boundary vectors, and the CP-rank theorem.

Every check recomputes from the stored integers with code written here (explicit loops,
python-flint), not with the functions that wrote the files.
"""

import itertools
import json

import flint
import numpy as np
import pytest
import torch

from tensorrnn.formats import CPTensor, random_tensor
from tensorrnn.ranks import exact_rank
from tensorrnn.ranks.bounds import (
    STATUS_PROVED,
    cp_expansion_bound,
    proof_status,
    ring_mincut_bound,
)
from tensorrnn.witness import CERTIFICATE_DIR, explicit_sizes, uniform_witness, witness

SECOND_PRIME = 1_000_003


def gaps(r):
    return [n for n in range(r, r * r + 1) if n not in explicit_sizes(r)]


def read_core(path):
    data = json.loads(path.read_text())
    n, r = data["n"], data["r"]
    values = {"-": -1, "0": 0, "+": 1}
    core = np.array([values[c] for c in data["core"]], dtype=np.int64).reshape(r, n, r)
    return data, core


def transfer_by_loops(core):
    """K[(a, e), (f, b)] = (G[f] G[e])_ab, written out as loops over the letters."""
    r, n, _ = core.shape
    K = np.zeros((r * n, n * r), dtype=np.int64)
    for e in range(n):
        for f in range(n):
            product = core[:, f, :] @ core[:, e, :]
            for a in range(r):
                for b in range(r):
                    K[a * n + e, f * r + b] = product[a, b]
    return K


def det_mod(K, p):
    size = K.shape[0]
    return int(flint.nmod_mat(size, size, [int(x) % p for x in K.ravel()], p).det())


def test_every_gap_up_to_r_19_has_a_certificate():
    expected = {f"transfer_r{r:02d}_n{n:03d}.json" for r in range(1, 20) for n in gaps(r)}
    stored = {path.name for path in CERTIFICATE_DIR.glob("transfer_r*_n*.json")}
    assert len(expected) == 25 + 14 + 16  # r <= 16: 2 + 4 + 8 + 10 + 1; r = 17; r = 19
    assert expected <= stored


def test_gaps_of_r_23_are_counted_right():
    """THEORY.md's list: 28-31 and 24 values in 498-527 (498-501, 508-527)."""
    assert gaps(23) == [28, 29, 30, 31, *range(498, 502), *range(508, 528)]


@pytest.mark.parametrize("name", ["transfer_r05_n022.json", "transfer_r07_n047.json",
                                  "transfer_r11_n112.json"])  # fmt: skip
def test_a_sample_of_certificates_rechecks(name):
    data, core = read_core(CERTIFICATE_DIR / name)
    n, r, p = data["n"], data["r"], data["prime"]
    K = transfer_by_loops(core)
    det = det_mod(K, p)
    assert det == data["det_K_mod_p"] and det != 0
    assert det_mod(K, SECOND_PRIME) != 0  # a second prime: det K is a non-zero integer
    u, v = np.array(data["u"]), np.array(data["v"])
    U = np.einsum("a,aeb->eb", u, core)
    B = np.einsum("aeb,b->ea", core, v)
    for M in (U, B):
        assert flint.nmod_mat(n, r, [int(x) % p for x in M.ravel()], p).rank() == r
    assert proof_status("tt-uniform", n, r, 4, "odd-even", None, r * n)[0] == STATUS_PROVED


@pytest.mark.parametrize("name", ["transfer_r23_n028.json", "transfer_r35_n047.json"])
def test_rank_certificates_recheck_with_flint(name):
    """Certificates of large K store an exact rank (the blas engine's) instead of a
    determinant; python-flint, an independent engine, re-checks it here."""
    data, core = read_core(CERTIFICATE_DIR / name)
    n, r, p = data["n"], data["r"], data["prime"]
    K = transfer_by_loops(core)
    size = r * n
    assert data["rank_K_mod_p"] == size
    assert flint.nmod_mat(size, size, [int(x) % p for x in K.ravel()], p).rank() == size
    assert proof_status("tt-shared", n, r, 6, "odd-even", None, r * n * n)[0] == STATUS_PROVED


def test_every_certificate_file_states_an_invertible_k():
    for path in sorted(CERTIFICATE_DIR.glob("transfer_r*_n*.json")):
        data = json.loads(path.read_text())
        n, r = data["n"], data["r"]
        assert path.name == f"transfer_r{r:02d}_n{n:03d}.json" and n in gaps(r)
        assert len(data["core"]) == r * n * r and set(data["core"]) <= set("-0+")
        assert data.get("det_K_mod_p", 0) != 0 or data.get("rank_K_mod_p") == r * n


def test_checked_core_reaches_the_min_cut_at_d_4_by_brute_force():
    """u^T G[i1] G[i2] G[i3] G[i4] v for all i, by explicit products; rank over GF(p) = rn."""
    data, core = read_core(CERTIFICATE_DIR / "transfer_r05_n022.json")
    n, r, p = data["n"], data["r"], data["prime"]
    u, v = np.array(data["u"], dtype=object), np.array(data["v"], dtype=object)
    letters = [core[:, e, :].astype(object) for e in range(n)]
    left = [u @ letters[e] for e in range(n)]  # u^T G[e]
    right = [letters[e] @ v for e in range(n)]  # G[e] v
    pairs = {(e2, e3): letters[e2] @ letters[e3] for e2 in range(n) for e3 in range(n)}
    M = np.zeros((n * n, n * n), dtype=np.int64)
    for e1, e2, e3, e4 in itertools.product(range(n), repeat=4):
        M[e1 * n + e3, e2 * n + e4] = int(left[e1] @ pairs[(e2, e3)] @ right[e4]) % p
    assert exact_rank(M, p) == r * n == 110


def test_bipartite_core_has_no_boundary_vector_but_free_ends_reach_the_min_cut():
    """The issue's K_{3,2} finding (n = 6, r = 5): rank [u^T G[e]]_e < r for every u, so the
    uniform tensor stays below the min-cut 30; free end cores reach it (30 at d = 4, 180 at 6)."""
    r, n = 5, 6
    core = np.zeros((r, n, r), dtype=np.int64)
    for e, (x, y) in enumerate((x, y) for x in range(3) for y in range(3, 5)):
        core[x, e, y] = core[y, e, x] = 1
    rng = np.random.default_rng(5)
    for _ in range(5):
        u = rng.integers(-9, 10, r)
        U = np.einsum("a,aeb->eb", u, core)
        assert np.linalg.matrix_rank(U.astype(float)) < r
        w = np.concatenate([u[:3], -u[3:]])
        assert not (U @ w).any()  # w = (u_A, -u_B) annihilates every row
    for d, expected in ((4, 30), (6, 180)):
        for family in ("tt", "tt-shared"):
            tensor = witness("transfer", n, r, d, family=family)
            np.testing.assert_array_equal(tensor.tt_cores()[1].numpy(), core)  # the K_{3,2} core
            assert exact_rank(tensor.matricize("odd-even")) == expected
        assert proof_status(family, n, r, d, "odd-even", None, expected)[0] == STATUS_PROVED
    assert "search" in uniform_witness("transfer", n, r).construction  # honest about tt-uniform
    assert proof_status("tt-uniform", n, r, 4, "odd-even", None, 30) == (
        STATUS_PROVED, "transfer, closed-form core, open-set argument")


def _ring_cut_by_brute_force(n, r, d, rows):
    best = None
    for sides in itertools.product((True, False), repeat=d):
        cost = 1
        for k in range(d):
            if sides[k] != (k in rows):
                cost *= n
            if d > 1 and sides[k] != sides[(k + 1) % d]:
                cost *= r
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6, 8])
def test_ring_min_cut_is_the_brute_force_minimum(d):
    for n, r in ((2, 2), (2, 3), (3, 2), (5, 4)):
        for rows in ((tuple(range(0, d, 2))), tuple(range(d // 2)), (0,)):
            assert ring_mincut_bound([n] * d, r, rows) == _ring_cut_by_brute_force(n, r, d, set(rows))


def test_expansion_is_an_exact_cp_decomposition_with_r_to_the_d_minus_1_terms():
    """Theorem 6's upper bound: one rank-one term per choice of bond indices (here built by
    hand and compared with the TT entrywise), and r^(d-1) is met by the certified rank."""
    n, r, d = 4, 2, 4
    tensor = random_tensor("tt", n, r, d, seed=3)
    cores = [c.numpy() for c in tensor.tt_cores()]
    factors = [[] for _ in range(d)]
    for bonds in itertools.product(range(r), repeat=d - 1):
        path = (0, *bonds, 0)
        for k in range(d):
            factors[k].append(cores[k][path[k], :, path[k + 1]])
    cp = CPTensor([torch.tensor(np.stack(f, axis=1)) for f in factors])
    assert cp.rank == r ** (d - 1) == cp_expansion_bound("tt", n, r, d)[0]
    np.testing.assert_allclose(cp.full().numpy(), tensor.full().numpy(), atol=1e-12)
    p = 2_097_143
    for family in ("tt", "tt-shared", "tt-uniform"):
        instance = random_tensor(family, n, r, d, seed=8, modulus=p)
        assert exact_rank(instance.matricize("odd-even"), p) == r ** (d - 1)


def toeplitz_blocks_invertible(d, m):
    r = len(d)
    return all(flint.fmpz_mat([[d[(c + f - e) % r] for e in range(m)] for f in range(m)]).det() != 0
               for c in range(r))  # fmt: skip


@pytest.mark.parametrize("r", [3, 5, 6, 7])
def test_diagonal_shift_span_works_exactly_when_every_toeplitz_block_does(r):
    """Theorem 8's criterion against the transfer matrix itself, written out by loops: for
    V = span{D P^j : j < m}, K is invertible iff every H_c[f, e] = d_(c+f-e mod r) is. Small
    diagonals (1..3) give both outcomes; random ones always work."""
    rng = np.random.default_rng(r)
    outcomes = set()
    for _ in range(12):
        d = [int(x) for x in rng.integers(1, 4, r)]
        for m in range(1, r + 1):
            core = np.zeros((r, m, r), dtype=np.int64)
            for j in range(m):
                for i in range(r):
                    core[i, j, (i + j) % r] = d[i]
            K = transfer_by_loops(core)
            works = flint.fmpz_mat(K.tolist()).rank() == r * m
            assert works == toeplitz_blocks_invertible(d, m)
            outcomes.add(works)
    assert outcomes == {True, False}


def test_every_size_has_a_transfer_core_up_to_r_40():
    """Corollary 9: with the diagonal-shift family, hub extensions and complements reach every
    0 <= n <= r^2 (the induction of THEORY.md), here as recipes up to the code's r = 40."""
    from tensorrnn.witness import transfer_recipe

    for r in range(1, 41):
        assert all(transfer_recipe(n, r) is not None for n in range(r * r + 1)), r
