#!/usr/bin/env bash
# Builds what ships, into dist/: the static binary, the .deb and .rpm, and
# the DaemonSet installer image (OCI archive), for x86_64 (default) or aarch64.
# Usage: packaging/build.sh [x86_64|aarch64]
# Needs cargo-deb and cargo-generate-rpm (`cargo install --locked cargo-deb
# cargo-generate-rpm`); aarch64 needs the cross toolchain (scripts/cross-arm64.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
arch=${1:-x86_64}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p dist
case "$arch" in
  x86_64)
    target=x86_64-unknown-linux-musl
    bin=$(scripts/build-release.sh "$target")
    targetdir=target ;;
  aarch64)
    target=aarch64-unknown-linux-musl
    bin=$(scripts/cross-arm64.sh)
    targetdir=target/cross ;;
  *) echo "packaging: unknown arch $arch (x86_64, aarch64)" >&2; exit 2 ;;
esac
cp "$bin" "dist/strict-groups-$version-$arch"
CARGO_TARGET_DIR=$targetdir cargo deb --no-build --no-strip --target "$target" -o dist/ >/dev/null
CARGO_TARGET_DIR=$targetdir cargo generate-rpm --target "$target" -o dist/ >/dev/null
packaging/daemonset/build-image.sh "$bin" "dist/strict-groups-installer-$version-$arch.tar" "$arch"
ls -l dist/ | grep -E "$arch|amd64|arm64"
