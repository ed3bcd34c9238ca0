"""Score networks against independent references (numpy einsum, formats' dense tensors)."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from torch.func import functional_call

from tensorrnn.errors import ConfigError
from tensorrnn.formats import CPTensor, TTSharedTensor, TTTensor
from tensorrnn.models import build_classifier, family_names, make_network
from tensorrnn.networks import (
    SCHEDULES,
    Classifier,
    CPNet,
    TTNet,
    resolve_schedule,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

F64 = torch.float64

MULTILINEAR = ("cp", "tt", "tt-shared")  # the models with a coefficient tensor
# The d = 784 tests: every family whose logits are rescaled scores. A softplus chain,
# ln(e^x + e^y), is not positively homogeneous, so its logits are its scores with no rescaling
# (tests/test_generalized.py); at d = 784 a shared Gaussian core makes them overflow float32.
# Softplus networks are meant for short sequences such as the paper's T = 16.
LONG_CHAIN_FAMILIES = tuple(m for m in family_names("train") if not m.startswith("softplus-"))


def _net(model: str, d: int, n: int, r: int, c: int, seed: int = 0, **kw) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    return make_network(model, d, n, r, c, generator=gen, **kw).to(F64)


def _phi(b: int, d: int, n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, d, n, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _brute_scores(full: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Σ A[i_1..i_d] Φ[:, 1, i_1] ⋯ Φ[:, d, i_d] by one numpy einsum."""
    d = full.ndim
    modes = string.ascii_lowercase[:d]
    spec = modes + "," + ",".join("Z" + m for m in modes) + "->Z"
    return np.einsum(spec, full, *[phi[:, t] for t in range(d)])


def _dense_from_parameters(net: torch.nn.Module, y: int) -> np.ndarray:
    """The coefficient tensor built from the raw parameters with numpy only."""
    if isinstance(net, CPNet):
        f = net.factors.detach().numpy()  # (d, n, R)
        lam = net.weights.detach().numpy()[:, y]
        modes = string.ascii_lowercase[: net.d]
        spec = "k," + ",".join(m + "k" for m in modes) + "->" + modes
        return np.einsum(spec, lam, *f)
    cores = [net.first.detach().numpy()[None]]
    for t in range(1, net.d - 1):
        cores.append(net.middle.detach().numpy()[0 if net.shared else t - 1])
    cores.append(net.last.detach().numpy()[:, :, y : y + 1])
    full = cores[0]  # (1, n, r): grow (1, n, ..., n, r)
    for core in cores[1:]:
        full = np.tensordot(full, core, axes=([-1], [0]))
    return full.reshape(full.shape[1:-1])


# --------------------------------------------------------------------------- #
# Exactness
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("model", MULTILINEAR)
def test_scores_match_brute_force(model: str, schedule: str) -> None:
    d, n, r, c = 5, 3, 3, 4
    net = _net(model, d, n, r, c)
    phi = _phi(6, d, n)
    scores = net.scores(phi, schedule).detach().numpy()
    for y in range(c):
        full = net.coefficient_tensor(y).full().numpy()
        want = _brute_scores(full, phi.numpy())
        np.testing.assert_allclose(scores[:, y], want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("model", MULTILINEAR)
def test_coefficient_tensor_is_the_parameters(model: str) -> None:
    net = _net(model, 4, 2, 3, 2, init="identity")
    fmt = {"cp": CPTensor, "tt": TTTensor, "tt-shared": TTSharedTensor}[model]
    for y in range(2):
        a = net.coefficient_tensor(y)
        assert isinstance(a, fmt)
        assert a.full().dtype == F64 and not a.full().requires_grad
        np.testing.assert_allclose(a.full().numpy(), _dense_from_parameters(net, y), rtol=1e-12)
    with pytest.raises(ConfigError, match="class index 2"):
        net.coefficient_tensor(2)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("model", family_names("train"))
def test_logits_are_scaled_scores(model: str, schedule: str) -> None:
    d, n, r, c = 6, 3, 4, 5
    net = _net(model, d, n, r, c)
    phi = _phi(8, d, n)
    scores = net.scores(phi, schedule)
    logits, log_scale = net.normalized_scores(phi, schedule)
    torch.testing.assert_close(logits * log_scale.exp()[:, None], scores, rtol=1e-10, atol=0)
    assert torch.equal(net(phi, schedule), logits)
    assert torch.equal(logits.argmax(1), scores.argmax(1))


@pytest.mark.parametrize("d", [2, 3, 4, 5, 8, 11])
@pytest.mark.parametrize("model", family_names("train"))
def test_schedules_agree(model: str, d: int) -> None:
    net = _net(model, d, 3, 4, 3, init="identity")
    phi = _phi(5, d, 3)
    seq, par = net.scores(phi, "sequential"), net.scores(phi, "parallel")
    assert (seq - par).abs().max() <= 1e-10 * seq.abs().max()
    seq, par = net(phi, schedule="sequential"), net(phi, schedule="parallel")
    assert (seq - par).abs().max() <= 1e-10 * seq.abs().max()


def test_schedule_default_and_errors() -> None:
    net = _net("tt", 4, 2, 2, 2, schedule="parallel")
    phi = _phi(3, 4, 2)
    assert torch.equal(net(phi), net(phi, schedule="parallel"))
    with pytest.raises(ConfigError, match="unknown schedule"):
        net(phi, schedule="tree")
    with pytest.raises(ConfigError, match=r"expects features of shape \(B, d=4, n=2\), got \(3, 5, 2\)"):
        net(_phi(3, 5, 2))
    with pytest.raises(ConfigError, match="unknown init"):
        TTNet(4, 2, 2, 2, init="haar")
    with pytest.raises(ConfigError, match="d >= 2"):
        TTNet(1, 2, 2, 2)
    with pytest.raises(ConfigError, match="unknown model"):
        make_network("mps", 4, 2, 2, 2)


# --------------------------------------------------------------------------- #
# Gradients and parameters
# --------------------------------------------------------------------------- #


class _Outputs(torch.nn.Module):
    """``net.scores`` or ``net.normalized_scores`` as a forward, for ``functional_call``."""

    def __init__(self, net: torch.nn.Module, method: str) -> None:
        super().__init__()
        self.net, self.method = net, method

    def forward(self, phi: torch.Tensor, schedule: str):
        return getattr(self.net, self.method)(phi, schedule)


@pytest.mark.parametrize("d", [3, 5])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("model", family_names("train"))
def test_gradcheck(model: str, schedule: str, d: int) -> None:
    net = _net(model, d, 2, 2, 2)
    names = [name for name, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())
    phi = _phi(3, d, 2).requires_grad_()
    for method in ("normalized_scores", "scores"):  # (logits, log_scale); exact scores
        wrapped = _Outputs(net, method)

        def outputs(phi: torch.Tensor, *ps: torch.Tensor, wrapped=wrapped):
            state = {"net." + k: v for k, v in zip(names, ps, strict=True)}
            return functional_call(wrapped, state, (phi, schedule))

        assert torch.autograd.gradcheck(outputs, (phi, *params))


def test_auto_schedule_is_parallel_on_cuda_and_sequential_elsewhere() -> None:
    assert resolve_schedule("auto", "cuda") == resolve_schedule("auto", "cuda:1") == "parallel"
    assert resolve_schedule("auto", torch.device("cpu")) == "sequential"
    assert resolve_schedule("parallel", "cpu") == "parallel"
    with pytest.raises(ConfigError, match="sequential, parallel, auto"):
        resolve_schedule("tree", "cpu")


@pytest.mark.parametrize("model", family_names("train"))
def test_default_schedule_on_a_cpu_is_the_sequential_one_exactly(model: str) -> None:
    net = _net(model, 9, 3, 4, 3, init="identity")
    phi = _phi(6, 9, 3)
    assert net.schedule == "auto"
    assert torch.equal(net(phi), net(phi, "sequential"))


def test_cp_sequential_schedule_is_the_per_position_sum_bit_for_bit() -> None:
    # The committed CP runs with schedule auto on a CPU were trained by this loop written with
    # log_abs[t]; it now unbinds (d times less backward work). Their numbers must not move:
    # logits and every gradient equal, in float32, to the per-position formula written out.
    gen = torch.Generator().manual_seed(3)
    net = CPNet(40, 3, 7, 4, init="identity", generator=gen)
    phi = torch.rand(5, 40, 3, generator=gen)
    upstream = torch.randn(5, 4, generator=gen)

    def per_position(x: torch.Tensor) -> torch.Tensor:
        units = torch.bmm(x.transpose(0, 1), net.factors)
        log_abs = torch.log(units.abs().clamp_min(10 * torch.finfo(x.dtype).eps))
        sign = torch.sign(units).detach()
        total, sgn = log_abs[0], sign[0]
        for t in range(1, net.d):
            total, sgn = total + log_abs[t], sgn * sign[t]
        log_scale = 0.5 * torch.logsumexp(2 * total, dim=-1)
        return (sgn * torch.exp(total - log_scale[:, None])) @ net.weights

    results = []
    for forward in (lambda x: net.normalized_scores(x, "sequential")[0], per_position):
        net.zero_grad(set_to_none=True)
        x = phi.clone().requires_grad_()
        logits = forward(x)
        (logits * upstream).sum().backward()
        results.append((logits.detach(), x.grad, net.factors.grad, net.weights.grad))
    for ours, reference in zip(*results, strict=True):
        assert torch.equal(ours, reference)


@pytest.mark.parametrize("model", family_names("train"))
def test_schedules_have_the_same_gradients(model: str) -> None:
    # The sequential TT runs a hand-written backward, the parallel one autograd.
    net = _net(model, 9, 3, 4, 3, init="identity")
    phi = _phi(6, 9, 3)
    weights = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    grads = []
    for schedule in SCHEDULES:
        x = phi.clone().requires_grad_()
        logits, log_scale = net.normalized_scores(x, schedule)
        loss = (weights * logits).sum() + 0.1 * log_scale.sum()
        grads.append(torch.autograd.grad(loss, [x, *net.parameters()]))
    for seq, par in zip(*grads, strict=True):
        torch.testing.assert_close(seq, par, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("d", "n", "r", "c"), [(2, 3, 4, 5), (7, 2, 3, 10), (49, 16, 32, 10)])
def test_parameter_counts(d: int, n: int, r: int, c: int) -> None:
    assert CPNet(d, n, r, c).num_parameters() == d * n * r + r * c
    assert TTNet(d, n, r, c).num_parameters() == n * r + (d - 2) * n * r * r + n * r * c
    assert TTNet(d, n, r, c, shared=True).num_parameters() == n * r + n * r * r + n * r * c


def test_shared_core_is_one_tensor_used_everywhere() -> None:
    d, n, r, c = 6, 3, 4, 2
    shared = _net("tt-shared", d, n, r, c)
    assert len(list(shared.parameters())) == 3
    assert shared.middle.shape == (1, r, n, r)
    # The same network with d − 2 distinct copies of the shared core.
    distinct = _net("tt", d, n, r, c)
    with torch.no_grad():
        distinct.first.copy_(shared.first)
        distinct.last.copy_(shared.last)
        distinct.middle.copy_(shared.middle.expand(d - 2, -1, -1, -1))
    phi = _phi(7, d, n)
    for schedule in SCHEDULES:
        torch.testing.assert_close(shared.scores(phi, schedule), distinct.scores(phi, schedule))
        shared.zero_grad()
        distinct.zero_grad()
        shared(phi, schedule=schedule).square().sum().backward()
        distinct(phi, schedule=schedule).square().sum().backward()
        # Every position contributes, and the shared gradient is their sum.
        per_position = distinct.middle.grad
        assert all(per_position[t].abs().max() > 1e-6 for t in range(d - 2))
        torch.testing.assert_close(shared.middle.grad[0], per_position.sum(0))
    # Perturbing the shared core acts at every middle position.
    delta = 1e-3 * torch.randn(r, n, r, dtype=F64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        shared.middle[0] += delta
        distinct.middle += delta
    torch.testing.assert_close(shared.scores(phi), distinct.scores(phi))


def test_identity_init_carries_the_state() -> None:
    # With the constant feature only, M_t = I/n + noise: the chain nearly keeps its state.
    net = _net("tt", 30, 4, 8, 3, init="identity", init_noise=0.0)
    phi = torch.zeros(2, 30, 4, dtype=F64)
    phi[..., 0] = 1.0
    first = phi[:, 0] @ net.first
    logits, log_scale = net.normalized_scores(phi)
    want = (first / first.norm(dim=1, keepdim=True)) @ net.last[:, 0, :]
    torch.testing.assert_close(logits, want)
    torch.testing.assert_close(log_scale, first.norm(dim=1).log() - 28 * np.log(4.0))


def test_seeded_construction_is_reproducible() -> None:
    config = dict(image_shape=(1, 8, 8), patch=2, feature_map="affine-relu", feature_dim=5)
    a = build_classifier("tt-shared", rank=3, n_classes=4, seed=11, **config)
    b = build_classifier("tt-shared", rank=3, n_classes=4, seed=11, **config)
    c = build_classifier("tt-shared", rank=3, n_classes=4, seed=12, **config)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb) and not torch.equal(pa, pc)


# --------------------------------------------------------------------------- #
# Classifier
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("feature_map", ["affine-relu", "affine", "cos-sin", "identity"])
@pytest.mark.parametrize("model", family_names("train"))
def test_classifier_end_to_end(model: str, feature_map: str) -> None:
    dim = {"affine-relu": 6, "affine": 6, "cos-sin": None, "identity": None}[feature_map]
    clf = build_classifier(
        model,
        image_shape=(2, 8, 12),
        patch=2,
        feature_map=feature_map,
        feature_dim=dim,
        rank=4,
        n_classes=3,
        order="snake",
    )
    n = clf.feature_map.out_dim
    assert clf.network.d == 24 and n == {"cos-sin": 16, "identity": 8}.get(feature_map, 6)
    images = torch.rand(5, 2, 8, 12)
    logits = clf(images)
    assert logits.shape == (5, 3) and torch.isfinite(logits).all()
    counts = clf.num_parameters()
    feats = sum(p.numel() for p in clf.feature_map.parameters())
    assert counts == {
        "features": feats,
        "network": clf.network.num_parameters(),
        "total": sum(p.numel() for p in clf.parameters()),
    }
    phi = clf.features(images)
    torch.testing.assert_close(clf.scores(images), clf.network.scores(phi))
    with pytest.raises(ConfigError, match=r"\(5, 2, 8, 8\).*\(d, s\) = \(16, 8\)"):
        clf(torch.rand(5, 2, 8, 8))


def test_classifier_checks_feature_size() -> None:
    clf = build_classifier(
        "cp",
        image_shape=(1, 4, 4),
        patch=2,
        feature_map="cos-sin",
        feature_dim=None,
        rank=2,
        n_classes=2,
    )
    with pytest.raises(ConfigError, match="gives 8 features per patch but the network expects n=5"):
        Classifier(clf.feature_map, CPNet(4, 5, 2, 2), patch=2)


# --------------------------------------------------------------------------- #
# Long chains: d = 784 pixels
# --------------------------------------------------------------------------- #


def _all_finite(module: torch.nn.Module) -> bool:
    return all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.parametrize("constant", [True, False])
@pytest.mark.parametrize("init", ["gaussian", "identity"])
@pytest.mark.parametrize("model", LONG_CHAIN_FAMILIES)
def test_long_chain_finite_at_init(model: str, init: str, constant: bool) -> None:
    torch.manual_seed(0)
    clf = build_classifier(
        model,
        image_shape=(1, 28, 28),
        patch=1,
        feature_map="affine-relu",
        feature_dim=4,
        rank=8,
        n_classes=10,
        init=init,
        constant=constant,
    )
    images = torch.cat([torch.zeros(2, 1, 28, 28), torch.rand(2, 1, 28, 28)])
    labels = torch.tensor([0, 1, 2, 3])
    for schedule in SCHEDULES:
        clf.zero_grad()
        logits = clf(images, schedule=schedule)
        assert torch.isfinite(logits).all()
        torch.nn.functional.cross_entropy(logits, labels).backward()
        assert _all_finite(clf)


@pytest.mark.slow
@pytest.mark.parametrize("init", ["gaussian", "identity"])
@pytest.mark.parametrize("model", LONG_CHAIN_FAMILIES)
def test_long_chain_trains_50_adam_steps(model: str, init: str) -> None:
    torch.manual_seed(0)
    clf = build_classifier(
        model,
        image_shape=(1, 28, 28),
        patch=1,
        feature_map="affine-relu",
        feature_dim=4,
        rank=8,
        n_classes=10,
        schedule="parallel",
        init=init,
    )
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(8, 1, 28, 28, generator=gen)
    images[:2] = 0.0  # blank images
    labels = torch.randint(0, 10, (8,), generator=gen)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(clf(images), labels)
        loss.backward()
        assert torch.isfinite(loss) and _all_finite(clf)
        losses.append(float(loss.detach()))
        opt.step()
    # It learns, not only stays finite: the loss gets at least 3 % below its start (measured
    # 4.5-81 %; at this rate a chain's loss wanders back up afterwards, so the minimum is taken).
    assert min(losses[1:]) < 0.97 * losses[0], losses
    for schedule in SCHEDULES:
        clf.zero_grad()
        logits = clf(images, schedule=schedule)
        assert torch.isfinite(logits).all()
        torch.nn.functional.cross_entropy(logits, labels).backward()
        assert _all_finite(clf)


def test_scores_overflow_but_logits_do_not() -> None:
    net = TTNet(784, 2, 4, 3, init="identity", init_noise=0.0).double()
    phi = torch.full((2, 784, 2), 3.0, dtype=F64)  # every step multiplies the scale by 3
    assert not torch.isfinite(net.scores(phi)).all()
    logits, log_scale = net.normalized_scores(phi)
    assert torch.isfinite(logits).all()
    # First vector, then 782 middle steps M_t = (Σ_i Φ_t[i] / n) I = 3 I.
    first = (phi[:, 0] @ net.first).norm(dim=1).log()
    torch.testing.assert_close(log_scale - first, torch.full((2,), 782 * np.log(3.0), dtype=F64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("model", family_names("train"))
def test_cuda_matches_cpu(model: str) -> None:
    clf = build_classifier(
        model,
        image_shape=(1, 8, 8),
        patch=2,
        feature_map="affine-relu",
        feature_dim=5,
        rank=4,
        n_classes=3,
    ).double()
    images = torch.rand(4, 1, 8, 8, dtype=F64)
    want = clf(images)
    got = clf.to("cuda")(images.to("cuda"))
    torch.testing.assert_close(got.cpu(), want)
