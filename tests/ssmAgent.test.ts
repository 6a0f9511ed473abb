// The SSM agent on every node (issue 20): AWS's package for the node's region and architecture,
// checked against AWS's key by its pinned fingerprint, installed by a unit that retries and never
// holds up the boot.
import { SSM_AGENT_KEY_FINGERPRINT, ssmAgentPackageUrl } from "../cloud-init/ssmAgent";
import { shippedFile } from "../cloud-init/template";
import { packageUrlFor } from "../model/aws";
import { UNIT_EXPOSURE } from "../model/exposure";
import { DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import { Plan } from "../plan/plan";
import {
  bootSequence,
  bundleEntry,
  bundleFile,
  bundleOf,
  planConfig,
  shownKey,
  withGpg,
} from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

const UNIT = "webstack-ssm-agent.service";
const INSTALLER = "/usr/local/sbin/webstack-install-ssm-agent";
const ENV = "/etc/webstack/ssm-agent.env";
const KEY = "/etc/webstack/amazon-ssm-agent.asc";

describe("AWS's SSM agent package and key", () => {
  test.each([
    ["eu-west-1", "amazonaws.com", "amd64"],
    ["us-east-2", "amazonaws.com", "arm64"],
  ] as const)("%s (%s), %s: the region's own bucket", (region, dnsSuffix, arch) => {
    expect(packageUrlFor(ssmAgentPackageUrl({ region, dnsSuffix }), arch)).toBe(
      `https://s3.${region}.${dnsSuffix}/amazon-ssm-${region}/latest/debian_${arch}/amazon-ssm-agent.deb`,
    );
  });

  withGpg(
    "the key the bundles ship is the one the fingerprint pins, AWS's SSM Agent signer",
    () => {
      const lines = shownKey(shippedFile("amazon-ssm-agent.asc"));
      // One primary key: its fingerprint is what VALIDSIG names (install-signed-deb.sh).
      expect(lines.filter((l) => l.startsWith("pub:")).length).toBe(1);
      expect(lines.find((l) => l.startsWith("fpr:"))).toBe(
        `fpr:::::::::${SSM_AGENT_KEY_FINGERPRINT}:`,
      );
      expect(lines.find((l) => l.startsWith("uid:"))).toContain(
        "SSM Agent <ssm-agent-signer@amazon.com>",
      );
    },
  );
});

describe("the SSM agent in every node's bundle", () => {
  let plan: Plan;
  beforeAll(async () => {
    plan = await planConfig({ domain: "www.example.com", lbInstanceType: "t4g.small" });
  });

  test.each([
    ["lb", "arm64"],
    ["s1", "amd64"],
    ["s2", "amd64"],
  ])(
    "%s: the %s package of the stack's region, AWS's key, the pinned fingerprint",
    (node, arch) => {
      expect(bundleFile(plan, node, ENV)).toBe(
        `SSM_AGENT_URL=https://s3.eu-west-1.amazonaws.com/amazon-ssm-eu-west-1/latest/debian_${arch}/amazon-ssm-agent.deb\n` +
          `SSM_AGENT_KEY_FILE=${KEY}\n` +
          `SSM_AGENT_KEY_FINGERPRINT=${SSM_AGENT_KEY_FINGERPRINT}\n`,
      );
      expect(bundleEntry(plan, node, KEY)).toMatchObject({
        content: shippedFile("amazon-ssm-agent.asc"),
        mode: "0644",
        owner: "root:root",
      });
    },
  );

  test("the installer: the shared signed-.deb check first, then the agent enabled and started", () => {
    for (const node of NODES) {
      const installer = bundleEntry(plan, node, INSTALLER);
      expect(installer.mode).toBe("0755");
      const lines = installer.content.split("\n").filter((l) => l && !l.startsWith("#"));
      expect(lines).toEqual([
        "set -euo pipefail",
        ". /etc/webstack/ssm-agent.env",
        '/usr/local/sbin/webstack-install-signed-deb amazon-ssm-agent "$SSM_AGENT_URL" \\',
        '  "$SSM_AGENT_KEY_FILE" "$SSM_AGENT_KEY_FINGERPRINT"',
        "systemctl daemon-reload",
        // Not restarted: a bundle change re-runs the installer, and open sessions must survive it.
        "systemctl enable --now amazon-ssm-agent.service",
      ]);
    }
  });

  test("its unit retries every minute, is started at the first boot before the boot script without waiting, and re-runs on any change", () => {
    for (const node of NODES) {
      const unit = bundleFile(plan, node, `/etc/systemd/system/${UNIT}`).split("\n");
      expect(unit).toEqual(
        expect.arrayContaining([
          "Description=webstack: install and start the SSM agent (retried until it works)",
          `ExecStart=${INSTALLER}`,
          "Restart=on-failure",
          "RestartSec=60",
          "StartLimitIntervalSec=0",
        ]),
      );
      const started = bootSequence(bundleOf(plan, node)).started.filter((s) => s.unit === UNIT);
      expect(started).toEqual([{ unit: UNIT, waits: false, beforeBootScript: true }]);
      for (const path of [ENV, KEY, INSTALLER, `/etc/systemd/system/${UNIT}`])
        expect(bundleEntry(plan, node, path).onChange).toEqual([
          "/usr/local/sbin/webstack-unit-changed",
          "restart",
          "--no-block",
          UNIT,
        ]);
    }
  });

  test("its unit has an exposure ceiling, with the reason it is above the goal", () => {
    expect(UNIT_EXPOSURE.find((u) => u.unit === UNIT)).toEqual({
      unit: UNIT,
      ceiling: 9.0,
      why: expect.stringContaining("root's job by design"),
    });
  });

  test("another region's stack downloads from that region", async () => {
    const ohio = await planConfig({ domain: "www.example.com", "aws:region": "us-east-2" });
    expect(bundleFile(ohio, "s1", ENV)).toContain(
      "SSM_AGENT_URL=https://s3.us-east-2.amazonaws.com/amazon-ssm-us-east-2/latest/debian_amd64/amazon-ssm-agent.deb\n",
    );
  });
});
