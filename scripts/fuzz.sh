#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, via cargo-fuzz) of every parser:
# runc's argv, config.json, the exec process file, an image's passwd/group,
# the node config, containerd's CRI record.
# Usage: scripts/fuzz.sh [RUNS] [TARGET...]   (default: 10000000 runs, all targets)
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. No sanitizer: the code under test is safe Rust,
# and the fuzzer looks for panics, overflows (debug assertions on) and hangs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH" RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
runs=${1:-10000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build -s none -O -a >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  start=$SECONDS
  log=$(mktemp)
  if ! cargo fuzz run -s none -O -a "$t" "corpus/$t" "seeds/$t" -- \
      -runs="$runs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (crash input in fuzz/artifacts/$t)"
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz: $t: $execs executions, no crash ($((SECONDS - start)) s)"
  rm -f "$log"
done
