#!/usr/bin/env bash
# Writes the DaemonSet of packaging/daemonset/daemonset.yaml, its image
# pinned by digest (so a node runs exactly the image that was built and
# checksummed, whatever a tag later points to). For one architecture it is
# named and selected per architecture (strict-groups-installer-amd64, -arm64)
# and runs on nodes of that architecture; for `all` (the digest of
# multiarch.sh's image index) it is the one DaemonSet of every node.
# Usage: pinned.sh sha256:DIGEST x86_64|aarch64|all > daemonset.yaml
# The image's repository: $IMAGE_REPO (default registry.example.com/strict-groups-installer);
# push the archive there keeping its digest (skopeo copy --preserve-digests
# oci-archive:FILE.tar docker://REPO:VERSION).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,10p' "$0"; exit 2; }
digest=$1 arch=$2
case "$digest" in sha256:????????????????????????????????????????????????????????????????) ;;
  *) echo "pinned: $digest is not a sha256 digest" >&2; exit 2 ;; esac
case "$arch" in
  x86_64) oci_arch=amd64 ;;
  aarch64) oci_arch=arm64 ;;
  all) oci_arch= ;;
  *) echo "pinned: unknown arch $arch" >&2; exit 2 ;;
esac
repo=${IMAGE_REPO:-registry.example.com/strict-groups-installer}
# The image pinned by digest; for one architecture also the name and the
# node selector.
edits=(-e "s|^\( *image:\).*|\1 $repo@$digest|")
if [ -z "$oci_arch" ]; then
  echo "# For every node: the multi-architecture image index, pinned by digest."
else
  echo "# For $oci_arch nodes, the image pinned by digest (written by packaging/build.sh)."
  edits+=(-e "s|strict-groups-installer\$|strict-groups-installer-$oci_arch|"
    -e "s|^\( *\)strict-groups.io/runtime: installed\$|&\n\1kubernetes.io/arch: $oci_arch|")
fi
sed "${edits[@]}" "$(dirname "$0")/daemonset.yaml"
