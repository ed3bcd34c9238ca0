"""Generalized RNNs: ReLU, max and softplus networks as generalized tensor networks.

After Khrulkov, Hrinchuk and Oseledets, *Generalized tensor models for recurrent
neural networks*, ICLR 2019 (arXiv 1901.10801). The multiplicative networks of
:mod:`tensorrnn.networks` multiply the input into the hidden state; the networks
used in practice apply a rectifier. Both are one formula with a binary operator
``ξ`` in place of the product.

One module per concept, each importing only those above it:

* :mod:`~tensorrnn.generalized.operators`: the operators ξ (:data:`XIS`);
* :mod:`~tensorrnn.generalized.grids`: grid tensors, their exact ranks, the
  shallow-width bound, rank-1 shallow equivalents, random instances and one
  measured instance;
* :mod:`~tensorrnn.generalized.networks`: :class:`GeneralizedTTNet`,
  :class:`GeneralizedCPNet` and :func:`make_generalized`;
* :mod:`~tensorrnn.generalized.lab`: the ``generalized-ranks`` sweep and its files
  (on :mod:`tensorrnn.labkit`).

The public names of all four are importable from here.
"""

from tensorrnn.generalized.grids import (
    HOMOGENEOUS,
    MAX_GRID,
    MAX_SIDE,
    POLYNOMIAL,
    WEIGHTS_HELP,
    GridSetting,
    balance_factor,
    check_setting,
    cp_grid,
    measure_instance,
    odd_even,
    parse_weights,
    random_instance,
    rank_one_factors,
    rank_one_relu_instance,
    shallow_rank_one,
    tt_grid,
    tt_grid_mod,
)
from tensorrnn.generalized.lab import (
    COLUMNS,
    CSV_FILE,
    FIGURE_FILE,
    METHODS,
    TABLE_FILE,
    LabSettings,
    check_output,
    make_settings,
    plot_distributions,
    read_lab_rows,
    run_generalized_ranks,
    summary_table,
)
from tensorrnn.generalized.networks import (
    FAMILIES,
    GeneralizedCPNet,
    GeneralizedTTNet,
    make_generalized,
    parse_model,
)
from tensorrnn.generalized.operators import XIS, Xi, get_xi

__all__ = [
    "COLUMNS", "CSV_FILE", "FAMILIES", "FIGURE_FILE", "HOMOGENEOUS", "MAX_GRID", "MAX_SIDE", "METHODS",
    "POLYNOMIAL", "TABLE_FILE", "WEIGHTS_HELP", "XIS", "GeneralizedCPNet", "GeneralizedTTNet", "GridSetting",
    "LabSettings", "Xi", "balance_factor", "check_output", "check_setting", "cp_grid", "get_xi",
    "make_generalized", "make_settings", "measure_instance", "odd_even", "parse_model", "parse_weights",
    "plot_distributions", "random_instance", "rank_one_factors", "rank_one_relu_instance", "read_lab_rows",
    "run_generalized_ranks", "shallow_rank_one", "summary_table", "tt_grid", "tt_grid_mod",
]  # fmt: skip
