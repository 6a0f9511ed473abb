// The stack's shape as data: subnets, the LB and the app nodes s1…sN at fixed addresses, and every allowed flow.
import { hostOf, subnetOf } from "./ipv4";
import { PROJECT } from "./naming";

/** An app node: s1, s2, … sN (config `appNodeCount`). */
export type AppNodeName = `s${number}`;
export type NodeName = "lb" | AppNodeName;
export type NodeRole = "loadbalancer" | "replica" | "primary";
/** What an app node's database is: the one writer, or a read-only copy of it. */
export type DbRole = Exclude<NodeRole, "loadbalancer">;
export type SubnetName = "public" | "private-a" | "private-b";
/**
 * The VPC's interface endpoints (config `vpcEndpoints`): a security group of their own and no
 * instance; flows end there, none starts there.
 */
export const ENDPOINTS = "endpoints";
/**
 * The Amazon RDS instance (config `database` rds): like the endpoints, a security group of its own
 * and no instance of the stack's; flows end there, none starts there.
 */
export const RDS = "rds";
/** Every security group the stack makes: one per node, the endpoints' and RDS's when they exist. */
export type GroupName = NodeName | typeof ENDPOINTS | typeof RDS;
/** Anything a flow can start or end at: a security group, or any address outside the VPC. */
export type Peer = GroupName | "internet";

export const SUBNET_NAMES: readonly SubnetName[] = ["public", "private-a", "private-b"];

/** App nodes when `appNodeCount` is unset: s1 and s2, one per private subnet (AZ). */
export const DEFAULT_APP_NODE_COUNT = 2;
/**
 * The most app nodes a stack may have: with `database` galera each member's group holds 3 rules
 * per other member in each direction, and AWS allows 60 rules per direction in a security group by
 * default (a test checks every group of the largest stack stays under it).
 */
export const MAX_APP_NODE_COUNT = 16;

/** The load balancer, the database's single writer, and the replica the writer's app reads from. */
export const LB_NODE = "lb" satisfies NodeName;
export const PRIMARY_NODE = "s2" satisfies AppNodeName;
/**
 * The replica the primary's app reads from, that takes the physical backups and that a person
 * promotes when the primary is lost: s1, in the other AZ. s3…sN are replicas too (their apps read
 * from their own copy).
 */
export const REPLICA_NODE = "s1" satisfies AppNodeName;

/** s1…sN, in name order: flows, metric filters, alarms and graphs list them so. */
export function appNodeNames(count: number): AppNodeName[] {
  return Array.from({ length: count }, (_, i): AppNodeName => `s${i + 1}`);
}

/** Every node: the LB first, then the app nodes in name order. */
export function nodeNames(count: number): NodeName[] {
  return [LB_NODE, ...appNodeNames(count)];
}

/** The app nodes in the order the program builds them: the primary first, then s1, s3, … */
export function appNodeBuildOrder(count: number): AppNodeName[] {
  return [PRIMARY_NODE, ...appNodeNames(count).filter((node) => node !== PRIMARY_NODE)];
}

/** The number in an app node's name (s3 → 3): its database server id, its place in the subnets. */
export function appNodeNumber(node: AppNodeName): number {
  return Number(node.slice(1));
}

/** Each node's role, decided here alone: the LB, s2 the single writer, every other app node a replica. */
export function nodeRole(node: NodeName): NodeRole {
  if (node === LB_NODE) return "loadbalancer";
  return node === PRIMARY_NODE ? "primary" : "replica";
}

/** Whether `name` is one of a stack's nodes. */
export function isNodeName(name: string, count: number): name is NodeName {
  return (nodeNames(count) as string[]).includes(name);
}

/** Whether `name` is an app node's (s1, s2, …), whatever the stack's count. */
export function isAppNodeName(name: string): name is AppNodeName {
  return /^s[1-9]\d*$/.test(name);
}

/** The order nodes are listed in: the LB first, then the app nodes by number (s2 before s10). */
export function byNodeOrder(a: NodeName, b: NodeName): number {
  const rank = (node: NodeName) => (node === LB_NODE ? 0 : appNodeNumber(node));
  return rank(a) - rank(b);
}

/** Nodes named in a sentence: "s1 and s2", "s1, s2 and s3". */
export function nodesInWords(nodes: readonly string[]): string {
  return nodes.length < 2 ? nodes.join("") : `${nodes.slice(0, -1).join(", ")} and ${nodes.at(-1)}`;
}

/**
 * The nodes whose bundle a node waits for before it applies its own (same release, applied): the
 * app nodes one at a time, s1 first, then s3, s4, … and the primary last, so a bad change stops on
 * a node whose loss costs reads only, and no two app nodes restart for it at once (with galera and
 * three members, two restarting together would leave the third without a majority).
 */
export function appliesAfter(node: NodeName, count: number): readonly NodeName[] {
  if (node === LB_NODE) return [];
  const order: AppNodeName[] = [...appNodeBuildOrder(count).slice(1), PRIMARY_NODE];
  const at = order.indexOf(node);
  return at > 0 ? [order[at - 1]] : [];
}

/** Internal names live under the reserved `.internal` TLD; every stack has its own VPC. */
export const INTERNAL_DOMAIN = `${PROJECT}.internal`;

/**
 * Host offset of the first node inside its subnet (AWS reserves .0 to .3 and the last address);
 * later app nodes of the same subnet take the next addresses (s3 .11 beside s1 .10).
 */
const NODE_HOST_OFFSET = 10;

export const PORTS = {
  http: 80,
  https: 443,
  mysql: 3306,
  /** Galera's group communication (members and the arbitrator), over TLS. */
  galera: 4567,
  /** Galera's incremental state transfer (IST): a member catching up from a donor. */
  galeraIst: 4568,
  /** Galera's full state transfer (SST, mariadb-backup over socat with TLS): a member rebuilt from a donor. */
  galeraSst: 4444,
} as const;

/** Ports the nodes' own services answer on loopback only: never in a flow, never reachable. */
export const LOOPBACK_PORTS = {
  /** HAProxy's stats page and Prometheus endpoint (/metrics), on the LB. */
  haproxyStats: 8404,
  /** certbot's standalone server for ACME HTTP-01, behind HAProxy's ACL, on the LB. */
  certbot: 8888,
  /** Nginx's stub_status (the QPS source), on each app node. */
  nginxStatus: 8080,
} as const;

export interface SubnetSpec {
  readonly name: SubnetName;
  readonly cidr: string;
  /** Index into the region's available zones. */
  readonly azIndex: number;
  /** Routed to the internet gateway (otherwise through NAT). */
  readonly public: boolean;
}

export interface NodeSpec {
  readonly name: NodeName;
  readonly role: NodeRole;
  readonly subnet: SubnetName;
  /** Fixed private address: certificates, HAProxy, MySQL users and the lab all use it. */
  readonly privateIp: string;
  readonly internalName: string;
  readonly description: string;
  /** The nodes whose bundle this node waits for before it applies its own (`appliesAfter`). */
  readonly appliesAfter: readonly NodeName[];
}

/** An app node: Nginx, Gunicorn and a database server. */
export interface AppNodeSpec extends NodeSpec {
  readonly name: AppNodeName;
  readonly role: DbRole;
  /** The database's server id: distinct per server (also its GTID domain on MariaDB). */
  readonly dbServerId: number;
}

export interface Flow {
  readonly from: Peer;
  readonly to: Peer;
  readonly port: number;
  readonly protocol: "tcp";
  /** Why the flow exists; becomes the security-group rule description (AWS's character set). */
  readonly why: string;
}

/**
 * How the app nodes' databases hold the data (config `database`): `replication`, the primary's
 * binlog copied to the replicas; `galera`, every app node a writable member of one MariaDB Galera
 * cluster, with an arbitrator (garbd) on the LB when the members are even in number; `rds`, no
 * database on the app nodes: all use one Amazon RDS for MariaDB instance (Multi-AZ).
 */
export type DatabaseMode = "replication" | "galera" | "rds";

/** Whether the app nodes run a database server of their own (with its volume, backups and monitoring). */
export function appNodesHoldData(database: DatabaseMode): boolean {
  return database !== "rds";
}

/** The stack's choices the flow table depends on. */
export interface TopologyOptions {
  /** The VPC's endpoints exist (config `vpcEndpoints`): the nodes reach them on 443. */
  readonly vpcEndpoints: boolean;
  /** How the databases hold the data. @default "replication" */
  readonly database?: DatabaseMode;
  /** How many app nodes (config `appNodeCount`). @default DEFAULT_APP_NODE_COUNT */
  readonly appNodeCount?: number;
}

/**
 * Whether a galera stack runs an arbitrator (garbd) on the LB: with an even number of members a
 * lost half would leave no majority; garbd's vote makes the count odd. An odd count needs none
 * (an arbitrator would make it even).
 */
export function hasArbitrator(database: DatabaseMode, appNodeCount: number): boolean {
  return database === "galera" && appNodeCount % 2 === 0;
}

/** The votes in a galera stack's cluster: its members, and the arbitrator when there is one. */
export function galeraClusterSize(appNodeCount: number): number {
  return appNodeCount + (hasArbitrator("galera", appNodeCount) ? 1 : 0);
}

export interface Topology {
  readonly vpcCidr: string;
  readonly subnets: Readonly<Record<SubnetName, SubnetSpec>>;
  readonly nodes: { readonly lb: NodeSpec } & Readonly<Record<AppNodeName, AppNodeSpec>>;
  /** The LB, then s1…sN. */
  readonly nodeNames: readonly NodeName[];
  /** s1…sN, in name order. */
  readonly appNodes: readonly AppNodeName[];
  readonly flows: readonly Flow[];
}

/** The flows into the stack, whatever its database: users to the LB, the LB to the app nodes. */
function inboundFlows(apps: readonly AppNodeName[]): Flow[] {
  return [
    {
      from: "internet",
      to: "lb",
      port: PORTS.https,
      protocol: "tcp",
      why: "Users: HTTPS to HAProxy",
    },
    {
      from: "internet",
      to: "lb",
      port: PORTS.http,
      protocol: "tcp",
      why: "Users: HTTP, answered with a 301 to HTTPS, and ACME HTTP-01 challenges",
    },
    ...apps.map((app): Flow => ({
      from: "lb",
      to: app,
      port: PORTS.https,
      protocol: "tcp",
      why: `HAProxy to Nginx on ${app}: TLS verified against the private CA`,
    })),
  ];
}

/** Each node's way out, whatever the database. */
function egressFlows(nodes: readonly NodeName[]): Flow[] {
  // 443 only: APT fetches Debian's archive over HTTPS too (model/aptSources.ts), so no node
  // has port 80 outbound; the LB's port 80 is inbound only (redirects, ACME HTTP-01).
  return nodes.map((node): Flow => ({
    from: node,
    to: "internet",
    port: PORTS.https,
    protocol: "tcp",
    why:
      nodeRole(node) === "loadbalancer"
        ? "HTTPS to AWS APIs (SSM, S3, CloudWatch), the Debian archive, the ACME server and agent packages"
        : "HTTPS through NAT to AWS APIs (SSM, S3, CloudWatch), the Debian archive and agent packages",
  }));
}

/**
 * `replication`: each replica's copy of the primary's binlog (and its app's writes, which go to the
 * primary), the primary's app reading from REPLICA_NODE, and the other replicas' way to
 * REPLICA_NODE should it be promoted.
 */
export function replicationFlows(apps: readonly AppNodeName[]): Flow[] {
  return [
    ...apps
      .filter((app) => app !== PRIMARY_NODE)
      .map((replica): Flow => ({
        from: replica,
        to: PRIMARY_NODE,
        port: PORTS.mysql,
        protocol: "tcp",
        why: `Replica ${replica} replicates from primary ${PRIMARY_NODE} (TLS); the app on ${replica} writes to the primary`,
      })),
    {
      from: PRIMARY_NODE,
      to: REPLICA_NODE,
      port: PORTS.mysql,
      protocol: "tcp",
      why: `The app on ${PRIMARY_NODE} reads from the replica ${REPLICA_NODE}`,
    },
    // The other replicas reach s1 too: when a person promotes it (README, Runbooks), they are
    // re-pointed at it, as replicas and for their app's writes.
    ...apps
      .filter((app) => app !== PRIMARY_NODE && app !== REPLICA_NODE)
      .map((replica): Flow => ({
        from: replica,
        to: REPLICA_NODE,
        port: PORTS.mysql,
        protocol: "tcp",
        why: `Replica ${replica} to ${REPLICA_NODE}, once ${REPLICA_NODE} is promoted in the primary's place (TLS)`,
      })),
  ];
}

/**
 * `galera`: the members' group traffic and state transfers between every two members (either end
 * may open a connection), and the arbitrator on the LB in the group when there is one. The app
 * talks to its own member only.
 */
export function galeraFlows(apps: readonly AppNodeName[]): Flow[] {
  const arbitrator = hasArbitrator("galera", apps.length);
  return [
    ...apps.flatMap((app): Flow[] =>
      apps
        .filter((peer) => peer !== app)
        .flatMap((peer): Flow[] => [
          {
            from: app,
            to: peer,
            port: PORTS.galera,
            protocol: "tcp",
            why: `Galera group traffic from ${app} to ${peer} (TLS)`,
          },
          {
            from: app,
            to: peer,
            port: PORTS.galeraIst,
            protocol: "tcp",
            why: `Galera IST: ${app} sends ${peer} the writes ${peer} missed (TLS)`,
          },
          {
            from: app,
            to: peer,
            port: PORTS.galeraSst,
            protocol: "tcp",
            why: `Galera SST: ${app} sends ${peer} a full copy when it joins anew (mariadb-backup, TLS)`,
          },
        ]),
    ),
    ...(arbitrator ? apps : []).flatMap((app): Flow[] => [
      {
        from: "lb",
        to: app,
        port: PORTS.galera,
        protocol: "tcp",
        why: `Galera group traffic: the arbitrator (garbd) on the LB to ${app} (TLS)`,
      },
      {
        from: app,
        to: "lb",
        port: PORTS.galera,
        protocol: "tcp",
        why: `Galera group traffic: ${app} to the arbitrator (garbd) on the LB (TLS)`,
      },
    ]),
  ];
}

/**
 * `rds`: each app node to the RDS instance, over TLS (the instance requires it); nothing between
 * app nodes, no database port on any.
 */
export function rdsFlows(apps: readonly AppNodeName[]): Flow[] {
  return apps.map((app): Flow => ({
    from: app,
    to: RDS,
    port: PORTS.mysql,
    protocol: "tcp",
    why:
      app === PRIMARY_NODE
        ? `The app on ${app}, its schema and its release command to the RDS instance (TLS verified against the RDS CA)`
        : `The app on ${app} to the RDS instance (TLS verified against the RDS CA)`,
  }));
}

const DATABASE_FLOWS: Readonly<Record<DatabaseMode, (apps: readonly AppNodeName[]) => Flow[]>> = {
  replication: replicationFlows,
  galera: galeraFlows,
  rds: rdsFlows,
};

/**
 * With `vpcEndpoints`: every node reaches the interface endpoints on 443 (their private DNS names
 * the AWS APIs' own hostnames), and the endpoints' group admits these flows and nothing else.
 */
function endpointFlows(nodes: readonly NodeName[], database: DatabaseMode): Flow[] {
  return nodes.map((node): Flow => {
    const why = `HTTPS from ${node} to the VPC interface endpoints: SSM, Session Manager, KMS, CloudWatch Logs and metrics`;
    return {
      from: node,
      to: ENDPOINTS,
      port: PORTS.https,
      protocol: "tcp",
      // With rds, s2 reads the instance's master secret through Secrets Manager's endpoint too.
      why:
        database === "rds" && node === PRIMARY_NODE
          ? `${why}, Secrets Manager (the RDS master secret)`
          : why,
    };
  });
}

/**
 * Every flow a stack allows; anything not listed is denied, in both directions: users in, its
 * database's flows, each node's way out, and the endpoints' when it has them.
 */
export function stackFlows(options: TopologyOptions): readonly Flow[] {
  const count = options.appNodeCount ?? DEFAULT_APP_NODE_COUNT;
  const apps = appNodeNames(count);
  const nodes = nodeNames(count);
  return [
    ...inboundFlows(apps),
    ...DATABASE_FLOWS[options.database ?? "replication"](apps),
    ...egressFlows(nodes),
    ...(options.vpcEndpoints ? endpointFlows(nodes, options.database ?? "replication") : []),
  ];
}

/** The flows of the default stack (replication, two app nodes, no endpoints): tests' and docs' reference. */
export const FLOWS: readonly Flow[] = stackFlows({ vpcEndpoints: false });

/** The nodes a flow table joins, the LB first, then the app nodes by number. */
function nodesOf(flows: readonly Flow[]): NodeName[] {
  const ends = new Set<string>(flows.flatMap((f) => [f.from, f.to]));
  return [LB_NODE, ...[...ends].filter(isAppNodeName).sort(byNodeOrder)];
}

/** The security groups a flow table needs, nodes first: a group for each end that is not the internet. */
export function groupsOf(flows: readonly Flow[]): GroupName[] {
  const reached = (group: GroupName) => flows.some((f) => f.from === group || f.to === group);
  return [...nodesOf(flows), ...([ENDPOINTS, RDS] as const).filter(reached)];
}

/**
 * The VPC is cut in four equal subnets: 0 public (first AZ), 1 kept free for a second public
 * subnet, 2 private-a (first AZ), 3 private-b (second AZ). The app nodes alternate between the
 * private subnets, s1 (and s3, s5, …) in private-b, s2 (and s4, …) in private-a, so consecutive
 * nodes sit in different AZs.
 */
export function buildTopology(
  vpcCidr: string,
  options: TopologyOptions = { vpcEndpoints: false },
): Topology {
  const count = options.appNodeCount ?? DEFAULT_APP_NODE_COUNT;
  const subnet = (
    name: SubnetName,
    index: number,
    azIndex: number,
    isPublic: boolean,
  ): SubnetSpec => ({
    name,
    cidr: subnetOf(vpcCidr, 2, index),
    azIndex,
    public: isPublic,
  });
  const subnets = {
    public: subnet("public", 0, 0, true),
    "private-a": subnet("private-a", 2, 0, false),
    "private-b": subnet("private-b", 3, 1, false),
  };
  const node = (
    name: NodeName,
    sub: SubnetName,
    offset: number,
    description: string,
  ): NodeSpec => ({
    name,
    role: nodeRole(name),
    subnet: sub,
    privateIp: hostOf(subnets[sub].cidr, NODE_HOST_OFFSET + offset),
    internalName: `${name}.${INTERNAL_DOMAIN}`,
    description,
    appliesAfter: appliesAfter(name, count),
  });
  // With rds the app nodes hold no database (their security groups' descriptions say so).
  const own = (role: DbRole) =>
    options.database === "rds"
      ? "Nginx and Gunicorn; the database is the RDS instance"
      : `Nginx, Gunicorn and the database ${role}`;
  const appNode = (name: AppNodeName): AppNodeSpec => {
    const n = appNodeNumber(name);
    const role = nodeRole(name) as DbRole;
    const spec = node(
      name,
      n % 2 === 1 ? "private-b" : "private-a",
      Math.floor((n - 1) / 2),
      own(role),
    );
    return { ...spec, name, role, dbServerId: n };
  };
  const apps = appNodeNames(count);
  return Object.freeze({
    vpcCidr,
    subnets: Object.freeze(subnets),
    nodes: Object.freeze({
      lb: node(LB_NODE, "public", 0, "HAProxy load balancer"),
      ...Object.fromEntries(apps.map((app) => [app, appNode(app)])),
    }) as Topology["nodes"],
    nodeNames: Object.freeze(nodeNames(count)),
    appNodes: Object.freeze(apps),
    flows: stackFlows(options),
  });
}

export function flowsInto(node: GroupName, flows: readonly Flow[] = FLOWS): Flow[] {
  return flows.filter((flow) => flow.to === node);
}

export function flowsOutOf(node: GroupName, flows: readonly Flow[] = FLOWS): Flow[] {
  return flows.filter((flow) => flow.from === node);
}

/**
 * Whether the security groups let `from` open a TCP connection to `to` on `port`: the source's
 * egress and the destination's ingress must both allow it, and a rule for the internet
 * (0.0.0.0/0) matches any address, the other nodes' included — as in AWS.
 */
export function admits(
  from: Peer,
  to: GroupName,
  port: number,
  flows: readonly Flow[] = FLOWS,
): boolean {
  const ingress = flowsInto(to, flows).some(
    (f) => f.port === port && (f.from === from || f.from === "internet"),
  );
  const egress =
    from === "internet" ||
    admitsOut(from, port, flows) ||
    flowsOutOf(from, flows).some((f) => f.port === port && f.to === to);
  return ingress && egress;
}

/** Whether a group's rules let it open a TCP connection to the internet on `port`. */
export function admitsOut(from: GroupName, port: number, flows: readonly Flow[] = FLOWS): boolean {
  return flowsOutOf(from, flows).some((f) => f.port === port && f.to === "internet");
}

/** One security-group rule: a flow seen from one group (a node-to-node flow gives two). */
export interface SecurityGroupRule {
  /** Stable resource key: renaming it replaces the rule. */
  readonly key: string;
  readonly group: GroupName;
  readonly direction: "ingress" | "egress";
  /** The other end: a node's or the endpoints' group (referenced by id) or the internet (0.0.0.0/0). */
  readonly peer: Peer;
  readonly port: number;
  readonly protocol: "tcp";
  readonly description: string;
}

/** Flows → rules: ingress on the destination's group, egress on the source's group. */
export function securityGroupRules(flows: readonly Flow[] = FLOWS): SecurityGroupRule[] {
  return flows.flatMap((flow) => {
    const rules: SecurityGroupRule[] = [];
    const common = { port: flow.port, protocol: flow.protocol, description: flow.why };
    if (flow.to !== "internet") {
      const key = `${flow.to}-in-${flow.protocol}${flow.port}-from-${flow.from}`;
      rules.push({ key, group: flow.to, direction: "ingress", peer: flow.from, ...common });
    }
    if (flow.from !== "internet") {
      const key = `${flow.from}-out-${flow.protocol}${flow.port}-to-${flow.to}`;
      rules.push({ key, group: flow.from, direction: "egress", peer: flow.to, ...common });
    }
    return rules;
  });
}

/** Characters AWS accepts in security-group and rule descriptions. */
export const SG_DESCRIPTION = /^[a-zA-Z0-9 ._\-:/()#,@[\]+=&;{}!$*]{1,255}$/;

/** A record with one entry per node, in the order given (a topology's `nodeNames`). */
export function mapNodes<T>(
  nodes: readonly NodeName[],
  fn: (node: NodeName) => T,
): Record<NodeName, T> {
  return Object.fromEntries(nodes.map((node) => [node, fn(node)])) as Record<NodeName, T>;
}
