#!/bin/bash
# Database bootstrap, idempotent. The primary creates the schema and users (they replicate); the
# replica waits for the primary, bounded, then replicates with GTID auto-position over TLS. In a
# Galera cluster the founder creates them (they reach every member) once its member is ready.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/node.env

log() { echo "webstack-db-bootstrap: $*" >&2; }
secret() { printf '%s' "$(<"/etc/webstack/secrets/$1")"; }

# SQL with the passwords put in by bash itself: no value ever appears in a process's arguments.
render_sql() {
  local sql
  sql=$(<"$1")
  sql=${sql//@APP_PASSWORD@/$(secret db-app-password)}
  sql=${sql//@REPLICATION_PASSWORD@/$(secret db-replication-password)}
  sql=${sql//@MONITOR_PASSWORD@/$(secret db-monitor-password)}
  sql=${sql//@MIGRATE_PASSWORD@/$(secret db-migrate-password)}
  printf '%s\n' "$sql"
}

# The local server as root, over its socket (root authenticates by unix socket).
local_sql() { "$DB_CLIENT" --protocol=socket --user=root "$@"; }

# The primary as the replication user, over verified TLS.
primary_reachable() {
  "$DB_CLIENT" --defaults-extra-file=<(printf '[client]\nuser=replication\npassword=%s\n' \
    "$(secret db-replication-password)"; cat /etc/webstack/db/client-tls.cnf) \
    --host="$DB_PRIMARY_IP" --port=3306 --connect-timeout=5 --execute='SELECT 1' >/dev/null
}

case "$DB_ROLE" in
  primary)
    # Run again by a change to primary.sql: never on a server that replicates from another (a
    # primary rebuilt as a replica, as in the README's runbook): its writes belong on the writer.
    if [ -n "$(local_sql --skip-column-names --execute='SHOW REPLICA STATUS')" ]; then
      log "this server replicates from another: schema and users left to the writer"
      exit 0
    fi
    render_sql /etc/webstack/db/primary.sql | local_sql
    log "schema and users in place"
    ;;
  replica)
    if [ -n "$(local_sql --skip-column-names --execute='SHOW REPLICA STATUS')" ]; then
      log "replication already configured; making sure it runs"
      local_sql --execute='START REPLICA'
      exit 0
    fi
    delay=2
    for attempt in $(seq 1 "$DB_WAIT_ATTEMPTS"); do
      if primary_reachable; then break; fi
      if [ "$attempt" = "$DB_WAIT_ATTEMPTS" ]; then
        log "primary $DB_PRIMARY_IP not reachable as the replication user after $attempt attempts"
        exit 1
      fi
      log "primary not ready (attempt $attempt of $DB_WAIT_ATTEMPTS); retrying in $delay s"
      sleep "$delay"
      delay=$((delay * 2 > 30 ? 30 : delay * 2))
    done
    render_sql /etc/webstack/db/replica.sql | local_sql
    log "replicating from $DB_PRIMARY_IP"
    ;;
  member)
    if [ "$GALERA_FOUNDER" != yes ]; then
      log "a Galera member: schema and users come with the cluster's state"
      exit 0
    fi
    # Ready: in the primary component, taking writes (a founder that is a donor to s1 is too).
    for attempt in $(seq 1 60); do
      ready=$(local_sql --skip-column-names --execute="SHOW STATUS LIKE 'wsrep_ready'" |
        cut -f2) || ready=""
      if [ "$ready" = ON ]; then break; fi
      if [ "$attempt" = 60 ]; then
        log "this member is not ready in $GALERA_CLUSTER_NAME (wsrep_ready ${ready:-no answer}): schema and users not written"
        exit 1
      fi
      sleep 1
    done
    render_sql /etc/webstack/db/primary.sql | local_sql
    log "schema and users in place (the cluster's members get them)"
    ;;
  *)
    log "unknown DB_ROLE $DB_ROLE"
    exit 1
    ;;
esac
