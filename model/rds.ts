// Amazon RDS for MariaDB (`database: rds`) as data: the engine, its limits, the CA, the names.
import { PROJECT } from "./naming";

/** The engine RDS runs: MariaDB, as on the nodes (`dbEngine` mariadb is required with rds). */
export const RDS_ENGINE = "mariadb";
/**
 * MariaDB 11.8, an LTS and the nodes' own (Debian 13's): the major version only, so RDS picks the
 * newest minor at creation and applies the later ones itself (autoMinorVersionUpgrade) without the
 * plan ever showing a diff. RDS lists 11.8.3 to 11.8.6 (its standard support until June 2030).
 */
export const RDS_ENGINE_VERSION = "11.8";
/** The parameter group family that goes with RDS_ENGINE_VERSION. */
export const RDS_PARAMETER_FAMILY = `${RDS_ENGINE}${RDS_ENGINE_VERSION}`;

/** The instance class when `rdsInstanceClass` is unset: 2 vCPU (Graviton, burstable), 2 GiB. */
export const DEFAULT_RDS_INSTANCE_CLASS = "db.t4g.small";
/** `db.` family `.` size, as RDS names its classes (db.t4g.small, db.r7g.2xlarge, db.m6i.metal). */
export const RDS_INSTANCE_CLASS =
  /^db\.[a-z][a-z0-9-]*\.(?:micro|small|medium|large|\d*xlarge|metal)$/;

/** RDS's smallest gp3 allocation for MariaDB, in GiB (`dataVolumeGiB` is the allocation). */
export const RDS_MIN_STORAGE_GIB = 20;
/** RDS keeps automated backups 1 to 35 days (`backupRetentionDays`). */
export const RDS_MAX_BACKUP_RETENTION_DAYS = 35;

/**
 * The CA that signs the instance's server certificate, set explicitly (not left to the account's
 * default): RSA 2048, valid until 2061, with automatic server-certificate rotation. The nodes verify
 * against Amazon's bundle (RDS_CA_BUNDLE_URL), which holds every RDS CA of every region.
 */
export const RDS_CA_IDENTIFIER = "rds-ca-rsa2048-g1";
/** Amazon's bundle of the RDS CAs, which a node fetches at its first boot (see the README). */
export const RDS_CA_BUNDLE_URL =
  "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";

/** The master user RDS keeps the password of (Secrets Manager): s2 writes the schema and users as it. */
export const RDS_MASTER_USERNAME = "webstack_admin";

/** The logs RDS for MariaDB can publish to CloudWatch Logs: FSBP RDS.9 by default expects all four. */
export const RDS_MARIADB_LOGS = ["audit", "error", "general", "slowquery"] as const;

/**
 * The logs the instance publishes: the error and slow query logs. Not the audit log (it needs an
 * option group with MARIADB_AUDIT_PLUGIN, which the stack does not make) nor the general log (every
 * statement: too heavy for what it tells), so RDS.9 with its default parameters flags the instance.
 */
export const RDS_LOG_EXPORTS = [
  "error",
  "slowquery",
] as const satisfies readonly (typeof RDS_MARIADB_LOGS)[number][];

/**
 * The instance's identifier, `webstack-<stack>`: letters, digits and single hyphens, starting with a
 * letter, at most 63 characters (a stack name may hold '.' and '_'). A fixed name, unlike the
 * stack's other resources: its log groups must exist, with their retention, before RDS writes them.
 */
export function rdsIdentifier(stack: string): string {
  const name = `${PROJECT}-${stack}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .slice(0, 63);
  return name.replace(/-+$/, "");
}

/** The log group RDS publishes one of the instance's logs to. */
export function rdsLogGroupName(identifier: string, log: (typeof RDS_LOG_EXPORTS)[number]): string {
  return `/aws/rds/instance/${identifier}/${log}`;
}
