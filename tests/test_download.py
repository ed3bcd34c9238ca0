"""Checked downloads against an HTTP server on 127.0.0.1 started by the tests."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tensorrnn.data import load_dataset, registry, spec
from tensorrnn.data.download import download, download_first, sha256_file
from tensorrnn.errors import ConfigError, DataError

PAYLOAD = os.urandom(200_000)
GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    # Extra files a test publishes under /files/<name>.
    files: dict[str, bytes] = {}

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        name = self.path.removeprefix("/files/")
        if name in self.files:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.files[name])))
            self.end_headers()
            self.wfile.write(self.files[name])
        elif self.path == "/good.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/corrupt.bin":
            body = bytearray(PAYLOAD)
            body[1234] ^= 0xFF
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(bytes(body))
        elif self.path == "/dies.bin":
            # Promise the whole file, send a third of it, hang up.
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_good_file_lands_with_its_checksum(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "file.bin"
    assert download(f"{server}/good.bin", dest, GOOD_SHA, quiet=True) == dest
    assert dest.read_bytes() == PAYLOAD
    assert sha256_file(dest) == GOOD_SHA
    assert _leftovers(dest.parent) == ["file.bin"]  # no temporary file left


def test_existing_good_file_is_not_fetched_again(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(PAYLOAD)
    # The URL would 404: success proves nothing was requested.
    assert download(f"{server}/missing.bin", dest, GOOD_SHA, quiet=True) == dest


def test_corrupt_file_is_refused_and_nothing_is_left(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="SHA-256"):
        download(f"{server}/corrupt.bin", dest, GOOD_SHA, quiet=True)
    assert _leftovers(tmp_path) == []


def test_corrupt_download_does_not_replace_an_existing_file(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old contents")
    with pytest.raises(DataError):
        download(f"{server}/corrupt.bin", dest, GOOD_SHA, quiet=True)
    assert dest.read_bytes() == b"old contents"
    assert _leftovers(tmp_path) == ["file.bin"]


def test_server_dying_half_way_leaves_nothing(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="stopped after"):
        download(f"{server}/dies.bin", dest, GOOD_SHA, quiet=True)
    assert _leftovers(tmp_path) == []


def test_http_error_and_unreachable_server(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="404"):
        download(f"{server}/nope.bin", tmp_path / "a.bin", GOOD_SHA, quiet=True)
    # Port 9 on loopback: nothing listens there, the connection is refused at once.
    with pytest.raises(DataError, match="failed"):
        download("http://127.0.0.1:9/x.bin", tmp_path / "b.bin", GOOD_SHA, quiet=True, timeout=5)
    assert _leftovers(tmp_path) == []


def test_mirrors_are_tried_in_order(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    urls = [f"{server}/dies.bin", f"{server}/corrupt.bin", f"{server}/good.bin"]
    assert download_first(urls, dest, GOOD_SHA, quiet=True).read_bytes() == PAYLOAD
    with pytest.raises(DataError) as info:
        download_first(urls[:2], tmp_path / "other.bin", GOOD_SHA, quiet=True)
    assert "dies.bin" in str(info.value) and "corrupt.bin" in str(info.value)
    assert _leftovers(tmp_path) == ["file.bin"]


def test_malformed_checksum_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="64 hex"):
        download("http://127.0.0.1:9/x", tmp_path / "x", "abc", quiet=True)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.tobytes())


def test_load_dataset_downloads_into_the_data_dir(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a missing data set is fetched from its (loopback) mirrors, checked, loaded."""
    rng = np.random.default_rng(0)
    files = {}
    for prefix, n in (("train", 30), ("t10k", 10)):
        files[f"{prefix}-images-idx3-ubyte.gz"] = _idx(rng.integers(0, 256, (n, 28, 28), np.uint8))
        files[f"{prefix}-labels-idx1-ubyte.gz"] = _idx((np.arange(n) % 10).astype(np.uint8))
    monkeypatch.setattr(_Handler, "files", files)
    remotes = tuple(
        spec.Remote(
            name,
            (f"{server}/missing/{name}", f"{server}/files/{name}"),  # first mirror is down
            hashlib.sha256(blob).hexdigest(),
        )
        for name, blob in files.items()
    )
    patched = dataclasses.replace(registry._SPECS["mnist"], remotes=remotes)
    monkeypatch.setitem(registry._SPECS, "mnist", patched)
    monkeypatch.delenv(spec.ENV_VAR, raising=False)
    monkeypatch.setattr(spec, "_project_data_dir", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="--download mnist"):
        load_dataset("mnist", data_dir=root)
    ds = load_dataset("mnist", data_dir=root, download=True, quiet=True, val_fraction=0.2)
    assert ds.info.split_sizes == {"train": 24, "val": 6, "test": 10}
    assert ds.info.source == str(root / "mnist")
    assert sorted(p.name for p in (root / "mnist").glob("*.gz")) == sorted(files)
