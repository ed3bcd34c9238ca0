"""Bounds on matricization and CP ranks: the theorem's lower bounds, the min-cut upper bound."""

from __future__ import annotations

from collections.abc import Sequence

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
