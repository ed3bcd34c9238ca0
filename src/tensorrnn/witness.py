"""Witnesses: explicit integer tensors whose odd/even rank has a closed form for every even d.

A certified rank table stops at some order d. A *witness* is one explicit tensor of
a family whose odd/even matricization rank is known in closed form for **every**
even d. Because the set of parameters where a matricization has rank >= R is
Zariski-open, one witness of rank R shows that almost every tensor of the family
has rank >= R (and CP rank >= R); where R equals the min-cut upper bound, the
generic odd/even rank is then known for every even d. Proofs: ``docs/THEORY.md``.

Kinds (:data:`WITNESS_KINDS`; closed form of the odd/even rank in brackets):

* ``"delta"``: the thesis's Kronecker-delta witness with one core ``G[i] = E_{0,i+1}
  + E_{i+1,0}`` (``i < q``), ``u = v = e_0`` [``min(n, r-1)^(d/2)``].
* ``"alternating"``: Khrulkov-Novikov-Oseledets 2018, distinct cores with bond ranks
  r, 1, r, 1, ... [``min(n, r)^(d/2)``]; only as ``tt``.
* ``"hub"``: the delta witness plus one letter, the loop ``E_00`` on the mode value
  the delta witness leaves at zero [``min(n, r)^(d/2)``]: equal cores reach the
  distinct-core bound, and the min-cut ``n^(d/2)`` at ``n = r``.
* ``"matrix-unit"``: mode values are pairs ``(a, b)`` with ``G[(a, b)] = E_ab``, ``u = v``
  all ones; needs ``n >= r^2`` [``r^(d-1)``, the min-cut].
* ``"transfer"``: ``r <= n <= r^2``; a core whose *transfer matrix*
  ``K[(a, e), (f, b)] = (G[f] G[e])_ab`` (:func:`transfer_matrix`) is invertible, with
  boundary vectors ``u, v`` such that ``u^T G[e]`` and ``G[e] v`` span ``F^r``
  [``r n^(d/2-1)``, the min-cut]. The transfer lemma (THEORY.md, Theorem 2) turns the
  invertibility of one ``rn x rn`` matrix into the rank at every even d. The core is
  built from closed-form families (complete multipartite graphs, the hub extension,
  Kronecker products, orthogonal complements) and, where those give nothing, the
  diagonal-shift family ``D P^j`` of THEORY.md Theorem 8 with a searched diagonal
  (:func:`transfer_recipe`; every ``n <= r^2`` is reached up to ``MAX_RECIPE_R``); the
  invertibility is checked exactly before the witness is returned. Where no ``u, v``
  exist for that core, the ``tt-uniform`` witness falls back to a stored certificate
  (:func:`load_certificate`) or a seeded search over ``{-1, 0, 1}`` cores, and says so
  in its construction; ``tt`` and ``tt-shared`` use free end cores instead.

Every witness is built from integer cores, in the existing formats
(:class:`~tensorrnn.formats.TTUniformTensor`, :class:`~tensorrnn.formats.TTSharedTensor`,
:class:`~tensorrnn.formats.TTTensor`): ``modulus=p`` (default :data:`WITNESS_PRIME`, the
exact engine's prime) gives ``int64`` cores reduced modulo ``p``, ready for
:func:`tensorrnn.ranks.exact_rank`; ``modulus=None`` gives the same integers as
``float64``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import flint
import numpy as np
import torch

from tensorrnn.errors import ConfigError
from tensorrnn.formats import TensorFormat, TTSharedTensor, TTTensor, TTUniformTensor

WITNESS_PRIME = 2_097_143
"""Default modulus of the integer cores: ``tensorrnn.ranks.modp.DEFAULT_PRIME`` (the
``formats`` layer sits above ``ranks``, so the value is repeated here and a test
keeps the two equal)."""

MAX_RECIPE_R = 40
"""Largest bond size for which :func:`transfer_recipe` enumerates its closed-form
families (they need the integer partitions of every r' <= r)."""

SEARCH_TRIES = 64
"""Seeded cores tried by the transfer witness where no closed-form family applies."""


@dataclass(frozen=True)
class WitnessKind:
    """What a witness kind is, where it applies and what its rank is."""

    name: str
    family: str
    families: tuple[str, ...]
    rank: str
    regime: str
    source: str


KINDS: dict[str, WitnessKind] = {
    kind.name: kind
    for kind in (
        WitnessKind("delta", "tt-uniform", ("tt-uniform", "tt-shared", "tt"), "min(n,r-1)^(d/2)",
                    "r >= 2", "the thesis: Kronecker deltas with one shared core"),
        WitnessKind("alternating", "tt", ("tt",), "min(n,r)^(d/2)", "any n, r",
                    "Khrulkov-Novikov-Oseledets 2018: distinct cores, bond ranks r,1,r,1,..."),
        WitnessKind("hub", "tt-uniform", ("tt-uniform", "tt-shared", "tt"), "min(n,r)^(d/2)",
                    "any n, r", "docs/THEORY.md Theorem 3: the delta witness plus the loop E_00"),
        WitnessKind("matrix-unit", "tt-uniform", ("tt-uniform", "tt-shared", "tt"), "r^(d-1)",
                    "n >= r^2", "issue 13: G[(a,b)] = E_ab, u = v = all ones"),
        WitnessKind("transfer", "tt-uniform", ("tt-uniform", "tt-shared", "tt"), "r*n^(d/2-1)",
                    "r <= n <= r^2", "docs/THEORY.md Theorem 2: an invertible transfer matrix"),
    )
}  # fmt: skip
WITNESS_KINDS = tuple(KINDS)


# --------------------------------------------------------------------------- #
# Validation and closed forms
# --------------------------------------------------------------------------- #


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return value


def check_witness_sizes(kind: str, n: int, r: int, d: int) -> None:
    """Refuse an unknown kind, bad sizes, odd ``d`` or sizes outside the kind's regime."""
    if kind not in KINDS:
        raise ConfigError(f"unknown witness kind {kind!r}; choose one of {', '.join(WITNESS_KINDS)}")
    _positive("n", n)
    _positive("r", r)
    _positive("d", d)
    if d % 2:
        raise ConfigError(
            f"witness ranks are stated for the odd-even split, which needs an even d; got d={d}"
        )
    if kind == "delta" and r < 2:
        raise ConfigError("the delta witness needs r >= 2 (one bond state is the closed pair)")
    if kind == "matrix-unit" and n < r * r:
        raise ConfigError(
            f"the matrix-unit witness needs n >= r^2 (one mode value per pair of bond states), "
            f"got n={n}, r={r}; use --kind transfer for r <= n < r^2"
        )
    if kind == "transfer" and not r <= n <= r * r:
        raise ConfigError(
            f"the transfer witness needs r <= n <= r^2, got n={n}, r={r}; use delta or hub for "
            "n < r and matrix-unit for n >= r^2"
        )


def witness_rank(kind: str, n: int, r: int, d: int) -> int:
    """Closed form of the odd/even matricization rank of ``witness(kind, n, r, d)``.

    Parameters
    ----------
    kind
        One of :data:`WITNESS_KINDS`.
    n, r, d
        Mode size, TT rank and (even) order.

    Returns
    -------
    int
        The rank over Q (and over GF(p) for the default prime) of the odd/even
        matricization, proved for every even ``d`` in ``docs/THEORY.md``.
    """
    check_witness_sizes(kind, n, r, d)
    k = d // 2
    if kind == "delta":
        return min(n, r - 1) ** k
    if kind in ("alternating", "hub"):
        return min(n, r) ** k
    if kind == "matrix-unit":
        return r ** (d - 1)
    return r * n ** (k - 1)


def mincut_rank(n: int, r: int, d: int) -> int:
    """The min-cut upper bound on the odd/even rank of a TT of rank ``r``, trimmed bonds.

    ``min(n, r) * min(n, r^2)^(d/2 - 1)`` for even ``d`` (equal to
    :func:`tensorrnn.ranks.mincut_bound` with :func:`tensorrnn.ranks.effective_bonds`,
    which a test checks).
    """
    _positive("n", n)
    _positive("r", r)
    _positive("d", d)
    if d % 2:
        raise ConfigError(f"the odd-even split needs an even d, got d={d}")
    return min(n, r) * min(n, r * r) ** (d // 2 - 1)


def mincut_kind(n: int, r: int) -> str:
    """The witness kind whose rank equals the min-cut for every even d at ``(n, r)``.

    ``"matrix-unit"`` for ``n >= r^2``, ``"delta"`` for ``n < r``, ``"hub"`` for
    ``n = r``, ``"transfer"`` for ``r < n < r^2``.
    """
    _positive("n", n)
    _positive("r", r)
    if n >= r * r:
        return "matrix-unit"
    if n < r:
        return "delta"
    if n == r:
        return "hub"
    return "transfer"


def closed_form_kind(n: int, r: int) -> str | None:
    """Like :func:`mincut_kind`, but ``None`` where the transfer core is not a formula.

    For ``r < n < r^2`` the transfer witness has a closed-form core when ``n`` is in
    :func:`explicit_sizes` ``(r)``; elsewhere its core has a diagonal-shift factor whose
    diagonal is searched (its existence is proved, THEORY.md Theorem 8). ``None`` also for
    ``r > MAX_RECIPE_R``. The proof status of a setting is :func:`proof_basis`.
    """
    kind = mincut_kind(n, r)
    if kind != "transfer":
        return kind
    if r > MAX_RECIPE_R or n not in explicit_sizes(r):
        return None
    return kind


# --------------------------------------------------------------------------- #
# The transfer matrix
# --------------------------------------------------------------------------- #


def transfer_matrix(core: np.ndarray | torch.Tensor) -> np.ndarray:
    """``K[(a, e), (f, b)] = (G[f] G[e])_ab`` of a core ``G`` of shape ``(r, n, r)``.

    ``K`` is ``rn x rn``. For ``r <= n <= r^2`` it is invertible exactly when the
    odd/even rank of ``u^T G[i_1] ... G[i_d] v`` reaches the min-cut ``r n^(d/2-1)`` at
    ``d = 4`` (given ``u``, ``v`` as in the module docstring), and then it does so for
    every even ``d`` (``docs/THEORY.md``, Theorem 2).
    """
    G = core.detach().cpu().numpy() if isinstance(core, torch.Tensor) else np.asarray(core)
    if G.ndim != 3 or G.shape[0] != G.shape[2]:
        raise ConfigError(f"a uniform core has shape (r, n, r), got {tuple(G.shape)}")
    r, n, _ = G.shape
    dtype = object if G.dtype == object else np.int64 if G.dtype.kind in "iub" else G.dtype
    K = np.einsum("afc,ceb->aefb", G.astype(dtype), G.astype(dtype))
    return K.reshape(r * n, n * r)


def _rank_mod(M: np.ndarray, p: int) -> int:
    rows, cols = M.shape
    if rows == 0 or cols == 0:
        return 0
    entries = [int(x) % p for x in np.asarray(M, dtype=object).ravel()]
    return int(flint.nmod_mat(rows, cols, entries, p).rank())


def _check_prime(p: object) -> int:
    if isinstance(p, bool) or not isinstance(p, int) or p < 2 or not flint.fmpz(p).is_prime():
        raise ConfigError(f"modulus {p!r} is not a prime; use a prime such as {WITNESS_PRIME}")
    if p >= 2**31:
        raise ConfigError(f"modulus {p} is too large for int64 contraction; use a prime below 2**31")
    return p


# --------------------------------------------------------------------------- #
# Closed-form families of transfer witnesses
# --------------------------------------------------------------------------- #
#
# A transfer witness only depends on the span V of its letters G[e] (an n-dimensional
# space of r x r matrices). THEORY.md, Lemma 4: K is invertible iff no nonzero
# T in F^r (x) F^r (x) F^r has all (x, y)-slices T[:, :, z] in V and all (y, z)-slices
# T[x, :, :] in the orthogonal complement of V. The families below are the spans for
# which that is proved; the recipe of (n, r) says how to build a basis.


def _partitions(r: int, largest: int | None = None) -> Iterator[tuple[int, ...]]:
    largest = r if largest is None else largest
    if r == 0:
        yield ()
        return
    for part in range(min(r, largest), 0, -1):
        for rest in _partitions(r - part, part):
            yield (part, *rest)


@functools.cache
def _recipes(r: int, shift: bool = True) -> dict[int, tuple]:
    """``n -> recipe`` for every ``0 <= n <= r^2`` with a transfer core of the families.

    With ``shift=False`` only the families of THEORY.md Theorems 3-5 and their products and
    complements (the set S(r) before Theorem 8); with ``shift=True`` also the diagonal-shift
    family ``D P^j`` (Theorem 8), used only where the others give nothing, which makes
    every ``0 <= n <= r^2`` reachable.
    """
    if r > MAX_RECIPE_R:
        raise ConfigError(f"closed-form transfer cores are enumerated up to r={MAX_RECIPE_R}, got r={r}")
    found: dict[int, tuple] = {0: ("zero",), 1: ("identity",), r * r: ("units",)}
    for parts in _partitions(r):
        if len(parts) < 2:
            continue
        edges = (r * r - sum(p * p for p in parts)) // 2
        singles = sum(p == 1 for p in parts)
        for loops in range(singles + 1):
            found.setdefault(edges + loops, ("multipartite", parts, loops))
    if r > 1:
        for inner in sorted(_recipes(r - 1, shift)):
            found.setdefault(r + inner, ("hub", inner))
    for r1 in range(2, r):
        if r % r1 == 0:
            for n1 in sorted(_recipes(r1, shift)):
                for n2 in sorted(_recipes(r // r1, shift)):
                    found.setdefault(n1 * n2, ("kron", r1, n1, r // r1, n2))
    if shift:
        for m in range(2, r + 1):
            found.setdefault(m, ("shift", m))
    for n in sorted(found):
        found.setdefault(r * r - n, ("dual", n))
    return found


SHIFT_TRIES = 200
"""Seeded diagonals tried for the diagonal-shift family before giving up (none has needed more
than a few)."""


@functools.cache
def shift_diagonal(m: int, r: int) -> tuple[int, ...]:
    """Diagonal ``d`` (entries 1..9, seeded search) for which ``span{D P^j : j < m}`` works.

    THEORY.md, Theorem 8: with ``P`` the cyclic shift, ``K`` is invertible iff every
    ``m x m`` Toeplitz matrix ``H_c[f, e] = d[(c + f - e) mod r]`` (``c`` in ``Z_r``) is; each
    determinant is a non-zero polynomial in ``d`` (the monomial ``d_c^m`` occurs once), so a
    generic ``d`` works. The ``r`` determinants are checked here exactly over Z.
    """
    rng = np.random.default_rng(7919 * r + m)
    candidates = [tuple(range(1, r + 1))]
    candidates += [tuple(int(x) for x in rng.integers(1, 10, r)) for _ in range(SHIFT_TRIES)]
    for d in candidates:
        if all(flint.fmpz_mat([[d[(c + f - e) % r] for e in range(m)] for f in range(m)]).det() != 0
               for c in range(r)):  # fmt: skip
            return d
    raise ConfigError(  # pragma: no cover - a generic diagonal works (THEORY.md Theorem 8)
        f"no diagonal found for the shift family m={m}, r={r} in {SHIFT_TRIES} tries"
    )


def explicit_sizes(r: int) -> frozenset[int]:
    """The ``n`` (``0 <= n <= r^2``) reached by the families of THEORY.md Theorems 3-5 with
    products and complements: the set S(r) (before the diagonal-shift family of Theorem 8).

    For ``r <= 4`` and ``r = 6`` every ``n``; the first gaps are ``n = 22, 23`` at
    ``r = 5``, the orthogonal complements of the small sizes ``2 <= n <= r - 2`` that no
    family reaches at prime ``r``. With Theorem 8 every ``n`` has a transfer core
    (:func:`transfer_recipe`).
    """
    return frozenset(_recipes(_positive("r", r), False))


def transfer_recipe(n: int, r: int) -> str | None:
    """How the closed-form transfer core of ``(n, r)`` is built, or ``None`` if none is known."""
    if r > MAX_RECIPE_R:
        return None
    recipe = _recipes(_positive("r", r)).get(n)
    return None if recipe is None else _describe(recipe, r)


def _describe(recipe: tuple, r: int) -> str:
    kind = recipe[0]
    if kind in ("zero", "identity", "units"):
        return {"zero": "empty", "identity": "identity", "units": "matrix units"}[kind]
    if kind == "multipartite":
        parts, loops = recipe[1], recipe[2]
        text = "complete multipartite K_{" + ",".join(map(str, parts)) + "}"
        return text + (f" + {loops} loop{'s' * (loops != 1)}" if loops else "")
    if kind == "hub":
        return f"hub + [{_describe(_recipes(r - 1)[recipe[1]], r - 1)} on r={r - 1}]"
    if kind == "shift":
        return f"diagonal-shift D P^j, j < {recipe[1]}, searched diagonal"
    if kind == "kron":
        _, r1, n1, r2, n2 = recipe
        left = _describe(_recipes(r1)[n1], r1)
        right = _describe(_recipes(r2)[n2], r2)
        return f"[{left} on r={r1}] ⊗ [{right} on r={r2}]"
    return f"complement of [{_describe(_recipes(r)[recipe[1]], r)}]"


def _unit(r: int, x: int, y: int) -> np.ndarray:
    M = np.zeros((r, r), dtype=object)
    M[x, y] = 1
    return M


def _basis(n: int, r: int) -> list[np.ndarray]:
    """Integer ``r x r`` matrices (object dtype) spanning the closed-form ``V`` of ``(n, r)``."""
    recipe = _recipes(r)[n]
    kind = recipe[0]
    if kind == "zero":
        return []
    if kind == "identity":
        return [np.eye(r, dtype=np.int64).astype(object)]
    if kind == "units":
        return [_unit(r, x, y) for x in range(r) for y in range(r)]
    if kind == "multipartite":
        parts, loops = recipe[1], recipe[2]
        label = [k for k, size in enumerate(parts) for _ in range(size)]
        singles = [x for x in range(r) if parts[label[x]] == 1][:loops]
        letters = [_unit(r, x, x) for x in singles]
        letters += [_unit(r, x, y) + _unit(r, y, x)
                    for x in range(r) for y in range(x + 1, r) if label[x] != label[y]]  # fmt: skip
        return letters
    if kind == "shift":
        d = shift_diagonal(recipe[1], r)
        letters = []
        for j in range(recipe[1]):
            M = np.zeros((r, r), dtype=object)
            for i in range(r):
                M[i, (i + j) % r] = d[i]  # (D P^j)[i, i + j] = d_i
            letters.append(M)
        return letters
    if kind == "hub":
        letters = [_unit(r, 0, 0)] + [_unit(r, 0, i) + _unit(r, i, 0) for i in range(1, r)]
        for inner in _basis(recipe[1], r - 1):
            M = np.zeros((r, r), dtype=object)
            M[1:, 1:] = inner
            letters.append(M)
        return letters
    if kind == "kron":
        _, r1, n1, r2, n2 = recipe
        return [np.kron(A, B) for A in _basis(n1, r1) for B in _basis(n2, r2)]
    # The orthogonal complement of V (Frobenius pairing), as an integer basis.
    spanning = _basis(recipe[1], r)
    if not spanning:
        return [_unit(r, x, y) for x in range(r) for y in range(r)]
    rows = flint.fmpz_mat([[int(x) for x in M.ravel()] for M in spanning])
    null, nullity = rows.nullspace()
    letters = []
    for j in range(nullity):
        column = [int(null[i, j]) for i in range(r * r)]
        g = math.gcd(*column) or 1
        letters.append(np.array([c // g for c in column], dtype=object).reshape(r, r))
    return letters


# --------------------------------------------------------------------------- #
# Building the witnesses
# --------------------------------------------------------------------------- #


@dataclass
class UniformWitness:
    """Integer parts of a uniform witness: ``A = u^T G[i_1] ... G[i_d] v``.

    ``core`` is ``(r, n, r)`` with ``core[:, e, :] = G[e]``; ``u``, ``v`` have length
    ``r``; all entries are Python-int-valued (``object`` arrays, unreduced).
    ``construction`` says how the core was found.
    """

    core: np.ndarray
    u: np.ndarray
    v: np.ndarray
    construction: str
    closed_form: bool = True
    """``False`` where the core was found by a search or read from a checked certificate."""


def _stack(letters: Sequence[np.ndarray], n: int, r: int) -> np.ndarray:
    core = np.zeros((r, n, r), dtype=object)
    for e, M in enumerate(letters):
        core[:, e, :] = M
    return core


def _boundary_candidates(r: int, seed: int) -> Iterator[np.ndarray]:
    e0 = np.zeros(r, dtype=object)
    e0[0] = 1
    yield e0
    yield np.ones(r, dtype=object)
    yield np.arange(1, r + 1).astype(object)
    rng = np.random.default_rng(seed)
    for _ in range(SEARCH_TRIES):
        yield rng.integers(-2, 3, r).astype(object)


def _boundaries(core: np.ndarray, p: int, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``u, v`` with ``[u^T G[e]]_e`` and ``[G[e] v]_e`` of rank ``r`` modulo ``p``."""
    r = core.shape[0]
    found = []
    for side in ("u", "v"):
        for vec in _boundary_candidates(r, seed + (side == "v")):
            images = np.einsum("a,aeb->eb", vec, core) if side == "u" else np.einsum("aeb,b->ea", core, vec)
            if _rank_mod(images, p) == r:
                found.append(vec)
                break
        else:
            return None
    return found[0], found[1]


def _transfer_ok(core: np.ndarray, p: int) -> bool:
    r, n, _ = core.shape
    return _rank_mod(transfer_matrix(core), p) == r * n


@functools.lru_cache(maxsize=256)
def _closed_form_core(n: int, r: int, p: int) -> np.ndarray | None:
    """The closed-form transfer core of ``(n, r)`` if there is one and its K is invertible mod ``p``."""
    if r > MAX_RECIPE_R or n not in _recipes(r):
        return None
    core = _stack(_basis(n, r), n, r)
    return core if _transfer_ok(core, p) else None


@functools.lru_cache(maxsize=256)
def _closed_form_boundaries(n: int, r: int, p: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Boundary vectors for the closed-form core, or ``None`` where none exist.

    Some closed-form spans admit no ``u`` at all: for a complete bipartite graph
    ``K_{a,b}`` without loops, ``w = (u_A, -u_B)`` is orthogonal to every ``u^T G[e]``, so
    ``[u^T G[e]]_e`` has rank below ``r`` for every ``u`` (THEORY.md, Theorem 2 remark).
    """
    core = _closed_form_core(n, r, p)
    return None if core is None else _boundaries(core, p, 1_000_003 * r + n)


def free_end_cores(n: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    """First ``(1, n, r)`` and last ``(r, n, 1)`` cores whose ``n x r`` and ``r x n`` matrices
    have rank ``r`` (``g_1[e] = e_e^T``, ``g_d[e] = e_e`` for ``e < r``, zero after); needs
    ``n >= r``.

    ``tt`` and ``tt-shared`` choose their end cores freely, so a middle core with an
    invertible transfer matrix proves the min-cut with these ends whether or not
    boundary vectors ``u, v`` exist for it (THEORY.md, Theorem 2).
    """
    if n < r:
        raise ConfigError(f"free end cores of rank r need n >= r, got n={n}, r={r}")
    first = np.zeros((1, n, r), dtype=object)
    last = np.zeros((r, n, 1), dtype=object)
    for e in range(r):
        first[0, e, e] = 1
        last[e, e, 0] = 1
    return first, last


@functools.lru_cache(maxsize=256)
def _transfer_witness(n: int, r: int, p: int) -> UniformWitness:
    seed = 1_000_003 * r + n
    core = _closed_form_core(n, r, p)
    pair = _closed_form_boundaries(n, r, p)
    if core is not None and pair is not None:
        return UniformWitness(core, *pair, construction=_describe(_recipes(r)[n], r))
    certificate = load_certificate(n, r)
    if certificate is not None and _transfer_ok(certificate.core, p):
        return certificate
    rng = np.random.default_rng(seed)
    for attempt in range(SEARCH_TRIES):
        core = rng.integers(-1, 2, (r, n, r)).astype(object)
        if _transfer_ok(core, p):
            pair = _boundaries(core, p, seed + attempt)
            if pair is not None:
                return UniformWitness(core, *pair, construction=f"search (seed {seed}, try {attempt})",
                                      closed_form=False)  # fmt: skip
    raise ConfigError(  # pragma: no cover - a singular transfer matrix 64 times in a row
        f"no transfer witness found for n={n}, r={r} modulo {p} in {SEARCH_TRIES} tries; use a larger prime"
    )


def uniform_witness(kind: str, n: int, r: int, *, modulus: int = WITNESS_PRIME) -> UniformWitness:
    """The core and boundary vectors of a uniform witness (every kind but ``alternating``).

    Parameters
    ----------
    kind
        ``"delta"``, ``"hub"``, ``"matrix-unit"`` or ``"transfer"``.
    n, r
        Mode size and TT rank, inside the kind's regime.
    modulus
        The prime modulo which the transfer witness's invertibility is checked
        (invertible modulo ``p`` implies invertible over Q).

    Returns
    -------
    UniformWitness
        Unreduced integer parts (``object`` arrays).
    """
    check_witness_sizes(kind, n, r, 2)
    p = _check_prime(modulus)
    if kind == "alternating":
        raise ConfigError(
            "the alternating witness has distinct cores; build it with witness(..., family='tt')"
        )
    if kind == "transfer":
        found = _transfer_witness(n, r, p)  # cached: hand out copies
        return UniformWitness(found.core.copy(), found.u.copy(), found.v.copy(), found.construction,
                              found.closed_form)  # fmt: skip
    core = np.zeros((r, n, r), dtype=object)
    e0 = np.zeros(r, dtype=object)
    e0[0] = 1
    if kind in ("delta", "hub"):
        q = min(n, r - 1)
        for i in range(q):
            core[0, i, i + 1] = 1
            core[i + 1, i, 0] = 1
        if kind == "hub" and n >= r:
            core[0, r - 1, 0] = 1  # the loop: the letter the delta witness leaves at zero
        return UniformWitness(core, e0, e0.copy(), construction=f"{kind} on bond state 0")
    for a in range(r):
        for b in range(r):
            core[a, a * r + b, b] = 1
    ones = np.ones(r, dtype=object)
    return UniformWitness(core, ones, ones.copy(), construction="matrix units E_ab, u = v = 1")


def _uses_free_ends(n: int, r: int, p: int) -> bool:
    """Whether the tt / tt-shared transfer witness is the closed-form middle core with free
    end cores: the closed-form core exists but no boundary vectors ``u, v`` do."""
    return (r < n < r * r and _closed_form_core(n, r, p) is not None
            and _closed_form_boundaries(n, r, p) is None)  # fmt: skip


def witness_construction(kind: str, n: int, r: int, family: str | None = None,
                         *, modulus: int = WITNESS_PRIME) -> str:  # fmt: skip
    """How :func:`witness` builds ``kind`` at ``(n, r)`` in ``family``, in words."""
    if kind == "alternating":
        return "distinct cores, bond ranks r,1,r,1,..."
    family = KINDS[kind].family if family is None else family
    if kind == "transfer" and family != "tt-uniform" and _uses_free_ends(n, r, modulus):
        return f"{_describe(_recipes(r)[n], r)} with free end cores (no u, v exist for this span)"
    return uniform_witness(kind, n, r, modulus=modulus).construction


# --------------------------------------------------------------------------- #
# What proves the generic rank of a setting (closed form, argument, checked core)
# --------------------------------------------------------------------------- #

BASIS_CLOSED_FORM = "closed form"
CORE_SHIFT = "diagonal-shift core with a searched diagonal"
CORE_EXISTENCE = "Theorem 8, existence"
ENDS_FREE = "free end cores"
ENDS_OPEN_SETS = "open-set argument"
CHECK_LIMIT = 1200
"""Largest ``r n`` for which :func:`proof_basis` builds the transfer core and looks for its
boundary vectors (an ``rn x rn`` exact rank); beyond it the label is Theorem 8's existence."""


def proof_basis(n: int, r: int, family: str, *, modulus: int = WITNESS_PRIME) -> tuple[str, str]:
    """Why the generic odd/even rank of ``family`` at ``(n, r)`` is the min-cut for every even d.

    Every ``(n, r)`` is proved (THEORY.md: Proposition 3, Theorems 1, 3 and Corollary 9, which
    rests on Theorem 8); what differs is how explicit the witness is. Returns
    ``(witness kind, basis)``: ``BASIS_CLOSED_FORM`` for an explicit witness (``delta``,
    ``hub``, ``matrix-unit``, or a ``transfer`` core of Theorems 3-5 with boundary vectors
    found), otherwise a comma-separated description of the core and of the ends:

    * core: ``"closed-form core"``; :data:`CORE_SHIFT` (a diagonal-shift factor whose
      diagonal is found by a seeded search and checked exactly; the existence of a working
      diagonal is proved, Theorem 8); :data:`CORE_EXISTENCE` (``r > MAX_RECIPE_R`` or
      ``rn > CHECK_LIMIT``: no core is built here);
    * ends: :data:`ENDS_FREE` (``tt``, ``tt-shared``: no ``u, v`` were found for this core, the
      free end cores of :func:`free_end_cores` replace them), :data:`ENDS_OPEN_SETS`
      (``tt-uniform`` then, or with :data:`CORE_EXISTENCE`: Corollary of §5).
    """
    kind = mincut_kind(n, r)
    if kind != "transfer":
        return kind, BASIS_CLOSED_FORM
    if r > MAX_RECIPE_R or r * n > CHECK_LIMIT:
        return kind, f"{CORE_EXISTENCE}, {ENDS_OPEN_SETS if family == 'tt-uniform' else ENDS_FREE}"
    core = CORE_SHIFT if "diagonal-shift" in _describe(_recipes(r)[n], r) else "closed-form core"
    if _closed_form_core(n, r, modulus) is None:  # pragma: no cover - only for an unlucky prime
        return kind, f"{CORE_EXISTENCE}, {ENDS_OPEN_SETS if family == 'tt-uniform' else ENDS_FREE}"
    if _closed_form_boundaries(n, r, modulus) is not None:
        return kind, BASIS_CLOSED_FORM if core == "closed-form core" else core
    return kind, f"{core}, {ENDS_OPEN_SETS if family == 'tt-uniform' else ENDS_FREE}"


# --------------------------------------------------------------------------- #
# Certificates: checked transfer cores where no closed form is known
# --------------------------------------------------------------------------- #

CERTIFICATE_DIR = Path(__file__).resolve().parents[2] / "docs" / "results" / "certificates"
"""Where the checked transfer cores live (a source checkout's ``docs/results/certificates``;
an installed copy without it has no certificates, and those sizes read as not proved)."""

CERTIFICATE_FORMAT = "tensorrnn transfer certificate 1"
_SIGNS = {"-": -1, "0": 0, "+": 1}


def certificate_path(n: int, r: int, folder: Path | None = None) -> Path:
    """``transfer_r05_n022.json`` in ``folder`` (default :data:`CERTIFICATE_DIR`)."""
    return (CERTIFICATE_DIR if folder is None else Path(folder)) / f"transfer_r{r:02d}_n{n:03d}.json"


def _decode_core(text: str, n: int, r: int) -> np.ndarray:
    if len(text) != r * n * r or set(text) - set(_SIGNS):
        raise ConfigError(f"certificate core for n={n}, r={r} is not {r * n * r} characters of '-0+'; "
                          "regenerate it with tensorrnn.witness.write_certificates")  # fmt: skip
    return np.array([_SIGNS[c] for c in text], dtype=object).reshape(r, n, r)


@functools.lru_cache(maxsize=512)
def load_certificate(n: int, r: int, folder: str | None = None) -> UniformWitness | None:
    """The stored checked core of ``(n, r)`` as a witness, or ``None`` if there is no file.

    The file is only read here; :func:`check_certificate` re-checks its determinant.
    """
    path = certificate_path(n, r, None if folder is None else Path(folder))
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != CERTIFICATE_FORMAT or (data["n"], data["r"]) != (n, r):
        raise ConfigError(f"{path} is not a transfer certificate for n={n}, r={r}; delete or regenerate it")
    core = _decode_core(data["core"], n, r)
    u = np.array(data["u"], dtype=object)
    v = np.array(data["v"], dtype=object)
    return UniformWitness(core, u, v, construction=f"checked core ({path.name})", closed_form=False)


def transfer_determinant(core: np.ndarray, p: int) -> int:
    """``det K mod p`` of the transfer matrix (rows ``(a, e)``, columns ``(f, b)``, C order)."""
    K = transfer_matrix(np.asarray(core, dtype=np.int64))
    size = K.shape[0]
    entries = [int(x) % p for x in K.ravel()]
    return int(flint.nmod_mat(size, size, entries, p).det())


def make_certificate(n: int, r: int, *, modulus: int = WITNESS_PRIME, tries: int = SEARCH_TRIES,
                     rank_mod_p: Callable[[np.ndarray, int], int] | None = None) -> dict:  # fmt: skip
    """Search seeded ``{-1, 0, 1}`` cores until one has ``det K != 0 (mod p)``; return its record.

    The search is the one :func:`uniform_witness` runs (seed ``1_000_003 r + n``); the
    record stores the core itself, so checking it needs no random generator.
    ``rank_mod_p`` (for example :func:`tensorrnn.ranks.modp.rank_mod_p`, this layer may not
    import it) replaces python-flint's determinant, which takes minutes from ``rn`` ≈ 4000 on,
    by an exact rank: the record then holds ``rank_K_mod_p = rn`` instead of the determinant.
    """
    check_witness_sizes("transfer", n, r, 2)
    p = _check_prime(modulus)
    seed = 1_000_003 * r + n
    rng = np.random.default_rng(seed)
    for attempt in range(tries):
        core = rng.integers(-1, 2, (r, n, r))
        if rank_mod_p is None:
            det = transfer_determinant(core, p)
            full = det != 0
            claim = {"det_K_mod_p": det}
            said = f"has det = {det} mod {p}, so det K != 0 over Q"
        else:
            rank = int(rank_mod_p(transfer_matrix(core) % p, p))
            full = rank == r * n
            claim = {"rank_K_mod_p": rank}
            said = f"has rank {rank} = rn modulo {p}, so K is invertible over Q"
        if not full:
            continue
        pair = _boundaries(core.astype(object), p, seed + attempt)
        if pair is None:
            continue
        u, v = pair
        return {
            "format": CERTIFICATE_FORMAT, "n": n, "r": r, "prime": p, **claim,
            "seed": seed, "try": attempt,
            "statement": (f"K[(a, e), (f, b)] = (G[f] G[e])_ab, rows a*n+e, columns f*r+b, "
                          f"{said}: by THEORY.md Theorem 2 the "
                          f"generic odd/even rank of tt, tt-shared and tt-uniform at n={n}, r={r} is "
                          f"r*n^(d/2-1) for every even d"),
            "core_layout": "G[a, e, b] = core[(a*n + e)*r + b]; '-', '0', '+' are -1, 0, 1",
            "core": "".join("-0+"[int(x) + 1] for x in core.ravel()),
            "u": [int(x) for x in u], "v": [int(x) for x in v],
        }  # fmt: skip
    raise ConfigError(f"no core with invertible K found for n={n}, r={r} in {tries} tries; raise tries")


def gap_sizes(r: int) -> list[int]:
    """The ``n`` with ``r <= n <= r^2`` outside :func:`explicit_sizes` ``(r)`` (no closed form)."""
    return [n for n in range(r, r * r + 1) if n not in explicit_sizes(r)]


def write_certificates(max_r: int, folder: Path | None = None, *, quiet: bool = False,
                       rs: Sequence[int] | None = None, max_n: int | None = None,
                       rank_mod_p: Callable[[np.ndarray, int], int] | None = None) -> list[Path]:  # fmt: skip
    """Write a certificate for every gap ``(n, r)``, ``r <= max_r`` (or ``r in rs``; ``n <= max_n``
    if given); existing files are kept. ``rank_mod_p``: see :func:`make_certificate`."""
    from tensorrnn.atomic import atomic_write_json

    out = CERTIFICATE_DIR if folder is None else Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for r in range(1, _positive("max_r", max_r) + 1) if rs is None else rs:
        for n in gap_sizes(r):
            path = certificate_path(n, r, out)
            if max_n is not None and n > max_n:
                continue
            if not path.exists():
                atomic_write_json(path, make_certificate(n, r, rank_mod_p=rank_mod_p))
                if not quiet:
                    print(f"wrote {path}", flush=True)
            written.append(path)
    return written


def _alternating_cores(n: int, r: int, d: int) -> list[np.ndarray]:
    q = min(n, r)
    cores = []
    for k in range(d):
        left = 1 if k == 0 else r
        right = 1 if k == d - 1 else r
        core = np.zeros((left, n, right), dtype=object)
        for i in range(q):
            if k % 2 == 0:
                core[0, i, i] = 1  # open a pair: closed state 0 -> state i
            else:
                core[i, i, 0] = 1  # close it: state i -> closed state 0
        cores.append(core)
    return cores


def _to_torch(array: np.ndarray, modulus: int | None) -> torch.Tensor:
    if modulus is None:
        values = [float(x) for x in array.ravel()]
        return torch.tensor(values, dtype=torch.float64).reshape(array.shape)
    values = [int(x) % modulus for x in array.ravel()]
    return torch.tensor(values, dtype=torch.int64).reshape(array.shape)


def witness(
    kind: str,
    n: int,
    r: int,
    d: int,
    *,
    family: str | None = None,
    modulus: int | None = WITNESS_PRIME,
) -> TensorFormat:
    """Build a witness as integer cores in the rank laboratory's formats.

    Parameters
    ----------
    kind
        One of :data:`WITNESS_KINDS` (see the module docstring).
    n, r, d
        Mode size, TT rank and even order.
    family
        ``"tt-uniform"``, ``"tt-shared"`` or ``"tt"``; default the kind's own
        (``tt`` for ``alternating``, ``tt-uniform`` for the others). A uniform witness
        is also a shared and a distinct-core tensor (first core ``u^T G``, last ``G v``).
    modulus
        A prime ``p``: ``int64`` cores reduced modulo ``p`` (for exact ranks); ``None``:
        the same integers as ``float64``.

    Returns
    -------
    TensorFormat
        Its odd/even matricization has rank :func:`witness_rank` ``(kind, n, r, d)``.

    Raises
    ------
    ConfigError
        Unknown kind or family, sizes outside the kind's regime, odd ``d``, or a
        modulus that is not a prime.
    """
    check_witness_sizes(kind, n, r, d)
    info = KINDS[kind]
    family = info.family if family is None else family
    if family not in info.families:
        raise ConfigError(
            f"the {kind} witness exists as {', '.join(info.families)}, not as {family!r}"
        )
    p = None if modulus is None else _check_prime(modulus)
    if kind == "alternating":
        return TTTensor([_to_torch(c, p) for c in _alternating_cores(n, r, d)], modulus=p)
    prime = p if p is not None else WITNESS_PRIME
    if kind == "transfer" and family != "tt-uniform" and _uses_free_ends(n, r, prime):
        first, last = free_end_cores(n, r)
        middle, first, last = (_to_torch(x, p) for x in (_closed_form_core(n, r, prime), first, last))
        if family == "tt-shared":
            return TTSharedTensor(first, middle, last, d, modulus=p)
        return TTTensor([first] + [middle] * (d - 2) + [last], modulus=p)
    parts = uniform_witness(kind, n, r, modulus=prime)
    core, u, v = (_to_torch(x, p) for x in (parts.core, parts.u, parts.v))
    uniform = TTUniformTensor(core, u, v, d, modulus=p)
    if family == "tt-uniform":
        return uniform
    cores = uniform.tt_cores()
    if family == "tt-shared":
        return TTSharedTensor(cores[0], core, cores[-1], d, modulus=p)
    return TTTensor(cores, modulus=p)
