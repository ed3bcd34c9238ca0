"""Reader of the IDX format of MNIST and Fashion-MNIST, raw or gzipped.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim``
big-endian ``uint32`` dimensions, then ``prod(dims)`` items in row-major order.
The reader checks every part of that promise and raises
:class:`~tensorrnn.errors.DataError` on the first broken one: a file that is one
byte short or long is corrupt, and a silently truncated data set would give
wrong accuracies rather than an error.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tensorrnn.data.download import sha256_file
from tensorrnn.data.spec import Found, Raw, Remote, Spec, cached_arrays
from tensorrnn.errors import DataError

__all__ = [
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "IDX_FILES",
    "find_idx_files",
    "find_idx_folder",
    "idx_remotes",
    "verify_sha256",
    "read_idx_set",
]

# IDX type codes and the big-endian numpy dtypes they denote.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
# The largest data sets this toolkit reads hold 47 MB of pixels. A header that
# announces more than 4 GiB is corrupt (or hostile); refusing it early avoids a
# huge allocation before the length check could fail.
_MAX_BYTES = 1 << 32
_DEFAULT_FIX = "replace it with an intact copy (delete it and run `make data`, or download it again)"


def _open(path: Path) -> BinaryIO:
    """Open ``path`` for reading, decompressing on the fly when it starts with the gzip magic."""
    with open(path, "rb") as probe:
        head = probe.read(2)
    if head == _GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _read_exactly(stream: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; return the number of bytes read (less only at EOF)."""
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not got:
            break
        filled += got
    return filled


def _parse_header(stream: BinaryIO, path: Path, fix: str) -> tuple[np.dtype, tuple[int, ...]]:
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: file is empty or shorter than the 4-byte IDX magic number; {fix}")
    if magic[:2] != b"\x00\x00":
        raise DataError(
            f"{path}: wrong magic number {magic.hex()} (an IDX file starts with 0000, then a "
            f"type code and the number of dimensions); this is not an IDX file, {fix}"
        )
    code, ndim = magic[2], magic[3]
    if code not in _DTYPES:
        raise DataError(
            f"{path}: unknown IDX type code 0x{code:02x} (known: "
            f"{', '.join(f'0x{c:02x}' for c in _DTYPES)}); {fix}"
        )
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions; {fix}")
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: header is truncated inside the {ndim} dimension sizes; {fix}")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    return _DTYPES[code], tuple(int(d) for d in dims)


def read_idx(path: str | Path, *, fix: str = _DEFAULT_FIX) -> np.ndarray:
    """Read a whole IDX file into a native-endian numpy array.

    Parameters
    ----------
    path
        Raw or gzipped IDX file; gzip is recognised by its magic bytes, not by the name.
    fix
        How the user can repair a broken file; appended to every error message.

    Returns
    -------
    numpy.ndarray
        Array of shape ``dims`` and the dtype of the header's type code.

    Raises
    ------
    DataError
        If the magic number, type code or dimensions are invalid, or the file holds
        fewer or more bytes than ``header + prod(dims) * itemsize``, or the gzip
        stream is corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; {fix}")
    try:
        with _open(path) as stream:
            dtype, dims = _parse_header(stream, path, fix)
            expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
            if expected > _MAX_BYTES:
                raise DataError(
                    f"{path}: header announces dims {dims}, {expected} bytes of data, which is "
                    f"implausibly large for an IDX data set; {fix}"
                )
            raw = np.empty(expected, dtype=np.uint8)
            got = _read_exactly(stream, memoryview(raw))
            if got < expected:
                raise DataError(
                    f"{path}: file is truncated: the header announces dims {dims} = {expected} "
                    f"bytes of data but only {got} are present; {fix}"
                )
            if stream.read(1):
                raise DataError(
                    f"{path}: file is longer than its header announces (dims {dims} = {expected} "
                    f"bytes of data, then more bytes follow); {fix}"
                )
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        # gzip raises EOFError for a cut-off stream and BadGzipFile (an OSError) or
        # zlib.error for a damaged one.
        raise DataError(f"{path}: cannot decompress or read the file ({error}); {fix}") from error
    return raw.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def read_idx_images(path: str | Path, *, fix: str = _DEFAULT_FIX) -> np.ndarray:
    """Read an IDX image file: ``uint8`` of shape ``(N, H, W)``.

    Raises
    ------
    DataError
        If the file is not a valid IDX file of three dimensions with unsigned bytes.
    """
    images = read_idx(path, fix=fix)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(
            f"{path}: expected unsigned bytes of shape (N, H, W) in an image file, got "
            f"{images.dtype} of shape {images.shape}; {fix}"
        )
    return images


def read_idx_labels(path: str | Path, n_classes: int, *, fix: str = _DEFAULT_FIX) -> np.ndarray:
    """Read an IDX label file: ``int64`` of shape ``(N,)`` with values in ``[0, n_classes)``.

    Raises
    ------
    DataError
        If the file is not a valid one-dimensional IDX file of unsigned bytes, or a
        label lies outside ``[0, n_classes)``.
    """
    labels = read_idx(path, fix=fix)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{path}: expected unsigned bytes of shape (N,) in a label file, got "
            f"{labels.dtype} of shape {labels.shape}; {fix}"
        )
    if labels.size and int(labels.max()) >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise DataError(
            f"{path}: label {int(labels[bad])} at index {bad} is out of range [0, {n_classes}); {fix}"
        )
    return labels.astype(np.int64)


# --------------------------------------------------------------------------- #
# Data sets stored as four IDX files (MNIST, Fashion-MNIST)

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def find_idx_files(folder: Path) -> list[Path] | None:
    """The four IDX files in ``folder`` (``.gz`` preferred), or ``None`` if one is missing."""
    files = []
    for stem in IDX_FILES:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                files.append(candidate)
                break
        else:
            return None
    return files


def find_idx_folder(folder: Path) -> Path | None:
    """``folder`` when it holds the four IDX files, else ``None`` (a :attr:`Place.find`)."""
    return folder if find_idx_files(folder) is not None else None


def idx_remotes(bases: tuple[str, ...], hashes: tuple[str, ...]) -> tuple[Remote, ...]:
    """The four gzipped IDX files (hashes in :data:`IDX_FILES` order), each from every mirror."""
    return tuple(
        Remote(f"{stem}.gz", tuple(base + f"{stem}.gz" for base in bases), sha)
        for stem, sha in zip(IDX_FILES, hashes, strict=True)
    )


def verify_sha256(path: Path, expected: str, fix: str) -> None:
    """Raise :class:`DataError` unless the SHA-256 of ``path`` is ``expected``."""
    digest = sha256_file(path)
    if digest != expected:
        raise DataError(
            f"{path}: SHA-256 is {digest}, expected {expected}: the file is damaged or not the "
            f"official one; {fix}"
        )


def read_idx_set(spec: Spec, found: Found | None, data_dir: str | Path | None, use_cache: bool) -> Raw:
    """Read the four IDX files of ``found.path`` (official train and test sets), cached.

    Files named in ``found.sha256`` are checked against it whenever they are
    decoded (a cache hit is keyed by their size and modification time).
    """
    assert found is not None
    folder = found.path
    files = find_idx_files(folder)
    if files is None:
        raise DataError(f"{folder}: the four IDX files disappeared while loading")
    fix = found.fix or f"replace it with an intact copy ({spec.how_to_get})"

    def decode() -> dict[str, Any]:
        for path in files:
            expected = found.sha256.get(path.name)
            if expected is not None:
                verify_sha256(path, expected, fix)
        return {
            "train_images": read_idx_images(files[0], fix=fix)[:, None],
            "train_labels": read_idx_labels(files[1], spec.n_classes, fix=fix),
            "test_images": read_idx_images(files[2], fix=fix)[:, None],
            "test_labels": read_idx_labels(files[3], spec.n_classes, fix=fix),
        }

    arrays: Mapping[str, np.ndarray] = cached_arrays(
        spec, files, _ARRAYS, decode, folder, data_dir, use_cache, f"IDX files in {folder}"
    )
    return Raw(arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"])
