"""Bounds on matricization and CP ranks: the theorem's lower bounds, the min-cut upper bound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

THEOREM_BOUND_OF_FAMILY = {"tt": "q_r", "tt-shared": "q_rm1", "tt-uniform": "q_rm1"}
"""Which lower bound the literature proves for each family (cp has none).

``q_r``: Khrulkov, Novikov, Oseledets 2018, distinct cores, ``q = min(n, r)``.
``q_rm1``: the thesis, one shared core (and, by the same witness, every core
equal), ``q = min(n, r - 1)``.
"""


def theorem_bound(n: int, r: int, d: int, *, shared: bool) -> int | None:
    """``q**(d/2)`` with ``q = min(n, r - 1)`` if ``shared`` else ``min(n, r)``.

    The bound on the CP rank (and on the odd/even matricization rank) of almost
    every tensor of the family; ``None`` for odd ``d``, where no bound is claimed.
    """
    if d % 2:
        return None
    q = min(n, r - 1) if shared else min(n, r)
    return max(q, 0) ** (d // 2)


def effective_bonds(n: int, r: int, d: int) -> list[int]:
    """Bond sizes of a TT of rank ``r``, trimmed to what a TT can use.

    Bond ``k`` (between modes ``k`` and ``k + 1``) never needs more than
    ``min(r, n**k, n**(d-k))``: an equivalent TT with that bond exists, so the
    trimmed sizes give a valid, tighter min-cut.
    """
    return [min(r, n**k, n ** (d - k)) for k in range(1, d)]


def mincut_bound(mode_sizes: Sequence[int], bonds: Sequence[int], row_modes: Sequence[int]) -> int:
    """Minimum cut of a chain tensor network separating row legs from column legs.

    Every matricization rank is at most the product of the sizes of the edges
    of any cut; this returns the smallest such product. Each core is put on the
    row side or the column side; a mode leg whose core sits on the other side is
    cut (costs its mode size), and so is a bond between cores on different sides
    (costs the bond size). Dynamic programming along the chain, exact.

    Parameters
    ----------
    mode_sizes
        ``n_1 .. n_d``.
    bonds
        ``d - 1`` bond sizes between consecutive cores.
    row_modes
        0-based row modes.
    """
    rows = set(row_modes)
    d = len(mode_sizes)
    if len(bonds) != d - 1:
        raise ValueError(f"{d} modes need {d - 1} bonds, got {len(bonds)}")

    def leg_cost(k: int, side_is_row: bool) -> int:
        return 1 if (k in rows) == side_is_row else mode_sizes[k]

    # best[s]: least product over the first k cores with core k on side s.
    best = {s: leg_cost(0, s) for s in (True, False)}
    for k in range(1, d):
        best = {
            s: leg_cost(k, s) * min(best[s], best[not s] * bonds[k - 1]) for s in (True, False)
        }
    return min(best.values())


def cp_expansion_bound(family: str, n: int, r: int, d: int) -> tuple[int, str] | None:
    """An upper bound on the CP rank of *every* tensor of the family, and where it comes from.

    * ``tt``, ``tt-shared``, ``tt-uniform``: expanding the chain's bond sums gives one
      rank-one term per choice of the ``d - 1`` bond indices, ``prod(effective_bonds)``
      (``r^(d-1)`` when ``n >= r``; THEORY.md, Theorem 6); with ``u, v`` folded into the end
      cores the uniform chain is the same sum.
    * periodic chains (trace boundary): ``r^d`` terms, one per choice of the ``d`` ring bonds.
    * ``cp``: its rank ``r``.
    * every tensor of ``(F^n)^(⊗d)``: ``n^(d-1)`` (sum over all but one mode of slices).

    Returns ``(bound, "expansion")``, ``(bound, "n^(d-1)")``, or ``(r, "cp rank")``;
    ``None`` for an unknown family.
    """
    if family == "cp":
        return r, "cp rank"
    if family in ("tt", "tt-shared", "tt-uniform"):
        terms = 1
        for bond in effective_bonds(n, r, d):
            terms *= bond
    elif family in ("tt-periodic", "tt-periodic-shared"):
        terms = r**d
    else:
        return None
    trivial = n ** (d - 1)
    return (terms, "expansion") if terms <= trivial else (trivial, "n^(d-1)")


def ring_mincut_bound(mode_sizes: Sequence[int], bond: int, row_modes: Sequence[int]) -> int:
    """Minimum cut of a *ring* of ``d`` cores (periodic chain, every bond of size ``bond``).

    Like :func:`mincut_bound`, with one more bond, between the last core and the first:
    each core goes to the row or the column side; a leg on the other side costs its mode
    size, a bond between sides costs ``bond``. The side of the first core is fixed in
    turn, the chain DP runs, and the closing bond is charged at the end. Exact.
    """
    rows = set(row_modes)
    d = len(mode_sizes)

    def leg_cost(k: int, side_is_row: bool) -> int:
        return 1 if (k in rows) == side_is_row else mode_sizes[k]

    best_total = None
    for first in (True, False):
        best = {first: leg_cost(0, first), not first: None}
        for k in range(1, d):
            nxt = {}
            for s in (True, False):
                options = [v * (1 if t == s else bond) for t, v in best.items() if v is not None]
                nxt[s] = leg_cost(k, s) * min(options)
            best = nxt
        for s, v in best.items():
            total = v * (1 if s == first else bond) if d > 1 else v
            best_total = total if best_total is None else min(best_total, total)
    return best_total


def family_mincut(family: str, n: int, r: int, d: int, row_modes: Sequence[int]) -> int:
    """The min-cut upper bound on a matricization rank of ``family``: the ring for periodic
    chains (untrimmed bonds ``r``), the trimmed chain otherwise (cp as a chain too)."""
    if family in ("tt-periodic", "tt-periodic-shared"):
        return ring_mincut_bound([n] * d, r, row_modes)
    return mincut_bound([n] * d, effective_bonds(n, r, d), row_modes)


# --------------------------------------------------------------------------- #
# Witnesses: lower bounds proved for every even d (docs/THEORY.md)
# --------------------------------------------------------------------------- #

STATUS_PROVED = "proved for all d"
STATUS_CERTIFIED = "certified"
STATUS_OPEN = "open"
STATUSES = (STATUS_PROVED, STATUS_CERTIFIED, STATUS_OPEN)
WITNESS_FAMILIES = ("tt", "tt-shared", "tt-uniform")
"""Families a uniform witness belongs to: tt-uniform is inside tt-shared, inside tt."""


def proof_status(
    family: str, n: int, r: int, d: int, split: str, certified: int | None, mincut: int
) -> tuple[str, str | None]:
    """Whether the generic rank of one setting is proved, certified or open.

    Returns ``(status, witness label)``:

    * ``STATUS_PROVED``: odd-even split, even ``d``, family tt, tt-shared or tt-uniform: the
      generic odd/even rank is the min-cut for every even ``d`` and every ``(n, r)``
      (docs/THEORY.md). The label is the witness kind, followed by how explicit the witness
      is where it is not a closed-form one (:func:`tensorrnn.witness.proof_basis`).
    * ``STATUS_CERTIFIED``: any other setting whose certified rank equals the min-cut.
    * ``STATUS_OPEN``: neither.
    """
    from tensorrnn.witness import BASIS_CLOSED_FORM, proof_basis, witness_rank

    if split == "odd-even" and family in WITNESS_FAMILIES and d % 2 == 0:
        kind, basis = proof_basis(n, r, family)
        if witness_rank(kind, n, r, d) == mincut:
            return STATUS_PROVED, kind if basis == BASIS_CLOSED_FORM else f"{kind}, {basis}"
    if certified is not None and certified == mincut:
        return STATUS_CERTIFIED, None
    return STATUS_OPEN, None


@dataclass(frozen=True)
class WitnessCheck:
    """One witness's exact odd/even rank beside its closed form and the min-cut."""

    kind: str
    family: str
    n: int
    r: int
    d: int
    construction: str
    rows: int
    cols: int
    exact: int
    closed_form: int
    mincut: int
    prime: int
    engine: str
    seconds: float

    @property
    def agrees(self) -> bool:
        """The exact rank equals the closed form (anything else is a bug)."""
        return self.exact == self.closed_form

    @property
    def meets_mincut(self) -> bool:
        """The closed form equals the min-cut: the generic rank is determined for every d."""
        return self.closed_form == self.mincut


def check_witness(
    kind: str,
    n: int,
    r: int,
    d: int,
    *,
    family: str | None = None,
    prime: int | None = None,
    engine: str = "blas",
    max_bytes: int | None = None,
) -> WitnessCheck:
    """Build a witness, take its exact odd/even rank over GF(p), and set it beside its
    closed form and the min-cut upper bound.

    Parameters
    ----------
    kind, n, r, d, family
        As in :func:`tensorrnn.witness.witness`.
    prime
        The modulus of the exact rank (default :data:`tensorrnn.ranks.modp.DEFAULT_PRIME`).
    engine
        ``"blas"`` or ``"flint"`` (:func:`tensorrnn.ranks.exact_rank`).
    max_bytes
        Refuse a matricization larger than this before building it.
    """
    import time

    from tensorrnn.formats import check_fits, default_memory_limit, parse_split
    from tensorrnn.ranks.modp import DEFAULT_PRIME, check_prime, exact_rank
    from tensorrnn.witness import witness, witness_construction, witness_rank

    closed = witness_rank(kind, n, r, d)  # validates kind and sizes first
    p = check_prime(DEFAULT_PRIME if prime is None else prime, engine)
    side = n ** (d // 2)
    limit = default_memory_limit() if max_bytes is None else max_bytes
    check_fits(2 * side * side, 8, limit, f"the {side}x{side} matricization of the {kind} witness")
    start = time.perf_counter()
    tensor = witness(kind, n, r, d, family=family, modulus=p)
    construction = witness_construction(kind, n, r, family, modulus=p)
    matrix = tensor.matricize("odd-even", max_bytes=limit)
    exact = exact_rank(matrix, p, engine=engine)
    cut = mincut_bound([n] * d, effective_bonds(n, r, d), parse_split("odd-even", d))
    return WitnessCheck(
        kind=kind, family=tensor.family if family is None else family, n=n, r=r, d=d,
        construction=construction, rows=int(matrix.shape[0]), cols=int(matrix.shape[1]),
        exact=exact, closed_form=closed, mincut=cut, prime=p, engine=engine,
        seconds=time.perf_counter() - start,
    )  # fmt: skip
