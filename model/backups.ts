// Backups (issue 20): one place for where they go in the stack's bucket, where the nodes keep their
// state, the metrics that say how old they are, and the alarms' limits. The plan (bucket lifecycle,
// IAM, alarms) and the node tool (cloud-init/files/webstack-aws.py, its backup commands) both read it.
import { AppNodeName, PRIMARY_NODE, REPLICA_NODE } from "./topology";

/** Everything backups put in the stack's bucket lives under this prefix. */
export const BACKUP_PREFIX = "backups/";

/** Nightly physical backups (`mariadb-backup`/`xtrabackup` stream, zstd): `backups/full/<UTC stamp>/…`. */
export const FULL_BACKUP_PREFIX = `${BACKUP_PREFIX}full/`;

/** Every node's shipped binlogs. */
export const BINLOG_PREFIX = `${BACKUP_PREFIX}binlog/`;

/** A node's shipped binlogs, one object per closed binlog file: `backups/binlog/<node>/<file>.zst`. */
export function binlogPrefix(node: AppNodeName): string {
  return `${BINLOG_PREFIX}${node}/`;
}

/**
 * The node that takes the nightly physical backup: the replica, so the writer is not slowed. With
 * `database: galera`, s1 as a member (mariadb-backup --galera-info; its manifest keeps the cluster
 * position).
 */
export const BACKUP_NODE: AppNodeName = REPLICA_NODE;
/**
 * The node whose binlogs are shipped: the writer, whose binlogs hold every acknowledged write. With
 * `database: galera`, s2 as a member: its binlog holds the other member's writes too
 * (log_slave_updates).
 */
export const BINLOG_NODE: AppNodeName = PRIMARY_NODE;
/**
 * The node a restore runs on, which alone may read and list the backups: the replica, rebuilt from
 * them while the primary serves. A restore on another node needs its role to get the same grants.
 * With `database: galera` the node tool refuses to restore (README "Database modes").
 */
export const RESTORE_NODE: AppNodeName = BACKUP_NODE;

/** How often the binlogs are shipped (a systemd OnCalendar): the recovery point is at most this. */
export const BINLOG_SHIP_CALENDAR = "*:0/5";
export const BINLOG_SHIP_INTERVAL_SECONDS = 300;
/** When the nightly backup starts (UTC, a systemd OnCalendar), spread by RandomizedDelaySec. */
export const FULL_BACKUP_CALENDAR = "*-*-* 03:00:00 UTC";

/** Where a node's backup tools keep their state (the collector reads it for the age metrics). */
export const BACKUP_STATE_DIR = "/var/lib/webstack/backup";
/** `{"finished": <epoch s>, "key": <object key>}` of the newest full backup this node took. */
export const FULL_BACKUP_STATE = `${BACKUP_STATE_DIR}/full.json`;
/** `{"shipped": <epoch s>, "through": <binlog file>}`: when the bucket last held every closed binlog. */
export const BINLOG_STATE = `${BACKUP_STATE_DIR}/binlog.json`;

/** Metrics (namespace METRIC_NAMESPACE, dimension Node) the collector computes from the state files. */
export const BACKUP_AGE_METRIC = "BackupAgeSeconds";
export const BINLOG_SHIP_AGE_METRIC = "BinlogShipAgeSeconds";

/** The alarms' limits: a nightly backup missed by two hours, binlog shipping two runs behind. */
export const BACKUP_AGE_ALARM_SECONDS = 26 * 3600;
export const BINLOG_SHIP_AGE_ALARM_SECONDS = 2 * BINLOG_SHIP_INTERVAL_SECONDS;
