"""Synthetic classification task labelled by a random tensor-network *teacher*.

Inputs are sequences of ``d`` pixels, each one of ``n`` grey levels
``0, 1/(n-1), …, 1``. The teacher reads the one-hot feature sequence
``phi[b, t] = e_{level(b, t)}`` (shape ``(B, d, n)``), so its score for class
``y`` is exactly one entry of its coefficient tensor:
``h_y(X) = A^y[level_1, …, level_d]``. The label is

    y(X) = argmax_y ( h_y(X) − o_y )

with per-class offsets ``o`` (a bias of the teacher's output layer) chosen so
that every class wins the same share of a reference sample of 4096 random inputs
drawn with the teacher's seed (:func:`balance_offsets`). Without them a random
teacher gives wildly unequal classes (a CP teacher of rank 4 with 10 classes
left some classes empty in our trials); with them each class gets about 1/C of
fresh samples too (±10% at the default sizes). The offsets are part of the
teacher: they do not depend on the sample seed.

Teacher parameters use the layout of :mod:`tensorrnn.networks` (``CPNet``:
``factors (d, n, R)``, ``weights (R, C)``; ``TTNet``: ``first (n, r)``,
``middle (d−2 or 1, r, n, r)``, ``last (r, n, C)``), so a trained network's
parameters can be passed to :func:`teacher_scores` as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from tensorrnn.errors import ConfigError

__all__ = [
    "TEACHER_FAMILIES",
    "random_teacher",
    "teacher_scores",
    "balance_offsets",
    "synthetic_tt",
]

TEACHER_FAMILIES = ("cp", "tt", "tt-shared")
_REFERENCE_SIZE = 4096


def _check_family(family: str) -> str:
    if family not in TEACHER_FAMILIES:
        raise ConfigError(
            f"teacher family {family!r} is unknown; choose one of {', '.join(TEACHER_FAMILIES)}"
        )
    return family


def random_teacher(
    family: str, d: int, n: int, rank: int, n_classes: int, *, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Draw a random teacher network (float64 parameters).

    Parameters
    ----------
    family
        ``"cp"``, ``"tt"`` or ``"tt-shared"``.
    d, n
        Sequence length and feature size (``d >= 2`` for the TT families).
    rank
        CP rank ``R`` or TT bond dimension ``r``.
    n_classes
        Number of classes ``C``.
    seed
        Seed of the teacher's random generator.

    Returns
    -------
    dict
        ``cp``: ``factors (d, n, R) ~ N(0, 1)``, ``weights (R, C) ~ N(0, 1/R)``.
        ``tt`` / ``tt-shared``: ``first (n, r) ~ N(0, 1)``, ``middle`` of shape
        ``(d−2, r, n, r)`` / ``(1, r, n, r)`` ``~ N(0, 1/r)``, ``last (r, n, C) ~
        N(0, 1/r)``. The variances keep one-hot chains at unit scale on average.

    Raises
    ------
    ConfigError
        If a size is out of range or the family unknown.
    """
    _check_family(family)
    limits = (("d", d, 2), ("n", n, 2), ("rank", rank, 1), ("n_classes", n_classes, 2))
    for label, value, low in limits:
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{label}={value!r} must be an integer >= {low}")
    gen = torch.Generator().manual_seed(int(seed))

    def normal(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64) * std

    if family == "cp":
        return {
            "factors": normal(d, n, rank, std=1.0),
            "weights": normal(rank, n_classes, std=1 / math.sqrt(rank)),
        }
    middles = 1 if family == "tt-shared" else d - 2
    return {
        "first": normal(n, rank, std=1.0),
        "middle": normal(middles, rank, n, rank, std=1 / math.sqrt(rank)),
        "last": normal(rank, n, n_classes, std=1 / math.sqrt(rank)),
    }


def teacher_scores(family: str, phi: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Scores ``h_y = Σ A^y[i_1..i_d] phi_1[i_1] ⋯ phi_d[i_d]`` of a CP or TT teacher.

    Parameters
    ----------
    family
        ``"cp"``, ``"tt"`` or ``"tt-shared"``.
    phi
        Feature sequences of shape ``(B, d, n)``.
    params
        Parameters as returned by :func:`random_teacher` (or a network's
        ``named_parameters()`` of the same layout).

    Returns
    -------
    torch.Tensor
        Scores of shape ``(B, C)``, exact (no normalisation), in ``phi``'s dtype.
    """
    _check_family(family)
    if phi.ndim != 3:
        raise ConfigError(f"phi must have shape (B, d, n), got {tuple(phi.shape)}")
    from tensorrnn.networks import make_network

    # The teacher is a network of the student's own kind: its exact scores are
    # the network's, so teacher and students share one contraction.
    rank = params["weights"].shape[0] if family == "cp" else params["first"].shape[1]
    n_classes = params["weights" if family == "cp" else "last"].shape[-1]
    net = make_network(family, phi.shape[1], phi.shape[2], rank, n_classes).to(phi)
    net.load_state_dict({k: v.to(phi) for k, v in params.items()})
    with torch.no_grad():
        return net.scores(phi)


def balance_offsets(scores: torch.Tensor, sweeps: int = 20) -> torch.Tensor:
    """Offsets ``o`` such that ``argmax(scores - o)`` splits the rows evenly over the classes.

    Cyclic coordinate updates, each exact in its coordinate: class ``y`` wins row
    ``i`` iff ``scores[i, y] - o_y > max_{k≠y} (scores[i, k] - o_k)``, so setting
    ``o_y`` to the ``1 − 1/C`` quantile of ``scores[:, y] − max_{k≠y}(…)`` gives it
    exactly a ``1/C`` share while the others are held fixed. This is coordinate
    descent on the convex dual of the balanced assignment; 20 sweeps bring every
    class within a row or two of ``N/C`` in practice.

    Parameters
    ----------
    scores
        Shape ``(N, C)``.
    sweeps
        Passes over the classes.

    Returns
    -------
    torch.Tensor
        Offsets of shape ``(C,)``.
    """
    # numpy: 200 small quantiles are several times faster here than in torch.
    values = scores.detach().cpu().numpy()
    n_classes = values.shape[1]
    offsets = np.zeros(n_classes)
    for _ in range(sweeps):
        for y in range(n_classes):
            rivals = values - offsets
            rivals[:, y] = -np.inf
            offsets[y] = np.quantile(values[:, y] - rivals.max(axis=1), 1 - 1 / n_classes)
    return torch.from_numpy(offsets).to(scores.dtype)


def _one_hot(levels: np.ndarray, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.from_numpy(levels), n).to(torch.float64)


def synthetic_tt(
    n_samples: int,
    *,
    family: str = "tt-shared",
    d: int = 16,
    n: int = 4,
    rank: int = 4,
    n_classes: int = 10,
    balance: bool = True,
    teacher_seed: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample inputs and label them by a random teacher.

    Parameters
    ----------
    n_samples
        Number of inputs.
    family, d, n, rank, n_classes
        The teacher (see :func:`random_teacher`); ``n`` is also the number of grey levels.
    balance
        Subtract per-class offsets (:func:`balance_offsets` on the reference
        sample) before the argmax, so the classes are about equally frequent.
    teacher_seed
        Seed of the teacher and of its reference sample.
    seed
        Seed of the inputs.

    Returns
    -------
    (images, labels, teacher)
        ``float32`` images ``(N, 1, 1, d)`` with values in ``{0, 1/(n-1), …, 1}``;
        ``int64`` labels; ``teacher`` = ``{"family", "params", "offsets", "n"}`` where
        ``labels == argmax(teacher_scores(family, one_hot(levels), params) - offsets)``.
    """
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ConfigError(f"n_samples={n_samples!r} must be a positive integer")
    params = random_teacher(family, d, n, rank, n_classes, seed=teacher_seed)
    offsets = torch.zeros(n_classes, dtype=torch.float64)
    if balance:
        reference = np.random.default_rng([teacher_seed, 1]).integers(0, n, (_REFERENCE_SIZE, d))
        offsets = balance_offsets(teacher_scores(family, _one_hot(reference, n), params))
    levels = np.random.default_rng([seed, 2]).integers(0, n, (n_samples, d))
    scores = torch.cat(
        [
            teacher_scores(family, _one_hot(chunk, n), params)
            for chunk in np.array_split(levels, max(1, n_samples // 8192))
        ]
    )
    labels = (scores - offsets).argmax(dim=1).numpy().astype(np.int64)
    images = (levels / (n - 1)).astype(np.float32).reshape(n_samples, 1, 1, d)
    teacher = {"family": family, "params": params, "offsets": offsets, "n": n}
    return images, labels, teacher
