// appNodeCount (issue 21): s1…sN in the topology, and a 3- and 4-node stack under mocks per database mode.
import { HAPROXY_CONFIG_PATH } from "../cloud-init/loadBalancer";
import { NODE_ENV_PATH } from "../cloud-init/appNode";
import { bundleStatusName } from "../model/naming";
import { upgradeTime } from "../cloud-init/patching";
import {
  AppNodeName,
  DatabaseMode,
  MAX_APP_NODE_COUNT,
  appNodeNames,
  buildTopology,
  galeraClusterSize,
  hasArbitrator,
  securityGroupRules,
  stackFlows,
} from "../model/topology";
import { Plan } from "../plan/plan";
import {
  DEFAULT_VPC_CIDR,
  T,
  bundleFile,
  bundleOf,
  envFileValues,
  grantsOf,
  ofType,
  one,
  planConfig,
  ruleRow,
} from "./harness";

const CONFIG = { domain: "www.example.com" };
const THREE = buildTopology(DEFAULT_VPC_CIDR, { vpcEndpoints: false, appNodeCount: 3 });
const FOUR = buildTopology(DEFAULT_VPC_CIDR, { vpcEndpoints: false, appNodeCount: 4 });
const ip = (node: AppNodeName | "lb", topology = THREE) => topology.nodes[node].privateIp;
const LATE_CONFIG = "/etc/webstack/db/61-webstack-late.cnf";
const DROP_IN = "/etc/systemd/system/garb.service.d/webstack.conf";

/** A node's env file as a map. */
const envOf = (plan: Plan, node: string) => envFileValues(bundleFile(plan, node, NODE_ENV_PATH));

const alarm = (plan: Plan, key: string) => one(plan, T.metricAlarm, `monitoring-${key}`).inputs;
const alarmKeys = (plan: Plan) =>
  ofType(plan, T.metricAlarm).map((a) => a.name.replace(/^monitoring-/, ""));
const dashboard = (plan: Plan) =>
  JSON.parse(String(one(plan, T.dashboard, "monitoring-dashboard").inputs.dashboardBody)) as {
    widgets: { properties: { title: string; metrics: unknown[]; annotations?: unknown } }[];
  };
const widget = (plan: Plan, title: string) =>
  dashboard(plan).widgets.find((w) => w.properties.title === title)?.properties;

describe("the topology of N app nodes", () => {
  test("s1…sN alternate between the private subnets, each at the next address of its subnet", () => {
    const t = buildTopology("10.40.0.0/16", { vpcEndpoints: false, appNodeCount: 5 });
    expect(
      t.appNodes.map((node) => {
        const n = t.nodes[node];
        return [n.name, n.role, n.subnet, n.privateIp, n.dbServerId];
      }),
    ).toEqual([
      ["s1", "replica", "private-b", "10.40.192.10", 1],
      ["s2", "primary", "private-a", "10.40.128.10", 2],
      ["s3", "replica", "private-b", "10.40.192.11", 3],
      ["s4", "replica", "private-a", "10.40.128.11", 4],
      ["s5", "replica", "private-b", "10.40.192.12", 5],
    ]);
    expect(t.nodeNames).toEqual(["lb", "s1", "s2", "s3", "s4", "s5"]);
  });

  test("the app nodes apply one at a time, s1 first and the primary last; the LB waits for none", () => {
    expect(THREE.nodes.s2.appliesAfter).toEqual(["s3"]);
    expect(THREE.nodes.s3.appliesAfter).toEqual(["s1"]);
    for (const node of ["lb", "s1"] as const) expect(THREE.nodes[node].appliesAfter).toEqual([]);
    const five = buildTopology("10.40.0.0/16", { vpcEndpoints: false, appNodeCount: 5 });
    expect(five.appNodes.map((node) => [node, five.nodes[node].appliesAfter])).toEqual([
      ["s1", []],
      ["s2", ["s5"]],
      ["s3", ["s1"]],
      ["s4", ["s3"]],
      ["s5", ["s4"]],
    ]);
    // Two app nodes: as before, s2 after s1.
    expect(buildTopology("10.40.0.0/16").nodes.s2.appliesAfter).toEqual(["s1"]);
  });

  test("the arbitrator only with galera and an even number of members", () => {
    expect([2, 3, 4, 5, 16].map((n) => hasArbitrator("galera", n))).toEqual([
      true,
      false,
      true,
      false,
      true,
    ]);
    expect([2, 3, 4].map(galeraClusterSize)).toEqual([3, 3, 5]);
    expect(hasArbitrator("replication", 2) || hasArbitrator("rds", 4)).toBe(false);
    const flows = (count: number) =>
      stackFlows({ vpcEndpoints: false, database: "galera", appNodeCount: count });
    expect(flows(3).filter((f) => f.from === "lb" && f.port === 4567)).toEqual([]);
    expect(
      flows(4)
        .filter((f) => f.from === "lb" && f.port === 4567)
        .map((f) => f.to),
    ).toEqual(appNodeNames(4));
  });

  test.each(["replication", "galera", "rds"] as DatabaseMode[])(
    "%s at MAX_APP_NODE_COUNT: no security group holds more than 60 rules in either direction",
    (database) => {
      const rules = securityGroupRules(
        stackFlows({ vpcEndpoints: true, database, appNodeCount: MAX_APP_NODE_COUNT }),
      );
      const counts = new Map<string, number>();
      for (const r of rules) {
        const key = `${r.group} ${r.direction}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      expect(Math.max(...counts.values())).toBeLessThanOrEqual(60);
      // Every node has its group: the LB, s1…s16 (and the endpoints', RDS's).
      expect(counts.has(`s${MAX_APP_NODE_COUNT} egress`)).toBe(true);
    },
  );

  test("the limit binds galera's members: three rules per other member, so 21 nodes would pass it", () => {
    const egress = (count: number) =>
      securityGroupRules(
        stackFlows({ vpcEndpoints: true, database: "galera", appNodeCount: count }),
      ).filter((r) => r.group === "s1" && r.direction === "egress").length;
    expect(egress(MAX_APP_NODE_COUNT)).toBeLessThanOrEqual(60);
    expect(egress(21)).toBeGreaterThan(60);
  });
});

describe("replication with 3 app nodes", () => {
  let plan: Plan;
  beforeAll(async () => {
    plan = await planConfig({ ...CONFIG, appNodeCount: "3" });
  }, 120_000);

  test("s3 is an instance in private-b at .11, in its own security group", () => {
    const s3 = one(plan, T.instance, "s3-instance").inputs;
    expect(s3.privateIp).toBe("10.40.192.11");
    expect(s3.subnetId).toBe(one(plan, T.instance, "s1-instance").inputs.subnetId);
    expect(s3.subnetId).not.toBe(one(plan, T.instance, "s2-instance").inputs.subnetId);
    expect(s3.vpcSecurityGroupIds).toEqual([one(plan, T.securityGroup, "firewalls-s3").id]);
    expect(Object.keys(plan.outputs.appNodes as object)).toEqual(["s2", "s1", "s3"]);
  });

  test("the rules are exactly the flow table's, s3's written out", () => {
    const rows = [...ofType(plan, T.ingressRule), ...ofType(plan, T.egressRule)].map((r) =>
      ruleRow(plan, r),
    );
    expect(rows.sort()).toEqual(
      securityGroupRules(THREE.flows)
        .map(
          (r) =>
            `${r.group} tcp ${r.port}-${r.port} ${r.peer === "internet" ? "0.0.0.0/0" : `sg:${r.peer}`}`,
        )
        .sort(),
    );
    expect(rows.filter((r) => r.startsWith("s3 ") || r.endsWith("sg:s3")).sort()).toEqual([
      "lb tcp 443-443 sg:s3",
      "s1 tcp 3306-3306 sg:s3",
      "s2 tcp 3306-3306 sg:s3",
      "s3 tcp 3306-3306 sg:s1",
      "s3 tcp 3306-3306 sg:s2",
      "s3 tcp 443-443 0.0.0.0/0",
      "s3 tcp 443-443 sg:lb",
    ]);
  });

  test("s3 replicates from s2 and its app writes there, reading its own copy; s2 has its users", () => {
    expect(bundleFile(plan, "s3", "/etc/webstack/db/replica.sql")).toContain(
      `MASTER_HOST = '${ip("s2")}'`,
    );
    expect(envOf(plan, "s3")).toMatchObject({
      DB_ROLE: "replica",
      APP_DB_PRIMARY: ip("s2"),
      APP_DB_REPLICA: "local",
    });
    // s2's app reads from s1, as with two nodes.
    expect(envOf(plan, "s2")).toMatchObject({ APP_DB_PRIMARY: "local", APP_DB_REPLICA: ip("s1") });
    const primarySql = bundleFile(plan, "s2", "/etc/webstack/db/primary.sql");
    for (const node of ["s1", "s2", "s3"] as const) {
      expect(primarySql).toContain(`CREATE USER IF NOT EXISTS 'replication'@'${ip(node)}'`);
      expect(primarySql).toContain(`GRANT SELECT, INSERT ON webstack.* TO 'app'@'${ip(node)}';`);
    }
    expect(primarySql).toContain("-- Replication from every app node,");
    expect(plan.outputs.appNodes).toMatchObject({ s3: { role: "replica", privateIp: ip("s3") } });
  });

  test("HAProxy balances over the three, and the backend alarm counts them", () => {
    const servers = bundleFile(plan, "lb", HAPROXY_CONFIG_PATH)
      .split("\n")
      .filter((line) => /^\s*server s\d+ /.test(line))
      .map((line) => line.trim().split(" ").slice(1, 3).join(" "));
    expect(servers).toEqual(["s1", "s2", "s3"].map((n) => `${n} ${ip(n as AppNodeName)}:443`));
    expect(alarm(plan, "lb-backend-down").threshold).toBe(3);
  });

  test("s3 applies after s1, s2 after s3; each role reads the status it waits for and no other", () => {
    expect(bundleOf(plan, "s3").after.map((a) => a.node)).toEqual(["s1"]);
    expect(bundleOf(plan, "s2").after.map((a) => a.node)).toEqual(["s3"]);
    expect(bundleOf(plan, "s1").after).toEqual([]);
    const statusesRead = (node: AppNodeName) => {
      const policy = one(plan, T.rolePolicy, `${node}-identity-bundles`).inputs.policy;
      const read = grantsOf(policy).filter((g) => g.actions.includes("ssm:GetParameter"));
      const resources = read.flatMap((g) => g.resources ?? []).join(" ");
      return (["s1", "s2", "s3"] as const).filter((other) =>
        resources.includes(bundleStatusName("test", other)),
      );
    };
    expect(statusesRead("s2")).toEqual(["s3"]);
    expect(statusesRead("s3")).toEqual(["s1"]);
  });

  test("s3 has the replica alarms and its line in the Replication graph; s1's keep their keys", () => {
    const keys = alarmKeys(plan);
    for (const node of ["s1", "s3"])
      expect(keys).toEqual(
        expect.arrayContaining([`${node}-replica-not-running`, `${node}-replica-lag`]),
      );
    expect(keys.filter((k) => k.startsWith("s2-replica"))).toEqual([]);
    for (const what of [
      "cpu-high",
      "status-check",
      "data-disk-high",
      "database-down",
      "release-failed",
    ])
      expect(keys).toContain(`s3-${what}`);
    expect(alarm(plan, "s3-replica-lag").dimensions).toEqual({ Node: "s3" });
    const graph = widget(plan, "Replication (s1, s3)");
    const lines = (node: AppNodeName) => [
      [
        "Webstack",
        "ReplicaLagSeconds",
        "Node",
        node,
        { stat: "Maximum", label: `${node} lag (s)` },
      ],
      [
        "Webstack",
        "ReplicaRunning",
        "Node",
        node,
        { stat: "Minimum", label: `${node} running (1 = yes)` },
      ],
    ];
    expect(graph?.metrics).toEqual([...lines("s1"), ...lines("s3")]);
    expect(widget(plan, "Backend health (1 = up)")?.metrics).toHaveLength(3);
  });

  test("s3 has its own log groups, metric filters, certificate, volume and parameters", () => {
    const names = plan.resources.map((r) => r.name);
    for (const name of [
      "logs-s3-nginx-access",
      "logs-s3-db-error",
      "logs-s3-requests",
      "pki-s3-cert",
      "s3-data",
      "bundles-s3-pointer",
      "s3-identity-role",
    ])
      expect(names).toContain(name);
  });
});

describe("galera with 3 and 4 app nodes", () => {
  let three: Plan;
  let four: Plan;
  beforeAll(async () => {
    three = await planConfig({ ...CONFIG, database: "galera", appNodeCount: "3" });
    four = await planConfig({ ...CONFIG, database: "galera", appNodeCount: "4" });
  }, 180_000);

  test("3: no arbitrator anywhere on the LB: no package, unit, certificate, parameter, rule or process", () => {
    expect(bundleOf(three, "lb").packages).not.toContain("galera-arbitrator-4");
    expect(bundleOf(three, "lb").files.map((f) => f.path)).not.toContain(DROP_IN);
    expect(bundleFile(three, "lb", "/etc/webstack/secrets.json")).not.toContain("galera");
    const names = three.resources.map((r) => r.name);
    expect(names.filter((n) => n.startsWith("pki-lb-") || n.startsWith("arbitrator-tls"))).toEqual(
      [],
    );
    const lbRules = [...ofType(three, T.ingressRule), ...ofType(three, T.egressRule)]
      .map((r) => ruleRow(three, r))
      .filter((row) => row.includes("4567") && (row.startsWith("lb ") || row.endsWith("sg:lb")));
    expect(lbRules).toEqual([]);
    const agent = JSON.parse(bundleFile(three, "lb", "/etc/webstack/cloudwatch-agent.json"));
    expect(agent.metrics.metrics_collected.procstat.map((p: { exe: string }) => p.exe)).toEqual([
      "haproxy",
    ]);
  });

  test("3: each member finds the other two, and only them", () => {
    for (const node of ["s1", "s2", "s3"] as const) {
      const others = (["s1", "s2", "s3"] as const).filter((n) => n !== node).map((n) => ip(n));
      expect(bundleFile(three, node, LATE_CONFIG)).toContain(
        `wsrep_cluster_address = gcomm://${others.join(",")}\n`,
      );
      expect(envOf(three, node)).toMatchObject({
        DB_ROLE: "member",
        GALERA_MEMBER_IPS: others.join(","),
        GALERA_FOUNDER: node === "s2" ? "yes" : "no",
      });
    }
  });

  test("3: the cluster-size alarms and graph expect three votes", () => {
    for (const node of ["s1", "s2", "s3"]) {
      expect(alarm(three, `${node}-galera-cluster-degraded`)).toMatchObject({
        threshold: 3,
        alarmDescription: `${node} sees fewer than 3 members in its Galera cluster (s1, s2 and s3)`,
      });
    }
    expect(widget(three, "Galera cluster (s1, s2, s3)")?.annotations).toEqual({
      horizontal: [{ label: "alarm: fewer members", value: 3 }],
    });
  });

  test("4: the arbitrator on the LB, towards every member, and five votes expected", () => {
    expect(bundleOf(four, "lb").packages).toContain("galera-arbitrator-4");
    const members = ["s2", "s1", "s3", "s4"].map((n) => `${ip(n as AppNodeName, FOUR)}:4567`);
    expect(bundleFile(four, "lb", DROP_IN)).toContain(
      `ExecStart=/usr/bin/garbd --address gcomm://${members.join(",")} --group webstack-test `,
    );
    expect(four.resources.map((r) => r.name)).toEqual(
      expect.arrayContaining(["pki-lb-cert", "arbitrator-tls-cert", "arbitrator-tls-key"]),
    );
    expect(bundleFile(four, "s1", LATE_CONFIG)).toContain(
      `wsrep_cluster_address = gcomm://${["s2", "s3", "s4", "lb"].map((n) => ip(n as AppNodeName, FOUR)).join(",")}\n`,
    );
    expect(envOf(four, "s1").GALERA_MEMBER_IPS).toBe(
      ["s2", "s3", "s4"].map((n) => ip(n as AppNodeName, FOUR)).join(","),
    );
    expect(alarm(four, "s4-galera-cluster-degraded")).toMatchObject({
      threshold: 5,
      alarmDescription:
        "s4 sees fewer than 5 members in its Galera cluster (s1, s2, s3, s4 and the LB's arbitrator)",
    });
    const agent = JSON.parse(bundleFile(four, "lb", "/etc/webstack/cloudwatch-agent.json"));
    expect(agent.metrics.metrics_collected.procstat.map((p: { exe: string }) => p.exe)).toEqual([
      "haproxy",
      "garbd",
    ]);
  });
});

describe("rds with 3 app nodes", () => {
  let plan: Plan;
  beforeAll(async () => {
    plan = await planConfig({ ...CONFIG, database: "rds", appNodeCount: "3" });
  }, 120_000);

  test("no node holds a database: no volume, no server package, no database log group, each a client", () => {
    expect(ofType(plan, T.volume)).toEqual([]);
    expect(ofType(plan, T.logGroup).filter((g) => String(g.inputs.name).includes("/db-"))).toEqual(
      [],
    );
    for (const node of ["s1", "s2", "s3"]) {
      expect(bundleOf(plan, node).packages).not.toContain("mariadb-server");
      expect(envOf(plan, node)).toMatchObject({
        DB_ROLE: "client",
        DB_SCHEMA: node === "s2" ? "yes" : "no",
      });
    }
    expect(alarmKeys(plan).filter((k) => /replica|galera|database-down|backup/.test(k))).toEqual(
      [],
    );
  });

  test("the instance's group admits the three, and says so", () => {
    expect(
      ofType(plan, T.ingressRule)
        .map((r) => ruleRow(plan, r))
        .filter((row) => row.startsWith("rds "))
        .sort(),
    ).toEqual(["rds tcp 3306-3306 sg:s1", "rds tcp 3306-3306 sg:s2", "rds tcp 3306-3306 sg:s3"]);
    expect(one(plan, T.securityGroup, "firewalls-rds").inputs.description).toBe(
      "webstack rds: the Amazon RDS for MariaDB instance, reached on 3306 from s1, s2 and s3 only",
    );
    expect(bundleFile(plan, "s2", "/etc/webstack/db/rds.sql")).toContain(
      `CREATE USER IF NOT EXISTS 'app'@'${ip("s3")}'`,
    );
  });
});

test("each app node upgrades in an hour of its own: s1 02:00, s2 03:00, then each replica after s1 an hour earlier", () => {
  const t = buildTopology("10.40.0.0/16", { vpcEndpoints: false, appNodeCount: 16 });
  const times = Object.fromEntries(t.nodeNames.map((node) => [node, upgradeTime(t.nodes[node])]));
  expect(times).toMatchObject({ lb: "04:00", s1: "02:00", s2: "03:00", s3: "01:00", s4: "00:00" });
  expect(times.s5).toBe("23:00");
  expect(times.s16).toBe("12:00");
  // No two nodes share an hour (the timer adds at most 15 minutes).
  expect(new Set(Object.values(times)).size).toBe(t.nodeNames.length);
});

test("after s1's promotion the other replicas can reach it: s3…sN to s1 on 3306; two nodes unchanged", () => {
  const toS1 = (count: number) =>
    stackFlows({ vpcEndpoints: false, appNodeCount: count })
      .filter((f) => f.to === "s1" && f.port === 3306)
      .map((f) => f.from);
  expect(toS1(2)).toEqual(["s2"]);
  expect(toS1(4)).toEqual(["s2", "s3", "s4"]);
});
