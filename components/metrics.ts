// What webstack measures and alarms on, as data: metric filters, alarm rows and the dashboard body.
import { HTTPS_FRONTEND } from "../cloud-init/haproxy";
import {
  AGENT_METRIC_NAMESPACE,
  monitoredDisks,
  servedCertificates,
} from "../cloud-init/monitoring";
import {
  BACKUP_AGE_ALARM_SECONDS,
  BACKUP_AGE_METRIC,
  BACKUP_NODE,
  BINLOG_NODE,
  BINLOG_SHIP_AGE_ALARM_SECONDS,
  BINLOG_SHIP_AGE_METRIC,
} from "../model/backups";
import { METRIC_NAMESPACE } from "../model/naming";
import {
  AppNodeName,
  DatabaseMode,
  LB_NODE,
  NodeName,
  PRIMARY_NODE,
  appNodesHoldData,
  galeraClusterSize,
  hasArbitrator,
  isAppNodeName,
  nodeRole,
  nodesInWords,
} from "../model/topology";

/** Log metric filters: JSON access logs → request counts, errors and response times. */
export interface MetricFilterSpec {
  readonly key: string;
  readonly node: NodeName;
  /** The log source (see cloud-init/logSources.ts) whose group is filtered. */
  readonly log: string;
  readonly pattern: string;
  readonly metric: string;
  /** "1" to count, or a JSON selector whose value is published. */
  readonly value: string;
  readonly unit: "Count" | "Milliseconds" | "Seconds";
}

/** A stack's metric filters: the LB's, then each app node's (`appNodes`, in name order). */
export function metricFilters(appNodes: readonly AppNodeName[]): MetricFilterSpec[] {
  return [
    {
      key: "lb-requests",
      node: LB_NODE,
      log: "haproxy",
      pattern: `{ $.node = "${LB_NODE}" }`,
      metric: "Requests",
      value: "1",
      unit: "Count",
    },
    {
      key: "lb-5xx",
      node: LB_NODE,
      log: "haproxy",
      pattern: "{ $.status >= 500 }",
      metric: "Http5xx",
      value: "1",
      unit: "Count",
    },
    {
      // The per-client limit's 429s: HAProxy answers them in the frontend, so they log it as their
      // backend (a 429 from the app logs backend "app"). Not errors of the stack: never in Http5xx.
      key: "lb-rate-limited",
      node: LB_NODE,
      log: "haproxy",
      pattern: `{ ($.status = 429) && ($.backend = "${HTTPS_FRONTEND}") }`,
      metric: "RateLimited",
      value: "1",
      unit: "Count",
    },
    {
      key: "lb-response-time",
      node: LB_NODE,
      log: "haproxy",
      pattern: "{ $.total_ms >= 0 }",
      metric: "ResponseTimeMs",
      value: "$.total_ms",
      unit: "Milliseconds",
    },
    ...appNodes.flatMap((node): MetricFilterSpec[] => [
      {
        key: `${node}-requests`,
        node,
        log: "nginx-access",
        pattern: "{ $.status >= 100 }",
        metric: "Requests",
        value: "1",
        unit: "Count",
      },
      {
        key: `${node}-5xx`,
        node,
        log: "nginx-access",
        pattern: "{ $.status >= 500 }",
        metric: "Http5xx",
        value: "1",
        unit: "Count",
      },
    ]),
  ];
}

/** Seconds per data point of every alarm and graph. */
export const PERIOD = 60;

export type Comparison =
  "GreaterThanThreshold" | "GreaterThanOrEqualToThreshold" | "LessThanThreshold";

/**
 * One metric of an alarm: namespace, name, dimensions, statistic. `Id` is how instance ids are
 * held: plain strings in tests, Pulumi inputs in the program.
 */
export interface MetricRef<Id = string> {
  readonly namespace: string;
  readonly name: string;
  readonly dimensions: Readonly<Record<string, Id | string>>;
  readonly stat: string;
}

/** One alarm, as data: a single metric, or metric math over several (`expression` over m1, m2 …). */
export interface AlarmSpec<Id = string> {
  readonly key: string;
  readonly description: string;
  readonly metrics: readonly MetricRef<Id>[];
  readonly expression?: string;
  readonly comparison: Comparison;
  readonly threshold: number;
  readonly evaluationPeriods: number;
  /** What a missing data point means: silence is a failure for heartbeats. */
  readonly missing: "breaching" | "notBreaching";
  /** Recover the instance when the host fails (EC2 auto-recovery). */
  readonly recover?: boolean;
}

/** The RDS instance CloudWatch watches (`database: rds`): AWS/RDS's metrics, by its identifier. */
export interface RdsWatch {
  readonly identifier: string;
  /** Its allocated storage, which the free-storage alarm is a share of. */
  readonly storageGiB: number;
}

export interface AlarmInputs<Id = string> {
  /** Each node's instance, the LB's and every app node's: the alarms cover these nodes. */
  readonly instanceIds: Readonly<Record<NodeName, Id>>;
  readonly qpsThreshold: number;
  /** With `replication` only: the replica's lag alarm. */
  readonly replicaLagSeconds: number;
  /**
   * How the databases hold the data (config `database`): replica alarms, Galera's, or (with `rds`,
   * where the app nodes hold no database) the instance's.
   */
  readonly cluster: DatabaseMode;
  readonly cpuPercent?: number;
  /** With `rds`: the instance. */
  readonly rds?: RdsWatch;
}

const metricRef = <Id>(
  namespace: string,
  name: string,
  dimensions: Readonly<Record<string, Id | string>>,
  stat: string,
): MetricRef<Id> => ({ namespace, name, dimensions, stat });
const custom = <Id>(
  name: string,
  node: NodeName,
  stat: string,
  extra: Record<string, string> = {},
): MetricRef<Id> => metricRef<Id>(METRIC_NAMESPACE, name, { Node: node, ...extra }, stat);
const ec2 = <Id>(name: string, instanceId: Id, stat: string): MetricRef<Id> =>
  metricRef<Id>("AWS/EC2", name, { InstanceId: instanceId }, stat);
/** One of the CloudWatch agent's metrics, under exactly the dimensions it publishes it with. */
const agent = <Id>(
  name: string,
  instanceId: Id,
  stat: string,
  extra: Record<string, string> = {},
): MetricRef<Id> =>
  metricRef<Id>(AGENT_METRIC_NAMESPACE, name, { InstanceId: instanceId, ...extra }, stat);

/** A filesystem more used than this alarms (issue 20: root and the data volume alike). */
export const DISK_USED_ALARM_PERCENT = 80;
/**
 * Memory used (the agent's used_percent: what is neither free nor reclaimable cache) above this for
 * 5 minutes alarms: the next step is the OOM killer picking Gunicorn or the database.
 */
export const MEMORY_USED_ALARM_PERCENT = 90;
/**
 * A served certificate with fewer days left alarms: Let's Encrypt no longer e-mails about expiry;
 * certbot renews at 30 days left, `pulumi up` re-issues the private CA's at 30 (earlyRenewalHours),
 * so 20 means a renewal has failed for ten days.
 */
export const CERTIFICATE_ALARM_DAYS = 20;

/** The nodes an instance-id record names, in its order (the LB, then s1…sN). */
function nodesOf(instanceIds: Readonly<Record<NodeName, unknown>>): NodeName[] {
  return Object.keys(instanceIds) as NodeName[];
}

/** The app nodes an instance-id record names, in name order. */
function appNodesOf(instanceIds: Readonly<Record<NodeName, unknown>>): AppNodeName[] {
  return nodesOf(instanceIds).filter(isAppNodeName);
}

/** The replicas of a replication stack: every app node but the primary. */
const replicasOf = (appNodes: readonly AppNodeName[]) =>
  appNodes.filter((node) => node !== PRIMARY_NODE);

/**
 * The database's own alarms besides DatabaseUp: the replica's state and lag, or each Galera
 * member's. One cluster-size alarm per member, each reading that member's own metric: a lost
 * member shows in the other's count, a member cut off in its own, and no metric math is needed
 * (AWS advises against MIN over series in alarms: it evaluates differently on the extra data an
 * alarm fetches).
 */
function databaseModeAlarms<Id>(i: AlarmInputs<Id>): AlarmSpec<Id>[] {
  const appNodes = appNodesOf(i.instanceIds);
  if (i.cluster === "galera") {
    const size = galeraClusterSize(appNodes.length);
    const voters = nodesInWords([
      ...appNodes,
      ...(hasArbitrator(i.cluster, appNodes.length) ? ["the LB's arbitrator"] : []),
    ]);
    return appNodes.flatMap((node): AlarmSpec<Id>[] => [
      {
        key: `${node}-galera-not-ready`,
        description: `${node} is not a synced member of the Galera cluster's primary component, or does not say`,
        metrics: [custom<Id>("GaleraReady", node, "Minimum")],
        comparison: "LessThanThreshold",
        threshold: 1,
        evaluationPeriods: 3,
        missing: "breaching",
      },
      {
        key: `${node}-galera-cluster-degraded`,
        description: `${node} sees fewer than ${size} members in its Galera cluster (${voters})`,
        metrics: [custom<Id>("GaleraClusterSize", node, "Minimum")],
        comparison: "LessThanThreshold",
        threshold: size,
        evaluationPeriods: 3,
        // A member that says nothing is its galera-not-ready alarm's; a lost one, the other's count.
        missing: "notBreaching",
      },
    ]);
  }
  return replicasOf(appNodes).flatMap((replica): AlarmSpec<Id>[] => [
    {
      key: `${replica}-replica-not-running`,
      description: `The replica (${replica}) is not replicating`,
      metrics: [custom<Id>("ReplicaRunning", replica, "Minimum")],
      comparison: "LessThanThreshold",
      threshold: 1,
      evaluationPeriods: 3,
      missing: "breaching",
    },
    {
      key: `${replica}-replica-lag`,
      description: `The replica (${replica}) is more than ${i.replicaLagSeconds} s behind the primary`,
      metrics: [custom<Id>("ReplicaLagSeconds", replica, "Maximum")],
      comparison: "GreaterThanThreshold",
      threshold: i.replicaLagSeconds,
      evaluationPeriods: 3,
      missing: "notBreaching",
    },
  ]);
}

/** The RDS instance's CPU above this for 5 minutes alarms (`database: rds`). */
export const RDS_CPU_ALARM_PERCENT = 80;
/** The RDS instance's free storage below this share of its allocation alarms. */
export const RDS_FREE_STORAGE_ALARM_SHARE = 0.1;

/**
 * The RDS instance's own alarms, from the metrics RDS publishes: CPU, and free storage (its
 * automated backups, Multi-AZ failovers and minor upgrades are RDS's to run and report as events).
 */
function rdsAlarms<Id>(rds: RdsWatch): AlarmSpec<Id>[] {
  const metric = (name: string, stat: string) =>
    metricRef<Id>("AWS/RDS", name, { DBInstanceIdentifier: rds.identifier }, stat);
  return [
    {
      key: "rds-cpu-high",
      description: `CPU of the RDS instance ${rds.identifier} above ${RDS_CPU_ALARM_PERCENT}% for 5 minutes`,
      metrics: [metric("CPUUtilization", "Average")],
      comparison: "GreaterThanThreshold",
      threshold: RDS_CPU_ALARM_PERCENT,
      evaluationPeriods: 5,
      missing: "notBreaching",
    },
    {
      key: "rds-storage-low",
      description: `The RDS instance ${rds.identifier} has less than ${RDS_FREE_STORAGE_ALARM_SHARE * 100}% of its ${rds.storageGiB} GiB free`,
      metrics: [metric("FreeStorageSpace", "Minimum")],
      comparison: "LessThanThreshold",
      threshold: Math.round(rds.storageGiB * 2 ** 30 * RDS_FREE_STORAGE_ALARM_SHARE),
      evaluationPeriods: 5,
      missing: "notBreaching",
    },
  ];
}

/** The backups' age alarms (issue 20): on the node that takes the backup, and the one shipping binlogs. */
function backupAgeAlarms<Id>(): AlarmSpec<Id>[] {
  return [
    {
      key: `${BACKUP_NODE}-backup-old`,
      description: `The last full backup (${BACKUP_NODE}) is more than ${BACKUP_AGE_ALARM_SECONDS / 3600} h old, or its age is not reported`,
      metrics: [custom<Id>(BACKUP_AGE_METRIC, BACKUP_NODE, "Maximum")],
      comparison: "GreaterThanThreshold",
      threshold: BACKUP_AGE_ALARM_SECONDS,
      evaluationPeriods: 3,
      missing: "breaching",
    },
    {
      key: `${BINLOG_NODE}-binlog-shipping-behind`,
      description: `${BINLOG_NODE}'s binlogs were last shipped more than ${BINLOG_SHIP_AGE_ALARM_SECONDS} s ago (the recovery point slips), or the age is not reported`,
      metrics: [custom<Id>(BINLOG_SHIP_AGE_METRIC, BINLOG_NODE, "Maximum")],
      comparison: "GreaterThanThreshold",
      threshold: BINLOG_SHIP_AGE_ALARM_SECONDS,
      evaluationPeriods: 3,
      missing: "breaching",
    },
  ];
}

/**
 * The alarms of the app nodes' own databases: replication's or Galera's, each server answering, the
 * backups' ages.
 */
function nodeDatabaseAlarms<Id>(i: AlarmInputs<Id>): AlarmSpec<Id>[] {
  return [
    ...databaseModeAlarms(i),
    ...appNodesOf(i.instanceIds).map((node): AlarmSpec<Id> => ({
      key: `${node}-database-down`,
      description: `The database on ${node} does not answer`,
      metrics: [custom<Id>("DatabaseUp", node, "Minimum")],
      comparison: "LessThanThreshold",
      threshold: 1,
      evaluationPeriods: 2,
      missing: "breaching",
    })),
    // The backups' ages (issue 20): an age that stops arriving is a backup nobody can vouch for.
    ...backupAgeAlarms<Id>(),
  ];
}

/** Every alarm of the stack. */
export function alarmSpecs<Id = string>(i: AlarmInputs<Id>): AlarmSpec<Id>[] {
  const nodes = nodesOf(i.instanceIds);
  return [
    {
      key: "lb-qps-high",
      description: `Requests per second at the load balancer above ${i.qpsThreshold}`,
      metrics: [custom<Id>("Requests", LB_NODE, "Sum")],
      expression: "m1 / PERIOD(m1)",
      comparison: "GreaterThanThreshold",
      threshold: i.qpsThreshold,
      evaluationPeriods: 3,
      missing: "notBreaching",
    },
    {
      key: "lb-5xx-rate",
      description: "More than 5% of the load balancer's responses are 5xx",
      metrics: [custom<Id>("Http5xx", LB_NODE, "Sum"), custom<Id>("Requests", LB_NODE, "Sum")],
      expression: "IF(m2 > 0, 100 * m1 / m2, 0)",
      comparison: "GreaterThanThreshold",
      threshold: 5,
      evaluationPeriods: 3,
      missing: "notBreaching",
    },
    {
      key: "lb-backend-down",
      description: "HAProxy has a backend marked down",
      metrics: [custom<Id>("BackendsUp", LB_NODE, "Minimum")],
      comparison: "LessThanThreshold",
      // Every app node is a backend.
      threshold: appNodesOf(i.instanceIds).length,
      evaluationPeriods: 2,
      missing: "breaching",
    },
    {
      // The collector's count, per run, of the request-log lines HAProxy could not hand to rsyslog:
      // each is a request the metric filters above never count.
      key: "lb-log-lines-dropped",
      description:
        "HAProxy dropped request-log lines (rsyslog's socket full): the LB's QPS, 5xx and response-time metrics miss those requests",
      metrics: [custom<Id>("LogLinesDropped", LB_NODE, "Sum")],
      comparison: "GreaterThanThreshold",
      threshold: 0,
      evaluationPeriods: 1,
      // A count that stops arriving is lb-log-count-unread's (a silent collector or HAProxy also
      // lb-backend-down's), as a silent replica's lag is its not-running alarm's; and over one
      // period, breaching would fire on each minute a restart of the collector leaves without a run.
      missing: "notBreaching",
    },
    {
      // The count's heartbeat: the collector pushes LogLinesDropped on every run, 0 included, so
      // minutes without one are a count it cannot read (or a collector failing), which the alarm
      // above, not breaching on silence, never sees. Five periods, not one: a minute a restart of
      // the collector leaves without a run is no alarm.
      key: "lb-log-count-unread",
      description:
        "No count of the request-log lines HAProxy dropped for 5 minutes: the collector cannot read HAProxy's count, or is failing",
      metrics: [custom<Id>("LogLinesDropped", LB_NODE, "SampleCount")],
      comparison: "LessThanThreshold",
      threshold: 1,
      evaluationPeriods: 5,
      missing: "breaching",
    },
    // The app nodes' own databases (none with rds): replication or Galera's, each answering, their
    // backups; with rds, the instance's.
    ...(appNodesHoldData(i.cluster) ? nodeDatabaseAlarms<Id>(i) : []),
    ...(i.rds ? rdsAlarms<Id>(i.rds) : []),
    ...nodes.flatMap((node): AlarmSpec<Id>[] => [
      {
        key: `${node}-cpu-high`,
        description: `CPU of ${node} above ${i.cpuPercent ?? 80}% for 5 minutes`,
        metrics: [ec2("CPUUtilization", i.instanceIds[node], "Average")],
        comparison: "GreaterThanThreshold",
        threshold: i.cpuPercent ?? 80,
        evaluationPeriods: 5,
        missing: "notBreaching",
      },
      {
        key: `${node}-status-check`,
        description:
          nodeRole(node) === "loadbalancer"
            ? "The LB's host failed its status check: EC2 recovers the instance (same address and volume)"
            : `${node} failed its status check`,
        metrics: [
          ec2(
            nodeRole(node) === "loadbalancer" ? "StatusCheckFailed_System" : "StatusCheckFailed",
            i.instanceIds[node],
            "Maximum",
          ),
        ],
        comparison: "GreaterThanOrEqualToThreshold",
        threshold: 1,
        evaluationPeriods: 2,
        missing: "notBreaching",
        // The LB is cattle with its address on its own interface: recovery keeps both.
        recover: nodeRole(node) === "loadbalancer",
      },
      {
        key: `${node}-no-metrics`,
        description: `${node}'s CloudWatch agent sends nothing (not installed, stopped, or the node is gone)`,
        metrics: [agent("mem_used_percent", i.instanceIds[node], "SampleCount")],
        comparison: "LessThanThreshold",
        threshold: 1,
        evaluationPeriods: 5,
        missing: "breaching",
      },
      // The agent's own silence is the no-metrics alarm's: these judge what it says.
      {
        key: `${node}-memory-high`,
        description: `Memory used on ${node} above ${MEMORY_USED_ALARM_PERCENT}% for 5 minutes`,
        metrics: [agent("mem_used_percent", i.instanceIds[node], "Average")],
        comparison: "GreaterThanThreshold",
        threshold: MEMORY_USED_ALARM_PERCENT,
        evaluationPeriods: 5,
        missing: "notBreaching",
      },
      ...monitoredDisks(nodeRole(node), i.cluster).map((disk): AlarmSpec<Id> => ({
        key: `${node}-${disk.name}-disk-high`,
        description: `${disk.path} on ${node} (its ${disk.name === "root" ? "root volume" : "data volume"}) more than ${DISK_USED_ALARM_PERCENT}% used`,
        metrics: [
          agent("disk_used_percent", i.instanceIds[node], "Maximum", {
            path: disk.path,
            fstype: disk.fstype,
          }),
        ],
        comparison: "GreaterThanThreshold",
        threshold: DISK_USED_ALARM_PERCENT,
        evaluationPeriods: 5,
        missing: "notBreaching",
      })),
      // The collector's (issue 20): a certificate it cannot read is one nobody watches.
      ...Object.keys(servedCertificates(nodeRole(node), i.cluster)).map(
        (certificate): AlarmSpec<Id> => ({
          key: `${node}-certificate-${certificate}-expiring`,
          description: `${node}'s ${certificate} certificate expires in less than ${CERTIFICATE_ALARM_DAYS} days, or cannot be read`,
          metrics: [
            custom<Id>("CertificateDaysLeft", node, "Minimum", { Certificate: certificate }),
          ],
          comparison: "LessThanThreshold",
          threshold: CERTIFICATE_ALARM_DAYS,
          evaluationPeriods: 3,
          missing: "breaching",
        }),
      ),
      {
        key: `${node}-boot-failed`,
        description: `cloud-init reported an error while booting ${node}`,
        metrics: [custom<Id>("BootFailed", node, "Maximum")],
        comparison: "GreaterThanOrEqualToThreshold",
        threshold: 1,
        evaluationPeriods: 1,
        missing: "notBreaching",
      },
      {
        // The node's applier publishes it (issue 17); the status parameter says why.
        key: `${node}-bundle-refused`,
        description: `${node} refused a bundle (its old files keep serving): see /webstack/<stack>/${node}/bundle-status`,
        metrics: [custom<Id>("BundleRefused", node, "Maximum")],
        comparison: "GreaterThanThreshold",
        threshold: 0,
        evaluationPeriods: 1,
        missing: "notBreaching",
      },
      // The app nodes' applier publishes it with BundleRefused when the refusal was the release's.
      ...(nodeRole(node) === "loadbalancer"
        ? []
        : [
            {
              key: `${node}-release-failed`,
              description: `${node} refused an app release (the previous one keeps serving): see /webstack/<stack>/${node}/bundle-status`,
              metrics: [custom<Id>("ReleaseFailed", node, "Maximum")],
              comparison: "GreaterThanThreshold" as const,
              threshold: 0,
              evaluationPeriods: 1,
              missing: "notBreaching" as const,
            },
          ]),
    ]),
  ];
}

export interface DashboardInputs {
  readonly region: string;
  /** Each node's instance, the LB's and every app node's: the graphs show these nodes. */
  readonly instanceIds: Readonly<Record<NodeName, string>>;
  readonly alarmArns: readonly string[];
  /**
   * How the databases hold the data: the replication graph, the Galera cluster's, or (with `rds`)
   * the instance's, with no node volume or backups.
   */
  readonly cluster: DatabaseMode;
  /** With `rds`: the instance. */
  readonly rds?: RdsWatch;
}

type Widget = Record<string, unknown>;

function graph(
  title: string,
  metrics: unknown[],
  x: number,
  y: number,
  region: string,
  extra: Widget = {},
): Widget {
  return {
    type: "metric",
    x,
    y,
    width: 12,
    height: 6,
    properties: {
      title,
      region,
      period: PERIOD,
      view: "timeSeries",
      stacked: false,
      metrics,
      ...extra,
    },
  };
}

/** What a node's applier counts, as the dashboard labels it; releases on the app nodes only. */
const BUNDLE_OUTCOMES = {
  BundleApplied: "applied",
  BundleRefused: "refused",
  ReleaseFailed: "release failed",
} as const;

/** A graph's line at an alarm's threshold. */
const alarmLine = (value: number, label = "alarm"): Widget => ({
  annotations: { horizontal: [{ label, value }] },
});

/**
 * The database's own graph, by how it holds the data: the replica's lag and state, or each
 * member's view of its Galera cluster.
 */
function databaseGraph(
  cluster: DatabaseMode,
  appNodes: readonly AppNodeName[],
  region: string,
): Widget {
  const [x, y] = [0, 12];
  if (cluster === "galera")
    return graph(
      `Galera cluster (${appNodes.join(", ")})`,
      appNodes.flatMap((node) => [
        [
          METRIC_NAMESPACE,
          "GaleraClusterSize",
          "Node",
          node,
          { stat: "Minimum", label: `${node} members seen` },
        ],
        [
          METRIC_NAMESPACE,
          "GaleraReady",
          "Node",
          node,
          { stat: "Minimum", label: `${node} ready (1 = yes)` },
        ],
      ]),
      x,
      y,
      region,
      alarmLine(galeraClusterSize(appNodes.length), "alarm: fewer members"),
    );
  const replicas = replicasOf(appNodes);
  // One replica's lines need no name: the title gives it.
  const label = (replica: AppNodeName, what: string) =>
    replicas.length === 1 ? what : `${replica} ${what}`;
  return graph(
    `Replication (${replicas.join(", ")})`,
    replicas.flatMap((replica) => [
      [
        METRIC_NAMESPACE,
        "ReplicaLagSeconds",
        "Node",
        replica,
        { stat: "Maximum", label: label(replica, "lag (s)") },
      ],
      [
        METRIC_NAMESPACE,
        "ReplicaRunning",
        "Node",
        replica,
        { stat: "Minimum", label: label(replica, "running (1 = yes)") },
      ],
    ]),
    x,
    y,
    region,
  );
}

/** The backups' row of the dashboard: their ages against their alarms' limits. */
function backupRow(region: string): Widget[] {
  return [
    graph(
      `Hours since the last full backup (${BACKUP_NODE})`,
      [
        [
          METRIC_NAMESPACE,
          BACKUP_AGE_METRIC,
          "Node",
          BACKUP_NODE,
          { id: "b", stat: "Maximum", visible: false },
        ],
        [{ expression: "b / 3600", label: `${BACKUP_NODE} hours`, id: "h" }],
      ],
      0,
      36,
      region,
      alarmLine(BACKUP_AGE_ALARM_SECONDS / 3600),
    ),
    graph(
      `Seconds since the binlogs were last shipped (${BINLOG_NODE})`,
      [
        [
          METRIC_NAMESPACE,
          BINLOG_SHIP_AGE_METRIC,
          "Node",
          BINLOG_NODE,
          { stat: "Maximum", label: `${BINLOG_NODE} seconds` },
        ],
      ],
      12,
      36,
      region,
      alarmLine(BINLOG_SHIP_AGE_ALARM_SECONDS),
    ),
  ];
}

/** The RDS instance's graph, where replication's would be (`database: rds`). */
function rdsGraph(rds: RdsWatch, x: number, y: number, region: string): Widget {
  const metric = (name: string, extra: Record<string, unknown>) => [
    "AWS/RDS",
    name,
    "DBInstanceIdentifier",
    rds.identifier,
    extra,
  ];
  return graph(
    `RDS ${rds.identifier}: CPU (%) and free storage (GiB)`,
    [
      metric("CPUUtilization", { stat: "Average", label: "CPU (%)" }),
      metric("FreeStorageSpace", { stat: "Minimum", id: "f", visible: false }),
      [{ expression: `f / ${2 ** 30}`, label: "free storage (GiB)", id: "g" }],
    ],
    x,
    y,
    region,
  );
}

/**
 * The dashboard's body (CloudWatch's JSON format): QPS, errors, latency, health, replication (or
 * the Galera cluster, or the RDS instance), resources, bundles, requests refused by the per-client
 * limit, certificates, pending reboots, backups, request-log lines HAProxy dropped.
 */
export function dashboardBody(d: DashboardInputs): string {
  const nodes = nodesOf(d.instanceIds);
  const appNodes = appNodesOf(d.instanceIds);
  const qps = nodes.flatMap((node, n) => [
    [METRIC_NAMESPACE, "Requests", "Node", node, { id: `r${n}`, stat: "Sum", visible: false }],
    [{ expression: `r${n} / PERIOD(r${n})`, label: `${node} requests/s`, id: `q${n}` }],
  ]);
  const perNode = (namespace: string, name: string, stat: string, extra: string[] = []) =>
    nodes.map((node) => [
      namespace,
      name,
      "InstanceId",
      d.instanceIds[node],
      ...extra,
      { stat, label: node },
    ]);
  const widgets: Widget[] = [
    graph("Requests per second (LB and each web server)", qps, 0, 0, d.region),
    graph(
      "HTTP 5xx (count per minute)",
      nodes.map((node) => [
        METRIC_NAMESPACE,
        "Http5xx",
        "Node",
        node,
        { stat: "Sum", label: node },
      ]),
      12,
      0,
      d.region,
    ),
    graph(
      "LB response time (ms)",
      ["p50", "p99"].map((stat) => [
        METRIC_NAMESPACE,
        "ResponseTimeMs",
        "Node",
        LB_NODE,
        { stat, label: stat },
      ]),
      0,
      6,
      d.region,
    ),
    graph(
      "Backend health (1 = up)",
      appNodes.map((server) => [
        METRIC_NAMESPACE,
        "BackendUp",
        "Node",
        LB_NODE,
        "Server",
        server,
        { stat: "Minimum", label: server },
      ]),
      12,
      6,
      d.region,
    ),
    d.rds ? rdsGraph(d.rds, 0, 12, d.region) : databaseGraph(d.cluster, appNodes, d.region),
    graph("CPU (%)", perNode("AWS/EC2", "CPUUtilization", "Average"), 12, 12, d.region),
    graph(
      "Memory used (%)",
      perNode(AGENT_METRIC_NAMESPACE, "mem_used_percent", "Average"),
      0,
      18,
      d.region,
      alarmLine(MEMORY_USED_ALARM_PERCENT),
    ),
    graph(
      "Disk used (%): root, and the data volume on the app nodes",
      nodes.flatMap((node) =>
        monitoredDisks(nodeRole(node), d.cluster).map((disk) => [
          AGENT_METRIC_NAMESPACE,
          "disk_used_percent",
          "InstanceId",
          d.instanceIds[node],
          "path",
          disk.path,
          "fstype",
          disk.fstype,
          { stat: "Maximum", label: `${node} ${disk.path}` },
        ]),
      ),
      12,
      18,
      d.region,
      alarmLine(DISK_USED_ALARM_PERCENT),
    ),
    graph(
      "Bundles applied and refused, app releases failed (count per minute)",
      nodes.flatMap((node) =>
        Object.entries(BUNDLE_OUTCOMES)
          .filter(([metric]) => metric !== "ReleaseFailed" || nodeRole(node) !== "loadbalancer")
          .map(([metric, label]) => [
            METRIC_NAMESPACE,
            metric,
            "Node",
            node,
            { stat: "Sum", label: `${node} ${label}` },
          ]),
      ),
      0,
      24,
      d.region,
    ),
    graph(
      "Requests refused by the per-client limit (429, count per minute)",
      [[METRIC_NAMESPACE, "RateLimited", "Node", LB_NODE, { stat: "Sum", label: LB_NODE }]],
      12,
      24,
      d.region,
    ),
    graph(
      "Certificates: days left",
      nodes.flatMap((node) =>
        Object.keys(servedCertificates(nodeRole(node), d.cluster)).map((certificate) => [
          METRIC_NAMESPACE,
          "CertificateDaysLeft",
          "Node",
          node,
          "Certificate",
          certificate,
          { stat: "Minimum", label: `${node} ${certificate}` },
        ]),
      ),
      0,
      30,
      d.region,
      alarmLine(CERTIFICATE_ALARM_DAYS),
    ),
    // No alarm: a pending reboot is planned (the runbook's staggered reboot), never automatic.
    graph(
      "Reboot required (1 = an update waits for a reboot)",
      nodes.map((node) => [
        METRIC_NAMESPACE,
        "RebootRequired",
        "Node",
        node,
        { stat: "Maximum", label: node },
      ]),
      12,
      30,
      d.region,
    ),
    ...(appNodesHoldData(d.cluster) ? backupRow(d.region) : []),
    // Counted apart from the logs: what the QPS, 5xx and latency above do not see.
    graph(
      "Request-log lines HAProxy dropped (count per minute)",
      [[METRIC_NAMESPACE, "LogLinesDropped", "Node", LB_NODE, { stat: "Sum", label: LB_NODE }]],
      0,
      42,
      d.region,
    ),
    {
      type: "alarm",
      x: 0,
      y: 48,
      width: 24,
      height: 6,
      properties: { title: "Alarms", alarms: d.alarmArns },
    },
  ];
  return JSON.stringify({ widgets });
}
