// The real program under mocks: exact security-relevant inputs of the network, firewalls and identities.
import { ConfigError } from "../model/config";
import { Plan, runPlan } from "../plan/plan";
import { collectSecrets, redactSecrets } from "../plan/secrets";
import { SG_DESCRIPTION } from "../model/topology";
import { T, byId, ofType, one, planConfig, planStack } from "./harness";

const CONFIG = { domain: "www.example.com", tags: '{"Environment": "test"}' };
let plan: Plan;

beforeAll(async () => {
  plan = await planConfig(CONFIG);
});

/** The node ("lb", "s1", "s2") whose security group has this id. */
function groupOf(id: unknown): string {
  return byId(plan, id).name.replace(/^firewalls-/, "");
}

/** A rule as one comparable row: group, protocol, ports, peer. */
function ruleRow(rule: { inputs: Record<string, unknown> }): string {
  const i = rule.inputs;
  const peer =
    i.cidrIpv4 !== undefined ? String(i.cidrIpv4) : `sg:${groupOf(i.referencedSecurityGroupId)}`;
  return `${groupOf(i.securityGroupId)} ${String(i.ipProtocol)} ${String(i.fromPort)}-${String(i.toPort)} ${peer}`;
}

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
    expect(ofType(plan, T.ingressRule).map(ruleRow).sort()).toEqual([
      "lb tcp 443-443 0.0.0.0/0",
      "lb tcp 80-80 0.0.0.0/0",
      "s1 tcp 3306-3306 sg:s2",
      "s1 tcp 443-443 sg:lb",
      "s2 tcp 3306-3306 sg:s1",
      "s2 tcp 443-443 sg:lb",
    ]);
  });

  test("egress is explicit: HTTP(S) out, the LB to the app groups, 3306 between s1 and s2", () => {
    expect(ofType(plan, T.egressRule).map(ruleRow).sort()).toEqual([
      "lb tcp 443-443 0.0.0.0/0",
      "lb tcp 443-443 sg:s1",
      "lb tcp 443-443 sg:s2",
      "lb tcp 80-80 0.0.0.0/0",
      "s1 tcp 3306-3306 sg:s2",
      "s1 tcp 443-443 0.0.0.0/0",
      "s1 tcp 80-80 0.0.0.0/0",
      "s2 tcp 3306-3306 sg:s1",
      "s2 tcp 443-443 0.0.0.0/0",
      "s2 tcp 80-80 0.0.0.0/0",
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
    expect(rules).toHaveLength(16);
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
      cidrBlock: "10.40.0.0/16",
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
      cidrBlock: "10.40.0.0/18",
      availabilityZone: "eu-west-1a",
    });
    expect(subnets["network-private-a"]).toMatchObject({
      cidrBlock: "10.40.128.0/18",
      availabilityZone: "eu-west-1a",
    });
    expect(subnets["network-private-b"]).toMatchObject({
      cidrBlock: "10.40.192.0/18",
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
      name: "/webstack/test/vpc-flow-logs",
      retentionInDays: 30,
    });
    expect(JSON.parse(role.inputs.assumeRolePolicy as string)).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: "vpc-flow-logs.amazonaws.com" },
          Action: "sts:AssumeRole",
          Condition: {
            StringEquals: { "aws:SourceAccount": "123456789012" },
            ArnLike: { "aws:SourceArn": "arn:aws:ec2:eu-west-1:123456789012:vpc-flow-log/*" },
          },
        },
      ],
    });
    const delivery = one(plan, T.rolePolicy, "network-flow-logs-delivery");
    expect(JSON.parse(delivery.inputs.policy as string).Statement[0].Resource).toEqual([
      group.outputs.arn,
      `${String(group.outputs.arn)}:*`,
    ]);
  });
});

describe("node identities", () => {
  const NODES = ["lb", "s1", "s2"];

  test("one role per node, assumable by EC2 only, with an instance profile", () => {
    for (const node of NODES) {
      const role = one(plan, T.role, `${node}-identity-role`);
      expect(JSON.parse(role.inputs.assumeRolePolicy as string)).toEqual({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Principal: { Service: "ec2.amazonaws.com" },
            Action: "sts:AssumeRole",
          },
        ],
      });
      expect(one(plan, T.instanceProfile, `${node}-identity-profile`).inputs.role).toBe(
        role.outputs.name,
      );
    }
  });

  test("managed policies: Session Manager and the CloudWatch agent, nothing else", () => {
    for (const node of NODES) {
      const roleName = one(plan, T.role, `${node}-identity-role`).outputs.name;
      const attached = ofType(plan, T.rolePolicyAttachment).filter(
        (a) => a.inputs.role === roleName,
      );
      expect(attached.map((a) => a.inputs.policyArn).sort()).toEqual([
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
        "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
      ]);
    }
  });

  test("s1 reads and decrypts only its own and the shared parameters", () => {
    const keyArn = ofType(plan, T.kmsKey)[0].outputs.arn;
    const policy = JSON.parse(
      one(plan, T.rolePolicy, "s1-identity-parameters").inputs.policy as string,
    );
    const arn = (path: string) =>
      `arn:aws:ssm:eu-west-1:123456789012:parameter/webstack/test/${path}`;
    expect(policy).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "ReadOwnAndSharedParameters",
          Effect: "Allow",
          Action: ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
          Resource: [arn("s1"), arn("shared"), arn("s1/*"), arn("shared/*")],
        },
        {
          Sid: "DecryptOwnAndSharedParameters",
          Effect: "Allow",
          Action: "kms:Decrypt",
          Resource: keyArn,
          Condition: {
            StringEquals: { "kms:ViaService": "ssm.eu-west-1.amazonaws.com" },
            StringLike: { "kms:EncryptionContext:PARAMETER_ARN": [arn("s1/*"), arn("shared/*")] },
          },
        },
      ],
    });
  });

  test.each(["lb", "s1", "s2"])("%s's policy names no other node's parameters", (node) => {
    const text = one(plan, T.rolePolicy, `${node}-identity-parameters`).inputs.policy as string;
    for (const other of NODES.filter((n) => n !== node))
      expect(text).not.toContain(`/webstack/test/${other}`);
    expect(text).not.toMatch(/"\*"|ssm:\*|kms:\*/);
  });

  test("the parameter key is customer-managed with rotation", () => {
    const [key] = ofType(plan, T.kmsKey);
    expect(key.inputs).toMatchObject({ enableKeyRotation: true, deletionWindowInDays: 30 });
    const [alias] = ofType(plan, T.kmsAlias);
    expect(alias.inputs).toMatchObject({
      name: "alias/webstack/test/parameters",
      targetKeyId: key.outputs.keyId,
    });
  });
});

describe("tags", () => {
  // These resource types take no tags in the AWS API.
  const UNTAGGABLE = new Set<string>([
    T.route,
    T.routeTableAssociation,
    T.rolePolicy,
    T.rolePolicyAttachment,
    T.kmsAlias,
    T.volumeAttachment,
    T.eipAssociation,
    T.route53Record,
    T.acmValidation,
    "aws:sns/topicSubscription:TopicSubscription",
    "aws:cloudwatch/dashboard:Dashboard",
    "aws:cloudwatch/logMetricFilter:LogMetricFilter",
  ]);

  test("every taggable resource carries Project, Stack, Role, ManagedBy, Name and the config's tags", () => {
    const aws = plan.resources.filter((r) => r.type.startsWith("aws:"));
    expect(aws.length).toBeGreaterThan(50);
    for (const r of aws) {
      if (UNTAGGABLE.has(r.type)) {
        expect(r.inputs.tags).toBeUndefined();
        continue;
      }
      expect({ resource: r.name, tags: r.inputs.tags }).toEqual({
        resource: r.name,
        tags: {
          Environment: "test",
          Project: "webstack",
          Stack: "test",
          Role: expect.stringMatching(/^(loadbalancer|replica|primary|network|shared)$/),
          ManagedBy: "pulumi",
          Name: expect.stringMatching(/^webstack-test-/),
        },
      });
    }
  });

  test.each([
    [T.securityGroup, "firewalls-lb", "loadbalancer"],
    [T.securityGroup, "firewalls-s1", "replica"],
    [T.securityGroup, "firewalls-s2", "primary"],
    [T.role, "s2-identity-role", "primary"],
    [T.vpc, "network-vpc", "network"],
  ])("%s %s has Role %s", (type, name, role) => {
    expect((one(plan, type, name).inputs.tags as Record<string, string>).Role).toBe(role);
  });
});

describe("outputs", () => {
  test("the documented outputs, with the nodes' fixed addresses", () => {
    expect(Object.keys(plan.outputs).sort()).toEqual(
      [
        "region",
        "vpcId",
        "vpcCidr",
        "subnetIds",
        "natPublicIp",
        "flowLogGroupName",
        "securityGroupIds",
        "privateIps",
        "internalNames",
        "instanceRoleArns",
        "instanceProfiles",
        "parameterPaths",
        "parameterKeyArn",
        "appNodes",
        "dbEndpoints",
        "internalCaCertPem",
        "url",
        "dnsName",
        "dnsRecordManaged",
        "certificateMode",
        "loadBalancer",
        "logGroups",
        "dashboardUrl",
        "alarmTopicArn",
      ].sort(),
    );
    expect(plan.outputs.privateIps).toEqual({
      lb: "10.40.0.10",
      s1: "10.40.192.10",
      s2: "10.40.128.10",
    });
    expect(plan.outputs.parameterPaths).toEqual({
      lb: "/webstack/test/lb",
      s1: "/webstack/test/s1",
      s2: "/webstack/test/s2",
      shared: "/webstack/test/shared",
    });
    expect(plan.outputs.securityGroupIds).toEqual({
      lb: one(plan, T.securityGroup, "firewalls-lb").id,
      s1: one(plan, T.securityGroup, "firewalls-s1").id,
      s2: one(plan, T.securityGroup, "firewalls-s2").id,
    });
  });

  test("no output is secret", () => {
    expect(collectSecrets(plan.outputs)).toEqual([]);
  });
});

describe("the plan itself", () => {
  test("every resource but the stack has a parent in the plan, and components are parents", () => {
    const urns = new Set(plan.resources.map((r) => r.urn));
    for (const r of plan.resources) {
      if (r.type === T.stack) expect(r.parent).toBeUndefined();
      else expect(urns.has(r.parent!)).toBe(true);
    }
    const sg = one(plan, T.securityGroup, "firewalls-s1");
    expect(sg.parent).toBe(
      "urn:pulumi:test::webstack::pulumi:pulumi:Stack$webstack:network:Firewalls::firewalls",
    );
  });

  test("the same config gives the same plan", async () => {
    const again = await planConfig(CONFIG);
    expect(JSON.stringify(redactSecrets(again))).toBe(JSON.stringify(redactSecrets(plan)));
  });

  test("bad config fails before any resource is created, listing every problem", async () => {
    const registered: string[] = [];
    const attempt = runPlan({
      stack: "test",
      config: {
        "aws:region": "eu-west-1",
        "webstack:domain": "nope",
        "webstack:vpcCidr": "1.2.3.4/16",
      },
      override: (args) => {
        registered.push(args.type);
        return undefined;
      },
    });
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toMatchObject({
      problems: [
        expect.stringMatching(/^webstack:domain/),
        expect.stringMatching(/^webstack:vpcCidr/),
      ],
    });
    expect(registered).toEqual([T.stack]);
  });
});

describe("secret config through the Pulumi runtime", () => {
  const DATADOG = { ...CONFIG, datadog: "true", datadogApiKey: "0123456789abcdef0123456789abcdef" };

  test("an API key Pulumi holds in plain text is refused", async () => {
    await expect(planConfig(DATADOG)).rejects.toMatchObject({
      problems: [expect.stringMatching(/^webstack:datadogApiKey: stored in plain text/)],
    });
  });

  test("an API key Pulumi holds encrypted is accepted", async () => {
    const secretKeys = ["webstack:datadogApiKey"];
    await expect(planConfig(DATADOG, { secretKeys })).resolves.toHaveProperty("stack", "test");
  });
});

describe("stack files", () => {
  test("dev: retention and tags from Pulumi.dev.yaml", async () => {
    const dev = await planStack("dev");
    expect(one(dev, T.logGroup, "network-flow-logs").inputs).toMatchObject({
      name: "/webstack/dev/vpc-flow-logs",
      retentionInDays: 14,
    });
    expect((ofType(dev, T.vpc)[0].inputs.tags as Record<string, string>).Environment).toBe("dev");
  });

  test("prod: its own range, retention and tags", async () => {
    const prod = await planStack("prod");
    expect(prod.outputs.vpcCidr).toBe("10.41.0.0/16");
    expect(one(prod, T.logGroup, "network-flow-logs").inputs.retentionInDays).toBe(365);
    expect(ofType(prod, T.vpc)[0].inputs.tags).toMatchObject({
      Environment: "prod",
      CostCenter: "web",
      Stack: "prod",
    });
  });

  test("--set style overrides reach the program", async () => {
    const narrowed = await planStack("dev", ["vpcCidr=192.168.4.0/24"]);
    expect(narrowed.outputs.privateIps).toEqual({
      lb: "192.168.4.10",
      s1: "192.168.4.202",
      s2: "192.168.4.138",
    });
  });
});
