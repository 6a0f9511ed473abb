// Reads a stack's config from Pulumi.<stack>.yaml the way the Pulumi CLI hands it to the program.
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";
import { CONFIG_KEYS, KeySpec, RawConfig } from "../model/config";
import { PROJECT } from "../model/naming";

export interface StackConfig {
  /** Namespaced keys → string values (objects as JSON), as `pulumi.runtime.allConfig()` returns them. */
  readonly values: Record<string, string>;
  /** Keys Pulumi would hold encrypted. */
  readonly secretKeys: string[];
  /** Secret keys the plan filled with a stand-in (encrypted in the file, or required but unset). */
  readonly placeholders: string[];
}

export class StackConfigError extends Error {}

function asConfigString(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Pulumi's short form: `domain` means `webstack:domain`; other namespaces are written out. */
export function qualify(key: string): string {
  return key.includes(":") ? key : `${PROJECT}:${key}`;
}

/** Where the Pulumi CLI keeps a stack's config: Pulumi.<stack>.yaml beside Pulumi.yaml. */
export function stackFile(projectDir: string, stack: string): string {
  return path.join(projectDir, `Pulumi.${stack}.yaml`);
}

/**
 * @param overrides `key=value` pairs applied after the file (`--set` on the CLI); a secret key set
 *   this way counts as a secret, as `pulumi config set --secret` would store it.
 */
export function readStackConfig(file: string, overrides: readonly string[] = []): StackConfig {
  if (!fs.existsSync(file)) throw new StackConfigError(`no stack file ${file}`);
  const document = YAML.parse(fs.readFileSync(file, "utf8")) ?? {};
  const config: Record<string, unknown> = document.config ?? {};
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  const placeholders: string[] = [];
  const secretSpec = (key: string): KeySpec | undefined => {
    const [ns, name] = key.split(":");
    const spec = ns === PROJECT ? CONFIG_KEYS[name as keyof typeof CONFIG_KEYS] : undefined;
    return spec?.secret ? spec : undefined;
  };
  const placeholder = (key: string) => {
    const spec = secretSpec(key);
    if (!spec?.placeholder)
      throw new StackConfigError(`${key}: no placeholder for an encrypted value`);
    values[key] = spec.placeholder;
    secretKeys.add(key);
    placeholders.push(key);
  };

  for (const [rawKey, value] of Object.entries(config)) {
    const key = qualify(rawKey);
    const isEncrypted = typeof value === "object" && value !== null && "secure" in value;
    if (isEncrypted) placeholder(key);
    else values[key] = asConfigString(value);
  }
  for (const pair of overrides) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new StackConfigError(`--set expects key=value, got ${JSON.stringify(pair)}`);
    const key = qualify(pair.slice(0, eq));
    values[key] = pair.slice(eq + 1);
    if (secretSpec(key)) secretKeys.add(key);
    const at = placeholders.indexOf(key);
    if (at >= 0) placeholders.splice(at, 1);
  }
  // Secrets the settings require but nobody without the stack's key can supply.
  for (const [name, spec] of Object.entries(CONFIG_KEYS)) {
    const key = `${PROJECT}:${name}`;
    if (spec.secret && values[key] === undefined && spec.requiredWhen?.(values as RawConfig))
      placeholder(key);
  }
  return { values, secretKeys: [...secretKeys], placeholders };
}
