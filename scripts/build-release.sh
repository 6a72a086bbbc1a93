#!/usr/bin/env bash
# Builds the release binary as it ships: static (crt-static) and non-PIE, so
# that it starts with no dynamic loader and no relocations (most of what a
# wrapper costs per container operation) and runs on any Linux host.
# Usage: scripts/build-release.sh [TARGET]   (default: this host's target)
# Prints the path of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target=${1:-$(rustc -vV | sed -n 's/^host: //p')}
# --target keeps these flags off build scripts and proc-macros, which run on the host.
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static ${RUSTFLAGS:-}" \
  cargo build --locked --release --target "$target" >&2
echo "target/$target/release/strict-groups"
