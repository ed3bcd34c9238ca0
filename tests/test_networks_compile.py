"""The compiled TT chain (``compile_chain``) against the plain loops, and its fallback."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tensorrnn import networks
from tensorrnn.networks import TTNet


def _loss_and_grads(net: TTNet, phi: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad(set_to_none=True)
    phi = phi.clone().requires_grad_()
    loss = F.cross_entropy(net(phi), labels)
    loss.backward()
    return [loss.detach(), phi.grad, *(p.grad for p in net.parameters())]


@pytest.fixture
def chain_case() -> tuple[TTNet, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    # d - 2 = 19 middle steps: one full chunk of COMPILE_CHUNK = 16 and a remainder.
    net = TTNet(21, 4, 5, 3, shared=True, init="orthogonal", generator=gen)
    return net, torch.rand(6, 21, 4, generator=gen), torch.randint(0, 3, (6,), generator=gen)


@pytest.fixture
def fresh_compile_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(networks, "_compiled", {})


@pytest.mark.slow
def test_compiled_chain_matches_plain_loops(chain_case, fresh_compile_state) -> None:
    net, phi, labels = chain_case
    assert networks.COMPILE_CHUNK < net.d - 2 < 2 * networks.COMPILE_CHUNK
    plain = _loss_and_grads(net, phi, labels)
    net.compile_chain = True
    compiled = _loss_and_grads(net, phi, labels)
    assert "failed" not in networks._compiled, "torch.compile fell back on this machine"
    for a, b in zip(plain, compiled, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_compile_failure_falls_back_with_one_warning(chain_case, fresh_compile_state, monkeypatch) -> None:
    net, phi, labels = chain_case
    plain = _loss_and_grads(net, phi, labels)

    def broken_compile(fn):
        def run(*args, **kwargs):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    net.compile_chain = True
    with pytest.warns(RuntimeWarning, match="running it uncompiled"):
        fallback = _loss_and_grads(net, phi, labels)
    for a, b in zip(plain, fallback, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    # Later calls go straight to the plain loops.
    assert _loss_and_grads(net, phi, labels)[0] == plain[0]
