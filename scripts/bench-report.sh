#!/usr/bin/env bash
# `strict-groups report` over a large generated decision log: 1 million lines
# (default) from 2 000 workloads in 50 namespaces on 500 nodes, one line in
# 1 000 malformed, plain and gzipped. Prints the time and peak memory of each.
# Usage: scripts/bench-report.sh [LINES] [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
bin=${2:-target/release/strict-groups}
[ -x "$bin" ] || cargo build --release --locked >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/decisions.log
awk -v n="$lines" -v expected="$work/expected" 'BEGIN {
  for (i = 0; i < n; i++) {
    if (i % 1000 == 999) { print "{\"level\":\"info\",\"msg\":\"strict-groups: decision\",\"time\":"; bad++; continue }
    w = i % 2000; ns = w % 50; node = i % 500
    if (!(w in seen)) { seen[w] = 1; rows++ }
    printf "{\"level\":\"info\",\"msg\":\"strict-groups: decision\",\"time\":\"2026-11-%02dT%02d:%02d:%02d.%09dZ\",\"action\":\"create\",\"mode\":\"audit\",\"node\":\"node-%d\",\"pod\":\"ns-%d/app-%d-7d4b9c8f6d-x2x9q\",\"pod_namespace\":\"ns-%d\",\"pod_name\":\"app-%d-7d4b9c8f6d-x2x9q\",\"pod_uid\":\"%08d-0000-0000-0000-000000000000\",\"container\":\"%064d\",\"container_name\":\"app\",\"image\":\"registry.example/app-%d:1.%d\",\"caller\":\"containerd\",\"policy\":\"Strict\",\"source\":\"containerd\",\"kept\":[1000,60000],\"removed\":[%d],\"summary\":\"would remove\"}\n",
      1 + i % 28, i % 24, i % 60, (i / 60) % 60, i, node, ns, w, ns, w, i, i, w, w % 3, 50000 + w % 7
  }
  print rows, bad > expected
}' >"$log"
read -r want_rows want_bad <"$work/expected"
gzip -1 -c "$log" >"$log.gz"
printf 'log: %d lines, %s plain, %s gzip\n' "$lines" "$(du -h "$log" | cut -f1)" "$(du -h "$log.gz" | cut -f1)"
for f in "$log" "$log.gz"; do
  /usr/bin/time -f "%e s elapsed, %M KiB peak RSS" -o "$work/time" \
    "$bin" report --json "$f" >"$work/out.json" 2>"$work/err"
  rows=$(grep -o '"workload"' "$work/out.json" | wc -l)
  bad=$(grep -o '"malformed_lines":[0-9]*' "$work/out.json" | cut -d: -f2)
  printf '%-8s %s; %d rows, %d malformed lines\n' "${f##*.}" "$(cat "$work/time")" "$rows" "$bad"
  if [ "$rows" -ne "$want_rows" ] || [ "$bad" -ne "$want_bad" ]; then
    echo "bench-report: want $want_rows rows and $want_bad malformed lines" >&2
    exit 1
  fi
done
