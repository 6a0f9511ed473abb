#!/bin/bash
# Runs rootfs_checks.py on rendered documents inside the nodes' own OS: a throwaway overlay of the
# lab's Debian 13 rootfs, in private mount and network namespaces. The cached rootfs stays as it is.
# Usage: rootfs-check.sh ROOTFS DOC.yaml...   (run as root)
set -euo pipefail
rootfs=$1
shift
here=$(dirname "$(realpath "$0")")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/merged"
# shellcheck disable=SC2016 # the inner script expands its own arguments
unshare --mount --net --fork bash -euo pipefail -c '
  rootfs=$1 scratch=$2 here=$3
  shift 3
  merged=$scratch/merged
  mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$scratch/upper,workdir=$scratch/work" "$merged"
  mount -t proc proc "$merged/proc"
  mount -t tmpfs tmpfs "$merged/run"
  ip link set lo up
  mkdir -p "$merged/check"
  cp "$here/rootfs_checks.py" "$here/check-cloud-config.py" "$merged/check/"
  docs=()
  for doc in "$@"; do cp "$doc" "$merged/check/"; docs+=("/check/$(basename "$doc")"); done
  chroot "$merged" python3 /check/rootfs_checks.py "${docs[@]}"
' rootfs-check "$rootfs" "$scratch" "$here" "$@"
