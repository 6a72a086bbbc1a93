#!/usr/bin/env bash
# Builds a release into dist/ (emptied first): for each architecture
# (default x86_64 and aarch64) the static binary, .deb, .rpm, installer image
# and its DaemonSet pinned by digest, and their SBOM (packaging/build.sh);
# with several architectures, one installer image of all of them (an OCI
# image index) and the one DaemonSet pinned to it; then SHA256SUMS
# over all of them and, when SIGNING_KEY names a gpg key (in $GNUPGHOME or
# ~/.gnupg), SHA256SUMS.asc, its detached signature, and the key's public
# half as strict-groups-release-key.gpg (binary, for gpgv and apt's
# signed-by). Reproducible: the same commit gives the same SHA256SUMS
# (scripts/check-release.sh builds twice and compares).
# Usage: [SIGNING_KEY=FINGERPRINT] packaging/release.sh [x86_64] [aarch64]
set -euo pipefail
cd "$(dirname "$0")/.."
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
rm -rf dist
mkdir dist
for arch in "${arches[@]}"; do
  packaging/build.sh "$arch" >&2
done
# One installer image for all architectures, and the DaemonSet pinned to it.
version=$(scripts/version.sh)
if [ ${#arches[@]} -gt 1 ]; then
  images=()
  for arch in "${arches[@]}"; do images+=("dist/strict-groups-installer-$version-$arch.tar"); done
  index=$(packaging/daemonset/multiarch.sh "dist/strict-groups-installer-$version.tar" "${images[@]}" 2>/dev/null)
  packaging/daemonset/pinned.sh "$index" all >"dist/strict-groups-installer-$version.yaml"
fi
(cd dist && sha256sum -- * >SHA256SUMS)
if [ -n "${SIGNING_KEY:-}" ]; then
  gpg --batch --yes --local-user "$SIGNING_KEY" --armor --detach-sign --output dist/SHA256SUMS.asc dist/SHA256SUMS
  gpg --batch --yes --export --output dist/strict-groups-release-key.gpg "$SIGNING_KEY"
  echo "release: dist/SHA256SUMS signed by $SIGNING_KEY" >&2
fi
cat dist/SHA256SUMS
