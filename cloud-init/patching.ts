// Patching on every node (issue 20, part 3): Debian's security updates installed daily by
// unattended-upgrades at the node's own hour, and needrestart restarting what still runs replaced
// libraries — never a reboot, never the database (README, "Patching").
import { DEBIAN_SUITES } from "../model/aptSources";
import { AppNodeName, NodeRole, NodeSpec, REPLICA_NODE, appNodeNumber } from "../model/topology";
import { Argv, BundleFile, BundlePart, unitFile } from "./bundle";
import { ENGINES } from "./database";
import { renderShipped, shippedFile } from "./template";

/** What every node installs for it: its bootstrap's list and its bundle's name them. */
export const PATCHING_PACKAGES: readonly string[] = ["unattended-upgrades", "needrestart"];

/** Read after Debian's 50unattended-upgrades, whose lists it clears and sets again. */
export const UNATTENDED_UPGRADES_PATH = "/etc/apt/apt.conf.d/52webstack-unattended-upgrades";
/** Read after Debian's needrestart.conf, whose exceptions it adds to. */
export const NEEDRESTART_PATH = "/etc/needrestart/conf.d/webstack.conf";
/** needrestart runs this instead of `systemctl restart haproxy.service` (its restart.d). */
export const NEEDRESTART_HAPROXY_PATH = "/etc/needrestart/restart.d/haproxy.service";

/** apt's timer that runs unattended-upgrades; a drop-in moves it to the node's hour. */
const UPGRADE_TIMER = "apt-daily-upgrade.timer";

/**
 * When each role's unattended upgrade starts (UTC; the timer adds up to 15 minutes): the replica's
 * first, then the primary's, then the LB's, as the reboot runbook goes, an hour apart, so needrestart
 * never restarts the app on two app nodes at once. Debian's default is 06:00 plus up to an hour,
 * the same window on every node.
 */
export const UPGRADE_TIMES: Readonly<Record<NodeRole, string>> = {
  replica: "02:00",
  primary: "03:00",
  loadbalancer: "04:00",
};

/**
 * A node's upgrade time: its role's, and for the replicas after s1 (s3, s4, …) an hour earlier each
 * (s3 01:00, s4 00:00, s5 23:00 the evening before, …), so every app node keeps an hour of its own.
 */
export function upgradeTime(node: Pick<NodeSpec, "name" | "role">): string {
  if (node.role !== "replica" || node.name === REPLICA_NODE) return UPGRADE_TIMES[node.role];
  const earlier = appNodeNumber(node.name as AppNodeName) - 2;
  const [hour, minute] = UPGRADE_TIMES.replica.split(":").map(Number);
  return `${String((hour - earlier + 24) % 24).padStart(2, "0")}:${String(minute).padStart(2, "0")}`;
}

/** apt reads the whole configuration: a syntax error in any file of it fails (exit 100). */
const APT_CONFIG_PARSES: Argv = ["apt-config", "dump"];

/**
 * The node's patching files: unattended-upgrades' settings (security updates only, no reboot, the
 * database's packages held), needrestart's (restart without asking, but not the database, the SSM
 * agent or webstack's own jobs), the upgrade timer's hour, and on the LB HAProxy's reload in place
 * of a restart. At the first apply systemd reads the timer's drop-in and restarts the timer;
 * later, a change to it does.
 */
export function renderPatchingPart(node: Pick<NodeSpec, "name" | "role">): BundlePart {
  const role = node.role;
  const files: BundleFile[] = [
    {
      path: UNATTENDED_UPGRADES_PATH,
      content: renderShipped("apt-unattended-upgrades.conf", {
        SECURITY_SUITE: DEBIAN_SUITES.security[0],
      }),
      mode: "0644",
      validate: APT_CONFIG_PARSES,
    },
    {
      path: NEEDRESTART_PATH,
      content: renderShipped("needrestart-webstack.conf", {
        DATABASE_UNITS: Object.values(ENGINES)
          .map((engine) => engine.service)
          .join("|"),
      }),
      mode: "0644",
      validate: ["perl", "-c", NEEDRESTART_PATH],
    },
    unitFile(
      `${UPGRADE_TIMER}.d/webstack.conf`,
      renderShipped("apt-daily-upgrade-webstack.conf", { TIME: upgradeTime(node) }),
      "try-restart",
      UPGRADE_TIMER,
    ),
    ...(role === "loadbalancer"
      ? [
          {
            path: NEEDRESTART_HAPROXY_PATH,
            content: shippedFile("needrestart-haproxy.sh"),
            mode: "0755",
          },
        ]
      : []),
  ];
  return {
    files,
    firstApply: [
      ["systemctl", "daemon-reload"],
      ["systemctl", "try-restart", UPGRADE_TIMER],
    ],
  };
}
