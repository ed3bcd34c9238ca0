"""Reader of CIFAR-10's python-pickle batches that cannot be made to run code.

The official ``cifar-10-python.tar.gz`` holds pickled dicts written by Python 2.
``pickle.load`` on such a file would call whatever function the file names, so a
hostile file could run ``os.system``. :class:`RestrictedUnpickler` resolves only
the few names a CIFAR batch needs (numpy's array reconstruction and dtypes) and
refuses everything else before it is imported.

Batches are read from the extracted folder ``cifar-10-batches-py/`` or straight
from the tarball (members are read into memory, never extracted to disk, so a
crafted archive cannot write outside its folder).

Places: ``<root>/cifar10/`` in each data root (``<data_dir>`` alone when it is
given), holding ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``.
"""

from __future__ import annotations

import importlib
import io
import pickle
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensorrnn.data.spec import Found, Raw, Remote, Spec, cached_arrays, fixed_sizes, root_places
from tensorrnn.errors import DataError

__all__ = [
    "CIFAR10_CLASSES",
    "RestrictedUnpickler",
    "safe_unpickle",
    "read_cifar_batch",
    "read_cifar10",
    "SPEC",
]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
FOLDER = "cifar-10-batches-py"
TARBALL = "cifar-10-python.tar.gz"
ROOT_FOLDER = "cifar10"
# The value published by TensorFlow Datasets / Keras and repeated by many
# independent projects; not checked against a download here (no internet).
URL = f"https://www.cs.toronto.edu/~kriz/{TARBALL}"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
# A real batch is 30 MB; anything far larger is not a CIFAR batch.
_MAX_MEMBER_BYTES = 64 << 20
_FIX = (
    "delete it and download CIFAR-10 again (`tensorrnn data --download cifar10`, or "
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)"
)


def _numpy_attr(module: str, name: str) -> Callable[[], Any]:
    """Resolve ``module.name`` lazily; numpy 2 moved ``numpy.core`` to ``numpy._core``."""

    def resolve() -> Any:
        for candidate in (module, module.replace("numpy.core", "numpy._core", 1)):
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"{module}.{name} is not available in this numpy")

    return resolve


# Everything a pickled numpy array (protocol 2, as written by Python 2 or 3) needs.
# `_codecs.encode` turns a latin-1 str back into bytes; it runs no user code.
_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_attr("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_attr("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: importlib.import_module("_codecs").encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array reconstruction names.

    Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, …)
    raises :class:`pickle.UnpicklingError` before it is imported or called.
    """

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - see class docstring
        resolve = _ALLOWED.get((module, name))
        if resolve is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR batch only needs numpy "
                "array reconstruction"
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise pickle.UnpicklingError("persistent ids are not allowed in a CIFAR batch")


def safe_unpickle(data: bytes, source: str | Path) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Parameters
    ----------
    data
        The pickle bytes.
    source
        Where the bytes came from, named in error messages.

    Raises
    ------
    DataError
        If the pickle is malformed or names a global outside the allow-list.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # noqa: BLE001 - any failure of a hostile pickle is a data error
        raise DataError(
            f"{source}: not a valid CIFAR-10 pickle ({type(error).__name__}: {error}); {_FIX}"
        ) from error


def _key(batch: dict, name: str) -> Any:
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise KeyError(name)


def read_cifar_batch(data: bytes, source: str | Path, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled CIFAR batch.

    Parameters
    ----------
    data
        Bytes of ``data_batch_i`` or ``test_batch``.
    source
        Name used in error messages (file path or ``archive:member``).
    n_classes
        Labels must lie in ``[0, n_classes)``.

    Returns
    -------
    (images, labels)
        ``uint8`` images of shape ``(N, 3, 32, 32)`` (channels R, G, B) and
        ``int64`` labels of shape ``(N,)``.

    Raises
    ------
    DataError
        If the pickle is unsafe or malformed, or its arrays have the wrong type,
        shape or label range.
    """
    batch = safe_unpickle(data, source)
    if not isinstance(batch, dict):
        raise DataError(f"{source}: a CIFAR batch is a dict, found {type(batch).__name__}; {_FIX}")
    try:
        images, labels = _key(batch, "data"), _key(batch, "labels")
    except KeyError as error:
        raise DataError(f"{source}: CIFAR batch has no {error.args[0]!r} entry; {_FIX}") from None
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2:
        raise DataError(
            f"{source}: 'data' must be a uint8 array of shape (N, 3072), found "
            f"{type(images).__name__} {getattr(images, 'dtype', '')} "
            f"{getattr(images, 'shape', '')}; {_FIX}"
        )
    if images.shape[1] != 3 * 32 * 32:
        raise DataError(f"{source}: 'data' has shape {images.shape}, expected (N, 3072); {_FIX}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{source}: 'labels' is not a list of integers ({error}); {_FIX}") from None
    if labels.shape != (images.shape[0],):
        raise DataError(f"{source}: {images.shape[0]} images but 'labels' has shape {labels.shape}; {_FIX}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(
            f"{source}: labels range over [{labels.min()}, {labels.max()}], outside [0, {n_classes}); {_FIX}"
        )
    return images.reshape(-1, 3, 32, 32), labels


def _read_members(source: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Read the batches ``names`` from a folder, or from a tarball in one pass."""
    if source.is_dir():
        out = {}
        for name in names:
            path = source / name
            if not path.is_file():
                raise DataError(f"{path}: missing CIFAR-10 batch; {_FIX}")
            out[name] = path.read_bytes()
        return out
    wanted = {f"{FOLDER}/{name}": name for name in names}
    out = {}
    try:
        # One sequential pass: a gzipped tar has no index, so looking members up
        # one by one would decompress the archive once per member.
        with tarfile.open(source, "r:*") as archive:
            for member in archive:
                name = wanted.get(member.name)
                if name is None:
                    continue
                if not member.isfile() or member.size > _MAX_MEMBER_BYTES:
                    raise DataError(
                        f"{source}: member {member.name} is not a regular file of plausible size; {_FIX}"
                    )
                stream = archive.extractfile(member)
                assert stream is not None  # a regular file always has a stream
                out[name] = stream.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{source}: cannot read the archive ({error}); {_FIX}") from error
    missing = [f"{FOLDER}/{name}" for name in names if name not in out]
    if missing:
        raise DataError(f"{source}: archive lacks {', '.join(missing)}; {_FIX}")
    return out


def read_cifar10(source: str | Path) -> dict[str, np.ndarray]:
    """Read all of CIFAR-10 from its folder or its official tarball.

    Parameters
    ----------
    source
        Either the folder ``cifar-10-batches-py`` or ``cifar-10-python.tar.gz``.

    Returns
    -------
    dict
        ``train_images`` ``(50000, 3, 32, 32)`` uint8, ``train_labels`` int64,
        ``test_images`` ``(10000, 3, 32, 32)`` uint8 and ``test_labels`` int64.

    Raises
    ------
    DataError
        If a batch is missing, unsafe or malformed.
    """
    source = Path(source)
    raw = _read_members(source, (*TRAIN_BATCHES, TEST_BATCH))
    parts = [read_cifar_batch(raw[name], f"{source}:{name}") for name in TRAIN_BATCHES]
    test_images, test_labels = read_cifar_batch(raw[TEST_BATCH], f"{source}:{TEST_BATCH}")
    return {
        "train_images": np.concatenate([p[0] for p in parts]),
        "train_labels": np.concatenate([p[1] for p in parts]),
        "test_images": test_images,
        "test_labels": test_labels,
    }


def find_cifar(folder: Path) -> Path | None:
    """``folder/cifar-10-batches-py`` or ``folder/cifar-10-python.tar.gz``, whichever exists first."""
    for candidate in (folder / FOLDER, folder / TARBALL):
        if candidate.exists():
            return candidate
    return None


def _read(
    found: Found | None, options: Mapping[str, Any], seed: int, data_dir: str | Path | None, use_cache: bool
) -> Raw:
    assert found is not None
    if found.path.is_dir():
        sources = sorted(p for p in found.path.iterdir() if p.name.startswith(("data_batch", "test_batch")))
    else:
        sources = [found.path]
    names = ("train_images", "train_labels", "test_images", "test_labels")
    arrays = cached_arrays(
        SPEC, sources, names, lambda: read_cifar10(found.path), found.path.parent, data_dir, use_cache,
        str(found.path),
    )  # fmt: skip
    return Raw(arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"])


SPEC = Spec(
    name="cifar10",
    title="CIFAR-10, 32x32 colour",
    image_shape=(3, 32, 32),
    class_names=CIFAR10_CLASSES,
    pixel_range=(0.0, 1.0),
    notes="Official 50,000/10,000 train/test batches; validation carved from train.",
    test_is_official=True,
    options={},
    sizes=fixed_sizes(50000, 10000),
    places=lambda data_dir: root_places(data_dir, ROOT_FOLDER, find_cifar),
    read=_read,
    how_to_get=(f"run `tensorrnn data --download cifar10` (170 MB), or put {TARBALL} in <data dir>/cifar10/"),
    folder=ROOT_FOLDER,
    remotes=(Remote(TARBALL, (URL,), SHA256),),
)
