"""``digits``: scikit-learn's 1,797 8x8 digits (the test part of UCI optdigits), always available."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensorrnn.data.spec import DIGIT_NAMES, Found, Raw, Spec, carved_sizes

__all__ = ["SPEC"]


def _read(
    found: Found | None, options: Mapping[str, Any], seed: int, data_dir: str | Path | None, use_cache: bool
) -> Raw:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]
    return Raw(images, np.asarray(bunch.target, dtype=np.int64))  # fixed test carve


SPEC = Spec(
    name="digits",
    title="scikit-learn digits (UCI optdigits test part), 8x8 grey",
    image_shape=(1, 8, 8),
    class_names=DIGIT_NAMES,
    pixel_range=(0.0, 1.0),
    notes="1,797 images bundled with scikit-learn; fixed stratified test split.",
    test_is_official=False,
    options={"test_fraction": 0.2},
    sizes=carved_sizes(1797),
    places=None,
    read=_read,
    source="scikit-learn",
    origin="bundled",
)
