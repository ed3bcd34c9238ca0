"""Generalized RNNs: ReLU, max and softplus networks as generalized tensor networks.

After Khrulkov, Hrinchuk and Oseledets, *Generalized tensor models for recurrent
neural networks*, ICLR 2019 (arXiv 1901.10801). The multiplicative networks of
:mod:`tensorrnn.networks` multiply the input into the hidden state; the networks
used in practice apply a rectifier. Both are one formula with a binary operator
``ξ`` in place of the product.

The operator ξ and the generalized outer product
------------------------------------------------
``ξ`` is a binary operator on reals (:data:`XIS`): ``product`` ``xy`` (the
multiplicative networks), ``relu`` ``max(x, y, 0)`` (ReLU networks), ``max``
``max(x, y)``, ``softplus`` ``ln(eˣ + eʸ)`` and ``sqsum`` ``x² + y²`` (the second
operator of the paper's shared-core appendix; not associative). The generalized
outer product of vectors is ``(a ⊗_ξ b)_ij = ξ(a_i, b_j)``.

The networks (Φ_t = f_θ(x_t) ∈ R^n, as everywhere in the toolkit)
------------------------------------------------------------------
* :class:`GeneralizedTTNet` — the generalized RNN. Input matrices
  ``C^(t) ∈ R^{L×n}`` map the features to ``a_t = C^(t) Φ_t ∈ R^L``; cores
  ``𝒢^(t) ∈ R^{L×r×r}`` (``𝒢^(1)``: ``L×1×r``, ``𝒢^(d)``: ``L×r×C``) and::

      h^(t)_k = Σ_{l, j} 𝒢^(t)[l, j, k] · ξ(a_t[l], h^(t−1)_j),     h^(0) = the unit of ξ

  (``1`` for the product, ``0`` for relu on the non-negative states it makes,
  ``−∞`` for max and softplus, so that ``ξ(a, h^(0)) = a``; ``x² + y²`` has no
  unit and its ``h^(0) = 0`` gives ``a²``). The scores are ``h^(d)`` (``C``
  classes). ``shared=True``: one ``(C, 𝒢)`` pair at the middle positions
  ``2 … d−1`` (first and last keep their own, as in ``TTNet(shared=True)``).
  With ``ξ = product`` the step is ``h^(t) = Σ_i Φ_t[i] G_t[:, i, :]ᵀ h`` with the
  TT core ``G_t[j, i, k] = Σ_l C^(t)[l, i] 𝒢^(t)[l, j, k]``: exactly
  :class:`~tensorrnn.networks.TTNet` (:meth:`GeneralizedTTNet.to_multiplicative`).
* :class:`GeneralizedCPNet` — the generalized shallow network: ``R`` units
  ``p_k = ξ(⟨a_k^(1), Φ_1⟩, …, ⟨a_k^(d), Φ_d⟩)`` (a left fold of ξ started at its
  unit) and scores ``λᵀ p``. ``ξ = relu`` gives a one-hidden-layer network
  ``max(z_1, …, z_d, 0)``; ``ξ = product`` is :class:`~tensorrnn.networks.CPNet`.

Both have the interface of :class:`~tensorrnn.networks.ScoreNetwork` (``forward``
→ logits ``(B, C)``, ``d``, ``n``, ``n_classes``, ``num_parameters()``), so
:func:`tensorrnn.networks.build_classifier` and ``tensorrnn train --model
relu-tt`` use them unchanged. As in ``TTNet`` the chain's logits are the scores
divided by a positive number per sample, ``h_y = logits_y · exp(log_scale)``, so
they stay finite for any ``d``: with ``ξ = product`` the state is rescaled as in
``TTNet`` / ``CPNet``; relu and max are positively homogeneous,
``ξ(c·a, c·h) = c·ξ(a, h)`` for ``c > 0``, so the state is carried as
``exp(s)·ĥ`` with ``‖ĥ‖ = 1`` and a step computes ``m·ξ(a/m, (e^s/m)·ĥ)`` with
``m = max(e^s, 1)`` (exact in exact arithmetic; a long ReLU chain at a Gaussian
start grows by a few per cent a step and overflowed float32 at ``d = 784``
without it). Softplus and ``x² + y²`` are not homogeneous: their logits are the
scores. The shallow network's units ``ξ(z_1, …, z_d)`` need no rescaling
(except the product, normalised in log space as in ``CPNet``).

Grid tensors and ranks (the rank laboratory of generalized networks)
-------------------------------------------------------------------
A generalized network is not a multilinear form, so it has no coefficient tensor.
The paper's object is the **grid tensor** over ``M`` templates
``X^(1..M)``: ``Γ[i_1, …, i_d] = ℓ(X^(i_1), …, X^(i_d))``. With the feature
matrix ``F[m, :] = f_θ(X^(m))`` the RNN's grid tensor is a generalized TT whose
input values are ``A_t = F C^(t)ᵀ ∈ R^{M×L}`` (:func:`tt_grid`); when ``F`` is
invertible (``M = n`` templates with independent features) every ``A_t`` is
reachable, so a random instance draws ``A_t`` and ``𝒢^(t)`` directly
(:func:`random_instance`).

* The odd/even matricization rank ``ρ`` of ``Γ`` is exact over GF(p) for integer
  instances whenever ξ keeps integers (product, relu, max, sqsum: only ``+``,
  ``×`` and ``max``); :func:`tt_grid` certifies that no float64 partial sum
  passes 2^53 (else it switches that step to int64, and refuses past 2^62).
  Softplus and Gaussian instances get the float SVD rank with its gap.
* **Shallow-width bound.** A rank-1 generalized CP term with ξ = max or relu has
  entries ``max(α(rows), β(columns)[, 0])``: rows with equal ``α`` are equal, and
  ``α`` takes at most ``M·⌊d/2⌋`` values, so its matricization rank is at most
  ``q = min(M·⌊d/2⌋, M^⌊d/2⌋)``; a shallow network equivalent on the grid needs
  ``R ≥ ⌈ρ / q⌉`` (the paper's ``2ρ/(MT)``; with ρ = min(M, R)^{T/2} Thm 5.2's
  bound). For the product ``q = 1``. For softplus and sqsum no bound is claimed.
* **Rank-1 shallow equivalents** (:func:`shallow_rank_one`). For relu,
  ``Γ = λ max(u^(1)_{i_1}, …, u^(d)_{i_d}, 0)`` for some ``λ, u`` iff ``Γ`` has one
  sign and ``|Γ|`` is *max-separable*: with ``v^(t)_i`` the minimum of ``|Γ|`` over
  the slice ``i_t = i``, ``|Γ| = max_t v^(t)_{i_t}`` (the minimum recovers
  ``max(u^(t)_i, c_t)`` with ``c_t ≤ Γ`` everywhere, so the test is exact). With an
  invertible ``F`` the ``u^(t)`` are free, so this decides whether a ReLU shallow
  network of width 1 is equivalent on the templates.
* Thm 5.3 says this happens on an open set of ReLU RNNs, so no "generic" rank
  exists; the laboratory reports the distribution over random instances.
  :func:`rank_one_relu_instance` builds one such RNN (our construction: positive
  cores, one template that is always below the state and others that always
  exceed every reachable state, so the output is a running maximum).

The sweep :func:`run_generalized_ranks` (``tensorrnn generalized-ranks``) writes
``generalized.csv`` (one row per instance), ``generalized.md``,
``generalized.png`` and ``settings.json``, resumably, every file through
:mod:`tensorrnn.atomic`. It is the one part of this module that touches files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tensorrnn.atomic import atomic_save_figure, atomic_write_json, atomic_write_text
from tensorrnn.errors import ConfigError, SizeError
from tensorrnn.formats import TensorFormat
from tensorrnn.networks import CPNet, ScoreNetwork, TTNet, _check_init, _randn, chain_start

# --------------------------------------------------------------------------- #
# The operators ξ
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Xi:
    """A binary operator ``ξ`` of a generalized network.

    Attributes
    ----------
    name, formula
        Registry name and the formula in words.
    combine
        ``ξ(a, h)`` elementwise with broadcasting.
    first
        ``ξ(a, h^(0))`` with ``h^(0)`` the unit: the first step of a chain.
    unit
        ``h^(0)`` as a number (``-inf`` for max and softplus).
    keeps_integers
        Integer arguments give integer values (only ``+``, ``×``, ``max``): grid
        tensors of integer instances are exact and their ranks can be certified.
    associative
        ``ξ(ξ(x, y), z) = ξ(x, ξ(y, z))`` (false for ``x² + y²``).
    """

    name: str
    formula: str
    combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    first: Callable[[torch.Tensor], torch.Tensor]
    unit: float
    keeps_integers: bool
    associative: bool

    def fold(self, z: torch.Tensor) -> torch.Tensor:
        """``ξ(…ξ(ξ(h^(0), z[0]), z[1])…, z[T−1])`` over the first dimension of ``z``."""
        p = self.first(z[0])
        for t in range(1, z.shape[0]):
            p = self.combine(p, z[t])
        return p

    def term_rank(self, M: int, T: int) -> int | None:
        """Largest odd/even matricization rank of one generalized CP term on ``M`` templates.

        ``1`` for the product; ``min(M·⌊T/2⌋, M^⌊T/2⌋)`` for max and relu (see the
        module docstring); ``None`` where no bound is known (softplus, sqsum).
        """
        if self.name == "product":
            return 1
        if self.name in ("relu", "max"):
            return min(M * (T // 2), M ** (T // 2))
        return None


def _relu_combine(a: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return torch.maximum(a, h).clamp_min(0)


XIS: dict[str, Xi] = {
    "product": Xi("product", "x·y", torch.mul, lambda a: a, 1.0, True, True),
    "relu": Xi("relu", "max(x, y, 0)", _relu_combine, lambda a: a.clamp_min(0), 0.0, True, True),
    "max": Xi("max", "max(x, y)", torch.maximum, lambda a: a, -math.inf, True, True),
    "softplus": Xi("softplus", "ln(e^x + e^y)", torch.logaddexp, lambda a: a, -math.inf, False, True),
    "sqsum": Xi("sqsum", "x² + y²", lambda a, h: a * a + h * h, lambda a: a * a, 0.0, True, False),
}
"""The operators, by name."""

FAMILIES = ("tt", "tt-shared", "cp")
GENERALIZED_MODELS = ("relu-cp", "relu-tt", "relu-tt-shared")
"""The names registered in :data:`tensorrnn.networks.MODELS` (any ``<ξ>-<family>`` is understood)."""


def get_xi(name: str | Xi) -> Xi:
    """The operator called ``name`` (one of :data:`XIS`)."""
    if isinstance(name, Xi):
        return name
    if name not in XIS:
        raise ConfigError(f"unknown xi {name!r}; choose one of {', '.join(XIS)}")
    return XIS[name]


def parse_model(model: str) -> tuple[Xi, str]:
    """``"relu-tt-shared"`` → ``(XIS["relu"], "tt-shared")``; any ``<ξ>-<cp|tt|tt-shared>``."""
    for family in ("tt-shared", "tt", "cp"):
        suffix = "-" + family
        if model.endswith(suffix) and model[: -len(suffix)] in XIS:
            return XIS[model[: -len(suffix)]], family
    raise ConfigError(
        f"unknown generalized model {model!r}; write <xi>-<family> with xi one of "
        f"{', '.join(XIS)} and family one of {', '.join(FAMILIES)} (e.g. relu-tt-shared)"
    )


def make_generalized(model: str, d: int, n: int, rank: int, n_classes: int, **kwargs: Any) -> ScoreNetwork:
    """Network by name (``relu-tt``, ``relu-tt-shared``, ``relu-cp``, ``softplus-tt``, …).

    ``kwargs`` (``init``, ``init_noise``, ``schedule``, ``eps``, ``generator``)
    go to the constructor; the TT networks take ``width`` ``L = rank``.
    """
    xi, family = parse_model(model)
    if family == "cp":
        return GeneralizedCPNet(d, n, rank, n_classes, xi=xi.name, **kwargs)
    return GeneralizedTTNet(d, n, rank, n_classes, family == "tt-shared", xi=xi.name, **kwargs)


_RESCALE = {"product": "product", "relu": "homogeneous", "max": "homogeneous"}
"""How the logits of a chain are kept finite: the product scales with the state
alone; relu and max are positively homogeneous, ``ξ(c·x, c·y) = c·ξ(x, y)``."""


def _unit_scale(h: torch.Tensor, log_scale: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``h / c`` and ``log_scale + log c`` with ``c = sqrt(‖h‖² + eps²)`` (as in TTNet)."""
    c = torch.sqrt(h.square().sum(dim=-1, keepdim=True) + eps * eps)
    return h / c, log_scale + c.squeeze(-1).log()


# --------------------------------------------------------------------------- #
# The generalized RNN
# --------------------------------------------------------------------------- #


class GeneralizedTTNet(ScoreNetwork):
    """Generalized RNN: ``h^(t)_k = Σ_{l,j} 𝒢^(t)[l, j, k] ξ((C^(t) Φ_t)_l, h^(t−1)_j)``.

    Parameters
    ----------
    d, n
        Sequence length (``d >= 2``) and feature size.
    rank
        Hidden width ``r`` (the paper's rank ``R``).
    n_classes
        Number of classes ``C``: the last core maps to ``C`` scores.
    shared
        One input matrix and one core at positions ``2 … d−1``.
    xi
        Name of the operator (:data:`XIS`).
    width
        ``L``, the rows of the input matrices ``C^(t)``; default ``rank``.
    init
        Middle cores: ``"gaussian"`` ``N(0, 1/(L·r))``; ``"identity"``
        ``(I + init_noise·N(0, 1/r)) / L`` for every ``l`` (with relu the state is
        carried as a running maximum, ``h'_k ≈ mean_l max(a_l, h_k, 0)``);
        ``"orthogonal"`` the same with a Haar ``Q`` in place of ``I``. Input
        matrices ``N(0, 1/n)``, first core ``N(0, 1/L)``, last ``N(0, 1/(L·r))``.
    init_noise, eps, generator
        As for :class:`~tensorrnn.networks.TTNet`. ``eps`` guards the state
        normalisation of ``ξ = product``.
    schedule
        Accepted for the common interface; every ξ runs the sequential loop (a
        non-multiplicative step is not a matrix product, so there is no tree).
    """

    def __init__(
        self,
        d: int,
        n: int,
        rank: int,
        n_classes: int,
        shared: bool = False,
        *,
        xi: str = "relu",
        width: int | None = None,
        init: str = "gaussian",
        init_noise: float = 0.1,
        schedule: str = "auto",
        eps: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(d, n, n_classes, schedule, eps)
        if d < 2:
            raise ConfigError(f"a generalized RNN needs d >= 2 positions (first and last), got d={d}")
        for name, value in (("rank", rank), ("width", rank if width is None else width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        self.xi = get_xi(xi)
        self.rank, self.shared = rank, bool(shared)
        self.width = rank if width is None else width
        L, r = self.width, rank
        # C^(t) for t = 1..d (shared: first, middle, last).
        self.inputs = nn.Parameter(torch.empty(3 if shared else d, L, n))
        self.first = nn.Parameter(torch.empty(L, r))  # 𝒢^(1) without its unit bond
        self.middle = nn.Parameter(torch.empty(1 if shared else d - 2, L, r, r))
        self.last = nn.Parameter(torch.empty(L, r, n_classes))
        self.reset_parameters(init, init_noise, generator)

    @torch.no_grad()
    def reset_parameters(
        self, init: str = "gaussian", init_noise: float = 0.1, generator: torch.Generator | None = None
    ) -> None:
        """Draw the weights again (see the class docstring for ``init``)."""
        n, L, r = self.n, self.width, self.rank
        self.inputs.copy_(_randn(self.inputs, generator) / math.sqrt(n))
        self.first.copy_(_randn(self.first, generator) / math.sqrt(L))
        self.last.copy_(_randn(self.last, generator) / math.sqrt(L * r))
        noise = _randn(self.middle, generator)
        self.middle.copy_(chain_start(init, noise, slice_axis=1, fan=L, init_noise=init_noise,
                                      generator=generator))  # fmt: skip

    def input_matrix(self, t: int) -> torch.Tensor:
        """``C^(t)`` ``(L, n)`` at 0-based position ``t``."""
        if not self.shared:
            return self.inputs[t]
        return self.inputs[0 if t == 0 else 2 if t == self.d - 1 else 1]

    def core(self, t: int) -> torch.Tensor:
        """``𝒢^(t)`` as ``(L, r_{t−1}, r_t)`` at 0-based position ``t`` (first: ``(L, 1, r)``)."""
        if t == 0:
            return self.first.unsqueeze(1)
        if t == self.d - 1:
            return self.last
        return self.middle[0] if self.shared else self.middle[t - 1]

    def _values(self, phi: torch.Tensor) -> torch.Tensor:
        """``a_t = C^(t) Φ_t`` for every position: ``(d, B, L)``."""
        if not self.shared:
            return torch.einsum("btn,tln->tbl", phi, self.inputs)
        first = phi[:, :1] @ self.inputs[0].t()
        middle = phi[:, 1:-1] @ self.inputs[1].t()
        last = phi[:, -1:] @ self.inputs[2].t()
        return torch.cat([first, middle, last], dim=1).transpose(0, 1)

    def _contract(
        self, phi: torch.Tensor, schedule: str, normalize: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        del schedule  # one loop for every ξ (see the class docstring)
        b, L, xi = phi.shape[0], self.width, self.xi
        mode = _RESCALE.get(xi.name) if normalize else None
        eps = self._eps(phi)
        values = self._values(phi)
        log_scale = phi.new_zeros(b)  # the true state is exp(log_scale) · h
        h = xi.first(values[0]) @ self.first  # (B, r)
        if mode:
            h, log_scale = _unit_scale(h, log_scale, eps)
        for t in range(1, self.d):
            a = values[t]
            if mode == "homogeneous":
                # ξ(a, s·h) = m·ξ(a/m, (s/m)·h) for m = max(s, 1) > 0: both arguments stay
                # at most their own size, so nothing overflows however long the chain.
                up = log_scale.clamp_min(0)
                a = a * torch.exp(-up).unsqueeze(1)
                h = h * torch.exp(log_scale - up).unsqueeze(1)
                log_scale = up
            core = self.core(t)
            z = xi.combine(a.unsqueeze(2), h.unsqueeze(1))  # (B, L, r)
            h = z.reshape(b, L * self.rank) @ core.reshape(L * self.rank, core.shape[2])
            if mode and t < self.d - 1:
                h, log_scale = _unit_scale(h, log_scale, eps)
        return h, log_scale

    # ---------------------------------------------------------------- product ξ

    def to_multiplicative(self) -> TTNet:
        """The equal :class:`~tensorrnn.networks.TTNet` (``ξ = product`` only), cores
        ``G_t[j, i, k] = Σ_l C^(t)[l, i] 𝒢^(t)[l, j, k]``, in this network's dtype."""
        self._need_product("to_multiplicative")
        net = TTNet(self.d, self.n, self.rank, self.n_classes, self.shared, eps=self.eps,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
        with torch.no_grad():
            net.to(self.first.dtype)
            net.first.copy_(self.input_matrix(0).t() @ self.first)
            mids = range(1, 2) if self.shared else range(1, self.d - 1)
            for slot, t in enumerate(mids):
                net.middle[slot].copy_(torch.einsum("li,ljk->jik", self.input_matrix(t), self.core(t)))
            net.last.copy_(torch.einsum("li,ljk->jik", self.input_matrix(self.d - 1), self.last))
        return net

    @classmethod
    def from_multiplicative(cls, net: TTNet) -> GeneralizedTTNet:
        """``ξ = product`` network equal to ``net``: ``L = n``, ``C^(t) = I``, cores transposed."""
        out = cls(net.d, net.n, net.rank, net.n_classes, net.shared, xi="product", width=net.n,
                  eps=net.eps, generator=torch.Generator().manual_seed(0))  # fmt: skip
        with torch.no_grad():
            out.to(net.first.dtype)
            out.inputs.copy_(torch.eye(net.n, dtype=net.first.dtype).expand_as(out.inputs))
            out.first.copy_(net.first)
            out.middle.copy_(net.middle.transpose(1, 2))
            out.last.copy_(net.last.transpose(0, 1))
        return out

    def coefficient_tensor(self, y: int) -> TensorFormat:
        """``A^y`` (``ξ = product`` only; other ξ have a grid tensor, not a coefficient tensor)."""
        self._need_product("coefficient_tensor")
        return self.to_multiplicative().coefficient_tensor(y)

    def _need_product(self, what: str) -> None:
        if self.xi.name != "product":
            raise ConfigError(
                f"{what} needs xi=product; a network with xi={self.xi.name} is not multilinear "
                "(use grid_tensor)"
            )

    # ---------------------------------------------------------------- grid tensor

    @torch.no_grad()
    def grid_tensor(self, features: torch.Tensor, *, exact: bool = False) -> torch.Tensor:
        """Scores on every sequence of templates: ``(M,)*d + (C,)``.

        ``features[m]`` is ``f_θ(X^(m))`` ``(M, n)``. ``exact``: integer weights and
        features, exact integer result (see :func:`tt_grid`).
        """
        if features.ndim != 2 or features.shape[1] != self.n:
            raise ConfigError(f"template features must be (M, n={self.n}), got {tuple(features.shape)}")
        dtype = torch.float64 if exact else self.first.dtype
        feats = features.to(dtype)
        values = [feats @ self.input_matrix(t).to(dtype).t() for t in range(self.d)]
        cores = [self.core(t).to(dtype) for t in range(self.d)]
        return tt_grid(self.xi, values, cores, exact=exact)


# --------------------------------------------------------------------------- #
# The generalized shallow network
# --------------------------------------------------------------------------- #


class GeneralizedCPNet(ScoreNetwork):
    """Generalized shallow network: ``p_k = ξ(⟨a_k^(1), Φ_1⟩, …, ⟨a_k^(d), Φ_d⟩)``, scores ``λᵀ p``.

    Parameters: ``factors`` ``(d, n, R)`` (``a_k^(t) = factors[t, :, k]``) and
    ``weights`` ``(R, C)`` (``λ``), as in :class:`~tensorrnn.networks.CPNet`, whose
    ``init`` names it accepts (``a ~ N(0, I/n)``, or ``(1 + noise)/n`` for
    ``identity`` and ``orthogonal``). ``ξ = product`` gives CPNet's logits (log
    space, normalised); other ξ give the scores.
    """

    def __init__(
        self,
        d: int,
        n: int,
        rank: int,
        n_classes: int,
        *,
        xi: str = "relu",
        init: str = "gaussian",
        init_noise: float = 0.1,
        schedule: str = "auto",
        eps: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(d, n, n_classes, schedule, eps)
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ConfigError(f"rank={rank!r} must be a positive integer")
        self.xi = get_xi(xi)
        self.rank = rank
        self.factors = nn.Parameter(torch.empty(d, n, rank))
        self.weights = nn.Parameter(torch.empty(rank, n_classes))
        self.reset_parameters(init, init_noise, generator)

    @torch.no_grad()
    def reset_parameters(
        self, init: str = "gaussian", init_noise: float = 0.1, generator: torch.Generator | None = None
    ) -> None:
        """Draw the factors and weights again."""
        noise = _randn(self.factors, generator)
        if _check_init(init) == "gaussian":
            self.factors.copy_(noise / math.sqrt(self.n))
        else:
            self.factors.copy_((1 + init_noise * noise) / self.n)
        self.weights.copy_(_randn(self.weights, generator))

    def _contract(
        self, phi: torch.Tensor, schedule: str, normalize: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        del schedule
        units = torch.bmm(phi.transpose(0, 1), self.factors)  # (d, B, R)
        if not (normalize and self.xi.name == "product"):
            return self.xi.fold(units) @ self.weights, phi.new_zeros(phi.shape[0])
        # ξ = product: CPNet's log-space normalisation (the same formula).
        log_abs = torch.log(units.abs().clamp_min(self._eps(phi)))
        total, sgn = log_abs.sum(dim=0), torch.sign(units).detach().prod(dim=0)
        log_scale = 0.5 * torch.logsumexp(2 * total, dim=-1)
        return (sgn * torch.exp(total - log_scale[:, None])) @ self.weights, log_scale

    @classmethod
    def from_multiplicative(cls, net: CPNet) -> GeneralizedCPNet:
        """``ξ = product`` network with the weights of ``net``."""
        out = cls(net.d, net.n, net.rank, net.n_classes, xi="product", eps=net.eps,
                  generator=torch.Generator().manual_seed(0))  # fmt: skip
        with torch.no_grad():
            out.to(net.factors.dtype)
            out.factors.copy_(net.factors)
            out.weights.copy_(net.weights)
        return out

    def coefficient_tensor(self, y: int) -> TensorFormat:
        """``A^y`` as a CP tensor (``ξ = product`` only)."""
        if self.xi.name != "product":
            raise ConfigError(f"coefficient_tensor needs xi=product, not {self.xi.name} (use grid_tensor)")
        net = CPNet(self.d, self.n, self.rank, self.n_classes, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            net.to(self.factors.dtype).factors.copy_(self.factors)
            net.weights.copy_(self.weights)
        return net.coefficient_tensor(y)

    @torch.no_grad()
    def grid_tensor(self, features: torch.Tensor) -> torch.Tensor:
        """Scores on every sequence of templates: ``(M,)*d + (C,)`` (see :func:`cp_grid`)."""
        if features.ndim != 2 or features.shape[1] != self.n:
            raise ConfigError(f"template features must be (M, n={self.n}), got {tuple(features.shape)}")
        feats = features.to(self.factors.dtype)
        return cp_grid(self.xi, [feats @ self.factors[t] for t in range(self.d)], self.weights)


# --------------------------------------------------------------------------- #
# Grid tensors
# --------------------------------------------------------------------------- #

_CHUNK = 1 << 22
"""Elements of one ``ξ(a, h)`` block in :func:`tt_grid` (bounds its memory)."""
_FLOAT_EXACT = 2.0**53
_INT_EXACT = 2.0**62


def tt_grid(
    xi: str | Xi,
    values: Sequence[torch.Tensor],
    cores: Sequence[torch.Tensor],
    *,
    exact: bool = False,
) -> torch.Tensor:
    """Grid tensor of a generalized TT: ``Γ[i_1..i_T, y]``, shape ``(M,)*T + (C,)``.

    All prefixes at once: the states after ``t`` positions form an
    ``(M^t, r_t)`` array, and each step forms ``ξ(A_t[m, l], h_j)`` for every
    prefix, template, ``l`` and ``j`` (in blocks) and contracts it with the core.

    Parameters
    ----------
    xi
        The operator.
    values
        ``T`` arrays ``A_t`` ``(M, L_t)``: the input values ``(C^(t) f_θ(X^(m)))_l``.
    cores
        ``T`` arrays ``𝒢^(t)`` ``(L_t, r_{t−1}, r_t)`` with ``r_0 = 1``.
    exact
        Integer inputs, exact integer output (int64). Needs a ξ that keeps
        integers. Every step runs in float64 while the largest partial sum of its
        contraction (``max|ξ| · max_k Σ_{l,j} |𝒢[l, j, k]|``) stays below 2^53,
        where float64 adds integers without rounding; beyond that in int64, and
        past 2^62 the call is refused (:class:`~tensorrnn.errors.SizeError`).

    Returns
    -------
    torch.Tensor
        float (the inputs' dtype), or int64 with ``exact``.
    """
    xi = get_xi(xi)
    T = len(values)
    if T < 1 or len(cores) != T:
        raise ConfigError(f"tt_grid needs as many cores as value arrays, got {len(cores)} and {T}")
    M = values[0].shape[0]
    for t, (a, g) in enumerate(zip(values, cores, strict=True)):
        prev = 1 if t == 0 else cores[t - 1].shape[2]
        if a.ndim != 2 or a.shape[0] != M or g.ndim != 3 or g.shape[:2] != (a.shape[1], prev):
            raise ConfigError(
                f"position {t + 1}: values {tuple(a.shape)} and core {tuple(g.shape)} do not chain "
                f"(want values (M={M}, L) and core (L, {prev}, r))"
            )
    if exact:
        if not xi.keeps_integers:
            raise ConfigError(f"xi={xi.name} does not keep integers; exact grid tensors need "
                              "product, relu, max or sqsum")  # fmt: skip
        for a in (*values, *cores):
            if a.is_floating_point() and not bool((a == a.round()).all()):
                raise ConfigError("exact grid tensors need integer values and cores")
        values = [a.to(torch.float64) for a in values]
        cores = [g.to(torch.float64) for g in cores]
    states = _grid_step(xi, values[0], cores[0], None, exact)  # (M, r_1)
    for t in range(1, T):
        states = _grid_step(xi, values[t], cores[t], states, exact)
    if exact:
        states = states.to(torch.int64)
    return states.reshape((M,) * T + (states.shape[-1],))


def _value_bound(xi: Xi, a_max: float, h_max: float | None) -> float:
    """Largest ``|ξ(a, h)|`` (``|ξ(a, h^(0))|`` when ``h_max`` is None)."""
    if h_max is None:
        return a_max * a_max if xi.name == "sqsum" else a_max
    if xi.name == "product":
        return a_max * h_max
    if xi.name == "sqsum":
        return a_max * a_max + h_max * h_max
    return max(a_max, h_max)


def _grid_step(
    xi: Xi, a: torch.Tensor, core: torch.Tensor, states: torch.Tensor | None, exact: bool
) -> torch.Tensor:
    """States after one more position for every prefix: ``(P·M, r_next)``.

    ``states`` ``(P, r_prev)`` (``None`` before the first position: ``h^(0)`` the unit).
    """
    M, L = a.shape
    r_prev, r_next = core.shape[1], core.shape[2]
    flat = core.reshape(L * r_prev, r_next)
    dtype = a.dtype
    if exact:
        h_max = None if states is None else float(states.abs().max())
        bound = _value_bound(xi, float(a.abs().max()), h_max) * max(1.0, float(flat.abs().sum(dim=0).max()))
        if bound >= _INT_EXACT:
            raise SizeError(
                f"grid values reach {bound:.3g}, beyond 2^62 where int64 stays exact; "
                "use smaller weights, ranks or T"
            )
        dtype = torch.float64 if bound < _FLOAT_EXACT else torch.int64
    a, flat = a.to(dtype), flat.to(dtype)
    if states is None:
        return xi.first(a) @ flat
    states = states.to(dtype)
    P = states.shape[0]
    out = torch.empty(P * M, r_next, dtype=dtype)
    block = max(1, _CHUNK // max(1, M * L * r_prev))
    for s in range(0, P, block):
        h = states[s : s + block]
        z = xi.combine(a[None, :, :, None], h[:, None, None, :])  # (p, M, L, r_prev)
        out[s * M : (s + h.shape[0]) * M] = z.reshape(-1, L * r_prev) @ flat
    return out


def cp_grid(xi: str | Xi, values: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Grid tensor of a generalized CP network: ``Σ_k λ[k, y] ξ(V_1[i_1, k], …, V_T[i_T, k])``.

    ``values[t]`` is ``(M, R)`` (``V_t = F a^(t)``), ``weights`` ``(R, C)``;
    returns ``(M,)*T + (C,)``.
    """
    xi = get_xi(xi)
    M, R = values[0].shape
    p = xi.first(values[0])  # (M, R): folds of every prefix
    for v in values[1:]:
        p = xi.combine(p[:, None, :], v[None, :, :]).reshape(-1, R)
    return (p @ weights).reshape((M,) * len(values) + (weights.shape[1],))


POLYNOMIAL = ("product", "sqsum")
"""ξ built from ``+`` and ``×`` only: their grids can be computed modulo a prime."""


def tt_grid_mod(xi: str | Xi, values: Sequence[torch.Tensor], cores: Sequence[torch.Tensor],
                p: int) -> torch.Tensor:  # fmt: skip
    """``Γ mod p`` (int64, entries in ``[0, p)``) of an integer generalized TT with a
    polynomial ξ (product, sqsum), reducing after every operation.

    ``(Γ mod p)`` has the rank over GF(p) that :func:`tt_grid`'s exact integers
    would give, without the integers: x² + y² squares them every step (about
    ``2^384`` at T = 6). Needs ``p < 2^21`` so that a contraction of ``L·r`` products
    of residues stays below 2^63 for ``L·r ≤ 2^20``.
    """
    xi = get_xi(xi)
    if xi.name not in POLYNOMIAL:
        raise ConfigError(f"xi={xi.name} is not a polynomial; grids modulo p need {' or '.join(POLYNOMIAL)}")
    if not 2 <= p < 2**21:
        raise ConfigError(f"prime {p} must be below 2^21 for grids modulo p")
    M, T = values[0].shape[0], len(values)
    vals = [torch.remainder(a.round().to(torch.int64), p) for a in values]
    cs = [torch.remainder(g.round().to(torch.int64), p) for g in cores]
    states = torch.remainder(xi.first(vals[0]), p) @ cs[0][:, 0, :] % p
    for a, g in zip(vals[1:], cs[1:], strict=True):
        L, r_prev, r_next = g.shape
        if L * r_prev > 2**20:
            raise SizeError(f"L·r = {L * r_prev} products per entry could pass 2^63 modulo {p}")
        z = torch.remainder(xi.combine(a[None, :, :, None], states[:, None, None, :]), p)
        states = z.reshape(-1, L * r_prev) @ g.reshape(L * r_prev, r_next) % p
    return states.reshape((M,) * T + (states.shape[-1],))


def odd_even(grid: torch.Tensor) -> torch.Tensor:
    """Odd/even matricization of ``(M,)*T``: rows ``(i_1, i_3, …)``, columns ``(i_2, i_4, …)``."""
    T, M = grid.ndim, grid.shape[0]
    order = list(range(0, T, 2)) + list(range(1, T, 2))
    return grid.permute(order).reshape(M ** ((T + 1) // 2), M ** (T // 2))


def _max_separable(grid: torch.Tensor, tol: float) -> bool:
    T = grid.ndim
    rebuilt = None
    for t in range(T):
        others = tuple(s for s in range(T) if s != t)
        v = grid.amin(dim=others) if others else grid
        shape = [1] * T
        shape[t] = -1
        v = v.reshape(shape)
        rebuilt = v if rebuilt is None else torch.maximum(rebuilt, v)
    return bool(((rebuilt - grid).abs() <= tol).all())


def shallow_rank_one(xi: str | Xi, grid: torch.Tensor, tol: float = 0.0) -> bool | None:
    """Whether a width-1 shallow network with the same ξ has grid tensor ``grid``.

    ``grid`` is ``(M,)*T`` (one class). For relu: ``Γ = λ max(u^(1)_{i_1}, …, 0)``
    iff ``Γ`` has one sign and ``|Γ|`` is max-separable (module docstring); for
    max the same without the sign condition. The test only compares entries, so
    it is exact for exact grids (``tol = 0``); pass a tolerance for float grids.
    ``None`` for other ξ (not decided here). Assumes the templates' feature
    matrix is invertible, so the shallow network's values on them are free.
    """
    xi = get_xi(xi)
    if xi.name not in ("relu", "max"):
        return None
    g = grid.to(torch.float64) if not grid.is_floating_point() else grid
    if xi.name == "max":
        return _max_separable(g, tol) or _max_separable(-g, tol)
    if bool((g >= -tol).all()):
        return _max_separable(g.clamp_min(0), tol)
    if bool((g <= tol).all()):
        return _max_separable((-g).clamp_min(0), tol)
    return False


def rank_one_factors(xi: str | Xi, grid: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """``(λ, [v^(1), …, v^(T)])`` with ``grid = λ·ξ(v^(1)_{i_1}, …, v^(T)_{i_T})`` when
    :func:`shallow_rank_one` holds (relu or max): ``v^(t)_i`` is the minimum of
    ``grid / λ`` over the slice ``i_t = i``."""
    xi = get_xi(xi)
    g = grid.to(torch.float64)
    if xi.name == "max":
        lam = 1.0 if _max_separable(g, 0.0) else -1.0
    else:
        lam = -1.0 if bool((g <= 0).all()) and bool((g < 0).any()) else 1.0
    g = g / lam
    T = g.ndim
    return lam, [g.amin(dim=tuple(s for s in range(T) if s != t)) if T > 1 else g for t in range(T)]


# --------------------------------------------------------------------------- #
# Random instances and one measurement
# --------------------------------------------------------------------------- #

WEIGHTS_HELP = ("int:K (integers in [-K, K]), balanced:K (the same with cores / f, states as large as "
                "inputs), nonneg:K (cores in [0, K]), gauss (inputs N(0, 1), cores N(0, 1/fan-in))")
HOMOGENEOUS = ("product", "relu", "max")
"""ξ with ``ξ(c·x, c·y) = c^k ξ(x, y)`` for ``c > 0``: ``balanced`` instances are exact for them."""


def parse_weights(text: str) -> tuple[str, int]:
    """``"int:3"`` → ``("int", 3)``, ``"balanced:3"``, ``"nonneg:3"``, ``"gauss"`` → ``("gauss", 0)``."""
    kind, _, k = str(text).partition(":")
    if kind == "gauss" and not k:
        return "gauss", 0
    if kind in ("int", "balanced", "nonneg") and k.isdigit() and int(k) >= 1:
        return kind, int(k)
    raise ConfigError(f"weights {text!r} not understood; use {WEIGHTS_HELP}")


@dataclass(frozen=True)
class GridSetting:
    """One setting of the generalized rank laboratory.

    ``xi``, ``shared`` cores, hidden width ``rank`` (R), input width ``width``
    (L), ``M`` templates, length ``T`` and the weight distribution ``weights``.
    """

    xi: str
    shared: bool
    rank: int
    width: int
    M: int
    T: int
    weights: str

    @property
    def cores(self) -> str:
        """``"shared"`` or ``"distinct"``."""
        return "shared" if self.shared else "distinct"

    @property
    def exact_possible(self) -> bool:
        """Integer weights and a ξ that keeps integers: the grid is exact."""
        return parse_weights(self.weights)[0] != "gauss" and get_xi(self.xi).keeps_integers

    @property
    def side(self) -> int:
        """Smaller side of the odd/even matricization, ``M^⌊T/2⌋``."""
        return self.M ** (self.T // 2)

    @property
    def paper_value(self) -> int:
        """``min(M, R)^⌊T/2⌋``: the rank of Thm 5.2's RNN (capped by the side)."""
        return min(self.M, self.rank) ** (self.T // 2)

    def key(self, trial: int) -> tuple[str, ...]:
        """The identity of one instance in ``generalized.csv``."""
        return (self.xi, self.cores, str(self.rank), str(self.width), str(self.M), str(self.T),
                self.weights, str(trial))  # fmt: skip

    def seed(self, base: int, trial: int) -> int:
        """Instance seed: a CRC of the key and the base seed (no ``hash()``: salted per process)."""
        return zlib.crc32("|".join((*self.key(trial), str(base))).encode())


def check_setting(s: GridSetting) -> GridSetting:
    """Validate a setting; a :class:`ConfigError` names the value and the allowed range."""
    get_xi(s.xi)
    if parse_weights(s.weights)[0] == "balanced" and s.xi not in HOMOGENEOUS:
        raise ConfigError(f"weights {s.weights} need a positively homogeneous xi ({', '.join(HOMOGENEOUS)}); "
                          f"xi={s.xi} is not")  # fmt: skip
    for name, value, low in (("R (hidden width)", s.rank, 1), ("L (input width)", s.width, 1),
                             ("M (templates)", s.M, 2), ("T (length)", s.T, 2)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
    if s.M**s.T > MAX_GRID:
        raise ConfigError(f"M^T = {s.M}^{s.T} = {s.M**s.T} grid entries is over {MAX_GRID}; "
                          "choose smaller M or T")  # fmt: skip
    if s.M ** ((s.T + 1) // 2) > MAX_SIDE:
        raise ConfigError(f"the odd/even matricization would have {s.M ** ((s.T + 1) // 2)} rows, over "
                          f"{MAX_SIDE}; choose smaller M or T")  # fmt: skip
    return s


MAX_GRID = 1 << 26
"""Largest ``M^T`` (entries of one grid tensor) the laboratory accepts."""
MAX_SIDE = 8192
"""Largest side of an odd/even matricization the laboratory accepts."""


def random_instance(s: GridSetting, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Input values ``A_t`` ``(M, L)`` and cores ``𝒢^(t)`` of a random generalized RNN.

    Shared: one ``(A, 𝒢)`` at positions ``2 … T−1``; first and last their own. One
    scalar output (``r_T = 1``).

    * ``int:K``: integers uniform in ``[−K, K]``. The state then grows like
      ``(σ_K √(L·R))^t`` (``σ_K² = K(K+1)/3``) while the inputs stay at ``σ_K``, so
      late inputs rarely win a maximum.
    * ``balanced:K``: the RNN whose cores after the first are ``𝒢^(t) / f``,
      ``f = round(σ_K √(L·R))``, so that states stay as large as inputs. For a
      positively homogeneous ξ (product, relu, max) its grid tensor is
      ``f^{−(T−1)}`` times the integer one with inputs ``f^{t−2} A_t`` at positions
      ``t ≥ 2``: that integer computation is returned, exact, and shared cores
      stay shared (the multipliers belong to the computation, not the RNN).
    * ``nonneg:K``: values in ``[−K, K]``, cores in ``[0, K]``.
    * ``gauss``: inputs ``N(0, 1)``, cores ``N(0, 1/(L·r_{t−1}))`` (fan-in: states
      stay of the inputs' size). Float ranks only.
    """
    kind, k = parse_weights(s.weights)
    gen = torch.Generator().manual_seed(int(seed))
    M, L, R, T = s.M, s.width, s.rank, s.T

    def draw(shape: tuple[int, ...], core: bool) -> torch.Tensor:
        if kind == "gauss":
            scale = 1.0 / math.sqrt(shape[0] * shape[1]) if core else 1.0
            return scale * torch.randn(shape, generator=gen, dtype=torch.float64)
        low = 0 if core and kind == "nonneg" else -k
        return torch.randint(low, k + 1, shape, generator=gen).to(torch.float64)

    shapes = [(L, 1 if t == 0 else R, 1 if t == T - 1 else R) for t in range(T)]
    values = [draw((M, L), False) for _ in range(3 if s.shared else T)]
    cores = [draw(shapes[t], True) for t in ((0, 1, T - 1) if s.shared else range(T))]
    if s.shared:  # positions 2 … T−1 reuse the middle pair
        values = [values[0]] + [values[1]] * (T - 2) + [values[2]]
        cores = [cores[0]] + [cores[1]] * (T - 2) + [cores[2]]
    if kind == "balanced":
        f = balance_factor(k, L, R)
        values = [a * float(f ** max(t - 1, 0)) for t, a in enumerate(values)]
    return values, cores


def balance_factor(k: int, width: int, rank: int) -> int:
    """``f = round(σ_K √(L·R))`` with ``σ_K² = K(K+1)/3``, the variance of a uniform integer in [−K, K]."""
    return max(1, round(math.sqrt(k * (k + 1) / 3 * width * rank)))


def rank_one_relu_instance(
    M: int, T: int, rank: int, width: int, seed: int = 0
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A ReLU RNN (integer weights) with a width-1 shallow equivalent, in an open set.

    Our construction for Thm 5.3: cores with entries in ``[9, 11]``; template 0 is
    negative at every position after the first (``ξ(a, h) = h``: the state moves
    on linearly), templates ``m ≥ 1`` exceed ``(11/9)·H_{t−1}`` at position ``t``,
    ``H_{t−1}`` the largest reachable state, scaled by ``m`` (the state restarts from
    the input). The output is then ``g_τ(m_τ)`` for the last position ``τ`` with
    ``m_τ ≥ 1``, increasing in ``τ``: a running maximum, ``max_t v^(t)_{i_t}``.
    Every condition is a strict inequality, so a small perturbation of any weight
    keeps the property; the random draws inside the margins show it.
    """
    gen = torch.Generator().manual_seed(int(seed))
    L, R = width, rank
    values: list[torch.Tensor] = []
    cores: list[torch.Tensor] = []
    states = None
    for t in range(T):
        shape = (L, 1 if t == 0 else R, 1 if t == T - 1 else R)
        cores.append(torch.randint(9, 12, shape, generator=gen).to(torch.float64))
        jitter = torch.randint(0, 3, (M, L), generator=gen).to(torch.float64)
        if t == 0:
            a = 1 + jitter + 3 * torch.arange(M, dtype=torch.float64)[:, None]
        else:
            top = float(states.max())
            step = math.floor(11 * top / 9) + 1
            a = step * torch.arange(M, dtype=torch.float64)[:, None] + jitter + 1
            a[0] = -1 - jitter[0]
        values.append(a)
        states = tt_grid("relu", values, cores, exact=True).reshape(-1, cores[-1].shape[2])
    return values, cores


def measure_instance(
    s: GridSetting,
    seed: int,
    *,
    methods: Sequence[str] = ("exact", "float"),
    prime: int | None = None,
    engine: str = "blas",
    instance: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Grid tensor, odd/even ranks, shallow bound and rank-1 test of one instance.

    ``exact`` runs where :attr:`GridSetting.exact_possible`: the rank over GF(p) of
    the exact integer grid, a certified lower bound on its rank over Q. Past 2^62
    (x² + y² squares its integers every step) a polynomial ξ is computed modulo
    ``p`` instead (:func:`tt_grid_mod`; the rank of ``Γ mod p`` is the same
    certificate), relu and max fall back to float64; ``float`` is
    the SVD rank with its gap. The shallow bound uses the exact rank when there is
    one, else the float rank.
    """
    from tensorrnn.ranks.modp import DEFAULT_PRIME, exact_rank
    from tensorrnn.ranks.numerical import numerical_rank

    start = time.perf_counter()
    check_setting(s)
    xi = get_xi(s.xi)
    values, cores = instance if instance is not None else random_instance(s, seed)
    exact = s.exact_possible
    p = DEFAULT_PRIME if prime is None else prime
    residues = None  # Γ mod p, when Γ itself is past 2^62 but ξ is a polynomial
    try:
        grid = tt_grid(xi, values, cores, exact=exact)[..., 0]
    except SizeError:
        exact = False
        grid = tt_grid(xi, values, cores)[..., 0]
        if xi.name in POLYNOMIAL:  # x² + y² squares its integers every step: exact mod p
            residues = tt_grid_mod(xi, values, cores, p)[..., 0]
    matrix = odd_even(grid)
    row: dict[str, Any] = {
        "xi": s.xi, "cores": s.cores, "rank": s.rank, "width": s.width, "M": s.M, "T": s.T,
        "weights": s.weights, "seed": seed, "side": s.side, "paper_value": s.paper_value,
        "max_abs": float(grid.abs().max()),
    }  # fmt: skip
    ex = None
    if "exact" in methods and exact:
        ex = exact_rank(matrix.numpy(), p, engine)  # type: ignore[arg-type]
    elif "exact" in methods and residues is not None:
        ex = exact_rank(odd_even(residues).numpy(), p, engine)  # type: ignore[arg-type]
    row["exact_rank"] = ex
    fl = numerical_rank(matrix.to(torch.float64)) if "float" in methods else None
    row["float_rank"] = None if fl is None else fl.rank
    row["gap"] = None if fl is None else fl.gap
    row["agree"] = None if ex is None or fl is None else ex == fl.rank
    rho = ex if ex is not None else row["float_rank"]
    q = xi.term_rank(s.M, s.T)
    row["shallow_bound"] = None if q is None or rho is None else -(-rho // q)
    tol = 0.0 if exact else 1e-9 * max(1.0, row["max_abs"])
    row["rank_one_shallow"] = shallow_rank_one(xi, grid, tol)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


# --------------------------------------------------------------------------- #
# The sweep on disk
# --------------------------------------------------------------------------- #

CSV_FILE, TABLE_FILE, FIGURE_FILE, SETTINGS_FILE = (
    "generalized.csv", "generalized.md", "generalized.png", "settings.json",
)  # fmt: skip
COLUMNS = ["xi", "cores", "rank", "width", "M", "T", "weights", "trial", "seed", "side", "paper_value",
           "exact_rank", "float_rank", "gap", "agree", "shallow_bound", "rank_one_shallow", "max_abs",
           "seconds"]  # fmt: skip
METHODS = ("exact", "float")


@dataclass(frozen=True)
class LabSettings:
    """What decides the numbers of a row (``settings.json``); the grid of settings may grow."""

    seed: int = 0
    methods: tuple[str, ...] = METHODS
    prime: int | None = None
    engine: str = "blas"

    def recorded(self) -> dict[str, Any]:
        """The JSON form stored in ``settings.json``."""
        from tensorrnn.ranks.modp import DEFAULT_PRIME

        out = asdict(self)
        out["methods"] = sorted(self.methods)
        out["prime"] = DEFAULT_PRIME if self.prime is None else self.prime
        return out


def make_settings(
    xis: Iterable[str],
    cores: Iterable[str],
    ranks: Iterable[int],
    widths: Iterable[int | str],
    Ms: Iterable[int],
    Ts: Iterable[int],
    weights: Iterable[str],
) -> list[GridSetting]:
    """The crossed grid of settings (``width`` may be ``"R"``: equal to the rank); each validated."""
    out: list[GridSetting] = []
    for xi in xis:
        for c in cores:
            if c not in ("distinct", "shared"):
                raise ConfigError(f"cores {c!r} must be distinct or shared")
            for w in weights:
                for M in Ms:
                    for T in Ts:
                        for R in ranks:
                            for L in widths:
                                width = R if L == "R" else L
                                s = GridSetting(xi, c == "shared", R, width, M, T, w)  # type: ignore[arg-type]
                                out.append(check_setting(s))
    return list(dict.fromkeys(out))


def _check_lab(settings: LabSettings, trials: int) -> None:
    from tensorrnn.ranks.modp import check_prime

    if isinstance(settings.seed, bool) or not isinstance(settings.seed, int) or settings.seed < 0:
        raise ConfigError(f"seed={settings.seed!r} must be a non-negative integer")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials={trials!r} must be a positive integer")
    bad = [m for m in settings.methods if m not in METHODS]
    if bad or not settings.methods:
        raise ConfigError(f"methods {list(settings.methods)!r}: choose from {', '.join(METHODS)}")
    if settings.engine not in ("blas", "flint"):
        raise ConfigError(f"engine {settings.engine!r}: choose blas or flint")
    if settings.prime is not None:
        check_prime(settings.prime, settings.engine)


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of ``generalized.csv`` (empty if the file does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
    return buffer.getvalue()


def _row_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in ("xi", "cores", "rank", "width", "M", "T", "weights", "trial"))


def check_output(out: Path, settings: LabSettings) -> None:
    """Refuse an output folder that is a file or holds rows measured with other settings."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    stored = out / SETTINGS_FILE
    if stored.exists():
        try:
            before = json.loads(stored.read_text())
        except (OSError, json.JSONDecodeError):
            raise ConfigError(f"{stored} is not readable JSON; delete it or use another --out") from None
        now = settings.recorded()
        diffs = [f"{k} {now.get(k)!r} now, {before.get(k)!r} stored" for k in sorted(set(now) | set(before))
                 if now.get(k) != before.get(k)]  # fmt: skip
        if diffs:
            raise ConfigError(f"--out {out} holds ranks measured with other settings: {'; '.join(diffs)}. "
                              "Rerun with the stored settings or use another --out")  # fmt: skip
    elif (out / CSV_FILE).exists():
        raise ConfigError(f"--out {out} holds {CSV_FILE} without {SETTINGS_FILE}; use another --out")


def run_generalized_ranks(
    grid: Sequence[GridSetting],
    trials: int,
    out: str | Path,
    settings: LabSettings = LabSettings(),
    *,
    quiet: bool = False,
) -> Path:
    """Measure ``trials`` random instances of every setting; write the CSV, table and figure.

    Everything is validated before ``out`` is created. Instances already in
    ``out/generalized.csv`` are skipped (a killed sweep resumes by running the
    same command); the CSV is rewritten atomically after each instance.
    """
    from tqdm import tqdm

    out = Path(out)
    for s in grid:
        check_setting(s)
    _check_lab(settings, trials)
    check_output(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SETTINGS_FILE, settings.recorded())
    rows: list[dict[str, Any]] = [dict(r) for r in read_rows(out / CSV_FILE)]
    done = {_row_key(r) for r in rows}
    todo = [(s, t) for s in grid for t in range(trials) if s.key(t) not in done]
    bar = tqdm(todo, disable=quiet, desc="generalized ranks", unit="instance")
    for s, trial in bar:
        bar.set_postfix_str(f"{s.xi} {s.cores} R{s.rank} M{s.M} T{s.T}")
        row = measure_instance(s, s.seed(settings.seed, trial), methods=settings.methods,
                               prime=settings.prime, engine=settings.engine)  # fmt: skip
        row["trial"] = trial
        rows.append(row)
        atomic_write_text(out / CSV_FILE, _csv_text(rows))
    rows = [dict(r) for r in read_rows(out / CSV_FILE)] if (out / CSV_FILE).exists() else []
    if not rows:
        atomic_write_text(out / CSV_FILE, _csv_text([]))
    atomic_write_text(out / TABLE_FILE, summary_table(rows))
    plot_distributions(rows, out / FIGURE_FILE)
    return out


# --------------------------------------------------------------------------- #
# Tables and figures
# --------------------------------------------------------------------------- #


def _int(v: Any) -> int | None:
    return None if v in (None, "") else int(float(v))


def _bool(v: Any) -> bool | None:
    if v in (None, ""):
        return None
    return v if isinstance(v, bool) else str(v) == "True"


def _group(rows: Sequence[Mapping[str, Any]]) -> dict[tuple, list[Mapping[str, Any]]]:
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        key = (str(r["xi"]), str(r["weights"]), int(r["M"]), int(r["T"]), str(r["cores"]),
               int(r["rank"]), int(r["width"]))  # fmt: skip
        groups[key].append(r)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3],
                                                       kv[0][5], kv[0][4], kv[0][6])))  # fmt: skip


def _distribution(values: Sequence[int]) -> str:
    counts = Counter(values)
    return ", ".join(f"{v}×{c}" if c > 1 else f"{v}" for v, c in sorted(counts.items()))


def summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one line per setting (distinct and shared side by side in sort order).

    Columns: the odd/even rank over the instances (min / median / max; exact where
    certified, else float), the fraction reaching ``min(M, R)^⌊T/2⌋`` (Thm 5.2's
    value), the shallow-width lower bounds (distribution ``value×count``), the
    fraction with a width-1 shallow equivalent, and exact-vs-float agreement.
    """
    head = ["ξ", "weights", "M", "T", "cores", "R", "L", "instances", "odd/even rank min / median / max",
            "≥ min(M,R)^⌊T/2⌋", "shallow width ≥ (value×count)", "width-1 shallow equivalent",
            "exact = float"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (xi, weights, M, T, cores, R, L), members in _group(rows).items():
        ranks = [_int(r["exact_rank"]) if _int(r["exact_rank"]) is not None else _int(r["float_rank"])
                 for r in members]  # fmt: skip
        ranks = [x for x in ranks if x is not None]
        certified = all(_int(r["exact_rank"]) is not None for r in members)
        paper = min(M, R) ** (T // 2)
        bounds = [b for b in (_int(r["shallow_bound"]) for r in members) if b is not None]
        ones = [b for b in (_bool(r["rank_one_shallow"]) for r in members) if b is not None]
        agree = [a for a in (_bool(r["agree"]) for r in members) if a is not None]
        rank_cell = (f"{min(ranks)} / {statistics.median(ranks):g} / {max(ranks)}"
                     + ("" if certified else " (float)")) if ranks else "–"  # fmt: skip
        cells = [
            xi, weights, M, T, cores, R, L, len(members), rank_cell,
            f"{sum(x >= paper for x in ranks) / len(ranks):.0%}" if ranks else "–",
            _distribution(bounds) if bounds else "–",
            f"{sum(ones)}/{len(ones)}" if ones else "–",
            f"{sum(agree)}/{len(agree)}" if agree else "–",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot_distributions(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Histograms of the shallow-width bound (or the rank where ξ has no bound) per R,
    distinct and shared side by side, one row per (ξ, weights, M, T); a last column
    gives the fraction of instances with a width-1 shallow equivalent against R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple, dict[tuple[str, int], list[Mapping[str, Any]]]] = defaultdict(dict)
    for (xi, weights, M, T, cores, R, _L), members in _group(rows).items():
        panels[(xi, weights, M, T)].setdefault((cores, R), []).extend(members)
    n = max(1, len(panels))
    fig, axes = plt.subplots(n, 3, figsize=(13, 3.1 * n), squeeze=False)
    for ax_row, ((xi, weights, M, T), groups) in zip(axes, panels.items(), strict=False):
        use_bound = get_xi(xi).term_rank(M, T) is not None
        for ax, cores in zip(ax_row[:2], ("distinct", "shared"), strict=True):
            Rs = sorted(R for c, R in groups if c == cores)
            for R in Rs:
                vals = [_int(r["shallow_bound"] if use_bound else (r["exact_rank"] or r["float_rank"]))
                        for r in groups[(cores, R)]]  # fmt: skip
                vals = [v for v in vals if v is not None]
                if vals:
                    lo, hi = min(vals), max(vals)
                    bins = range(lo, hi + 2) if hi - lo < 60 else 30
                    ax.hist(vals, bins=bins, histtype="step", lw=1.5, label=f"R = {R}")
            what = "shallow width lower bound" if use_bound else "odd/even rank"
            ax.set_title(f"ξ={xi}, {weights}, M={M}, T={T}: {cores}", fontsize=9)
            ax.set_xlabel(what)
            ax.set_ylabel("instances")
            ax.grid(alpha=0.3)
            if Rs:
                ax.legend(fontsize=7)
        ax = ax_row[2]
        for cores, style in (("distinct", "o-"), ("shared", "s--")):
            pts = []
            for (c, R), members in sorted(groups.items(), key=lambda kv: kv[0][1]):
                ones = [b for b in (_bool(r["rank_one_shallow"]) for r in members) if b is not None]
                if c == cores and ones:
                    pts.append((R, sum(ones) / len(ones)))
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=cores)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title("width-1 shallow equivalent", fontsize=9)
        ax.set_xlabel("R")
        ax.set_ylabel("fraction of instances")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
