#!/bin/bash
# Checks HAProxy's config where HAProxy reads it. Before the LB's first certificate exists (its
# first apply writes the config, then the boot script installs a certificate) HAProxy cannot load
# the config at all: the boot script checks it then (haproxy -c), once the certificate is there.
set -euo pipefail
if [ ! -e /etc/haproxy/certs/site.pem ]; then
  echo "webstack-check-haproxy: no certificate yet; the boot script checks the config once there is one" >&2
  exit 0
fi
exec haproxy -c -f /etc/haproxy/haproxy.cfg
