// Composes renderer parts into one #cloud-config document, serialized with `yaml`.
import YAML from "yaml";

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

/** What one renderer contributes to a node's user-data. */
export interface CloudConfigPart {
  readonly packages?: readonly string[];
  readonly writeFiles?: readonly WriteFile[];
  /** Runs early in every boot, before write_files and packages. */
  readonly bootcmd?: readonly Command[];
  /** Runs once, after packages are installed. */
  readonly runcmd?: readonly Command[];
  /** cloud-init `apt` settings (extra sources). */
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

/**
 * Merges the parts in order: packages are de-duplicated, files must not collide, commands keep
 * their order. The header comment and `#cloud-config` line come first, as cloud-init requires.
 */
export function composeCloudConfig(header: NodeHeader, parts: readonly CloudConfigPart[]): string {
  const packages = [...new Set(parts.flatMap((p) => p.packages ?? []))];
  const writeFiles = parts.flatMap((p) => p.writeFiles ?? []);
  const seen = new Set<string>();
  for (const file of writeFiles) {
    if (seen.has(file.path)) throw new Error(`two parts write ${file.path}`);
    seen.add(file.path);
  }
  const apt = Object.assign({}, ...parts.map((p) => p.apt ?? {}));
  const bootcmd = [SSH_OFF, ...parts.flatMap((p) => p.bootcmd ?? [])];
  const commands = parts.flatMap((p) => p.runcmd ?? []);
  // runcmd is one sh script whose status is its last command's: with several commands, a failed
  // boot step would pass unnoticed unless the script stops at the first failure.
  const runcmd = commands.length > 1 ? ["set -eu", ...commands] : commands;

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
    bootcmd,
    write_files: writeFiles.map((f) => ({
      path: f.path,
      content: f.content,
      permissions: f.permissions,
      owner: f.owner ?? "root:root",
    })),
    ...(Object.keys(apt).length > 0 ? { apt } : {}),
    package_update: true,
    packages,
    ...(runcmd.length > 0 ? { runcmd } : {}),
  };
  const body = YAML.stringify(document, { lineWidth: 0, blockQuote: "literal" });
  return `#cloud-config\n# ${header.description}\n${body}`;
}
