// A node's user-data: the bootstrap (issue 17), one #cloud-config serialized with `yaml`, composed
// from the parts that must exist before the node's bundle can: boot commands, APT sources, packages,
// early files.
import YAML from "yaml";
import { METRIC_NAMESPACE, bundlePointerName, bundleStatusName } from "../model/naming";
import { NodeName } from "../model/topology";
import { debianAptConfig } from "../model/aptSources";
import { renderEnvFile } from "./nodeFiles";
import { shippedFile } from "./template";

export interface WriteFile {
  readonly path: string;
  readonly content: string;
  /** Octal mode as a string, e.g. "0644". */
  readonly permissions: string;
  /** @default "root:root" */
  readonly owner?: string;
}

/** A command: a string runs through the shell, an array is exec'd as is. */
export type Command = string | readonly string[];

/**
 * What one renderer contributes to a node's bootstrap. Nothing here may follow a setting that a
 * bundle applies in place: a change to the bootstrap replaces the LB and never reaches s1 or s2.
 */
export interface BootstrapPart {
  readonly packages?: readonly string[];
  /** Runs early in every boot, before write_files and packages. */
  readonly bootcmd?: readonly Command[];
  /** Written before the packages install: what a package's first start must already find. */
  readonly bootFiles?: readonly WriteFile[];
  /**
   * cloud-init `apt` settings: extra `sources` by name (merged with other parts'), any other key
   * once across the parts and Debian's own settings (debianAptConfig).
   */
  readonly apt?: Readonly<Record<string, unknown>>;
}

export interface NodeHeader {
  readonly hostname: string;
  readonly fqdn: string;
  /** One line saying what this document is. */
  readonly description: string;
}

/**
 * No SSH server on any node, not only none reachable: the image's sshd is stopped and masked at
 * every boot, before anything else (security groups never open port 22 either).
 */
export const SSH_OFF: Command = ["systemctl", "mask", "--now", "ssh.service", "ssh.socket"];

/** What the bootstrap and the node's applier read: the node, its two parameters, the metrics' namespace. */
export const BUNDLE_ENV_PATH = "/etc/webstack/bundle.env";
/** Fetches the node's bundle at first boot, checks it and hands it to `webstack-aws apply`. */
export const BOOTSTRAP_PATH = "/usr/local/sbin/webstack-bootstrap";

/** /etc/webstack/bundle.env, as issue 17's contract spells it. */
export function renderBundleEnv(stack: string, node: NodeName): string {
  return renderEnvFile({
    NODE: node,
    BUNDLE_PARAMETER: bundlePointerName(stack, node),
    STATUS_PARAMETER: bundleStatusName(stack, node),
    METRIC_NAMESPACE,
  });
}

/**
 * Every node's `apt` settings: Debian's sources over HTTPS first, then the parts' (MySQL's
 * repository). `sources` are merged by name; a name or any other key set twice is refused, so no
 * part silently replaces another's source or Debian's archive.
 */
export function composeApt(parts: readonly BootstrapPart[]): Record<string, unknown> {
  const apt: Record<string, unknown> = {};
  const sources: Record<string, unknown> = {};
  for (const settings of [debianAptConfig(), ...parts.map((p) => p.apt ?? {})]) {
    for (const [key, value] of Object.entries(settings)) {
      if (key === "sources") {
        for (const [name, source] of Object.entries(value as Record<string, unknown>)) {
          if (name in sources) throw new Error(`two parts add the apt source ${name}`);
          sources[name] = source;
        }
      } else {
        if (key in apt) throw new Error(`two parts set apt.${key}`);
        apt[key] = value;
      }
    }
  }
  return Object.keys(sources).length > 0 ? { ...apt, sources } : apt;
}

/**
 * The bootstrap: the parts merged in order (packages once, no two parts writing one file, boot
 * commands after SSH is off, Debian's APT sources under the parts'), the bundle's env and the bootstrap script, which runs last. The
 * header comment and `#cloud-config` line come first, as cloud-init requires.
 */
export function composeBootstrap(
  header: NodeHeader,
  bundle: { readonly stack: string; readonly node: NodeName },
  parts: readonly BootstrapPart[],
): string {
  const packages = [...new Set(parts.flatMap((p) => p.packages ?? []))];
  const writeFiles: WriteFile[] = [
    {
      path: BUNDLE_ENV_PATH,
      content: renderBundleEnv(bundle.stack, bundle.node),
      permissions: "0644",
    },
    { path: BOOTSTRAP_PATH, content: shippedFile("webstack-bootstrap.py"), permissions: "0755" },
    ...parts.flatMap((p) => p.bootFiles ?? []),
  ];
  const seen = new Set<string>();
  for (const file of writeFiles) {
    if (seen.has(file.path)) throw new Error(`two parts write ${file.path}`);
    seen.add(file.path);
  }

  const document: Record<string, unknown> = {
    // A minimal rootfs (the lab) has no other locale; EC2's Debian image has it too.
    locale: "C.UTF-8",
    hostname: header.hostname,
    fqdn: header.fqdn,
    prefer_fqdn_over_hostname: false,
    manage_etc_hosts: true,
    // No SSH: access is through SSM Session Manager; never accept passwords either way.
    ssh_pwauth: false,
    // …and no sshd to print host keys for: the console log stays the boot's own.
    ssh: { emit_keys_to_console: false },
    no_ssh_fingerprints: true,
    bootcmd: [SSH_OFF, ...parts.flatMap((p) => p.bootcmd ?? [])],
    // cloud-init's default owner is root:root: named only when it is another.
    write_files: writeFiles.map((f) => ({
      path: f.path,
      content: f.content,
      permissions: f.permissions,
      ...(f.owner && f.owner !== "root:root" ? { owner: f.owner } : {}),
    })),
    // Before package_update: apt fetches the archive's indexes over HTTPS (no node has port 80 outbound).
    apt: composeApt(parts),
    package_update: true,
    packages,
    // One command: its status is the boot's (a refused first apply fails it, loudly).
    runcmd: [[BOOTSTRAP_PATH]],
  };
  // Lists of one-line words (a command, the packages) in flow style: the bootstrap stays small.
  const yaml = new YAML.Document(document);
  YAML.visit(yaml, {
    Seq(_, seq) {
      if (seq.items.every((i) => YAML.isScalar(i) && !String(i.value).includes("\n")))
        seq.flow = true;
    },
  });
  const body = yaml.toString({ lineWidth: 0, blockQuote: "literal" });
  return `#cloud-config\n# ${header.description}\n${body}`;
}
