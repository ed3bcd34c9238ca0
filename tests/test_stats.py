"""The statistics behind every comparative sentence, on hand-made cases worked out by hand."""

import math

import numpy as np
import pytest

from tensorrnn.stats import accuracy_interval, comparison_words, difference_interval, target_words

T2 = 4.302652729911275  # t quantile 0.975 with 2 degrees of freedom (tables)
T1 = 12.706204736174705  # ... with 1 degree of freedom


def test_seeds_agree_but_test_noise_straddles_zero():
    # A beats B by exactly one example in 100 on every seed: the seed variance is 0,
    # but 1 example of 100 is well inside the test set's own noise.
    n = 100
    correct_a = np.ones(n)
    correct_a[:10] = 0  # 90 %
    correct_b = correct_a.copy()
    correct_b[10] = 0  # 89 %: B also misses example 10
    interval = difference_interval([0.90] * 3, [0.89] * 3, n, [correct_a] * 3, [correct_b] * 3)
    e = np.zeros(n)
    e[10] = 1.0
    half = T2 * math.sqrt(0 / 3 + np.var(e, ddof=1) / n)
    assert interval.mean == pytest.approx(0.01)
    assert interval.low == pytest.approx(0.01 - half) and interval.high == pytest.approx(0.01 + half)
    assert interval.low < 0 < interval.high and interval.test_part == "measured"
    words = comparison_words("TT-shared", "CP", interval)
    assert "within noise" in words and "leads" not in words


def test_a_clear_lead_is_called_a_lead():
    n = 1000
    rng = np.random.default_rng(0)
    base = (rng.random(n) < 0.8).astype(float)
    better = np.maximum(base, (np.arange(n) % 10 == 0).astype(float))  # also right on every 10th
    acc_a, acc_b = [better.mean()] * 3, [base.mean()] * 3
    interval = difference_interval(acc_a, acc_b, n, [better] * 3, [base] * 3)
    assert interval.low > 0
    assert comparison_words("A", "B", interval).startswith("A leads B by +")
    assert comparison_words("B", "A", difference_interval(acc_b, acc_a, n, [base] * 3, [better] * 3)) \
        .startswith("A leads B by +")


def test_one_seed_has_no_interval_and_says_so():
    interval = accuracy_interval([0.9838], 10_000)
    assert interval.low is None and interval.seeds == 1
    assert target_words(interval, 0.98) == "met (one seed: no interval)"
    assert "one seed" in comparison_words("A", "B", difference_interval([0.9], [0.8], 100))


def test_two_seeds_use_t_with_one_degree_of_freedom_and_the_bounded_test_part():
    interval = accuracy_interval([0.90, 0.92], 10_000)
    mean = 0.91
    half = T1 * math.sqrt(np.var([0.90, 0.92], ddof=1) / 2 + mean * (1 - mean) / 10_000)
    assert interval.test_part == "bounded"
    # 0.91 ± 0.13: the upper end is clipped at 100 % (an accuracy cannot exceed it).
    assert (interval.low, interval.high) == (pytest.approx(mean - half), 1.0) and mean + half > 1


def test_a_failed_run_is_left_out_and_counted():
    interval = difference_interval([0.9, float("nan"), 0.91, 0.92], [0.8, 0.81, 0.8, 0.82], 10_000)
    deltas = [0.1, 0.11, 0.1]
    assert interval.seeds == 3 and interval.dropped == 1
    assert interval.mean == pytest.approx(np.mean(deltas))
    assert "1 failed run(s) left out" in comparison_words("A", "B", interval)
    assert math.isnan(accuracy_interval([float("nan")], 10).mean)


def test_bounded_test_part_is_never_narrower_than_the_measured_one():
    rng = np.random.default_rng(1)
    n = 500
    correct_a = [(rng.random(n) < 0.9).astype(float) for _ in range(3)]
    correct_b = [(rng.random(n) < 0.85).astype(float) for _ in range(3)]
    acc_a, acc_b = [c.mean() for c in correct_a], [c.mean() for c in correct_b]
    measured = difference_interval(acc_a, acc_b, n, correct_a, correct_b)
    bounded = difference_interval(acc_a, acc_b, n)
    assert bounded.half_width >= measured.half_width
    single_measured = accuracy_interval(acc_a, n, correct_a)
    assert accuracy_interval(acc_a, n).half_width >= single_measured.half_width


@pytest.mark.parametrize(("target", "words"), [
    (0.80, "met"), (0.905, "met, within noise"), (0.915, "not met, within noise"), (0.99, "not met"),
])  # fmt: skip
def test_target_words(target, words):
    interval = accuracy_interval([0.90, 0.91, 0.92], 10_000)  # 0.91 ± about 0.025
    assert target_words(interval, target) == words
