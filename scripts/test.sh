#!/usr/bin/env bash
# The full test suite, as root: unit and property tests, integration tests
# over real runc, crun and youki containers, private containerd 1.6, 1.7 and
# 2.1 instances driven through the CRI API (with the x86_64 and the aarch64
# binary; on 2.1 against KEP-3619's own Strict), podman over conmon, then the conformance checks. Exits non-zero on
# the first failure. Writes target/what-ran.md: a row per stack, what ran on
# it and what it showed (the README's table).
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
# The other stacks (setup.sh fetched or built them; these print their paths).
containerd17=$(scripts/fetch-containerd.sh 1.7)
containerd2=$(scripts/fetch-containerd.sh 2)
youki=$(scripts/build-youki.sh)

version_of() { # the first version-looking word `$@` prints
  "$@" 2>/dev/null | grep -o '[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*' | head -1
}
runc_v="runc $(version_of runc --version)"
crun_v="crun $(version_of crun --version)"
youki_v="youki $(version_of "$youki" --version)"
ctd16_v="containerd $(version_of containerd --version)"
ctd17_v="containerd $(version_of "$containerd17/containerd" --version)"
ctd2_v="containerd $(version_of "$containerd2/containerd" --version)"

table=$PWD/target/what-ran.md
mkdir -p target
printf '| Stack | What ran | What it showed |\n|---|---|---|\n' >"$table"
# recorded STACK WHAT CMD...: runs CMD, its output shown, and adds a table
# row with the last "result: " line CMD printed (else cargo's test summary).
recorded() {
  local stack=$1 what=$2 log shown
  shift 2
  log=$(mktemp)
  "$@" 2>&1 | tee "$log"
  shown=$(grep -a '^result: ' "$log" | tail -1 | cut -c9-) || true
  if [ -z "$shown" ]; then
    shown=$(grep -a '^test result: ' "$log" | awk '{ p += $4; f += $6 } END { printf "%d tests passed, %d failed", p, f }')
  fi
  rm -f "$log"
  printf '| %s | %s | %s |\n' "$stack" "$what" "$shown" >>"$table"
}

echo "== cargo test (unit, property, integration over runc/crun/containerd, install, packaging)"
cargo test --locked -- --test-threads=4 \
  --skip pods_get_native_strict_groups_through_containerd --skip hostile_images_over_the_real_runtime \
  --skip image_files_parse_as_libcontainer_parses_them --skip configured_corpus_loads_in_a_real_containerd \
  --skip a_pod_runs_on_the_strict_groups_handler_of_each_configured_config \
  --skip through_podman_and_conmon

echo "== the fuzz targets still build (scripts/fuzz.sh runs them)"
cargo check --locked --quiet --manifest-path fuzz/Cargo.toml --bins

echo "== README command 1: the demo (KEP-3619's pod on runc and on strict-groups), its output checked"
recorded "$ctd16_v, $runc_v" "the demo (scripts/demo.sh, checked by scripts/check-demo.sh)" scripts/check-demo.sh

echo "== the container matrix and hostile images under the wrapper, over each real runtime"
# crun 1.8.1 refuses a hybrid cgroup layout: it runs in a mount namespace
# without the cgroup2 mount. youki runs one container at a time (its `run`
# can miss its container's exit when several run at once).
for rt in runc crun youki; do
  case $rt in
  runc) stack=$runc_v; path=runc; wrap=(); threads=4 ;;
  crun) stack="$crun_v (cgroup2 unmounted)"; path=crun; wrap=(scripts/without-cgroup2.sh); threads=4 ;;
  youki) stack=$youki_v; path=$youki; wrap=(); threads=1 ;;
  esac
  echo "== $stack: tests/runc.rs"
  recorded "$stack" "container matrix (tests/runc.rs: create, run, exec, lifecycle, errors, broken node config)" \
    env STRICT_GROUPS_TEST_RUNTIME="$path" "${wrap[@]}" cargo test --locked --test runc -- --test-threads=$threads
  echo "== $stack: hostile images, a line per case"
  recorded "$stack" "hostile images (tests/hostile.rs)" \
    env STRICT_GROUPS_TEST_RUNTIME="$path" "${wrap[@]}" cargo test --locked --test hostile hostile_images_over_the_real_runtime -- --nocapture
done

echo "== podman over conmon (CRI-O's monitor), over runc and over crun"
podman_v="podman $(version_of podman --version) + conmon $(version_of conmon --version)"
recorded "$podman_v, $runc_v" "tests/conmon.rs: run, podman exec, forged and bad annotations, renaming image" \
  cargo test --locked --test conmon -- --nocapture
recorded "$podman_v, $crun_v (cgroup2 unmounted)" "tests/conmon.rs: run, podman exec, forged and bad annotations" \
  env STRICT_GROUPS_TEST_RUNTIME=crun scripts/without-cgroup2.sh cargo test --locked --test conmon -- --nocapture

# The aarch64 binary that ships, run by qemu-user through binfmt_misc.
echo "== aarch64: static cross build, unit and property tests under qemu-user, packages"
scripts/cross-arm64.sh
packaging/build.sh aarch64
version=$(scripts/version.sh)
deb_root=$(mktemp -d)
dpkg-deb -x "dist/strict-groups_${version}-1_arm64.deb" "$deb_root"
qemu-aarch64-static "$deb_root/usr/bin/strict-groups" version
registered=$(scripts/qemu-aarch64.sh register)
arm64_bin=$deb_root/usr/bin/strict-groups
file -L "$arm64_bin" | grep -q aarch64

# These print a line per scenario: shown, not captured. containerd 2 also
# runs each pod with KEP-3619's own Strict, the reference.
for ctd in 16 17 2; do
  case $ctd in
  16) ctd_dir=; ctd_v=$ctd16_v ;;
  17) ctd_dir=$containerd17; ctd_v=$ctd17_v ;;
  2) ctd_dir=$containerd2; ctd_v=$ctd2_v ;;
  esac
  for arch in x86_64 aarch64; do
    if [ $arch = x86_64 ]; then bin=$PWD/target/debug/strict-groups; else bin=$arm64_bin; fi
    echo "== $ctd_v, $arch binary: end to end through the CRI API, a line per scenario, handler and process"
    recorded "$ctd_v, $runc_v, $arch binary$([ $arch = aarch64 ] && echo ' (qemu-user)')" \
      "CRI end to end (tests/cri_e2e.rs)" \
      env STRICT_GROUPS_CONTAINERD_DIR="$ctd_dir" STRICT_GROUPS_BIN="$bin" \
      cargo test --locked --test cri_e2e -- --nocapture
  done
  echo "== $ctd_v: configure's output loaded, and a pod on it: a line per config"
  recorded "$ctd_v, $runc_v" "configure on tests/configs, loaded by containerd" \
    env STRICT_GROUPS_CONTAINERD_DIR="$ctd_dir" \
    cargo test --locked --test configure configured_corpus_loads_in_a_real_containerd -- --nocapture
  recorded "$ctd_v, $runc_v" "a pod on each configured config" \
    env STRICT_GROUPS_CONTAINERD_DIR="$ctd_dir" \
    cargo test --locked --test configure a_pod_runs_on_the_strict_groups_handler_of_each_configured_config -- --nocapture
done
[ "$registered" = registered ] && scripts/qemu-aarch64.sh unregister
rm -rf "$deb_root"

echo "== image files against runc's own parser (Go oracle from Debian's runc source)"
recorded "runc's Go parser ($runc_v source)" "image-file parser against libcontainer/user (tests/differential.rs)" \
  cargo test --locked --test differential -- --nocapture

echo "== strict-groups report over a generated decision log of 1 million lines"
scripts/bench-report.sh 1000000 "$STRICT_GROUPS_STATIC_BIN" | tee target/report-bench.txt
recorded "the release binary" "report over 1 million generated decision lines (scripts/bench-report.sh)" \
  sh -c "echo result: \$(tail -2 target/report-bench.txt | tr '\n' ' ')"

# OCI runtime conformance (runtime-tools validation suite from ../shared):
# strict-groups over each runtime must pass exactly what the bare runtime
# passes, with the static release binary that ships. crun takes only
# ociVersion 1.0.x: its suite is built with 1.0.2, in its own cache.
bin=$STRICT_GROUPS_STATIC_BIN
echo "== OCI runtime-tools conformance: runc vs strict-groups over runc"
recorded "$runc_v" "OCI runtime-tools suite: bare vs wrapped" scripts/conformance.sh runc "$bin"
echo "== OCI runtime-tools conformance: crun vs strict-groups over crun"
recorded "$crun_v (cgroup2 unmounted)" "OCI runtime-tools suite (ociVersion 1.0.2): bare vs wrapped" \
  env RT_OCI_VERSION=1.0.2 RT_CACHE="${TMPDIR:-/var/tmp}/runtime-tools-conformance-oci-1.0.2" \
  scripts/without-cgroup2.sh scripts/conformance.sh crun "$bin"
echo "== OCI runtime-tools conformance: youki vs strict-groups over youki"
recorded "$youki_v" "OCI runtime-tools suite: bare vs wrapped" scripts/conformance.sh "$youki" "$bin"

echo "== the release: cargo deny (licences, bans, sources), then built twice and compared"
recorded "cargo-deny $(version_of cargo deny --version)" "cargo deny check licenses bans sources (deny.toml)" \
  sh -c 'cargo deny --locked check licenses bans sources && echo "result: licenses ok, bans ok, sources ok"'
recorded "packaging/release.sh (x86_64, aarch64)" "two release builds compared, one signed; signed apt and rpm repositories (scripts/check-release.sh)" \
  scripts/check-release.sh

echo "== what ran where"
cat "$table"
echo "== all tests passed"
