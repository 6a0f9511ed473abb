// What webstack measures and alarms on, as data: metric filters, alarm rows and the dashboard body.
import { HTTPS_FRONTEND } from "../cloud-init/haproxy";
import { METRIC_NAMESPACE } from "../model/naming";
import {
  APP_NODES_BY_NAME,
  LB_NODE,
  NODE_NAMES,
  NODE_ROLES,
  NodeName,
  REPLICA_NODE,
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

export const METRIC_FILTERS: readonly MetricFilterSpec[] = [
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
  ...APP_NODES_BY_NAME.flatMap((node): MetricFilterSpec[] => [
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

export interface AlarmInputs<Id = string> {
  readonly instanceIds: Readonly<Record<NodeName, Id>>;
  readonly qpsThreshold: number;
  readonly replicaLagSeconds: number;
  readonly cpuPercent?: number;
}

const custom = <Id>(
  name: string,
  node: NodeName,
  stat: string,
  extra: Record<string, string> = {},
): MetricRef<Id> => ({
  namespace: METRIC_NAMESPACE,
  name,
  dimensions: { Node: node, ...extra },
  stat,
});
const ec2 = <Id>(name: string, instanceId: Id, stat: string): MetricRef<Id> => ({
  namespace: "AWS/EC2",
  name,
  dimensions: { InstanceId: instanceId },
  stat,
});

/** Every alarm of the stack. */
export function alarmSpecs<Id = string>(i: AlarmInputs<Id>): AlarmSpec<Id>[] {
  const nodes = NODE_NAMES;
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
      threshold: 2,
      evaluationPeriods: 2,
      missing: "breaching",
    },
    {
      key: `${REPLICA_NODE}-replica-not-running`,
      description: `The replica (${REPLICA_NODE}) is not replicating`,
      metrics: [custom<Id>("ReplicaRunning", REPLICA_NODE, "Minimum")],
      comparison: "LessThanThreshold",
      threshold: 1,
      evaluationPeriods: 3,
      missing: "breaching",
    },
    {
      key: `${REPLICA_NODE}-replica-lag`,
      description: `The replica (${REPLICA_NODE}) is more than ${i.replicaLagSeconds} s behind the primary`,
      metrics: [custom<Id>("ReplicaLagSeconds", REPLICA_NODE, "Maximum")],
      comparison: "GreaterThanThreshold",
      threshold: i.replicaLagSeconds,
      evaluationPeriods: 3,
      missing: "notBreaching",
    },
    ...APP_NODES_BY_NAME.map((node): AlarmSpec<Id> => ({
      key: `${node}-database-down`,
      description: `The database on ${node} does not answer`,
      metrics: [custom<Id>("DatabaseUp", node, "Minimum")],
      comparison: "LessThanThreshold",
      threshold: 1,
      evaluationPeriods: 2,
      missing: "breaching",
    })),
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
          NODE_ROLES[node] === "loadbalancer"
            ? "The LB's host failed its status check: EC2 recovers the instance (same address and volume)"
            : `${node} failed its status check`,
        metrics: [
          ec2(
            NODE_ROLES[node] === "loadbalancer" ? "StatusCheckFailed_System" : "StatusCheckFailed",
            i.instanceIds[node],
            "Maximum",
          ),
        ],
        comparison: "GreaterThanOrEqualToThreshold",
        threshold: 1,
        evaluationPeriods: 2,
        missing: "notBreaching",
        // The LB is cattle with its address on its own interface: recovery keeps both.
        recover: NODE_ROLES[node] === "loadbalancer",
      },
      {
        key: `${node}-no-metrics`,
        description: `${node}'s CloudWatch agent sends nothing (not installed, stopped, or the node is gone)`,
        metrics: [
          {
            namespace: "CWAgent",
            name: "mem_used_percent",
            dimensions: { InstanceId: i.instanceIds[node] },
            stat: "SampleCount",
          },
        ],
        comparison: "LessThanThreshold",
        threshold: 1,
        evaluationPeriods: 5,
        missing: "breaching",
      },
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
      ...(NODE_ROLES[node] === "loadbalancer"
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
  readonly instanceIds: Readonly<Record<NodeName, string>>;
  readonly alarmArns: readonly string[];
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

/**
 * The dashboard's body (CloudWatch's JSON format): QPS, errors, latency, health, replication,
 * resources, bundles, requests refused by the per-client limit.
 */
export function dashboardBody(d: DashboardInputs): string {
  const nodes = NODE_NAMES;
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
      APP_NODES_BY_NAME.map((server) => [
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
    graph(
      `Replication (${REPLICA_NODE})`,
      [
        [
          METRIC_NAMESPACE,
          "ReplicaLagSeconds",
          "Node",
          REPLICA_NODE,
          { stat: "Maximum", label: "lag (s)" },
        ],
        [
          METRIC_NAMESPACE,
          "ReplicaRunning",
          "Node",
          REPLICA_NODE,
          { stat: "Minimum", label: "running (1 = yes)" },
        ],
      ],
      0,
      12,
      d.region,
    ),
    graph("CPU (%)", perNode("AWS/EC2", "CPUUtilization", "Average"), 12, 12, d.region),
    graph("Memory used (%)", perNode("CWAgent", "mem_used_percent", "Average"), 0, 18, d.region),
    graph(
      "Root disk used (%)",
      perNode("CWAgent", "disk_used_percent", "Maximum", ["path", "/", "fstype", "ext4"]),
      12,
      18,
      d.region,
    ),
    graph(
      "Bundles applied and refused, app releases failed (count per minute)",
      nodes.flatMap((node) =>
        Object.entries(BUNDLE_OUTCOMES)
          .filter(([metric]) => metric !== "ReleaseFailed" || NODE_ROLES[node] !== "loadbalancer")
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
    {
      type: "alarm",
      x: 0,
      y: 30,
      width: 24,
      height: 6,
      properties: { title: "Alarms", alarms: d.alarmArns },
    },
  ];
  return JSON.stringify({ widgets });
}
