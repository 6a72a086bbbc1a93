#!/usr/bin/env bash
# Installs what building and testing strict-groups needs on Debian 12:
# the runtimes it wraps (runc, crun), containerd for the end-to-end tests,
# busybox-static for the test images, protoc for containerd's API, Go for the
# OCI conformance suite, and GNU time for the benchmark. Run as root.
set -euo pipefail

packages=(runc crun containerd busybox-static protobuf-compiler golang-go jq time ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust 1.85 or newer (edition 2024). Debian 12's own cargo is older.
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust 1.85+ with rustup (https://rustup.rs)" >&2
  exit 1
fi
cargo --version
echo "setup: done"
