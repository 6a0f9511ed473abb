// Monitoring on a node: which logs ship where, the CloudWatch agent's config, and its installer.
import { Architecture, packageUrlFor } from "../model/aws";
import {
  BACKUP_AGE_METRIC,
  BACKUP_NODE,
  BINLOG_NODE,
  BINLOG_SHIP_AGE_METRIC,
  BINLOG_STATE,
  FULL_BACKUP_STATE,
} from "../model/backups";
import { DbEngine } from "../model/config";
import { DatabaseMode, NodeName, NodeRole, NodeSpec, appNodesHoldData } from "../model/topology";
import { agentInstallerChanged, agentInstallerFiles, agentInstallerUnit } from "./agentInstaller";
import { BundleFile, BundlePart, unitFile } from "./bundle";
import { DB_CERT_PATH, DB_DATA_DIR, ENGINES, dbNodeRole } from "./database";
import { DatadogAgent, renderDatadogPart } from "./datadog";
import { logSources } from "./logSources";
import { NODE_CERT_PATH, SITE_PEM_PATH, renderEnvFile } from "./nodeFiles";
import { renderShipped } from "./template";

/**
 * The Galera arbitrator's process on the LB (`database: galera` with an even number of app nodes):
 * galera-arbitrator-4's garbd.
 */
export const ARBITRATOR_PROCESS = "garbd";

/** Whether a node runs a database server of its own: an app node, unless the database is RDS. */
export function holdsDatabase(role: NodeRole, database: DatabaseMode = "replication"): boolean {
  return role !== "loadbalancer" && appNodesHoldData(database);
}

/**
 * The processes whose CPU, memory and count the agent reports, by executable name: on an LB that
 * runs the Galera arbitrator (`arbitrator`) garbd too, so a dead garbd shows by itself, not only as
 * a smaller cluster; on an rds stack's app nodes no database server.
 */
export function monitoredProcesses(
  role: NodeRole,
  engine: DbEngine,
  database: DatabaseMode = "replication",
  arbitrator = false,
): string[] {
  if (role === "loadbalancer") return ["haproxy", ...(arbitrator ? [ARBITRATOR_PROCESS] : [])];
  return ["nginx", "gunicorn", ...(holdsDatabase(role, database) ? [ENGINES[engine].daemon] : [])];
}

/** AWS's key that signs the agent's packages ("Amazon CloudWatch Agent"), by full fingerprint. */
export const CLOUDWATCH_AGENT_KEY_FINGERPRINT = "937616F3450B7D806CBD9725D58167303B789C72";
export const CLOUDWATCH_AGENT_KEY_URL =
  "https://amazoncloudwatch-agent.s3.amazonaws.com/assets/amazon-cloudwatch-agent.gpg";

interface MonitoringParams {
  readonly node: NodeName;
  /** What the collector looks at: HAProxy's backends, or the database (and replication). */
  readonly role: NodeRole;
  readonly engine: DbEngine;
  /**
   * How the databases hold the data: what the collector asks them; with `rds` an app node holds no
   * database, nothing of one to watch.
   */
  readonly cluster: DatabaseMode;
  /** On the LB: it runs the Galera arbitrator (garbd). */
  readonly arbitrator?: boolean;
  /** Log group name per log source key. */
  readonly logGroups: Readonly<Record<string, string>>;
  /** The agent's .deb for this node's architecture. */
  readonly agentPackageUrl: string;
}

/** The CloudWatch namespace of the agent's own metrics (the nodes' roles may write it). */
export const AGENT_METRIC_NAMESPACE = "CWAgent";

/**
 * A filesystem whose `disk_used_percent` the agent reports, under the dimensions it publishes it
 * with (the device dropped, the host omitted, InstanceId appended): an alarm must name all three.
 */
export interface MonitoredDisk {
  readonly name: "root" | "data";
  readonly path: string;
  readonly fstype: string;
}

/** The root filesystem on every node; on s1 and s2 also the database's own volume (not with rds). */
export function monitoredDisks(
  role: NodeRole,
  database: DatabaseMode = "replication",
): MonitoredDisk[] {
  // ext4: the root of Debian's cloud images, and the data volume as data-volume.sh makes it.
  const root: MonitoredDisk = { name: "root", path: "/", fstype: "ext4" };
  if (!holdsDatabase(role, database)) return [root];
  return [root, { name: "data", path: DB_DATA_DIR, fstype: "ext4" }];
}

/**
 * The TLS certificates a node serves, by the name its collector's `CertificateDaysLeft` carries
 * (dimension `Certificate`): the LB's public one (whatever the mode, HAProxy's one PEM), and on s1
 * and s2 the node's own from the private CA, Nginx's copy and the database's (each refreshed apart).
 */
export function servedCertificates(
  role: NodeRole,
  database: DatabaseMode = "replication",
): Readonly<Record<string, string>> {
  if (role === "loadbalancer") return { public: SITE_PEM_PATH };
  if (!holdsDatabase(role, database)) return { node: NODE_CERT_PATH };
  return { node: NODE_CERT_PATH, database: DB_CERT_PATH };
}

/** An age the collector computes from a JSON state file: now minus its epoch-seconds `field`. */
export interface StateAge {
  readonly metric: string;
  readonly file: string;
  readonly field: string;
}

/**
 * The backup tools' state a node's collector watches (model/backups.ts): the nightly backup's age on
 * the node that takes it, binlog shipping's on the node whose binlogs are shipped.
 */
export function backupAges(node: NodeName, database: DatabaseMode = "replication"): StateAge[] {
  if (!appNodesHoldData(database)) return [];
  return [
    ...(node === BACKUP_NODE
      ? [{ metric: BACKUP_AGE_METRIC, file: FULL_BACKUP_STATE, field: "finished" }]
      : []),
    ...(node === BINLOG_NODE
      ? [{ metric: BINLOG_SHIP_AGE_METRIC, file: BINLOG_STATE, field: "shipped" }]
      : []),
  ];
}

/** The CloudWatch agent's configuration (its own JSON schema is checked in the tests). */
export function renderCloudWatchAgentConfig(p: MonitoringParams): Record<string, unknown> {
  const disks = monitoredDisks(p.role, p.cluster).map((d) => d.path);
  return {
    // No `host` dimension: the alarms find a node's metrics by InstanceId alone.
    agent: { metrics_collection_interval: 60, run_as_user: "cwagent", omit_hostname: true },
    metrics: {
      namespace: AGENT_METRIC_NAMESPACE,
      append_dimensions: { InstanceId: "${aws:InstanceId}" },
      metrics_collected: {
        cpu: { measurement: ["usage_active", "usage_iowait"], totalcpu: true, resources: ["*"] },
        mem: { measurement: ["used_percent"] },
        disk: { measurement: ["used_percent"], resources: disks, drop_device: true },
        swap: { measurement: ["used_percent"] },
        procstat: monitoredProcesses(p.role, p.engine, p.cluster, p.arbitrator).map((exe) => ({
          exe,
          measurement: ["cpu_usage", "memory_rss", "pid_count"],
        })),
      },
    },
    logs: {
      logs_collected: {
        files: {
          collect_list: logSources(p.role, p.cluster).map((source) => {
            const group = p.logGroups[source.key];
            if (!group) throw new Error(`no log group for ${p.node}'s ${source.key} log`);
            return {
              file_path: source.path,
              log_group_name: group,
              log_stream_name: "{instance_id}",
              timezone: "UTC",
            };
          }),
        },
      },
    },
  };
}

/**
 * The collector's arguments: role and node, plus the database client on app nodes that hold the
 * database (whose role is the database's: primary or replica, or a Galera member; an app node of an
 * rds stack is a `client`, with no database of its own to ask); the node's certificates and the
 * backup state it watches.
 */
function collectorArgs(p: MonitoringParams): string {
  const own =
    p.role === "loadbalancer"
      ? ["loadbalancer", p.node]
      : [
          dbNodeRole({ cluster: p.cluster, role: p.role }),
          p.node,
          ...(holdsDatabase(p.role, p.cluster) ? [ENGINES[p.engine].client] : []),
        ];
  const certificates = Object.entries(servedCertificates(p.role, p.cluster)).flatMap(
    ([name, path]) => ["--certificate", `${name}=${path}`],
  );
  const ages = backupAges(p.node, p.cluster).flatMap((a) => [
    "--age",
    `${a.metric}=${a.file}:${a.field}`,
  ]);
  return [...own, ...certificates, ...ages].join(" ");
}

/**
 * How often the collector reads and pushes its metrics, in seconds: the alarms on its metrics count
 * minutes (components/metrics.ts).
 */
export const COLLECT_INTERVAL_SECONDS = 60;

/** The agent's installer: a change to its files re-runs it (config reloaded, agent restarted). */
const CLOUDWATCH_AGENT = "cloudwatch-agent";

function renderMonitoringPart(p: MonitoringParams): BundlePart {
  const agentFile = (path: string, content: string, mode = "0644"): BundleFile => ({
    path,
    content,
    mode,
    onChange: agentInstallerChanged(CLOUDWATCH_AGENT),
  });
  return {
    files: [
      agentFile(
        "/etc/webstack/cloudwatch-agent.json",
        `${JSON.stringify(renderCloudWatchAgentConfig(p), null, 2)}\n`,
      ),
      agentFile(
        "/etc/webstack/monitoring.env",
        renderEnvFile({
          CLOUDWATCH_AGENT_URL: p.agentPackageUrl,
          CLOUDWATCH_AGENT_KEY_URL,
          CLOUDWATCH_AGENT_KEY_FINGERPRINT,
        }),
      ),
      ...agentInstallerFiles(CLOUDWATCH_AGENT, "CloudWatch agent"),
      // A changed service restarts the collector if it runs (else the timer's next start reads it);
      // a changed timer is restarted (it starts the collector COLLECT_INTERVAL_SECONDS after it last
      // ended).
      unitFile(
        "webstack-collector.service",
        renderShipped("webstack-collector.service", {
          ARGS: collectorArgs(p),
          INTERVAL: COLLECT_INTERVAL_SECONDS,
        }),
        "try-restart",
        "webstack-collector.service",
      ),
      unitFile(
        "webstack-collector.timer",
        renderShipped("webstack-collector.timer", { INTERVAL: COLLECT_INTERVAL_SECONDS }),
        "try-restart",
        "webstack-collector.timer",
      ),
      // Runs once per boot, after cloud-init: a change counts from the next boot. Enabled again
      // on a change, so a node enabled under an older [Install] moves to today's target.
      unitFile(
        "webstack-boot-status.service",
        renderShipped("webstack-boot-status.service", { NODE: p.node }),
        "reenable",
        "webstack-boot-status.service",
      ),
    ],
    // Without waiting: each unit retries on its own, and none holds up (or depends on) the boot.
    // These come before the boot script, so even a failed boot reports itself.
    firstApply: [
      [
        "systemctl",
        "enable",
        "--now",
        "--no-block",
        agentInstallerUnit(CLOUDWATCH_AGENT),
        "webstack-collector.timer",
        "webstack-boot-status.service",
      ],
    ],
  };
}

/** What a node needs to ship its logs and metrics, as plain values. */
export interface NodeMonitoring {
  /** Log group name per log source key (see `logSources`). */
  readonly logGroups: Readonly<Record<string, string>>;
  /** The CloudWatch agent's package URL; `{arch}` becomes the node's architecture. */
  readonly cloudWatchAgentUrl: string;
  /** The stack's database engine (its process and log names). */
  readonly engine: DbEngine;
  /**
   * How the stack's databases hold the data (config `database`): what the collector reports; with
   * `rds` an app node watches no database of its own.
   */
  readonly cluster: DatabaseMode;
  /** The Datadog agent, when enabled. */
  readonly datadog?: DatadogAgent;
}

/**
 * The monitoring parts of a node's bundle: CloudWatch, and Datadog's switch, on or off (a bundle
 * never deletes a file, so turning Datadog off is a change the node acts on too). `arbitrator`:
 * the node (the LB) runs the Galera arbitrator, whose process is watched too.
 */
export function renderNodeMonitoringParts(
  node: NodeSpec,
  architecture: Architecture,
  m: NodeMonitoring,
  arbitrator = false,
): BundlePart[] {
  const own = { node: node.name, role: node.role, engine: m.engine, cluster: m.cluster };
  const cloudWatch = renderMonitoringPart({
    ...own,
    arbitrator,
    logGroups: m.logGroups,
    agentPackageUrl: packageUrlFor(m.cloudWatchAgentUrl, architecture),
  });
  return [cloudWatch, renderDatadogPart(own, m.datadog)];
}
