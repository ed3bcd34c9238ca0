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

No ties, by construction. A label decided by a 1-ulp difference between two
classes could differ between machines (BLAS kernels, vectorised ``exp``/``log``
and thread counts round differently). So:

* every offset lies strictly inside a gap between the reference sample's
  margins, at its midpoint, never on one (:func:`balance_offsets`);
* the label rule has a margin: an input whose two best adjusted scores
  ``h_y − o_y`` differ by less than the tolerance
  ``tol = margin_rtol · scale`` is dropped and another one drawn in its place.
  ``scale`` is the root-mean-square teacher score on the reference sample and
  ``margin_rtol`` defaults to :data:`MARGIN_RTOL` = 1e-6, about 10^10 times
  float64 rounding of the scores. Every kept input has a top-two margin
  ``>= tol``, so its label is the same on every machine. The tolerance and
  the number of inputs dropped are returned (and land in
  ``DatasetInfo.extra``).

Scores are computed in float64 throughout.

Teacher parameters use the layout of :mod:`tensorrnn.networks` (``CPNet``:
``factors (d, n, R)``, ``weights (R, C)``; ``TTNet``: ``first (n, r)``,
``middle (d−2 or 1, r, n, r)``, ``last (r, n, C)``), so a trained network's
parameters can be passed to :func:`teacher_scores` as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tensorrnn.data.spec import Found, Raw, Spec, carved_sizes, check_positive_int
from tensorrnn.errors import ConfigError

__all__ = [
    "teacher_families",
    "random_teacher",
    "teacher_scores",
    "balance_offsets",
    "top_two_margin",
    "synthetic_tt",
    "MARGIN_RTOL",
    "SPEC",
]

def teacher_families() -> tuple[str, ...]:
    """The families that can label ``synthetic-tt`` (role ``synthetic`` of :mod:`tensorrnn.models`)."""
    from tensorrnn.models import family_names  # the registry sits above the data layer's import time

    return family_names("synthetic")
MARGIN_RTOL = 1e-6
_REFERENCE_SIZE = 4096
# Rows per call of the teacher (a fixed size, whatever the sample size).
_CHUNK = 8192


def _check_family(family: str) -> str:
    if family not in teacher_families():
        raise ConfigError(
            f"teacher family {family!r} is unknown; choose one of {', '.join(teacher_families())}"
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
    from tensorrnn.models import make_network

    # The teacher is a network of the student's own kind: its exact scores are
    # the network's, so teacher and students share one contraction.
    rank = params["weights"].shape[0] if family == "cp" else params["first"].shape[1]
    n_classes = params["weights" if family == "cp" else "last"].shape[-1]
    net = make_network(family, phi.shape[1], phi.shape[2], rank, n_classes).to(phi)
    net.load_state_dict({k: v.to(phi) for k, v in params.items()})
    with torch.no_grad():
        return net.scores(phi)


def top_two_margin(adjusted: np.ndarray) -> np.ndarray:
    """Per row, the best value minus the second best: ``(N, C)`` -> ``(N,)`` (``C >= 2``)."""
    top = np.sort(np.asarray(adjusted, dtype=np.float64), axis=1)
    return top[:, -1] - top[:, -2]


def _gap_midpoint(margins: np.ndarray, k: int) -> float:
    """A value strictly between two sorted ``margins``, in the nonzero gap nearest the ``k``-th.

    Gap ``j`` lies between ``margins[j-1]`` and ``margins[j]``; the nonzero gap
    nearest ``j = k`` (the lower one on a tie) is split at its midpoint.
    """
    candidates = np.flatnonzero(np.diff(margins) > 0) + 1
    if candidates.size == 0:  # all margins equal: any other value splits nothing
        return float(margins[0]) - (abs(float(margins[0])) + 1.0)
    j = int(candidates[np.argmin(np.abs(candidates - k))])
    low, high = float(margins[j - 1]), float(margins[j])
    return low + (high - low) / 2


def balance_offsets(scores: torch.Tensor, sweeps: int = 20) -> torch.Tensor:
    """Offsets ``o`` such that ``argmax(scores - o)`` splits the rows evenly over the classes.

    Cyclic coordinate updates, each exact in its coordinate: class ``y`` wins row
    ``i`` iff ``m_i = scores[i, y] − max_{k≠y}(scores[i, k] − o_k) > o_y``, so an
    ``o_y`` between the ``N − round(N/C)``-th and the next of the sorted ``m``
    gives it a ``1/C`` share while the others are held fixed. This is coordinate
    descent on the convex dual of the balanced assignment; 20 sweeps bring every
    class within a row or two of ``N/C`` in practice.

    No offset is ever equal to a row's margin (which would make that row an exact
    tie): ``o_y`` is the midpoint of the gap between two distinct sorted margins
    nearest the balanced split. Where rows repeat (few distinct inputs) the split
    moves to the nearest gap.

    Parameters
    ----------
    scores
        Shape ``(N, C)``, ``C >= 2``.
    sweeps
        Passes over the classes.

    Returns
    -------
    torch.Tensor
        Offsets of shape ``(C,)``, float64.
    """
    # numpy float64, sorts instead of quantiles: exact comparisons, no interpolation.
    values = np.asarray(scores.detach().cpu().numpy(), dtype=np.float64)
    n_rows, n_classes = values.shape
    offsets = np.zeros(n_classes)
    if n_rows < 2:
        return torch.from_numpy(offsets)
    losers = min(max(n_rows - round(n_rows / n_classes), 1), n_rows - 1)
    for _ in range(sweeps):
        for y in range(n_classes):
            rivals = values - offsets
            rivals[:, y] = -np.inf
            margins = np.sort(values[:, y] - rivals.max(axis=1))
            offsets[y] = _gap_midpoint(margins, losers)
    return torch.from_numpy(offsets)


def _one_hot(levels: np.ndarray, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.from_numpy(levels), n).to(torch.float64)


def _scores(family: str, levels: np.ndarray, n: int, params: Mapping[str, torch.Tensor]) -> np.ndarray:
    """float64 teacher scores of level sequences ``(B, d)``, in chunks of a fixed size."""
    parts = [
        teacher_scores(family, _one_hot(levels[start : start + _CHUNK], n), params).numpy()
        for start in range(0, levels.shape[0], _CHUNK)
    ]
    scores = np.concatenate(parts).astype(np.float64, copy=False)
    if not np.all(np.isfinite(scores)):
        raise ConfigError(
            f"the {family} teacher's scores overflow (d={levels.shape[1]}); choose a smaller d or rank"
        )
    return scores


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
    margin_rtol: float = MARGIN_RTOL,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], int]:
    """Sample inputs and label them by a random teacher, with a margin (see the module docstring).

    Parameters
    ----------
    n_samples
        Number of inputs returned.
    family, d, n, rank, n_classes
        The teacher (see :func:`random_teacher`); ``n`` is also the number of grey levels.
    balance
        Subtract per-class offsets (:func:`balance_offsets` on the reference
        sample) before the argmax, so the classes are about equally frequent.
    teacher_seed
        Seed of the teacher and of its reference sample.
    seed
        Seed of the inputs.
    margin_rtol
        Relative tolerance of the label rule: inputs whose top-two margin of
        ``scores − offsets`` is below ``margin_rtol · scale`` are dropped and redrawn.

    Returns
    -------
    (images, labels, teacher, n_dropped)
        ``float32`` images ``(N, 1, 1, d)`` with values in ``{0, 1/(n-1), …, 1}``;
        ``int64`` labels; ``teacher`` = ``{"family", "params", "offsets", "n",
        "scale", "margin_rtol", "margin_tolerance"}`` where ``labels ==
        argmax(teacher_scores(family, one_hot(levels), params) - offsets)`` and
        every input's top-two margin is ``>= margin_tolerance``; ``n_dropped``:
        how many drawn inputs fell below the tolerance and were replaced.

    Raises
    ------
    ConfigError
        If a size or ``margin_rtol`` is out of range, or too few inputs clear the margin.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ConfigError(f"n_samples={n_samples!r} must be a positive integer")
    if isinstance(margin_rtol, bool) or not isinstance(margin_rtol, int | float) or not 0 < margin_rtol < 1:
        raise ConfigError(f"margin_rtol={margin_rtol!r} must be a number strictly between 0 and 1")
    for label, value in (("teacher_seed", teacher_seed), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ConfigError(f"{label}={value!r} must be a non-negative integer (a literal seed)")
    params = random_teacher(family, d, n, rank, n_classes, seed=teacher_seed)
    reference = np.random.default_rng([teacher_seed, 1]).integers(0, n, (_REFERENCE_SIZE, d))
    reference_scores = _scores(family, reference, n, params)
    scale = float(np.sqrt(np.mean(np.square(reference_scores))))
    tolerance = float(margin_rtol) * scale
    offsets = np.zeros(n_classes)
    if balance:
        offsets = balance_offsets(torch.from_numpy(reference_scores)).numpy()

    levels, labels, n_dropped = _draw_clear_inputs(family, params, offsets, tolerance, n_samples, d, n, seed)
    images = (levels / (n - 1)).astype(np.float32).reshape(n_samples, 1, 1, d)
    teacher = {
        "family": family,
        "params": params,
        "offsets": torch.from_numpy(offsets),
        "n": n,
        "scale": scale,
        "margin_rtol": float(margin_rtol),
        "margin_tolerance": tolerance,
    }
    return images, labels, teacher, n_dropped


def _draw_clear_inputs(
    family: str, params: Mapping[str, torch.Tensor], offsets: np.ndarray, tolerance: float, n_samples: int,
    d: int, n: int, seed: int,
) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """``n_samples`` inputs (levels ``(N, d)``) whose top-two margin clears ``tolerance``, their
    int64 labels, and how many drawn inputs were dropped for a near-tie."""
    # Draw, drop inputs without a clear winner, draw again until n_samples are kept.
    rng = np.random.default_rng([seed, 2])
    kept: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    n_kept = n_dropped = 0
    batch = n_samples
    while n_kept < n_samples:
        levels = rng.integers(0, n, (batch, d))
        adjusted = _scores(family, levels, n, params) - offsets
        good = np.flatnonzero(top_two_margin(adjusted) >= tolerance)
        need = n_samples - n_kept
        if good.size >= need:
            good = good[:need]
            n_dropped += int(good[-1]) + 1 - need  # rejected before the last one kept
        else:
            n_dropped += batch - good.size
        kept.append(levels[good])
        labels.append(np.argmax(adjusted[good], axis=1))
        n_kept += good.size
        if n_dropped > 10 * n_samples + 10000:
            raise ConfigError(
                f"only {n_kept} of {n_kept + n_dropped} inputs have a clear winner (top-two margin "
                f">= {tolerance:.3g}); this teacher has too many near-ties: change teacher_seed, "
                "n_classes or margin_rtol"
            )
        batch = max(need - good.size, 1024)
    return np.concatenate(kept), np.concatenate(labels).astype(np.int64), n_dropped


def _check_options(options: Mapping[str, Any]) -> None:
    if options["family"] not in teacher_families():
        raise ConfigError(
            f"option family={options['family']!r} is unknown; choose one of {', '.join(teacher_families())}"
        )


def _read(
    found: Found | None, options: Mapping[str, Any], seed: int, data_dir: str | Path | None, use_cache: bool
) -> Raw:
    images, labels, teacher, n_dropped = synthetic_tt(
        check_positive_int(options, "n_samples", 2),
        family=options["family"],
        d=options["d"],
        n=options["n"],
        rank=options["rank"],
        n_classes=options["n_classes"],
        balance=bool(options["balance"]),
        teacher_seed=options["teacher_seed"],
        seed=seed,
        margin_rtol=options["margin_rtol"],
    )
    extra = {
        "teacher": teacher,
        "margin_tolerance": teacher["margin_tolerance"],
        "n_dropped": n_dropped,
    }
    class_names = tuple(str(k) for k in range(options["n_classes"]))
    return Raw(images, labels, test_seed=seed, class_names=class_names, extra=extra)


SPEC = Spec(
    name="synthetic-tt",
    title="random grey-level sequences labelled by a random CP/TT teacher",
    image_shape=(1, 1, 16),  # (1, 1, d) when loaded
    class_names=tuple(str(k) for k in range(10)),  # 0 … n_classes−1 when loaded
    pixel_range=(0.0, 1.0),
    notes=(
        "Images (1, 1, d) of n grey levels k/(n-1); 1x1 patches in row-major order give "
        "the sequence. Label = argmax of the teacher's scores on one-hot level features "
        "minus balancing offsets (info.extra['teacher']). Inputs whose two best classes "
        "differ by less than margin_rtol x the score scale are redrawn, so no label hinges "
        "on rounding (info.extra['margin_tolerance'], info.extra['n_dropped'])."
    ),
    test_is_official=False,
    options={
        "family": "tt-shared",
        "d": 16,
        "n": 4,
        "rank": 4,
        "n_classes": 10,
        "n_samples": 10000,
        "balance": True,
        "teacher_seed": 0,
        "margin_rtol": MARGIN_RTOL,
        "test_fraction": 0.2,
    },
    sizes=carved_sizes(None),
    places=None,
    read=_read,
    check_options=_check_options,
)
