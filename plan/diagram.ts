// A Mermaid picture of a planned stack, read from its resources: nodes, firewalls, flows, data path, monitoring.
import {
  ENDPOINTS,
  GroupName,
  LB_NODE,
  NodeName,
  NodeRole,
  Peer,
  RDS,
  REPLICA_NODE,
  byNodeOrder,
  isAppNodeName,
} from "../model/topology";
import { logGroupName } from "../model/naming";
import { Plan, PlannedResource } from "./plan";

const TYPE = {
  instance: "aws:ec2/instance:Instance",
  networkInterface: "aws:ec2/networkInterface:NetworkInterface",
  securityGroup: "aws:ec2/securityGroup:SecurityGroup",
  vpcEndpoint: "aws:ec2/vpcEndpoint:VpcEndpoint",
  ingressRule: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egressRule: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  logGroup: "aws:cloudwatch/logGroup:LogGroup",
  metricFilter: "aws:cloudwatch/logMetricFilter:LogMetricFilter",
  alarm: "aws:cloudwatch/metricAlarm:MetricAlarm",
  topic: "aws:sns/topic:Topic",
  dashboard: "aws:cloudwatch/dashboard:Dashboard",
  rdsInstance: "aws:rds/instance:Instance",
} as const;

/** The rule's peer `0.0.0.0/0`: any address outside the VPC. */
const ANYWHERE = "0.0.0.0/0";

/** What runs on a node of each role (the services the flows reach). */
const SERVICES: Readonly<Record<NodeRole, string>> = {
  loadbalancer: "HAProxy",
  primary: "Nginx → Gunicorn → app",
  replica: "Nginx → Gunicorn → app",
};

/** One instance, as the plan creates it. */
export interface PictureNode {
  readonly name: NodeName;
  /** The instance's `Role` tag. */
  readonly role: NodeRole;
  readonly privateIp: string;
  /** Name tag of its one security group. */
  readonly group: string;
}

/** Every port the security groups open from one end to another, in rule order. */
export interface PictureFlow {
  readonly from: Peer;
  readonly to: Peer;
  readonly ports: readonly number[];
}

/** The VPC's interface endpoints (`vpcEndpoints`), in their own security group. */
export interface PictureEndpoints {
  /** Name tag of their security group. */
  readonly group: string;
  /** The services they reach (the last part of each endpoint's service name), in plan order. */
  readonly services: readonly string[];
}

/** The Amazon RDS instance (`database: rds`), in its own security group: the app nodes' database. */
export interface PictureRds {
  /** Name tag of its security group. */
  readonly group: string;
  readonly identifier: string;
  /** Engine and version, as the plan asks RDS for them. */
  readonly engine: string;
  readonly multiAz: boolean;
}

export interface PictureMonitoring {
  /** Log groups per node (by the groups' Role tag), and the total the stack creates. */
  readonly logGroups: Readonly<Partial<Record<NodeName, number>>>;
  readonly logGroupsTotal: number;
  readonly metricFilters: number;
  /** Alarms that notify the topic. */
  readonly alarms: number;
  /** Name tag of the alarm topic. */
  readonly topic: string;
  readonly dashboard: string;
}

/** What the diagram shows, read from a plan. */
export interface StackPicture {
  readonly stack: string;
  /** In the model's node order. */
  readonly nodes: readonly PictureNode[];
  /** Absent when the stack has no interface endpoints. */
  readonly endpoints?: PictureEndpoints;
  /** Absent unless the database is RDS's (the app nodes then hold none). */
  readonly rds?: PictureRds;
  readonly flows: readonly PictureFlow[];
  readonly monitoring: PictureMonitoring;
}

export class DiagramError extends Error {}

const ofType = (plan: Plan, type: string) => plan.resources.filter((r) => r.type === type);
const tag = (r: PlannedResource, key: string) =>
  (r.inputs.tags as Record<string, string> | undefined)?.[key];

function only<T>(found: readonly T[], what: string): T {
  if (found.length !== 1) throw new DiagramError(`diagram: ${found.length} ${what}, expected one`);
  return found[0];
}

/** Reads the picture from the plan's instances, security groups, rules and monitoring. */
export function describeStack(plan: Plan): StackPicture {
  const groups = ofType(plan, TYPE.securityGroup);
  const groupById = new Map(groups.map((g) => [g.id, g]));
  const enis = new Map(ofType(plan, TYPE.networkInterface).map((e) => [e.id, e]));

  const nodes = ofType(plan, TYPE.instance).map((instance): PictureNode => {
    const name = instance.name.replace(/-instance$/, "");
    if (name !== LB_NODE && !isAppNodeName(name))
      throw new DiagramError(`diagram: unknown node ${instance.name}`);
    // The LB's address and group sit on its own network interface (it carries the Elastic IP).
    const eniId = (instance.inputs.primaryNetworkInterface as { networkInterfaceId?: string })
      ?.networkInterfaceId;
    const eni = eniId === undefined ? undefined : enis.get(eniId);
    const privateIp = String(
      instance.inputs.privateIp ?? (eni?.inputs.privateIps as string[] | undefined)?.[0],
    );
    const groupIds = (instance.inputs.vpcSecurityGroupIds ?? eni?.inputs.securityGroups) as
      string[] | undefined;
    const group = groupById.get(only(groupIds ?? [], `security groups on ${name}`));
    if (!group) throw new DiagramError(`diagram: ${name}'s security group is not in the plan`);
    return { name, role: tag(instance, "Role") as NodeRole, privateIp, group: tag(group, "Name")! };
  });
  nodes.sort((a, b) => byNodeOrder(a.name, b.name));

  const nodeOfGroup = new Map<string | undefined, GroupName>();
  for (const group of groups) {
    const inside = nodes.filter((n) => n.group === tag(group, "Name"));
    if (inside.length > 0) nodeOfGroup.set(group.id, only(inside, `nodes in ${group.name}`).name);
  }
  // The interface endpoints' group is the one their security groups name.
  const interfaces = ofType(plan, TYPE.vpcEndpoint).filter(
    (e) => e.inputs.vpcEndpointType === "Interface",
  );
  const endpointGroupIds = [
    ...new Set(
      interfaces.flatMap((e) => (e.inputs.securityGroupIds as string[] | undefined) ?? []),
    ),
  ];
  let endpoints: PictureEndpoints | undefined;
  if (interfaces.length > 0) {
    const group = groupById.get(only(endpointGroupIds, "security groups on the VPC endpoints"));
    if (!group)
      throw new DiagramError("diagram: the VPC endpoints' security group is not in the plan");
    if (nodeOfGroup.has(group.id))
      throw new DiagramError(`diagram: the VPC endpoints share ${group.name} with a node`);
    nodeOfGroup.set(group.id, ENDPOINTS);
    endpoints = {
      group: tag(group, "Name")!,
      services: interfaces.map((e) => String(e.inputs.serviceName).split(".").pop()!),
    };
  }
  // The RDS instance's group is the one it names (`database: rds`).
  const databases = ofType(plan, TYPE.rdsInstance);
  let rds: PictureRds | undefined;
  if (databases.length > 0) {
    const instance = only(databases, "RDS instances");
    const ids = (instance.inputs.vpcSecurityGroupIds as string[] | undefined) ?? [];
    const group = groupById.get(only(ids, "security groups on the RDS instance"));
    if (!group)
      throw new DiagramError("diagram: the RDS instance's security group is not in the plan");
    if (nodeOfGroup.has(group.id))
      throw new DiagramError(`diagram: the RDS instance shares ${group.name} with a node`);
    nodeOfGroup.set(group.id, RDS);
    rds = {
      group: tag(group, "Name")!,
      identifier: String(instance.inputs.identifier),
      engine: `${String(instance.inputs.engine)} ${String(instance.inputs.engineVersion)}`,
      multiAz: instance.inputs.multiAz === true,
    };
  }
  const nodeOf = (rule: PlannedResource, groupId: unknown): GroupName => {
    const node = nodeOfGroup.get(groupId as string);
    if (!node) throw new DiagramError(`diagram: ${rule.name} names a group no node is in`);
    return node;
  };
  const peerOf = (rule: PlannedResource): Peer =>
    rule.inputs.cidrIpv4 === ANYWHERE
      ? "internet"
      : nodeOf(rule, rule.inputs.referencedSecurityGroupId);
  const flows: { from: Peer; to: Peer; ports: number[] }[] = [];
  const addFlow = (from: Peer, to: Peer, port: number) => {
    const flow = flows.find((f) => f.from === from && f.to === to);
    if (!flow) flows.push({ from, to, ports: [port] });
    else if (!flow.ports.includes(port)) flow.ports.push(port);
  };
  // Each rule is one direction of a flow; a flow between two nodes appears as both rules.
  for (const rule of plan.resources) {
    if (rule.type !== TYPE.ingressRule && rule.type !== TYPE.egressRule) continue;
    const own = nodeOf(rule, rule.inputs.securityGroupId);
    const peer = peerOf(rule);
    const port = Number(rule.inputs.fromPort);
    if (rule.inputs.toPort !== rule.inputs.fromPort)
      throw new DiagramError(`diagram: ${rule.name} opens a port range`);
    if (rule.type === TYPE.ingressRule) addFlow(peer, own, port);
    else addFlow(own, peer, port);
  }

  const logGroups = ofType(plan, TYPE.logGroup);
  const topic = only(ofType(plan, TYPE.topic), "alarm topics");
  const topicArn = topic.outputs.arn;
  return {
    stack: plan.stack,
    nodes,
    ...(endpoints && { endpoints }),
    ...(rds && { rds }),
    flows,
    monitoring: {
      logGroups: Object.fromEntries(
        // By name (`/webstack/<stack>/<node>/<log>`): replicas share a role, not their groups.
        nodes.map((n) => [
          n.name,
          logGroups.filter((g) =>
            String(g.inputs.name).startsWith(`${logGroupName(plan.stack, n.name)}/`),
          ).length,
        ]),
      ),
      logGroupsTotal: logGroups.length,
      metricFilters: ofType(plan, TYPE.metricFilter).length,
      alarms: ofType(plan, TYPE.alarm).filter((a) =>
        (a.inputs.alarmActions as string[] | undefined)?.includes(topicArn as string),
      ).length,
      topic: tag(topic, "Name")!,
      dashboard: String(only(ofType(plan, TYPE.dashboard), "dashboards").inputs.dashboardName),
    },
  };
}

/** A Mermaid label: double-quoted, with the quote itself as an entity. */
const quoted = (text: string) => `"${text.replace(/"/g, "#quot;")}"`;
const ports = (list: readonly number[]) => `tcp ${list.join(", ")}`;

/**
 * The picture as a Mermaid flowchart. Solid arrows are the security groups' flows (between the
 * groups, labelled with their TCP ports), thick ones the data path, dotted ones monitoring.
 */
export function renderMermaid(picture: StackPicture): string {
  const { nodes, endpoints, rds, flows, monitoring: mon } = picture;
  const byRole = (role: NodeRole) => nodes.filter((n) => n.role === role);
  const lb = only(byRole("loadbalancer"), "load balancers");
  const primary = only(byRole("primary"), "primaries");
  const replicas = byRole("replica");
  // The replica the primary's app reads from; every other replica's app reads its own copy.
  const replica = only(
    replicas.filter((n) => n.name === REPLICA_NODE),
    `replicas named ${REPLICA_NODE}`,
  );
  const apps = nodes.filter((n) => n.role !== "loadbalancer");
  const id = (end: Peer, side: "in" | "out") =>
    end === "internet" ? `internet_${side}` : `sg_${end}`;

  const lines = [
    "---",
    `title: ${quoted(`webstack ${picture.stack}: npm run plan -- --stack ${picture.stack} --diagram`)}`,
    "---",
    "flowchart LR",
    "  %% Generated from the offline plan; solid: security-group flows, thick: data path, dotted: monitoring.",
    `  internet_in((${quoted("internet")}))`,
    `  internet_out((${quoted("internet (egress)")}))`,
  ];
  for (const node of nodes) {
    lines.push(`  subgraph sg_${node.name}[${quoted(`security group ${node.group}`)}]`);
    lines.push(
      `    ${node.name}[${quoted(`${node.name} · ${node.role}<br/>${node.privateIp}<br/>${SERVICES[node.role]}`)}]`,
    );
    if (node.role !== "loadbalancer" && !rds) {
      const what = node.role === "primary" ? "writes" : "read-only";
      lines.push(`    db_${node.name}[(${quoted(`database<br/>${node.role} (${what})`)})]`);
    }
    lines.push("  end");
  }
  if (endpoints) {
    lines.push(
      `  subgraph sg_${ENDPOINTS}[${quoted(`security group ${endpoints.group}`)}]`,
      `    ${ENDPOINTS}[${quoted(`VPC interface endpoints<br/>${endpoints.services.join(", ")}`)}]`,
      "  end",
    );
  }
  if (rds) {
    const standby = rds.multiAz ? ", Multi-AZ" : "";
    lines.push(
      `  subgraph sg_${RDS}[${quoted(`security group ${rds.group}`)}]`,
      `    ${RDS}[(${quoted(`Amazon RDS ${rds.identifier}<br/>${rds.engine}${standby}`)})]`,
      "  end",
    );
  }
  lines.push(
    `  subgraph cloudwatch[${quoted("CloudWatch")}]`,
    `    cw_logs[${quoted(`${mon.logGroupsTotal} log groups<br/>${mon.metricFilters} metric filters → metrics`)}]`,
    `    cw_alarms[${quoted(`${mon.alarms} alarms → SNS ${mon.topic}`)}]`,
    `    cw_dashboard[${quoted(`dashboard ${mon.dashboard}`)}]`,
    "  end",
    "  %% Security groups: every allowed flow, nothing else is open.",
  );
  for (const flow of flows) {
    lines.push(`  ${id(flow.from, "in")} -->|${quoted(ports(flow.ports))}| ${id(flow.to, "out")}`);
  }
  lines.push(
    rds
      ? "  %% Data path: round-robin over the backends; both read and write the RDS instance."
      : "  %% Data path: round-robin over the backends; writes to the primary, reads from the replica.",
  );
  for (const flow of flows.filter((f) => f.from === lb.name && apps.some((a) => a.name === f.to))) {
    lines.push(`  ${lb.name} ==>|${quoted("HTTPS")}| ${flow.to}`);
  }
  for (const app of apps) {
    if (rds) {
      lines.push(`  ${app.name} ==>|${quoted("reads, writes (TLS)")}| ${RDS}`);
      continue;
    }
    lines.push(`  ${app.name} ==>|${quoted("writes")}| db_${primary.name}`);
    const readsFrom = app.role === "replica" ? app : replica;
    lines.push(`  ${app.name} ==>|${quoted("reads")}| db_${readsFrom.name}`);
  }
  if (!rds) {
    for (const copy of replicas)
      lines.push(`  db_${primary.name} ==>|${quoted("replication")}| db_${copy.name}`);
  }
  lines.push("  %% Monitoring: each node's CloudWatch agent ships its logs and metrics.");
  for (const node of nodes) {
    const count = mon.logGroups[node.name] ?? 0;
    lines.push(`  ${node.name} -.->|${quoted(`agent: ${count} log groups, metrics`)}| cw_logs`);
  }
  lines.push("  cw_logs -.-> cw_alarms", "  cw_logs -.-> cw_dashboard");
  return lines.join("\n") + "\n";
}

/** The plan as a Mermaid flowchart (what `npm run plan -- --diagram` prints). */
export function renderDiagram(plan: Plan): string {
  return renderMermaid(describeStack(plan));
}
