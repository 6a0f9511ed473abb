// An app node's share of the backups (issue 20): the replica's nightly physical backup, the
// primary's binlogs every five minutes, and the restore command, all run by the node tool
// (files/webstack-aws.py) with the settings rendered here from model/backups.ts.
import {
  BACKUP_NODE,
  BACKUP_STATE_DIR,
  BINLOG_NODE,
  BINLOG_SHIP_CALENDAR,
  BINLOG_STATE,
  FULL_BACKUP_CALENDAR,
  FULL_BACKUP_PREFIX,
  FULL_BACKUP_STATE,
  binlogPrefix,
} from "../model/backups";
import { DbEngine } from "../model/config";
import { AppNodeName, PORTS } from "../model/topology";
import { BundleFile, BundlePart, unitFile } from "./bundle";
import {
  DB_BOOTSTRAP_PATH,
  DB_CLIENT_TLS_PATH,
  DB_DATA_DIR,
  DB_REPLICATION_PASSWORD_PATH,
  ENGINES,
} from "./database";
import { renderEnvFile } from "./nodeFiles";
import { renderShipped, shippedFile } from "./template";

export const BACKUP_ENV_PATH = "/etc/webstack/backup.env";
export const DB_RESTORE_PATH = "/usr/local/sbin/webstack-db-restore";
/** The app's unit: a restore stops it (the node must not serve the past) and its resume starts it. */
const APP_UNIT = "webstack-app.service";

/** The engine's backup tools: MariaDB's own (Debian's packages). */
const TOOLS: Readonly<Record<DbEngine, { backup: string; stream: string; binlog: string } | null>> =
  {
    mariadb: { backup: "mariadb-backup", stream: "mbstream", binlog: "mariadb-binlog" },
    // MySQL 8.4's equivalent is Percona XtraBackup from Percona's repository: not built yet (the
    // README says so); a MySQL stack has the EBS snapshots only.
    mysql: null,
  };

/** Whether the engine has physical backups and binlog shipping (MySQL: the snapshots only). */
export function hasPhysicalBackups(engine: DbEngine): boolean {
  return TOOLS[engine] !== null;
}

/** The packages the backups need on an app node (with the engine's). */
export function backupPackages(engine: DbEngine): readonly string[] {
  return TOOLS[engine] ? ["mariadb-backup", "zstd"] : [];
}

export interface BackupParams {
  readonly node: AppNodeName;
  readonly engine: DbEngine;
  /** The stack's bucket. */
  readonly bucket: string;
  /** The primary's address and server id (its GTID domain): a restore replicates from it again. */
  readonly primaryIp: string;
  readonly primaryServerId: number;
}

interface Job {
  readonly unit: string;
  readonly command: string;
  readonly what: string;
  readonly when: string;
  readonly calendar: string;
  readonly spread: string;
}

const FULL_JOB: Job = {
  unit: "webstack-db-backup",
  command: "backup-full",
  what: "a physical backup of the database",
  when: "nightly",
  calendar: FULL_BACKUP_CALENDAR,
  spread: "30min",
};

const BINLOG_JOB: Job = {
  unit: "webstack-binlog-ship",
  command: "ship-binlogs",
  what: "the database's closed binlogs",
  when: "every five minutes",
  calendar: BINLOG_SHIP_CALENDAR,
  spread: "0",
};

/** A job's service and timer; a new or changed timer is enabled and (re)started. */
function jobUnits(job: Job, engine: DbEngine): BundleFile[] {
  const e = ENGINES[engine];
  return [
    unitFile(
      `${job.unit}.service`,
      renderShipped("webstack-db-backup.service", {
        WHAT: job.what,
        DB_SERVICE: e.service,
        DB_CLIENT: `/usr/bin/${e.client}`,
        COMMAND: job.command,
        // systemd makes it (ProtectSystem=strict leaves it writable): relative to /var/lib.
        STATE_DIRECTORY: BACKUP_STATE_DIR.replace(/^\/var\/lib\//, ""),
      }),
    ),
    unitFile(
      `${job.unit}.timer`,
      renderShipped("webstack-db-backup.timer", {
        WHAT: job.what,
        WHEN: job.when,
        CALENDAR: job.calendar,
        SPREAD: job.spread,
      }),
      "enable",
      "--now",
      `${job.unit}.timer`,
    ),
  ];
}

/** The timers an app node runs for the backups (the lab lists them). */
export function backupTimers(node: AppNodeName, engine: DbEngine): string[] {
  if (!TOOLS[engine]) return [];
  return [
    ...(node === BACKUP_NODE ? [`${FULL_JOB.unit}.timer`] : []),
    ...(node === BINLOG_NODE ? [`${BINLOG_JOB.unit}.timer`] : []),
  ];
}

/**
 * The backups' share of an app node's bundle: their settings, and the replica's nightly backup and
 * restore command or the primary's binlog shipping. Nothing for an engine without backup tools.
 */
export function renderBackupPart(p: BackupParams): BundlePart {
  const tools = TOOLS[p.engine];
  if (!tools) return {};
  const e = ENGINES[p.engine];
  const settings = renderEnvFile({
    NODE: p.node,
    DB_ENGINE: p.engine,
    BACKUP_BUCKET: p.bucket,
    FULL_PREFIX: FULL_BACKUP_PREFIX,
    BINLOG_NODE,
    BINLOG_PREFIX: binlogPrefix(BINLOG_NODE),
    STATE_DIR: BACKUP_STATE_DIR,
    FULL_STATE: FULL_BACKUP_STATE,
    BINLOG_STATE,
    BACKUP_TOOL: tools.backup,
    STREAM_TOOL: tools.stream,
    BINLOG_TOOL: tools.binlog,
    DB_CLIENT: e.client,
    DB_SERVICE: `${e.service}.service`,
    DATA_DIR: DB_DATA_DIR,
    DB_BOOTSTRAP: DB_BOOTSTRAP_PATH,
    APP_SERVICE: APP_UNIT,
    DB_PRIMARY_IP: p.primaryIp,
    DB_PRIMARY_PORT: String(PORTS.mysql),
    PRIMARY_SERVER_ID: String(p.primaryServerId),
    REPLICATION_PASSWORD_FILE: DB_REPLICATION_PASSWORD_PATH,
    CLIENT_TLS_FILE: DB_CLIENT_TLS_PATH,
  });
  const timers = backupTimers(p.node, p.engine);
  return {
    // A new node's timers (a running node's are enabled by their files' onChange).
    firstApply: timers.length ? [["systemctl", "enable", "--now", ...timers]] : [],
    files: [
      { path: BACKUP_ENV_PATH, content: settings, mode: "0644" },
      ...(p.node === BACKUP_NODE
        ? [
            ...jobUnits(FULL_JOB, p.engine),
            { path: DB_RESTORE_PATH, content: shippedFile("db-restore.sh"), mode: "0755" },
          ]
        : []),
      ...(p.node === BINLOG_NODE ? jobUnits(BINLOG_JOB, p.engine) : []),
    ],
  };
}
