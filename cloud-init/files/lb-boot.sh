#!/bin/bash
# The load balancer's boot, its bundle's first apply: its parameters → a certificate → HAProxy →
# the certificate timer. Every step fails loudly: cloud-init then reports the boot as failed.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/lb.env

log() { echo "webstack-lb-boot: $*" >&2; }
site=/etc/webstack/site

log "fetching this node's parameters"
/usr/local/sbin/webstack-aws fetch /etc/webstack/secrets.json

# HAProxy needs a certificate to start its TLS listener; the timer replaces this one.
placeholder() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj "/O=webstack placeholder/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$site/placeholder.key" -out "$site/placeholder.crt" 2>/dev/null
  /usr/local/sbin/webstack-install-certificate "$site/placeholder.crt" "$site/placeholder.key"
}

# rsyslog reads the bundle's rule and makes HAProxy's log socket before anything reloads HAProxy
# with the bundle's config (installing a certificate does), which logs there.
systemctl restart rsyslog

install -d -m 0700 "$site"
case "$CERT_MODE" in
  self-signed)
    /usr/local/sbin/webstack-install-certificate "$site/cert.pem" "$site/key.pem"
    ;;
  letsencrypt)
    # What an earlier LB obtained, if still good for 30 days: no new issuance, no rate limit spent.
    if openssl x509 -checkend 2592000 -noout -in "$site/persisted.pem" >/dev/null 2>&1; then
      log "restoring the persisted certificate"
      /usr/local/sbin/webstack-install-certificate "$site/persisted.pem"
    else
      placeholder
    fi
    ;;
  acm)
    placeholder
    ;;
  *)
    log "unknown CERT_MODE $CERT_MODE"
    exit 1
    ;;
esac

log "haproxy"
# The bundle wrote HAProxy's config; with a certificate in place, it can be checked in full.
haproxy -c -q -f /etc/haproxy/haproxy.cfg
systemctl enable haproxy
systemctl restart haproxy

if [ "$CERT_MODE" != self-signed ]; then
  log "certificate timer"
  systemctl daemon-reload
  systemctl enable --now webstack-certificate.timer
fi
log "done"
