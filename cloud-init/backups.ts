// An app node's share of the backups (issue 20): the replica's nightly physical backup, the
// primary's binlogs every five minutes, and the restore command, all run by the node tool
// (files/webstack-aws.py) with the settings rendered here from model/backups.ts. With `database:
// galera` the same nodes back up and ship as members; the node tool reads the mode from node.env.
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
import { DEBIAN_RELEASE } from "../model/aptSources";
import { DbEngine } from "../model/config";
import { AppNodeName, DatabaseMode, PORTS } from "../model/topology";
import { AptSource, BundleFile, BundlePart, unitFile } from "./bundle";
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

/**
 * Percona's packaging key ("Percona Development Team (Packaging key)", RSA 4096, 2016, no expiry), by
 * full fingerprint: the key `files/percona-packaging.asc` holds (its copy in Percona's own
 * percona-repositories, as their percona-release package installs it; tests/backupPart.test.ts checks
 * the fingerprint). Checked in November 2026.
 */
export const PERCONA_APT_KEY_FINGERPRINT = "4D1BB29D63D98E422B2113B19334A25F8507EFA5";

/** Percona's repository of XtraBackup 8.4 LTS, the series that backs up MySQL 8.4 LTS. */
const PERCONA_XTRABACKUP_REPOSITORY = "https://repo.percona.com/pxb-84-lts/apt";

/** An ASCII-armored key as a deb822 field's continuation lines (an empty line is " ."). */
function deb822Key(armored: string): string {
  return armored
    .trimEnd()
    .split("\n")
    .map((line) => (line === "" ? " ." : ` ${line}`))
    .join("\n");
}

/** Percona's XtraBackup repository, its key inline: the bundle's source of percona-xtrabackup-84. */
export function perconaXtrabackupSource(): AptSource {
  return {
    name: "percona-xtrabackup-84",
    content: [
      "Types: deb",
      `URIs: ${PERCONA_XTRABACKUP_REPOSITORY}`,
      `Suites: ${DEBIAN_RELEASE}`,
      "Components: main",
      `Signed-By:\n${deb822Key(shippedFile("percona-packaging.asc"))}`,
      "",
    ].join("\n"),
    packages: ["percona-xtrabackup-84"],
  };
}

interface BackupTools {
  /** The physical backup's tool and its stream's unpacker. */
  readonly backup: string;
  readonly stream: string;
  readonly binlog: string;
  /** Debian's packages of the tools (with the app node's own list). */
  readonly packages: readonly string[];
  /** A repository beyond Debian's that the tools come from, with their packages. */
  readonly source?: () => AptSource;
}

/**
 * The engine's backup tools. MariaDB's are Debian's own. MySQL 8.4's physical backup is Percona
 * XtraBackup 8.4 (MySQL's own, MySQL Enterprise Backup, is commercial), from Percona's repository,
 * which the bundle adds; mysqlbinlog comes with Oracle's client.
 */
const TOOLS: Readonly<Record<DbEngine, BackupTools>> = {
  mariadb: {
    backup: "mariadb-backup",
    stream: "mbstream",
    binlog: "mariadb-binlog",
    packages: ["mariadb-backup", "zstd"],
  },
  mysql: {
    backup: "xtrabackup",
    stream: "xbstream",
    binlog: "mysqlbinlog",
    packages: ["zstd"],
    source: perconaXtrabackupSource,
  },
};

/** The packages the backups need on an app node from Debian (with the engine's). */
export function backupPackages(engine: DbEngine): readonly string[] {
  return TOOLS[engine].packages;
}

export interface BackupParams {
  readonly node: AppNodeName;
  readonly engine: DbEngine;
  /** The stack's bucket. */
  readonly bucket: string;
  /**
   * How the databases hold the data. With `galera` the node tool refuses to restore (a restored
   * member founds a new cluster instead; README "Database modes"): no primary to replicate from.
   */
  readonly cluster: DatabaseMode;
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
export function backupTimers(node: AppNodeName): string[] {
  return [
    ...(node === BACKUP_NODE ? [`${FULL_JOB.unit}.timer`] : []),
    ...(node === BINLOG_NODE ? [`${BINLOG_JOB.unit}.timer`] : []),
  ];
}

/** What a restore needs to replicate again: the primary and the replication user's credentials. */
function replicationSettings(p: BackupParams): Record<string, string> {
  return {
    DB_PRIMARY_IP: p.primaryIp,
    DB_PRIMARY_PORT: String(PORTS.mysql),
    PRIMARY_SERVER_ID: String(p.primaryServerId),
    REPLICATION_PASSWORD_FILE: DB_REPLICATION_PASSWORD_PATH,
    CLIENT_TLS_FILE: DB_CLIENT_TLS_PATH,
  };
}

/**
 * The backups' share of an app node's bundle: their settings, the tools' repository where they are
 * not Debian's, and the replica's nightly backup and restore command or the primary's binlog
 * shipping (with `galera`, s1's and s2's as members: the settings name no primary).
 */
export function renderBackupPart(p: BackupParams): BundlePart {
  const tools = TOOLS[p.engine];
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
    DB_CONF_DIR: e.confDir,
    DATA_DIR: DB_DATA_DIR,
    DB_BOOTSTRAP: DB_BOOTSTRAP_PATH,
    APP_SERVICE: APP_UNIT,
    ...(p.cluster === "replication" ? replicationSettings(p) : {}),
  });
  const timers = backupTimers(p.node);
  return {
    ...(tools.source ? { aptSources: [tools.source()] } : {}),
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
