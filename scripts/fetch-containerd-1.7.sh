#!/usr/bin/env bash
# Fetches Debian 13's containerd 1.7 package and extracts containerd,
# containerd-shim-runc-v2 and ctr into DIR (default .tools/containerd-1.7),
# for the end-to-end tests on a second containerd version. Download only:
# apt reads Debian 13's package lists into a private directory, so nothing of
# the host's apt state changes and nothing is installed or upgraded.
# Prints DIR. Safe to run twice (an existing DIR with a 1.7 containerd is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-$PWD/.tools/containerd-1.7}

if [ -x "$dir/containerd" ] && "$dir/containerd" --version | grep -q ' 1\.7\.'; then
  echo "$dir"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  >"$work/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
apt-get "${apt_private[@]}" update -qq >&2
(cd "$work" && apt-get "${apt_private[@]}" download containerd >&2)
deb=$(ls "$work"/containerd_1.7.*_amd64.deb 2>/dev/null | head -1)
if [ -z "$deb" ]; then
  echo "fetch-containerd-1.7: Debian 13's containerd is not 1.7 any more: $(ls "$work"/*.deb)" >&2
  exit 1
fi
dpkg-deb -x "$deb" "$work/x"
mkdir -p "$dir"
for bin in containerd containerd-shim-runc-v2 ctr; do
  install -m 0755 "$work/x/usr/bin/$bin" "$dir/$bin"
done
"$dir/containerd" --version >&2
echo "$dir"
