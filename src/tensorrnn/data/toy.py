"""``moons`` and ``circles``: the 2-D toy tasks of Khrulkov et al. 2018 (scikit-learn generators).

Each point ``(x, y)`` is an image of shape ``(1, 1, 2)``: 1x1 patches in
row-major order give a sequence of ``d = 2`` patches of size ``s = 1``. The
values are raw coordinates (``pixel_range`` is ``None``), and the whole sample,
test split included, depends on the seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensorrnn.data.spec import Found, Raw, Spec, carved_sizes, check_positive_int
from tensorrnn.errors import ConfigError

__all__ = ["MOONS", "CIRCLES"]

_NOTES = (
    "Toy task of Khrulkov et al. 2018. Each 2-D point is an image (1, 1, 2): 1x1 "
    "patches in row-major order give d = 2, s = 1. Values are coordinates."
)


def _reader(kind: str) -> Callable[..., Raw]:
    def read(
        found: Found | None,
        options: Mapping[str, Any],
        seed: int,
        data_dir: str | Path | None,
        use_cache: bool,
    ) -> Raw:
        from sklearn.datasets import make_circles, make_moons

        n = check_positive_int(options, "n_samples", 2)
        noise = float(options["noise"])
        if noise < 0:
            raise ConfigError(f"option noise={noise!r} must be >= 0")
        if kind == "moons":
            points, labels = make_moons(n_samples=n, noise=noise, random_state=seed)
        else:
            factor = float(options["factor"])
            if not 0 < factor < 1:
                raise ConfigError(f"option factor={factor!r} must lie strictly between 0 and 1")
            points, labels = make_circles(n_samples=n, noise=noise, factor=factor, random_state=seed)
        images = points.astype(np.float32).reshape(n, 1, 1, 2)
        return Raw(images, labels.astype(np.int64), test_seed=seed)

    return read


MOONS = Spec(
    name="moons",
    title="two interleaving half-moons (scikit-learn), a point as 2 patches",
    image_shape=(1, 1, 2),
    class_names=("upper", "lower"),
    pixel_range=None,
    notes=_NOTES,
    test_is_official=False,
    options={"n_samples": 2000, "noise": 0.1, "test_fraction": 0.2},
    sizes=carved_sizes(None),
    places=None,
    read=_reader("moons"),
)
CIRCLES = Spec(
    name="circles",
    title="two concentric circles (scikit-learn), a point as 2 patches",
    image_shape=(1, 1, 2),
    class_names=("outer", "inner"),
    pixel_range=None,
    notes=_NOTES,
    test_is_official=False,
    options={"n_samples": 2000, "noise": 0.05, "factor": 0.5, "test_fraction": 0.2},
    sizes=carved_sizes(None),
    places=None,
    read=_reader("circles"),
)
