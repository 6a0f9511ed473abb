#!/bin/bash
# Obtains the site certificate from the ACME server through HAProxy's ACME path. A timer runs this
# until it succeeds (on a first deploy, DNS may not point at this LB yet); renewals are certbot's
# own timer's, through the same path, with the same deploy hook.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/lb.env
if [ -e /etc/letsencrypt/live/webstack/fullchain.pem ]; then exit 0; fi
site=/etc/haproxy/certs/site.pem
if ! openssl x509 -noout -subject -in "$site" | grep -q "webstack placeholder" &&
  openssl x509 -checkend 2592000 -noout -in "$site" >/dev/null; then
  exit 0 # a restored certificate, good for 30 more days
fi
certbot certonly --standalone --non-interactive --agree-tos \
  --email "$ACME_EMAIL" --server "$ACME_DIRECTORY" \
  --cert-name webstack --domain "$DOMAIN" --key-type ecdsa \
  --http-01-address 127.0.0.1 --http-01-port "$CERTBOT_PORT" \
  --deploy-hook /usr/local/sbin/webstack-certbot-deploy
