"""Grid tensors of generalized networks, their ranks, the shallow-width bound, and one
measured random instance (the rank laboratory of generalized networks).

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
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tensorrnn.errors import ConfigError, SizeError
from tensorrnn.generalized.operators import Xi, get_xi

__all__ = [
    "GridSetting", "HOMOGENEOUS", "MAX_GRID", "MAX_SIDE", "POLYNOMIAL", "WEIGHTS_HELP",
    "balance_factor", "check_setting", "cp_grid", "measure_instance", "odd_even", "parse_weights",
    "random_instance", "rank_one_factors", "rank_one_relu_instance", "shallow_rank_one", "tt_grid",
    "tt_grid_mod",
]  # fmt: skip

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
