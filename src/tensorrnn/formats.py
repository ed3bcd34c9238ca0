"""Tensors in CP and tensor-train formats, their generators and matricizations.

Every format is stored by its cores and reduced to one common view, a list of
``d`` TT cores of shapes ``(r_{k-1}, n, r_k)`` with ``r_0 = r_d = 1``
(:meth:`TensorFormat.tt_cores`). Shared cores are the *same* tensor object at
every position they occupy, so sharing is structural, not a copy.

Two kinds of entries are supported:

* real (``float64``) entries, for floating-point work;
* integer entries modulo a prime ``p`` (``int64``, ``modulus=p``), for exact
  ranks. Every contraction of the integer path is reduced modulo ``p`` right
  away, so no intermediate leaves ``[0, p)`` and nothing overflows as long as
  ``r * (p - 1)**2 < 2**63``.

The matrix of a matricization is built straight from the cores
(:func:`matricize`): the chain is swept from both ends to the middle bond and
the two halves are joined into a preallocated output, so nothing larger than
the matrix itself is allocated (the half-chain states hold ``n**(d/2) * r``
entries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tensorrnn.errors import ConfigError, SizeError

FAMILIES = ("tt", "tt-shared", "tt-uniform", "cp", "tt-periodic", "tt-periodic-shared")
PERIODIC_FAMILIES = ("tt-periodic", "tt-periodic-shared")
"""Trace boundary ``tr(G_1[i_1] ... G_d[i_d])`` (a ring of cores): distinct cores, or one core
(translation-invariant, the form of tensorkrowch's ``UMPSLayer`` and TorchMPS's periodic MPS)."""

# Integer instances are reduced modulo p after every product of two entries in
# [0, p), summed over at most r terms: r * (p - 1)**2 must stay below 2**63.
_INT64_LIMIT = 2**63


# --------------------------------------------------------------------------- #
# Splits
# --------------------------------------------------------------------------- #


def parse_split(split: str | Sequence[int], d: int) -> tuple[int, ...]:
    """Return the 0-based row modes of a matricization of an order-``d`` tensor.

    Parameters
    ----------
    split
        ``"odd-even"`` (rows are modes 1, 3, 5, ... in 1-based numbering; needs
        even ``d``), ``"half"`` (rows are the first ``d // 2`` modes), a string of
        1-based row modes such as ``"1,2,5,6"``, or a sequence of 1-based modes.
    d
        Order of the tensor.

    Returns
    -------
    tuple of int
        Sorted 0-based row modes; the remaining modes are the columns.
    """
    if d < 1:
        raise ConfigError(f"order d={d} is not positive; give d >= 1")
    if isinstance(split, str):
        name = split.strip().lower()
        if name == "odd-even":
            if d % 2:
                raise ConfigError(
                    f"the odd-even split needs an even order, got d={d}; "
                    "use an even d or another split (half, or a list like 1,2)"
                )
            return tuple(range(0, d, 2))
        if name == "half":
            return tuple(range(d // 2))
        try:
            modes = [int(part) for part in name.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(
                f"unknown split {split!r}; use odd-even, half, or 1-based row modes like 1,2,5,6"
            ) from None
    else:
        modes = [int(m) for m in split]
    if not modes:
        raise ConfigError("a split needs at least one row mode, e.g. --split 1,2")
    if len(set(modes)) != len(modes):
        raise ConfigError(f"split {modes} names a mode twice; list each row mode once")
    bad = [m for m in modes if not 1 <= m <= d]
    if bad:
        raise ConfigError(f"split {modes} names mode(s) {bad} outside 1..{d} (modes are 1-based)")
    return tuple(sorted(m - 1 for m in modes))


def split_label(split: str | Sequence[int]) -> str:
    """Canonical text of a split, as written into results files."""
    if isinstance(split, str):
        return split.strip().lower().replace(" ", "")
    return ",".join(str(int(m)) for m in split)


# --------------------------------------------------------------------------- #
# Contraction of a chain of cores into a matrix
# --------------------------------------------------------------------------- #


def _reduce(x: torch.Tensor, modulus: int | None) -> torch.Tensor:
    return x if modulus is None else torch.remainder(x, modulus)


def _sweep_left(
    cores: Sequence[torch.Tensor], is_row: Sequence[bool], modulus: int | None, like: torch.Tensor
):
    """Contract ``cores`` left to right into a state of shape (rows, cols, bond)."""
    state = torch.ones(1, 1, 1, dtype=like.dtype, device=like.device)
    for core, row in zip(cores, is_row, strict=True):
        rows, cols, bond = state.shape
        _, n, right = core.shape
        nxt = _reduce(state.reshape(rows * cols, bond) @ core.reshape(bond, n * right), modulus)
        nxt = nxt.reshape(rows, cols, n, right)
        if row:
            state = nxt.permute(0, 2, 1, 3).reshape(rows * n, cols, right)
        else:
            state = nxt.reshape(rows, cols * n, right)
    return state


def _sweep_right(
    cores: Sequence[torch.Tensor], is_row: Sequence[bool], modulus: int | None, like: torch.Tensor
):
    """Contract ``cores`` right to left into a state of shape (bond, rows, cols)."""
    state = torch.ones(1, 1, 1, dtype=like.dtype, device=like.device)
    for core, row in zip(reversed(cores), reversed(is_row), strict=True):
        bond, rows, cols = state.shape
        left, n, _ = core.shape
        nxt = _reduce(core.reshape(left * n, bond) @ state.reshape(bond, rows * cols), modulus)
        nxt = nxt.reshape(left, n, rows, cols)
        if row:
            state = nxt.reshape(left, n * rows, cols)
        else:
            state = nxt.permute(0, 2, 1, 3).reshape(left, rows, n * cols)
    return state


def matrix_shape(mode_sizes: Sequence[int], row_modes: Sequence[int]) -> tuple[int, int]:
    """Shape ``(prod of row mode sizes, prod of column mode sizes)``."""
    rows = cols = 1
    for k, size in enumerate(mode_sizes):
        if k in row_modes:
            rows *= size
        else:
            cols *= size
    return rows, cols


def check_fits(num_entries: int, itemsize: int, max_bytes: int | None, what: str) -> None:
    """Refuse, before allocating, an array of ``num_entries`` that exceeds ``max_bytes``."""
    if max_bytes is None:
        return
    need = num_entries * itemsize
    if need > max_bytes:
        raise SizeError(
            f"{what} needs about {need / 2**30:.2f} GiB ({num_entries:,} entries of {itemsize} "
            f"bytes), over the limit of {max_bytes / 2**30:.2f} GiB; choose smaller n, r or d, "
            "or raise the limit (--max-memory)"
        )


def default_memory_limit() -> int:
    """Half of the physical memory, in bytes: room for the matrix plus one working copy."""
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def contract_to_matrix(
    cores: Sequence[torch.Tensor],
    row_modes: Sequence[int],
    modulus: int | None = None,
    max_bytes: int | None = None,
) -> torch.Tensor:
    """Matricize the TT tensor given by ``cores`` without forming the full tensor.

    Row index ``(i_a, i_b, ...)`` over the row modes ``a < b < ...`` is ordered
    with the first row mode most significant (C order, as numpy's
    ``transpose(rows + cols).reshape``); the same for the columns.

    Parameters
    ----------
    cores
        ``d`` cores of shapes ``(r_{k-1}, n_k, r_k)``, ``r_0 = r_d = 1``.
    row_modes
        0-based row modes.
    modulus
        A prime ``p`` for integer cores with entries in ``[0, p)``; ``None`` for
        real cores.
    max_bytes
        Refuse (``SizeError``) a matrix larger than this before allocating it.
    """
    d = len(cores)
    rows_set = set(row_modes)
    is_row = [k in rows_set for k in range(d)]
    mode_sizes = [c.shape[1] for c in cores]
    n_rows, n_cols = matrix_shape(mode_sizes, rows_set)
    itemsize = torch.empty((), dtype=cores[0].dtype).element_size()
    check_fits(n_rows * n_cols, itemsize, max_bytes, f"the {n_rows}x{n_cols} matricization")
    if modulus is not None:
        bond = max(c.shape[0] for c in cores)
        if bond * (modulus - 1) ** 2 >= _INT64_LIMIT:
            raise ConfigError(
                f"modulus {modulus} is too large for int64 contraction at bond {bond}; "
                "use a prime below 2**30"
            )

    middle = d // 2
    left = _sweep_left(cores[:middle], is_row[:middle], modulus, cores[0])  # (XL, YL, r)
    right = _sweep_right(cores[middle:], is_row[middle:], modulus, cores[0])  # (r, XR, YR)
    xl, yl, bond = left.shape
    _, xr, yr = right.shape
    out = torch.empty(xl, xr, yl, yr, dtype=left.dtype, device=left.device)
    right_flat = right.reshape(bond, xr * yr)
    # One row block of the left state at a time keeps the workspace at
    # (yl, xr * yr) entries, a small slice of the output.
    for x in range(xl):
        block = _reduce(left[x] @ right_flat, modulus).reshape(yl, xr, yr)
        out[x] = block.permute(1, 0, 2)
    return out.reshape(n_rows, n_cols)


# --------------------------------------------------------------------------- #
# Formats
# --------------------------------------------------------------------------- #


class TensorFormat:
    """Common interface: ``tt_cores()``, ``full()``, ``matricize(split)``.

    Subclasses hold their own parameters and say how they read as TT cores.
    ``modulus`` is ``None`` for real tensors and the prime ``p`` for integer
    tensors modulo ``p``.
    """

    family: str
    modulus: int | None

    def tt_cores(self) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def d(self) -> int:
        """Order of the tensor."""
        return len(self.tt_cores())

    @property
    def shape(self) -> tuple[int, ...]:
        """Mode sizes."""
        return tuple(int(c.shape[1]) for c in self.tt_cores())

    def matricize(
        self, split: str | Sequence[int] = "odd-even", max_bytes: int | None = None
    ) -> torch.Tensor:
        """Matrix of the given split (see :func:`parse_split`), built from the cores."""
        row_modes = parse_split(split, self.d)
        return contract_to_matrix(self.tt_cores(), row_modes, self.modulus, max_bytes)

    def full(self, max_bytes: int | None = None) -> torch.Tensor:
        """The dense tensor of shape ``self.shape`` (meant for small sizes)."""
        cores = self.tt_cores()
        matrix = contract_to_matrix(cores, tuple(range(len(cores))), self.modulus, max_bytes)
        return matrix.reshape(self.shape)


@dataclass
class TTTensor(TensorFormat):
    """Tensor train ``G_1[i_1] G_2[i_2] ... G_d[i_d]`` with distinct cores."""

    cores: list[torch.Tensor]
    modulus: int | None = None
    family: str = "tt"

    def __post_init__(self) -> None:
        _check_chain(self.cores)

    def tt_cores(self) -> list[torch.Tensor]:
        return list(self.cores)


@dataclass
class TTSharedTensor(TensorFormat):
    """``g_1[i_1] G[i_2] ... G[i_{d-1}] g_d[i_d]``: one middle core ``G`` shared.

    ``first`` is ``(1, n, r)``, ``middle`` is ``(r, n, r)``, ``last`` is
    ``(r, n, 1)``; ``order`` is ``d >= 2`` (the middle core appears ``d - 2``
    times).
    """

    first: torch.Tensor
    middle: torch.Tensor
    last: torch.Tensor
    order: int
    modulus: int | None = None
    family: str = "tt-shared"

    def __post_init__(self) -> None:
        if self.order < 2:
            raise ConfigError(f"tt-shared needs order d >= 2, got d={self.order}")
        _check_chain(self.tt_cores())

    def tt_cores(self) -> list[torch.Tensor]:
        return [self.first] + [self.middle] * (self.order - 2) + [self.last]


@dataclass
class TTUniformTensor(TensorFormat):
    """``u^T G[i_1] G[i_2] ... G[i_d] v``: every core equal, boundary vectors ``u, v``."""

    core: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    order: int
    modulus: int | None = None
    family: str = "tt-uniform"

    def __post_init__(self) -> None:
        if self.order < 1:
            raise ConfigError(f"tt-uniform needs order d >= 1, got d={self.order}")
        _check_chain(self.tt_cores())

    def tt_cores(self) -> list[torch.Tensor]:
        r, n, _ = self.core.shape
        first = _reduce(torch.einsum("a,aib->ib", self.u, self.core), self.modulus)
        if self.order == 1:
            return [_reduce(first @ self.v, self.modulus).reshape(1, n, 1)]
        last = _reduce(torch.einsum("aib,b->ai", self.core, self.v), self.modulus)
        middle = [self.core] * (self.order - 2)
        return [first.reshape(1, n, r)] + middle + [last.reshape(r, n, 1)]


def ring_to_chain(cores: Sequence[torch.Tensor], modulus: int | None = None) -> list[torch.Tensor]:
    """Open-chain cores (bond ``r^2``) of ``tr(G_1[i_1] ... G_d[i_d])``, each ``G_k`` ``(r, n, r)``.

    The trace is ``sum_a e_a^T G_1 ... G_d e_a``: the chain carries the starting state ``a``
    beside the running state ``b``, as the pair ``(a, b)``. First core ``[0, i, (a, b)] =
    G_1[a, i, b]``; middle cores ``[(a, b), i, (a', b')] = [a = a'] G_k[b, i, b']``; last core
    ``[(a, b), i, 0] = G_d[b, i, a]``. Entries stay those of the ``G_k`` (0 or one entry), so
    integer cores stay reduced.
    """
    d = len(cores)
    r, n, _ = cores[0].shape
    if d == 1:
        diag = torch.diagonal(cores[0], dim1=0, dim2=2).sum(dim=-1)  # (n,)
        return [_reduce(diag, modulus).reshape(1, n, 1)]
    eye = torch.eye(r, dtype=cores[0].dtype, device=cores[0].device)
    first = cores[0].permute(1, 0, 2).reshape(1, n, r * r)  # (a, b) with a major
    middle = [torch.einsum("ac,bid->abicd", eye, G).reshape(r * r, n, r * r) for G in cores[1:-1]]
    last = cores[-1].permute(2, 0, 1).reshape(r * r, n, 1)  # [(a, b), i] = G_d[b, i, a]
    return [first, *middle, last]


@dataclass
class TTPeriodicTensor(TensorFormat):
    """``tr(G_1[i_1] G_2[i_2] ... G_d[i_d])`` with distinct ``(r, n, r)`` cores (a ring)."""

    cores: list[torch.Tensor]
    modulus: int | None = None
    family: str = "tt-periodic"

    def __post_init__(self) -> None:
        _check_ring(self.cores)

    def tt_cores(self) -> list[torch.Tensor]:
        return ring_to_chain(self.cores, self.modulus)


@dataclass
class TTPeriodicSharedTensor(TensorFormat):
    """``tr(G[i_1] G[i_2] ... G[i_d])``: one core everywhere on the ring (translation-invariant)."""

    core: torch.Tensor
    order: int
    modulus: int | None = None
    family: str = "tt-periodic-shared"

    def __post_init__(self) -> None:
        if self.order < 1:
            raise ConfigError(f"tt-periodic-shared needs order d >= 1, got d={self.order}")
        _check_ring([self.core])

    def tt_cores(self) -> list[torch.Tensor]:
        return ring_to_chain([self.core] * self.order, self.modulus)


def _check_ring(cores: Sequence[torch.Tensor]) -> None:
    shapes = [tuple(c.shape) for c in cores]
    if not shapes or any(len(s) != 3 or s[0] != s[2] or s[0] != shapes[0][0] for s in shapes):
        raise ConfigError(f"ring cores must all be (r, n, r) with one r, got shapes {shapes}")


@dataclass
class CPTensor(TensorFormat):
    """``sum_k weights[k] a_k^(1) ⊗ ... ⊗ a_k^(d)``; ``factors[j]`` is ``(n_j, R)``."""

    factors: list[torch.Tensor]
    weights: torch.Tensor | None = None
    modulus: int | None = None
    family: str = "cp"

    def __post_init__(self) -> None:
        ranks = {f.shape[1] for f in self.factors}
        if len(ranks) != 1 or any(f.ndim != 2 for f in self.factors):
            shapes = [tuple(f.shape) for f in self.factors]
            raise ConfigError(f"CP factors must be (n_j, R) with one R, got shapes {shapes}")

    @property
    def rank(self) -> int:
        return int(self.factors[0].shape[1])

    def tt_cores(self) -> list[torch.Tensor]:
        # A CP tensor is a TT with diagonal cores of bond R.
        first = self.factors[0]
        if self.weights is not None:
            first = _reduce(first * self.weights, self.modulus)
        if len(self.factors) == 1:
            return [_reduce(first.sum(dim=1), self.modulus).reshape(1, -1, 1)]
        cores = [first.unsqueeze(0)]
        for factor in self.factors[1:-1]:
            cores.append(torch.diag_embed(factor).permute(1, 0, 2))  # (R, n, R)
        cores.append(self.factors[-1].T.unsqueeze(2))
        return cores


def _check_chain(cores: Sequence[torch.Tensor]) -> None:
    shapes = [tuple(c.shape) for c in cores]
    if any(len(s) != 3 for s in shapes):
        raise ConfigError(f"TT cores must be 3-way (r_left, n, r_right), got shapes {shapes}")
    if shapes[0][0] != 1 or shapes[-1][2] != 1:
        raise ConfigError(f"the first core must start and the last end with bond 1, got {shapes}")
    for k in range(len(shapes) - 1):
        if shapes[k][2] != shapes[k + 1][0]:
            raise ConfigError(
                f"bond mismatch between cores {k + 1} and {k + 2}: {shapes[k]} then {shapes[k + 1]}"
            )


# --------------------------------------------------------------------------- #
# Generators
# --------------------------------------------------------------------------- #


def check_sizes(family: str, n: int, r: int, d: int) -> None:
    """Validate a family name and its sizes, with messages that say how to fix them."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    for name, value in (("n", n), ("r", r), ("d", d)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive integer")
    if family == "tt-shared" and d < 2:
        raise ConfigError("tt-shared needs d >= 2 (a first and a last core)")


def random_tensor(
    family: str,
    n: int,
    r: int,
    d: int,
    *,
    seed: int,
    modulus: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> TensorFormat:
    """A seeded random instance of a family.

    Parameters
    ----------
    family
        ``"tt"``, ``"tt-shared"``, ``"tt-uniform"``, ``"cp"`` (for ``cp``, ``r`` is the
        CP rank ``R``), ``"tt-periodic"`` or ``"tt-periodic-shared"`` (trace boundary).
    n, r, d
        Mode size, TT rank (or CP rank) and order.
    seed
        The same seed gives the same instance.
    modulus
        ``None``: Gaussian entries with variance ``1/r`` (keeps the chain's scale
        near one). A prime ``p``: integer entries uniform in ``[0, p)``; entries
        from a large range keep the instance generic with probability about
        ``1 - N/p`` (small ranges such as [-3, 3] often are not).
    """
    check_sizes(family, n, r, d)
    gen = torch.Generator().manual_seed(int(seed))

    def draw(*shape: int) -> torch.Tensor:
        if modulus is None:
            return torch.randn(*shape, generator=gen, dtype=dtype) / max(r, 1) ** 0.5
        return torch.randint(0, modulus, shape, generator=gen, dtype=torch.int64)

    if family == "tt":
        ranks = [1] + [r] * (d - 1) + [1]
        cores = [draw(ranks[k], n, ranks[k + 1]) for k in range(d)]
        return TTTensor(cores, modulus=modulus)
    if family == "tt-shared":
        return TTSharedTensor(draw(1, n, r), draw(r, n, r), draw(r, n, 1), d, modulus)
    if family == "tt-uniform":
        return TTUniformTensor(draw(r, n, r), draw(r), draw(r), d, modulus)
    if family == "tt-periodic":
        return TTPeriodicTensor([draw(r, n, r) for _ in range(d)], modulus=modulus)
    if family == "tt-periodic-shared":
        return TTPeriodicSharedTensor(draw(r, n, r), d, modulus)
    factors = [draw(n, r) for _ in range(d)]
    return CPTensor(factors, modulus=modulus)


def delta_witness(family: str, n: int, r: int, d: int) -> TensorFormat:
    """The Kronecker-delta witness of the theorem, built with equal cores.

    With bond states ``0..r-1`` and ``q = min(n, r - 1)``, the core is
    ``G[i] = e_0 e_{i+1}^T + e_{i+1} e_0^T`` for mode values ``i < q`` and zero
    otherwise; with ``u = v = e_0`` the tensor is
    ``delta(i_1, i_2) delta(i_3, i_4) ... `` restricted to values ``< q``. Its
    odd/even matricization is an identity block of size ``q**(d/2)``.

    ``family`` is ``"tt-uniform"`` or ``"tt-shared"`` (first core ``u^T G``,
    last core ``G v``). Needs ``r >= 2`` and even ``d``.
    """
    if family not in ("tt-uniform", "tt-shared"):
        raise ConfigError(f"the delta witness is built for tt-uniform or tt-shared, not {family}")
    if r < 2 or d % 2:
        raise ConfigError(f"the delta witness needs r >= 2 and even d, got r={r}, d={d}")
    q = min(n, r - 1)
    core = torch.zeros(r, n, r, dtype=torch.float64)
    for i in range(q):
        core[0, i, i + 1] = 1.0
        core[i + 1, i, 0] = 1.0
    e0 = torch.zeros(r, dtype=torch.float64)
    e0[0] = 1.0
    uniform = TTUniformTensor(core, e0, e0.clone(), d)
    if family == "tt-uniform":
        return uniform
    cores = uniform.tt_cores()
    return TTSharedTensor(cores[0], core, cores[-1], d)
