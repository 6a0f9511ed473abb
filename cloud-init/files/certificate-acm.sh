#!/bin/bash
# Exports the site's ACM certificate with this node's role and installs it when it changed. A timer
# runs this until ACM has issued it, then twice a day so renewals reach HAProxy.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/lb.env
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passphrase=/etc/webstack/secrets/acm-passphrase
/usr/local/sbin/webstack-aws acm-export "$ACM_CERTIFICATE_ARN" "$passphrase" "$work"
openssl pkey -in "$work/key.enc.pem" -passin "file:$passphrase" -out "$work/key.pem"
cat "$work/cert.pem" "$work/chain.pem" "$work/key.pem" >"$work/site.pem"
if cmp -s "$work/site.pem" /etc/haproxy/certs/site.pem; then exit 0; fi
/usr/local/sbin/webstack-install-certificate "$work/cert.pem" "$work/chain.pem" "$work/key.pem"
