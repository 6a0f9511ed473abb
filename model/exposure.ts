// How exposed each of the nodes' own systemd services may be, as `systemd-analyze security` scores
// it (0 to 10), and why where it is above the goal (issue 19).

/** The goal for the app and the node's helpers: systemd calls up to 2.0 "OK". */
export const EXPOSURE_GOAL = 2.0;

/** One of webstack's services: the most exposure it may show, and why it cannot show less. */
export interface UnitExposure {
  readonly unit: string;
  /** The highest overall exposure allowed. */
  readonly ceiling: number;
  /** What it does that costs its exposure, where the ceiling is above the goal. */
  readonly why?: string;
}

const ROOTS_JOB =
  "root's job by design: it installs packages whose scripts run as root and starts what they install; a sandbox would only stop those scripts";

/** Every webstack-*.service the bundles ship, each once. */
export const UNIT_EXPOSURE: readonly UnitExposure[] = [
  { unit: "webstack-app.service", ceiling: EXPOSURE_GOAL },
  { unit: "webstack-collector.service", ceiling: EXPOSURE_GOAL },
  { unit: "webstack-boot-status.service", ceiling: EXPOSURE_GOAL },
  { unit: "webstack-certificate.service", ceiling: EXPOSURE_GOAL },
  { unit: "webstack-refresh-tls.service", ceiling: EXPOSURE_GOAL },
  { unit: "webstack-db-backup.service", ceiling: EXPOSURE_GOAL },
  { unit: "webstack-binlog-ship.service", ceiling: EXPOSURE_GOAL },
  { unit: "webstack-grow-data.service", ceiling: EXPOSURE_GOAL },
  {
    unit: "webstack-applier.service",
    ceiling: 9.0,
    why: `${ROOTS_JOB}; it also writes units and /etc and restarts services, so it can run anything as root however it is sandboxed`,
  },
  {
    unit: "webstack-apply.service",
    ceiling: 9.0,
    why: "as the watcher's: the same apply, once, started by hand",
  },
  { unit: "webstack-cloudwatch-agent.service", ceiling: 9.0, why: ROOTS_JOB },
  { unit: "webstack-datadog-agent.service", ceiling: 9.0, why: ROOTS_JOB },
  { unit: "webstack-ssm-agent.service", ceiling: 9.0, why: ROOTS_JOB },
];

/** The Debian packages' own services the lab reports beside webstack's, left as Debian ships them. */
export const PACKAGED_SERVICES: readonly string[] = [
  "nginx.service",
  "haproxy.service",
  "mariadb.service",
  "amazon-cloudwatch-agent.service",
  "datadog-agent.service",
  "amazon-ssm-agent.service",
];

/** The overall exposure of each unit in `systemd-analyze security` text, by unit name. */
export function parseExposure(text: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (const [, unit, level] of text.matchAll(/Overall exposure level for (\S+): (\d+\.\d)/g))
    found[unit] = Number(level);
  return found;
}
