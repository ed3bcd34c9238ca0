"""Fashion-MNIST (Zalando): the Debian package, a data root's ``fashion-mnist/``, or a download.

Places, best first: ``<data_dir>/fashion-mnist/`` alone when ``data_dir`` is
given; else ``$TENSORRNN_DATA/fashion-mnist/``, the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), then the
other data roots. Each holds the four IDX files, gzipped or not.
"""

from __future__ import annotations

from pathlib import Path

from tensorrnn.data.idx import find_idx_folder, idx_remotes, read_idx_set
from tensorrnn.data.spec import Place, Spec, data_roots, env_root, fixed_sizes

__all__ = ["DEBIAN_FASHION_DIR", "DEBIAN_PACKAGE", "SPEC"]

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FOLDER = "fashion-mnist"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Official addresses and SHA-256 of the official (gzipped) files, verified here:
# the Debian package ships the official gzip streams with the gzip header's file
# name and time stamp removed; putting them back (times 1504176606 / 1504176627,
# i.e. 2017-08-31) reproduces the MD5s that Zalando publishes in the README, and
# these are the SHA-256 of those files.
URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
SHA256 = (
    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
)


def _places(data_dir: str | Path | None) -> list[Place]:
    places = [Place(root / FOLDER, "data dir", find_idx_folder) for root in data_roots(data_dir)]
    if data_dir is None:
        # After $TENSORRNN_DATA, before the project's and the user's folders. The
        # module global is read at call time, so it can be redirected (tests).
        debian = Place(DEBIAN_FASHION_DIR, f"Debian package {DEBIAN_PACKAGE}", find_idx_folder)
        places.insert(1 if env_root() is not None else 0, debian)
    return places


SPEC = Spec(
    name="fashion-mnist",
    title="Fashion-MNIST (Zalando), 28x28 grey",
    image_shape=(1, 28, 28),
    class_names=CLASS_NAMES,
    pixel_range=(0.0, 1.0),
    notes="Official 60,000/10,000 train/test files; validation carved from train.",
    test_is_official=True,
    options={},
    sizes=fixed_sizes(60000, 10000),
    places=_places,
    read=lambda found, options, seed, data_dir, use_cache: read_idx_set(SPEC, found, data_dir, use_cache),
    how_to_get=(
        f"run `make data` (apt-get install {DEBIAN_PACKAGE}) or `tensorrnn data --download fashion-mnist`"
    ),
    folder=FOLDER,
    remotes=idx_remotes(URLS, SHA256),
)
