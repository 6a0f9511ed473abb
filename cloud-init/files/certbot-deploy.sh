#!/bin/bash
# certbot deploy hook, for the first issuance and every renewal: the certificate goes to HAProxy,
# then to SSM, so a replaced LB restores it instead of asking the CA again.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/lb.env
/usr/local/sbin/webstack-install-certificate "$RENEWED_LINEAGE/fullchain.pem" "$RENEWED_LINEAGE/privkey.pem"
/usr/local/sbin/webstack-aws put "$SITE_PEM_PARAMETER" /etc/haproxy/certs/site.pem "$PARAMETER_KEY_ID"
