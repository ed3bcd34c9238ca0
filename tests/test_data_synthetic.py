"""synthetic-tt without ties: offsets split gaps, near-ties are redrawn, labels do not move with threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tensorrnn.data import load_dataset
from tensorrnn.data.synthetic import MARGIN_RTOL, balance_offsets, synthetic_tt, top_two_margin
from tensorrnn.errors import ConfigError


def _margins(values: np.ndarray, offsets: np.ndarray, y: int) -> np.ndarray:
    """m_i = values[i, y] - max_{k != y}(values[i, k] - o_k): class y wins row i iff m_i > o_y."""
    rivals = values - offsets
    rivals[:, y] = -np.inf
    return values[:, y] - rivals.max(axis=1)


def test_offsets_never_land_on_a_reference_margin() -> None:
    # 81 distinct rows, each repeated about 50 times: the situation of d = 4, n = 3, where
    # a quantile offset fell exactly on a row's margin and made that input an exact tie.
    rng = np.random.default_rng(7)
    distinct = rng.standard_normal((81, 3))
    values = distinct[rng.integers(0, 81, 4096)]
    offsets = balance_offsets(torch.from_numpy(values)).numpy()
    assert offsets.dtype == np.float64
    # The class updated last was placed against the final offsets of the others.
    assert not np.any(_margins(values, offsets, 2) == offsets[2])
    # No reference row is a tie, and every class still wins a fair share.
    assert top_two_margin(values - offsets).min() > 0
    counts = np.bincount(np.argmax(values - offsets, axis=1), minlength=3)
    assert counts.min() > 4096 / 3 - 200, counts


@pytest.mark.parametrize("family", ["cp", "tt", "tt-shared"])
def test_every_kept_input_clears_the_margin(family: str) -> None:
    images, labels, teacher, n_dropped = synthetic_tt(
        500, family=family, d=6, n=3, rank=3, n_classes=4, seed=3, margin_rtol=0.02
    )
    tol = teacher["margin_tolerance"]
    assert tol == pytest.approx(0.02 * teacher["scale"])
    assert images.shape == (500, 1, 1, 6) and labels.shape == (500,)
    assert n_dropped > 0  # a large tolerance drops (and replaces) many inputs
    from tensorrnn.data.synthetic import _one_hot, teacher_scores

    levels = np.rint(images.reshape(500, 6) * 2).astype(np.int64)
    scores = teacher_scores(family, _one_hot(levels, 3), teacher["params"]).numpy()
    adjusted = scores - teacher["offsets"].numpy()
    margin = top_two_margin(adjusted)
    assert margin.min() >= tol * (1 - 1e-9)
    assert np.array_equal(np.argmax(adjusted, axis=1), labels)


def test_info_records_tolerance_and_drops() -> None:
    ds = load_dataset("synthetic-tt", family="cp", d=6, n=3, rank=2, n_classes=3, n_samples=400,
                      margin_rtol=0.01, seed=2)  # fmt: skip
    extra = ds.info.extra
    assert extra["margin_tolerance"] == pytest.approx(0.01 * extra["teacher"]["scale"])
    assert extra["n_dropped"] > 0
    assert sum(ds.info.split_sizes.values()) == 400
    assert ds.info.options["margin_rtol"] == 0.01
    default = load_dataset("synthetic-tt", d=6, n=3, n_samples=200)
    assert default.info.options["margin_rtol"] == MARGIN_RTOL == 1e-6
    assert isinstance(default.info.extra["n_dropped"], int)


@pytest.mark.parametrize("bad", [0, 1.0, -1e-6, True, "small"])
def test_margin_rtol_out_of_range(bad: object) -> None:
    with pytest.raises(ConfigError, match="margin_rtol"):
        load_dataset("synthetic-tt", d=4, n=3, n_samples=50, margin_rtol=bad)


@pytest.mark.parametrize("bad", [1.5, -1, "0", None])
def test_teacher_seed_must_be_a_literal_integer(bad: object) -> None:
    with pytest.raises(ConfigError, match="teacher_seed"):
        load_dataset("synthetic-tt", d=4, n=3, n_samples=50, teacher_seed=bad)


@pytest.mark.parametrize("family", ["cp", "tt-shared"])
def test_labels_do_not_depend_on_the_thread_count(family: str) -> None:
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, max(2, before)):
            torch.set_num_threads(threads)
            results.append(synthetic_tt(3000, family=family, d=16, n=4, rank=6, seed=5))
    finally:
        torch.set_num_threads(before)
    (images_1, labels_1, teacher_1, dropped_1), (images_n, labels_n, teacher_n, dropped_n) = results
    assert np.array_equal(images_1, images_n) and np.array_equal(labels_1, labels_n)
    assert dropped_1 == dropped_n
    # The offsets come from float64 sorts of the same scores: equal up to rounding.
    torch.testing.assert_close(teacher_1["offsets"], teacher_n["offsets"], rtol=0, atol=1e-12)
