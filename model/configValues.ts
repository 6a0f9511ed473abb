// One parser per accepted config value form; each throws Invalid saying what is wrong with a value.
import * as util from "util";
import { intToIpv4, isPrivateIpv4, parseCidr } from "./ipv4";
import {
  ARCHITECTURES,
  ARCH_PLACEHOLDER,
  InstanceNeeds,
  InstanceTypeCatalog,
  instanceTypeShortfalls,
  packageUrlFor,
} from "./aws";
import { firstUnsafeEnvCharacter } from "./envFile";
import { RESERVED_TAG_KEYS } from "./tags";

/** What is wrong with a value, as the rest of a sentence that starts with the value. */
export class Invalid extends Error {}

/** What a parser may judge a value against besides its text: facts looked up at run time. */
export interface ParseContext {
  /** EC2's answer for each well-formed instance type the config names; without it, syntax only. */
  readonly instanceTypes?: InstanceTypeCatalog;
}

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

/** Retention values CloudWatch Logs accepts. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const TLD = /^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$/;

export function fqdn(raw: string): string {
  if (raw !== raw.toLowerCase()) throw new Invalid("must be lowercase");
  if (raw.length > 253) throw new Invalid("is longer than 253 characters");
  const labels = raw.split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || !TLD.test(labels.at(-1)!)) {
    throw new Invalid("is not a fully qualified domain name");
  }
  return raw;
}

export function email(raw: string): string {
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

export function httpsUrl(raw: string): string {
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

/**
 * A value a node's env file carries as it is, as `parse` accepts it: the renderer refuses anything
 * else, and it would do so only once resources exist.
 */
export function inEnvFile(parse: (raw: string) => string): (raw: string) => string {
  return (raw) => {
    const value = parse(raw);
    const unsafe = firstUnsafeEnvCharacter(value);
    if (unsafe !== undefined) {
      throw new Invalid(`holds ${JSON.stringify(unsafe)}, which a node's env file cannot carry`);
    }
    return value;
  };
}

export function debPackageUrl(raw: string): string {
  httpsUrl(raw);
  if (!/^[A-Za-z0-9._/:{}-]+\.deb$/.test(raw))
    throw new Invalid("is not the URL of a .deb package");
  // A node fills in its architecture (the first placeholder only), then writes an env file.
  for (const arch of ARCHITECTURES) {
    if (firstUnsafeEnvCharacter(packageUrlFor(raw, arch)) !== undefined)
      throw new Invalid(`holds a brace other than one ${ARCH_PLACEHOLDER}`);
  }
  return raw;
}

export function oneOf<T extends string>(values: readonly T[]): (raw: string) => T {
  return (raw) => {
    if (!(values as readonly string[]).includes(raw))
      throw new Invalid("is not one of the accepted values");
    return raw as T;
  };
}

export function boolean(raw: string): boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new Invalid("is not a boolean");
}

export function pattern(re: RegExp, what: string): (raw: string) => string {
  return (raw) => {
    if (!re.test(raw)) throw new Invalid(`is not ${what}`);
    return raw;
  };
}

export const INSTANCE_TYPE = /^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.[a-z0-9]+$/;

/**
 * An instance type: well-formed, and, once EC2 has been asked (`context.instanceTypes`), one it
 * offers in the region with what the node needs.
 */
export function instanceType(
  needs: InstanceNeeds,
): (raw: string, context?: ParseContext) => string {
  return (raw, context = {}) => {
    pattern(INSTANCE_TYPE, "an EC2 instance type")(raw);
    if (!context.instanceTypes) return raw;
    const answer = context.instanceTypes.get(raw);
    // A well-formed type EC2 was not asked about is the caller's mistake, not the config's.
    if (!answer) throw new Error(`instance type ${raw} was not looked up`);
    if ("unknown" in answer) {
      throw new Invalid(`is unknown to EC2 in the stack's region: ${answer.unknown}`);
    }
    const shortfalls = instanceTypeShortfalls(answer.facts, needs);
    if (shortfalls.length > 0) throw new Invalid(shortfalls.join(" and "));
    return raw;
  };
}

export function positiveNumber(max: number): (raw: string) => number {
  return (raw) => {
    if (!/^\d+(\.\d+)?$/.test(raw)) throw new Invalid("is not a number");
    const n = Number(raw);
    if (n <= 0 || n > max) throw new Invalid(`is out of range (0, ${max}]`);
    return n;
  };
}

export function wholeNumber(min: number, max: number): (raw: string) => number {
  return (raw) => {
    if (!/^\d+$/.test(raw)) throw new Invalid("is not a whole number");
    const n = Number(raw);
    if (n < min || n > max) throw new Invalid(`is out of range [${min}, ${max}]`);
    return n;
  };
}

export function retentionDays(raw: string): number {
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(LOG_RETENTION_DAYS as readonly number[]).includes(n)) {
    throw new Invalid("is not a retention CloudWatch Logs accepts");
  }
  return n;
}

/** An RFC 1918 network between /16 and /24 with no host bits set. */
export function vpcCidr(raw: string): string {
  const cidr = parseCidr(raw);
  if (!cidr) throw new Invalid("is not an IPv4 CIDR block");
  if (cidr.prefix < 16 || cidr.prefix > 24) throw new Invalid("has a prefix outside /16 to /24");
  if (cidr.address !== cidr.network) {
    throw new Invalid(
      `has host bits set (the network is ${intToIpv4(cidr.network)}/${cidr.prefix})`,
    );
  }
  if (!isPrivateIpv4(cidr.address)) throw new Invalid("is not a private (RFC 1918) range");
  return raw;
}

const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

/** The entries of a JSON object (how Pulumi hands over a structured value). */
function jsonObjectEntries(raw: string): [string, unknown][] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Invalid("is not an object");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Invalid("is not an object");
  }
  return Object.entries(parsed as Record<string, unknown>);
}

export function tagSet(raw: string): Record<string, string> {
  const entries = jsonObjectEntries(raw);
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

/** The app's environment variables: names a process, the node or its tools do not claim. */
const APP_VARIABLE_NAME = /^[A-Z][A-Z0-9_]*$/;
const RESERVED_VARIABLE_PREFIXES = ["WEBSTACK_", "DB_", "AWS_", "GUNICORN_"] as const;
const RESERVED_VARIABLES = ["PATH", "HOME", "USER", "LANG", "PYTHONPATH", "PYTHONHOME"] as const;
export const MAX_APP_VARIABLES = 50;
/** SSM's largest standard-tier value: an app secret is one parameter. */
export const MAX_APP_VARIABLE_LENGTH = 4096;

/** What is wrong with a variable's name, if anything. */
function variableNameProblem(name: string): string | undefined {
  if (!APP_VARIABLE_NAME.test(name))
    return `${JSON.stringify(name)} is not an upper-case name ([A-Z][A-Z0-9_]*)`;
  const prefix = RESERVED_VARIABLE_PREFIXES.find((p) => name.startsWith(p));
  if (prefix) return `${name} starts with ${prefix}, which webstack keeps for itself`;
  if ((RESERVED_VARIABLES as readonly string[]).includes(name))
    return `${name} is the process's own and cannot be set`;
  return undefined;
}

/**
 * A JSON object of variable name → string value. Values are checked for what a process
 * environment and SSM can hold, and never shown: they may be secret.
 */
function variableSet(raw: string, minLength: number): Record<string, string> {
  const entries = jsonObjectEntries(raw);
  const bad: string[] = [];
  for (const [name, value] of entries) {
    const nameProblem = variableNameProblem(name);
    if (nameProblem) bad.push(nameProblem);
    else if (
      typeof value !== "string" ||
      value.length < minLength ||
      value.length > MAX_APP_VARIABLE_LENGTH ||
      value.includes("\0")
    ) {
      bad.push(
        `the value of ${name} is not a string of ${minLength} to ${MAX_APP_VARIABLE_LENGTH} characters without NUL`,
      );
    }
  }
  if (entries.length > MAX_APP_VARIABLES) bad.push(`more than ${MAX_APP_VARIABLES} variables`);
  if (bad.length > 0) throw new Invalid(`is not a valid set of variables: ${bad.join("; ")}`);
  return Object.freeze(Object.fromEntries(entries)) as Record<string, string>;
}

/** The app's plain environment: visible in the bundles and on the nodes. */
export function appVariables(raw: string): Record<string, string> {
  return variableSet(raw, 0);
}

/** The app's secret environment: each value one SSM SecureString (which cannot be empty). */
export function appSecretVariables(raw: string): Record<string, SecretValue> {
  const values = variableSet(raw, 1);
  return Object.freeze(
    Object.fromEntries(Object.entries(values).map(([name, v]) => [name, new SecretValue(v)])),
  );
}

/** `module.path:callable`, as Gunicorn's command line names a WSGI app. */
export const APP_MODULE =
  /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$/;

/** A path on this machine: any text a file system accepts. */
export function localPath(raw: string): string {
  if (raw.includes("\0")) throw new Invalid("holds a NUL character");
  return raw;
}

export const MAX_RELEASE_COMMAND_LENGTH = 1000;

/** One shell command line (`/bin/sh -c`), run once per release on the primary. */
export function releaseCommand(raw: string): string {
  if (/[\r\n\0]/.test(raw)) throw new Invalid("holds a line break or NUL");
  if (raw.length > MAX_RELEASE_COMMAND_LENGTH)
    throw new Invalid(`is longer than ${MAX_RELEASE_COMMAND_LENGTH} characters`);
  return raw;
}
