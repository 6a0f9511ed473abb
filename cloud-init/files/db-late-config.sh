#!/bin/bash
# Installs the database's late settings (TLS with the node's key, the log files; MySQL's replica
# read-only; a Galera member's cluster) and restarts the server to read them: at first boot, once
# the key exists, and when a bundle changes them (the primary applies only after the replica did,
# so one restart at a time).
set -euo pipefail
# shellcheck source=/dev/null
. /etc/webstack/node.env

log() { echo "webstack-db-late-config: $*" >&2; }

install -D -m 0644 /etc/webstack/tls/ca.crt /etc/mysql/webstack/ca.crt
install -d -m 2750 -o mysql -g adm /var/log/mysql
install -m 0644 "/etc/webstack/db/$DB_LATE_CONF" "$DB_CONF_DIR/$DB_LATE_CONF"

if [ "${DB_CLUSTER:-replication}" != galera ]; then
  systemctl restart "$DB_SERVICE"
  exit 0
fi

# A Galera member. Whether a member's group port answers (a member joining or in the group).
listening() { timeout 3 bash -c ": >/dev/tcp/$1/4567" 2>/dev/null; }
IFS=, read -r -a members <<<"$GALERA_MEMBER_IPS"

# The founder (s2) starts a new cluster once only: on its first start as a member (no grastate.dat
# yet: the server ran alone since its package installed it) when no other member is in a group to
# join (s1 opens its group port only once the founder's is open). Every other start joins.
if [ "$GALERA_FOUNDER" = yes ] && [ ! -e /var/lib/mysql/grastate.dat ]; then
  others=0
  for ip in "${members[@]}"; do
    if listening "$ip"; then others=$((others + 1)); fi
  done
  if [ "$others" = 0 ]; then
    log "no cluster to join: founding $GALERA_CLUSTER_NAME"
    galera_new_cluster
    exit 0
  fi
  log "a member is up: joining its cluster (a full state transfer)"
fi

# Join: once another data member listens (at first boot the founder may still be installing),
# bounded as a replica waits for its primary; a start that fails (no group formed yet) is tried
# again. Never through this node's own port: the founder restarting while it is the only data
# member would leave the group with none to give it the state back.
joinable=("${members[@]}")
if [ "$GALERA_FOUNDER" != yes ]; then joinable=("$GALERA_FOUNDER_IP" "${members[@]}"); fi
delay=2
for attempt in $(seq 1 "$DB_WAIT_ATTEMPTS"); do
  for ip in "${joinable[@]}"; do
    if listening "$ip" && systemctl restart "$DB_SERVICE"; then
      log "joined $GALERA_CLUSTER_NAME (through $ip)"
      exit 0
    fi
  done
  if [ "$attempt" = "$DB_WAIT_ATTEMPTS" ]; then
    log "no member of $GALERA_CLUSTER_NAME took this node after $attempt attempts"
    exit 1
  fi
  log "no member to join yet (attempt $attempt of $DB_WAIT_ATTEMPTS); retrying in $delay s"
  sleep "$delay"
  delay=$((delay * 2 > 30 ? 30 : delay * 2))
done
