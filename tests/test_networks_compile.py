"""The fused C++ TT chain (``compile_chain``) against autograd and the plain loops, and its fallback."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tensorrnn import chain_kernel
from tensorrnn.networks import TTNet, _SequentialChain


def _loss_and_grads(net: TTNet, phi: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad(set_to_none=True)
    phi = phi.clone().requires_grad_()
    loss = F.cross_entropy(net(phi), labels)
    loss.backward()
    return [loss.detach(), phi.grad, *(p.grad for p in net.parameters())]


class _Counted:
    """The built module, counting its calls: a test of the fused chain must see it run (with the
    flag ignored, "fused" would be the plain loops and every comparison would pass)."""

    def __init__(self, module) -> None:
        self.module = module
        self.calls = {"chain_forward": 0, "chain_backward": 0}

    def __getattr__(self, name: str):
        function = getattr(self.module, name)
        if name not in self.calls:
            return function

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return function(*args, **kwargs)

        return counted

    def ran(self) -> tuple[int, int]:
        """Calls of (forward, backward) since the last look."""
        calls = (self.calls["chain_forward"], self.calls["chain_backward"])
        self.calls = dict.fromkeys(self.calls, 0)
        return calls


@pytest.fixture(scope="module")
def built():
    module = chain_kernel.load()
    assert module is not None, "the fused chain could not be built on this machine"
    return module


@pytest.fixture
def kernel(built, monkeypatch) -> _Counted:
    counted = _Counted(built)
    monkeypatch.setitem(chain_kernel._loaded, "module", counted)
    return counted


def _case(d: int, shared: bool, dtype: torch.dtype) -> tuple[TTNet, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    net = TTNet(d, 4, 5, 3, shared=shared, init="orthogonal", generator=gen).to(dtype)
    return net, torch.rand(6, d, 4, generator=gen, dtype=dtype), torch.randint(0, 3, (6,), generator=gen)


@pytest.mark.slow
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "distinct"])
def test_fused_chain_gradients_match_finite_differences(kernel, shared: bool) -> None:
    gen = torch.Generator().manual_seed(5)
    b, m, n, r = 3, 4, 2, 3
    h = torch.nn.functional.normalize(torch.randn(b, r, generator=gen, dtype=torch.float64), dim=1)
    phi = torch.rand(b, m, n, generator=gen, dtype=torch.float64)
    cores = torch.randn(1 if shared else m, r, n, r, generator=gen, dtype=torch.float64)
    inputs = tuple(x.requires_grad_() for x in (h, phi, cores))
    # Both outputs matter: the unit state and the summed log-norms.
    assert torch.autograd.gradcheck(lambda *x: _SequentialChain.apply(*x, 1e-12, True), inputs)
    forward, backward = kernel.ran()
    assert forward > 0 and backward > 0  # the C++ loops were checked, not the plain ones


@pytest.mark.slow
@pytest.mark.parametrize("d", [3, 21])
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "distinct"])
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-4)],
                         ids=["float64", "float32"])  # fmt: skip
def test_fused_chain_matches_plain_loops(kernel, d: int, shared: bool, dtype, tolerance: float) -> None:
    net, phi, labels = _case(d, shared, dtype)
    plain = _loss_and_grads(net, phi, labels)
    assert kernel.ran() == (0, 0)
    net.compile_chain = True
    fused = _loss_and_grads(net, phi, labels)
    assert kernel.ran() == (1, 1)
    for a, b in zip(plain, fused, strict=True):
        torch.testing.assert_close(b, a, rtol=tolerance, atol=tolerance)


def test_build_failure_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.utils.cpp_extension

    def broken_build(**kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(chain_kernel, "_loaded", {})
    monkeypatch.setattr(torch.utils.cpp_extension, "load", broken_build)
    net, phi, labels = _case(21, True, torch.float32)
    plain = _loss_and_grads(net, phi, labels)
    net.compile_chain = True
    with pytest.warns(RuntimeWarning, match="running the plain loops"):
        fallback = _loss_and_grads(net, phi, labels)
    for a, b in zip(plain, fallback, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    # Later calls go straight to the plain loops, without another build or warning.
    assert _loss_and_grads(net, phi, labels)[0] == plain[0]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tt", "tt-shared"])
@pytest.mark.parametrize("name", ["random", "zeros", "ones", "extreme"])
def test_fused_chain_at_d784_is_finite_and_matches_plain_loops(kernel, model: str, name: str) -> None:
    from tensorrnn.models import build_classifier

    generator = torch.Generator().manual_seed(0)
    images = {"random": lambda s: torch.rand(s, generator=generator), "zeros": torch.zeros,
              "ones": torch.ones, "extreme": lambda s: torch.full(s, 1e4)}[name]((4, 1, 28, 28))  # fmt: skip
    results = []
    for fused in (False, True):
        classifier = build_classifier(model, image_shape=(1, 28, 28), patch=1, feature_map="affine-relu",
                                      feature_dim=3, rank=8, n_classes=10, init="orthogonal", seed=0,
                                      compile_chain=fused)  # fmt: skip
        logits = classifier(images, "sequential")
        torch.nn.functional.cross_entropy(logits, torch.arange(4)).backward()
        grads = [p.grad for _, p in sorted(classifier.named_parameters())]
        assert torch.isfinite(logits).all() and all(torch.isfinite(g).all() for g in grads)
        results.append([logits.detach(), *grads])
        assert kernel.ran() == ((1, 1) if fused else (0, 0))
    # Extreme inputs give gradients up to ~4e4 whose small entries are sums that
    # cancel: in float32 the two summation orders then agree to the tensor's scale.
    for plain, fused in zip(*results, strict=True):
        torch.testing.assert_close(fused, plain, rtol=1e-3, atol=1e-5 * float(plain.abs().max()))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tt", "tt-shared"])
def test_a_compiled_training_run_follows_the_plain_one(kernel, tmp_path, model: str) -> None:
    from tensorrnn.train import RunConfig, train_run

    tiny = {"dataset": "synthetic-tt", "patch": 1, "feature_dim": 4, "rank": 4, "batch_size": 32,
            "lr": 0.02, "model": model, "epochs": 3, "schedule": "sequential",
            "dataset_options": {"family": "tt", "d": 6, "n": 3, "rank": 2, "n_classes": 3,
                                "n_samples": 600}}  # fmt: skip
    steps = 3 * 14  # epochs x batches of 32 (the training split of the 600 examples has 14)
    for fused in (False, True):
        train_run(RunConfig.from_mapping({**tiny, "compile": fused}), tmp_path / str(fused), quiet=True)
        forward, backward = kernel.ran()
        assert backward == (steps if fused else 0), (fused, forward, backward)
    plain, fused = ([json.loads(line)["train_loss"] for line in (tmp_path / name / "metrics.jsonl").open()]
                    for name in ("False", "True"))  # fmt: skip
    # Float32 rounding differs between the two (summation order), and training carries it on.
    assert fused == pytest.approx(plain, rel=1e-3)


def test_the_ninja_beside_python_is_found_without_an_activated_venv(monkeypatch, tmp_path) -> None:
    import shutil
    import sys

    fake_python = tmp_path / "bin" / "python"
    fake_python.parent.mkdir()
    (fake_python.parent / "ninja").write_text("")
    monkeypatch.setattr(sys, "executable", str(fake_python))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("PATH", "/usr/bin")
    chain_kernel._find_ninja()
    assert chain_kernel.os.environ["PATH"] == f"{fake_python.parent}:/usr/bin"


def test_fused_chain_takes_features_of_any_layout(kernel) -> None:
    net, phi, labels = _case(9, True, torch.float64)
    strided = phi.transpose(1, 2).contiguous().transpose(1, 2)  # same values, feature stride d
    plain = _loss_and_grads(net, phi, labels)
    net.compile_chain = True
    for a, b in zip(plain, _loss_and_grads(net, strided, labels), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    assert kernel.ran() == (1, 1)


def test_a_dead_builds_lock_is_cleared_with_a_warning(tmp_path, monkeypatch) -> None:
    """torch waits forever for a build lock; one older than STALE_LOCK_SECONDS is a killed build's."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    from torch.utils.cpp_extension import _get_build_directory

    lock = Path(_get_build_directory("tensorrnn_chain_kernel_test", False)) / "lock"
    lock.touch()
    chain_kernel._clear_stale_lock("tensorrnn_chain_kernel_test")
    assert lock.exists()  # a live build's lock stays
    old = time.time() - chain_kernel.STALE_LOCK_SECONDS - 60
    os.utime(lock, (old, old))
    with pytest.warns(RuntimeWarning, match="did not finish"):
        chain_kernel._clear_stale_lock("tensorrnn_chain_kernel_test")
    assert not lock.exists()
