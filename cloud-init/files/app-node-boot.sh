#!/bin/bash
# An app node's boot, its bundle's first apply: secrets → database TLS → bootstrap → app (its
# secrets, then Gunicorn) → Nginx.
# Every step fails loudly: cloud-init then reports the boot as failed.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/node.env

log() { echo "webstack-boot: $*" >&2; }

log "fetching this node's parameters"
/usr/local/sbin/webstack-aws fetch /etc/webstack/secrets.json

log "{{DB_TLS_STEP}}"
{{DB_TLS_COMMAND}}

log "database bootstrap"
/usr/local/sbin/webstack-db-bootstrap

log "app"
# The node's variables, no secret among them: the database password (fetched above into
# /etc/webstack/app-secrets/, the app's user's alone) is read by Gunicorn's config, like the app's
# own secrets (appSecrets), fetched next. The first apply made the app's user and that directory,
# and pointed /srv/webstack/current at the release, before this script ran.
{
  printf 'WEBSTACK_NODE=%s\nWEBSTACK_ROLE=%s\n' "$NODE" "$DB_ROLE"
  printf 'DB_PRIMARY=%s\nDB_REPLICA=%s\n' "$APP_DB_PRIMARY" "$APP_DB_REPLICA"
  printf 'DB_CA_FILE={{DB_CA_FILE}}\n'
} >/etc/webstack/app.env
/usr/local/sbin/webstack-aws fetch /etc/webstack/app-secrets.json
systemctl daemon-reload
systemctl enable --now webstack-app.service

log "nginx"
ln -sfn /etc/nginx/sites-available/webstack /etc/nginx/sites-enabled/webstack
rm -f /etc/nginx/sites-enabled/default
nginx -t
systemctl restart nginx
# From now on a re-issued certificate is picked up without a new boot.
systemctl enable --now webstack-refresh-tls.timer

log "done"
