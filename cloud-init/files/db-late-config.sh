#!/bin/bash
# Installs the database's late settings (TLS with the node's key, the log files; MySQL's replica
# read-only) and restarts the server to read them: at first boot, once the key exists, and when a
# bundle changes them (the primary applies only after the replica did, so one restart at a time).
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/node.env
install -D -m 0644 /etc/webstack/tls/ca.crt /etc/mysql/webstack/ca.crt
install -d -m 2750 -o mysql -g adm /var/log/mysql
install -m 0644 "/etc/webstack/db/$DB_LATE_CONF" "$DB_CONF_DIR/$DB_LATE_CONF"
systemctl restart "$DB_SERVICE"
