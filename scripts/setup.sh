#!/usr/bin/env bash
# Installs what building, packaging and testing strict-groups needs on
# Debian 12, as root:
# - the runtimes it wraps (runc, crun), containerd 1.6 and podman for the
#   end-to-end tests, busybox-static for the test images, protoc for
#   containerd's API, Go for the OCI conformance suite and runc's Go source
#   for the parser oracle, GNU time for the benchmark, rpm/cpio to check the
#   .rpm, libseccomp-dev to build youki;
# - the musl targets of Rust (x86_64 and aarch64, from rustup: the binary
#   that ships is static on musl), gcc-aarch64-linux-gnu as the aarch64
#   linker driver, qemu-user-static to run aarch64 binaries, and Debian's
#   arm64 package lists (the aarch64 installer image takes busybox-static
#   from them: dpkg --add-architecture arm64, nothing of arm64 installed);
# - cargo-deb and cargo-generate-rpm (packages), cargo-auditable (the
#   dependency list inside the binary), cargo-deny (licences, bans, sources);
#   gnupg, apt-utils and createrepo-c for the release's signatures and
#   signed package repositories;
# - the other stacks the tests run on, under .tools/: containerd 1.7 and 2.1
#   from Debian 13's and Debian unstable's packages (download only) and youki
#   from crates.io.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

packages=(runc crun containerd podman busybox-static protobuf-compiler golang-go golang-github-opencontainers-runc-dev jq time rpm cpio
  file libseccomp-dev pkg-config ca-certificates gcc-aarch64-linux-gnu
  libc6-dev-arm64-cross qemu-user-static gnupg gpgv binutils apt-utils createrepo-c)
missing=()
for p in "${packages[@]}"; do have "$p" || missing+=("$p"); done
updated=
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding Debian's arm64 package lists (busybox-static of the aarch64 installer image)"
  dpkg --add-architecture arm64
  apt-get update -qq
  updated=1
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  [ -n "$updated" ] || apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust 1.85 or newer (edition 2024) from rustup for the native build;
# Debian 12's default cargo is older.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1 || [ "$(command -v cargo)" = /usr/bin/cargo ]; then
  echo "setup: rustup's cargo not found; install Rust 1.85+ with rustup (https://rustup.rs)" >&2
  exit 1
fi
cargo --version
# The binary that ships is static on musl (scripts/build-release.sh,
# scripts/cross-arm64.sh).
# The list is read whole first: `grep -q` stopping early would make rustup
# fail on a closed pipe.
installed=$(rustup target list --installed)
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
for tool in cargo-deb cargo-generate-rpm cargo-auditable cargo-deny; do
  command -v "$tool" >/dev/null || cargo install --locked --quiet "$tool"
done
scripts_dir=$(dirname "$0")
"$scripts_dir/fetch-containerd.sh" 1.7 >/dev/null
"$scripts_dir/fetch-containerd.sh" 2 >/dev/null
"$scripts_dir/build-youki.sh" >/dev/null
# The demo (README command 1) then starts at once: its binaries are built.
"$scripts_dir/build-release.sh" >/dev/null
(cd "$scripts_dir/.." && cargo build --locked --quiet --example demo)
echo "setup: done"
