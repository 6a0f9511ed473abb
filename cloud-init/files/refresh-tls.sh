#!/bin/bash
# Picks up a re-issued certificate (any `pulumi up` in a leaf's last 30 days renews it in SSM):
# fetches this node's certificate and key again and, only if they changed, has Nginx and the
# database load them without a restart. Run daily by a timer.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/node.env
before=$(cat /etc/webstack/tls/node.crt /etc/mysql/webstack/node.crt | sha256sum)
/usr/local/sbin/webstack-aws fetch /etc/webstack/tls-manifest.json
after=$(cat /etc/webstack/tls/node.crt /etc/mysql/webstack/node.crt | sha256sum)
if [ "$before" = "$after" ]; then exit 0; fi
echo "webstack-refresh-tls: new certificate; reloading nginx and the database's TLS" >&2
nginx -t
systemctl reload nginx
case "$DB_ENGINE" in
  mariadb) "$DB_CLIENT" --protocol=socket --user=root --execute='FLUSH SSL' ;;
  mysql) "$DB_CLIENT" --protocol=socket --user=root --execute='ALTER INSTANCE RELOAD TLS' ;;
  *)
    echo "webstack-refresh-tls: unknown DB_ENGINE $DB_ENGINE" >&2
    exit 1
    ;;
esac
