// Patching on every node (issue 20, part 3): unattended-upgrades for Debian's security archive only,
// never a reboot, the database's packages held; needrestart restarting without asking, but not the
// database, the SSM agent or webstack's own jobs, and HAProxy by a reload; each node's upgrade at its
// own hour; the packages on every node, in its bootstrap and its bundle.
import {
  NEEDRESTART_HAPROXY_PATH,
  NEEDRESTART_PATH,
  PATCHING_PACKAGES,
  UNATTENDED_UPGRADES_PATH,
  UPGRADE_TIMES,
} from "../cloud-init/patching";
import { LB_NODE, DEFAULT_APP_NODE_COUNT, nodeNames, nodeRole } from "../model/topology";
import { Plan } from "../plan/plan";
import { bundleEntry, bundleOf, planConfig, userDataDocument } from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

const BASE = { domain: "www.example.com" };
const TIMER_DROP_IN = "/etc/systemd/system/apt-daily-upgrade.timer.d/webstack.conf";

/** A file's lines without its comments and blank lines: what its reader acts on. */
const settings = (content: string, comment: string) =>
  content.split("\n").filter((l) => l.trim() !== "" && !l.startsWith(comment));

let plans: { name: string; plan: Plan }[];
beforeAll(async () => {
  plans = [
    { name: "self-signed, MariaDB", plan: await planConfig(BASE) },
    {
      name: "letsencrypt, MySQL",
      plan: await planConfig({
        ...BASE,
        dbEngine: "mysql",
        certificate: "letsencrypt",
        acmeEmail: "ops@example.com",
      }),
    },
  ];
});

/** A bundle's config file that its reader reads at each run: root's, 0644, nothing run on a change. */
function readAtEachRun(plan: Plan, node: string, at: string) {
  const file = bundleEntry(plan, node, at);
  expect({ node, at, mode: file.mode, owner: file.owner, onChange: file.onChange }).toEqual({
    node,
    at,
    mode: "0644",
    owner: "root:root",
    onChange: undefined,
  });
  return file;
}

const eachNode = (check: (plan: Plan, node: (typeof NODES)[number]) => void) => {
  for (const { plan } of plans) for (const node of NODES) check(plan, node);
};

test("every node installs unattended-upgrades and needrestart: its bundle names them (the app nodes' bootstrap too; the LB's not, which would replace it)", () => {
  expect(PATCHING_PACKAGES).toEqual(["unattended-upgrades", "needrestart"]);
  eachNode((plan, node) => {
    expect({ node, packages: userDataDocument(plan, node).packages }).toEqual({
      node,
      packages:
        node === LB_NODE
          ? expect.not.arrayContaining([PATCHING_PACKAGES[0]])
          : expect.arrayContaining([...PATCHING_PACKAGES]),
    });
    expect({ node, packages: bundleOf(plan, node).packages }).toEqual({
      node,
      packages: expect.arrayContaining([...PATCHING_PACKAGES]),
    });
  });
});

test("unattended-upgrades: daily, Debian's security archive alone, MariaDB held, no reboot; apt checks the file", () => {
  eachNode((plan, node) => {
    const file = readAtEachRun(plan, node, UNATTENDED_UPGRADES_PATH);
    expect(file.validate).toEqual(["apt-config", "dump"]);
    expect(settings(file.content, "//")).toEqual([
      'APT::Periodic::Update-Package-Lists "1";',
      'APT::Periodic::Unattended-Upgrade "1";',
      "#clear Unattended-Upgrade::Allowed-Origins;",
      "#clear Unattended-Upgrade::Origins-Pattern;",
      "Unattended-Upgrade::Origins-Pattern {",
      '        "origin=Debian,codename=trixie-security,label=Debian-Security";',
      "};",
      "#clear Unattended-Upgrade::Package-Blacklist;",
      "Unattended-Upgrade::Package-Blacklist {",
      '        "mariadb-";',
      '        "libmariadb";',
      "};",
      'Unattended-Upgrade::Automatic-Reboot "false";',
      'Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";',
      'Unattended-Upgrade::Remove-New-Unused-Dependencies "true";',
      'Unattended-Upgrade::Remove-Unused-Dependencies "false";',
      'Unattended-Upgrade::SyslogEnable "true";',
      'Unattended-Upgrade::SyslogFacility "daemon";',
      "DPkg::Options {",
      '        "--force-confdef";',
      '        "--force-confold";',
      "};",
    ]);
  });
});

test("needrestart: restarts without asking, except the database (either engine), the SSM agent and webstack's jobs but the app", () => {
  eachNode((plan, node) => {
    const file = readAtEachRun(plan, node, NEEDRESTART_PATH);
    expect(file.validate).toEqual(["perl", "-c", NEEDRESTART_PATH]);
    expect(settings(file.content, "#")).toEqual([
      "$nrconf{restart} = 'a';",
      "$nrconf{override_rc}{qr(^(?:mariadb|mysql)\\.service$)} = 0;",
      "$nrconf{override_rc}{qr(^amazon-ssm-agent\\.service$)} = 0;",
      "$nrconf{override_rc}{qr(^webstack-(?!app\\.service$))} = 0;",
    ]);
  });
});

test("HAProxy is reloaded, never restarted, by needrestart on the LB; the app nodes have no such file", () => {
  for (const { plan } of plans) {
    const script = bundleEntry(plan, LB_NODE, NEEDRESTART_HAPROXY_PATH);
    // needrestart runs an executable file of restart.d named as the unit instead of restarting it.
    expect(script.mode).toBe("0755");
    expect(settings(script.content, "#")).toEqual(["exec systemctl reload haproxy.service"]);
    expect(script.content.startsWith("#!/bin/sh\n")).toBe(true);
    for (const node of NODES.filter((n) => n !== LB_NODE))
      expect(bundleOf(plan, node).files.map((f) => f.path)).not.toContain(NEEDRESTART_HAPROXY_PATH);
  }
});

test("each node upgrades at its own hour: the replica, then the primary, then the LB, an hour apart", () => {
  expect(Object.fromEntries(NODES.map((n) => [n, UPGRADE_TIMES[nodeRole(n)]]))).toEqual({
    lb: "04:00",
    s1: "02:00",
    s2: "03:00",
  });
  eachNode((plan, node) => {
    const file = bundleEntry(plan, node, TIMER_DROP_IN);
    expect(settings(file.content, "#")).toEqual([
      "[Timer]",
      // Empty first: a drop-in's OnCalendar= adds to the unit's 06:00 otherwise.
      "OnCalendar=",
      `OnCalendar=*-*-* ${UPGRADE_TIMES[nodeRole(node)]} UTC`,
      "RandomizedDelaySec=15min",
    ]);
    expect(file.mode).toBe("0644");
    expect(file.onChange).toEqual([
      "/usr/local/sbin/webstack-unit-changed",
      "try-restart",
      "apt-daily-upgrade.timer",
    ]);
    // The first apply takes it into use too (onChange runs only on later ones), before the boot.
    const steps = bundleOf(plan, node).firstApply.map((argv) => argv.join(" "));
    const reload = steps.indexOf("systemctl daemon-reload");
    expect(reload).toBeGreaterThanOrEqual(0);
    expect(steps[reload + 1]).toBe("systemctl try-restart apt-daily-upgrade.timer");
    expect(reload).toBeLessThan(
      steps.findIndex((s) => /^\/usr\/local\/sbin\/webstack-(lb-)?boot$/.test(s)),
    );
  });
});
