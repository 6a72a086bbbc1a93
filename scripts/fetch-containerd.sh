#!/usr/bin/env bash
# Fetches a newer containerd from Debian's archive and extracts containerd,
# containerd-shim-runc-v2 and ctr into .tools/containerd-SERIES, for the
# end-to-end tests on more containerd versions than Debian 12's 1.6:
#   1.7  from Debian 13 (trixie), 1.7.24;
#   2    from Debian unstable (sid), 2.1 today: the first with KEP-3619's
#        own Strict, the reference the wrapper is compared with.
# Download only: apt reads that suite's package lists into a private
# directory, so nothing of the host's apt state changes and nothing is
# installed or upgraded. Both run on Debian 12 (Go binaries, glibc only).
# Prints the directory. Safe to run twice.
# Usage: scripts/fetch-containerd.sh 1.7|2
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:?usage: $0 1.7|2}
case $series in
1.7) suite=trixie ;;
2) suite=sid ;;
*) echo "fetch-containerd: unknown series $series (1.7 or 2)" >&2; exit 2 ;;
esac
dir=$PWD/.tools/containerd-$series
matches() { "$1" --version 2>/dev/null | awk '{ print $3 }' | grep -q "^v\{0,1\}${series//./\\.}\."; }

if [ -x "$dir/containerd" ] && matches "$dir/containerd"; then
  echo "$dir"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
  >"$work/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
apt-get "${apt_private[@]}" update -qq >&2
(cd "$work" && apt-get "${apt_private[@]}" download containerd >&2)
dpkg-deb -x "$work"/containerd_*_amd64.deb "$work/x"
if ! matches "$work/x/usr/bin/containerd"; then
  echo "fetch-containerd: Debian $suite's containerd is not $series: $("$work/x/usr/bin/containerd" --version)" >&2
  exit 1
fi
mkdir -p "$dir"
for bin in containerd containerd-shim-runc-v2 ctr; do
  install -m 0755 "$work/x/usr/bin/$bin" "$dir/$bin"
done
"$dir/containerd" --version >&2
echo "$dir"
