// The stack's configuration: one table of keys, a pure parser that reports every problem at once.
import * as util from "util";
import * as pulumi from "@pulumi/pulumi";

export const NAMESPACE = "webstack";

export type CertificateMode = "self-signed" | "letsencrypt" | "acm";
export type DbEngine = "mariadb" | "mysql";

/** A secret config value: prints as "[secret]" everywhere; `reveal()` is the only way in. */
export class SecretValue {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return "[secret]";
  }
  toJSON(): string {
    return "[secret]";
  }
  [util.inspect.custom](): string {
    return "[secret]";
  }
}

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
  /** Database engine on s1/s2. @default "mariadb" */
  readonly dbEngine: DbEngine;
  /** The VPC's IPv4 range (RFC 1918, /16 to /24). @default "10.40.0.0/16" */
  readonly vpcCidr: string;
  /** Protect the stateful nodes from deletion and replacement. @default true */
  readonly protectData: boolean;
  /** Retention of every log group the stack creates, in days. @default 30 */
  readonly logRetentionDays: number;
  /** Install the Datadog agent on every node. @default false */
  readonly datadog: boolean;
  /** Datadog site the agents report to. @default "datadoghq.com" */
  readonly datadogSite: string;
  /** Datadog API key (a Pulumi secret; required when `datadog` is true). */
  readonly datadogApiKey?: SecretValue;
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
}

export type ConfigKey = keyof WebstackConfig;

/** Tags the tagging helper sets itself; config may not override them. */
export const RESERVED_TAG_KEYS = ["Project", "Stack", "Role", "ManagedBy", "Name"] as const;

/** Retention values CloudWatch Logs accepts. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

export const DATADOG_SITES = [
  "datadoghq.com",
  "us3.datadoghq.com",
  "us5.datadoghq.com",
  "datadoghq.eu",
  "ap1.datadoghq.com",
  "ap2.datadoghq.com",
  "ddog-gov.com",
] as const;

export const LETS_ENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory";
export const CLOUDWATCH_AGENT_DEFAULT_URL =
  "https://amazoncloudwatch-agent.s3.amazonaws.com/debian/{arch}/latest/amazon-cloudwatch-agent.deb";

/** Raw config as Pulumi holds it: namespaced keys ("webstack:domain"), string values (objects as JSON). */
export type RawConfig = Readonly<Record<string, string>>;

class Invalid extends Error {}

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
  readonly parse: (raw: string) => unknown;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const TLD = /^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$/;

function fqdn(raw: string): string {
  if (raw !== raw.toLowerCase()) throw new Invalid("must be lowercase");
  if (raw.length > 253) throw new Invalid("is longer than 253 characters");
  const labels = raw.split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || !TLD.test(labels.at(-1)!)) {
    throw new Invalid("is not a fully qualified domain name");
  }
  return raw;
}

function email(raw: string): string {
  const match = /^([A-Za-z0-9._%+-]{1,64})@(.+)$/.exec(raw);
  if (!match || match[1].startsWith(".") || match[1].endsWith(".") || match[1].includes("..")) {
    throw new Invalid("is not an e-mail address");
  }
  try {
    fqdn(match[2].toLowerCase());
  } catch {
    throw new Invalid("is not an e-mail address");
  }
  return raw;
}

function httpsUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Invalid("is not a URL");
  }
  if (url.protocol !== "https:") throw new Invalid("is not an https:// URL");
  if (url.username || url.password) throw new Invalid("must not carry credentials");
  return raw;
}

function debPackageUrl(raw: string): string {
  httpsUrl(raw);
  if (!/^[A-Za-z0-9._/:{}-]+\.deb$/.test(raw))
    throw new Invalid("is not the URL of a .deb package");
  return raw;
}

function oneOf<T extends string>(values: readonly T[]): (raw: string) => T {
  return (raw) => {
    if (!(values as readonly string[]).includes(raw))
      throw new Invalid("is not one of the accepted values");
    return raw as T;
  };
}

function boolean(raw: string): boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new Invalid("is not a boolean");
}

function pattern(re: RegExp, what: string): (raw: string) => string {
  return (raw) => {
    if (!re.test(raw)) throw new Invalid(`is not ${what}`);
    return raw;
  };
}

const INSTANCE_TYPE = /^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.[a-z0-9]+$/;
/** Xen-based families: they expose EBS volumes as /dev/xvd*, not as NVMe devices. */
const XEN_FAMILIES = /^(t1|t2|m1|m2|m3|m4|c1|c3|c4|r3|r4|i2|i3|x1|x1e|d2|g3|g3s|p2|p3|f1|h1)\./;

function nitroInstanceType(raw: string): string {
  pattern(INSTANCE_TYPE, "an EC2 instance type")(raw);
  if (XEN_FAMILIES.test(raw)) throw new Invalid("is a Xen-based (pre-Nitro) instance type");
  return raw;
}

function positiveNumber(max: number): (raw: string) => number {
  return (raw) => {
    if (!/^\d+(\.\d+)?$/.test(raw)) throw new Invalid("is not a number");
    const n = Number(raw);
    if (n <= 0 || n > max) throw new Invalid(`is out of range (0, ${max}]`);
    return n;
  };
}

function wholeNumber(min: number, max: number): (raw: string) => number {
  return (raw) => {
    if (!/^\d+$/.test(raw)) throw new Invalid("is not a whole number");
    const n = Number(raw);
    if (n < min || n > max) throw new Invalid(`is out of range [${min}, ${max}]`);
    return n;
  };
}

function retentionDays(raw: string): number {
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(LOG_RETENTION_DAYS as readonly number[]).includes(n)) {
    throw new Invalid("is not a retention CloudWatch Logs accepts");
  }
  return n;
}

/** An RFC 1918 network between /16 and /24 with no host bits set. */
function vpcCidr(raw: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(raw);
  const octets = match ? match.slice(1, 5).map(Number) : [];
  if (!match || octets.some((o, i) => o > 255 || String(o) !== match[i + 1])) {
    throw new Invalid("is not an IPv4 CIDR block");
  }
  const prefix = Number(match[5]);
  if (prefix < 16 || prefix > 24) throw new Invalid("has a prefix outside /16 to /24");
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  if (address % size !== 0) {
    const network = address - (address % size);
    const text = [24, 16, 8, 0].map((s) => Math.floor(network / 2 ** s) % 256).join(".");
    throw new Invalid(`has host bits set (the network is ${text}/${prefix})`);
  }
  const [a, b] = octets;
  const private1918 = a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
  if (!private1918) throw new Invalid("is not a private (RFC 1918) range");
  return raw;
}

const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

function tags(raw: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Invalid("is not an object");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Invalid("is not an object");
  }
  const entries = Object.entries(parsed as Record<string, unknown>);
  const bad: string[] = [];
  for (const [key, value] of entries) {
    if ((RESERVED_TAG_KEYS as readonly string[]).includes(key))
      bad.push(`${key} is set by webstack`);
    else if (key.length < 1 || key.length > 128 || !TAG_TEXT.test(key) || key.startsWith("aws:")) {
      bad.push(`key ${JSON.stringify(key)} is not a valid tag key`);
    } else if (typeof value !== "string" || value.length > 256 || !TAG_TEXT.test(value)) {
      bad.push(`value of ${key} is not a tag value (a string of at most 256 characters)`);
    }
  }
  if (entries.length > 50 - RESERVED_TAG_KEYS.length) {
    bad.push(`more than ${50 - RESERVED_TAG_KEYS.length} tags`);
  }
  if (bad.length > 0) throw new Invalid(`is not a valid tag set: ${bad.join("; ")}`);
  return Object.freeze(Object.fromEntries(entries)) as Record<string, string>;
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
    accepted: 'an e-mail address such as "ops@example.com"',
    example: "ops@foobar.com",
    parse: email,
  },
  acmeDirectory: {
    doc: "ACME directory URL (Let's Encrypt production, staging, or any ACME server).",
    accepted: "an https:// URL",
    example: "https://acme-staging-v02.api.letsencrypt.org/directory",
    default: LETS_ENCRYPT_PRODUCTION,
    parse: httpsUrl,
  },
  lbInstanceType: {
    doc: "EC2 instance type of the HAProxy load balancer.",
    accepted: 'an EC2 instance type such as "t3.micro" or "m7g.large"',
    example: "t3.small",
    default: "t3.micro",
    parse: pattern(INSTANCE_TYPE, "an EC2 instance type"),
  },
  appInstanceType: {
    doc: "EC2 instance type of each app + database node (Nitro: the data volume is NVMe).",
    accepted: 'a Nitro-based EC2 instance type such as "t3.small" or "m7g.large"',
    example: "m7i.large",
    default: "t3.small",
    parse: nitroInstanceType,
  },
  lbAmi: {
    doc: "Pinned AMI of the LB; by default the current official Debian 13 AMI is looked up.",
    accepted: 'an AMI id such as "ami-0123456789abcdef0"',
    example: "ami-0123456789abcdef0",
    parse: pattern(/^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, "an AMI id"),
  },
  appAmi: {
    doc: "Pinned AMI of the app nodes; by default the current official Debian 13 AMI is looked up.",
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
  vpcCidr: {
    doc: "The VPC's IPv4 range; subnets and the nodes' fixed addresses derive from it.",
    accepted: "an RFC 1918 IPv4 network from /16 to /24 with no host bits set",
    example: "10.40.0.0/16",
    default: "10.40.0.0/16",
    parse: vpcCidr,
  },
  protectData: {
    doc: "Protect the database nodes and their volumes against deletion and replacement.",
    accepted: "true or false",
    example: "false",
    default: "true",
    parse: boolean,
  },
  logRetentionDays: {
    doc: "Retention of every log group the stack creates.",
    accepted: `one of ${LOG_RETENTION_DAYS.join(", ")}`,
    example: "365",
    default: "30",
    parse: retentionDays,
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
      raw[`${NAMESPACE}:datadog`] === "true" ? `${NAMESPACE}:datadog is true` : undefined,
    placeholder: "0".repeat(32),
    parse: (raw) => new SecretValue(pattern(/^[0-9a-f]{32}$/, "a Datadog API key")(raw)),
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
    doc: "Extra tags on every taggable resource (Project, Stack, Role, ManagedBy, Name are webstack's).",
    accepted:
      "an object of string values, e.g. {Environment: prod}; AWS tag syntax, no reserved keys",
    example: '{"Environment": "prod", "CostCenter": "web"}',
    default: "{}",
    parse: tags,
  },
  cloudWatchAgentUrl: {
    doc: "Where nodes download the CloudWatch agent; its signature is always checked against AWS's key.",
    accepted: "an https:// URL of a .deb; {arch} becomes amd64 or arm64",
    example:
      "https://amazoncloudwatch-agent-eu-west-1.s3.eu-west-1.amazonaws.com/debian/{arch}/latest/amazon-cloudwatch-agent.deb",
    default: CLOUDWATCH_AGENT_DEFAULT_URL,
    parse: debPackageUrl,
  },
  datadogRepoUrl: {
    doc: "Datadog's APT repository or a mirror; its metadata must be signed by Datadog's pinned keys.",
    accepted: "an https:// URL",
    example: "https://apt.datadoghq.com/",
    default: "https://apt.datadoghq.com/",
    parse: httpsUrl,
  },
};

/** Every problem found in a configuration, each naming its key and the accepted form. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(
      `invalid ${NAMESPACE} configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The known key closest to `key`, if any is close enough to be a likely typo. */
export function closestKey(key: string): ConfigKey | undefined {
  let best: { key: ConfigKey; distance: number } | undefined;
  for (const known of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    const distance = editDistance(key.toLowerCase(), known.toLowerCase());
    if (!best || distance < best.distance) best = { key: known, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(best.key.length / 3))
    ? best.key
    : undefined;
}

export interface ParseOptions {
  /** Namespaced keys whose values Pulumi holds encrypted. */
  readonly secretKeys?: ReadonlySet<string>;
}

/** Validates raw config; returns a frozen WebstackConfig or throws ConfigError listing every problem. */
export function parseConfig(raw: RawConfig, options: ParseOptions = {}): WebstackConfig {
  const problems: string[] = [];
  const values: Partial<Record<ConfigKey, unknown>> = {};
  const prefix = `${NAMESPACE}:`;

  for (const fullKey of Object.keys(raw).sort()) {
    if (!fullKey.startsWith(prefix)) continue;
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
      values[key] = spec.parse(text);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      const shown = spec.secret ? "the value (hidden)" : JSON.stringify(text);
      problems.push(`${fullKey}: ${shown} ${err.message}; expected ${spec.accepted}`);
    }
  }

  problems.push(...crossKeyProblems(values, raw));
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(values) as unknown as WebstackConfig;
}

/** Rules that relate two or more keys; only checked on keys that parsed. */
function crossKeyProblems(v: Partial<Record<ConfigKey, unknown>>, raw: RawConfig): string[] {
  const problems: string[] = [];
  const k = (key: ConfigKey) => `${NAMESPACE}:${key}`;
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
  if (v.certificate === "acm" && absent("hostedZone")) {
    problems.push(
      `${k("hostedZone")}: missing; ${k("certificate")} acm validates the certificate by DNS in a Route53 zone`,
    );
  }
  return problems;
}

/** Reads the stack's Pulumi config once; the only place that touches pulumi.Config. */
export function loadConfig(): WebstackConfig {
  const raw = pulumi.runtime.allConfig();
  // isConfigSecret is marked internal; without it every secret key is taken as encrypted.
  const isSecret = (pulumi.runtime as { isConfigSecret?: (key: string) => boolean }).isConfigSecret;
  const secretKeys = isSecret
    ? new Set(Object.keys(raw).filter((key) => isSecret(key)))
    : undefined;
  return parseConfig(raw, { secretKeys });
}
