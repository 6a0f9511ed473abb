#!/bin/bash
# Sets up a fresh Debian machine for the tests: the Debian tools the artifact checks run
# (cloud-init, shellcheck, nginx, haproxy, Debian's python3 with boto3), then the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "webstack needs Node.js 20 or newer; found: $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi

DEBIAN_PACKAGES=(cloud-init shellcheck nginx haproxy rsyslog nftables debootstrap python3-boto3 python3-yaml openssl util-linux iproute2)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: install ${missing[*]} (Debian packages) as root, or the artifact checks are skipped" >&2
  else
    # Installed for their checkers only: no package may start a service (nginx would bind :80).
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      created_policy=1
    fi
    trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "setup: installed ${missing[*]}"
  fi
fi

npm ci --no-audit --no-fund
# The nodes' own OS (Debian 13), for the artifact checks with the nodes' versions: built once, cached.
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then
  echo "setup: Debian 13 rootfs at $(bash lab/rootfs.sh)"
fi
# The policy pack has its own dependencies (Pulumi loads it from policy/).
npm ci --prefix policy --no-audit --no-fund
