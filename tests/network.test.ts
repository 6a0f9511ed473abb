// The network under mocks: VPC, subnets, routes, NAT, flow logs and the firewalls' rules.
import { logGroupName } from "../model/naming";
import { SG_DESCRIPTION } from "../model/topology";
import { Plan } from "../plan/plan";
import {
  ACCOUNT_ID,
  DEFAULT_VPC_CIDR,
  T,
  TOPOLOGY,
  byId,
  grantsOf,
  ofType,
  one,
  planConfig,
  ruleRow,
} from "./harness";

let plan: Plan;

beforeAll(async () => {
  plan = await planConfig({ domain: "www.example.com" });
});

/** A rule as one comparable row: group, protocol, ports, peer. */
const row = (rule: { inputs: Record<string, unknown> }) => ruleRow(plan, rule);

describe("firewalls", () => {
  test("exactly three security groups, autonamed, described, without inline rules", () => {
    const groups = ofType(plan, T.securityGroup);
    expect(groups.map((g) => g.name).sort()).toEqual([
      "firewalls-lb",
      "firewalls-s1",
      "firewalls-s2",
    ]);
    const vpcId = ofType(plan, T.vpc)[0].id;
    for (const g of groups) {
      expect(g.inputs.name).toBeUndefined();
      expect(g.inputs.namePrefix).toBeUndefined();
      expect(g.inputs.ingress).toBeUndefined();
      expect(g.inputs.egress).toBeUndefined();
      expect(g.inputs.vpcId).toBe(vpcId);
      expect(g.inputs.description).toMatch(SG_DESCRIPTION);
    }
  });

  test("ingress: 443 and 80 from anywhere to the LB; 443 from the LB group; 3306 between s1 and s2 groups", () => {
    expect(ofType(plan, T.ingressRule).map(row).sort()).toEqual([
      "lb tcp 443-443 0.0.0.0/0",
      "lb tcp 80-80 0.0.0.0/0",
      "s1 tcp 3306-3306 sg:s2",
      "s1 tcp 443-443 sg:lb",
      "s2 tcp 3306-3306 sg:s1",
      "s2 tcp 443-443 sg:lb",
    ]);
  });

  test("egress is explicit: HTTPS out (no port 80: APT over HTTPS), the LB to the app groups, 3306 between s1 and s2", () => {
    expect(ofType(plan, T.egressRule).map(row).sort()).toEqual([
      "lb tcp 443-443 0.0.0.0/0",
      "lb tcp 443-443 sg:s1",
      "lb tcp 443-443 sg:s2",
      "s1 tcp 3306-3306 sg:s2",
      "s1 tcp 443-443 0.0.0.0/0",
      "s2 tcp 3306-3306 sg:s1",
      "s2 tcp 443-443 0.0.0.0/0",
    ]);
  });

  test("east-west rules reference security groups, never CIDRs", () => {
    const rules = [...ofType(plan, T.ingressRule), ...ofType(plan, T.egressRule)];
    for (const r of rules.filter((r) => r.inputs.referencedSecurityGroupId !== undefined)) {
      expect([r.inputs.cidrIpv4, r.inputs.cidrIpv6, r.inputs.prefixListId]).toEqual([
        undefined,
        undefined,
        undefined,
      ]);
    }
    const byCidr = rules.filter((r) => r.inputs.cidrIpv4 !== undefined);
    expect(byCidr.every((r) => r.inputs.cidrIpv4 === "0.0.0.0/0")).toBe(true);
    expect(byCidr.every((r) => r.inputs.referencedSecurityGroupId === undefined)).toBe(true);
  });

  test("no rule for port 22, all ports or all protocols; no IPv6 rule; every rule described", () => {
    const rules = [...ofType(plan, T.ingressRule), ...ofType(plan, T.egressRule)];
    expect(rules).toHaveLength(13);
    for (const r of rules) {
      expect(r.inputs.ipProtocol).toBe("tcp");
      expect(r.inputs.fromPort).toBe(r.inputs.toPort);
      expect(r.inputs.fromPort).not.toBe(22);
      expect(r.inputs.cidrIpv6).toBeUndefined();
      expect(r.inputs.description).toMatch(SG_DESCRIPTION);
    }
  });

  test("no legacy or inline rule resources are mixed in", () => {
    expect(ofType(plan, T.legacySecurityGroupRule)).toEqual([]);
  });
});

describe("network", () => {
  test("the VPC has the configured range and DNS", () => {
    const [vpc] = ofType(plan, T.vpc);
    expect(vpc.inputs).toMatchObject({
      cidrBlock: DEFAULT_VPC_CIDR,
      enableDnsSupport: true,
      enableDnsHostnames: true,
    });
  });

  test("the default security group is adopted with no rules (EC2.2)", () => {
    const [dsg] = ofType(plan, T.defaultSecurityGroup);
    expect(dsg.inputs.vpcId).toBe(ofType(plan, T.vpc)[0].id);
    expect(dsg.inputs.ingress).toBeUndefined();
    expect(dsg.inputs.egress).toBeUndefined();
  });

  test("no subnet maps public IPs (EC2.15); private subnets in two AZs", () => {
    const subnets = Object.fromEntries(ofType(plan, T.subnet).map((s) => [s.name, s.inputs]));
    expect(Object.keys(subnets).sort()).toEqual([
      "network-private-a",
      "network-private-b",
      "network-public",
    ]);
    for (const s of Object.values(subnets)) expect(s.mapPublicIpOnLaunch).toBe(false);
    expect(subnets["network-public"]).toMatchObject({
      cidrBlock: TOPOLOGY.subnets.public.cidr,
      availabilityZone: "eu-west-1a",
    });
    expect(subnets["network-private-a"]).toMatchObject({
      cidrBlock: TOPOLOGY.subnets["private-a"].cidr,
      availabilityZone: "eu-west-1a",
    });
    expect(subnets["network-private-b"]).toMatchObject({
      cidrBlock: TOPOLOGY.subnets["private-b"].cidr,
      availabilityZone: "eu-west-1b",
    });
  });

  test("the public subnet routes to the internet gateway, the private ones to the NAT", () => {
    const defaultRouteOf = (subnetName: string) => {
      const subnetId = one(plan, T.subnet, subnetName).id;
      const assoc = ofType(plan, T.routeTableAssociation).filter(
        (a) => a.inputs.subnetId === subnetId,
      );
      expect(assoc).toHaveLength(1);
      const routes = ofType(plan, T.route).filter(
        (r) => r.inputs.routeTableId === assoc[0].inputs.routeTableId,
      );
      expect(routes).toHaveLength(1);
      expect(routes[0].inputs.destinationCidrBlock).toBe("0.0.0.0/0");
      return byId(plan, routes[0].inputs.gatewayId ?? routes[0].inputs.natGatewayId).type;
    };
    expect(defaultRouteOf("network-public")).toBe(T.internetGateway);
    expect(defaultRouteOf("network-private-a")).toBe(T.natGateway);
    expect(defaultRouteOf("network-private-b")).toBe(T.natGateway);
  });

  test("the NAT gateway sits in the public subnet on its own Elastic IP, after the internet gateway", () => {
    const [nat] = ofType(plan, T.natGateway);
    expect(nat.inputs.subnetId).toBe(one(plan, T.subnet, "network-public").id);
    expect(byId(plan, nat.inputs.allocationId).type).toBe(T.eip);
    expect(nat.options.dependsOn).toEqual([ofType(plan, T.internetGateway)[0].urn]);
  });

  test("VPC flow logs capture all traffic into a log group with retention (EC2.6)", () => {
    const [flowLog] = ofType(plan, T.flowLog);
    const group = one(plan, T.logGroup, "network-flow-logs");
    const role = one(plan, T.role, "network-flow-logs-role");
    expect(flowLog.inputs).toMatchObject({
      vpcId: ofType(plan, T.vpc)[0].id,
      trafficType: "ALL",
      logDestinationType: "cloud-watch-logs",
      logDestination: group.outputs.arn,
      iamRoleArn: role.outputs.arn,
    });
    expect(group.inputs).toMatchObject({
      name: logGroupName(plan.stack, "vpc-flow-logs"),
      retentionInDays: 30,
    });
    // Only the flow-logs service may take the role, and only for this account's flow logs.
    expect(grantsOf(role.inputs.assumeRolePolicy)).toEqual([
      {
        principal: "Service:vpc-flow-logs.amazonaws.com",
        actions: ["sts:AssumeRole"],
        condition: {
          StringEquals: { "aws:SourceAccount": ACCOUNT_ID },
          ArnLike: { "aws:SourceArn": `arn:aws:ec2:eu-west-1:${ACCOUNT_ID}:vpc-flow-log/*` },
        },
      },
    ]);
    const delivery = one(plan, T.rolePolicy, "network-flow-logs-delivery");
    expect(JSON.parse(delivery.inputs.policy as string).Statement[0].Resource).toEqual([
      group.outputs.arn,
      `${String(group.outputs.arn)}:*`,
    ]);
  });
});
