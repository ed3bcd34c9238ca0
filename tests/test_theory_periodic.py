"""Periodic chains (trace boundary): the cyclic-symmetry shortfall of THEORY.md §9, checked
on tensors built without the package's formats, and the rank laboratory's periodic families."""

import csv
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from tensorrnn.cli import main
from tensorrnn.formats import random_tensor
from tensorrnn.ranks import exact_rank

P = 2_097_143


def minus_one_multiplicity(n, k):
    """THEORY.md §9: (1/k) sum_j (-1)^j n^gcd(j, k), the dimension of {x : S x = -x}."""
    return sum((-1) ** j * n ** np.gcd(j, k) for j in range(k)) // k


def minus_one_by_eigenvalues(n, k):
    """The same dimension from the eigenvalues of the cyclic shift's permutation matrix."""
    tuples = list(itertools.product(range(n), repeat=k))
    index = {t: i for i, t in enumerate(tuples)}
    S = np.zeros((len(tuples), len(tuples)))
    for t in tuples:
        S[index[t[1:] + t[:1]], index[t]] = 1
    return int(np.sum(np.abs(np.linalg.eigvals(S) + 1) < 1e-6))


@pytest.mark.parametrize("n,k", [(2, 2), (3, 2), (4, 2), (5, 2), (6, 2), (2, 4), (3, 4), (2, 3), (3, 3)])
def test_multiplicity_formula(n, k):
    expected = minus_one_by_eigenvalues(n, k) if k % 2 == 0 else 0
    assert (minus_one_multiplicity(n, k) if k % 2 == 0 else 0) == expected


def cyclic_tensor(n, d, seed):
    """A random integer tensor averaged (summed) over the d rotations: cyclically invariant."""
    base = np.random.default_rng(seed).integers(0, P, (n,) * d).astype(object)
    total = sum(np.moveaxis(base, list(range(d)), [(a + s) % d for a in range(d)]) for s in range(d))
    return np.vectorize(lambda x: x % P)(total).astype(np.int64)


def odd_even(full):
    d, n = full.ndim, full.shape[0]
    rows, cols = list(range(0, d, 2)), list(range(1, d, 2))
    return full.transpose(rows + cols).reshape(n ** (d // 2), -1)


@pytest.mark.parametrize("n,d", [(2, 4), (3, 4), (4, 4), (5, 4), (6, 4), (7, 4), (2, 8), (3, 8)])
def test_every_cyclic_tensor_falls_one_short_exactly_when_the_multiplicity_is_odd(n, d):
    """Proposition 7 on tensors that owe nothing to tensor trains: rank n^k - 1 when N_- is odd,
    n^k (no shortfall from this source) when it is even."""
    k = d // 2
    rank = max(exact_rank(odd_even(cyclic_tensor(n, d, seed)), P) for seed in (1, 2))
    assert rank == n**k - (minus_one_multiplicity(n, k) % 2)


@pytest.mark.parametrize("n,r,d,expected", [(2, 3, 4, 3), (3, 3, 4, 8), (3, 4, 8, 80), (4, 3, 4, 16),
                                            (6, 3, 4, 35), (3, 3, 6, 27)])  # fmt: skip
def test_translation_invariant_ring_meets_the_cyclic_bound(n, r, d, expected):
    ranks = [exact_rank(random_tensor("tt-periodic-shared", n, r, d, seed=s, modulus=P).matricize(), P)
             for s in (3, 4)]  # fmt: skip
    assert max(ranks) == expected


def test_ranks_command_runs_the_periodic_shared_family(monkeypatch, capsys, tmp_path: Path):
    out = tmp_path / "ring"
    argv = ["tensorrnn", "ranks", "--family", "tt-periodic-shared", "--n", "2,3", "--r", "3",
            "--d", "4", "--trials", "1", "--method", "float,exact", "--no-cp-fit", "--out", str(out),
            "--quiet"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    rows = list(csv.DictReader((out / "ranks.csv").open()))
    assert {row["method"] for row in rows} == {"float", "exact"}
    got = {(int(row["n"]), int(row["rank"]), int(row["mincut"])) for row in rows if row["method"] == "exact"}
    assert got == {(2, 3, 4), (3, 8, 9)}  # ring min-cut n^2; one short (Proposition 7)
    table = (out / "ranks.md").read_text()
    assert "| tt-periodic-shared | 3 | 3 | 4 | odd-even | 9×9 |" in table
    assert (out / "ranks_periodic.png").exists()
