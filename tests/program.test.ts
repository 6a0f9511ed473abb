// The whole program under mocks: tags, outputs, plan guarantees, secret config, stack files.
import { ConfigError } from "../model/config";
import { logGroupName, parameterPath } from "../model/naming";
import { buildTopology, mapNodes } from "../model/topology";
import { Plan, runPlan } from "../plan/plan";
import { collectSecrets, redactSecrets } from "../plan/secrets";
import { T, TOPOLOGY, ofType, one, planConfig, planStack } from "./harness";

const CONFIG = { domain: "www.example.com", tags: '{"Environment": "test"}' };
let plan: Plan;

beforeAll(async () => {
  plan = await planConfig(CONFIG);
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
    T.snsSubscription,
    T.dashboard,
    T.logMetricFilter,
    // A bucket's settings are parts of the bucket, which is tagged.
    T.bucketPublicAccessBlock,
    T.bucketOwnershipControls,
    T.bucketVersioning,
    T.bucketEncryption,
    T.bucketLifecycle,
    T.bucketPolicy,
    // S3 objects take ten tags at most: the bucket's say whose they are.
    T.bucketObject,
  ]);

  test("every taggable resource carries Project, Stack, Role, ManagedBy, Name and the config's tags; the data volumes their snapshot tag", () => {
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
          ...(r.type === T.volume && { Snapshots: "webstack-test" }),
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
        "bundleBucket",
        "bundleRelease",
        "appRelease",
        "bundles",
        "appNodes",
        "dbEndpoints",
        "database",
        "internalCaCertPem",
        "url",
        "dnsName",
        "dnsRecordManaged",
        "certificateMode",
        "loadBalancer",
        "images",
        "logGroups",
        "sessions",
        "backups",
        "dashboardUrl",
        "alarmTopicArn",
      ].sort(),
    );
    expect(plan.outputs.privateIps).toEqual(
      mapNodes(TOPOLOGY.nodeNames, (node) => TOPOLOGY.nodes[node].privateIp),
    );
    expect(plan.outputs.parameterPaths).toEqual({
      ...mapNodes(TOPOLOGY.nodeNames, (node) => parameterPath(plan.stack, node)),
      shared: parameterPath(plan.stack, "shared"),
    });
    // The nodes' own databases: the mode alone (an rds stack's are in tests/rds.test.ts).
    expect(plan.outputs.database).toEqual({ mode: "replication" });
    expect(plan.outputs.securityGroupIds).toEqual({
      lb: one(plan, T.securityGroup, "firewalls-lb").id,
      s1: one(plan, T.securityGroup, "firewalls-s1").id,
      s2: one(plan, T.securityGroup, "firewalls-s2").id,
    });
  });

  test("backups: where they go in the bucket, the snapshot policy, how long they are kept", async () => {
    expect(plan.outputs.backups).toEqual({
      bucket: one(plan, T.bucket, "files-bucket").outputs.bucket,
      prefix: "backups/",
      dlmPolicyId: one(plan, T.dlmPolicy, "backups-snapshots").id,
      retentionDays: 7,
    });
    expect(plan.outputs.backups).toMatchObject({ dlmPolicyId: expect.stringMatching(/^policy-/) });
    const prod = await planStack("prod");
    expect(prod.outputs.backups).toMatchObject({
      bucket: prod.outputs.bundleBucket,
      retentionDays: 30,
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
      name: logGroupName(dev.stack, "vpc-flow-logs"),
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
    const range = "192.168.4.0/24";
    const narrowed = await planStack("dev", [`vpcCidr=${range}`]);
    const topology = buildTopology(range);
    expect(narrowed.outputs.privateIps).toEqual(
      mapNodes(topology.nodeNames, (node) => topology.nodes[node].privateIp),
    );
  });
});
