// The VPC endpoints under mocks (config vpcEndpoints): none by default; when on, S3's gateway on both
// route tables and five interface endpoints with private DNS in the private subnets, behind a group
// that admits the nodes' groups on 443 and nothing else.
import { Plan, PlannedResource } from "../plan/plan";
import { describeStack, renderDiagram } from "../plan/diagram";
import { stackFlows, DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import { T, byId, ofType, one, planConfig } from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

const BASE = { domain: "www.example.com" };
const tagsOf = (name: string) => ({
  Project: "webstack",
  Stack: "test",
  Role: "network",
  ManagedBy: "pulumi",
  Name: `webstack-test-${name}`,
});

let off: Plan;
let on: Plan;
let rdsOn: Plan;
let rdsOff: Plan;
beforeAll(async () => {
  off = await planConfig(BASE);
  on = await planConfig({ ...BASE, vpcEndpoints: "true" });
  rdsOn = await planConfig({ ...BASE, vpcEndpoints: "true", database: "rds" });
  rdsOff = await planConfig({ ...BASE, database: "rds" });
});

/** An interface endpoint's inputs: private DNS in both private subnets, behind the endpoints' group. */
function interfaceEndpoint(plan: Plan, service: string) {
  return {
    vpcId: one(plan, T.vpc, "network-vpc").id,
    serviceName: `com.amazonaws.eu-west-1.${service}`,
    vpcEndpointType: "Interface",
    privateDnsEnabled: true,
    subnetIds: [
      one(plan, T.subnet, "network-private-a").id,
      one(plan, T.subnet, "network-private-b").id,
    ],
    securityGroupIds: [one(plan, T.securityGroup, "firewalls-endpoints").id],
    tags: tagsOf(`vpce-${service}`),
  };
}

/** A rule as one comparable row: its group, port, and peer (a group's name, or a range). */
function ruleRow(plan: Plan, rule: PlannedResource): string {
  const i = rule.inputs;
  const peer =
    i.cidrIpv4 !== undefined ? String(i.cidrIpv4) : byId(plan, i.referencedSecurityGroupId).name;
  return `${byId(plan, i.securityGroupId).name} ${String(i.ipProtocol)} ${String(i.fromPort)}-${String(i.toPort)} ${peer}`;
}

describe("vpcEndpoints off (the default)", () => {
  test("no endpoint, no endpoints' group, no rule naming them", () => {
    expect(ofType(off, T.vpcEndpoint)).toEqual([]);
    expect(ofType(off, T.securityGroup).map((g) => g.name)).not.toContain("firewalls-endpoints");
    expect(off.resources.filter((r) => r.name.includes("endpoints"))).toEqual([]);
  });
});

describe("vpcEndpoints on", () => {
  test("S3 through a gateway endpoint on the public and the private route table, default policy", () => {
    const s3 = one(on, T.vpcEndpoint, "endpoints-s3");
    expect(s3.inputs).toEqual({
      vpcId: one(on, T.vpc, "network-vpc").id,
      serviceName: "com.amazonaws.eu-west-1.s3",
      vpcEndpointType: "Gateway",
      routeTableIds: [
        one(on, T.routeTable, "network-public-rt").id,
        one(on, T.routeTable, "network-private-rt").id,
      ],
      tags: tagsOf("vpce-s3"),
    });
  });

  test.each(["ssm", "ssmmessages", "kms", "logs", "monitoring"])(
    "%s: an interface endpoint with private DNS in both private subnets, behind the endpoints' group",
    (service) => {
      expect(one(on, T.vpcEndpoint, `endpoints-${service}`).inputs).toEqual(
        interfaceEndpoint(on, service),
      );
    },
  );

  test("exactly those six endpoints, children of the endpoints component", () => {
    const endpoints = ofType(on, T.vpcEndpoint);
    expect(endpoints.map((e) => e.name)).toEqual([
      "endpoints-s3",
      "endpoints-ssm",
      "endpoints-ssmmessages",
      "endpoints-kms",
      "endpoints-logs",
      "endpoints-monitoring",
    ]);
    for (const e of endpoints)
      expect(e.parent).toBe(
        "urn:pulumi:test::webstack::pulumi:pulumi:Stack$webstack:network:VpcEndpoints::endpoints",
      );
  });

  test("the service names follow the stack's region", async () => {
    const usEast = await planConfig({ ...BASE, vpcEndpoints: "true", "aws:region": "us-east-1" });
    expect(ofType(usEast, T.vpcEndpoint).map((e) => e.inputs.serviceName)).toEqual([
      "com.amazonaws.us-east-1.s3",
      "com.amazonaws.us-east-1.ssm",
      "com.amazonaws.us-east-1.ssmmessages",
      "com.amazonaws.us-east-1.kms",
      "com.amazonaws.us-east-1.logs",
      "com.amazonaws.us-east-1.monitoring",
    ]);
  });

  test("the endpoints' group: described, autonamed, no inline rules, tagged as the network's", () => {
    const group = one(on, T.securityGroup, "firewalls-endpoints");
    expect(group.inputs).toEqual({
      vpcId: one(on, T.vpc, "network-vpc").id,
      description:
        "webstack endpoints: the VPC interface endpoints, reached on 443 from the nodes only",
      revokeRulesOnDelete: true,
      tags: tagsOf("sg-endpoints"),
    });
  });

  test("its ingress is 443 from each node's group and nothing else; it has no egress", () => {
    const rules = [...ofType(on, T.ingressRule), ...ofType(on, T.egressRule)];
    const touching = rules.filter(
      (r) =>
        byId(on, r.inputs.securityGroupId).name === "firewalls-endpoints" ||
        (r.inputs.referencedSecurityGroupId !== undefined &&
          byId(on, r.inputs.referencedSecurityGroupId).name === "firewalls-endpoints"),
    );
    expect(
      touching.map((r) => `${r.type === T.ingressRule ? "in" : "out"} ${ruleRow(on, r)}`).sort(),
    ).toEqual([
      "in firewalls-endpoints tcp 443-443 firewalls-lb",
      "in firewalls-endpoints tcp 443-443 firewalls-s1",
      "in firewalls-endpoints tcp 443-443 firewalls-s2",
      "out firewalls-lb tcp 443-443 firewalls-endpoints",
      "out firewalls-s1 tcp 443-443 firewalls-endpoints",
      "out firewalls-s2 tcp 443-443 firewalls-endpoints",
    ]);
    const ingress = one(on, T.ingressRule, "firewalls-endpoints-in-tcp443-from-s1");
    expect(ingress.inputs.description).toBe(
      "HTTPS from s1 to the VPC interface endpoints: SSM, Session Manager, KMS, CloudWatch Logs and metrics",
    );
    expect(ingress.inputs.tags).toEqual(tagsOf("sg-endpoints-in-tcp443-from-s1"));
  });

  test("everything else is as without them: the same resources and inputs, plus the endpoints' own", () => {
    const key = (r: PlannedResource) => JSON.stringify([r.urn, r.inputs]);
    const before = new Set(off.resources.map(key));
    const added = on.resources.filter((r) => !before.has(key(r)));
    expect(added.map((r) => `${r.type}::${r.name}`).sort()).toEqual(
      [
        "webstack:network:VpcEndpoints::endpoints",
        ...["s3", "ssm", "ssmmessages", "kms", "logs", "monitoring"].map(
          (s) => `${T.vpcEndpoint}::endpoints-${s}`,
        ),
        `${T.securityGroup}::firewalls-endpoints`,
        ...NODES.flatMap((n) => [
          `${T.ingressRule}::firewalls-endpoints-in-tcp443-from-${n}`,
          `${T.egressRule}::firewalls-${n}-out-tcp443-to-endpoints`,
        ]),
      ].sort(),
    );
    expect(on.resources.length - off.resources.length).toBe(added.length);
  });

  test("the diagram draws the endpoints' group and the flows into it, from the plan", () => {
    const picture = describeStack(on);
    expect(picture.endpoints).toEqual({
      group: "webstack-test-sg-endpoints",
      services: ["ssm", "ssmmessages", "kms", "logs", "monitoring"],
    });
    const opened = picture.flows.flatMap((f) => f.ports.map((p) => `${f.from}→${f.to}:${p}`));
    expect(opened.sort()).toEqual(
      stackFlows({ vpcEndpoints: true })
        .map((f) => `${f.from}→${f.to}:${f.port}`)
        .sort(),
    );
    const diagram = renderDiagram(on);
    expect(diagram).toContain(
      '  subgraph sg_endpoints["security group webstack-test-sg-endpoints"]\n' +
        '    endpoints["VPC interface endpoints<br/>ssm, ssmmessages, kms, logs, monitoring"]\n' +
        "  end\n",
    );
    for (const node of NODES)
      expect(diagram).toContain(`  sg_${node} -->|"tcp 443"| sg_endpoints\n`);
    // The endpoints are no backend: the data path is the LB's to s1 and s2 only.
    expect(diagram).not.toContain('==>|"HTTPS"| endpoints');
  });
});

describe("vpcEndpoints on an rds stack", () => {
  test("Secrets Manager's endpoint too (s2 reads the RDS master secret), as the others; none elsewhere", () => {
    expect(one(rdsOn, T.vpcEndpoint, "endpoints-secretsmanager").inputs).toEqual(
      interfaceEndpoint(rdsOn, "secretsmanager"),
    );
    expect(ofType(rdsOn, T.vpcEndpoint).map((e) => e.name)).toEqual([
      ...ofType(on, T.vpcEndpoint).map((e) => e.name),
      "endpoints-secretsmanager",
    ]);
    expect(ofType(rdsOff, T.vpcEndpoint)).toEqual([]);
    expect(ofType(on, T.vpcEndpoint).map((e) => e.name)).not.toContain("endpoints-secretsmanager");
  });

  test("the same rules into the endpoints' group; s2's say it reads the master secret there", () => {
    const rows = (plan: Plan) =>
      [...ofType(plan, T.ingressRule), ...ofType(plan, T.egressRule)]
        .filter((r) => r.name.includes("endpoints"))
        .map((r) => `${ruleRow(plan, r)} ${String(r.inputs.description)}`);
    const s2 =
      "HTTPS from s2 to the VPC interface endpoints: SSM, Session Manager, KMS, CloudWatch Logs and metrics";
    expect(rows(rdsOn)).toEqual(
      rows(on).map((row) =>
        row.endsWith(s2) ? `${row}, Secrets Manager (the RDS master secret)` : row,
      ),
    );
    expect(rows(rdsOn).filter((row) => row.includes("Secrets Manager"))).toHaveLength(2);
  });
});
