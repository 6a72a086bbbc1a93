#!/usr/bin/env bash
# Cross-builds the static aarch64 binary with Debian's Rust (rustc-web,
# cargo-web, libstd-rust-web-dev:arm64) and gcc-aarch64-linux-gnu, then runs
# the unit and property tests of the library under qemu-user.
# Usage: scripts/cross-arm64.sh   (scripts/setup.sh --arm64 installs the toolchain)
# Prints the binary's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
export RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"
cargo=/usr/bin/cargo
"$cargo" build --locked --release --target "$target" --target-dir target/cross >&2
echo "== aarch64 unit and property tests under qemu-aarch64" >&2
"$cargo" test --locked --lib --target "$target" --target-dir target/cross >&2
bin=target/cross/$target/release/strict-groups
qemu-aarch64-static "$bin" version >&2
echo "$bin"
