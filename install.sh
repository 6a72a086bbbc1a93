#!/bin/sh
# Installs strict-groups on a node, or removes it again.
#
#   install.sh [--root DIR] [--binary FILE] [--runtime auto|containerd|k3s|rke2|crio]
#              [--wrap NAME]... [--checksums SHA256SUMS [--keyring KEY.gpg]]
#              [--restart] [--uninstall]
#
# Installs the binary as /usr/local/bin/strict-groups, a default
# /etc/strict-groups/config.toml (if none), and adds the `strict-groups`
# runtime entry to the container runtime's config with
# `strict-groups configure` (comments and all other settings kept). The
# runtime is restarted only with --restart. --uninstall puts back what was
# there before: each file it changed gets back its content, mode, owner and
# modification time (copied with cp -p before the first change), files it
# added are removed, and so are the directories it created; directories that
# existed keep their own mode and owner (their modification time moves).
# Safe to run twice. POSIX sh, so that it also runs
# from the DaemonSet image (busybox).
#
# --root DIR   act on a node's files under DIR (the DaemonSet mounts the host there)
# --binary F   the strict-groups binary to install (default: beside this script,
#              else the release build of this checkout)
# --runtime R  which runtime to configure (default: auto-detect)
# --wrap NAME  also wrap containerd's runtime entry NAME (nvidia on a GPU
#              node) as the handler strict-groups-NAME: the link
#              /usr/local/bin/strict-groups-NAME runs the wrapper, and the
#              node config names NAME's real runtime under [runtimes] for it
#              (repeatable; containerd only)
# --checksums S  refuse a binary whose SHA-256 is not the one S lists for its
#              file name (a release's SHA256SUMS); checked before it is run
# --keyring K  and refuse S unless S.asc is a good signature of S by a key in
#              K (an OpenPGP public key, binary as `gpg --export` writes it;
#              needs gpgv)
set -eu

root=/
binary=
runtime=auto
checksums=
keyring=
wraps=
restart=no
uninstall=no
usage() { echo "install.sh: $* (see --help)" >&2; exit 2; }
# Adds a --wrap value: a runtime entry's name, which holds no space or
# pattern character, so that $wraps splits into the names as given.
wrap_name() {
  case "$1" in
    '') usage "--wrap needs a value" ;;
    *[!A-Za-z0-9._-]*|.*) usage "--wrap $1: not a runtime entry name" ;;
  esac
  wraps="$wraps $1"
}
# The value of option $1, which must be given ($2 is what followed it).
value() {
  [ $# -ge 2 ] && [ -n "$2" ] || usage "$1 needs a value"
  case "$2" in -*) usage "$1 needs a value, not the option $2" ;; esac
}
while [ $# -gt 0 ]; do
  case "$1" in
    --root) value "$@"; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; [ -n "$root" ] || usage "--root needs a value"; shift ;;
    --binary) value "$@"; binary=$2; shift 2 ;;
    --binary=*) binary=${1#--binary=}; shift ;;
    --runtime) value "$@"; runtime=$2; shift 2 ;;
    --runtime=*) runtime=${1#--runtime=}; shift ;;
    --checksums) value "$@"; checksums=$2; shift 2 ;;
    --checksums=*) checksums=${1#--checksums=}; shift ;;
    --keyring) value "$@"; keyring=$2; shift 2 ;;
    --keyring=*) keyring=${1#--keyring=}; shift ;;
    --wrap) value "$@"; wrap_name "$2"; shift 2 ;;
    --wrap=*) wrap_name "${1#--wrap=}"; shift ;;
    --restart) restart=yes; shift ;;
    --uninstall) uninstall=yes; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) usage "unknown argument: $1" ;;
  esac
done

say() { echo "install.sh: $*"; }
die() { echo "install.sh: error: $*" >&2; exit 1; }
new=
# A half-copied binary never stays behind, whatever stops the script (dash
# and busybox run no EXIT trap on a signal: those are trapped too).
cleanup() { [ -z "$new" ] || rm -f "$new"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 129' HUP

root=${root%/}
BIN=/usr/local/bin/strict-groups
CONFIG=/etc/strict-groups/config.toml
STATE=/var/lib/strict-groups/install
here=$(cd "$(dirname "$0")" && pwd)

# Paths on the node, seen from here.
at() { echo "$root$1"; }

detect_runtime() {
  if [ -d "$(at /var/lib/rancher/k3s)" ]; then echo k3s
  elif [ -d "$(at /var/lib/rancher/rke2)" ]; then echo rke2
  elif [ -f "$(at /etc/containerd/config.toml)" ]; then echo containerd
  elif [ -d "$(at /etc/crio)" ]; then echo crio
  else echo containerd
  fi
}

# The file the runtime's entry goes into, and the service to restart.
runtime_file() {
  case "$1" in
    containerd) echo /etc/containerd/config.toml ;;
    k3s) echo /var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl ;;
    rke2) echo /var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl ;;
    crio) echo /etc/crio/crio.conf.d/50-strict-groups.conf ;;
    *) die "unknown runtime '$1' (auto, containerd, k3s, rke2, crio)" ;;
  esac
}

runtime_services() {
  case "$1" in
    containerd) echo containerd ;;
    k3s) echo "k3s k3s-agent" ;;
    rke2) echo "rke2-server rke2-agent" ;;
    crio) echo crio ;;
  esac
}

restart_runtime() {
  if [ "$restart" != yes ]; then
    say "restart $(runtime_services "$1" | cut -d' ' -f1) (or run again with --restart) for the change to take effect"
    return 0
  fi
  [ "$root" = "" ] || say "--root is set: restarting the host's service through PID 1's namespaces"
  run=""
  [ "$root" = "" ] || run="nsenter -t 1 -m -u -i -n -p --"
  for svc in $(runtime_services "$1"); do
    # systemd where it runs the service; else OpenRC (k3s on Alpine, and
    # nodes that have a systemctl binary but another init).
    if $run sh -c 'command -v systemctl >/dev/null' &&
       $run systemctl is-active --quiet "$svc" 2>/dev/null; then
      say "restarting $svc"
      $run systemctl restart "$svc" || die "restarting $svc failed"
      return 0
    fi
    if $run sh -c 'command -v rc-service >/dev/null' &&
       $run rc-service "$svc" status >/dev/null 2>&1; then
      say "restarting $svc"
      $run rc-service "$svc" restart || die "restarting $svc failed"
      return 0
    fi
  done
  die "could not find a running $(runtime_services "$1") service to restart; restart it by hand"
}

# Records the original of a node file in the state dir before the first
# change ("absent" when there was none), so that --uninstall restores it.
keep_original() {
  key=$(echo "$1" | tr / _)
  for kept in "$key" "$key.absent" "$key.link"; do
    [ ! -e "$(at $STATE)/originals/$kept" ] || return 0
  done
  mkdir -p "$(at $STATE)/originals"
  # A symlink is kept as one (a copy would follow it, and restoring the copy
  # would write through it).
  if [ -L "$(at "$1")" ]; then
    readlink "$(at "$1")" >"$(at $STATE)/originals/$key.link"
  elif [ -e "$(at "$1")" ]; then
    cp -p "$(at "$1")" "$(at $STATE)/originals/$key"
  else
    : >"$(at $STATE)/originals/$key.absent"
  fi
  echo "$1" >>"$(at $STATE)/files"
}

# Records the directories that do not exist yet and are about to be created.
keep_dirs() {
  d=$1
  missing=""
  while [ "$d" != "/" ] && [ ! -d "$(at "$d")" ]; do
    missing="$d $missing"
    d=$(dirname "$d")
  done
  mkdir -p "$(at $STATE)"
  for m in $missing; do echo "$m" >>"$(at $STATE)/dirs"; done
}

# Refuses the binary unless SHA256SUMS (signed, with a keyring) lists its
# SHA-256 under its file name.
verify_binary() {
  [ -n "$checksums" ] || { [ -z "$keyring" ] || usage "--keyring needs --checksums"; return 0; }
  [ -f "$checksums" ] || die "$checksums: no such file"
  if [ -n "$keyring" ]; then
    [ -f "$keyring" ] || die "$keyring: no such file"
    [ -f "$checksums.asc" ] || die "$checksums.asc: no such file (the signature of $checksums)"
    command -v gpgv >/dev/null || die "gpgv is needed to check $checksums.asc (apt-get install gpgv, dnf install gnupg2)"
    gpgv --keyring "$keyring" "$checksums.asc" "$checksums" >/dev/null 2>&1 ||
      die "$checksums.asc is not a good signature of $checksums by a key in $keyring: refusing to install"
    say "$checksums: good signature by a key in $keyring"
  fi
  name=$(basename "$binary")
  want=$(awk -v n="$name" '{ f = $2; sub(/^\*/, "", f) } f == n { print $1; exit }' "$checksums")
  [ -n "$want" ] || die "$checksums lists no file named $name: refusing to install"
  got=$(sha256sum "$binary" | cut -d' ' -f1)
  [ "$got" = "$want" ] ||
    die "$binary: SHA-256 $got, but $checksums lists $want for $name: refusing to install"
  say "$binary: SHA-256 matches $checksums"
}

install_node() {
  if [ -z "$binary" ]; then
    for candidate in "$here/strict-groups" "$here"/target/*/release/strict-groups "$here/target/release/strict-groups"; do
      [ -x "$candidate" ] && { binary=$candidate; break; }
    done
  fi
  [ -n "$binary" ] && [ -x "$binary" ] || die "no strict-groups binary (give --binary FILE, or build with scripts/build-release.sh)"
  # A name without a slash is the file here, not a command on PATH.
  case "$binary" in */*) ;; *) binary=./$binary ;; esac
  verify_binary
  "$binary" version >/dev/null 2>&1 || die "$binary does not run here"
  [ "$runtime" = auto ] && runtime=$(detect_runtime)
  file=$(runtime_file "$runtime")
  if [ -n "$wraps" ] && [ "$runtime" != containerd ]; then
    die "--wrap is for containerd's own config, not $runtime (k3s and RKE2 make their runtime entries when they start)"
  fi
  # Each entry to wrap is there to be copied, before anything changes.
  for w in $wraps; do
    "$binary" configure containerd --config "$(at "$file")" --wrap "$w" --handler "strict-groups-$w" \
      --binary "$BIN-$w" --node-config "$(at $CONFIG)" --dry-run >/dev/null ||
      die "cannot wrap runtime entry $w; nothing was changed"
  done
  say "installing $("$binary" version) into ${root:-/} for $runtime"

  for d in /var/lib/strict-groups "$(dirname $BIN)" "$(dirname $CONFIG)" "$(dirname "$file")"; do
    if [ ! -d "$(at "$d")" ]; then keep_dirs "$d"; fi
  done
  mkdir -p "$(at $STATE)"
  [ -f "$(at $STATE)/runtime" ] || echo "$runtime" >"$(at $STATE)/runtime"

  keep_original $BIN
  mkdir -p "$(at "$(dirname $BIN)")" || die "creating $(dirname $BIN) failed"
  # Each step on its own: under `set -e` a failure inside `a && b` does not
  # stop the script. The temp file goes with the script (trap) on failure.
  if cmp -s "$binary" "$(at $BIN)" && [ -x "$(at $BIN)" ]; then
    say "$BIN is up to date"
  else
    new="$(at $BIN).new.$$"
    cp "$binary" "$new" || die "copying $binary to $new failed; $BIN is unchanged"
    chmod 0755 "$new" || die "chmod of $new failed; $BIN is unchanged"
    mv -f "$new" "$(at $BIN)" || die "replacing $BIN failed; it is unchanged"
    new=
    say "installed $BIN"
  fi

  # A node config written now names the real runtime of containerd's
  # default entry (nvidia's, when that is the default); one that was there
  # is the operator's and keeps its runtime.
  wrote_config=no
  if [ -e "$(at $STATE)/originals/$(echo $CONFIG | tr / _).absent" ] &&
     [ "$(sha256sum "$(at $CONFIG)" 2>/dev/null | cut -d' ' -f1)" = "$(cat "$(at $STATE)/written-config.sha256" 2>/dev/null)" ]; then
    # Written by an install that stopped before configuring: still ours.
    wrote_config=yes
  fi
  if [ ! -e "$(at $CONFIG)" ]; then
    wrote_config=yes
    keep_original $CONFIG
    mkdir -p "$(at "$(dirname $CONFIG)")"
    if [ -f "$here/config/config.toml" ]; then
      cp "$here/config/config.toml" "$(at $CONFIG)"
    else
      printf 'runtime = "runc"\ndefault_policy = "Strict"\nallow_merge_annotation = false\nmode = "enforce"\n' >"$(at $CONFIG)"
    fi
    chmod 0644 "$(at $CONFIG)"
    sha256sum "$(at $CONFIG)" | cut -d' ' -f1 >"$(at $STATE)/written-config.sha256"
    say "wrote the default $CONFIG"
  else
    say "kept the existing $CONFIG"
  fi

  keep_original "$file"
  if [ "$runtime" = k3s ] || [ "$runtime" = rke2 ]; then
    # A new template starts from k3s/RKE2's own base config.
    if [ ! -e "$(at "$file")" ]; then
      mkdir -p "$(at "$(dirname "$file")")"
      printf '{{ template "base" . }}\n' >"$(at "$file")"
    fi
  fi
  before=$(sha256sum "$(at "$file")" 2>/dev/null | cut -d' ' -f1 || true)
  case "$runtime" in
    crio) "$(at $BIN)" configure crio --dropin-dir "$(at "$(dirname "$file")")" --binary $BIN --no-backup ;;
    *) if [ "$wrote_config" = yes ]; then
         "$(at $BIN)" configure containerd --config "$(at "$file")" --binary $BIN \
           --node-config "$(at $CONFIG)" --no-backup
       else
         "$(at $BIN)" configure containerd --config "$(at "$file")" --binary $BIN --no-backup
       fi ;;
  esac || die "configuring $runtime failed; nothing else was changed in $file"
  for w in $wraps; do
    link=$BIN-$w
    keep_original "$link"
    [ -L "$(at "$link")" ] || ln -sf strict-groups "$(at "$link")" || die "linking $link failed"
    "$(at $BIN)" configure containerd --config "$(at "$file")" --wrap "$w" \
      --handler "strict-groups-$w" --binary "$link" --node-config "$(at $CONFIG)" --no-backup ||
      die "wrapping runtime entry $w failed"
    grep -qx "strict-groups-$w" "$(at $STATE)/handlers" 2>/dev/null ||
      echo "strict-groups-$w" >>"$(at $STATE)/handlers"
  done
  after=$(sha256sum "$(at "$file")" | cut -d' ' -f1)
  [ "$(cat "$(at $STATE)/configured.sha256" 2>/dev/null)" = "$after" ] ||
    echo "$after" >"$(at $STATE)/configured.sha256"

  # A runtime whose config did not change need not restart (a DaemonSet
  # pod that restarts must not restart containerd each time).
  if [ "$before" != "$after" ]; then
    restart_runtime "$runtime"
  fi
  say "done. Label the node so that the RuntimeClass schedules onto it:"
  say "  kubectl label node <node> strict-groups.io/runtime=installed"
}

uninstall_node() {
  [ -f "$(at $STATE)/files" ] || { say "nothing to uninstall under ${root:-/}"; return 0; }
  runtime=$(cat "$(at $STATE)/runtime")
  file=$(runtime_file "$runtime")
  if [ -e "$(at "$file")" ] && [ -f "$(at $STATE)/configured.sha256" ] &&
     [ "$(sha256sum "$(at "$file")" | cut -d' ' -f1)" != "$(cat "$(at $STATE)/configured.sha256")" ]; then
    # Edited since: take out only our entry, keep the other edits.
    say "$file changed since install: removing only the strict-groups entry"
    case "$runtime" in
      crio) "$(at $BIN)" configure crio --dropin-dir "$(at "$(dirname "$file")")" --remove --no-backup ;;
      *) "$(at $BIN)" configure containerd --config "$(at "$file")" --remove --no-backup ;;
    esac || die "removing the entry from $file failed"
    sed -i "\\|^$file\$|d" "$(at $STATE)/files"
  fi
  # Each wrapped handler: its entry, and its key in the node config (which
  # may hold the operator's edits since: only that key goes).
  for h in $(cat "$(at $STATE)/handlers" 2>/dev/null); do
    "$(at $BIN)" configure containerd --config "$(at "$file")" --remove --handler "$h" \
      --binary "$BIN-${h#strict-groups-}" --node-config "$(at $CONFIG)" --no-backup ||
      die "removing the entry $h failed"
  done
  # Restore every file as it was (the binary last: configure above needs it).
  for f in $(grep -v "^$BIN\$" "$(at $STATE)/files") $BIN; do
    key=$(echo "$f" | tr / _)
    if [ -e "$(at $STATE)/originals/$key.absent" ]; then
      rm -f "$(at "$f")"
    elif [ -e "$(at $STATE)/originals/$key.link" ]; then
      ln -sfn "$(cat "$(at $STATE)/originals/$key.link")" "$(at "$f")"
    elif [ -e "$(at $STATE)/originals/$key" ]; then
      cp -p "$(at $STATE)/originals/$key" "$(at "$f")"
    fi
    say "restored $f"
  done
  restart_runtime "$runtime"
  dirs=$(cat "$(at $STATE)/dirs" 2>/dev/null || true)
  rm -rf "$(at $STATE)"
  # Directories that the install created, deepest first.
  for d in $(echo "$dirs" | awk 'NF' | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-); do
    rmdir "$(at "$d")" 2>/dev/null || true
  done
  say "uninstalled"
}

if [ "$uninstall" = yes ]; then uninstall_node; else install_node; fi
