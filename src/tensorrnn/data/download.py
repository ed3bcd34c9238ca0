"""Checked downloads: a file lands under its final name only when its SHA-256 matches.

The bytes are streamed into a hidden temporary file in the target folder (same
file system, so the final :func:`os.replace` is atomic) while the digest is
computed. A wrong checksum, a connection that closes early or any other error
removes the temporary file: a crash leaves no half-written data set that a later
run could take for a good one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from tensorrnn import __version__
from tensorrnn.errors import ConfigError, DataError

__all__ = ["sha256_file", "download", "download_first"]

_CHUNK = 1 << 16
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: str | Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | Path,
    sha256: str,
    *,
    quiet: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` and keep it only if its SHA-256 is ``sha256``.

    Parameters
    ----------
    url
        Where to fetch the file (``http``, ``https`` or ``file``).
    dest
        Final path. Its folder is created. If ``dest`` already exists with the right
        checksum nothing is fetched; with a wrong one it is replaced only once a good
        copy has arrived.
    sha256
        Expected lowercase hex SHA-256 of the file.
    quiet
        Hide the progress bar.
    timeout
        Seconds to wait for the connection and for each read.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    ConfigError
        If ``sha256`` is not 64 hex digits.
    DataError
        If the server cannot be reached or answers with an error, the connection
        closes before ``Content-Length`` bytes arrived, or the checksum differs.
        No partial or temporary file is left behind.
    """
    sha256 = sha256.lower()
    if not _HEX64.fullmatch(sha256):
        raise ConfigError(f"sha256={sha256!r} is not a SHA-256 digest (64 hex digits)")
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got, length, digest = _stream(url, out, dest.name, quiet=quiet, timeout=timeout)
            out.flush()
            os.fsync(out.fileno())
        if length is not None and got != length:
            raise DataError(
                f"download of {url} stopped after {got} of {length} bytes; check the connection "
                "and run the command again"
            )
        if digest != sha256:
            raise DataError(
                f"download of {url} has SHA-256 {digest}, expected {sha256}: the server sent a "
                f"different or damaged file, nothing was saved to {dest}; try again later or "
                "another mirror"
            )
        os.replace(tmp, dest)
    finally:
        # Reached on success too, where the temporary name no longer exists.
        tmp.unlink(missing_ok=True)
    return dest


def _stream(url: str, out, label: str, *, quiet: bool, timeout: float) -> tuple[int, int | None, str]:
    """Copy the body of ``url`` into ``out``; return (bytes, Content-Length, sha256)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"tensorrnn/{__version__}"})
    digest = hashlib.sha256()
    got = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            header = response.headers.get("Content-Length")
            length = int(header) if header and header.isdigit() else None
            with tqdm(total=length, unit="B", unit_scale=True, desc=label, disable=quiet, leave=False) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise DataError(f"download of {url} failed: HTTP {error.code} {error.reason}") from None
    except http.client.IncompleteRead as error:
        raise DataError(
            f"download of {url} stopped after {got + len(error.partial)} bytes "
            f"({error.expected} more were announced); check the connection and run the "
            "command again"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataError(
            f"download of {url} failed after {got} bytes: {reason}; check the connection "
            "(or place the file by hand) and run the command again"
        ) from None
    return got, length, digest.hexdigest()


def download_first(
    urls: Sequence[str],
    dest: str | Path,
    sha256: str,
    *,
    quiet: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Try each mirror in ``urls`` in turn (see :func:`download`); raise if all fail.

    Raises
    ------
    DataError
        Naming every mirror and why it failed.
    """
    failures = []
    for url in urls:
        try:
            return download(url, dest, sha256, quiet=quiet, timeout=timeout)
        except DataError as error:
            failures.append(str(error))
    raise DataError(f"could not download {Path(dest).name}: " + " | ".join(failures))
