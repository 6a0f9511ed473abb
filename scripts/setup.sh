#!/bin/bash
# Sets up a fresh Debian machine for the tests: the Debian tools the artifact checks run
# (cloud-init, shellcheck, nginx, Debian's python3 with boto3), then the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "webstack needs Node.js 20 or newer; found: $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi

DEBIAN_PACKAGES=(cloud-init shellcheck nginx rsyslog nftables debootstrap python3-boto3 python3-yaml openssl util-linux iproute2)
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-debian-packages.sh "${DEBIAN_PACKAGES[@]}" | sed 's/^/setup: /'
else
  bash scripts/install-debian-packages.sh "${DEBIAN_PACKAGES[@]}" || echo "setup: the artifact checks that need them are skipped" >&2
fi

npm ci --no-audit --no-fund
# The nodes' own OS (Debian 13), for the artifact checks with the nodes' versions: built once, cached.
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then
  echo "setup: Debian 13 rootfs at $(bash lab/rootfs.sh)"
fi
# The policy pack has its own dependencies (Pulumi loads it from policy/).
npm ci --prefix policy --no-audit --no-fund
