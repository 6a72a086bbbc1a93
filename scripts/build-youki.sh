#!/usr/bin/env bash
# Builds youki, the third runtime the tests run under the wrapper, from
# crates.io (a pinned version, Rust's own build, nothing downloaded outside
# the registry) into .tools/youki. cgroup v1 and v2 support (Debian 12 VMs
# mount both), seccomp (libseccomp-dev), no systemd. Prints the binary's
# path. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.7.0
root=$PWD/.tools/youki
bin=$root/bin/youki
# The version is read whole first: `grep -q` stopping early would fail it on
# a closed pipe (pipefail), and youki would be built again.
if ! { [ -x "$bin" ] && grep -q "version: $version\$" <<<"$("$bin" --version)"; }; then
  echo "build-youki: building youki $version (a few minutes)" >&2
  cargo install --locked --quiet youki --version "$version" \
    --no-default-features --features v1,v2,seccomp --root "$root" >&2
fi
echo "$bin"
