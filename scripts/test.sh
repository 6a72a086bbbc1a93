#!/usr/bin/env bash
# The full test suite, as root: unit and property tests, integration tests
# over real runc/crun containers and a private containerd, then the
# end-to-end and conformance checks. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root (the tests start real containers)" >&2
  exit 1
fi

# The static binary that ships: the packaging and DaemonSet tests use it.
STRICT_GROUPS_STATIC_BIN=$PWD/$(scripts/build-release.sh)
export STRICT_GROUPS_STATIC_BIN

echo "== cargo test (unit, property, integration over runc/crun/containerd, install, packaging)"
cargo test --locked -- --test-threads=4 \
  --skip pods_get_native_strict_groups_through_containerd --skip hostile_images_over_real_runc \
  --skip image_files_parse_as_libcontainer_parses_them --skip configured_corpus_loads_in_a_real_containerd \
  --skip a_pod_runs_on_the_strict_groups_handler_of_each_configured_config

# These two print a line per scenario: shown, not captured.
echo "== end to end through containerd's CRI API: a line per scenario, handler and process"
cargo test --locked --test cri_e2e -- --nocapture
echo "== hostile images over real runc: a line per case"
cargo test --locked --test hostile hostile_images_over_real_runc -- --nocapture
echo "== image files against runc's own parser (Go oracle from Debian's runc source)"
cargo test --locked --test differential -- --nocapture
echo "== configure's output loaded by a real containerd, and a pod on it: a line per config"
cargo test --locked --test configure configured_corpus_loads_in_a_real_containerd -- --nocapture
cargo test --locked --test configure a_pod_runs_on_the_strict_groups_handler_of_each_configured_config -- --nocapture

echo "== aarch64: static cross build, unit and property tests under qemu-user, packages"
scripts/cross-arm64.sh
packaging/build.sh aarch64
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
deb_root=$(mktemp -d)
dpkg-deb -x "dist/strict-groups_${version}-1_arm64.deb" "$deb_root"
qemu-aarch64-static "$deb_root/usr/bin/strict-groups" version
rm -rf "$deb_root"

# OCI runtime conformance (runtime-tools validation suite from ../shared):
# strict-groups over runc must pass exactly what bare runc passes, and over
# crun what bare crun passes, with the static release binary that ships.
bin=$STRICT_GROUPS_STATIC_BIN
for runtime in runc crun; do
  echo "== OCI runtime-tools conformance: $runtime vs strict-groups over $runtime"
  scripts/conformance.sh "$runtime" "$bin"
done
echo "== all tests passed"
