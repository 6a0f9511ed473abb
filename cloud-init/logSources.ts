// The logs each kind of node writes and ships: one table for the agents' configs and the log groups.
import { DatabaseMode, NodeRole, appNodesHoldData } from "../model/topology";
import { DB_LOG_DIR } from "./database";

/** One log file a node ships, and the name (under the node's prefix) of its log group. */
export interface LogSource {
  readonly key: string;
  readonly path: string;
}

/**
 * Every log each kind of node ships: the one table the agent config and the log groups share. An
 * app node's database logs only where it holds the database (not with `database` rds).
 */
export function logSources(role: NodeRole, database: DatabaseMode = "replication"): LogSource[] {
  const common = [
    { key: "cloud-init", path: "/var/log/cloud-init-output.log" },
    // What unattended-upgrades did (issue 20, README "Patching"): its directory is group adm's.
    { key: "unattended-upgrades", path: "/var/log/unattended-upgrades/unattended-upgrades.log" },
  ];
  if (role === "loadbalancer") return [...common, { key: "haproxy", path: "/var/log/haproxy.log" }];
  return [
    ...common,
    { key: "nginx-access", path: "/var/log/nginx/webstack-access.log" },
    { key: "nginx-error", path: "/var/log/nginx/webstack-error.log" },
    { key: "app", path: "/var/log/webstack/app.log" },
    ...(appNodesHoldData(database)
      ? [
          { key: "db-error", path: `${DB_LOG_DIR}/error.log` },
          { key: "db-slow", path: `${DB_LOG_DIR}/slow.log` },
        ]
      : []),
  ];
}

/** Where a kind of node writes one of its logs (a key of `logSources`). */
export function logPath(
  role: NodeRole,
  key: string,
  database: DatabaseMode = "replication",
): string {
  const source = logSources(role, database).find((s) => s.key === key);
  if (!source) throw new Error(`no ${key} log on a ${role} node`);
  return source.path;
}
