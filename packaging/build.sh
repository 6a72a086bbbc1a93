#!/usr/bin/env bash
# Builds what ships, into dist/: the static binary, the .deb and .rpm, the
# DaemonSet installer image (OCI archive) and its DaemonSet pinned by digest,
# and their SBOM (SPDX), for x86_64 (default) or aarch64.
# Usage: packaging/build.sh [x86_64|aarch64]
# Needs cargo-deb and cargo-generate-rpm (`cargo install --locked cargo-deb
# cargo-generate-rpm`); aarch64 needs the cross toolchain (scripts/cross-arm64.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
arch=${1:-x86_64}
# Every time stamp in the packages and the image is the commit's, so that the
# same commit builds the same bytes (scripts/check-release.sh).
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
    { echo "packaging: not a git checkout: set SOURCE_DATE_EPOCH (the release's time, in seconds)" >&2; exit 2; }
fi
export SOURCE_DATE_EPOCH
version=$(scripts/version.sh)
mkdir -p dist
case "$arch" in
  x86_64)
    target=x86_64-unknown-linux-musl
    bin=$(scripts/build-release.sh "$target")
    targetdir=${CARGO_TARGET_DIR:-target} ;;
  aarch64)
    target=aarch64-unknown-linux-musl
    bin=$(scripts/cross-arm64.sh --build-only)
    targetdir=target/cross ;;
  *) echo "packaging: unknown arch $arch (x86_64, aarch64)" >&2; exit 2 ;;
esac
cp "$bin" "dist/strict-groups-$version-$arch"
CARGO_TARGET_DIR=$targetdir cargo deb --no-build --no-strip --target "$target" -o dist/ >/dev/null
CARGO_TARGET_DIR=$targetdir cargo generate-rpm --target "$target" -o dist/ >/dev/null
image=$(packaging/daemonset/build-image.sh "$bin" "dist/strict-groups-installer-$version-$arch.tar" "$arch")
# The DaemonSet for this architecture, its image pinned by digest: what a
# cluster runs is exactly what was built and checksummed here.
packaging/daemonset/pinned.sh "$image" "$arch" >"dist/strict-groups-installer-$version-$arch.yaml"
# What is inside them: every crate with version, licence and checksum (SPDX).
packaging/sbom.py "$target" "$version" "$arch" dist >"dist/strict-groups-$version-$arch.spdx.json"
ls -l dist/ | grep -E "$arch|amd64|arm64"
