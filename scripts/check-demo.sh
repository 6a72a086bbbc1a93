#!/usr/bin/env bash
# Runs the README's first command's demo (scripts/demo.sh) and checks what it
# printed, and that it left nothing behind: each process's groups under each
# handler, the decision, explain, and no directory, mount or process of its
# private containerd after it ends. Prints a "result:" line.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/demo.txt
mkdir -p target
start=$(date +%s%N)
scripts/demo.sh | tee "$out"
ms=$((($(date +%s%N) - start) / 1000000))
fail() { echo "check-demo: $*" >&2; exit 1; }
expect() { grep -Eq -- "$1" "$out" || fail "no line matching: $1"; }
alice='uid=1000\(alice\) gid=1000\(alice\)'
expect "^  runc +main  $alice groups=1000\(alice\),50000\(group-in-image\),60000\$"
expect "^ +exec  $alice groups=1000\(alice\),50000\(group-in-image\),60000\$"
expect "^  strict-groups +main  $alice groups=1000\(alice\),60000\$"
expect "^ +exec  $alice groups=1000\(alice\),60000\$"
expect '^  strict-groups +\{.*"msg":"strict-groups: decision".*"kept":\[1000,60000\],"removed":\[50000\]'
expect '^  summary +would remove 50000 from pod default/kep-runc container app$'
expect '^  summary +nothing to remove from pod default/kep-strict-groups container app$'
expect '^demo: OK: '
dir=$(sed -n 's/^demo: \[2\/5\] .* under \(.*\)$/\1/p' "$out")
[ -n "$dir" ] || fail "the demo did not name its directory"
[ ! -e "$dir" ] || fail "$dir is left"
! grep -q " $dir" /proc/self/mountinfo || fail "mounts under $dir are left"
! pgrep -f -- "$dir" >/dev/null || fail "processes of $dir are left: $(pgrep -af -- "$dir")"
printf 'result: KEP-3619 pod: runc main+exec 1000,50000,60000, strict-groups 1000,60000, decision removed 50000; nothing left; %d ms\n' "$ms"
