"""Ranks of matricizations: numerical (SVD), exact over GF(p), and bounds.

* :func:`numerical_rank`: float64 SVD rank with its singular-value gap (evidence).
* :func:`exact_rank`: rank over GF(p), a certified lower bound on the rank over Q
  (engines ``"blas"``, the default, and ``"flint"``, the reference).
* :func:`theorem_bound`, :func:`mincut_bound`: lower and upper bounds.
* :func:`fit_cp`, :func:`cp_upper_bound`: exact CP fits of tiny tensors.
* :mod:`tensorrnn.ranks.lab`: the sweep behind ``tensorrnn ranks``.
"""

from tensorrnn.ranks.bounds import effective_bonds, mincut_bound, theorem_bound
from tensorrnn.ranks.cpfit import CPFit, cp_upper_bound, fit_cp
from tensorrnn.ranks.modp import DEFAULT_PRIME, exact_rank, rank_mod_p
from tensorrnn.ranks.numerical import NumericalRank, numerical_rank

__all__ = [
    "CPFit",
    "DEFAULT_PRIME",
    "NumericalRank",
    "cp_upper_bound",
    "effective_bonds",
    "exact_rank",
    "fit_cp",
    "mincut_bound",
    "numerical_rank",
    "rank_mod_p",
    "theorem_bound",
]
