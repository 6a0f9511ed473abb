#!/bin/bash
# Installs the site certificate for HAProxy: the given PEM files (chain, then key) become one file,
# written aside, checked, swapped in, and HAProxy reloaded (master-worker: no connection dropped).
# Usage: webstack-install-certificate FILE...
set -euo pipefail
umask 077
install -d -m 0700 /etc/haproxy/certs
target=/etc/haproxy/certs/site.pem
next=$(mktemp /etc/haproxy/certs/.site.XXXXXX)
trap 'rm -f "$next"' EXIT
cat "$@" >"$next"
if [ "$(openssl x509 -noout -pubkey -in "$next")" != "$(openssl pkey -pubout -in "$next")" ]; then
  echo "webstack-install-certificate: the key does not belong to the certificate" >&2
  exit 1
fi
if [ -e "$target" ]; then cp -p "$target" "$target.previous"; fi
mv "$next" "$target"
if ! haproxy -c -q -f /etc/haproxy/haproxy.cfg; then
  if [ -e "$target.previous" ]; then mv "$target.previous" "$target"; fi
  echo "webstack-install-certificate: haproxy rejected the new certificate; the previous one stays" >&2
  exit 1
fi
if systemctl is-active --quiet haproxy; then systemctl reload haproxy; fi
