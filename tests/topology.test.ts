// Topology: addresses derived from the VPC range, and the flow table the firewalls are built from.
import {
  Flow,
  admitsOut,
  FLOWS,
  appNodeNames,
  galeraFlows,
  admits,
  groupsOf,
  stackFlows,
  SG_DESCRIPTION,
  buildTopology,
  flowsInto,
  flowsOutOf,
  securityGroupRules,
  DEFAULT_APP_NODE_COUNT,
  nodeNames,
} from "../model/topology";
import { ipv4ToInt, subnetOf } from "../model/ipv4";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);
/** The default stack's Galera flows (s1, s2 and the arbitrator). */
const GALERA_FLOWS = galeraFlows(appNodeNames(DEFAULT_APP_NODE_COUNT));
/** The flows a default stack gains with `vpcEndpoints`: its table's tail. */
const ENDPOINT_FLOWS = stackFlows({ vpcEndpoints: true }).slice(FLOWS.length);
/** `flows` without any flow equal to one of `others` (tables are rebuilt, so by value). */
const without = (flows: readonly Flow[], others: readonly Flow[]) =>
  flows.filter((f) => !others.some((o) => JSON.stringify(o) === JSON.stringify(f)));

describe("addresses", () => {
  // [vpc, public, private-a, private-b, lb, s1, s2], computed by hand.
  test.each([
    [
      "10.40.0.0/16",
      "10.40.0.0/18",
      "10.40.128.0/18",
      "10.40.192.0/18",
      "10.40.0.10",
      "10.40.192.10",
      "10.40.128.10",
    ],
    [
      "172.16.0.0/20",
      "172.16.0.0/22",
      "172.16.8.0/22",
      "172.16.12.0/22",
      "172.16.0.10",
      "172.16.12.10",
      "172.16.8.10",
    ],
    [
      "192.168.10.0/24",
      "192.168.10.0/26",
      "192.168.10.128/26",
      "192.168.10.192/26",
      "192.168.10.10",
      "192.168.10.202",
      "192.168.10.138",
    ],
  ])("%s", (vpc, pub, privA, privB, lb, s1, s2) => {
    const t = buildTopology(vpc);
    expect([
      t.subnets.public.cidr,
      t.subnets["private-a"].cidr,
      t.subnets["private-b"].cidr,
    ]).toEqual([pub, privA, privB]);
    expect([t.nodes.lb.privateIp, t.nodes.s1.privateIp, t.nodes.s2.privateIp]).toEqual([
      lb,
      s1,
      s2,
    ]);
  });

  test("subnetOf splits a range into equal parts", () => {
    expect([0, 1, 2, 3].map((i) => subnetOf("10.0.0.0/16", 2, i))).toEqual([
      "10.0.0.0/18",
      "10.0.64.0/18",
      "10.0.128.0/18",
      "10.0.192.0/18",
    ]);
  });

  test("each node sits inside its subnet, clear of AWS's reserved addresses", () => {
    const t = buildTopology("192.168.10.0/24");
    for (const node of Object.values(t.nodes)) {
      const [base, prefix] = t.subnets[node.subnet].cidr.split("/");
      const offset = ipv4ToInt(node.privateIp) - ipv4ToInt(base);
      expect(offset).toBeGreaterThanOrEqual(4);
      expect(offset).toBeLessThan(2 ** (32 - Number(prefix)) - 1);
    }
  });

  test("roles, placement and names", () => {
    const t = buildTopology("10.40.0.0/16");
    expect(Object.values(t.nodes).map((n) => [n.name, n.role, n.subnet, n.internalName])).toEqual([
      ["lb", "loadbalancer", "public", "lb.webstack.internal"],
      ["s1", "replica", "private-b", "s1.webstack.internal"],
      ["s2", "primary", "private-a", "s2.webstack.internal"],
    ]);
    expect(t.subnets.public.public).toBe(true);
    expect(t.subnets["private-a"].public || t.subnets["private-b"].public).toBe(false);
    // s1 and s2 in different availability zones.
    expect(t.subnets[t.nodes.s1.subnet].azIndex).not.toBe(t.subnets[t.nodes.s2.subnet].azIndex);
  });
});

describe("flows", () => {
  const inbound = (node: "lb" | "s1" | "s2") =>
    flowsInto(node)
      .map((f) => `${f.from}:${f.port}`)
      .sort();

  test("the seed's rules and nothing else inbound", () => {
    expect(inbound("lb")).toEqual(["internet:443", "internet:80"]);
    expect(inbound("s1")).toEqual(["lb:443", "s2:3306"]);
    expect(inbound("s2")).toEqual(["lb:443", "s1:3306"]);
  });

  test("each node's egress is explicit", () => {
    expect(
      flowsOutOf("lb")
        .map((f) => `${f.to}:${f.port}`)
        .sort(),
    ).toEqual(["internet:443", "s1:443", "s2:443"]);
    expect(
      flowsOutOf("s1")
        .map((f) => `${f.to}:${f.port}`)
        .sort(),
    ).toEqual(["internet:443", "s2:3306"]);
    expect(
      flowsOutOf("s2")
        .map((f) => `${f.to}:${f.port}`)
        .sort(),
    ).toEqual(["internet:443", "s1:3306"]);
  });

  test("no node has egress on port 80: APT and every download go over HTTPS", () => {
    for (const node of NODES) expect(flowsOutOf(node).filter((f) => f.port === 80)).toEqual([]);
    expect(FLOWS.filter((f) => f.port === 80)).toEqual([
      expect.objectContaining({ from: "internet", to: "lb" }),
    ]);
  });

  test("no SSH or RDP anywhere: access is through SSM Session Manager", () => {
    expect(FLOWS.filter((f) => f.port === 22 || f.port === 3389)).toEqual([]);
  });

  test("the internet reaches only the load balancer", () => {
    expect(FLOWS.filter((f) => f.from === "internet").map((f) => f.to)).toEqual(["lb", "lb"]);
  });

  test("every reason is a valid AWS rule description", () => {
    for (const flow of [...FLOWS, ...ENDPOINT_FLOWS]) expect(flow.why).toMatch(SG_DESCRIPTION);
  });
});

describe("the VPC endpoints in the flow table (vpcEndpoints)", () => {
  const on = stackFlows({ vpcEndpoints: true });

  test("off: the flow table is FLOWS, three groups; on: each node reaches the endpoints on 443, four groups", () => {
    expect(stackFlows({ vpcEndpoints: false })).toEqual(FLOWS);
    expect(buildTopology("10.40.0.0/16").flows).toEqual(FLOWS);
    expect(groupsOf(FLOWS)).toEqual(["lb", "s1", "s2"]);
    expect(on.slice(0, FLOWS.length)).toEqual(FLOWS);
    expect(without(on, FLOWS).map((f) => `${f.from}→${f.to}:${f.port}`)).toEqual([
      "lb→endpoints:443",
      "s1→endpoints:443",
      "s2→endpoints:443",
    ]);
    expect(buildTopology("10.40.0.0/16", { vpcEndpoints: true }).flows).toEqual(on);
    expect(groupsOf(on)).toEqual(["lb", "s1", "s2", "endpoints"]);
  });

  test("the endpoints' group: ingress on 443 from each node's group, no egress; each node's egress to it", () => {
    const rules = securityGroupRules(on).filter(
      (r) => r.group === "endpoints" || r.peer === "endpoints",
    );
    expect(rules.map((r) => `${r.key} ${r.direction} ${r.port}`)).toEqual([
      "endpoints-in-tcp443-from-lb ingress 443",
      "lb-out-tcp443-to-endpoints egress 443",
      "endpoints-in-tcp443-from-s1 ingress 443",
      "s1-out-tcp443-to-endpoints egress 443",
      "endpoints-in-tcp443-from-s2 ingress 443",
      "s2-out-tcp443-to-endpoints egress 443",
    ]);
  });

  test("admitted: a node to the endpoints on 443 only; the endpoints open nothing, the internet cannot reach them", () => {
    for (const node of NODES) {
      expect(admits(node, "endpoints", 443, on)).toBe(true);
      expect(admits(node, "endpoints", 80, on)).toBe(false);
      expect(admits("endpoints", node, 443, on)).toBe(false);
    }
    expect(admits("internet", "endpoints", 443, on)).toBe(false);
  });
});

describe("the RDS instance in the flow table (database rds)", () => {
  const rds = stackFlows({ vpcEndpoints: false, database: "rds" });
  const shown = (flows: readonly Flow[]) => flows.map((f) => `${f.from}→${f.to}:${f.port}`);

  test("s1 and s2 reach the instance on 3306, nothing else changes from the replication flows but their database flows going", () => {
    expect(shown(without(rds, FLOWS))).toEqual(["s1→rds:3306", "s2→rds:3306"]);
    expect(shown(without(FLOWS, rds))).toEqual(["s1→s2:3306", "s2→s1:3306"]);
    expect(groupsOf(rds)).toEqual(["lb", "s1", "s2", "rds"]);
    expect(buildTopology("10.40.0.0/16", { vpcEndpoints: false, database: "rds" }).flows).toEqual(
      rds,
    );
    const both = stackFlows({ vpcEndpoints: true, database: "rds" });
    expect(groupsOf(both)).toEqual(["lb", "s1", "s2", "endpoints", "rds"]);
    for (const flow of rds) expect(flow.why).toMatch(SG_DESCRIPTION);
  });

  test("no database or Galera port between s1 and s2, none on the LB", () => {
    for (const port of [3306, 4444, 4567, 4568]) {
      expect(admits("s1", "s2", port, rds)).toBe(false);
      expect(admits("s2", "s1", port, rds)).toBe(false);
      expect(admits("lb", "rds", port, rds)).toBe(false);
      for (const app of ["s1", "s2"] as const) expect(admits("lb", app, port, rds)).toBe(false);
    }
  });

  test("the instance's group: ingress on 3306 from s1's and s2's groups only, no egress", () => {
    const rules = securityGroupRules(rds).filter((r) => r.group === "rds" || r.peer === "rds");
    expect(rules.map((r) => `${r.key} ${r.direction} ${r.port}`)).toEqual([
      "rds-in-tcp3306-from-s1 ingress 3306",
      "s1-out-tcp3306-to-rds egress 3306",
      "rds-in-tcp3306-from-s2 ingress 3306",
      "s2-out-tcp3306-to-rds egress 3306",
    ]);
    expect(admits("s1", "rds", 3306, rds) && admits("s2", "rds", 3306, rds)).toBe(true);
    expect(admits("internet", "rds", 3306, rds)).toBe(false);
    expect(admits("rds", "s1", 3306, rds)).toBe(false);
  });

  test("the app nodes' descriptions say they hold no database", () => {
    const t = buildTopology("10.40.0.0/16", { vpcEndpoints: false, database: "rds" });
    expect([t.nodes.s1.description, t.nodes.s2.description]).toEqual([
      "Nginx and Gunicorn; the database is the RDS instance",
      "Nginx and Gunicorn; the database is the RDS instance",
    ]);
    expect(buildTopology("10.40.0.0/16").nodes.s1.description).toBe(
      "Nginx, Gunicorn and the database replica",
    );
  });
});

describe("securityGroupRules", () => {
  const rules = securityGroupRules();

  test("a node-to-node flow is an ingress on the destination and an egress on the source", () => {
    const replication = rules.filter(
      (r) =>
        r.port === 3306 &&
        (r.group === "s2" ? r.peer === "s1" : r.group === "s1" && r.peer === "s2"),
    );
    expect(replication.map((r) => `${r.group} ${r.direction} ${r.peer}`).sort()).toEqual([
      "s1 egress s2",
      "s1 ingress s2",
      "s2 egress s1",
      "s2 ingress s1",
    ]);
  });

  test("an internet flow is one rule on the node's side", () => {
    expect(
      rules
        .filter((r) => r.peer === "internet")
        .map((r) => `${r.group} ${r.direction} ${r.port}`)
        .sort(),
    ).toEqual([
      "lb egress 443",
      "lb ingress 443",
      "lb ingress 80",
      "s1 egress 443",
      "s2 egress 443",
    ]);
  });

  test("keys are unique and stable", () => {
    expect(new Set(rules.map((r) => r.key)).size).toBe(rules.length);
    expect(rules.map((r) => r.key)).toContain("s2-in-tcp3306-from-s1");
    expect(rules.map((r) => r.key)).toContain("lb-out-tcp443-to-s1");
  });
});

test("admitsOut: a node reaches the internet on the ports its egress flows name, and no other", () => {
  const flows: Flow[] = [
    { from: "s1", to: "internet", port: 443, protocol: "tcp", why: "HTTPS out" },
    { from: "lb", to: "s1", port: 443, protocol: "tcp", why: "to s1" },
  ];
  expect(admitsOut("s1", 443, flows)).toBe(true);
  expect(admitsOut("s1", 80, flows)).toBe(false);
  // A flow to another node is not a way to the internet.
  expect(admitsOut("lb", 443, flows)).toBe(false);
});

// The replication stack's table as it was before `database` existed, written out by hand: the
// galera mode must leave it exactly so (order included: the rules' keys and the README follow it).
const REPLICATION_STACK_FLOWS: Flow[] = [
  { from: "internet", to: "lb", port: 443, protocol: "tcp", why: "Users: HTTPS to HAProxy" },
  {
    from: "internet",
    to: "lb",
    port: 80,
    protocol: "tcp",
    why: "Users: HTTP, answered with a 301 to HTTPS, and ACME HTTP-01 challenges",
  },
  {
    from: "lb",
    to: "s1",
    port: 443,
    protocol: "tcp",
    why: "HAProxy to Nginx on s1: TLS verified against the private CA",
  },
  {
    from: "lb",
    to: "s2",
    port: 443,
    protocol: "tcp",
    why: "HAProxy to Nginx on s2: TLS verified against the private CA",
  },
  {
    from: "s1",
    to: "s2",
    port: 3306,
    protocol: "tcp",
    why: "Replica s1 replicates from primary s2 (TLS); the app on s1 writes to the primary",
  },
  {
    from: "s2",
    to: "s1",
    port: 3306,
    protocol: "tcp",
    why: "The app on s2 reads from the replica s1",
  },
  {
    from: "lb",
    to: "internet",
    port: 443,
    protocol: "tcp",
    why: "HTTPS to AWS APIs (SSM, S3, CloudWatch), the Debian archive, the ACME server and agent packages",
  },
  ...(["s1", "s2"] as const).map((node): Flow => ({
    from: node,
    to: "internet",
    port: 443,
    protocol: "tcp",
    why: "HTTPS through NAT to AWS APIs (SSM, S3, CloudWatch), the Debian archive and agent packages",
  })),
];

describe("the database modes in the flow table (database)", () => {
  const galera = stackFlows({ vpcEndpoints: false, database: "galera" });
  const row = (f: Flow) => `${f.from}→${f.to}:${f.port} ${f.why}`;

  test("replication (the default): the flow table is exactly the one from before galera", () => {
    expect(FLOWS).toEqual(REPLICATION_STACK_FLOWS);
    expect(stackFlows({ vpcEndpoints: false, database: "replication" })).toEqual(FLOWS);
    expect(stackFlows({ vpcEndpoints: false })).toEqual(FLOWS);
    expect(
      buildTopology("10.40.0.0/16", { vpcEndpoints: false, database: "replication" }).flows,
    ).toEqual(FLOWS);
  });

  test("galera: the members' group, IST and SST ports both ways between s1 and s2, the group port both ways between the LB's arbitrator and each member", () => {
    expect(GALERA_FLOWS.map(row)).toEqual([
      "s1→s2:4567 Galera group traffic from s1 to s2 (TLS)",
      "s1→s2:4568 Galera IST: s1 sends s2 the writes s2 missed (TLS)",
      "s1→s2:4444 Galera SST: s1 sends s2 a full copy when it joins anew (mariadb-backup, TLS)",
      "s2→s1:4567 Galera group traffic from s2 to s1 (TLS)",
      "s2→s1:4568 Galera IST: s2 sends s1 the writes s1 missed (TLS)",
      "s2→s1:4444 Galera SST: s2 sends s1 a full copy when it joins anew (mariadb-backup, TLS)",
      "lb→s1:4567 Galera group traffic: the arbitrator (garbd) on the LB to s1 (TLS)",
      "s1→lb:4567 Galera group traffic: s1 to the arbitrator (garbd) on the LB (TLS)",
      "lb→s2:4567 Galera group traffic: the arbitrator (garbd) on the LB to s2 (TLS)",
      "s2→lb:4567 Galera group traffic: s2 to the arbitrator (garbd) on the LB (TLS)",
    ]);
    expect(GALERA_FLOWS.every((f) => f.protocol === "tcp")).toBe(true);
    for (const flow of GALERA_FLOWS) expect(flow.why).toMatch(SG_DESCRIPTION);
  });

  test("galera: the stack's table is the replication one with the database flows swapped, and nothing on 3306", () => {
    const replicationOnly = FLOWS.filter((f) => f.port === 3306);
    expect(galera).toEqual([
      ...FLOWS.slice(0, FLOWS.indexOf(replicationOnly[0])),
      ...GALERA_FLOWS,
      ...FLOWS.slice(FLOWS.indexOf(replicationOnly[1]) + 1),
    ]);
    expect(galera.filter((f) => f.port === 3306)).toEqual([]);
    expect(
      buildTopology("10.40.0.0/16", { vpcEndpoints: false, database: "galera" }).flows,
    ).toEqual(galera);
    expect(groupsOf(galera)).toEqual(["lb", "s1", "s2"]);
    const withEndpoints = stackFlows({ vpcEndpoints: true, database: "galera" });
    expect(withEndpoints).toEqual([...galera, ...ENDPOINT_FLOWS]);
  });

  test("galera: what each node admits and opens", () => {
    const inbound = (node: "lb" | "s1" | "s2") =>
      flowsInto(node, galera)
        .map((f) => `${f.from}:${f.port}`)
        .sort();
    const outbound = (node: "lb" | "s1" | "s2") =>
      flowsOutOf(node, galera)
        .map((f) => `${f.to}:${f.port}`)
        .sort();
    expect(inbound("lb")).toEqual(["internet:443", "internet:80", "s1:4567", "s2:4567"]);
    expect(inbound("s1")).toEqual(["lb:443", "lb:4567", "s2:4444", "s2:4567", "s2:4568"]);
    expect(inbound("s2")).toEqual(["lb:443", "lb:4567", "s1:4444", "s1:4567", "s1:4568"]);
    expect(outbound("lb")).toEqual(["internet:443", "s1:443", "s1:4567", "s2:443", "s2:4567"]);
    expect(outbound("s1")).toEqual(["internet:443", "lb:4567", "s2:4444", "s2:4567", "s2:4568"]);
    expect(outbound("s2")).toEqual(["internet:443", "lb:4567", "s1:4444", "s1:4567", "s1:4568"]);
  });

  test("galera: the internet reaches no Galera port; the arbitrator takes no state transfer; no node reaches a database port", () => {
    for (const port of [4567, 4568, 4444, 3306]) {
      for (const node of NODES) expect(admits("internet", node, port, galera)).toBe(false);
      for (const node of NODES) expect(admitsOut(node, port, galera)).toBe(false);
    }
    for (const port of [4568, 4444]) {
      expect(admits("lb", "s1", port, galera)).toBe(false);
      expect(admits("s1", "lb", port, galera)).toBe(false);
    }
    expect(admits("lb", "s1", 4567, galera)).toBe(true);
    expect(admits("s2", "lb", 4567, galera)).toBe(true);
    expect(admits("s1", "s2", 4444, galera)).toBe(true);
    expect(admits("s1", "s2", 3306, galera)).toBe(false);
  });

  test("galera: its security-group rules, by stable key", () => {
    const rules = securityGroupRules(galera).filter((r) => [4567, 4568, 4444].includes(r.port));
    expect(rules.map((r) => `${r.key} ${r.direction} ${r.peer}`)).toEqual([
      "s2-in-tcp4567-from-s1 ingress s1",
      "s1-out-tcp4567-to-s2 egress s2",
      "s2-in-tcp4568-from-s1 ingress s1",
      "s1-out-tcp4568-to-s2 egress s2",
      "s2-in-tcp4444-from-s1 ingress s1",
      "s1-out-tcp4444-to-s2 egress s2",
      "s1-in-tcp4567-from-s2 ingress s2",
      "s2-out-tcp4567-to-s1 egress s1",
      "s1-in-tcp4568-from-s2 ingress s2",
      "s2-out-tcp4568-to-s1 egress s1",
      "s1-in-tcp4444-from-s2 ingress s2",
      "s2-out-tcp4444-to-s1 egress s1",
      "s1-in-tcp4567-from-lb ingress lb",
      "lb-out-tcp4567-to-s1 egress s1",
      "lb-in-tcp4567-from-s1 ingress s1",
      "s1-out-tcp4567-to-lb egress lb",
      "s2-in-tcp4567-from-lb ingress lb",
      "lb-out-tcp4567-to-s2 egress s2",
      "lb-in-tcp4567-from-s2 ingress s2",
      "s2-out-tcp4567-to-lb egress lb",
    ]);
    expect(new Set(securityGroupRules(galera).map((r) => r.key)).size).toBe(
      securityGroupRules(galera).length,
    );
  });
});
