#!/usr/bin/env bash
# Runs a command in a private mount namespace where every cgroup2 mount is
# unmounted, so that crun 1.8.1 sees a plain cgroup v1 host. On a hybrid
# layout (cgroup v1 controllers plus a cgroup2 mount, as Debian 12 VMs have)
# crun refuses to create containers ("cgroups in hybrid mode not supported").
# Nothing changes outside the namespace. Usage: scripts/without-cgroup2.sh CMD [ARG]...
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARG]..." >&2; exit 2; }
exec unshare --mount --propagation private -- bash -c '
  awk '\''$3 == "cgroup2" { print $2 }'\'' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m"
  done
  exec "$@"' without-cgroup2 "$@"
