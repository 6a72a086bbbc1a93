#!/usr/bin/env bash
# Builds the DaemonSet installer image as an OCI image archive, without a
# container engine: one layer FROM scratch with the static strict-groups
# binary, install.sh, the default node config and a static busybox (the
# shell and tools install.sh needs). Load it with
# `ctr -n k8s.io images import` or push it with skopeo/crane.
# Usage: build-image.sh BINARY OUT.tar [x86_64|aarch64]
# Prints the image's manifest digest (sha256:...), the one to pin it by.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,8p' "$0"; exit 2; }
binary=$1 out=$2 arch=${3:-x86_64}
top=$(cd "$(dirname "$0")/../.." && pwd)
version=$("$top/scripts/version.sh")
name=${IMAGE_NAME:-localhost/strict-groups-installer:$version}
case "$arch" in
  x86_64) oci_arch=amd64 deb_arch=amd64 ;;
  aarch64) oci_arch=arm64 deb_arch=arm64 ;;
  *) echo "build-image: unknown arch $arch" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# busybox-static of the image's architecture.
busybox=${BUSYBOX:-}
if [ -z "$busybox" ]; then
  if [ "$deb_arch" = "$(dpkg --print-architecture)" ]; then
    busybox=/bin/busybox
  else
    (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "busybox-static:$deb_arch" >/dev/null && dpkg-deb -x busybox-static_*.deb bb)
    busybox=$work/bb/bin/busybox
  fi
fi

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/config" "$rootfs/host" "$rootfs/tmp"
install -m 0755 "$binary" "$rootfs/strict-groups"
install -m 0755 "$top/install.sh" "$rootfs/install.sh"
install -m 0644 "$top/config/config.toml" "$rootfs/config/config.toml"
install -m 0755 "$busybox" "$rootfs/bin/busybox"
for applet in sh cat chmod cp cut dirname grep mkdir mv nsenter rm rmdir sed sha256sum sleep sort tr awk; do
  ln -s busybox "$rootfs/bin/$applet"
done

blobs=$work/layout/blobs/sha256
mkdir -p "$blobs"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer.tar" .
digest() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
layer=$(digest "$work/layer.tar")
mv "$work/layer.tar" "$blobs/$layer"
cat >"$work/config.json" <<JSON
{"architecture":"$oci_arch","os":"linux","config":{"Env":["PATH=/bin"],"Entrypoint":["/bin/sh","/install.sh","--root","/host","--binary","/strict-groups"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$layer"]}}
JSON
config=$(digest "$work/config.json")
mv "$work/config.json" "$blobs/$config"
cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$(size "$blobs/$config")},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer","size":$(size "$blobs/$layer")}]}
JSON
manifest=$(digest "$work/manifest.json")
msize=$(size "$work/manifest.json")
mv "$work/manifest.json" "$blobs/$manifest"
cat >"$work/layout/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$msize,"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"$version"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/layout" -cf "$out" .
echo "build-image: $out ($name, $oci_arch, sha256:$manifest)" >&2
echo "sha256:$manifest"
