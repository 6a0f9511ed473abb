// What the vendor agents' installers share: the signed-.deb installer, the tools it needs, and each
// agent's installer script with the retrying unit that runs it.
import { Argv, BundleFile, BundlePart, unitChanged } from "./bundle";
import { renderShipped, shippedFile } from "./template";

/** Installs a .deb only when the key pinned by its fingerprint signed it (on every node). */
export const SIGNED_DEB_INSTALLER = "/usr/local/sbin/webstack-install-signed-deb";

/** What the bootstrap installs on every node for the installers: their download and check tools. */
export const INSTALLER_PACKAGES: readonly string[] = ["curl", "gpg"];

/**
 * The signed-.deb installer, in every bundle once. No onChange: an agent's installer runs it only
 * while its package is missing, so a new version of it counts from the next install.
 */
export function signedDebInstallerPart(): BundlePart {
  return {
    files: [
      { path: SIGNED_DEB_INSTALLER, content: shippedFile("install-signed-deb.sh"), mode: "0755" },
    ],
  };
}

/** `webstack-<agent>.service`: the unit that installs and starts an agent (e.g. "ssm-agent"). */
export const agentInstallerUnit = (agent: string): string => `webstack-${agent}.service`;

/**
 * What a change to any of an agent's files runs: its installer unit again, not waited for (a
 * vendor outage must not hold up an apply).
 */
export const agentInstallerChanged = (agent: string): Argv =>
  unitChanged("restart", "--no-block", agentInstallerUnit(agent));

/**
 * An agent's installer (`install-<agent>.sh`, as `/usr/local/sbin/webstack-install-<agent>`) and
 * its unit: a oneshot of root's, retried every minute until it works (a vendor outage never
 * fails the boot), sandboxed only where a package's scripts cannot notice (its exposure ceiling
 * says why: model/exposure.ts). `description` names the agent in the unit's description.
 */
export function agentInstallerFiles(agent: string, description: string): BundleFile[] {
  const installer = `/usr/local/sbin/webstack-install-${agent}`;
  const onChange = agentInstallerChanged(agent);
  return [
    { path: installer, content: shippedFile(`install-${agent}.sh`), mode: "0755", onChange },
    {
      path: `/etc/systemd/system/${agentInstallerUnit(agent)}`,
      content: renderShipped("webstack-agent-installer.service", {
        AGENT: description,
        INSTALLER: installer,
      }),
      mode: "0644",
      onChange,
    },
  ];
}
