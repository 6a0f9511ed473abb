// A node's bundle (issue 17, format 1): the files it runs, how each is checked and taken into use,
// its first-boot steps and health check, as the exact JSON bytes that are uploaded and pointed at.
import * as crypto from "crypto";
import { NodeName, NodeSpec } from "../model/topology";
import { bundlePrefix, bundleStatusName } from "../model/naming";
import { shippedFile } from "./template";

/** A command, exec'd as is by the node's applier: never through a shell. */
export type Argv = readonly string[];

/** One file of a bundle: written when its content, mode or owner differ from the node's. */
export interface BundleFile {
  readonly path: string;
  readonly content: string;
  /** Octal mode as a string, e.g. "0644". */
  readonly mode: string;
  /** @default "root:root" */
  readonly owner?: string;
  /** Runs once the changed files are written, before any action; a failure refuses the bundle. */
  readonly validate?: Argv;
  /** Runs once (per distinct command, in bundle order) when this file changed; not on a first apply. */
  readonly onChange?: Argv;
}

/** Another node's status this node's apply waits for: the same release, applied. */
export interface BundleAfter {
  readonly node: NodeName;
  readonly status: string;
}

/** The release command on the primary: what it runs, and where it reports how that went. */
export interface ReleaseCommand {
  /** A command line for `/bin/sh -c`, run once per release. */
  readonly run: string;
  readonly status: string;
}

/** The primary's release command a replica waits for before it takes the release. */
export interface AwaitedCommand {
  readonly node: NodeName;
  readonly status: string;
}

/** The app release an app node runs (issue 18): where its archive is, and its command's part. */
export interface BundleApp {
  /** The sha256 of the archive: the node checks it after the download. */
  readonly release: string;
  readonly bucket: string;
  readonly key: string;
  /** The WSGI callable, module.path:callable (`appModule`): what the node's preflight serves. */
  readonly module: string;
  /** The app's sandbox (`APP_SANDBOX`): the preflight and pip run the release's code in it too. */
  readonly sandbox: readonly string[];
  /** The primary's only, and only with a release command. */
  readonly command?: ReleaseCommand;
  /** The replica's only, and only with a release command. */
  readonly awaitCommand?: AwaitedCommand;
}

/**
 * An APT repository outside Debian's and the packages the node takes from it: the applier writes
 * its deb822 file to /etc/apt/sources.list.d/webstack-<name>.sources (and removes the webstack-*
 * files a bundle no longer names) before it installs any package, so a running node gets a new
 * repository with its package. The packages are listed here, never in `packages` or a bootstrap:
 * an applier from before `aptSources` ignores the key (and the packages that need it) instead of
 * refusing a bundle it cannot install, and the applier the bundle ships applies it again in full.
 */
export interface AptSource {
  /** [a-z0-9-]+: the file's name. */
  readonly name: string;
  /** deb822, its signing key inline in Signed-By (one file: no keyring path to keep in step). */
  readonly content: string;
  /** Sorted, once each. */
  readonly packages: readonly string[];
}

/** A bundle without its release: what a node's own settings make of it. */
export interface BundlePayload {
  readonly node: NodeName;
  readonly after: readonly BundleAfter[];
  /** The Debian packages its files need (sorted, once each): installed first where one is missing. */
  readonly packages: readonly string[];
  /** Repositories beyond Debian's, with their packages (none on most nodes: the key is left out). */
  readonly aptSources: readonly AptSource[];
  readonly files: readonly BundleFile[];
  /** Run in order on the node's first apply (its first boot), instead of the files' onChange. */
  readonly firstApply: readonly Argv[];
  /** The app release to prepare and switch to (app nodes only). */
  readonly app?: BundleApp;
  /** Must pass after the actions for the bundle to count as applied. */
  readonly healthCheck?: Argv;
}

/** The statuses a node's apply waits for (the primary: the replicas'), as its bundle lists them. */
export function afterOf(stack: string, node: Pick<NodeSpec, "appliesAfter">): BundleAfter[] {
  return node.appliesAfter.map((other) => ({
    node: other,
    status: bundleStatusName(stack, other),
  }));
}

/** What one renderer contributes to a node's bundle. */
export interface BundlePart {
  readonly aptSources?: readonly AptSource[];
  readonly files?: readonly BundleFile[];
  /** Steps of the node's first apply (its first boot), in order; one failing refuses the bundle. */
  readonly firstApply?: readonly Argv[];
}

/** The one format the nodes' applier reads. */
export const BUNDLE_FORMAT = 1;

/** The node tool: shipped in every bundle, installed by the bootstrap, runs every apply. */
export const NODE_TOOL_PATH = "/usr/local/sbin/webstack-aws";
const UNIT_CHANGED_PATH = "/usr/local/sbin/webstack-unit-changed";
const SYSTEMD_DIR = "/etc/systemd/system";

/** The onChange of a unit file: systemd reads its units again, then `systemctl ARGS…` (if any). */
export function unitChanged(...systemctlArgs: string[]): Argv {
  return [UNIT_CHANGED_PATH, ...systemctlArgs];
}

/** A systemd unit file, taken into use when it changes by `systemctl ARGS…` after a reload. */
export function unitFile(name: string, content: string, ...systemctlArgs: string[]): BundleFile {
  return {
    path: `${SYSTEMD_DIR}/${name}`,
    content,
    mode: "0644",
    onChange: unitChanged(...systemctlArgs),
  };
}

/**
 * The apply machinery every bundle carries: the node tool, its watcher and the timer that keeps it
 * running, the unit for one apply by hand, the unit helper. A new watcher unit is read at its next
 * start; a node whose timer started a process per look (before the watcher) restarts the timer,
 * which starts the watcher 30 s later.
 */
function applyPart(): BundlePart {
  return {
    files: [
      { path: NODE_TOOL_PATH, content: shippedFile("webstack-aws.py"), mode: "0755" },
      { path: UNIT_CHANGED_PATH, content: shippedFile("unit-changed.sh"), mode: "0755" },
      unitFile("webstack-applier.service", shippedFile("webstack-applier.service")),
      unitFile("webstack-apply.service", shippedFile("webstack-apply.service")),
      unitFile(
        "webstack-apply.timer",
        shippedFile("webstack-apply.timer"),
        "restart",
        "webstack-apply.timer",
      ),
    ],
  };
}

/** A health check over HTTP(S): fails on an error status or after 5 s, printing only the error. */
export function httpCheck(url: string, ...curlOptions: string[]): Argv {
  return ["curl", "-fsS", "-o", "/dev/null", "--max-time", "5", ...curlOptions, url];
}

/** What the applier accepts as an APT source's name (the file's name). */
export const APT_SOURCE_NAME = /^[a-z0-9][a-z0-9-]*$/;

/** What the node composers add to the parts' files and first-boot steps. */
export interface BundleFrame {
  readonly node: NodeName;
  readonly after: readonly BundleAfter[];
  /** The packages the node's bootstrap installs: the same list, so a running node gets a new one. */
  readonly packages: readonly string[];
  readonly app?: BundleApp;
  readonly healthCheck?: Argv;
}

/**
 * A node's bundle from its parts: their files (no two parts may write one path) and their first-boot
 * steps in order, then the apply timer, enabled last: from then on the node follows its pointer.
 */
export function composeBundle(frame: BundleFrame, parts: readonly BundlePart[]): BundlePayload {
  const files = [...parts, applyPart()].flatMap((p) => p.files ?? []);
  const seen = new Set<string>();
  for (const file of files) {
    if (seen.has(file.path)) throw new Error(`two parts write ${file.path}`);
    seen.add(file.path);
  }
  const aptSources = parts.flatMap((p) => p.aptSources ?? []);
  const names = new Set<string>();
  for (const source of aptSources) {
    if (!APT_SOURCE_NAME.test(source.name)) throw new Error(`apt source name ${source.name}`);
    if (names.has(source.name)) throw new Error(`two parts add the apt source ${source.name}`);
    names.add(source.name);
  }
  return {
    node: frame.node,
    after: frame.after,
    packages: [...new Set(frame.packages)].sort(),
    aptSources: aptSources.map((s) => ({ ...s, packages: [...new Set(s.packages)].sort() })),
    files,
    firstApply: [
      ...parts.flatMap((p) => p.firstApply ?? []),
      ["systemctl", "enable", "--now", "webstack-apply.timer"],
    ],
    ...(frame.app ? { app: frame.app } : {}),
    ...(frame.healthCheck ? { healthCheck: frame.healthCheck } : {}),
  };
}

/** The bundle's `app` key, in the contract's order of keys. */
function appJson(app: BundleApp) {
  return {
    release: app.release,
    bucket: app.bucket,
    key: app.key,
    module: app.module,
    sandbox: [...app.sandbox],
    ...(app.command ? { command: { run: app.command.run, status: app.command.status } } : {}),
    ...(app.awaitCommand
      ? { awaitCommand: { node: app.awaitCommand.node, status: app.awaitCommand.status } }
      : {}),
  };
}

/**
 * The bundle's JSON: the contract's keys in its order, owners filled in; no release for a payload.
 * `packages` came later within format 1: the applier reads each key by name, so one that predates
 * it ignores the key (and installs nothing) instead of refusing the bundle; `aptSources` too, and it
 * is left out where there is none (those bundles' bytes stay as they were).
 */
function bundleJson(payload: BundlePayload, release?: string): string {
  return JSON.stringify({
    format: BUNDLE_FORMAT,
    node: payload.node,
    ...(release !== undefined ? { release } : {}),
    after: payload.after,
    packages: payload.packages,
    ...(payload.aptSources.length > 0
      ? {
          aptSources: payload.aptSources.map((s) => ({
            name: s.name,
            content: s.content,
            packages: s.packages,
          })),
        }
      : {}),
    files: payload.files.map((f) => ({
      path: f.path,
      content: f.content,
      mode: f.mode,
      owner: f.owner ?? "root:root",
      ...(f.validate ? { validate: f.validate } : {}),
      ...(f.onChange ? { onChange: f.onChange } : {}),
    })),
    firstApply: payload.firstApply,
    ...(payload.app ? { app: appJson(payload.app) } : {}),
    ...(payload.healthCheck ? { healthCheck: payload.healthCheck } : {}),
  });
}

export const sha256Hex = (text: string): string =>
  crypto.createHash("sha256").update(text, "utf8").digest("hex");

/** One node's published bundle: its bytes, their sha256, and its content-addressed key. */
export interface PublishedBundle {
  readonly node: NodeName;
  readonly text: string;
  readonly sha256: string;
  readonly key: string;
}

/**
 * Every node's bundle with the stack's release: the sha256 of the sorted payload sha256s, one per
 * line (no trailing newline), so it changes when any node's payload does and names one rollout.
 */
export function publishBundles(payloads: readonly BundlePayload[]): {
  readonly release: string;
  readonly bundles: readonly PublishedBundle[];
} {
  const release = sha256Hex(
    payloads
      .map((p) => sha256Hex(bundleJson(p)))
      .sort()
      .join("\n"),
  );
  const bundles = payloads.map((p) => {
    const text = bundleJson(p, release);
    const sha256 = sha256Hex(text);
    return { node: p.node, text, sha256, key: `${bundlePrefix(p.node)}${sha256}.json` };
  });
  return { release, bundles };
}

/** The pointer parameter's value: where the node's current bundle is, and its sha256. */
export function renderBundlePointer(bucket: string, key: string, sha256: string): string {
  return JSON.stringify({ bucket, key, sha256 });
}
