#!/usr/bin/env bash
# Joins per-architecture installer images (OCI archives from build-image.sh)
# into one multi-architecture archive: their blobs, and an image index that
# names each manifest with its platform, so that one DaemonSet pinned to the
# index's digest runs the right image on amd64 and arm64 nodes alike.
# Deterministic, as build-image.sh: sorted entries, time 0, owner root.
# Usage: multiarch.sh OUT.tar IMAGE.tar...   Prints the index's digest.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,7p' "$0"; exit 2; }
out=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/layout
mkdir -p "$layout/blobs/sha256"
entries=()
name=
ref=
for archive in "$@"; do
  dir=$work/in.${#entries[@]}
  mkdir -p "$dir"
  tar -C "$dir" -xf "$archive"
  manifest=$(jq -c '.manifests[0] | {mediaType, digest, size}' "$dir/index.json")
  name=$(jq -r '.manifests[0].annotations["io.containerd.image.name"]' "$dir/index.json")
  ref=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$dir/index.json")
  digest=$(jq -r .digest <<<"$manifest")
  config=$(jq -r .config.digest "$dir/blobs/sha256/${digest#sha256:}")
  platform=$(jq -c '{architecture, os}' "$dir/blobs/sha256/${config#sha256:}")
  entries+=("$(jq -c --argjson p "$platform" '. + {platform: $p}' <<<"$manifest")")
  for blob in "$dir"/blobs/sha256/*; do
    [ -e "$layout/blobs/sha256/${blob##*/}" ] || cp "$blob" "$layout/blobs/sha256/"
  done
done
index=$work/index
printf '%s\n' "${entries[@]}" | jq -cs \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: .}' |
  tr -d '\n' >"$index"
digest=$(sha256sum "$index" | cut -d' ' -f1)
size=$(stat -c %s "$index")
mv "$index" "$layout/blobs/sha256/$digest"
jq -cn --arg d "sha256:$digest" --argjson s "$size" --arg n "$name" --arg r "$ref" \
  '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
    annotations: {"io.containerd.image.name": $n, "org.opencontainers.image.ref.name": $r}}]}' \
  >"$layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$layout" -cf "$out" .
echo "multiarch: $out ($name, $#) sha256:$digest" >&2
echo "sha256:$digest"
