"""The binary operators ξ of generalized networks and the generalized outer product.

``ξ`` is a binary operator on reals (:data:`XIS`): ``product`` ``xy`` (the
multiplicative networks), ``relu`` ``max(x, y, 0)`` (ReLU networks), ``max``
``max(x, y)``, ``softplus`` ``ln(eˣ + eʸ)`` and ``sqsum`` ``x² + y²`` (the second
operator of the paper's shared-core appendix; not associative). The generalized
outer product of vectors is ``(a ⊗_ξ b)_ij = ξ(a_i, b_j)``.

"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tensorrnn.errors import ConfigError

__all__ = ["XIS", "Xi", "get_xi"]



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


def get_xi(name: str | Xi) -> Xi:
    """The operator called ``name`` (one of :data:`XIS`)."""
    if isinstance(name, Xi):
        return name
    if name not in XIS:
        raise ConfigError(f"unknown xi {name!r}; choose one of {', '.join(XIS)}")
    return XIS[name]

