#!/usr/bin/env bash
# The OCI runtime-tools validation suite (../shared/conformance) against a
# bare runtime and against strict-groups wrapping it: the results must be
# identical. A few suite tests are flaky on bare runtimes too, so tests that
# differ are run again, alone, before a difference counts.
# Usage: scripts/conformance.sh RUNTIME WRAPPER_BINARY   (as root)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
suite=${CONFORMANCE_DIR:-$here/../shared/conformance}
runtime=$(command -v "$1") || { echo "conformance: $1 not found" >&2; exit 2; }
wrapper=$2
cfg=$(mktemp -d)
trap 'rm -rf "$cfg"' EXIT
echo "runtime = \"$runtime\"" >"$cfg/config.toml"
export STRICT_GROUPS_CONFIG=$cfg/config.toml

bash "$suite/setup.sh" || exit 2
out=$(RT_OUT=$cfg/first bash "$suite/compare.sh" "$runtime" "$wrapper")
rc=$?
echo "$out"
[ $rc -eq 0 ] && exit 0
[ $rc -ge 2 ] && exit $rc
differing=$(echo "$out" | sed -n 's/^DIFF \([^:]*\):.*/\1/p' | tr '\n' ' ')
echo "conformance: running again, alone: $differing"
RT_TESTS=$differing RT_OUT=$cfg/again bash "$suite/compare.sh" "$runtime" "$wrapper"
