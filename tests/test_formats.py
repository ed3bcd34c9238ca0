"""Formats and matricizations against brute force (TensorLy / numpy einsum)."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorly.tt_tensor import tt_to_tensor

from tensorrnn.errors import ConfigError, SizeError, TensorRNNError
from tensorrnn.formats import (
    FAMILIES,
    CPTensor,
    TTPeriodicSharedTensor,
    TTPeriodicTensor,
    TTSharedTensor,
    TTTensor,
    TTUniformTensor,
    delta_witness,
    parse_split,
    random_tensor,
)


def dense_reference(tensor) -> np.ndarray:
    """The full tensor from each format's own parameters, by plain einsum."""
    if isinstance(tensor, CPTensor):
        letters = "abcdefghijkl"[: len(tensor.factors)]
        spec = ",".join(f"{c}z" for c in letters) + "->" + letters
        return np.einsum(spec, *[f.numpy() for f in tensor.factors])
    if isinstance(tensor, TTUniformTensor):
        g, u, v = tensor.core.numpy(), tensor.u.numpy(), tensor.v.numpy()
        out = u[None, :]  # (prefix, r)
        for _ in range(tensor.order):
            out = np.einsum("pa,aib->pib", out, g).reshape(-1, g.shape[2])
        return (out @ v).reshape((g.shape[1],) * tensor.order)
    if isinstance(tensor, (TTPeriodicTensor, TTPeriodicSharedTensor)):
        # The trace of the product of matrices, one prefix of mode values at a time.
        cores = tensor.cores if isinstance(tensor, TTPeriodicTensor) else [tensor.core] * tensor.order
        r, n = cores[0].shape[0], cores[0].shape[1]
        prod = np.eye(r)[None]  # (prefix, r, r)
        for g in cores:
            prod = np.einsum("pab,bic->piac", prod, g.numpy()).reshape(-1, r, r)
        return np.trace(prod, axis1=1, axis2=2).reshape((n,) * len(cores))
    if isinstance(tensor, TTSharedTensor):
        cores = [tensor.first] + [tensor.middle] * (tensor.order - 2) + [tensor.last]
        return tt_to_tensor([c.numpy() for c in cores])
    return tt_to_tensor([c.numpy() for c in tensor.cores])


def reference_matrix(full: np.ndarray, rows) -> np.ndarray:
    cols = [k for k in range(full.ndim) if k not in rows]
    nr = int(np.prod([full.shape[k] for k in rows]))
    return full.transpose(list(rows) + cols).reshape(nr, -1)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("split", ["odd-even", "half", "1,2,5", "6", [2, 3, 4, 5, 6]])
def test_float_matricization_matches_brute_force(family, split):
    tensor = random_tensor(family, 3, 4, 6, seed=7)
    full = dense_reference(tensor)
    np.testing.assert_allclose(tensor.full().numpy(), full, rtol=1e-12, atol=1e-14)
    rows = parse_split(split, 6)
    np.testing.assert_allclose(
        tensor.matricize(split).numpy(), reference_matrix(full, rows), rtol=1e-12, atol=1e-14
    )


def int_reference(tensor, p: int) -> np.ndarray:
    """Exact full tensor with Python integers (object dtype), reduced at the end."""
    cores = [np.array(c.numpy(), dtype=object) for c in tensor.tt_cores()]
    out = cores[0]
    for core in cores[1:]:
        out = np.tensordot(out, core, axes=([out.ndim - 1], [0]))
    return (out.reshape(out.shape[1:-1]) % p).astype(np.int64)


@pytest.mark.parametrize("family", ["tt", "tt-shared", "cp", "tt-periodic", "tt-periodic-shared"])
def test_integer_matricization_is_exact_mod_p(family):
    p = 2_097_143
    tensor = random_tensor(family, 2, 3, 8, seed=3, modulus=p)
    full = int_reference(tensor, p)
    for split in ("odd-even", "half", "1,4,7"):
        rows = parse_split(split, 8)
        got = tensor.matricize(split).numpy()
        assert got.dtype == np.int64 and got.min() >= 0 and got.max() < p
        np.testing.assert_array_equal(got, reference_matrix(full, rows))


def test_uniform_integer_boundary_is_reduced():
    p = 101
    tensor = random_tensor("tt-uniform", 2, 3, 6, seed=1, modulus=p)
    ref = np.einsum("a,aib,bjc,ckd,dle,emf,fng,g->ijklmn",
                    *[np.array(x.numpy(), dtype=object) for x in
                      [tensor.u] + [tensor.core] * 6 + [tensor.v]]) % p  # fmt: skip
    np.testing.assert_array_equal(tensor.full().numpy(), ref.astype(np.int64))


def test_shared_core_is_one_object():
    tensor = random_tensor("tt-shared", 2, 3, 7, seed=0)
    middles = tensor.tt_cores()[1:-1]
    assert len(middles) == 5 and all(m is tensor.middle for m in middles)


@pytest.mark.parametrize("family", ["tt-shared", "tt-uniform"])
@pytest.mark.parametrize("n,r,d", [(2, 3, 4), (3, 3, 6), (3, 4, 4), (4, 3, 6), (2, 2, 8)])
def test_delta_witness_has_rank_q_to_the_half_d(family, n, r, d):
    witness = delta_witness(family, n, r, d)
    q = min(n, r - 1)
    full = dense_reference(witness)
    # The witness is the product of Kronecker deltas on values < q.
    for index in itertools.product(range(n), repeat=d):
        pairs = [(index[2 * k], index[2 * k + 1]) for k in range(d // 2)]
        expected = float(all(a == b and a < q for a, b in pairs))
        assert full[index] == expected
    assert np.linalg.matrix_rank(witness.matricize("odd-even").numpy()) == q ** (d // 2)


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(2, 6),
    n=st.integers(1, 3),
    r=st.integers(1, 3),
    data=st.data(),
)
def test_any_split_matches_transpose_reshape(d, n, r, data):
    rows = data.draw(st.sets(st.integers(1, d), min_size=1, max_size=d))
    tensor = random_tensor("tt", n, r, d, seed=d * 100 + n * 10 + r)
    full = dense_reference(tensor)
    got = tensor.matricize(sorted(rows)).numpy()
    np.testing.assert_allclose(got, reference_matrix(full, [m - 1 for m in sorted(rows)]), atol=1e-12)


@pytest.mark.parametrize(
    "split,d,message",
    [
        ("odd-even", 5, "even order"),
        ("1,1", 4, "twice"),
        ("1,5", 4, "outside 1..4"),
        ("0", 4, "outside"),
        ("banana", 4, "unknown split"),
        ("", 4, "at least one"),
    ],
)
def test_bad_splits(split, d, message):
    with pytest.raises(ConfigError, match=message):
        parse_split(split, d)


@pytest.mark.parametrize(
    "args,message",
    [(("tt", 0, 2, 4), "n=0"), (("tt", 2, 0, 4), "r=0"), (("nope", 2, 2, 4), "unknown family")],
)
def test_bad_sizes(args, message):
    with pytest.raises(TensorRNNError, match=message):
        random_tensor(*args, seed=0)


def test_too_large_matrix_is_refused_before_allocation():
    tensor = random_tensor("tt-shared", 2, 3, 60, seed=0)
    with pytest.raises(SizeError, match="GiB"):
        tensor.matricize("odd-even", max_bytes=2**30)


def test_bond_mismatch_is_reported():
    with pytest.raises(ConfigError, match="bond mismatch"):
        TTTensor([torch.ones(1, 2, 3), torch.ones(2, 2, 1)])


@pytest.mark.parametrize("family", ["tt", "tt-uniform", "cp"])
def test_order_one_tensors(family):
    tensor = random_tensor(family, 3, 2, 1, seed=4)
    np.testing.assert_allclose(tensor.full().numpy(), dense_reference(tensor), atol=1e-14)
    assert tensor.matricize("1").shape == (3, 1)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_periodic_tensor_is_the_trace_of_the_product(d):
    """Against an explicit loop over all mode values: A[i] = tr(G_1[i_1] ... G_d[i_d])."""
    for family in ("tt-periodic", "tt-periodic-shared"):
        tensor = random_tensor(family, 2, 3, d, seed=11)
        cores = tensor.cores if family == "tt-periodic" else [tensor.core] * d
        full = tensor.full().numpy()
        for idx in itertools.product(range(2), repeat=d):
            product = np.eye(3)
            for core, i in zip(cores, idx, strict=True):
                product = product @ core[:, i, :].numpy()
            assert abs(full[idx] - np.trace(product)) < 1e-12


def test_periodic_shared_tensor_is_invariant_under_rotation():
    """One core on a ring: rotating the modes leaves the tensor unchanged (exact, mod p)."""
    tensor = random_tensor("tt-periodic-shared", 2, 3, 5, seed=4, modulus=101)
    full = tensor.full().numpy()
    np.testing.assert_array_equal(full, np.moveaxis(full, 0, -1))


def test_ring_cores_must_share_one_shape():
    with pytest.raises(ConfigError, match="ring cores must all be"):
        TTPeriodicTensor([torch.zeros(2, 3, 2), torch.zeros(3, 3, 3)])
