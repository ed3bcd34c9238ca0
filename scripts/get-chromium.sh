#!/usr/bin/env bash
# Headless Chromium for the test that renders the demo page (Debian package chromium).
# Installs it as root where apt-get exists; otherwise says how, and that test skips.
set -u
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; then
        echo "get-chromium: installed the Debian package chromium"
        exit 0
    fi
fi
echo "get-chromium: chromium is not installed (as root: apt-get install chromium); the page-rendering test will skip"
