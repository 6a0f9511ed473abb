// The stack's diagram: read from the plan, tied to the flow table, and accepted by Mermaid's own parser.
import { spawnSync } from "child_process";
import * as path from "path";
import { DiagramError, describeStack, renderDiagram } from "../plan/diagram";
import { Plan, PlannedResource } from "../plan/plan";
import {
  FLOWS,
  Flow,
  stackFlows,
  DEFAULT_APP_NODE_COUNT,
  nodeNames,
  nodeRole,
} from "../model/topology";
import { DEV_TOPOLOGY, PROJECT_DIR, T, ofType, planStack } from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);
const PARSER = path.join(PROJECT_DIR, "tests", "artifacts", "mermaid-parse.mjs");

/** Mermaid's own parser on a diagram: its type, or its error. */
function mermaidParse(text: string) {
  const run = spawnSync(process.execPath, [PARSER], {
    cwd: PROJECT_DIR,
    input: text,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: run.status, type: run.stdout.trim(), error: run.stderr };
}

/** Each (from, to, port) a picture's flows open, as the flow table writes them. */
const flowKeys = (flows: readonly { from: string; to: string; ports: readonly number[] }[]) =>
  flows.flatMap((f) => f.ports.map((port) => `${f.from}→${f.to}:${port}`)).sort();
const tableKeys = (flows: readonly Flow[]) =>
  flows.map((f) => `${f.from}→${f.to}:${f.port}`).sort();

let dev: Plan;
beforeAll(async () => {
  dev = await planStack("dev");
});

describe("describeStack reads the plan", () => {
  test("one node per instance: role, fixed address and its own security group", () => {
    expect(describeStack(dev).nodes).toEqual(
      NODES.map((node) => ({
        name: node,
        role: nodeRole(node),
        privateIp: DEV_TOPOLOGY.nodes[node].privateIp,
        group: `webstack-dev-sg-${node}`,
      })),
    );
  });

  test("the security-group rules give back exactly the flow table", () => {
    expect(flowKeys(describeStack(dev).flows)).toEqual(tableKeys(FLOWS));
  });

  test("monitoring: each node's log groups, the metric filters, alarms, topic and dashboard", () => {
    expect(describeStack(dev).monitoring).toEqual({
      logGroups: { lb: 3, s1: 7, s2: 7 },
      logGroupsTotal: ofType(dev, T.logGroup).length,
      metricFilters: ofType(dev, T.logMetricFilter).length,
      alarms: ofType(dev, T.metricAlarm).length,
      topic: "webstack-dev-alarms",
      dashboard: "webstack-dev",
    });
  });

  test("an instance without its security group is an error, not a silent gap", () => {
    const broken = {
      ...dev,
      resources: dev.resources.filter(
        (r) => !(r.type === T.securityGroup && r.name === "firewalls-s1"),
      ),
    };
    expect(() => describeStack(broken)).toThrow(
      new DiagramError("diagram: s1's security group is not in the plan"),
    );
  });
});

describe("the Mermaid diagram", () => {
  test("draws the nodes inside their groups, the flows, the data path and monitoring", () => {
    const lines = renderDiagram(dev).split("\n");
    const ip = (node: "lb" | "s1" | "s2") => DEV_TOPOLOGY.nodes[node].privateIp;
    const expected = [
      "flowchart LR",
      '  subgraph sg_lb["security group webstack-dev-sg-lb"]',
      `    lb["lb · loadbalancer<br/>${ip("lb")}<br/>HAProxy"]`,
      `    s1["s1 · replica<br/>${ip("s1")}<br/>Nginx → Gunicorn → app"]`,
      '    db_s1[("database<br/>replica (read-only)")]',
      `    s2["s2 · primary<br/>${ip("s2")}<br/>Nginx → Gunicorn → app"]`,
      '    db_s2[("database<br/>primary (writes)")]',
      '  internet_in -->|"tcp 443, 80"| sg_lb',
      '  sg_lb -->|"tcp 443"| sg_s1',
      '  sg_lb -->|"tcp 443"| sg_s2',
      '  sg_s1 -->|"tcp 3306"| sg_s2',
      '  sg_s2 -->|"tcp 3306"| sg_s1',
      '  sg_lb -->|"tcp 443"| internet_out',
      '  sg_s1 -->|"tcp 443"| internet_out',
      '  sg_s2 -->|"tcp 443"| internet_out',
      '  lb ==>|"HTTPS"| s1',
      '  lb ==>|"HTTPS"| s2',
      '  s1 ==>|"writes"| db_s2',
      '  s1 ==>|"reads"| db_s1',
      '  db_s2 ==>|"replication"| db_s1',
      '  s2 -.->|"agent: 7 log groups, metrics"| cw_logs',
      '    cw_alarms["41 alarms → SNS webstack-dev-alarms"]',
    ];
    for (const line of expected) expect(lines).toContain(line);
    // Each node sits in its own group's subgraph.
    for (const node of NODES) {
      const start = lines.indexOf(
        `  subgraph sg_${node}["security group webstack-dev-sg-${node}"]`,
      );
      expect(lines[start + 1]).toMatch(new RegExp(`^    ${node}\\["`));
    }
  });

  test("a rule added or removed in the plan shows in the diagram", () => {
    const rule = (r: PlannedResource, port: number): PlannedResource => ({
      ...r,
      urn: `${r.urn}-${port}`,
      name: `${r.name}-${port}`,
      inputs: { ...r.inputs, fromPort: port, toPort: port },
    });
    const lbToS1 = dev.resources.find((r) => r.name === "firewalls-s1-in-tcp443-from-lb")!;
    const more = { ...dev, resources: [...dev.resources, rule(lbToS1, 8443)] };
    expect(renderDiagram(more)).toContain('  sg_lb -->|"tcp 443, 8443"| sg_s1\n');
    const fewer = {
      ...dev,
      resources: dev.resources.filter((r) => !r.name.includes("-in-tcp80-from-internet")),
    };
    expect(renderDiagram(fewer)).toContain('  internet_in -->|"tcp 443"| sg_lb\n');
  });

  test("Mermaid's parser accepts it as a flowchart", () => {
    const parsed = mermaidParse(renderDiagram(dev));
    expect(parsed.error).toBe("");
    expect(parsed).toMatchObject({ code: 0, type: "flowchart-v2" });
  });

  test("Mermaid's parser accepts prod's too, with the VPC endpoints' group", async () => {
    const diagram = renderDiagram(await planStack("prod"));
    expect(diagram).toContain(
      '  subgraph sg_endpoints["security group webstack-prod-sg-endpoints"]',
    );
    const parsed = mermaidParse(diagram);
    expect(parsed.error).toBe("");
    expect(parsed).toMatchObject({ code: 0, type: "flowchart-v2" });
  });

  test("three app nodes: s3 a replica reading its own copy, each node's own log groups; Mermaid accepts it", async () => {
    const plan = await planStack("dev", ["appNodeCount=3"]);
    const picture = describeStack(plan);
    expect(picture.nodes.map((n) => `${n.name} ${n.role}`)).toEqual([
      "lb loadbalancer",
      "s1 replica",
      "s2 primary",
      "s3 replica",
    ]);
    expect(flowKeys(picture.flows)).toEqual(
      tableKeys(stackFlows({ vpcEndpoints: false, appNodeCount: 3 })),
    );
    // Replicas share a role, not their log groups.
    expect(picture.monitoring.logGroups).toEqual({ lb: 3, s1: 7, s2: 7, s3: 7 });
    const diagram = renderDiagram(plan);
    for (const line of [
      '  s2 ==>|"reads"| db_s1',
      '  s3 ==>|"writes"| db_s2',
      '  s3 ==>|"reads"| db_s3',
      '  db_s2 ==>|"replication"| db_s1',
      '  db_s2 ==>|"replication"| db_s3',
    ])
      expect(diagram).toContain(`${line}\n`);
    const parsed = mermaidParse(diagram);
    expect(parsed.error).toBe("");
    expect(parsed).toMatchObject({ code: 0, type: "flowchart-v2" });
  });

  test("database rds: the instance in its own group, the flows to it, no database on the nodes; Mermaid accepts it", async () => {
    const plan = await planStack("dev", ["database=rds"]);
    const picture = describeStack(plan);
    expect(picture.rds).toEqual({
      group: "webstack-dev-sg-rds",
      identifier: "webstack-dev",
      engine: "mariadb 11.8",
      multiAz: true,
    });
    expect(flowKeys(picture.flows)).toEqual(
      tableKeys(stackFlows({ vpcEndpoints: false, database: "rds" })),
    );
    const diagram = renderDiagram(plan);
    expect(diagram).toContain(
      [
        '  subgraph sg_rds["security group webstack-dev-sg-rds"]',
        '    rds[("Amazon RDS webstack-dev<br/>mariadb 11.8, Multi-AZ")]',
        "  end",
      ].join("\n"),
    );
    expect(diagram).toContain('  s1 ==>|"reads, writes (TLS)"| rds\n');
    expect(diagram).not.toMatch(/db_s[12]|replication/);
    const parsed = mermaidParse(diagram);
    expect(parsed.error).toBe("");
    expect(parsed).toMatchObject({ code: 0, type: "flowchart-v2" });
  });

  test.each([
    ["a subgraph never closed", (d: string) => d.replace(/\n  end\n/, "\n")],
    ["an edge label never closed", (d: string) => d.replace('-->|"tcp 443"|', '-->|"tcp 443"')],
    ["an unknown diagram type", (d: string) => d.replace("flowchart LR", "flowchat LR")],
  ])("Mermaid's parser rejects %s", (_, breakIt) => {
    const diagram = renderDiagram(dev);
    const broken = breakIt(diagram);
    expect(broken).not.toBe(diagram);
    const parsed = mermaidParse(broken);
    expect(parsed.code).toBe(1);
    expect(parsed.error).toMatch(/Parse error|No diagram type detected/);
  });
});
