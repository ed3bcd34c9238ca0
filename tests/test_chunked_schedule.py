"""The chunked schedule (tree inside chunks of k positions, sequential across them).

References: the sequential chain of the same network, in float64 (an independent
loop: one step per position, its own hand-written backward), and for the exact
scores the dense coefficient tensor. Tolerances are stated per test.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tensorrnn.errors import ConfigError
from tensorrnn.networks import CPU_CHUNK_BYTES, TREE_COPIES, TTNet, chunk_size

F64 = torch.float64


def _net(d: int, n: int, r: int, shared: bool, chunk: int | None, dtype=F64, seed: int = 0) -> TTNet:
    gen = torch.Generator().manual_seed(seed)
    net = TTNet(d, n, r, 3, shared, init="orthogonal", generator=gen, chunk=chunk)
    return net.to(dtype)


def _phi(b: int, d: int, n: int, dtype=F64, seed: int = 1) -> torch.Tensor:
    # Positive features with a constant component, as in training (affine-relu).
    gen = torch.Generator().manual_seed(seed)
    phi = torch.rand(b, d, n, generator=gen, dtype=F64) + 0.5
    return phi.to(dtype)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize(
    ("d", "chunk"), [(3, 1), (4, 1), (9, 2), (9, 3), (9, 7), (17, 5), (17, 15), (17, 40)]
)
def test_chunked_logits_and_gradients_equal_the_sequential_chain(shared: bool, d: int, chunk: int) -> None:
    # float64 both ways: the same function, so agreement to 1e-10 relative.
    net = _net(d, 3, 4, shared, chunk)
    phi = _phi(5, d, 3)
    weights = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    results = []
    for schedule in ("sequential", "chunked"):
        x = phi.clone().requires_grad_()
        logits, log_scale = net.normalized_scores(x, schedule)
        loss = (weights * logits).sum() + 0.1 * log_scale.sum()
        results.append((logits, log_scale, *torch.autograd.grad(loss, [x, *net.parameters()])))
    for seq, chunked in zip(*results, strict=True):
        torch.testing.assert_close(chunked, seq, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shared", [True, False])
def test_chunked_exact_scores_equal_the_sequential_ones(shared: bool) -> None:
    net = _net(12, 2, 3, shared, chunk=4)
    phi = _phi(4, 12, 2)
    with torch.no_grad():
        seq, chunked = net.scores(phi, "sequential"), net.scores(phi, "chunked")
    torch.testing.assert_close(chunked, seq, rtol=1e-10, atol=1e-12 * float(seq.abs().max()))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("chunk", [1, 16, 100, 782])
def test_float32_chunked_at_d784_matches_a_float64_sequential_run(shared: bool, chunk: int) -> None:
    """Long chains: float32 chunked logits within 1e-4 of float64 sequential ones.

    The logits are bounded by the last core's norm (here about 1). 782 normalised
    float32 steps each add relative rounding of a few 1e-7; observed: at most 2e-6
    of the largest logit, for the chunked and the float32 sequential chain alike, so
    1e-4 leaves a margin of 50x. The log-scale (a sum of 783 logs) was within 4e-6
    relative; the test allows 5e-5.
    """
    d, n, r, b = 784, 2, 8, 6
    ref_net = _net(d, n, r, shared, chunk=None)
    phi64 = _phi(b, d, n)
    with torch.no_grad():
        ref_logits, ref_log = ref_net.normalized_scores(phi64, "sequential")
    net32 = _net(d, n, r, shared, chunk=chunk, dtype=torch.float32)
    logits, log_scale = net32.normalized_scores(phi64.float(), "chunked")
    assert logits.dtype == torch.float32
    scale = float(ref_logits.abs().max())
    assert float((logits.detach().double() - ref_logits).abs().max()) <= 1e-4 * scale
    assert float((log_scale.detach().double() - ref_log).abs().max()) <= 5e-5 * float(ref_log.abs().max())
    # and backward runs through every checkpointed chunk
    logits.sum().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net32.parameters())


@pytest.mark.parametrize("shared", [True, False])
def test_float64_gradients_at_d784_chunked_equal_sequential(shared: bool) -> None:
    d, n, r, b = 784, 2, 4, 3
    net = _net(d, n, r, shared, chunk=50)
    phi = _phi(b, d, n)
    grads = []
    for schedule in ("sequential", "chunked"):
        net.zero_grad()
        logits, log_scale = net.normalized_scores(phi, schedule)
        (logits[:, 0].sum() + 0.01 * log_scale.sum()).backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for seq, chunked in zip(*grads, strict=True):
        torch.testing.assert_close(chunked, seq, rtol=1e-9, atol=1e-12)


def test_chunked_training_keeps_only_the_chunk_inputs() -> None:
    """Memory: what autograd keeps after the forward is O(d/k · B · r), not O(d · B · r²).

    Counted with saved-tensor hooks (the checkpointed chunks keep their inputs,
    not their trees). The tree schedule keeps at least its (d−2)·B·r² step matrices.
    """
    d, n, r, b, k = 130, 2, 16, 8, 16
    net = _net(d, n, r, True, chunk=k, dtype=torch.float32)
    phi = _phi(b, d, n, torch.float32)
    step_matrices = (d - 2) * b * r * r * 4

    def saved_bytes(schedule: str) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            net(phi, schedule=schedule).sum()
        return total

    assert saved_bytes("parallel") >= step_matrices
    # Independent bound: features, cores and a few (B, r) / (B, n) tensors per chunk.
    chunks = -(-(d - 2) // k)
    bound = (
        phi.numel() * 4 + sum(p.numel() for p in net.parameters()) * 4 + 8 * (chunks + 4) * b * max(r, n) * 4
    )
    assert saved_bytes("chunked") <= bound < step_matrices / 2


class _Outputs(torch.nn.Module):
    """``net.<method>(phi, "chunked")`` as a forward, for ``functional_call``."""

    def __init__(self, net: TTNet, method: str) -> None:
        super().__init__()
        self.net, self.method = net, method

    def forward(self, phi: torch.Tensor):
        return getattr(self.net, self.method)(phi, "chunked")


@pytest.mark.parametrize("shared", [True, False])
def test_chunked_gradcheck(shared: bool) -> None:
    # Finite differences of logits, log-scale and exact scores, through checkpointed chunks.
    net = _net(7, 2, 2, shared, chunk=2)
    names = [name for name, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())
    phi = _phi(3, 7, 2).requires_grad_()
    for method in ("normalized_scores", "scores"):
        wrapped = _Outputs(net, method)

        def outputs(phi: torch.Tensor, *ps: torch.Tensor, wrapped=wrapped):
            state = {"net." + k: v for k, v in zip(names, ps, strict=True)}
            return torch.func.functional_call(wrapped, state, (phi,))

        assert torch.autograd.gradcheck(outputs, (phi, *params))


def test_brute_force_scores_through_chunks() -> None:
    d, n, r = 7, 2, 3
    net = _net(d, n, r, False, chunk=2)
    phi = _phi(3, d, n)
    with torch.no_grad():
        got = net.scores(phi, "chunked")
    for y in range(3):
        full = net.coefficient_tensor(y).full()
        want = torch.einsum("abcdefg,za,zb,zc,zd,ze,zf,zg->z", full, *phi.unbind(1))
        torch.testing.assert_close(got[:, y], want, rtol=1e-12, atol=1e-12 * float(want.abs().max()))


def test_chunk_size_follows_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    per_position = TREE_COPIES * 512 * 100 * 100 * 4
    assert chunk_size(784, 512, 100, "cpu") == max(1, CPU_CHUNK_BYTES // per_position)
    assert chunk_size(49, 2, 2, "cpu", torch.float64) == 47  # the whole tree fits
    # CUDA: half of the free memory (faked here, no GPU needed).
    free = 8 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    assert chunk_size(784, 512, 100, "cuda") == (free // 2) // per_position
    free = 2**20
    assert chunk_size(784, 512, 100, "cuda") == 1


def test_auto_on_a_cpu_stays_sequential_and_bad_chunks_are_refused() -> None:
    net = _net(9, 2, 3, True, chunk=None)
    phi = _phi(2, 9, 2)
    assert torch.equal(net(phi), net(phi, "sequential"))
    with pytest.raises(ConfigError, match="chunk=0 must be a positive integer"):
        TTNet(9, 2, 3, 3, chunk=0)
    with pytest.raises(ConfigError, match="chunk=2.5"):
        TTNet(9, 2, 3, 3, chunk=2.5)  # type: ignore[arg-type]


def test_auto_on_cuda_runs_the_tree_where_it_fits_else_sequential(monkeypatch: pytest.MonkeyPatch) -> None:
    """The choice alone (no GPU needed): the device's free memory is faked, and so are the features."""
    d, n, r, b = 784, 2, 100, 512
    tree_bytes = TREE_COPIES * (d - 2) * b * r * r * 4  # what chunk_size budgets for the whole tree
    phi = SimpleNamespace(device=torch.device("cuda"), shape=(b, d, n), dtype=torch.float32)
    net = TTNet(d, n, r, 10, shared=True)
    for free, expected in ((2 * tree_bytes, "parallel"), (2 * tree_bytes - 2**20, "sequential")):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None, free=free: (free, 2 * free))
        assert net.schedule_for(phi) == expected
    assert TTNet(d, n, r, 10, shared=True, chunk=64).schedule_for(phi) == "chunked"  # an explicit k
