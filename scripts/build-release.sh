#!/usr/bin/env bash
# Builds the release binary as it ships: static, non-PIE and on musl, so that
# it starts with no dynamic loader, no relocations and no C library start-up
# work (glibc's, even static, queries the CPU's caches with cpuid, which traps
# to the hypervisor on a VM: 0.3 ms of the 0.45 ms an exec of a static glibc
# binary costs on the development VM), and runs on any Linux host.
# Usage: scripts/build-release.sh [TARGET]   (default: this host's arch, musl;
# `rustup target add x86_64-unknown-linux-musl`, as scripts/setup.sh does;
# CARGO_TARGET_DIR and a cross linker's CARGO_TARGET_<T>_LINKER are honoured:
# scripts/cross-arm64.sh builds aarch64 through this script)
# Prints the path of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target=${1:-$(uname -m)-unknown-linux-musl}
# --target keeps these flags off build scripts and proc-macros, which run on the host.
# The crates' sources are named by a path under /cargo, not this machine's
# CARGO_HOME (panic messages hold them): the same commit gives the same
# bytes wherever and whenever it is built (scripts/check-release.sh).
cargo_home=${CARGO_HOME:-$HOME/.cargo}
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static --remap-path-prefix=$cargo_home=/cargo ${RUSTFLAGS:-}" \
  cargo auditable build --locked --release --target "$target" >&2
echo "${CARGO_TARGET_DIR:-target}/$target/release/strict-groups"
