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

/**
 * A value as the program receives it: strings as they are, anything else as JSON; a number JSON
 * cannot hold (1e400, .inf, .nan) as written, so that an error shows it as given, not as "null".
 */
function asConfigString(node: unknown, document: YAML.Document): string {
  if (YAML.isScalar(node) && typeof node.value === "number" && !Number.isFinite(node.value))
    return node.source ?? String(node.value);
  const value = YAML.isNode(node) ? node.toJS(document) : node;
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** A stack file's `config:` entries, as YAML nodes with the document they belong to. */
interface ConfigSection {
  readonly document: YAML.Document;
  readonly pairs: readonly YAML.Pair[];
}

/**
 * Reads the `config:` section; every reason the file cannot be read as Pulumi would (bad YAML, a
 * key set twice, no map where one belongs) is reported at once, each with the file and line.
 */
function readConfigSection(file: string, text: string): ConfigSection {
  const lines = new YAML.LineCounter();
  const document = YAML.parseDocument(text, { lineCounter: lines });
  const lineOf = (node: unknown) =>
    lines.linePos(YAML.isNode(node) ? (node.range?.[0] ?? 0) : 0).line;
  const written = (node: unknown) => asConfigString(node, document);
  const kindOf = (node: unknown) =>
    YAML.isSeq(node) ? "a list" : `the scalar ${JSON.stringify(written(node))}`;
  const problems = document.errors.map((error) => {
    const line = lines.linePos(error.pos[0]).line;
    if (error.code !== "DUPLICATE_KEY")
      return `${file}:${line}: ${error.message.split(" at line ")[0]}`;
    const atError = (p: YAML.Pair) => YAML.isNode(p.key) && p.key.range?.[0] === error.pos[0];
    const map = findMap(document, atError);
    const name = written(map?.items.find(atError)?.key);
    const first = map?.items.find((p) => written(p.key) === name);
    return `${file}:${line}: ${name} is set twice (first on line ${lineOf(first?.key)})`;
  });

  const root = document.contents;
  let pairs: YAML.Pair[] = [];
  if (root !== null && !YAML.isMap(root)) {
    problems.push(
      `${file}:${lineOf(root)}: expected a map with a config: section, found ${kindOf(root)}`,
    );
  } else {
    const section = root?.items.find((p) => written(p.key) === "config");
    if (YAML.isMap(section?.value)) pairs = section.value.items;
    else if (
      section &&
      (YAML.isScalar(section.value) ? section.value.value : section.value) !== null
    )
      problems.push(
        `${file}:${lineOf(section.key)}: config: must map keys to values, found ${kindOf(section.value)}`,
      );
  }
  // `domain` and `webstack:domain` are one key: the second would win silently.
  const seen = new Map<string, YAML.Pair>();
  for (const pair of pairs) {
    const key = qualify(written(pair.key));
    const first = seen.get(key);
    if (first && written(first.key) !== written(pair.key))
      problems.push(
        `${file}:${lineOf(pair.key)}: ${key} is set twice ` +
          `(first on line ${lineOf(first.key)}, as ${written(first.key)})`,
      );
    if (!first) seen.set(key, pair);
  }
  if (problems.length > 0) throw new StackConfigError(problems.join("\n"));
  return { document, pairs };
}

/** The first map in the document with an entry that `matches`. */
function findMap(
  document: YAML.Document,
  matches: (pair: YAML.Pair) => boolean,
): YAML.YAMLMap | undefined {
  let found: YAML.YAMLMap | undefined;
  YAML.visit(document, {
    Map(_, map) {
      if (!map.items.some(matches)) return undefined;
      found = map;
      return YAML.visit.BREAK;
    },
  });
  return found;
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
  const { document, pairs } = readConfigSection(file, fs.readFileSync(file, "utf8"));
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

  for (const pair of pairs) {
    const key = qualify(asConfigString(pair.key, document));
    const isEncrypted = YAML.isMap(pair.value) && pair.value.has("secure");
    if (isEncrypted) placeholder(key);
    else values[key] = asConfigString(pair.value, document);
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
