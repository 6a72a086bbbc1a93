#!/usr/bin/env bash
# Builds the signed package repositories of a release from the .deb and .rpm
# files in DIST (packaging/release.sh's dist/), into OUT:
#   OUT/apt  a flat apt repository: the .debs, Packages, Release, and Release
#            signed twice (InRelease, clear-signed; Release.gpg, detached).
#            A node uses it with
#              deb [signed-by=/usr/share/keyrings/strict-groups.gpg] URL/apt ./
#   OUT/rpm  an rpm repository: the .rpms signed (rpmsign), createrepo_c's
#            metadata, and repodata/repomd.xml.asc (for repo_gpgcheck=1).
# Both are signed by SIGNING_KEY (a gpg key in $GNUPGHOME or ~/.gnupg), the
# key that signs SHA256SUMS. The .rpms in OUT/rpm carry a signature header;
# their payload is the one SHA256SUMS covers in DIST, unchanged.
# Usage: SIGNING_KEY=FINGERPRINT packaging/repos.sh DIST OUT
set -euo pipefail
[ $# -eq 2 ] && [ -n "${SIGNING_KEY:-}" ] || { sed -n '2,14p' "$0"; exit 2; }
dist=$1 out=$2
for tool in apt-ftparchive createrepo_c rpmsign gpg; do
  command -v "$tool" >/dev/null || { echo "repos: $tool not found (apt-get install apt-utils createrepo-c rpm gnupg)" >&2; exit 1; }
done
rm -rf "$out/apt" "$out/rpm"
mkdir -p "$out/apt" "$out/rpm"

cp "$dist"/*.deb "$out/apt/"
(
  cd "$out/apt"
  apt-ftparchive packages . >Packages
  gzip -9n <Packages >Packages.gz
  # (written beside, not into, the directory it describes)
  apt-ftparchive -o APT::FTPArchive::Release::Origin=strict-groups \
    -o APT::FTPArchive::Release::Label=strict-groups release . >../Release.new
  mv ../Release.new Release
  gpg --batch --yes --local-user "$SIGNING_KEY" --clearsign --output InRelease Release
  gpg --batch --yes --local-user "$SIGNING_KEY" --armor --detach-sign --output Release.gpg Release
)

cp "$dist"/*.rpm "$out/rpm/"
# (Debian names gpg2 in rpm's macros; gpg is the same program.)
rpmsign --define "_gpg_name $SIGNING_KEY" --define "__gpg $(command -v gpg)" --addsign "$out"/rpm/*.rpm 2>&1 |
  { grep -v -e GPG_TTY -e '\.rpm:$' || true; } >&2
createrepo_c --quiet "$out/rpm"
gpg --batch --yes --local-user "$SIGNING_KEY" --armor --detach-sign \
  --output "$out/rpm/repodata/repomd.xml.asc" "$out/rpm/repodata/repomd.xml"
gpg --batch --yes --armor --export --output "$out/rpm/RPM-GPG-KEY-strict-groups" "$SIGNING_KEY"
echo "repos: $out/apt and $out/rpm, signed by $SIGNING_KEY" >&2
