#!/bin/bash
# Sets up a fresh Debian machine for the tests: the Debian tools the artifact checks run
# (cloud-init, shellcheck, nginx, gpg, Debian's python3 with boto3), then the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
. ./scripts/root-tools-path.sh

# What this machine cannot have, said; under CI, where every check runs, that fails the setup.
cannot() {
  if [ -n "${CI:-}" ]; then
    echo "setup: $1; CI runs every check" >&2
    exit 1
  fi
  echo "setup: $1; $2 skipped" >&2
}

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "webstack needs Node.js 20 or newer; found: $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi

DEBIAN_PACKAGES=(cloud-init shellcheck nginx gpg rsyslog nftables debootstrap python3-boto3 python3-yaml openssl util-linux iproute2)
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-debian-packages.sh "${DEBIAN_PACKAGES[@]}" | sed 's/^/setup: /'
else
  bash scripts/install-debian-packages.sh "${DEBIAN_PACKAGES[@]}" ||
    cannot "the Debian tools are missing" "the artifact checks that need them are"
fi

npm ci --no-audit --no-fund
# The nodes' own OS (Debian 13), for the artifact checks with the nodes' versions: built once, cached.
if [ "$(id -u)" != 0 ]; then
  cannot "no Debian 13 rootfs: building it needs root" "the artifact checks with the nodes' versions are"
elif ! command -v debootstrap >/dev/null; then
  cannot "no Debian 13 rootfs: debootstrap is missing" "the artifact checks with the nodes' versions are"
else
  rootfs=$(bash lab/rootfs.sh)
  echo "setup: Debian 13 rootfs at $rootfs"
fi
# The policy pack has its own dependencies (Pulumi loads it from policy/).
npm ci --prefix policy --no-audit --no-fund
