#!/bin/bash
# Builds the nodes' OS once — a Debian 13 (trixie) rootfs — cached outside the repository and rebuilt
# only when its inputs change. Prints its path.
#   base      what a Debian 13 AMI starts from (systemd, cloud-init, e2fsprogs, iproute2, OpenSSH —
#             unreachable: no security group opens 22); the lab's nodes boot
#             an overlay of it and install their packages from the user-data, for real.
#   checkers  base plus the servers whose own checkers the artifact tests run (nginx -t, haproxy -c,
#             rsyslogd -N1, logrotate -d with the packages' own rules: nginx, haproxy, mariadb-server).
# Usage: rootfs.sh [base|checkers]   (default checkers; run as root; needs debootstrap and Debian's mirror)
set -euo pipefail
FLAVOUR=${1:-checkers}
SUITE=trixie
MIRROR=${WEBSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=systemd,systemd-sysv,dbus,cloud-init,python3-cffi-backend,locales,e2fsprogs,ca-certificates,iproute2,openssh-server
CHECKERS="nginx haproxy rsyslog openssl logrotate mariadb-server"
CACHE=${WEBSTACK_LAB_CACHE:-/var/cache/webstack-lab}
here=$(dirname "$(realpath "$0")")

case "$FLAVOUR" in
  base) packages="" ;;
  checkers) packages=$CHECKERS ;;
  *) echo "usage: rootfs.sh [base|checkers]" >&2; exit 2 ;;
esac
inputs="$SUITE $MIRROR $BASE $packages $(sha256sum "$0" | cut -c1-16)"
root="$CACHE/rootfs-$FLAVOUR-$(printf '%s' "$inputs" | sha256sum | cut -c1-16)"
if [ -e "$root/.complete" ]; then
  echo "$root"
  exit 0
fi
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ "$FLAVOUR" = base ]; then
  debootstrap --variant=minbase --include="$BASE" "$SUITE" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # APT sources as Debian's cloud images ship them: deb822, /etc/apt/sources.list.d/debian.sources,
  # the release, its updates and security updates (the images' go through a mirror list). The nodes'
  # user-data replaces them with its own, over HTTPS, before any package installs.
  rm -f "$work/root/etc/apt/sources.list"
  printf '%s\n' "Types: deb" "URIs: $MIRROR" "Suites: $SUITE $SUITE-updates" "Components: main" \
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "" \
    "Types: deb" "URIs: http://security.debian.org/debian-security" "Suites: $SUITE-security" \
    "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
    >"$work/root/etc/apt/sources.list.d/debian.sources"
  # Forget the mirror's indexes: a node fetches its own at boot (package_update).
  rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin
  mkdir -p "$work/root/var/lib/apt/lists/partial"
  rm -f "$work/root/etc/resolv.conf" "$work/root/etc/hostname"
else
  cp -a "$(bash "$here/rootfs.sh" base)" "$work/root"
  rm -f "$work/root/.complete"
  # Packages install, services never start (there is no init here anyway).
  printf '#!/bin/sh\nexit 101\n' >"$work/root/usr/sbin/policy-rc.d"
  chmod 755 "$work/root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$work/root/etc/resolv.conf"
  # shellcheck disable=SC2086 # one argument per package
  unshare --mount --uts --fork chroot "$work/root" sh -c \
    "mount -t proc proc /proc && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages; status=\$?; umount /proc; exit \$status" \
    >"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log" >&2; exit 1; }
fi
echo "$inputs" >"$work/root/.complete"
rm -rf "$root"
mv "$work/root" "$root"
# Older builds of this flavour are stale: their inputs changed.
find "$CACHE" -mindepth 1 -maxdepth 1 -name "rootfs-$FLAVOUR-*" ! -path "$root" -exec rm -rf {} +
echo "$root"
