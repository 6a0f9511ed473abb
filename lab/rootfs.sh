#!/bin/bash
# Builds the nodes' OS once — a Debian 13 (trixie) rootfs with cloud-init and the servers the nodes
# install — cached outside the repository, and rebuilt only when its inputs change. Prints its path.
# Usage: rootfs.sh   (run as root; needs debootstrap and Debian's mirror)
set -euo pipefail
SUITE=trixie
MIRROR=${WEBSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=systemd,systemd-sysv,dbus,cloud-init,python3-cffi-backend,locales
# The checkers the artifact tests run with the nodes' own versions.
PACKAGES="nginx haproxy rsyslog openssl"
CACHE=${WEBSTACK_LAB_CACHE:-/var/cache/webstack-lab}
inputs="$SUITE $MIRROR $BASE $PACKAGES $(sha256sum "$0" | cut -c1-16)"
root="$CACHE/rootfs-$(printf '%s' "$inputs" | sha256sum | cut -c1-16)"
if [ -e "$root/.complete" ]; then
  echo "$root"
  exit 0
fi
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include="$BASE" "$SUITE" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# Packages install, services never start (there is no init here anyway).
printf '#!/bin/sh\nexit 101\n' >"$work/root/usr/sbin/policy-rc.d"
chmod 755 "$work/root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$work/root/etc/resolv.conf"
# shellcheck disable=SC2086 # one argument per package
unshare --mount --uts --fork chroot "$work/root" sh -c \
  "mount -t proc proc /proc && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES; status=\$?; umount /proc; exit \$status" \
  >"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log" >&2; exit 1; }
echo "$inputs" >"$work/root/.complete"
rm -rf "$root"
mv "$work/root" "$root"
echo "$root"
