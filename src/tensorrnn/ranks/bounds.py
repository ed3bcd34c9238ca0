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

    Returns ``(status, witness kind)``:

    * ``STATUS_PROVED``: odd-even split of a tt, tt-shared or tt-uniform family and a
      witness with a closed-form core (:func:`tensorrnn.witness.closed_form_kind`) whose
      closed-form rank equals ``mincut`` at this ``d``: the generic odd/even rank equals
      the min-cut for every even ``d`` (THEORY.md).
    * ``STATUS_CERTIFIED``: the certified rank equals the min-cut, but no all-d proof.
    * ``STATUS_OPEN``: neither.
    """
    from tensorrnn.witness import closed_form_kind, witness_rank

    if split == "odd-even" and family in WITNESS_FAMILIES and d % 2 == 0:
        kind = closed_form_kind(n, r)
        if kind is not None and witness_rank(kind, n, r, d) == mincut:
            return STATUS_PROVED, kind
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
    from tensorrnn.witness import uniform_witness, witness, witness_rank

    closed = witness_rank(kind, n, r, d)  # validates kind and sizes first
    p = check_prime(DEFAULT_PRIME if prime is None else prime, engine)
    side = n ** (d // 2)
    limit = default_memory_limit() if max_bytes is None else max_bytes
    check_fits(2 * side * side, 8, limit, f"the {side}x{side} matricization of the {kind} witness")
    start = time.perf_counter()
    tensor = witness(kind, n, r, d, family=family, modulus=p)
    construction = (
        "distinct cores, bond ranks r,1,r,1,..." if kind == "alternating"
        else uniform_witness(kind, n, r, modulus=p).construction
    )  # fmt: skip
    matrix = tensor.matricize("odd-even", max_bytes=limit)
    exact = exact_rank(matrix, p, engine=engine)
    cut = mincut_bound([n] * d, effective_bonds(n, r, d), parse_split("odd-even", d))
    return WitnessCheck(
        kind=kind, family=tensor.family if family is None else family, n=n, r=r, d=d,
        construction=construction, rows=int(matrix.shape[0]), cols=int(matrix.shape[1]),
        exact=exact, closed_form=closed, mincut=cut, prime=p, engine=engine,
        seconds=time.perf_counter() - start,
    )  # fmt: skip
