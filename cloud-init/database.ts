// The database part of an app node: engine profiles (MariaDB 11.8, MySQL 8.4 LTS), config and SQL;
// with `database: rds`, the node's side of the RDS instance (its client, CA, schema and users).
import { DbEngine } from "../model/config";
import {
  AppNodeName,
  DatabaseMode,
  DbRole,
  LB_NODE,
  NodeName,
  PORTS,
  PRIMARY_NODE,
  Topology,
  hasArbitrator,
} from "../model/topology";
import { BundlePart } from "./bundle";
import { BootstrapPart } from "./cloudConfig";
import { shippedFile } from "./template";

/** A Galera member's view of its cluster (`database: galera`). */
export interface GaleraMember {
  /** The group's name: one per stack. */
  readonly clusterName: string;
  /**
   * This member's name in the group: its certificate's name (its internal name), as the logs
   * and status show it.
   */
  readonly nodeName: string;
  /**
   * The other members' addresses, and the arbitrator's when there is one: where a starting member
   * finds the group.
   */
  readonly peerIps: readonly string[];
  /**
   * This member founds the cluster when none exists yet (s2, on its first start); every other
   * start of every member joins the group.
   */
  readonly founder: boolean;
  /** The founder's address: the other members start joining only once it listens. */
  readonly founderIp: string;
  /** The other data members' addresses (the arbitrator's left out). */
  readonly memberIps: readonly string[];
}

/** The stack's Galera group: its members and arbitrator find each other by it. */
export function galeraClusterName(stack: string): string {
  return `webstack-${stack}`;
}

/**
 * A member's view of the stack's cluster: the group named after the stack, s2 its founder, every
 * other app node a member, and the LB's arbitrator when the members are even in number.
 */
export function galeraMember(
  stack: string,
  topology: Pick<Topology, "nodes" | "appNodes">,
  node: AppNodeName,
): GaleraMember {
  const { nodes, appNodes } = topology;
  const others = appNodes.filter((n) => n !== node);
  const arbitrator: NodeName[] = hasArbitrator("galera", appNodes.length) ? [LB_NODE] : [];
  return {
    clusterName: galeraClusterName(stack),
    nodeName: nodes[node].internalName,
    peerIps: [...others, ...arbitrator].map((n) => nodes[n].privateIp),
    founder: node === PRIMARY_NODE,
    founderIp: nodes[PRIMARY_NODE].privateIp,
    memberIps: others.map((n) => nodes[n].privateIp),
  };
}

/** The RDS instance as the app nodes reach it (`database: rds`): plain values, none secret. */
export interface RdsEndpoint {
  /** The instance's DNS name: its certificate's name, the app's DB_PRIMARY and DB_REPLICA. */
  readonly address: string;
  readonly port: number;
  /** The master user's secret (Secrets Manager), kept and rotated by RDS: s2 writes the schema as it. */
  readonly adminSecretArn: string;
}

export interface DatabaseParams {
  readonly engine: DbEngine;
  /** How the servers hold the data: a primary and its replica, Galera members, or RDS's. */
  readonly cluster: DatabaseMode;
  /** The node's place: with `galera` every member takes writes; the "primary" founds the cluster and runs the schema. */
  readonly role: DbRole;
  /** With `galera`: the member's view of its cluster. */
  readonly galera?: GaleraMember;
  /** With `rds`: the instance; the node holds no database, the "primary" writes the schema there. */
  readonly rds?: RdsEndpoint;
  /** Node name, for comments. */
  readonly node: AppNodeName;
  /** Distinct per server; also the GTID domain on MariaDB. */
  readonly serverId: number;
  /** The server listens on this address only (plus its unix socket). */
  readonly bindAddress: string;
  /** The primary's address (the replica's source). */
  readonly primaryIp: string;
  /** Every app node's address: remote app and replication users are created for each. */
  readonly appNodeIps: readonly string[];
}

/** What the server's own settings need: its engine, role, identity and address. */
export type DatabaseServer = Pick<
  DatabaseParams,
  "engine" | "cluster" | "role" | "node" | "serverId" | "bindAddress"
>;

/**
 * The database's role as the node's scripts and the app see it: a member of a Galera cluster,
 * primary/replica, or (with `rds`) a client of a database it does not hold.
 */
export type DbNodeRole = DbRole | "member" | "client";

export function dbNodeRole(p: Pick<DatabaseParams, "cluster" | "role">): DbNodeRole {
  if (p.cluster === "rds") return "client";
  return p.cluster === "galera" ? "member" : p.role;
}

/** Where the node keeps the database's TLS files (the engines' AppArmor profiles allow /etc/mysql). */
export const DB_TLS_DIR = "/etc/mysql/webstack";
/** The database's copy of the node's certificate (the collector watches its expiry too). */
export const DB_CERT_PATH = `${DB_TLS_DIR}/node.crt`;
export const DB_DATA_DIR = "/var/lib/mysql";
/** The database's bootstrap (files/db-bootstrap.sh), which a restore runs again to replicate. */
export const DB_BOOTSTRAP_PATH = "/usr/local/sbin/webstack-db-bootstrap";
/** The replication user's password, fetched from SSM (root's only). */
export const DB_REPLICATION_PASSWORD_PATH = "/etc/webstack/secrets/db-replication-password";
/** The [client] options that verify the server's certificate (read by each client run). */
export const DB_CLIENT_TLS_PATH = "/etc/webstack/db/client-tls.cnf";
/** Bounded wait of the replica for its primary: about 15 minutes with backoff capped at 30 s. */
export const DB_WAIT_ATTEMPTS = 40;

/** The signing key of MySQL's APT repository ("MySQL Release Engineering", 2023), by full fingerprint. */
export const MYSQL_APT_KEY_FINGERPRINT = "BCA43417C3B485DD128EC6D4B7B3B788A8D3785C";

interface EngineProfile {
  readonly packages: readonly string[];
  readonly apt?: Readonly<Record<string, unknown>>;
  readonly service: string;
  /** The server's executable name (what process monitoring looks for). */
  readonly daemon: string;
  readonly client: string;
  readonly confDir: string;
  /** File names in confDir: both must sort after the package's own files to win. */
  readonly baseConf: string;
  readonly lateConf: string;
  readonly section: string;
  /** Binlog, GTID and replica settings that must be in place before the first start. */
  readonly replicationLines: (p: DatabaseServer) => string[];
  /** Read-only settings of the replica, and when they apply (see the profiles). */
  readonly readOnly: { readonly lines: readonly string[]; readonly late: boolean };
  /** How the replica applies the primary's transactions, where the engine's default is serial. */
  readonly replicaApplyLines: readonly string[];
  /** Redo log and binlog flushed at each commit, where the engine's defaults do not. */
  readonly durableCommitLines: readonly string[];
  readonly monitorGrants: string;
  readonly replicaSql: (p: DatabaseParams) => string;
  /** [client] options that make the command-line client verify the server's certificate. */
  readonly clientTls: readonly string[];
}

const MARIADB: EngineProfile = {
  packages: ["mariadb-server", "mariadb-client"],
  service: "mariadb",
  daemon: "mariadbd",
  client: "mariadb",
  confDir: "/etc/mysql/mariadb.conf.d",
  baseConf: "60-webstack.cnf",
  lateConf: "61-webstack-late.cnf",
  section: "[mariadbd]",
  replicationLines: (p) => [
    `gtid_domain_id = ${p.serverId}`,
    "gtid_strict_mode = ON",
    "log_slave_updates = ON",
    "slave_net_timeout = 20",
  ],
  // MariaDB has no super_read_only (it refuses to start with it): read_only, and the app user
  // never gets READ ONLY ADMIN or SUPER. Safe from the first start.
  readOnly: { lines: ["read_only = ON"], late: false },
  // MariaDB applies serially by default (0 threads): at 1000 commits/s the one applier fell seconds
  // behind in the lab (p99 visibility 0.3-1.2 s), four took it to ~15 ms. Optimistic mode (the
  // default since 10.5.1, written out) runs the primary's transactions side by side and still
  // commits them in its order (a conflict is rolled back and run again: Slave_retried_transactions),
  // so the replica's data and durability are as before. MySQL 8.4's default is already four workers
  // with the commit order kept. A promotion waits for the workers (README: the runbook's step 2).
  replicaApplyLines: ["slave_parallel_threads = 4", "slave_parallel_mode = optimistic"],
  // Durable commits on a MariaDB replication node, primary and replica alike (a replica is the node
  // a promotion makes the writer; with log_slave_updates its binlog is one a promoted node serves):
  // the redo log and the binlog both flushed at each group commit. With the binlog on, MariaDB
  // flushes the redo log at a transaction's prepare, not at its commit, and crash recovery commits a
  // transaction InnoDB had only prepared if the binlog holds it, else rolls it back. With the binlog
  // left to the OS (MariaDB's default, sync_binlog = 0), an OS crash or a power loss can lose
  // commits the client was told of, and leave the binlog and the data disagreeing either way: the
  // replicas then hold writes the primary lost, or miss writes it kept. With the late settings, so
  // that a bundle brings them to a running stack's nodes (each restarted once, the replicas first).
  // A Galera member keeps the engine's defaults: a commit returns once the group has it.
  durableCommitLines: ["innodb_flush_log_at_trx_commit = 1", "sync_binlog = 1"],
  monitorGrants: "PROCESS, BINLOG MONITOR, REPLICA MONITOR",
  replicaSql: (p) =>
    [
      "CHANGE MASTER TO",
      `  MASTER_HOST = '${p.primaryIp}', MASTER_PORT = ${PORTS.mysql},`,
      "  MASTER_USER = 'replication', MASTER_PASSWORD = '@REPLICATION_PASSWORD@',",
      "  MASTER_USE_GTID = slave_pos,",
      `  MASTER_SSL = 1, MASTER_SSL_CA = '${DB_TLS_DIR}/ca.crt', MASTER_SSL_VERIFY_SERVER_CERT = 1,`,
      "  MASTER_CONNECT_RETRY = 5;",
      "START REPLICA;",
    ].join("\n"),
  clientTls: [`ssl-ca=${DB_TLS_DIR}/ca.crt`, "ssl-verify-server-cert"],
};

const MYSQL: EngineProfile = {
  packages: ["mysql-server"],
  apt: {
    sources: {
      "mysql-8.4-lts": {
        // https and hkps: the firewalls let the nodes out on 443 only.
        source:
          "deb [signed-by=$KEY_FILE] https://repo.mysql.com/apt/debian $RELEASE mysql-8.4-lts",
        keyid: MYSQL_APT_KEY_FINGERPRINT,
        keyserver: "hkps://keyserver.ubuntu.com",
      },
    },
  },
  service: "mysql",
  daemon: "mysqld",
  client: "mysql",
  confDir: "/etc/mysql/mysql.conf.d",
  baseConf: "webstack.cnf",
  lateConf: "webstack-late.cnf",
  section: "[mysqld]",
  // gtid_mode before the first start: pre-GTID binlog events would stop the replica (error 3113).
  replicationLines: () => [
    "gtid_mode = ON",
    "enforce_gtid_consistency = ON",
    "log_replica_updates = ON",
    "replica_net_timeout = 20",
  ],
  // super_read_only would block the package's own post-install steps: it comes with the late
  // settings, after the install and before the bootstrap.
  readOnly: { lines: ["read_only = ON", "super_read_only = ON"], late: true },
  // replica_parallel_workers = 4 and replica_preserve_commit_order = ON are 8.4's defaults.
  replicaApplyLines: [],
  // innodb_flush_log_at_trx_commit = 1 and sync_binlog = 1 are 8.4's defaults: written out, they
  // would restart a running stack's servers for nothing.
  durableCommitLines: [],
  monitorGrants: "PROCESS, REPLICATION CLIENT",
  replicaSql: (p) =>
    [
      "CHANGE REPLICATION SOURCE TO",
      `  SOURCE_HOST = '${p.primaryIp}', SOURCE_PORT = ${PORTS.mysql},`,
      "  SOURCE_USER = 'replication', SOURCE_PASSWORD = '@REPLICATION_PASSWORD@',",
      "  SOURCE_AUTO_POSITION = 1,",
      `  SOURCE_SSL = 1, SOURCE_SSL_CA = '${DB_TLS_DIR}/ca.crt', SOURCE_SSL_VERIFY_SERVER_CERT = 1,`,
      "  SOURCE_CONNECT_RETRY = 5;",
      "START REPLICA;",
    ].join("\n"),
  clientTls: [`ssl-ca=${DB_TLS_DIR}/ca.crt`, "ssl-mode=VERIFY_IDENTITY"],
};

export const ENGINES: Readonly<Record<DbEngine, EngineProfile>> = {
  mariadb: MARIADB,
  mysql: MYSQL,
};

/**
 * A Galera member's settings before the package installs: its own binlog (backups read it) with
 * the members' writes in it, and the interleaved auto-increment locks Galera needs. No read-only,
 * no GTID strict mode (Galera orders the members' writes itself); the cluster comes with the late
 * settings, once the node's certificate exists.
 */
const GALERA_SERVER_LINES = [
  "log_slave_updates = ON",
  "innodb_autoinc_lock_mode = 2",
  "default_storage_engine = InnoDB",
];

/** Server settings written before the package installs: identity, binlog, GTID, bind address. */
export function renderServerConfig(p: DatabaseServer): string {
  const e = ENGINES[p.engine];
  const galera = p.cluster === "galera";
  return [
    `# webstack ${p.node} (${dbNodeRole(p)}): written before the server package installs, so binlog and GTID`,
    "# settings hold from the very first start.",
    e.section,
    `server_id = ${p.serverId}`,
    "log_bin = mysql-bin",
    "binlog_format = ROW",
    ...(galera
      ? [`gtid_domain_id = ${p.serverId}`, ...GALERA_SERVER_LINES]
      : ["relay_log = relay-bin", ...e.replicationLines(p)]),
    `bind_address = ${p.bindAddress}`,
    "skip_name_resolve = ON",
    ...(p.role === "replica" && !galera && !e.readOnly.late ? e.readOnly.lines : []),
    "",
  ].join("\n");
}

/**
 * A Galera member's packages besides the server's: the provider, and socat, which streams a state
 * transfer (mariadb-backup, in the backups' packages, makes it).
 */
export const GALERA_PACKAGES: readonly string[] = ["galera-4", "socat"];

/** Debian's galera-4 provider library. */
export const GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so";

/** Galera's TLS options (the group's traffic and IST): the node's own certificate, the private CA. */
export function galeraSocketTls(ca: string, cert: string, key: string): string[] {
  return [
    "socket.ssl=yes",
    `socket.ssl_ca=${ca}`,
    `socket.ssl_cert=${cert}`,
    `socket.ssl_key=${key}`,
  ];
}

/**
 * A member's cluster settings, with the late ones (they name the node's certificate): the group
 * over TLS on the node's own address, state transfers by mariadb-backup streamed over TLS, the
 * donor checking the joiner's certificate for the address it sends to (VERIFY_IDENTITY).
 */
function galeraLines(p: DatabaseParams, g: GaleraMember): string[] {
  const provider = [
    ...galeraSocketTls(`${DB_TLS_DIR}/ca.crt`, DB_CERT_PATH, `${DB_TLS_DIR}/node.key`),
    `gmcast.listen_addr=tcp://${p.bindAddress}:${PORTS.galera}`,
    `ist.recv_addr=${p.bindAddress}:${PORTS.galeraIst}`,
  ];
  return [
    "wsrep_on = ON",
    `wsrep_provider = ${GALERA_PROVIDER}`,
    `wsrep_cluster_name = ${g.clusterName}`,
    `wsrep_cluster_address = gcomm://${g.peerIps.join(",")}`,
    `wsrep_node_name = ${g.nodeName}`,
    `wsrep_node_address = ${p.bindAddress}`,
    `wsrep_provider_options = "${provider.join(";")}"`,
    "wsrep_sst_method = mariabackup",
    `wsrep_sst_receive_address = ${p.bindAddress}:${PORTS.galeraSst}`,
    "",
    "[sst]",
    "ssl-mode = VERIFY_IDENTITY",
    `ssl-ca = ${DB_TLS_DIR}/ca.crt`,
    `ssl-cert = ${DB_CERT_PATH}`,
    `ssl-key = ${DB_TLS_DIR}/node.key`,
  ];
}

/** Where the boot script points the server's logs (it creates the directory first). */
export const DB_LOG_DIR = "/var/log/mysql";

/**
 * Settings the boot script installs once their files can exist: TLS with the fetched key, and the
 * log files (the packages leave no log directory; errors go to the journal until then).
 */
export function renderLateConfig(p: DatabaseParams): string {
  const e = ENGINES[p.engine];
  return [
    `# webstack ${p.node}: installed by the boot script once the node's key and ${DB_LOG_DIR} exist.`,
    e.section,
    `ssl_ca = ${DB_TLS_DIR}/ca.crt`,
    `ssl_cert = ${DB_CERT_PATH}`,
    `ssl_key = ${DB_TLS_DIR}/node.key`,
    "tls_version = TLSv1.2,TLSv1.3",
    "require_secure_transport = ON",
    `log_error = ${DB_LOG_DIR}/error.log`,
    "slow_query_log = ON",
    `slow_query_log_file = ${DB_LOG_DIR}/slow.log`,
    "long_query_time = 1",
    ...(p.cluster !== "galera" ? e.durableCommitLines : []),
    ...(p.role === "replica" && p.cluster !== "galera" && e.readOnly.late ? e.readOnly.lines : []),
    // The replica's only: a change restarts the server it is on (db-late-config.sh), and a change
    // of these alone need not restart the primary, which refuses writes meanwhile.
    ...(p.role === "replica" && p.cluster !== "galera" ? e.replicaApplyLines : []),
    ...(p.galera ? galeraLines(p, p.galera) : []),
    "",
  ].join("\n");
}

const quote = (ip: string) => `'${ip}'`;

/**
 * A POST's Idempotency-Key, stored with its row (issue 21): unique, so a write retried after an
 * outcome nobody saw finds the first one's row instead of adding a second. ASCII, compared byte
 * for byte; NULL (a write without a key) any number of times.
 */
const IDEMPOTENCY_COLUMN = "idempotency_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL";
const IDEMPOTENCY_INDEX = "UNIQUE KEY items_idempotency_key (idempotency_key)";

/** The app's schema, idempotent: the database, its table, the idempotency key on an older table. */
const SCHEMA_SQL: readonly string[] = [
  "CREATE DATABASE IF NOT EXISTS webstack CHARACTER SET utf8mb4;",
  "CREATE TABLE IF NOT EXISTS webstack.items (",
  "  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,",
  "  note VARCHAR(200) NOT NULL,",
  "  written_by VARCHAR(16) NOT NULL,",
  "  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),",
  `  ${IDEMPOTENCY_COLUMN},`,
  `  ${IDEMPOTENCY_INDEX}`,
  ");",
  "-- The key on a table from before it (MySQL 8.4's ALTER has no ADD COLUMN IF NOT EXISTS).",
  "SET @webstack_ddl = IF((SELECT COUNT(*) FROM information_schema.COLUMNS",
  "    WHERE TABLE_SCHEMA = 'webstack' AND TABLE_NAME = 'items' AND COLUMN_NAME = 'idempotency_key') = 0,",
  `  'ALTER TABLE webstack.items ADD COLUMN ${IDEMPOTENCY_COLUMN}, ADD ${IDEMPOTENCY_INDEX}', 'DO 0');`,
  "PREPARE webstack_ddl FROM @webstack_ddl;",
  "-- A lock held on the table (a long transaction) fails the change after 10 s, to be run again at",
  "-- the next apply, instead of queueing every statement on the table behind it.",
  "SET SESSION lock_wait_timeout = 10;",
  "EXECUTE webstack_ddl;",
  "DEALLOCATE PREPARE webstack_ddl;",
];

/** The primary's schema and users; passwords are placeholders the boot script fills from SSM. */
export function renderPrimarySql(p: DatabaseParams): string {
  const e = ENGINES[p.engine];
  // A Galera member's app uses its own server only: no user from another address.
  const remote = p.cluster === "galera" ? [] : p.appNodeIps.map(quote);
  return [
    "-- webstack primary: schema and users, created here only (they replicate). Idempotent.",
    ...SCHEMA_SQL,
    ...(remote.length > 0
      ? [
          `-- Replication from ${remote.length === 2 ? "either" : "every"} app node, so a promoted replica needs no new user.`,
        ]
      : []),
    ...remote.flatMap((host) => [
      `CREATE USER IF NOT EXISTS 'replication'@${host} IDENTIFIED BY '@REPLICATION_PASSWORD@' REQUIRE SSL;`,
      `GRANT REPLICATION SLAVE ON *.* TO 'replication'@${host};`,
    ]),
    "-- The app: local over the socket, remote over TLS only; no privilege beyond its schema.",
    "CREATE USER IF NOT EXISTS 'app'@'localhost' IDENTIFIED BY '@APP_PASSWORD@';",
    "GRANT SELECT, INSERT ON webstack.* TO 'app'@'localhost';",
    ...remote.flatMap((host) => [
      `CREATE USER IF NOT EXISTS 'app'@${host} IDENTIFIED BY '@APP_PASSWORD@' REQUIRE SSL;`,
      `GRANT SELECT, INSERT ON webstack.* TO 'app'@${host};`,
    ]),
    "-- A release's command (migrations): all of the schema, local only, over the socket; locked",
    "-- but while a release command runs (the release command unlocks it, then locks it again).",
    "CREATE USER IF NOT EXISTS 'migrate'@'localhost' IDENTIFIED BY '@MIGRATE_PASSWORD@' ACCOUNT LOCK;",
    "GRANT ALL ON webstack.* TO 'migrate'@'localhost';",
    "-- Monitoring agents, local only.",
    "CREATE USER IF NOT EXISTS 'monitor'@'localhost' IDENTIFIED BY '@MONITOR_PASSWORD@' WITH MAX_USER_CONNECTIONS 5;",
    `GRANT ${e.monitorGrants} ON *.* TO 'monitor'@'localhost';`,
    "GRANT SELECT ON performance_schema.* TO 'monitor'@'localhost';",
    "",
  ].join("\n");
}

export function renderReplicaSql(p: DatabaseParams): string {
  return `-- webstack replica: GTID auto-position over verified TLS; run once, by the bootstrap.\n${ENGINES[p.engine].replicaSql(p)}\n`;
}

/** What the boot scripts need to know about the engine (sourced from /etc/webstack/node.env). */
export function databaseEnvironment(p: DatabaseParams): Record<string, string> {
  const e = ENGINES[p.engine];
  if (p.rds) return rdsEnvironment(p, p.rds);
  return {
    DB_ENGINE: p.engine,
    DB_ROLE: dbNodeRole(p),
    DB_CLUSTER: p.cluster,
    ...(p.galera
      ? {
          GALERA_CLUSTER_NAME: p.galera.clusterName,
          GALERA_FOUNDER: p.galera.founder ? "yes" : "no",
          GALERA_FOUNDER_IP: p.galera.founderIp,
          // The other data members (not the arbitrator, which holds no data to found from).
          GALERA_MEMBER_IPS: p.galera.memberIps.join(","),
        }
      : {}),
    DB_SERVICE: e.service,
    DB_CLIENT: e.client,
    DB_CONF_DIR: e.confDir,
    DB_LATE_CONF: e.lateConf,
    DB_PRIMARY_IP: p.primaryIp,
    DB_WAIT_ATTEMPTS: String(DB_WAIT_ATTEMPTS),
  };
}

/** Where the boot script and a bundle change install the late settings from. */
export const DB_LATE_CONFIG_PATH = "/usr/local/sbin/webstack-db-late-config";

/**
 * The bootstrap's share: the engine's APT source and the server settings (and the data volume's
 * mount requirement) in place before the package installs and first starts the server. The
 * engine's packages are in the app node's one list (appNodePackages), which its bundles name too.
 */
export function databaseBootstrapPart(p: DatabaseServer): BootstrapPart {
  const e = ENGINES[p.engine];
  return {
    apt: e.apt,
    bootFiles: [
      { path: `${e.confDir}/${e.baseConf}`, content: renderServerConfig(p), permissions: "0644" },
      {
        // The server never starts on the root volume's empty directory.
        path: `/etc/systemd/system/${e.service}.service.d/webstack-data.conf`,
        content: `[Unit]\nRequiresMountsFor=${DB_DATA_DIR}\n`,
        permissions: "0644",
      },
    ],
  };
}

/**
 * The bundle's share: the late settings (a change is installed and the server restarted: the
 * replica first), the client's TLS options (read by each client run), and the SQL the bootstrap runs
 * once at first boot.
 */
export function databaseBundlePart(p: DatabaseParams): BundlePart {
  const e = ENGINES[p.engine];
  // The primary's SQL is idempotent: a change runs it again (the schema a running stack lacks, a
  // new user), before the app's own change in the same bundle. The replica's runs once.
  // A Galera member other than the founder runs no SQL of its own: the schema and users reach it
  // with the cluster's state.
  const sql =
    p.role === "primary"
      ? {
          path: "/etc/webstack/db/primary.sql",
          content: renderPrimarySql(p),
          onChange: [DB_BOOTSTRAP_PATH],
        }
      : p.cluster === "galera"
        ? undefined
        : { path: "/etc/webstack/db/replica.sql", content: renderReplicaSql(p) };
  return {
    files: [
      {
        path: `/etc/webstack/db/${e.lateConf}`,
        content: renderLateConfig(p),
        mode: "0644",
        onChange: [DB_LATE_CONFIG_PATH],
      },
      { path: DB_LATE_CONFIG_PATH, content: shippedFile("db-late-config.sh"), mode: "0755" },
      {
        path: DB_CLIENT_TLS_PATH,
        content: `${e.clientTls.join("\n")}\n`,
        mode: "0644",
      },
      ...(sql ? [{ ...sql, mode: "0600" }] : []),
    ],
  };
}

// ---- `database: rds`: the app nodes hold no database; the instance is RDS's. ----

/** What an app node installs of the database with `rds`: the client alone (the schema, the release command). */
export const RDS_CLIENT_PACKAGES: readonly string[] = ["mariadb-client"];

/** Where the node keeps Amazon's RDS CA bundle, fetched at its first boot (the app reads it too). */
export const RDS_CA_PATH = "/etc/webstack/tls/rds-ca.pem";

/** The SQL s2 runs on the instance as its master user (passwords are placeholders, filled on the node). */
export const RDS_SQL_PATH = "/etc/webstack/db/rds.sql";
/**
 * The master user's secret's name, on s2 only (not a secret; a file, since an RDS secret's name holds
 * a '!', which no env file carries).
 */
export const RDS_ADMIN_SECRET_PATH = "/etc/webstack/db/rds-admin-secret";

/**
 * A Secrets Manager secret's name from its ARN (`…:secret:<name>-<6 characters>`): what the node
 * asks for. The bundle carries the name, not the ARN, whose `secret:` would read as a secret value
 * to the policy pack's patterns; IAM still judges the request against the ARN.
 */
export function secretNameOf(arn: string): string {
  const name = /^arn:[^:]+:secretsmanager:[^:]*:\d*:secret:(.+)-[A-Za-z0-9]{6}$/.exec(arn)?.[1];
  if (!name) throw new Error(`not a Secrets Manager secret's ARN: ${arn}`);
  return name;
}

/** The RDS instance an app node's database part talks to; it must be there with `rds`. */
export function rdsOf(p: Pick<DatabaseParams, "rds" | "node">): RdsEndpoint {
  if (!p.rds) throw new Error(`${p.node}: database rds without the RDS instance's endpoint`);
  return p.rds;
}

/** Whether this node writes the schema and users on the instance: the "primary", s2. */
const writesRdsSchema = (p: DatabaseParams) => p.role === "primary";

/**
 * The schema and users on the RDS instance: the app from each app node's address, the release
 * command's `migrate` from the primary's (where it runs), both over TLS only (the parameter group
 * refuses anything else too). No replication user (RDS replicates to its standby itself), no local
 * users and no monitoring user (CloudWatch watches the instance). Idempotent: s2 runs it at its first
 * boot and again when it changes.
 */
export function renderRdsSql(p: DatabaseParams): string {
  const instance = rdsOf(p).address;
  const primary = quote(p.primaryIp);
  return [
    `-- webstack: schema and users on the RDS instance ${instance}, written by ${p.node} as its master user. Idempotent.`,
    ...SCHEMA_SQL,
    "-- The app, from each app node, over TLS only; no privilege beyond its schema.",
    ...p.appNodeIps
      .map(quote)
      .flatMap((host) => [
        `CREATE USER IF NOT EXISTS 'app'@${host} IDENTIFIED BY '@APP_PASSWORD@' REQUIRE SSL;`,
        `GRANT SELECT, INSERT ON webstack.* TO 'app'@${host};`,
      ]),
    "-- A release's command (migrations): all of the schema, from the primary node only, where it runs;",
    "-- locked but while a release command runs (the release command unlocks it, then locks it again).",
    `CREATE USER IF NOT EXISTS 'migrate'@${primary} IDENTIFIED BY '@MIGRATE_PASSWORD@' REQUIRE SSL ACCOUNT LOCK;`,
    `GRANT ALL ON webstack.* TO 'migrate'@${primary};`,
    "",
  ].join("\n");
}

/** The rds node's environment: where the instance is, and whether the node writes the schema there. */
function rdsEnvironment(p: DatabaseParams, rds: RdsEndpoint): Record<string, string> {
  return {
    DB_ENGINE: p.engine,
    DB_ROLE: dbNodeRole(p),
    DB_CLUSTER: p.cluster,
    DB_CLIENT: ENGINES[p.engine].client,
    DB_HOST: rds.address,
    DB_PORT: String(rds.port),
    DB_SCHEMA: writesRdsSchema(p) ? "yes" : "no",
    DB_WAIT_ATTEMPTS: String(DB_WAIT_ATTEMPTS),
  };
}

/** The command line that reaches the instance as its master user: its options through a pipe, never on disk. */
export function rdsAdminClient(p: DatabaseParams): string {
  const rds = rdsOf(p);
  const options = `<(/usr/local/sbin/webstack-aws db-admin-options "$(<${RDS_ADMIN_SECRET_PATH})"; cat ${DB_CLIENT_TLS_PATH})`;
  return `/usr/bin/${ENGINES[p.engine].client} --defaults-extra-file=${options} --host=${rds.address} --port=${rds.port}`;
}

/**
 * The bundle's share with `rds`: the bootstrap (s2 writes the schema and users, s1 waits for them),
 * the client's TLS options (Amazon's CA, the instance's name checked), and on s2 the SQL, which a
 * change runs again.
 */
export function rdsBundlePart(p: DatabaseParams): BundlePart {
  rdsOf(p);
  return {
    files: [
      { path: DB_BOOTSTRAP_PATH, content: shippedFile("db-bootstrap-rds.sh"), mode: "0755" },
      {
        path: DB_CLIENT_TLS_PATH,
        content: `ssl-ca=${RDS_CA_PATH}\nssl-verify-server-cert\n`,
        mode: "0644",
      },
      ...(writesRdsSchema(p)
        ? [
            {
              path: RDS_ADMIN_SECRET_PATH,
              content: `${secretNameOf(rdsOf(p).adminSecretArn)}\n`,
              mode: "0644",
            },
            {
              path: RDS_SQL_PATH,
              content: renderRdsSql(p),
              mode: "0600",
              onChange: [DB_BOOTSTRAP_PATH],
            },
          ]
        : []),
    ],
  };
}

/**
 * The release command's database side (files/release-command.sh): how root reaches the server, and
 * where `migrate` connects from. The node's own server over its socket; with `rds`, the instance
 * as its master user over verified TLS, `migrate` from the primary node, and RDS's own procedure to
 * end a session (its master user has no right to KILL another user's).
 */
export function releaseCommandDatabase(p: DatabaseParams): Record<string, string> {
  if (!p.rds) {
    return {
      DB_ADMIN: `/usr/bin/${ENGINES[p.engine].client} --protocol=socket --user=root`,
      MIGRATE_ACCOUNT: "'migrate'@'localhost'",
      MIGRATE_WHERE: "(over the local socket; the statements replicate)",
      KILL_WHY:
        "(KILL does not replicate: the replica's are read-only, and only the primary's command\n# has the password)",
      KILL_SESSION: "KILL CONNECTION $id;",
    };
  }
  return {
    DB_ADMIN: `# database rds: not a local root but the RDS instance's master user, over verified TLS.\n  ${rdsAdminClient(p)}`,
    MIGRATE_ACCOUNT: `'migrate'@${quote(p.primaryIp)}`,
    MIGRATE_WHERE: "(on the RDS instance, as its master user over verified TLS)",
    KILL_WHY: "(with mysql.rds_kill: RDS's master user may not KILL another user's session)",
    KILL_SESSION: "CALL mysql.rds_kill($id);",
  };
}
