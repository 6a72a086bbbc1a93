#!/usr/bin/env bash
# Lets this x86_64 host run aarch64 binaries as programs: mounts binfmt_misc
# if needed and registers qemu-user's aarch64 handler from
# /usr/lib/binfmt.d/qemu-aarch64.conf (qemu-user-static). Then the aarch64
# strict-groups binary can be containerd's runtime, with runc underneath
# staying x86_64.
# Usage: scripts/qemu-aarch64.sh register|unregister   (as root)
# `register` prints "registered" when it did, "already" when it was; only a
# handler this script registered should be unregistered.
set -euo pipefail
misc=/proc/sys/fs/binfmt_misc
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
case ${1:-} in
register)
  [ -f "$conf" ] || { echo "qemu-aarch64: $conf missing (apt-get install qemu-user-static)" >&2; exit 1; }
  [ -e "$misc/register" ] || mount -t binfmt_misc binfmt_misc "$misc"
  if [ -e "$misc/qemu-aarch64" ]; then
    echo already
  else
    cat "$conf" >"$misc/register"
    echo registered
  fi
  ;;
unregister)
  [ -e "$misc/qemu-aarch64" ] && echo -1 >"$misc/qemu-aarch64"
  ;;
*)
  echo "usage: $0 register|unregister" >&2
  exit 2
  ;;
esac
