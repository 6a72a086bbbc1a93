#!/usr/bin/env bash
# Builds the release twice (packaging/release.sh), from two copies of this
# checkout in directories of different names and lengths, one after the
# other, each with its own target directory; then compares the two
# SHA256SUMS: every artefact (static binaries, .deb, .rpm, installer images,
# pinned DaemonSets) must be bit-identical. Time stamps come from the commit
# (SOURCE_DATE_EPOCH), crate paths are remapped (scripts/build-release.sh),
# archives are sorted with fixed owners and modes. The second build is signed
# with a throw-away key, as packaging/release.sh signs a release: its
# signature and checksums are then checked as a user checks them.
# Usage: scripts/check-reproducible.sh [ARCH...]   (default x86_64 aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
work=$(mktemp -d /tmp/sg-repro.XXXXXX)
export GNUPGHOME=$work/gnupg
trap 'gpgconf --kill gpg-agent 2>/dev/null; rm -rf "$work"' EXIT
mkdir -m 700 "$GNUPGHOME"
gpg --batch --pinentry-mode loopback --passphrase '' --quiet \
  --quick-gen-key "strict-groups throw-away test key <release@example.invalid>" ed25519 sign 1d
key=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
start=$SECONDS
dirs=(a build-b-in-a-longer-directory)
# Both copies first: the checkout may change while the first one builds.
for dir in "${dirs[@]}"; do
  mkdir -p "$work/$dir"
  git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$work/$dir" -xf -
done
for dir in "${dirs[@]}"; do
  echo "== release build in $work/$dir" >&2
  signing=
  [ "$dir" = "${dirs[0]}" ] || signing=$key
  (cd "$work/$dir" && SIGNING_KEY=$signing packaging/release.sh "$@" >/dev/null)
  cp "$work/$dir/dist/SHA256SUMS" "$work/$dir.sums"
done
dist=$work/${dirs[1]}/dist
gpgv --keyring "$dist/strict-groups-release-key.gpg" "$dist/SHA256SUMS.asc" "$dist/SHA256SUMS"
(cd "$dist" && sha256sum --check --quiet SHA256SUMS)
if ! diff -u "$work/a.sums" "$work/build-b-in-a-longer-directory.sums"; then
  echo "reproducible: FAILED: the two builds differ (above)" >&2
  exit 1
fi
cat "$work/a.sums"
n=$(wc -l <"$work/a.sums")
echo "result: two release builds in different directories, $((SECONDS - start)) s in all: all $n artefacts bit-identical; the signed SHA256SUMS checks with gpgv and sha256sum"
