// AWS's SSM agent on every node (issue 20): Session Manager's end of a shell, since Debian's AMI
// ships no agent and no node runs sshd. Installed by a retrying unit, its package signature-checked.
import { Architecture, AwsAccount, packageUrlFor } from "../model/aws";
import { agentInstallerChanged, agentInstallerFiles, agentInstallerUnit } from "./agentInstaller";
import { BundleFile, BundlePart } from "./bundle";
import { renderEnvFile } from "./nodeFiles";
import { shippedFile } from "./template";

/**
 * AWS's key that signs the agent's Linux packages ("SSM Agent <ssm-agent-signer@amazon.com>"), by
 * full fingerprint: as AWS's "Verify the signature of SSM Agent" publishes it, and as the copy in
 * `files/amazon-ssm-agent.asc` computes (tests/ssmAgent.test.ts). That copy is the block AWS ships in
 * its own installer (aws/amazon-ssm-agent, agent/setupcli/managers/verificationmanagers/
 * linux_public_key_helper.go); it says the key expired on 2025-02-17, which the check does not mind
 * (the pin decides: cloud-init/files/install-signed-deb.sh). Checked in November 2026.
 */
export const SSM_AGENT_KEY_FINGERPRINT = "DE92C7DA3E56E92331D62A36BC1F495C97DD04ED";

/** Where the node keeps AWS's key: the bundle ships it (AWS publishes it on a page, not a URL). */
export const SSM_AGENT_KEY_PATH = "/etc/webstack/amazon-ssm-agent.asc";

/**
 * The agent's Debian package in the stack's region, as AWS's "Manually installing SSM Agent on
 * Debian Server instances" names it (the signature is the same URL plus .sig); `{arch}` becomes
 * amd64 or arm64. From the region's own bucket: with `vpcEndpoints` it comes through the S3 gateway.
 */
export function ssmAgentPackageUrl(account: Pick<AwsAccount, "region" | "dnsSuffix">): string {
  const { region, dnsSuffix } = account;
  return `https://s3.${region}.${dnsSuffix}/amazon-ssm-${region}/latest/debian_{arch}/amazon-ssm-agent.deb`;
}

const SSM_AGENT = "ssm-agent";

/**
 * The agent's part of a node's bundle: its package URL and key, and its installer unit, started at
 * the first apply without waiting (before the boot script, so a node whose boot failed can still be
 * reached).
 */
export function renderSsmAgentPart(architecture: Architecture, packageUrl: string): BundlePart {
  const file = (path: string, content: string): BundleFile => ({
    path,
    content,
    mode: "0644",
    onChange: agentInstallerChanged(SSM_AGENT),
  });
  return {
    files: [
      file(
        "/etc/webstack/ssm-agent.env",
        renderEnvFile({
          SSM_AGENT_URL: packageUrlFor(packageUrl, architecture),
          SSM_AGENT_KEY_FILE: SSM_AGENT_KEY_PATH,
          SSM_AGENT_KEY_FINGERPRINT,
        }),
      ),
      file(SSM_AGENT_KEY_PATH, shippedFile("amazon-ssm-agent.asc")),
      ...agentInstallerFiles(SSM_AGENT, "SSM agent"),
    ],
    firstApply: [["systemctl", "enable", "--now", "--no-block", agentInstallerUnit(SSM_AGENT)]],
  };
}
