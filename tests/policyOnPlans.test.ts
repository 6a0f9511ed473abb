// The policy pack on the program's plans: they pass, and each broken control fails its rule.
import {
  DEFAULT_SECRET_PATTERNS,
  RESOURCE_RULES,
  Resource,
  STACK_RULES,
  evaluate,
} from "../policy/rules";
import * as zlib from "zlib";
import { encodeUserData } from "../cloud-init/userDataEncoding";
import { Plan } from "../plan/plan";
import { revealSecrets } from "../plan/secrets";
import { DEV_TOPOLOGY, T, planConfig, planStack } from "./harness";
import { GOOD_INSTANCE, crafted } from "./policyFixtures";

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

let dev: Resource[];
let prod: Resource[];
let galera: Resource[];
/** prod with `database: rds` (protectData on): the RDS instance's rules have something to judge. */
let rds: Resource[];
let rdsPlan: Plan;
beforeAll(async () => {
  dev = stackOf(await planStack("dev"));
  prod = stackOf(await planStack("prod"));
  galera = stackOf(await planStack("dev", ["webstack:database=galera"]));
  rdsPlan = await planStack("prod", ["database=rds"]);
  rds = stackOf(rdsPlan);
});

describe("the program's own stacks", () => {
  test.each(["dev", "prod", "rds"])("%s passes every policy", (stack) => {
    expect(evaluate({ dev, prod, rds }[stack]!)).toEqual([]);
  });

  test("dev as a galera stack passes every policy: its Galera ports open between its own groups only, the arbitrator's key a SecureString", () => {
    expect(evaluate(galera)).toEqual([]);
    // The rules did look at what galera adds.
    const galeraRules = galera.filter(
      (r) => (r.type === T.ingressRule || r.type === T.egressRule) && r.props.fromPort === 4567,
    );
    expect(galeraRules).toHaveLength(2 * (2 + 4));
    expect(galera.filter((r) => r.name.startsWith("arbitrator-tls-"))).toHaveLength(2);
  });

  test.each([
    ["replication", "3"],
    ["galera", "3"],
    ["galera", "4"],
    ["rds", "3"],
  ])(
    "dev as a %s stack of %s app nodes passes every policy",
    async (database, count) => {
      const plan = await planStack("dev", [`database=${database}`, `appNodeCount=${count}`]);
      expect(plan.outputs.appNodes).toHaveProperty("s3");
      expect(evaluate(stackOf(plan))).toEqual([]);
    },
    60_000,
  );

  test.each([
    ["firewalls-s1-in-tcp4444-from-s2", 4444, "firewalls-s1", "replica"],
    ["firewalls-lb-in-tcp4567-from-s2", 4567, "firewalls-lb", "loadbalancer"],
  ])("a Galera port opened to the world is refused: %s", (name, port, group, role) => {
    const worldOpen = galera.map((r) =>
      r.type === T.ingressRule && r.name === name
        ? {
            ...r,
            props: { ...r.props, cidrIpv4: "0.0.0.0/0", referencedSecurityGroupId: undefined },
          }
        : r,
    );
    const control = "(FSBP EC2.18/EC2.19, CKV_AWS_24/25/260)";
    expect(evaluate(worldOpen)).toEqual([
      // A Galera port, like 3306, is opened to referenced security groups only.
      {
        rule: "database-only-from-groups",
        resource: name,
        message: `${name}: opens port ${port} to an address range instead of a referenced security group (webstack east-west rule)`,
      },
      {
        rule: "world-ingress-only-https-on-lb",
        resource: name,
        message: `${name}: opens port ${port} to 0.0.0.0/0 (outside the VPC's ${DEV_TOPOLOGY.vpcCidr}) ${control}`,
      },
      ...(role === "loadbalancer"
        ? []
        : [
            {
              rule: "world-ingress-only-https-on-lb",
              resource: name,
              message: `${name}: opens 0.0.0.0/0 on security group ${group}, whose Role is ${role} ${control}`,
            },
          ]),
    ]);
  });

  test("every rule looks at resources the program creates (the RDS rules on an rds stack)", () => {
    for (const rule of RESOURCE_RULES) {
      const stack = rule.id.startsWith("rds-") ? rds : dev;
      expect({ rule: rule.id, applies: stack.some((r) => rule.types.includes(r.type)) }).toEqual({
        rule: rule.id,
        applies: true,
      });
    }
  });
});

describe("stack rules reject crafted violations", () => {
  /** An instance whose cloud-config holds `text`. */
  const leak = (text: string) =>
    crafted(
      T.instance,
      { ...GOOD_INSTANCE, ...encodeUserData(`#cloud-config\n${text}\n`) },
      "leaky-instance",
    );
  const ruleMessages = (resources: Resource[], id: string) =>
    evaluate(resources)
      .filter((v) => v.rule === id)
      .map((v) => v.message);

  test("a VPC without flow logs", () => {
    const stack = dev.filter((r) => r.type !== T.flowLog);
    expect(ruleMessages(stack, "vpc-flow-logs")).toEqual([
      "network-vpc: has no flow log capturing ALL traffic (FSBP EC2.6, CKV2_AWS_11)",
    ]);
  });

  test("an instance whose role lacks the SSM policy", () => {
    const stack = dev.filter(
      (r) => !(r.type === T.rolePolicy && r.name === "s1-identity-session-manager"),
    );
    expect(ruleMessages(stack, "instances-managed-by-ssm")).toEqual([
      "s1-instance: has no instance profile whose role is managed by SSM (FSBP SSM.1)",
    ]);
  });

  test("an instance whose Session Manager policy lacks a channel, or is scoped where IAM cannot scope it", () => {
    const withPolicy = (statement: Record<string, unknown>) =>
      dev.map((r) =>
        r.type === T.rolePolicy && r.name === "s1-identity-session-manager"
          ? {
              ...r,
              props: {
                ...r.props,
                policy: JSON.stringify({ Version: "2012-10-17", Statement: [statement] }),
              },
            }
          : r,
      );
    const broken = [
      { Effect: "Allow", Action: "ssm:UpdateInstanceInformation", Resource: "*" },
      {
        Effect: "Deny",
        Action: ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel"],
        Resource: "*",
      },
      {
        Effect: "Allow",
        Action: ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel"],
        Resource: "arn:aws:ssm:eu-west-1:123456789012:managed-instance/mi-0",
      },
    ];
    for (const statement of broken)
      expect(ruleMessages(withPolicy(statement), "instances-managed-by-ssm")).toEqual([
        "s1-instance: has no instance profile whose role is managed by SSM (FSBP SSM.1)",
      ]);
    // The AWS-managed policy no longer stands in for it.
    const s1Role = dev.find((r) => r.type === T.role && r.name === "s1-identity-role")!;
    const managed: Resource = {
      ...crafted(
        T.rolePolicyAttachment,
        { policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" },
        "s1-managed",
      ),
      linked: (prop) => (prop === "role" ? [s1Role] : []),
    };
    expect(
      ruleMessages(
        [
          ...dev.filter(
            (r) => !(r.type === T.rolePolicy && r.name === "s1-identity-session-manager"),
          ),
          managed,
        ],
        "instances-managed-by-ssm",
      ),
    ).toEqual(["s1-instance: has no instance profile whose role is managed by SSM (FSBP SSM.1)"]);
  });

  test("user-data holding a generated secret, or anything matching a secret pattern", () => {
    const password = dev.find((r) => r.type === T.randomPassword)!;
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

  test("a bundle (an S3 object) holding a generated secret, or anything matching a secret pattern", () => {
    const password = dev.find((r) => r.type === T.randomPassword)!;
    const bundle = (text: string) =>
      crafted(T.bucketObject, { key: "bundles/s1/x.json", content: text }, "leaky-bundle");
    const messages = (text: string) =>
      ruleMessages([...dev, bundle(text)], "no-secrets-in-user-data");
    expect(
      messages(JSON.stringify({ files: [{ content: String(password.props.result) }] })),
    ).toEqual([
      "leaky-bundle: object contains a generated secret value (AWS EC2 user-data guidance, CKV_AWS_46)",
    ]);
    expect(messages("-----BEGIN PRIVATE KEY-----")[0]).toMatch(
      /^leaky-bundle: object matches the secret pattern -----BEGIN/,
    );
    // Not known yet (a preview): nothing to judge.
    expect(
      ruleMessages([...dev, crafted(T.bucketObject, {}, "unknown")], "no-secrets-in-user-data"),
    ).toEqual([]);
    // The program's own bundles are among what the rule reads (and the app's release, a file).
    expect(dev.filter((r) => r.type === T.bucketObject)).toHaveLength(4);
  });

  test("unquoted secrets, the stack's secret values, and base64 or gzip+base64 write_files", () => {
    const password = String(dev.find((r) => r.type === T.randomPassword)!.props.result);
    const apiKey = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    const parameter = crafted(
      T.ssmParameter,
      { name: "/webstack/dev/shared/datadog-api-key", type: "SecureString", value: apiKey },
      "datadog-api-key",
    );
    const messages = (text: string) =>
      ruleMessages([...dev, parameter, leak(text)], "no-secrets-in-user-data").map((m) =>
        m.replace(/ \(AWS EC2 user-data guidance, CKV_AWS_46\)$/, ""),
      );
    const writeFile = (encoding: string, content: string) =>
      `write_files:\n  - path: /etc/datadog-agent/datadog.yaml\n    encoding: ${encoding}\n    content: ${content}`;
    const b64 = (text: string) => Buffer.from(text).toString("base64");
    const gzb64 = (text: string) => zlib.gzipSync(Buffer.from(text)).toString("base64");

    expect(messages("api_key: 0123456789abcdef0123456789abcdef")).toHaveLength(1);
    expect(messages("DB_APP_PASSWORD=s3cretValue99")).toHaveLength(1);
    expect(messages(`# ${apiKey}`)).toEqual([
      "leaky-instance: user-data contains the value of the secret datadog-api-key",
    ]);
    expect(messages(writeFile("b64", b64("password: hunter2hunter2\n")))).toHaveLength(1);
    expect(messages(writeFile("base64", b64(`key ${password}\n`)))).toEqual([
      "leaky-instance: user-data contains a generated secret value",
    ]);
    expect(messages(writeFile("gz+b64", gzb64(`api_key: ${apiKey}\n`)))).toEqual([
      "leaky-instance: user-data contains the value of the secret datadog-api-key",
      expect.stringMatching(/^leaky-instance: user-data matches the secret pattern /),
    ]);
    // Placeholders filled on the node, and harmless base64, are not secrets.
    expect(messages("DB_APP_PASSWORD=@DB_APP_PASSWORD@")).toEqual([]);
    expect(messages(writeFile("b64", b64("listen 443 ssl;\n")))).toEqual([]);
  });

  test("an Elastic IP on an app node, by instance or by association", () => {
    const s1 = dev.find((r) => r.name === "s1-instance")!;
    const linkedTo =
      (links: Record<string, Resource[]>) =>
      (prop: string): Resource[] =>
        links[prop] ?? [];
    const eip = {
      ...crafted(T.eip, { domain: "vpc", instance: "i-s1" }, "app-eip"),
      linked: linkedTo({ instance: [s1] }),
    };
    const association = {
      ...crafted(T.eipAssociation, { allocationId: "eipalloc-1", instanceId: "i-s1" }, "app-assoc"),
      linked: linkedTo({ instanceId: [s1] }),
    };
    const lost = crafted(T.eipAssociation, { instanceId: "i-elsewhere" }, "lost-assoc");
    expect(ruleMessages([...dev, eip, association, lost], "elastic-ips-only-on-lb")).toEqual([
      "app-eip: gives an Elastic IP to s1-instance, whose Role is replica (FSBP EC2.9, CKV_AWS_88)",
      "app-assoc: gives an Elastic IP to s1-instance, whose Role is replica (FSBP EC2.9, CKV_AWS_88)",
      "lost-assoc: gives an Elastic IP to i-elsewhere, which the policy cannot resolve (FSBP EC2.9, CKV_AWS_88)",
    ]);
  });

  test("an RDS instance whose parameter group lets plain connections in, or that has none of the stack's", () => {
    expect(ruleMessages(rds, "rds-tls-required")).toEqual([]);
    const isGroup = (r: { type: string }) => r.type === T.rdsParameterGroup;
    // The plan itself changed, so that the instance's links reach the changed group (or none).
    const plain: Plan = {
      ...rdsPlan,
      resources: rdsPlan.resources.map((r) =>
        isGroup(r)
          ? {
              ...r,
              outputs: {
                ...r.outputs,
                parameters: [{ name: "require_secure_transport", value: "OFF" }],
              },
            }
          : r,
      ),
    };
    const none: Plan = { ...rdsPlan, resources: rdsPlan.resources.filter((r) => !isGroup(r)) };
    const message =
      "database-instance: has no parameter group of the stack's with require_secure_transport 1 (webstack: TLS in transit)";
    expect(ruleMessages(stackOf(plain), "rds-tls-required")).toEqual([message]);
    expect(ruleMessages(stackOf(none), "rds-tls-required")).toEqual([message]);
  });

  test("a bucket open to the public, not SSE-KMS, or taking requests without TLS", () => {
    const change = (name: string, props: Record<string, unknown>) =>
      dev.map((r) => (r.name === name ? { ...r, props: { ...r.props, ...props } } : r));
    const messages = (stack: Resource[]) =>
      ruleMessages(stack, "buckets-private-kms-tls-only").map((m) =>
        m.replace(/ \(FSBP S3\.1\/S3\.8, S3\.5, S3\.17\)$/, ""),
      );
    expect(messages(change("files-public-access", { restrictPublicBuckets: false }))).toEqual([
      "files-bucket: has no public access block with all four settings true",
    ]);
    expect(
      messages(
        change("files-encryption", {
          rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
        }),
      ),
    ).toEqual(["files-bucket: has no default encryption with SSE-KMS (aws:kms)"]);
    expect(
      messages(
        change("files-tls-only", {
          policy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:GetObject" }],
          }),
        }),
      ),
    ).toEqual([
      "files-bucket: has no bucket policy denying every request without TLS (aws:SecureTransport false)",
    ]);
    expect(messages(dev.filter((r) => r.type !== T.bucketPolicy))).toHaveLength(1);
  });

  test("the pattern list is configurable", () => {
    const instance = crafted(
      T.instance,
      { ...GOOD_INSTANCE, ...encodeUserData("#cloud-config\n# internal-token-123\n") },
      "i",
    );
    const rule = STACK_RULES.find((r) => r.id === "no-secrets-in-user-data")!;
    expect(rule.check([instance], { secretPatterns: DEFAULT_SECRET_PATTERNS })).toEqual([]);
    expect(rule.check([instance], { secretPatterns: ["internal-token-\\d+"] })).toHaveLength(1);
  });
});

describe("world ingress: any range outside the VPC, on the group the rule attaches to", () => {
  const https = () => dev.find((r) => r.name === "firewalls-lb-in-tcp443-from-internet")!;
  const groupId = (name: string) =>
    String(dev.find((r) => r.name === name)!.props.arn)
      .split("/")
      .pop();
  const s1Group = () => dev.find((r) => r.name === "firewalls-s1")!;
  /** The LB's HTTPS rule with other properties; its group is found from its own securityGroupId. */
  const withRule = (props: Record<string, unknown>): Resource[] => {
    const rule = { ...https().props, ...props };
    const linked = (prop: string) =>
      prop === "securityGroupId"
        ? dev.filter((g) => g.type === T.securityGroup && groupId(g.name) === rule.securityGroupId)
        : https().linked(prop);
    return [...dev, { ...https(), name: "crafted-rule", props: rule, linked }];
  };
  const worldMessages = (resources: Resource[]) =>
    evaluate(resources)
      .filter((v) => v.rule === "world-ingress-only-https-on-lb")
      .map((v) => v.message);
  const CONTROL = "(FSBP EC2.18/EC2.19, CKV_AWS_24/25/260)";

  test.each([
    ["0.0.0.0/1", 8404, "opens port 8404 to 0.0.0.0/1 (outside the VPC's 10.40.0.0/16)"],
    ["192.168.0.0/16", 8404, "opens port 8404 to 192.168.0.0/16 (outside the VPC's 10.40.0.0/16)"],
    ["10.0.0.0/8", 8404, "opens port 8404 to 10.0.0.0/8 (outside the VPC's 10.40.0.0/16)"],
  ])("IPv4 %s on port %d is the world", (cidr, port, message) => {
    expect(worldMessages(withRule({ cidrIpv4: cidr, fromPort: port, toPort: port }))).toEqual([
      `crafted-rule: ${message} ${CONTROL}`,
    ]);
  });

  test.each(["2000::/3", "::/1", "fe80::/10", "fc00::/6"])("IPv6 %s is the world", (cidr) => {
    const messages = worldMessages(
      withRule({ cidrIpv4: undefined, cidrIpv6: cidr, fromPort: 8404, toPort: 8404 }),
    );
    expect(messages).toEqual([
      `crafted-rule: opens port 8404 to ${cidr} (outside fc00::/7 and ::1/128) ${CONTROL}`,
    ]);
  });

  test.each([
    ["cidrIpv4", "10.40.3.0/24"],
    ["cidrIpv6", "fd12:3456::/48"],
    ["cidrIpv6", "::1/128"],
  ])("%s %s is inside: no world violation", (key, cidr) => {
    expect(
      worldMessages(withRule({ cidrIpv4: undefined, [key]: cidr, fromPort: 8404, toPort: 8404 })),
    ).toEqual([]);
  });

  test.each(["0.0.0.0/33", "10.40.0.0", "256.0.0.0/8", "1:2:3/64", "::1::/64"])(
    "an unparseable range %s is a violation",
    (cidr) => {
      const key = cidr.includes(":") ? "cidrIpv6" : "cidrIpv4";
      expect(worldMessages(withRule({ cidrIpv4: undefined, [key]: cidr }))).toEqual([
        `crafted-rule: has an address range the policy cannot parse: ${cidr} ${CONTROL}`,
      ]);
    },
  );

  test("a rule on s1's group tagged Role=loadbalancer is judged by s1's group", () => {
    const messages = worldMessages(
      withRule({ securityGroupId: groupId("firewalls-s1"), tags: { Role: "loadbalancer" } }),
    );
    expect(messages).toEqual([
      `crafted-rule: opens 0.0.0.0/0 on security group firewalls-s1, whose Role is replica ${CONTROL}`,
    ]);
    expect(s1Group().props.tags).toMatchObject({ Role: "replica" });
  });

  test("the VPC endpoints' group (prod: vpcEndpoints on) opened to the world on 443 is a violation", () => {
    const rule = prod.find((r) => r.name === "firewalls-endpoints-in-tcp443-from-lb")!;
    const opened = prod.map((r) =>
      r === rule
        ? {
            ...r,
            props: { ...r.props, cidrIpv4: "0.0.0.0/0", referencedSecurityGroupId: undefined },
          }
        : r,
    );
    expect(worldMessages(prod)).toEqual([]);
    expect(worldMessages(opened)).toEqual([
      `firewalls-endpoints-in-tcp443-from-lb: opens 0.0.0.0/0 on security group firewalls-endpoints, whose Role is network ${CONTROL}`,
    ]);
  });

  test("a rule whose security group cannot be resolved is a violation", () => {
    expect(worldMessages(withRule({ securityGroupId: "sg-0123456789abcdef0" }))).toEqual([
      `crafted-rule: attaches to a security group the policy cannot resolve (sg-0123456789abcdef0) ${CONTROL}`,
    ]);
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
