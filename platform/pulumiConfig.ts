// The stack's configuration as Pulumi holds it, read once and handed to the pure parser.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
  Architecture,
  InstanceTypeCatalog,
  InstanceTypeFacts,
  debianArchitectureOf,
} from "../model/aws";
import {
  WebstackConfig,
  appSourceToRead,
  instanceTypesToLookUp,
  parseConfig,
} from "../model/config";
import { ReleaseArchive, readAppSource, writeReleaseArchive } from "./appArchive";
import { lookUpInstanceTypes } from "./instanceTypes";
import { gunicornWorkers } from "../model/limits";

/** The validated configuration, and what EC2's data on its instance types decided. */
export interface LoadedConfig {
  readonly config: WebstackConfig;
  /** The Debian architecture of the LB and of the app nodes, as EC2 reports their types. */
  readonly architectures: Readonly<{ lb: Architecture; app: Architecture }>;
  /** The LB's memory in MiB, as EC2 reports its type: HAProxy's connection limits follow it. */
  readonly lbMemoryMiB: number;
  /**
   * Each app node's Gunicorn workers, from its type's vCPUs as EC2 reports them (HAProxy's
   * per-server limit follows them): worked out here, so a type EC2 describes oddly stops the
   * program before any resource exists.
   */
  readonly appWorkers: number;
  /** The app directory, packed: the release the app nodes roll out. */
  readonly release: ReleaseArchive;
}

/**
 * Where a relative `appSource` starts: the directory of Pulumi.yaml, which the engine reports as an
 * absolute path. Without an engine (the offline plan, the tests) Pulumi answers a relative
 * stand-in: the working directory, where they run from.
 */
function projectDirectory(): string {
  const root = pulumi.runtime.getRootDirectory();
  return path.isAbsolute(root) ? root : process.cwd();
}

/**
 * The config keys stored encrypted. `isConfigSecret` is marked internal: without it no key can be
 * told encrypted from plain, so the program stops rather than accept a secret in plain text.
 */
export function encryptedKeys(
  raw: Record<string, string>,
  runtime: { isConfigSecret?: unknown } = pulumi.runtime as { isConfigSecret?: unknown },
): Set<string> {
  const isSecret = runtime.isConfigSecret;
  if (typeof isSecret !== "function")
    throw new Error(
      "@pulumi/pulumi has no runtime.isConfigSecret: webstack cannot tell an encrypted config " +
        "value from a plain one and stops (keep @pulumi/pulumi at the version package.json pins)",
    );
  return new Set(Object.keys(raw).filter((key) => (isSecret as (key: string) => boolean)(key)));
}

/**
 * Reads the stack's Pulumi config once (the only place that touches pulumi.Config), asks EC2 about
 * its instance types, reads and packs the app directory, and throws one ConfigError with every
 * problem before any resource exists.
 */
export async function loadConfig(): Promise<LoadedConfig> {
  const raw = pulumi.runtime.allConfig();
  const secretKeys = encryptedKeys(raw);
  const instanceTypes = await lookUpInstanceTypes(instanceTypesToLookUp(raw));
  const app = readAppSource(path.resolve(projectDirectory(), appSourceToRead(raw)));
  const config = parseConfig(raw, { secretKeys, instanceTypes, appSource: app.listing });
  // The parser refuses a path that is not a directory, so an accepted config has an archive.
  if (!app.archive) throw new Error(`the config accepted ${app.listing.path} without an archive`);
  return {
    config,
    architectures: {
      lb: architectureOf(instanceTypes, config.lbInstanceType),
      app: architectureOf(instanceTypes, config.appInstanceType),
    },
    lbMemoryMiB: factsOf(instanceTypes, config.lbInstanceType).memorySize,
    appWorkers: gunicornWorkers(factsOf(instanceTypes, config.appInstanceType).defaultVcpus),
    release: writeReleaseArchive(app.archive),
  };
}

/** EC2's facts on a type the parser accepted: EC2 knows it. */
function factsOf(instanceTypes: InstanceTypeCatalog, name: string): InstanceTypeFacts {
  const answer = instanceTypes.get(name);
  if (!answer || !("facts" in answer))
    throw new Error(`the config accepted ${name} without EC2's facts on it`);
  return answer.facts;
}

/** The architecture of a type the parser accepted, so EC2 knows it and Debian has AMIs for it. */
function architectureOf(instanceTypes: InstanceTypeCatalog, name: string): Architecture {
  const architecture = debianArchitectureOf(factsOf(instanceTypes, name));
  if (!architecture) throw new Error(`the config accepted ${name} without an architecture for it`);
  return architecture;
}
