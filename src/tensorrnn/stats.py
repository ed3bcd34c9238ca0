"""Intervals and words for every accuracy comparison the toolkit reports.

One protocol (``shared/DESIGN.md``, "Statistics a referee accepts") behind every
"leads", every "met" and every ± in the README, the demo page and ``docs/``.
A test accuracy has two sources of noise: the seed (training) and the finite
test set, which every seed reuses, so averaging seeds does not average it away.
For ``k`` seeds with accuracies ``a_s`` and per-example correctness ``c_s[i]``
on ``N`` test examples:

* ``s²``: the variance of ``a_s`` over seeds (``k − 1`` in the denominator);
* ``e_i``: the correctness of example ``i`` averaged over seeds, ``v`` its
  variance over the ``N`` examples;
* the 95 % interval is ``mean ± t(k−1) · sqrt(s²/k + v/N)``.

A paired comparison of families A and B does the same on the differences
``Δ_s = a_A(s) − a_B(s)`` and ``e_i = mean_s (c_A,s[i] − c_B,s[i])``: seeds pair
runs that share the data split and the seed. ``t`` has ``k − 1`` degrees of
freedom (4.30 for 3 seeds); one seed gives no interval, and the text says so.

Runs from before the toolkit saved per-example correctness have no ``c``: the
test part is then *bounded* instead of measured — ``v ≤ p(1 − p)`` for one family
(an average of values in [0, 1] with mean p) and ``v ≤ err_A + err_B − Δ²`` for a
difference (``|e_i| ≤ 1`` gives ``E[e²] ≤ E|e| ≤ err_A + err_B``) — so the interval
is wider than the measured one, never narrower, and says ``test part bounded``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

__all__ = [
    "Interval", "accuracy_interval", "difference_interval", "comparison_words", "target_words",
    "format_interval",
]  # fmt: skip

LEVEL = 0.95
TEST_PARTS = ("measured", "bounded")


@dataclass(frozen=True)
class Interval:
    """A mean with its 95 % interval (``low``/``high`` are ``None`` for one seed)."""

    mean: float
    low: float | None
    high: float | None
    seeds: int
    test_part: str
    """``measured`` (per-example correctness of every run) or ``bounded`` (see the module)."""
    dropped: int = 0
    """Seeds left out because a run failed (its accuracy is NaN)."""

    @property
    def has_interval(self) -> bool:
        return self.low is not None

    @property
    def half_width(self) -> float | None:
        """Half the width (of the clipped interval)."""
        return None if self.high is None else (self.high - self.low) / 2


def _t_quantile(seeds: int) -> float:
    return float(scipy_stats.t.ppf(0.5 + LEVEL / 2, seeds - 1))


def _finite(values: Sequence[float]) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)


def _interval(mean: float, seed_values: np.ndarray, test_variance: float, n_test: int, test_part: str,
              dropped: int, limits: tuple[float, float]) -> Interval:  # fmt: skip
    """``limits``: the values the quantity can take (an accuracy lies in [0, 1]); the interval is
    clipped to them, so a wide one never claims more than 100 %."""
    k = len(seed_values)
    if k < 2:
        return Interval(mean, None, None, k, test_part, dropped)
    seed_variance = float(np.var(seed_values, ddof=1))
    half = _t_quantile(k) * math.sqrt(seed_variance / k + test_variance / n_test)
    return Interval(mean, max(mean - half, limits[0]), min(mean + half, limits[1]), k, test_part, dropped)


def _check_correct(correct: Sequence[np.ndarray] | None, seeds: int, n_test: int) -> np.ndarray | None:
    if correct is None or any(c is None for c in correct):
        return None
    matrix = np.asarray([np.asarray(c, dtype=np.float64) for c in correct])
    if matrix.shape != (seeds, n_test):
        raise ValueError(f"per-example correctness has shape {matrix.shape}; expected ({seeds}, {n_test})")
    return matrix


def accuracy_interval(
    accuracies: Sequence[float], n_test: int, correct: Sequence[np.ndarray] | None = None
) -> Interval:
    """The mean test accuracy of one family over seeds, with its 95 % interval.

    ``correct[s]`` is the 0/1 correctness of seed ``s`` on each test example, or
    ``None`` where a run did not record it (the test part is then bounded).
    A NaN accuracy (a failed run) drops that seed and is counted in ``dropped``.
    """
    values = _finite(accuracies)
    keep = ~np.isnan(values)
    if not keep.any():
        return Interval(math.nan, None, None, 0, "bounded", len(values))
    kept = values[keep]
    mean = float(kept.mean())
    rows = None if correct is None else [c for c, k in zip(correct, keep, strict=True) if k]
    matrix = _check_correct(rows, len(kept), n_test)
    if matrix is None:
        variance, part = mean * (1 - mean), "bounded"
    else:
        variance, part = float(np.var(matrix.mean(axis=0), ddof=1)), "measured"
    return _interval(mean, kept, variance, n_test, part, int((~keep).sum()), (0.0, 1.0))


def difference_interval(
    accuracies_a: Sequence[float], accuracies_b: Sequence[float], n_test: int,
    correct_a: Sequence[np.ndarray] | None = None, correct_b: Sequence[np.ndarray] | None = None,
) -> Interval:  # fmt: skip
    """The paired difference A − B over seeds (``accuracies_a[s]`` pairs with ``accuracies_b[s]``)."""
    a, b = _finite(accuracies_a), _finite(accuracies_b)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs one B run per A run; got {len(a)} and {len(b)}")
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.any():
        return Interval(math.nan, None, None, 0, "bounded", len(a))
    delta = a[keep] - b[keep]
    mean = float(delta.mean())
    pick = [bool(k) for k in keep]
    rows_a = None if correct_a is None else [c for c, k in zip(correct_a, pick, strict=True) if k]
    rows_b = None if correct_b is None else [c for c, k in zip(correct_b, pick, strict=True) if k]
    matrix_a = _check_correct(rows_a, len(delta), n_test)
    matrix_b = _check_correct(rows_b, len(delta), n_test)
    if matrix_a is None or matrix_b is None:
        errors = (1 - float(a[keep].mean())) + (1 - float(b[keep].mean()))
        variance, part = max(errors - mean * mean, 0.0), "bounded"
    else:
        variance, part = float(np.var((matrix_a - matrix_b).mean(axis=0), ddof=1)), "measured"
    return _interval(mean, delta, variance, n_test, part, int((~keep).sum()), (-1.0, 1.0))


def signed_number(value: float, scale: float = 100.0, digits: int = 2, plus: bool = True) -> str:
    """``scale · value`` with a typographic minus (``"−1.30"``), ``"+"`` before a positive value
    where ``plus``, and no sign on a value that rounds to zero's minus (``"+0.00"``, not ``"−0.00"``)."""
    text = f"{abs(scale * value):.{digits}f}"
    if value < 0 and float(text) != 0:
        return "−" + text
    return ("+" if plus else "") + text


def format_interval(interval: Interval, scale: float = 100.0, digits: int = 2, unit: str = "",
                    signed: bool = True) -> str:  # fmt: skip
    """``"+0.53 points [−0.41, +1.47]"`` (a difference), ``"91.17 % [88.05, 94.28]"`` (``signed=False``),
    or ``"… (one seed: no interval)"``."""

    def number(value: float) -> str:
        return signed_number(value, scale, digits, plus=signed)

    head = f"{number(interval.mean)}{unit}"
    if not interval.has_interval:
        return f"{head} (one seed: no interval)"
    note = "" if interval.test_part == "measured" else "; test part bounded"
    failed = f"; {interval.dropped} failed run(s) left out" if interval.dropped else ""
    return f"{head} [{number(interval.low)}, {number(interval.high)}{note}{failed}]"


def comparison_words(name_a: str, name_b: str, interval: Interval) -> str:
    """"A leads B by x [lo, hi]" only when the interval excludes 0; else "within noise"."""
    text = format_interval(interval, unit=" points")
    if not interval.has_interval:
        return f"{name_a} − {name_b}: {text}"
    if interval.low > 0:
        return f"{name_a} leads {name_b} by {text}"
    if interval.high < 0:
        flipped = Interval(-interval.mean, -interval.high, -interval.low, interval.seeds,
                           interval.test_part, interval.dropped)  # fmt: skip
        return f"{name_b} leads {name_a} by {format_interval(flipped, unit=' points')}"
    return f"{name_a} and {name_b} are within noise ({name_a} − {name_b} = {text})"


def target_words(interval: Interval, target: float) -> str:
    """``met``, ``met, within noise``, ``not met, within noise`` or ``not met`` (and one seed)."""
    reached = interval.mean >= target
    if not interval.has_interval:
        return ("met" if reached else "not met") + " (one seed: no interval)"
    if interval.low > target:
        return "met"
    if interval.high < target:
        return "not met"
    return "met, within noise" if reached else "not met, within noise"
