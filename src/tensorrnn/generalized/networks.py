"""Generalized networks: the ξ recurrent network and the ξ shallow network.

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
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tensorrnn.errors import ConfigError
from tensorrnn.formats import TensorFormat
from tensorrnn.generalized.grids import cp_grid, tt_grid
from tensorrnn.generalized.operators import XIS, Xi, get_xi
from tensorrnn.networks import CPNet, ScoreNetwork, TTNet, chain_start, check_init, randn_like_cpu

__all__ = ["FAMILIES", "GeneralizedCPNet", "GeneralizedTTNet", "make_generalized", "parse_model"]

FAMILIES = ("tt", "tt-shared", "cp")
"""The families a ξ applies to: a model is named ``<ξ>-<family>``."""


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
        self.inputs.copy_(randn_like_cpu(self.inputs, generator) / math.sqrt(n))
        self.first.copy_(randn_like_cpu(self.first, generator) / math.sqrt(L))
        self.last.copy_(randn_like_cpu(self.last, generator) / math.sqrt(L * r))
        noise = randn_like_cpu(self.middle, generator)
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
        noise = randn_like_cpu(self.factors, generator)
        if check_init(init) == "gaussian":
            self.factors.copy_(noise / math.sqrt(self.n))
        else:
            self.factors.copy_((1 + init_noise * noise) / self.n)
        self.weights.copy_(randn_like_cpu(self.weights, generator))

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
