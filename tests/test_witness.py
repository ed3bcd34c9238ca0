"""Witnesses: closed-form ranks against exact ranks, the lemmas behind them, and refusals.

Every exact rank here is over GF(p) of an integer tensor and is compared for equality
with a closed form: exact arithmetic, so equality is the right test.
"""

import itertools

import flint
import numpy as np
import pytest
import torch

from tensorrnn.errors import ConfigError
from tensorrnn.formats import delta_witness, parse_split
from tensorrnn.ranks import effective_bonds, exact_rank, mincut_bound
from tensorrnn.ranks.bounds import (
    STATUS_CERTIFIED,
    STATUS_OPEN,
    STATUS_PROVED,
    check_witness,
    proof_status,
)
from tensorrnn.ranks.modp import DEFAULT_PRIME
from tensorrnn.witness import (
    KINDS,
    WITNESS_KINDS,
    WITNESS_PRIME,
    closed_form_kind,
    explicit_sizes,
    mincut_kind,
    mincut_rank,
    transfer_matrix,
    transfer_recipe,
    uniform_witness,
    witness,
    witness_rank,
)

FAMILIES = ("tt-uniform", "tt-shared", "tt")


def odd_even_rank(tensor) -> int:
    return exact_rank(tensor.matricize("odd-even"))


def applies(kind, n, r) -> bool:
    try:
        witness_rank(kind, n, r, 2)
    except ConfigError:
        return False
    return True


def cases(kind, max_side=512):
    """Every (n, r, d) of the kind's regime with r <= 4, n <= r^2 + 1, side <= max_side."""
    out = []
    for r in range(1, 5):
        for n in range(1, r * r + 2):
            if not applies(kind, n, r):
                continue
            for d in range(2, 40, 2):
                if n ** (d // 2) > max_side:
                    break
                out.append((n, r, d))
    return out


def test_default_modulus_is_the_exact_engines_prime():
    assert WITNESS_PRIME == DEFAULT_PRIME


@pytest.mark.parametrize("kind", WITNESS_KINDS)
def test_exact_rank_equals_the_closed_form_in_every_family(kind):
    """Every d the exact engine reaches in well under a second (matrix side <= 512)."""
    checked = 0
    for n, r, d in cases(kind):
        expected = witness_rank(kind, n, r, d)
        for family in KINDS[kind].families:
            tensor = witness(kind, n, r, d, family=family)
            assert tensor.family == family
            assert odd_even_rank(tensor) == expected, (kind, family, n, r, d)
            checked += 1
    assert checked >= 20


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,n,r,d",
    [("hub", 4, 4, 12), ("hub", 3, 3, 14), ("transfer", 5, 3, 10), ("transfer", 7, 3, 8),
     ("transfer", 3, 2, 14), ("matrix-unit", 4, 2, 12), ("delta", 3, 4, 14),
     ("alternating", 4, 4, 12)],
)  # fmt: skip
def test_closed_form_at_the_largest_sides_of_seconds(kind, n, r, d):
    assert odd_even_rank(witness(kind, n, r, d)) == witness_rank(kind, n, r, d)


def test_min_cut_witnesses_for_d_4_to_10_in_the_open_regimes():
    """Issue 13 item 3: n = r and r <= n < r^2 reach the min-cut at d = 4, 6, 8, 10."""
    for n, r in [(2, 2), (3, 3), (3, 2), (4, 3), (5, 3), (6, 3)]:
        for d in (4, 6, 8, 10):
            if n ** (d // 2) > 4096:
                continue
            kind = mincut_kind(n, r)
            assert kind in ("hub", "transfer")
            tensor = witness(kind, n, r, d, family="tt-shared")
            assert odd_even_rank(tensor) == mincut_rank(n, r, d) == witness_rank(kind, n, r, d)


def test_mincut_rank_is_the_trimmed_min_cut_and_some_witness_meets_it():
    for n, r in itertools.product(range(1, 8), range(1, 7)):
        for d in (2, 4, 6, 8, 10, 20):
            cut = mincut_bound([n] * d, effective_bonds(n, r, d), parse_split("odd-even", d))
            assert mincut_rank(n, r, d) == cut
            assert witness_rank(mincut_kind(n, r), n, r, d) == cut


# --------------------------------------------------------------------------- #
# The tensors themselves
# --------------------------------------------------------------------------- #


def dense(tensor) -> np.ndarray:
    return tensor.full().numpy()


@pytest.mark.parametrize("n,r,d", [(2, 3, 4), (3, 3, 6), (4, 3, 4), (2, 2, 6)])
def test_delta_witness_is_the_thesis_tensor(n, r, d):
    ours = witness("delta", n, r, d, modulus=None)
    theirs = delta_witness("tt-uniform", n, r, d)
    np.testing.assert_array_equal(dense(ours), theirs.full().numpy())


@pytest.mark.parametrize("n,r", [(3, 3), (4, 3), (5, 4), (2, 3)])
def test_hub_is_the_delta_witness_plus_a_loop(n, r):
    """A = 1 exactly on words made of blocks (r-1) [the loop] and i i with i < r - 1."""
    d = 4
    full = dense(witness("hub", n, r, d, modulus=None))
    loop = r - 1 if n >= r else None
    for word in itertools.product(range(n), repeat=d):
        k, ok = 0, True
        while k < d and ok:
            if word[k] == loop:
                k += 1
            elif word[k] < min(n, r - 1) and k + 1 < d and word[k + 1] == word[k]:
                k += 2
            else:
                ok = False
        assert full[word] == float(ok), word


def test_matrix_unit_witness_is_one_exactly_on_chaining_pairs():
    n, r, d = 5, 2, 4  # one spare mode value, left at zero
    full = dense(witness("matrix-unit", n, r, d, modulus=None))
    for word in itertools.product(range(n), repeat=d):
        pairs = [divmod(e, r) if e < r * r else None for e in word]
        chain = all(p is not None for p in pairs) and all(
            pairs[k][1] == pairs[k + 1][0] for k in range(d - 1)
        )
        assert full[word] == float(chain)


def test_alternating_witness_is_a_product_of_deltas_with_distinct_cores():
    n, r, d = 3, 2, 6
    tensor = witness("alternating", n, r, d)
    assert tensor.family == "tt" and len({id(c) for c in tensor.tt_cores()}) == d
    full = dense(witness("alternating", n, r, d, modulus=None))
    for word in itertools.product(range(n), repeat=d):
        expected = all(word[2 * k] == word[2 * k + 1] < min(n, r) for k in range(d // 2))
        assert full[word] == float(expected)


def test_integer_cores_and_float_cores_agree():
    for kind, n, r, d in [("transfer", 4, 3, 4), ("hub", 3, 3, 6), ("matrix-unit", 4, 2, 4)]:
        exact = witness(kind, n, r, d)
        floats = witness(kind, n, r, d, modulus=None)
        assert exact.tt_cores()[1].dtype == torch.int64 and exact.modulus == DEFAULT_PRIME
        assert floats.tt_cores()[1].dtype == torch.float64 and floats.modulus is None
        reduced = torch.remainder(floats.matricize().round().to(torch.int64), DEFAULT_PRIME)
        assert torch.equal(reduced, exact.matricize())


# --------------------------------------------------------------------------- #
# The lemmas (docs/THEORY.md)
# --------------------------------------------------------------------------- #


def rank_p(matrix) -> int:
    m = np.asarray(matrix, dtype=object)
    if 0 in m.shape:
        return 0
    return int(flint.nmod_mat(*m.shape, [int(x) % DEFAULT_PRIME for x in m.ravel()], DEFAULT_PRIME).rank())


def uniform_rank(core, u, v, d) -> int:
    from tensorrnn.formats import TTUniformTensor

    p = DEFAULT_PRIME
    as_t = [torch.tensor([int(x) % p for x in np.asarray(a, dtype=object).ravel()]).reshape(a.shape)
            for a in (core, u, v)]  # fmt: skip
    return odd_even_rank(TTUniformTensor(*as_t, d, modulus=p))


def test_transfer_lemma_rank_at_d_4_is_the_rank_of_k_and_full_k_gives_every_d():
    """Theorem 2: with u^T G[e] and G[e] v spanning, rank at d = 4 equals rank K, and an
    invertible K gives r n^(d/2 - 1) at every even d; a singular K falls short at d = 4."""
    rng = np.random.default_rng(2024)
    singular_seen = full_seen = 0
    for _ in range(40):
        r = int(rng.integers(2, 4))
        n = int(rng.integers(r, r * r + 1))
        core = rng.integers(-1, 2, (r, n, r)) * (rng.random((r, n, r)) < 0.4)
        u, v = rng.integers(-2, 3, r), rng.integers(-2, 3, r)
        U = np.einsum("a,aeb->eb", u, core)
        B = np.einsum("aeb,b->ea", core, v)
        if rank_p(U) < r or rank_p(B) < r:
            continue
        k = rank_p(transfer_matrix(core))
        assert uniform_rank(core, u, v, 4) == k
        if k == r * n:
            full_seen += 1
            for d in (6, 8):
                if n ** (d // 2) <= 1024:
                    assert uniform_rank(core, u, v, d) == r * n ** (d // 2 - 1)
        else:
            singular_seen += 1
    assert singular_seen and full_seen


def test_hub_transfer_matrix_is_unit_triangular():
    """Theorem 3: det K = +-1 over Q, so K is invertible modulo every prime."""
    for r in range(1, 7):
        core = uniform_witness("hub", r, r).core
        K = flint.fmpz_mat([[int(x) for x in row] for row in transfer_matrix(core)])
        assert abs(int(K.det())) == 1


@pytest.mark.parametrize("r", [1, 2, 3, 4, 5, 6])
def test_every_closed_form_recipe_has_an_invertible_transfer_matrix(r):
    """The multipartite theorem, the hub extension, Kronecker products and complements,
    for every n in explicit_sizes(r) (0 <= n <= r^2), checked exactly."""
    from tensorrnn.witness import _basis, _stack

    for n in sorted(explicit_sizes(r)):
        core = _stack(_basis(n, r), n, r).astype(np.int64)
        assert rank_p(transfer_matrix(core)) == r * n, (n, r, transfer_recipe(n, r))


def test_explicit_sizes_cover_r_to_r_squared_except_known_gaps():
    for r in (2, 3, 4, 6, 8):
        assert set(range(r, r * r + 1)) <= explicit_sizes(r)
    assert set(range(5, 26)) - explicit_sizes(5) == {22, 23}
    assert set(range(7, 50)) - explicit_sizes(7) == {44, 45, 46, 47}


def test_a_gap_of_s_r_is_filled_by_the_diagonal_shift_family():
    parts = uniform_witness("transfer", 22, 5)
    assert parts.construction == "complement of [diagonal-shift D P^j, j < 3, searched diagonal]"
    assert closed_form_kind(22, 5) is None and closed_form_kind(21, 5) == "transfer"
    assert odd_even_rank(witness("transfer", 22, 5, 4)) == 5 * 22


def test_complement_of_a_working_span_works_and_of_a_failing_one_fails():
    """Lemma 5: K(V) invertible iff K(V-perp) invertible."""
    rng = np.random.default_rng(7)
    outcomes = set()
    r = 3

    def stack(letters):
        return np.stack(letters, axis=1) if letters else np.zeros((r, 0, r), dtype=np.int64)

    for _ in range(30):
        n = int(rng.integers(1, 9))
        letters = [rng.integers(-1, 2, (r, r)) * (rng.random((r, r)) < 0.5) for _ in range(n)]
        rows = flint.fmpz_mat([[int(x) for x in M.ravel()] for M in letters])
        if rows.rank() < n:
            continue
        null, nullity = rows.nullspace()
        perp = [np.array([int(null[i, j]) for i in range(r * r)]).reshape(r, r) for j in range(nullity)]
        ok = rank_p(transfer_matrix(stack(letters))) == r * n
        ok_perp = rank_p(transfer_matrix(stack(perp))) == r * len(perp)
        assert ok == ok_perp
        outcomes.add(ok)
    assert outcomes == {True, False}


@pytest.mark.parametrize("r", [2, 3])
def test_walk_cores_on_a_subset_of_pairs_never_reach_the_min_cut(r):
    """Lemma 6 (the issue's observation): 0/1 cores G[(a, b)] = E_ab on |S| = n < r^2
    pairs, any boundary vectors, stay below the min-cut at d = 4."""
    pairs = [(a, b) for a in range(r) for b in range(r)]
    ones = np.ones(r, dtype=np.int64)
    for n in range(r, r * r):
        for subset in itertools.combinations(pairs, n):
            core = np.zeros((r, n, r), dtype=np.int64)
            for e, (a, b) in enumerate(subset):
                core[a, e, b] = 1
            assert rank_p(transfer_matrix(core)) < r * n
            assert uniform_rank(core, ones, ones, 4) < mincut_rank(n, r, 4)


# --------------------------------------------------------------------------- #
# Status and checks
# --------------------------------------------------------------------------- #


def test_proof_status_by_regime():
    assert proof_status("tt-shared", 3, 3, 8, "odd-even", 81, 81) == (STATUS_PROVED, "hub")
    assert proof_status("tt", 2, 3, 8, "odd-even", None, 16) == (STATUS_PROVED, "delta")
    assert proof_status("tt-uniform", 5, 3, 6, "odd-even", 75, 75) == (STATUS_PROVED, "transfer")
    assert proof_status("tt-uniform", 9, 3, 6, "odd-even", 243, 243) == (STATUS_PROVED, "matrix-unit")
    # A former gap of S(r): proved by Theorem 8's diagonal-shift family, whose diagonal is
    # searched (and checked), so the label says so; beyond CHECK_LIMIT, existence only.
    assert proof_status("tt-uniform", 22, 5, 4, "odd-even", None, 110) == (
        STATUS_PROVED, "transfer, diagonal-shift core with a searched diagonal")
    assert proof_status("tt-shared", 274, 17, 4, "odd-even", None, 17 * 274) == (
        STATUS_PROVED, "transfer, Theorem 8, existence, free end cores")
    assert proof_status("tt-uniform", 274, 17, 4, "odd-even", None, 17 * 274) == (
        STATUS_PROVED, "transfer, Theorem 8, existence, open-set argument")
    # No witness theory for other splits or for cp.
    assert proof_status("tt", 3, 3, 6, "half", 9, 9) == (STATUS_CERTIFIED, None)
    assert proof_status("cp", 3, 3, 4, "odd-even", 3, 9) == (STATUS_OPEN, None)


def test_check_witness_reports_exact_closed_form_and_min_cut():
    check = check_witness("hub", 3, 3, 6, family="tt-shared")
    assert (check.exact, check.closed_form, check.mincut) == (27, 27, 27)
    assert check.agrees and check.meets_mincut and check.family == "tt-shared"
    assert (check.rows, check.cols) == (27, 27)
    below = check_witness("delta", 3, 3, 6, engine="flint")
    assert below.exact == below.closed_form == 8 and not below.meets_mincut


# --------------------------------------------------------------------------- #
# Refusals
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "call,fragment",
    [
        (lambda: witness("diagonal", 3, 3, 4), "unknown witness kind"),
        (lambda: witness("hub", 3, 3, 5), "even d"),
        (lambda: witness("hub", 0, 3, 4), "n=0"),
        (lambda: witness("hub", 3, True, 4), "r=True"),
        (lambda: witness("matrix-unit", 8, 3, 4), "n >= r^2"),
        (lambda: witness("transfer", 2, 3, 4), "r <= n <= r^2"),
        (lambda: witness("transfer", 10, 3, 4), "r <= n <= r^2"),
        (lambda: witness("delta", 3, 1, 4), "r >= 2"),
        (lambda: witness("alternating", 3, 3, 4, family="tt-shared"), "exists as tt"),
        (lambda: witness("hub", 3, 3, 4, family="cp"), "not as 'cp'"),
        (lambda: witness("hub", 3, 3, 4, modulus=12), "not a prime"),
        (lambda: uniform_witness("alternating", 3, 3), "distinct cores"),
        (lambda: check_witness("hub", 3, 3, 4, prime=16777259), "too large"),
    ],
)
def test_bad_input_is_one_config_error(call, fragment):
    with pytest.raises(ConfigError) as info:
        call()
    assert fragment in str(info.value) and "\n" not in str(info.value)
