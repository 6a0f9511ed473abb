// The stack's configuration: one table of keys, a pure parser that reports every problem at once.
import { ENV_FILE_CHARACTERS } from "./envFile";
import {
  MAX_RATE_LIMIT_PER_CLIENT,
  MIN_LB_SERVER_TIMEOUT_SECONDS,
  RATE_LIMIT_WINDOW_SECONDS,
} from "./limits";
import { PROJECT } from "./naming";
import { APP_ARCHIVE_LIMIT_MIB, AppSourceListing, appSourceProblems } from "./appSource";
import { closestName, editDistance } from "./typos";
import {
  DEFAULT_RDS_INSTANCE_CLASS,
  RDS_ENGINE,
  RDS_INSTANCE_CLASS,
  RDS_MAX_BACKUP_RETENTION_DAYS,
  RDS_MIN_STORAGE_GIB,
} from "./rds";
import {
  Invalid,
  INSTANCE_TYPE,
  LOG_RETENTION_DAYS,
  ParseContext,
  APP_MODULE,
  MAX_APP_VARIABLES,
  MAX_RELEASE_COMMAND_LENGTH,
  SecretValue,
  appSecretVariables,
  appVariables,
  boolean,
  debPackageUrl,
  email,
  fqdn,
  httpsUrl,
  inEnvFile,
  instanceType,
  localPath,
  oneOf,
  pattern,
  positiveNumber,
  releaseCommand,
  retentionDays,
  tagSet,
  vpcCidr,
  wholeNumber,
} from "./configValues";

export { SecretValue } from "./configValues";

export type CertificateMode = "self-signed" | "letsencrypt" | "acm";
export type DbEngine = "mariadb" | "mysql";
import { DEFAULT_APP_NODE_COUNT, MAX_APP_NODE_COUNT } from "./topology";
import type { DatabaseMode } from "./topology";
export type { DatabaseMode };

/** The validated configuration every component receives. */
export interface WebstackConfig {
  /** The FQDN served, e.g. www.foobar.com. */
  readonly domain: string;
  /** Route53 public zone name that holds `domain`; no DNS record is managed without it. */
  readonly hostedZone?: string;
  /** How the LB gets its public certificate. @default "self-signed" */
  readonly certificate: CertificateMode;
  /** Contact e-mail for the ACME account (required with `letsencrypt`). */
  readonly acmeEmail?: string;
  /** ACME directory URL. @default Let's Encrypt production */
  readonly acmeDirectory: string;
  /** EC2 instance type of the load balancer. @default "t3.micro" */
  readonly lbInstanceType: string;
  /** EC2 instance type of each app+DB node. @default "t3.small" */
  readonly appInstanceType: string;
  /** Pinned AMI for the LB; otherwise the current Debian 13 AMI is looked up. */
  readonly lbAmi?: string;
  /** Pinned AMI for the app nodes; otherwise the current Debian 13 AMI is looked up. */
  readonly appAmi?: string;
  /** Database engine on the app nodes. @default "mariadb" */
  readonly dbEngine: DbEngine;
  /**
   * How the app nodes hold the data: `replication` (s2 the primary, the others its replicas),
   * `galera` (all writable members of a MariaDB Galera cluster, an arbitrator on the LB when they
   * are even in number) or `rds` (no database on them: one Amazon RDS for MariaDB instance,
   * Multi-AZ). @default "replication"
   */
  readonly database: DatabaseMode;
  /**
   * How many app nodes, s1…sN, alternating between the private subnets: replicas of s2 with
   * `replication`, members with `galera`, clients with `rds`. @default 2
   */
  readonly appNodeCount: number;
  /** The RDS instance's class, with `database` rds. @default "db.t4g.small" */
  readonly rdsInstanceClass: string;
  /** The VPC's IPv4 range (RFC 1918, /16 to /24). @default "10.40.0.0/16" */
  readonly vpcCidr: string;
  /**
   * S3 gateway and SSM, Session Manager, KMS, CloudWatch Logs and metrics interface endpoints in
   * the VPC (interface endpoints are billed per endpoint per AZ-hour). @default false
   */
  readonly vpcEndpoints: boolean;
  /** Protect the stateful nodes from deletion and replacement. @default true */
  readonly protectData: boolean;
  /**
   * Size of each app node's database volume in GiB (with `database` rds: the RDS instance's
   * storage); it grows in place, never shrinks. @default 20
   */
  readonly dataVolumeGiB: number;
  /** Retention of every log group the stack creates, in days. @default 30 */
  readonly logRetentionDays: number;
  /**
   * Days the database's backups are kept: the data volumes' daily snapshots and the physical
   * backups in the stack's bucket (its binlogs a day longer). @default 7
   */
  readonly backupRetentionDays: number;
  /** Install the Datadog agent on every node. @default false */
  readonly datadog: boolean;
  /** Datadog site the agents report to. @default "datadoghq.com" */
  readonly datadogSite: string;
  /** Datadog API key (a Pulumi secret; required when `datadog` is true). */
  readonly datadogApiKey?: SecretValue;
  /**
   * How long the LB waits for a backend's answer, in seconds; Nginx, Gunicorn and the app's database
   * waits derive from it (model/limits.ts). @default 60
   */
  readonly lbServerTimeoutSeconds: number;
  /** The largest request body the app nodes accept, in MiB. @default 10 */
  readonly maxBodyMiB: number;
  /**
   * Requests one client address may send the LB per RATE_LIMIT_WINDOW_SECONDS; 0: no per-client
   * limit. @default 1000
   */
  readonly rateLimitPerClient: number;
  /** E-mail subscribed to the alarm topic; no subscription without it. */
  readonly alarmEmail?: string;
  /** Requests per second at the LB above which the QPS alarm fires. @default 500 */
  readonly qpsAlarmThreshold: number;
  /** Replica lag, in seconds, above which the replication alarm fires. @default 60 */
  readonly replicaLagAlarmSeconds: number;
  /** Extra tags on every taggable resource. @default {} */
  readonly tags: Readonly<Record<string, string>>;
  /** Where nodes download the CloudWatch agent package; `{arch}` becomes amd64 or arm64. */
  readonly cloudWatchAgentUrl: string;
  /** Datadog's APT repository (or a mirror of it). @default "https://apt.datadoghq.com/" */
  readonly datadogRepoUrl: string;
  /** The app directory, relative to the project directory or absolute. @default "app" */
  readonly appSource: string;
  /** The WSGI callable Gunicorn serves, `module.path:callable`. @default "app:application" */
  readonly appModule: string;
  /** The app's environment variables (not secret: the bundles carry them). @default {} */
  readonly appEnv: Readonly<Record<string, string>>;
  /** The app's secret environment variables, each an SSM SecureString. @default {} */
  readonly appSecrets: Readonly<Record<string, SecretValue>>;
  /** Run once per release on the primary (`/bin/sh -c`) before any node serves it. */
  readonly releaseCommand?: string;
}

export type ConfigKey = keyof WebstackConfig;

export const DATADOG_SITES = [
  "datadoghq.com",
  "us3.datadoghq.com",
  "us5.datadoghq.com",
  "datadoghq.eu",
  "ap1.datadoghq.com",
  "ap2.datadoghq.com",
  "ddog-gov.com",
] as const;

/** The data volume's bounds in GiB: room for the database and its binlogs; webstack's cap (gp3 itself goes further). */
export const MIN_DATA_VOLUME_GIB = 10;
export const MAX_DATA_VOLUME_GIB = 16384;

export const LETS_ENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory";
export const CLOUDWATCH_AGENT_DEFAULT_URL =
  "https://amazoncloudwatch-agent.s3.amazonaws.com/debian/{arch}/latest/amazon-cloudwatch-agent.deb";

/** Raw config as Pulumi holds it: namespaced keys ("webstack:domain"), string values (objects as JSON). */
export type RawConfig = Readonly<Record<string, string>>;

/** One config key: how it is parsed, documented and defaulted. */
export interface KeySpec {
  /** The accepted form, as error messages and the README state it. */
  readonly accepted: string;
  /** What the key does, one line. */
  readonly doc: string;
  /** A realistic value. */
  readonly example: string;
  /** The value used when the key is absent (raw form); absent and no default means optional. */
  readonly default?: string;
  readonly required?: boolean;
  /** A secret: never echoed, must be stored encrypted (`pulumi config set --secret`). */
  readonly secret?: boolean;
  /** When the key must be present although optional in general: the reason, judged on the raw config. */
  readonly requiredWhen?: (raw: RawConfig) => string | undefined;
  /** For a secret: a well-formed stand-in the offline plan uses when the real value is unavailable. */
  readonly placeholder?: string;
  /** Turns the raw string into the typed value, or throws Invalid with what is wrong. */
  readonly parse: (raw: string, context?: ParseContext) => unknown;
}

/** Every key webstack accepts, in the order the README lists them. */
export const CONFIG_KEYS: Readonly<Record<ConfigKey, KeySpec>> = {
  domain: {
    doc: "The FQDN the stack serves (DNS record, certificate, HAProxy).",
    accepted: 'a lowercase fully qualified domain name such as "www.example.com"',
    example: "www.foobar.com",
    required: true,
    parse: fqdn,
  },
  hostedZone: {
    doc: "Route53 public zone name that contains `domain`; the A record is managed only with it.",
    accepted: 'a lowercase domain name that contains `domain`, such as "example.com"',
    example: "foobar.com",
    parse: fqdn,
  },
  certificate: {
    doc: "Where the LB's public certificate comes from.",
    accepted: "one of self-signed, letsencrypt, acm",
    example: "letsencrypt",
    default: "self-signed",
    parse: oneOf<CertificateMode>(["self-signed", "letsencrypt", "acm"]),
  },
  acmeEmail: {
    doc: "ACME account contact; required when `certificate` is letsencrypt.",
    accepted: `an e-mail address such as "ops@example.com", of ${ENV_FILE_CHARACTERS} only`,
    example: "ops@foobar.com",
    // The LB's env file carries it (ACME_EMAIL).
    parse: inEnvFile(email),
  },
  acmeDirectory: {
    doc: "ACME directory URL (Let's Encrypt production, staging, or any ACME server).",
    accepted: `an https:// URL of ${ENV_FILE_CHARACTERS} only`,
    example: "https://acme-staging-v02.api.letsencrypt.org/directory",
    default: LETS_ENCRYPT_PRODUCTION,
    // The LB's env file carries it (ACME_DIRECTORY).
    parse: inEnvFile(httpsUrl),
  },
  lbInstanceType: {
    doc: "EC2 instance type of the HAProxy load balancer; its AMI and packages follow the architecture EC2 reports for it.",
    accepted:
      'an EC2 instance type the stack\'s region offers, running x86_64 or arm64, such as "t3.micro" or "m7g.large"',
    example: "t3.small",
    default: "t3.micro",
    parse: instanceType({ ebsAsNvme: false }),
  },
  appInstanceType: {
    doc: "EC2 instance type of each app + database node; its AMI and packages follow the architecture EC2 reports for it, and its data volume is found as an NVMe device.",
    accepted:
      'an EC2 instance type the stack\'s region offers, running x86_64 or arm64, with EBS volumes always as NVMe (ebsNvmeSupport required), such as "t3.small" or "m7g.large"',
    example: "m7i.large",
    default: "t3.small",
    parse: instanceType({ ebsAsNvme: true }),
  },
  lbAmi: {
    doc: "AMI of the LB. Unset: the newest Debian 13 AMI at the stack's first deploy, recorded in `/webstack/<stack>/images/lb` and kept. Set: used and recorded; a change replaces the LB (a short outage).",
    accepted: 'an AMI id such as "ami-0123456789abcdef0"',
    example: "ami-0123456789abcdef0",
    parse: pattern(/^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, "an AMI id"),
  },
  appAmi: {
    doc: "AMI of the app nodes. Unset: the newest Debian 13 AMI at the stack's first deploy, recorded in `/webstack/<stack>/images/app` and kept. Set: used and recorded; a change replaces every app node, so roll it node by node (Runbooks).",
    accepted: 'an AMI id such as "ami-0123456789abcdef0"',
    example: "ami-0123456789abcdef0",
    parse: pattern(/^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, "an AMI id"),
  },
  dbEngine: {
    doc: "Database engine: MariaDB 11.8 LTS (Debian's own) or Oracle MySQL 8.4 LTS.",
    accepted: "one of mariadb, mysql",
    example: "mysql",
    default: "mariadb",
    parse: oneOf<DbEngine>(["mariadb", "mysql"]),
  },
  database: {
    doc: "How the app nodes hold the data: `replication`, s2 the primary and every other app node (s1, s3, …) a read-only replica of it (a failed s2 stops writes until a person promotes s1; see Runbooks); `galera`, every app node a writable member of one MariaDB Galera cluster from Debian's packages, with an arbitrator (garbd) on the LB when the members are even in number, so one node's loss leaves the others serving reads and writes (see Database modes); `rds`, no database on the app nodes: all use one Amazon RDS for MariaDB instance, Multi-AZ, encrypted, TLS required, proven by the offline plan only (see rds (Amazon RDS for MariaDB)). Set it when the stack is created: a running stack does not move between modes.",
    accepted: "one of replication, galera, rds",
    example: "galera",
    default: "replication",
    parse: oneOf<DatabaseMode>(["replication", "galera", "rds"]),
  },
  appNodeCount: {
    doc: "How many app nodes (s1…sN), alternating between the two private subnets (AZs), all behind HAProxy: with `replication` s2 is the primary and every other node a replica of it; with `galera` every node is a member, with the arbitrator (garbd) on the LB only when the count is even; with `rds` every node is a client of the instance (see Database modes). Set it when the stack is created: adding nodes to a running stack is not proven.",
    accepted: `a whole number from 2 to ${MAX_APP_NODE_COUNT}`,
    example: "3",
    default: String(DEFAULT_APP_NODE_COUNT),
    parse: wholeNumber(2, MAX_APP_NODE_COUNT),
  },
  rdsInstanceClass: {
    doc: "With `database` rds: the class of the RDS instance (and of its Multi-AZ standby). A change applies at `pulumi up`: a Multi-AZ failover, a minute or two of refused connections (see rds (Amazon RDS for MariaDB)).",
    accepted: 'an RDS DB instance class such as "db.t4g.small" or "db.m7g.large"',
    example: "db.m7g.large",
    default: DEFAULT_RDS_INSTANCE_CLASS,
    parse: pattern(RDS_INSTANCE_CLASS, "an RDS DB instance class"),
  },
  vpcCidr: {
    doc: "The VPC's IPv4 range; subnets and the nodes' fixed addresses derive from it.",
    accepted: "an RFC 1918 IPv4 network from /16 to /24 with no host bits set",
    example: "10.40.0.0/16",
    default: "10.40.0.0/16",
    parse: vpcCidr,
  },
  vpcEndpoints: {
    doc: "Keep the nodes' AWS traffic in the VPC: an S3 gateway endpoint (free) and interface endpoints for SSM, Session Manager, KMS, CloudWatch Logs and metrics (with `database` rds, Secrets Manager too) in both private subnets (billed per endpoint per AZ-hour and per GB; see VPC endpoints).",
    accepted: "true or false",
    example: "true",
    default: "false",
    parse: boolean,
  },
  protectData: {
    doc: "Protect the database nodes and their volumes against deletion and replacement (with `database` rds: the RDS instance, by deletion protection too, and the stack's KMS key, which an rds stack keeps when destroyed).",
    accepted: "true or false",
    example: "false",
    default: "true",
    parse: boolean,
  },
  dataVolumeGiB: {
    doc:
      "Size of each app node's database volume (gp3). Raising it grows them in place: each node grows its filesystem within minutes, the database keeps running (see Runbooks). AWS refuses a smaller size: `pulumi up` fails on the volumes and nothing shrinks. With `database` rds: the RDS instance's gp3 storage instead, " +
      `${RDS_MIN_STORAGE_GIB} GiB at least (no volume on the app nodes), no storage autoscaling; a raise applies at \`pulumi up\`, online (see rds (Amazon RDS for MariaDB)).`,
    accepted: `a whole number of GiB from ${MIN_DATA_VOLUME_GIB} to ${MAX_DATA_VOLUME_GIB} (webstack's cap), never less than the volumes' current size`,
    example: "100",
    default: "20",
    parse: wholeNumber(MIN_DATA_VOLUME_GIB, MAX_DATA_VOLUME_GIB),
  },
  logRetentionDays: {
    doc: "Retention of every log group the stack creates.",
    accepted: `one of ${LOG_RETENTION_DAYS.join(", ")}`,
    example: "365",
    default: "30",
    parse: retentionDays,
  },
  backupRetentionDays: {
    doc:
      "Days the database's backups are kept: the data volumes' daily snapshots and the physical backups in the stack's bucket (its binlogs a day longer; see Backups). With `database` rds: RDS's automated backups instead, " +
      `${RDS_MAX_BACKUP_RETENTION_DAYS} days at most.`,
    accepted: "a whole number of days from 1 to 365",
    example: "30",
    default: "7",
    parse: wholeNumber(1, 365),
  },
  datadog: {
    doc: "Install the Datadog agent on every node (needs `datadogApiKey`).",
    accepted: "true or false",
    example: "true",
    default: "false",
    parse: boolean,
  },
  datadogSite: {
    doc: "Datadog site the agents report to.",
    accepted: `one of ${DATADOG_SITES.join(", ")}`,
    example: "datadoghq.eu",
    default: "datadoghq.com",
    parse: oneOf(DATADOG_SITES),
  },
  datadogApiKey: {
    doc: "Datadog API key, stored as a secret; required when `datadog` is true.",
    accepted: "32 lowercase hexadecimal characters, set with `pulumi config set --secret`",
    example: "(secret)",
    secret: true,
    requiredWhen: (raw) =>
      raw[`${PROJECT}:datadog`] === "true" ? `${PROJECT}:datadog is true` : undefined,
    placeholder: "0".repeat(32),
    parse: (raw) => new SecretValue(pattern(/^[0-9a-f]{32}$/, "a Datadog API key")(raw)),
  },
  lbServerTimeoutSeconds: {
    doc: "How long a request may take: HAProxy waits this long for a backend; Nginx (1 s less), Gunicorn and the app's database waits (2 s less) follow. When every app node has its limit of requests in flight, a request may first wait as long again in HAProxy's queue (see How it is built, \"A busy node is not a dead one\").",
    accepted: `a whole number of seconds from ${MIN_LB_SERVER_TIMEOUT_SECONDS} to 3600`,
    example: "120",
    default: "60",
    parse: wholeNumber(MIN_LB_SERVER_TIMEOUT_SECONDS, 3600),
  },
  maxBodyMiB: {
    doc: "The largest request body the app nodes' Nginx accepts; a larger one gets a JSON 413.",
    accepted: "a whole number of MiB from 1 to 1024",
    example: "50",
    default: "10",
    parse: wholeNumber(1, 1024),
  },
  rateLimitPerClient: {
    doc: `Requests one client address may send per ${RATE_LIMIT_WINDOW_SECONDS} s; past it, HAProxy answers a JSON 429 with Retry-After itself. 0 turns the limit off (behind a CDN or another proxy, every request comes from a few addresses).`,
    accepted: `a whole number of requests from 0 (no limit) to ${MAX_RATE_LIMIT_PER_CLIENT}`,
    example: "3000",
    // 100 requests/s: room for many users behind one NAT address.
    default: "1000",
    parse: wholeNumber(0, MAX_RATE_LIMIT_PER_CLIENT),
  },
  alarmEmail: {
    doc: "E-mail address subscribed to the alarm topic.",
    accepted: 'an e-mail address such as "oncall@example.com"',
    example: "oncall@foobar.com",
    parse: email,
  },
  qpsAlarmThreshold: {
    doc: "Requests per second at the LB above which the QPS alarm fires.",
    accepted: "a number greater than 0 and at most 1000000",
    example: "2000",
    default: "500",
    parse: positiveNumber(1_000_000),
  },
  replicaLagAlarmSeconds: {
    doc: "Replica lag in seconds above which the replication alarm fires.",
    accepted: "a whole number of seconds from 1 to 86400",
    example: "30",
    default: "60",
    parse: wholeNumber(1, 86400),
  },
  tags: {
    doc: "Extra tags on every taggable resource (Project, Stack, Role, ManagedBy, Name and Snapshots are webstack's).",
    accepted:
      "an object of string values, e.g. {Environment: prod}; AWS tag syntax, no reserved keys",
    example: '{"Environment": "prod", "CostCenter": "web"}',
    default: "{}",
    parse: tagSet,
  },
  cloudWatchAgentUrl: {
    doc: "Where nodes download the CloudWatch agent; its signature is always checked against AWS's key.",
    accepted: "an https:// URL of a .deb; {arch}, once at most, becomes amd64 or arm64",
    example:
      "https://amazoncloudwatch-agent-eu-west-1.s3.eu-west-1.amazonaws.com/debian/{arch}/latest/amazon-cloudwatch-agent.deb",
    default: CLOUDWATCH_AGENT_DEFAULT_URL,
    parse: debPackageUrl,
  },
  datadogRepoUrl: {
    doc: "Datadog's APT repository or a mirror; its metadata must be signed by Datadog's pinned keys.",
    accepted: `an https:// URL of ${ENV_FILE_CHARACTERS} only`,
    example: "https://apt.datadoghq.com/",
    default: "https://apt.datadoghq.com/",
    // Every node's datadog.env carries it (DATADOG_REPO_URL).
    parse: inEnvFile(httpsUrl),
  },
  appSource: {
    doc: `The app directory a release is packed from (see Deploy your app); at most ${APP_ARCHIVE_LIMIT_MIB} MiB packed.`,
    accepted:
      "a directory, relative to the project directory or absolute, holding the module of `appModule`, wheels/ for requirements.txt, and no symlinks",
    example: "../shop/web",
    default: "app",
    parse: localPath,
  },
  appModule: {
    doc: "The WSGI callable Gunicorn serves; a change restarts the app, anything else reloads it.",
    accepted: 'module.path:callable of Python identifiers, such as "shop.wsgi:application"',
    example: "shop.wsgi:application",
    default: "app:application",
    parse: pattern(APP_MODULE, "module.path:callable"),
  },
  appEnv: {
    doc: "The app's environment variables (not secret: the bundles carry them).",
    accepted: `an object of at most ${MAX_APP_VARIABLES} NAME: string entries; names [A-Z][A-Z0-9_]*, not starting WEBSTACK_, DB_, AWS_ or GUNICORN_, not PATH, HOME, USER, LANG, PYTHONPATH or PYTHONHOME`,
    example: '{"SHOP_CURRENCY": "EUR"}',
    default: "{}",
    parse: appVariables,
  },
  appSecrets: {
    doc: "The app's secret environment variables, each an SSM SecureString only the app nodes read.",
    accepted:
      "an object like `appEnv`'s, with non-empty values and names not in `appEnv`, set with `pulumi config set --secret`",
    example: "(secret)",
    default: "{}",
    secret: true,
    placeholder: "{}",
    parse: appSecretVariables,
  },
  releaseCommand: {
    doc: "Run once per release on the primary (s2), in the release, before any node serves it (migrations; see Deploy your app).",
    accepted: `one shell command line of at most ${MAX_RELEASE_COMMAND_LENGTH} characters`,
    example: "python -m shop.migrate",
    parse: releaseCommand,
  },
};

/** Every problem found in a configuration, each naming its key and the accepted form. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(
      `invalid ${PROJECT} configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** The known key closest to `key`, if any is close enough to be a likely typo. */
function closestKey(key: string): ConfigKey | undefined {
  return closestName(key, Object.keys(CONFIG_KEYS) as ConfigKey[]);
}

/**
 * The webstack key a key of another namespace was meant to be: its namespace is webstack's within
 * two edits ("webstak", "Webstack") and its name is (close to) a webstack key. Other providers'
 * namespaces (aws, pulumi, tls, random) are nowhere near, and stay theirs.
 */
function misspeltNamespace(fullKey: string): ConfigKey | undefined {
  const colon = fullKey.indexOf(":");
  if (colon < 0) return undefined;
  const namespace = fullKey.slice(0, colon);
  if (namespace === PROJECT || editDistance(namespace.toLowerCase(), PROJECT) > 2) return undefined;
  return closestKey(fullKey.slice(colon + 1));
}

export interface ParseOptions extends ParseContext {
  /** Namespaced keys whose values Pulumi holds encrypted. */
  readonly secretKeys?: ReadonlySet<string>;
  /** What is in `appSource`'s directory (see appSourceToRead); without it, syntax only. */
  readonly appSource?: AppSourceListing;
}

/** The keys that name an EC2 instance type, which EC2 is asked about before the config is parsed. */
export const INSTANCE_TYPE_KEYS = ["lbInstanceType", "appInstanceType"] as const;

/** The well-formed instance types a raw config names (defaults for unset keys), each once. */
export function instanceTypesToLookUp(raw: RawConfig): string[] {
  const named = INSTANCE_TYPE_KEYS.map(
    (key) => raw[`${PROJECT}:${key}`] || String(CONFIG_KEYS[key].default),
  );
  return [...new Set(named.filter((name) => INSTANCE_TYPE.test(name)))];
}

/** The app directory a raw config names (the default when unset), as given: relative or absolute. */
export function appSourceToRead(raw: RawConfig): string {
  return raw[`${PROJECT}:appSource`] || String(CONFIG_KEYS.appSource.default);
}

/**
 * Validates raw config; returns a frozen WebstackConfig or throws ConfigError listing every problem,
 * with EC2's verdict on the instance types when `options.instanceTypes` holds its answers.
 */
export function parseConfig(raw: RawConfig, options: ParseOptions = {}): WebstackConfig {
  const problems: string[] = [];
  const values: Partial<Record<ConfigKey, unknown>> = {};
  // Pulumi namespaces a project's own keys with the project's name.
  const prefix = `${PROJECT}:`;

  for (const fullKey of Object.keys(raw).sort()) {
    if (!fullKey.startsWith(prefix)) {
      const meant = misspeltNamespace(fullKey);
      if (meant) problems.push(`${fullKey}: unknown namespace; did you mean ${prefix}${meant}?`);
      continue;
    }
    const key = fullKey.slice(prefix.length);
    if (!Object.hasOwn(CONFIG_KEYS, key)) {
      const near = closestKey(key);
      problems.push(
        `${fullKey}: unknown key; ` +
          (near
            ? `did you mean ${prefix}${near}?`
            : `known keys: ${Object.keys(CONFIG_KEYS).join(", ")}`),
      );
    }
  }

  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [ConfigKey, KeySpec][]) {
    const fullKey = prefix + key;
    const given = raw[fullKey];
    if (given === undefined || given === "") {
      const reason = spec.requiredWhen?.(raw);
      if (spec.required || reason) {
        const how = `pulumi config set${spec.secret ? " --secret" : ""} ${key} <value>`;
        const because = reason ? ` (required because ${reason})` : "";
        problems.push(
          `${fullKey}: missing${because}; expected ${spec.accepted}; set it with ${how}`,
        );
        continue;
      }
      if (spec.default === undefined) continue;
    }
    const text = given === undefined || given === "" ? spec.default! : given;
    if (
      spec.secret &&
      given !== undefined &&
      options.secretKeys &&
      !options.secretKeys.has(fullKey)
    ) {
      problems.push(
        `${fullKey}: stored in plain text (value hidden); store it encrypted with ` +
          `pulumi config set --secret ${key} <value>`,
      );
      continue;
    }
    try {
      values[key] = spec.parse(text, { instanceTypes: options.instanceTypes });
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      const shown = spec.secret ? "the value (hidden)" : JSON.stringify(text);
      problems.push(`${fullKey}: ${shown} ${err.message}; expected ${spec.accepted}`);
    }
  }

  problems.push(...crossKeyProblems(values, raw));
  if (options.appSource && values.appSource !== undefined && values.appModule !== undefined) {
    for (const { key, message } of appSourceProblems(
      options.appSource,
      values.appSource as string,
      values.appModule as string,
    ))
      problems.push(`${prefix}${key}: ${message}; expected ${CONFIG_KEYS[key].accepted}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(values) as unknown as WebstackConfig;
}

/** What `database` rds asks of the other keys: RDS's engine, storage and backup limits. */
function rdsProblems(
  v: Partial<Record<ConfigKey, unknown>>,
  k: (key: ConfigKey) => string,
): string[] {
  const problems: string[] = [];
  const rds = `${k("database")} rds`;
  if (v.dbEngine !== undefined && v.dbEngine !== RDS_ENGINE) {
    problems.push(
      `${k("database")}: rds is Amazon RDS for MariaDB; ${k("dbEngine")} is "${String(v.dbEngine)}"; ` +
        `expected ${k("dbEngine")} mariadb with rds, or ${k("database")} replication`,
    );
  }
  const storage = v.dataVolumeGiB as number | undefined;
  if (storage !== undefined && storage < RDS_MIN_STORAGE_GIB) {
    problems.push(
      `${k("dataVolumeGiB")}: ${storage} is below RDS's smallest gp3 storage (${RDS_MIN_STORAGE_GIB} GiB); ` +
        `expected ${RDS_MIN_STORAGE_GIB} or more with ${rds}`,
    );
  }
  const retention = v.backupRetentionDays as number | undefined;
  if (retention !== undefined && retention > RDS_MAX_BACKUP_RETENTION_DAYS) {
    problems.push(
      `${k("backupRetentionDays")}: ${retention} is more than RDS keeps automated backups; ` +
        `expected 1 to ${RDS_MAX_BACKUP_RETENTION_DAYS} with ${rds}`,
    );
  }
  return problems;
}

/** Rules that relate two or more keys; only checked on keys that parsed. */
function crossKeyProblems(v: Partial<Record<ConfigKey, unknown>>, raw: RawConfig): string[] {
  const problems: string[] = [];
  const k = (key: ConfigKey) => `${PROJECT}:${key}`;
  const absent = (key: ConfigKey) => !raw[k(key)];
  const domain = v.domain as string | undefined;
  const zone = v.hostedZone as string | undefined;
  if (domain && zone && domain !== zone && !domain.endsWith(`.${zone}`)) {
    problems.push(
      `${k("hostedZone")}: "${zone}" does not contain ${k("domain")} "${domain}"; ` +
        `expected the zone's name or a parent of the domain`,
    );
  }
  if (v.certificate === "letsencrypt" && absent("acmeEmail")) {
    problems.push(
      `${k("acmeEmail")}: missing; ${k("certificate")} letsencrypt needs an ACME contact e-mail`,
    );
  }
  if (v.database === "galera" && v.dbEngine !== undefined && v.dbEngine !== "mariadb") {
    problems.push(
      `${k("database")}: galera is MariaDB's (Debian's galera-4); ${k("dbEngine")} is "${String(v.dbEngine)}"; ` +
        `expected ${k("dbEngine")} mariadb with galera, or ${k("database")} replication`,
    );
  }
  if (v.database === "rds") problems.push(...rdsProblems(v, k));
  if (v.certificate === "acm" && absent("hostedZone")) {
    problems.push(
      `${k("hostedZone")}: missing; ${k("certificate")} acm validates the certificate by DNS in a Route53 zone`,
    );
  }
  const env = v.appEnv as Record<string, string> | undefined;
  const secrets = v.appSecrets as Record<string, unknown> | undefined;
  const both = env && secrets ? Object.keys(secrets).filter((name) => name in env) : [];
  if (both.length > 0) {
    problems.push(
      `${k("appSecrets")}: ${both.join(", ")} also set in ${k("appEnv")}; ` +
        "expected each name in one of them only",
    );
  }
  return problems;
}
