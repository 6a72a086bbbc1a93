#!/usr/bin/env bash
# Cross-builds the static aarch64 binary (musl, as the x86_64 one: see
# scripts/build-release.sh) with rustup's aarch64-unknown-linux-musl target
# and gcc-aarch64-linux-gnu as the linker driver (the target brings its own
# C library and start files), then runs the unit and property tests of the
# library under qemu-user.
# Usage: scripts/cross-arm64.sh [--build-only]   (scripts/setup.sh installs
# the toolchain; --build-only, as packaging does, skips the tests)
# Prints the binary's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target=aarch64-unknown-linux-musl
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static
export CARGO_TARGET_DIR=target/cross
# The same flags and build as the x86_64 binary's.
bin=$(scripts/build-release.sh "$target")
if [ "${1:-}" != --build-only ]; then
  echo "== aarch64 unit and property tests under qemu-aarch64" >&2
  cargo test --locked --lib --target "$target" >&2
fi
qemu-aarch64-static "$bin" version >&2
echo "$bin"
