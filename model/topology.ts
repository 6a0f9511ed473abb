// The stack's shape as data: subnets, the three nodes at fixed addresses, and every allowed flow.
import { hostOf, subnetOf } from "./ipv4";
import { PROJECT } from "./naming";

export type NodeName = "lb" | "s1" | "s2";
/** The nodes that run Nginx, Gunicorn and a database. */
export type AppNodeName = Exclude<NodeName, "lb">;
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

export const NODE_NAMES: readonly NodeName[] = ["lb", "s1", "s2"];
/** The nodes that run Nginx, Gunicorn and a database; s2 is built first (the primary). */
export const APP_NODE_NAMES: readonly AppNodeName[] = ["s2", "s1"];
export const SUBNET_NAMES: readonly SubnetName[] = ["public", "private-a", "private-b"];

/** Each node's role: the one place it is decided (s2 is the single writer). */
export const NODE_ROLES = {
  lb: "loadbalancer",
  s1: "replica",
  s2: "primary",
} as const satisfies Record<NodeName, NodeRole>;

function appNodeWithRole(role: DbRole): AppNodeName {
  const found = APP_NODE_NAMES.filter((node) => NODE_ROLES[node] === role);
  if (found.length !== 1) throw new Error(`topology: ${found.length} app nodes are the ${role}`);
  return found[0];
}

/** The app nodes in name order (s1, s2): flows, metric filters, alarms and graphs list them so. */
export const APP_NODES_BY_NAME: readonly AppNodeName[] = [...APP_NODE_NAMES].sort();

/** The load balancer, the database's single writer, and its read-only replica. */
export const LB_NODE = NODE_NAMES.find((node) => NODE_ROLES[node] === "loadbalancer")!;
export const PRIMARY_NODE = appNodeWithRole("primary");
export const REPLICA_NODE = appNodeWithRole("replica");

/**
 * The nodes whose bundle a node waits for before it applies its own (same release, applied): the
 * primary follows the replica, so a bad change stops on the node whose loss costs reads only.
 */
export function appliesAfter(node: NodeName): readonly NodeName[] {
  return node === PRIMARY_NODE ? [REPLICA_NODE] : [];
}

/** Internal names live under the reserved `.internal` TLD; every stack has its own VPC. */
export const INTERNAL_DOMAIN = `${PROJECT}.internal`;

/** Host offset of each node inside its subnet (AWS reserves .0 to .3 and the last address). */
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
 * binlog copied to the replica; `galera`, every app node a writable member of one MariaDB Galera
 * cluster, with an arbitrator (garbd) on the LB for the quorum; `rds`, no database on the app
 * nodes: both use one Amazon RDS for MariaDB instance (Multi-AZ).
 */
export type DatabaseMode = "replication" | "galera" | "rds";

/** Whether s1 and s2 run a database server of their own (with its volume, backups and monitoring). */
export function appNodesHoldData(database: DatabaseMode): boolean {
  return database !== "rds";
}

/** The stack's choices the flow table depends on. */
export interface TopologyOptions {
  /** The VPC's endpoints exist (config `vpcEndpoints`): the nodes reach them on 443. */
  readonly vpcEndpoints: boolean;
  /** How the databases hold the data. @default "replication" */
  readonly database?: DatabaseMode;
}

export interface Topology {
  readonly vpcCidr: string;
  readonly subnets: Readonly<Record<SubnetName, SubnetSpec>>;
  readonly nodes: { readonly lb: NodeSpec } & Readonly<Record<AppNodeName, AppNodeSpec>>;
  readonly flows: readonly Flow[];
}

/** The flows into the stack, whatever its database: users to the LB, the LB to the app nodes. */
const INBOUND_FLOWS: readonly Flow[] = [
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
  ...APP_NODES_BY_NAME.map((app): Flow => ({
    from: "lb",
    to: app,
    port: PORTS.https,
    protocol: "tcp",
    why: `HAProxy to Nginx on ${app}: TLS verified against the private CA`,
  })),
];

/** Each node's way out, whatever the database. */
const EGRESS_FLOWS: readonly Flow[] = [
  // 443 only: APT fetches Debian's archive over HTTPS too (model/aptSources.ts), so no node
  // has port 80 outbound; the LB's port 80 is inbound only (redirects, ACME HTTP-01).
  ...NODE_NAMES.map((node): Flow => ({
    from: node,
    to: "internet",
    port: PORTS.https,
    protocol: "tcp",
    why:
      NODE_ROLES[node] === "loadbalancer"
        ? "HTTPS to AWS APIs (SSM, S3, CloudWatch), the Debian archive, the ACME server and agent packages"
        : "HTTPS through NAT to AWS APIs (SSM, S3, CloudWatch), the Debian archive and agent packages",
  })),
];

/** `replication`: the replica's copy of the primary's binlog, and the app's reads and writes across. */
export const REPLICATION_FLOWS: readonly Flow[] = [
  {
    from: REPLICA_NODE,
    to: PRIMARY_NODE,
    port: PORTS.mysql,
    protocol: "tcp",
    why: `Replica ${REPLICA_NODE} replicates from primary ${PRIMARY_NODE} (TLS); the app on ${REPLICA_NODE} writes to the primary`,
  },
  {
    from: PRIMARY_NODE,
    to: REPLICA_NODE,
    port: PORTS.mysql,
    protocol: "tcp",
    why: `The app on ${PRIMARY_NODE} reads from the replica ${REPLICA_NODE}`,
  },
];

/**
 * `galera`: the members' group traffic and state transfers between s1 and s2 (either end may open
 * a connection), and the arbitrator on the LB in the group. The app talks to its own member only.
 */
export const GALERA_FLOWS: readonly Flow[] = [
  ...APP_NODES_BY_NAME.flatMap((app): Flow[] => {
    const peer = APP_NODES_BY_NAME.find((other) => other !== app)!;
    return [
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
    ];
  }),
  ...APP_NODES_BY_NAME.flatMap((app): Flow[] => [
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

/**
 * `rds`: each app node to the RDS instance, over TLS (the instance requires it); nothing between s1
 * and s2, no database port on either.
 */
export const RDS_FLOWS: readonly Flow[] = APP_NODES_BY_NAME.map((app): Flow => ({
  from: app,
  to: RDS,
  port: PORTS.mysql,
  protocol: "tcp",
  why:
    app === PRIMARY_NODE
      ? `The app on ${app}, its schema and its release command to the RDS instance (TLS verified against the RDS CA)`
      : `The app on ${app} to the RDS instance (TLS verified against the RDS CA)`,
}));

/** Every flow a replication stack allows (its default); anything not listed is denied, in both directions. */
export const FLOWS: readonly Flow[] = [...INBOUND_FLOWS, ...REPLICATION_FLOWS, ...EGRESS_FLOWS];

/** Every flow a galera stack allows. */
export const GALERA_STACK_FLOWS: readonly Flow[] = [
  ...INBOUND_FLOWS,
  ...GALERA_FLOWS,
  ...EGRESS_FLOWS,
];

/** Every flow an rds stack allows. */
export const RDS_STACK_FLOWS: readonly Flow[] = [...INBOUND_FLOWS, ...RDS_FLOWS, ...EGRESS_FLOWS];

/** Each database mode's flows, before the endpoints'. */
const DATABASE_FLOWS: Readonly<Record<DatabaseMode, readonly Flow[]>> = {
  replication: FLOWS,
  galera: GALERA_STACK_FLOWS,
  rds: RDS_STACK_FLOWS,
};

/**
 * With `vpcEndpoints`: every node reaches the interface endpoints on 443 (their private DNS names
 * the AWS APIs' own hostnames), and the endpoints' group admits these flows and nothing else.
 */
export const ENDPOINT_FLOWS: readonly Flow[] = NODE_NAMES.map((node): Flow => ({
  from: node,
  to: ENDPOINTS,
  port: PORTS.https,
  protocol: "tcp",
  why: `HTTPS from ${node} to the VPC interface endpoints: SSM, Session Manager, KMS, CloudWatch Logs and metrics`,
}));

/**
 * With `rds` and `vpcEndpoints`: the same flows, s2's saying it reads the RDS instance's master
 * secret through Secrets Manager's endpoint (the one more an rds stack has).
 */
export const RDS_ENDPOINT_FLOWS: readonly Flow[] = ENDPOINT_FLOWS.map((flow) =>
  flow.from === PRIMARY_NODE
    ? { ...flow, why: `${flow.why}, Secrets Manager (the RDS master secret)` }
    : flow,
);

/** The flows of a stack: its database's (FLOWS, GALERA_STACK_FLOWS or RDS_STACK_FLOWS), and ENDPOINT_FLOWS (RDS_ENDPOINT_FLOWS) when it has the endpoints. */
export function stackFlows(options: TopologyOptions): readonly Flow[] {
  const database = options.database ?? "replication";
  const flows = DATABASE_FLOWS[database];
  if (!options.vpcEndpoints) return flows;
  return [...flows, ...(database === "rds" ? RDS_ENDPOINT_FLOWS : ENDPOINT_FLOWS)];
}

/** The security groups a flow table needs, nodes first: a group for each end that is not the internet. */
export function groupsOf(flows: readonly Flow[]): GroupName[] {
  const reached = (group: GroupName) => flows.some((f) => f.from === group || f.to === group);
  return [...NODE_NAMES, ...([ENDPOINTS, RDS] as const).filter(reached)];
}

/**
 * The VPC is cut in four equal subnets: 0 public (first AZ), 1 kept free for a second public
 * subnet, 2 private-a (first AZ), 3 private-b (second AZ). s1 and s2 sit in different AZs.
 */
export function buildTopology(
  vpcCidr: string,
  options: TopologyOptions = { vpcEndpoints: false },
): Topology {
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
  const node = (name: NodeName, sub: SubnetName, description: string): NodeSpec => ({
    name,
    role: NODE_ROLES[name],
    subnet: sub,
    privateIp: hostOf(subnets[sub].cidr, NODE_HOST_OFFSET),
    internalName: `${name}.${INTERNAL_DOMAIN}`,
    description,
  });
  const appNode = (
    name: AppNodeName,
    sub: SubnetName,
    dbServerId: number,
    description: string,
  ): AppNodeSpec => ({ ...node(name, sub, description), name, role: NODE_ROLES[name], dbServerId });
  // With rds the app nodes hold no database (their security groups' descriptions say so).
  const own = (database: string) =>
    options.database === "rds"
      ? "Nginx and Gunicorn; the database is the RDS instance"
      : `Nginx, Gunicorn and the database ${database}`;
  return Object.freeze({
    vpcCidr,
    subnets: Object.freeze(subnets),
    nodes: Object.freeze({
      lb: node("lb", "public", "HAProxy load balancer"),
      s1: appNode("s1", "private-b", 1, own("replica")),
      s2: appNode("s2", "private-a", 2, own("primary")),
    }),
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

/** A record with one entry per node, in NODE_NAMES order. */
export function mapNodes<T>(fn: (node: NodeName) => T): Record<NodeName, T> {
  return Object.fromEntries(NODE_NAMES.map((node) => [node, fn(node)])) as Record<NodeName, T>;
}
