#!/bin/bash
# Database bootstrap with `database: rds`, idempotent: the node holds no database; the schema and
# users live on the stack's RDS instance. s2 (DB_SCHEMA=yes) writes them as the instance's master
# user, whose credentials RDS keeps in Secrets Manager: they reach the client through a pipe, never
# a file or an argument. s1 waits, bounded, until the app's user reads the schema there. Every
# connection is TLS, the server's certificate checked against Amazon's RDS CA bundle for its name.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/node.env

log() { echo "webstack-db-bootstrap: $*" >&2; }

# A secret's value; a missing or empty file fails: never an empty password in SQL or options.
secret() {
  local value
  value=$(<"/etc/webstack/secrets/$1") || return 1
  if [ -z "$value" ]; then
    log "the secret $1 is empty"
    return 1
  fi
  printf '%s' "$value"
}

# What the attempts need, read here, outside any condition: bash ignores `set -e` inside a function
# called as an `if`'s condition, so a failure in there would pass unnoticed (an empty password
# written into the SQL). Here set -e stops the script at the first failure.
client_tls=$(</etc/webstack/db/client-tls.cnf)
app_password=$(secret db-app-password)
if [ "$DB_SCHEMA" = yes ]; then
  admin_secret=$(</etc/webstack/db/rds-admin-secret)
  migrate_password=$(secret db-migrate-password)
  sql=$(</etc/webstack/db/rds.sql)
  # The passwords put in by bash itself: no value ever appears in a process's arguments.
  sql=${sql//@APP_PASSWORD@/$app_password}
  sql=${sql//@MIGRATE_PASSWORD@/$migrate_password}
fi

# The steps below run as an `if`'s condition (retried): each command's status is checked explicitly.

# The instance as its master user; SQL on stdin. The options are asked for at each attempt (RDS
# rotates the password); without them no client runs.
as_admin() {
  local options
  options=$(/usr/local/sbin/webstack-aws db-admin-options "$admin_secret") || return 1
  "$DB_CLIENT" --defaults-extra-file=<(printf '%s\n%s\n' "$options" "$client_tls") \
    --host="$DB_HOST" --port="$DB_PORT" --connect-timeout=10
}

# The schema as the app sees it: its user, over verified TLS.
app_reads_schema() {
  "$DB_CLIENT" --defaults-extra-file=<(
    printf '[client]\nuser=app\npassword=%s\n%s\n' "$app_password" "$client_tls"
  ) --host="$DB_HOST" --port="$DB_PORT" --connect-timeout=5 \
    --execute='SELECT 1 FROM webstack.items LIMIT 0' >/dev/null
}

write_schema() {
  printf '%s\n' "$sql" | as_admin
}

# What this node does, tried again with backoff (capped at 30 s) for about 15 minutes: the instance
# may be busy (a Multi-AZ failover, a modification), the app's user may not exist yet (s2 still booting).
step=app_reads_schema
what="the schema on $DB_HOST, read as the app's user"
if [ "$DB_SCHEMA" = yes ]; then
  step=write_schema
  what="the schema and users on $DB_HOST, written as its master user"
fi
delay=2
for attempt in $(seq 1 "$DB_WAIT_ATTEMPTS"); do
  if "$step"; then
    log "done: $what"
    exit 0
  fi
  if [ "$attempt" = "$DB_WAIT_ATTEMPTS" ]; then
    log "gave up after $attempt attempts: $what"
    exit 1
  fi
  log "attempt $attempt of $DB_WAIT_ATTEMPTS failed: $what; retrying in $delay s"
  sleep "$delay"
  delay=$((delay * 2 > 30 ? 30 : delay * 2))
done
