#!/usr/bin/env bash
# KEP-3619's example pod on this machine, with no cluster: a private
# containerd (configured by `strict-groups configure` from its own
# `containerd config default`) runs the pod once with the runc handler and
# once with strict-groups, and the demo prints what each process got, the
# wrapper's decision and `strict-groups explain`. It removes all it started.
# Run as root after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: must run as root: it starts containerd and real containers" >&2
  exit 1
fi
echo "demo: building the static binary that ships, and the demo"
bin=$(scripts/build-release.sh 2>/dev/null) || { echo "demo: building failed: run scripts/build-release.sh to see why" >&2; exit 1; }
cargo build --locked --quiet --example demo
STRICT_GROUPS_BIN="$PWD/$bin" exec target/debug/examples/demo
