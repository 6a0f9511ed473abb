// The policy pack's rules, run on the program's own plans and on crafted violations of each control.
import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_SECRET_PATTERNS,
  RESOURCE_RULES,
  Resource,
  STACK_RULES,
  evaluate,
} from "../policy/rules";
import { encodeUserData } from "../cloud-init/userDataEncoding";
import { Plan } from "../plan/plan";
import { revealSecrets } from "../plan/secrets";
import { PROJECT_DIR, planConfig, planStack } from "./harness";

/** A recorded plan as the rules see a stack: properties, and links found through ids, names and ARNs. */
function stackOf(plan: Plan): Resource[] {
  const records = revealSecrets(plan.resources);
  const handles = (r: (typeof records)[number]) =>
    [r.id, r.outputs.name, r.outputs.arn, r.outputs.keyId].filter(
      (v): v is string => typeof v === "string" && v !== "",
    );
  const resources: Resource[] = records.map((r) => ({
    type: r.type,
    name: r.name,
    props: r.outputs,
    linked: (prop) => {
      const value = r.outputs[prop];
      const wanted = (Array.isArray(value) ? value : [value]).filter((v) => typeof v === "string");
      return resources.filter((_, i) => handles(records[i]).some((h) => wanted.includes(h)));
    },
  }));
  return resources;
}

/** A crafted resource with no links. */
const crafted = (type: string, props: Record<string, unknown>, name = "crafted"): Resource => ({
  type,
  name,
  props,
  linked: () => [],
});

let dev: Resource[];
let prod: Resource[];
beforeAll(async () => {
  dev = stackOf(await planStack("dev"));
  prod = stackOf(await planStack("prod"));
});

describe("the program's own stacks", () => {
  test.each(["dev", "prod"])("%s passes every policy", (stack) => {
    expect(evaluate(stack === "dev" ? dev : prod)).toEqual([]);
  });

  test("every rule looks at resources the program creates", () => {
    for (const rule of RESOURCE_RULES) {
      expect({ rule: rule.id, applies: dev.some((r) => rule.types.includes(r.type)) }).toEqual({
        rule: rule.id,
        applies: true,
      });
    }
  });
});

const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const INSTANCE = "aws:ec2/instance:Instance";
const goodInstance = {
  metadataOptions: { httpTokens: "required" },
  rootBlockDevice: { encrypted: true },
  associatePublicIpAddress: false,
  tags: { Role: "replica" },
};

// [rule, crafted violating resource, what the message must say]
const VIOLATIONS: [string, Resource, string][] = [
  [
    "world-ingress-only-https-on-lb",
    crafted(INGRESS, {
      ipProtocol: "tcp",
      fromPort: 8080,
      toPort: 8080,
      cidrIpv4: "0.0.0.0/0",
      description: "x",
      tags: { Role: "loadbalancer" },
    }),
    "opens ports 8080-8080 to 0.0.0.0/0",
  ],
  [
    "world-ingress-only-https-on-lb",
    crafted(INGRESS, {
      ipProtocol: "tcp",
      fromPort: 443,
      toPort: 443,
      cidrIpv6: "::/0",
      description: "x",
      tags: { Role: "primary" },
    }),
    "opens ::/0 on a group whose Role is primary",
  ],
  [
    "no-ssh-or-rdp",
    crafted(INGRESS, {
      ipProtocol: "tcp",
      fromPort: 22,
      toPort: 22,
      referencedSecurityGroupId: "sg-1",
      description: "x",
    }),
    "opens port 22",
  ],
  [
    "no-ssh-or-rdp",
    crafted(INGRESS, {
      ipProtocol: "tcp",
      fromPort: 3380,
      toPort: 3390,
      referencedSecurityGroupId: "sg-1",
      description: "x",
    }),
    "opens port 3389",
  ],
  [
    "database-only-from-groups",
    crafted(INGRESS, {
      ipProtocol: "tcp",
      fromPort: 3306,
      toPort: 3306,
      cidrIpv4: "10.0.0.0/8",
      description: "x",
    }),
    "opens port 3306 to an address range",
  ],
  [
    "no-inline-rules",
    crafted("aws:ec2/securityGroup:SecurityGroup", {
      description: "x",
      ingress: [{ fromPort: 443 }],
    }),
    "has inline ingress rules",
  ],
  [
    "no-inline-rules",
    crafted("aws:ec2/securityGroupRule:SecurityGroupRule", {
      type: "ingress",
      fromPort: 443,
      toPort: 443,
    }),
    "uses aws.ec2.SecurityGroupRule",
  ],
  [
    "described",
    crafted("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", {
      ipProtocol: "tcp",
      fromPort: 443,
      toPort: 443,
      cidrIpv4: "0.0.0.0/0",
    }),
    "has no description",
  ],
  [
    "imdsv2-required",
    crafted(INSTANCE, { ...goodInstance, metadataOptions: { httpTokens: "optional" } }),
    "does not require IMDSv2",
  ],
  [
    "encrypted-volumes",
    crafted(INSTANCE, { ...goodInstance, rootBlockDevice: { encrypted: false } }),
    "has an unencrypted root volume",
  ],
  ["encrypted-volumes", crafted("aws:ebs/volume:Volume", { encrypted: false }), "is not encrypted"],
  [
    "no-public-ip-on-app-nodes",
    crafted(INSTANCE, { ...goodInstance, associatePublicIpAddress: true }),
    "is an app node (Role replica)",
  ],
  [
    "subnets-map-no-public-ips",
    crafted("aws:ec2/subnet:Subnet", { mapPublicIpOnLaunch: true }),
    "maps public IPs on launch",
  ],
  [
    "default-security-group-closed",
    crafted("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", { egress: [{ protocol: "-1" }] }),
    "has egress rules",
  ],
  [
    "log-retention",
    crafted("aws:cloudwatch/logGroup:LogGroup", { name: "/x" }),
    "has no retention",
  ],
];

describe("each resource rule rejects a crafted violation, naming the resource and the control", () => {
  test.each(VIOLATIONS)("%s: %#", (ruleId, resource, what) => {
    const rule = RESOURCE_RULES.find((r) => r.id === ruleId)!;
    const violations = evaluate([{ ...resource, name: "bad-resource" }]).filter(
      (v) => v.rule === ruleId,
    );
    expect(violations).toHaveLength(1);
    expect(violations[0].message).toContain("bad-resource: ");
    expect(violations[0].message).toContain(what);
    expect(violations[0].message).toContain(`(${rule.control})`);
  });

  test("every resource rule has a crafted violation", () => {
    expect([...new Set(VIOLATIONS.map(([id]) => id))].sort()).toEqual(
      RESOURCE_RULES.map((r) => r.id).sort(),
    );
  });
});

describe("stack rules reject crafted violations", () => {
  const ruleMessages = (resources: Resource[], id: string) =>
    evaluate(resources)
      .filter((v) => v.rule === id)
      .map((v) => v.message);

  test("a VPC without flow logs", () => {
    const stack = dev.filter((r) => r.type !== "aws:ec2/flowLog:FlowLog");
    expect(ruleMessages(stack, "vpc-flow-logs")).toEqual([
      "network-vpc: has no flow log capturing ALL traffic (FSBP EC2.6, CKV2_AWS_11)",
    ]);
  });

  test("an instance whose role lacks the SSM policy", () => {
    const stack = dev.filter(
      (r) =>
        !(
          r.type === "aws:iam/rolePolicyAttachment:RolePolicyAttachment" &&
          r.name === "s1-identity-AmazonSSMManagedInstanceCore"
        ),
    );
    expect(ruleMessages(stack, "instances-managed-by-ssm")).toEqual([
      "s1-instance: has no instance profile whose role is managed by SSM (FSBP SSM.1)",
    ]);
  });

  test("user-data holding a generated secret, or anything matching a secret pattern", () => {
    const password = dev.find((r) => r.type === "random:index/randomPassword:RandomPassword")!;
    const leak = (text: string) =>
      crafted(
        INSTANCE,
        { ...goodInstance, ...encodeUserData(`#cloud-config\n${text}\n`) },
        "leaky-instance",
      );
    const messages = (text: string) =>
      ruleMessages([...dev, leak(text)], "no-secrets-in-user-data");
    expect(messages(`# ${String(password.props.result)}`)).toEqual([
      "leaky-instance: user-data contains a generated secret value (AWS EC2 user-data guidance, CKV_AWS_46)",
    ]);
    expect(messages("-----BEGIN EC PRIVATE KEY-----")[0]).toMatch(
      /^leaky-instance: user-data matches the secret pattern -----BEGIN/,
    );
    expect(messages('db_password: "hunter2hunter2"')).toHaveLength(1);
    expect(messages("AKIAABCDEFGHIJKLMNOP")).toHaveLength(1);
    // Placeholders filled on the node are not secrets.
    expect(messages("password: '@APP_PASSWORD@'")).toEqual([]);
  });

  test("the pattern list is configurable", () => {
    const instance = crafted(
      INSTANCE,
      { ...goodInstance, ...encodeUserData("#cloud-config\n# internal-token-123\n") },
      "i",
    );
    const rule = STACK_RULES.find((r) => r.id === "no-secrets-in-user-data")!;
    expect(rule.check([instance], { secretPatterns: DEFAULT_SECRET_PATTERNS })).toEqual([]);
    expect(rule.check([instance], { secretPatterns: ["internal-token-\\d+"] })).toHaveLength(1);
  });
});

describe("breaking the program fails the policies (a recorded plan, mutated)", () => {
  test("removing IMDSv2 from an instance", () => {
    const mutated = dev.map((r) =>
      r.name === "s2-instance"
        ? { ...r, props: { ...r.props, metadataOptions: { httpTokens: "optional" } } }
        : r,
    );
    expect(evaluate(mutated).map((v) => v.message)).toEqual([
      "s2-instance: does not require IMDSv2 (metadataOptions.httpTokens must be required) (FSBP EC2.8, CKV_AWS_79)",
    ]);
  });

  test("opening port 22", () => {
    const rule = dev.find((r) => r.name === "firewalls-lb-in-tcp443-from-internet")!;
    const mutated = [
      ...dev,
      {
        ...rule,
        name: "firewalls-lb-in-tcp22-from-internet",
        props: { ...rule.props, fromPort: 22, toPort: 22 },
      },
    ];
    expect(
      evaluate(mutated)
        .map((v) => v.rule)
        .sort(),
    ).toEqual(["no-ssh-or-rdp", "world-ingress-only-https-on-lb"]);
  });

  test("on a plan of a stack whose config widens nothing, the same holds", async () => {
    const mysql = stackOf(
      await planConfig({
        domain: "www.example.com",
        dbEngine: "mysql",
        certificate: "acm",
        hostedZone: "example.com",
      }),
    );
    expect(evaluate(mysql)).toEqual([]);
  });
});

test("the pack pins the program's @pulumi/pulumi", () => {
  const pack = JSON.parse(
    fs.readFileSync(path.join(PROJECT_DIR, "policy", "package.json"), "utf8"),
  );
  const program = JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, "package.json"), "utf8"));
  expect(pack.dependencies["@pulumi/pulumi"]).toBe(program.dependencies["@pulumi/pulumi"]);
  expect(pack.dependencies["@pulumi/policy"]).toBe("~1.21.0");
});

describe("the pack's CrossGuard policies (called as Pulumi calls them)", () => {
  // Loaded lazily: the module imports only types from @pulumi/policy.
  const load = () => require("../policy/policies") as typeof import("../policy/policies");

  test("a resource policy reports a violation naming the resource and the control", () => {
    const { resourcePolicies } = load();
    const imdsv2 = resourcePolicies.find((p) => p.name === "imdsv2-required")!;
    const reported: string[] = [];
    const validate = imdsv2.validateResource as (
      args: unknown,
      report: (m: string) => void,
    ) => void;
    validate(
      {
        type: INSTANCE,
        name: "web",
        props: { ...goodInstance, metadataOptions: { httpTokens: "optional" } },
      },
      (m) => reported.push(m),
    );
    validate({ type: INSTANCE, name: "ok", props: goodInstance }, (m) => reported.push(m));
    expect(reported).toEqual([
      "web: does not require IMDSv2 (metadataOptions.httpTokens must be required) (FSBP EC2.8, CKV_AWS_79)",
    ]);
    expect(resourcePolicies.every((p) => p.enforcementLevel === "mandatory")).toBe(true);
  });

  test("a stack policy follows property dependencies, as a preview provides them before ids exist", () => {
    const { stackPolicies } = load();
    const ssm = stackPolicies.find((p) => p.name === "instances-managed-by-ssm")!;
    const node = (
      urn: string,
      type: string,
      props: Record<string, unknown>,
      deps: Record<string, unknown[]> = {},
    ) => ({
      urn,
      type,
      name: urn,
      props,
      propertyDependencies: deps,
    });
    const role = node("role", "aws:iam/role:Role", {});
    const profile = node(
      "profile",
      "aws:iam/instanceProfile:InstanceProfile",
      {},
      { role: [role] },
    );
    const attachment = node(
      "ssm",
      "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
      { policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" },
      { role: [role] },
    );
    const managed = node("managed", INSTANCE, {}, { iamInstanceProfile: [profile] });
    const orphan = node("orphan", INSTANCE, {});
    const reported: string[] = [];
    const validate = ssm.validateStack as (args: unknown, report: (m: string) => void) => void;
    validate(
      { resources: [role, profile, attachment, managed, orphan], getConfig: () => ({}) },
      (m) => reported.push(m),
    );
    expect(reported).toEqual([
      "orphan: has no instance profile whose role is managed by SSM (FSBP SSM.1)",
    ]);
  });

  test("the secret-pattern list comes from the pack's config", () => {
    const { stackPolicies } = load();
    const secrets = stackPolicies.find((p) => p.name === "no-secrets-in-user-data")!;
    const instance = {
      urn: "i",
      type: INSTANCE,
      name: "i",
      props: encodeUserData("#cloud-config\n# token-42\n"),
      propertyDependencies: {},
    };
    const run = (config: object) => {
      const reported: string[] = [];
      (secrets.validateStack as (args: unknown, report: (m: string) => void) => void)(
        { resources: [instance], getConfig: () => config },
        (m) => reported.push(m),
      );
      return reported;
    };
    expect(run({})).toEqual([]);
    expect(run({ secretPatterns: ["token-\\d+"] })).toHaveLength(1);
  });
});
