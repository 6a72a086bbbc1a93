#!/usr/bin/env bash
# The overhead benchmark (benches/overhead.rs) over the binary as it ships.
# Run as root; prints runc vs wrapper medians and the wrapper's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/build-release.sh)
STRICT_GROUPS_BIN="$PWD/$bin" cargo bench --locked --bench overhead
