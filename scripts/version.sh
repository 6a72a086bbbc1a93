#!/usr/bin/env bash
# Prints the package version, from Cargo.toml's [package] section: the one
# place the release scripts read it from.
set -euo pipefail
sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -1
