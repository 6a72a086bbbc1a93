#!/usr/bin/env bash
# Builds the release twice (packaging/release.sh), from two copies of this
# checkout in directories of different names and lengths, one after the
# other, each with its own target directory; then compares the two
# SHA256SUMS: every artefact (static binaries, .deb, .rpm, installer images,
# pinned DaemonSets) must be bit-identical. Time stamps come from the commit
# (SOURCE_DATE_EPOCH), crate paths are remapped (scripts/build-release.sh),
# archives are sorted with fixed owners and modes. The second build is signed
# with a throw-away key, as packaging/release.sh signs a release: its
# signature and checksums are then checked as a user checks them. Then the
# signed apt and rpm repositories (packaging/repos.sh) of its packages: apt
# installs from the apt one with a signed-by keyring, rpmkeys checks the
# rpms; another key, changed metadata and a changed package are refused.
# Usage: scripts/check-release.sh [ARCH...]   (default x86_64 aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
work=$(mktemp -d /tmp/sg-release.XXXXXX)
chmod 755 "$work" # apt reads file: repositories as its own user
export GNUPGHOME=$work/gnupg
trap 'gpgconf --kill gpg-agent 2>/dev/null; rm -rf "$work"' EXIT
# A throw-away signing key for USER-ID in a new keyring GNUPGHOME; prints its fingerprint.
new_key() { # GNUPGHOME USER-ID
  mkdir -m 700 "$1"
  GNUPGHOME=$1 gpg --batch --pinentry-mode loopback --passphrase '' --quiet \
    --quick-gen-key "$2" ed25519 sign 1d
  GNUPGHOME=$1 gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }'
}
key=$(new_key "$GNUPGHOME" "strict-groups throw-away test key <release@example.invalid>")
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
echo "reproducible: two release builds in different directories, $((SECONDS - start)) s in all: all $n artefacts bit-identical; the signed SHA256SUMS checks with gpgv and sha256sum"

# The signed repositories.
repos=$work/repos
SIGNING_KEY=$key packaging/repos.sh "$dist" "$repos"
keyring=$dist/strict-groups-release-key.gpg
other=$work/other.gpg
(
  export GNUPGHOME=$work/other-gnupg
  new_key "$GNUPGHOME" "someone else <other@example.invalid>" >/dev/null
  gpg --batch --export --output "$other"
  gpg --batch --armor --export --output "$other.asc"
  gpgconf --kill gpg-agent
)
refused() { # WHAT CMD...: CMD must fail
  local what=$1
  shift
  if "$@" >"$work/out" 2>&1; then
    cat "$work/out"
    echo "release: FAILED: $what was accepted" >&2
    exit 1
  fi
  echo "release: refused as it must be: $what ($(grep -m1 -E '^(E|W):|NOT OK|BAD|NOKEY' "$work/out" || tail -1 "$work/out"))"
}
# apt-get on one repository only, with its own lists and cache (one per
# keyring and repository).
apt_on() { # KEYRING REPO APT-GET-ARGS...
  local state
  state=$work/apt-state.$(echo "$1 $2" | sha256sum | cut -c1-12)
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  echo "deb [signed-by=$1] file:$2 ./" >"$state/sources.list"
  shift 2
  apt-get -q -o Dir::Etc::SourceList="$state/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
    -o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache" \
    -o APT::Sandbox::User=root "$@"
}
apt_install() { apt_on "$1" "$2" update && apt_on "$1" "$2" install -y --no-install-recommends strict-groups; }

version=$(scripts/version.sh)
if apt_install "$keyring" "$repos/apt" >"$work/out" 2>&1; then
  /usr/bin/strict-groups version | grep -qx "strict-groups $version"
  dpkg --purge strict-groups >/dev/null
  echo "release: apt installed strict-groups $version from the signed repository (signed-by) and it ran"
else
  cat "$work/out"
  echo "release: FAILED: apt could not install from the signed repository" >&2
  exit 1
fi
refused "the apt repository under another key" apt_on "$other" "$repos/apt" update
cp -r "$repos/apt" "$work/apt-changed-metadata"
sed -i 's/^Version: .*/Version: 9.9.9-1/' "$work/apt-changed-metadata/Packages"
gzip -9n <"$work/apt-changed-metadata/Packages" >"$work/apt-changed-metadata/Packages.gz"
refused "apt metadata changed after signing" apt_on "$keyring" "$work/apt-changed-metadata" update
cp -r "$repos/apt" "$work/apt-changed-package"
for deb in "$work"/apt-changed-package/*.deb; do printf 'x' >>"$deb"; done
refused "a .deb changed after signing" apt_install "$keyring" "$work/apt-changed-package"
if dpkg -s strict-groups >/dev/null 2>&1; then
  echo "release: FAILED: a refused package is installed" >&2
  exit 1
fi

rpmdb=$work/rpmdb
rpmkeys --dbpath "$rpmdb" --import "$repos/rpm/RPM-GPG-KEY-strict-groups"
for rpm in "$repos"/rpm/*.rpm; do
  rpmkeys --dbpath "$rpmdb" --checksig "$rpm" | grep -q 'signatures OK' ||
    { rpmkeys --dbpath "$rpmdb" --checksig "$rpm"; echo "release: FAILED: $rpm" >&2; exit 1; }
done
echo "release: rpmkeys --checksig: every rpm signed by the release key, digests and signatures OK"
rpmkeys --dbpath "$work/rpmdb-other" --import "$other.asc"
rpm=$(ls "$repos"/rpm/*.rpm | head -1)
refused "an rpm checked against another key" rpmkeys --dbpath "$work/rpmdb-other" --checksig "$rpm"
cp "$rpm" "$work/changed.rpm"
printf 'x' | dd of="$work/changed.rpm" bs=1 seek=$(($(stat -c %s "$rpm") - 100)) conv=notrunc status=none
refused "an rpm changed after signing" rpmkeys --dbpath "$rpmdb" --checksig "$work/changed.rpm"
gpgv --keyring "$keyring" "$repos/rpm/repodata/repomd.xml.asc" "$repos/rpm/repodata/repomd.xml" 2>/dev/null
cp "$repos/rpm/repodata/repomd.xml" "$work/repomd.xml"
sed -i 's/<revision>[0-9]*</<revision>1</' "$work/repomd.xml"
refused "rpm repository metadata changed after signing" \
  gpgv --keyring "$keyring" "$repos/rpm/repodata/repomd.xml.asc" "$work/repomd.xml"

echo "result: all $n artefacts of two release builds bit-identical ($((SECONDS - start)) s); signed SHA256SUMS checked; apt installs from the signed apt repository, rpmkeys accepts the signed rpms; another key, changed metadata and changed packages refused (apt and rpm)"
