// Each resource rule rejects a crafted violation of its control, naming resource and control
// (world ingress, a stack rule that resolves a rule's group, is in policyOnPlans.test.ts).
import { RESOURCE_RULES, Resource, evaluate } from "../policy/rules";
import { T } from "./harness";
import { GOOD_INSTANCE, crafted } from "./policyFixtures";

// [rule, crafted violating resource, what the message must say]
const VIOLATIONS: [string, Resource, string][] = [
  [
    "no-ssh-or-rdp",
    crafted(T.ingressRule, {
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
    crafted(T.ingressRule, {
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
    crafted(T.ingressRule, {
      ipProtocol: "tcp",
      fromPort: 3306,
      toPort: 3306,
      cidrIpv4: "10.0.0.0/8",
      description: "x",
    }),
    "opens port 3306 to an address range",
  ],
  [
    "database-only-from-groups",
    crafted(T.ingressRule, {
      ipProtocol: "tcp",
      fromPort: 4444,
      toPort: 4444,
      cidrIpv4: "10.40.0.0/16",
      description: "x",
    }),
    "opens port 4444 to an address range",
  ],
  [
    "no-inline-rules",
    crafted(T.securityGroup, {
      description: "x",
      ingress: [{ fromPort: 443 }],
    }),
    "has inline ingress rules",
  ],
  [
    "no-inline-rules",
    crafted(T.legacySecurityGroupRule, {
      type: "ingress",
      fromPort: 443,
      toPort: 443,
    }),
    "uses aws.ec2.SecurityGroupRule",
  ],
  [
    "described",
    crafted(T.egressRule, {
      ipProtocol: "tcp",
      fromPort: 443,
      toPort: 443,
      cidrIpv4: "0.0.0.0/0",
    }),
    "has no description",
  ],
  [
    "imdsv2-required",
    crafted(T.instance, { ...GOOD_INSTANCE, metadataOptions: { httpTokens: "optional" } }),
    "does not require IMDSv2",
  ],
  [
    "encrypted-volumes",
    crafted(T.instance, { ...GOOD_INSTANCE, rootBlockDevice: { encrypted: false } }),
    "has an unencrypted root volume",
  ],
  [
    "encrypted-volumes",
    crafted(T.instance, {
      ...GOOD_INSTANCE,
      ebsBlockDevices: [
        { deviceName: "/dev/sdf", encrypted: true },
        { deviceName: "/dev/sdg", volumeSize: 100 },
      ],
    }),
    "has an unencrypted EBS block device /dev/sdg",
  ],
  ["encrypted-volumes", crafted(T.volume, { encrypted: false }), "is not encrypted"],
  [
    "no-public-ip-on-app-nodes",
    crafted(T.instance, { ...GOOD_INSTANCE, associatePublicIpAddress: true }),
    "is an app node (Role replica)",
  ],
  [
    "subnets-map-no-public-ips",
    crafted(T.subnet, { mapPublicIpOnLaunch: true }),
    "maps public IPs on launch",
  ],
  [
    "default-security-group-closed",
    crafted(T.defaultSecurityGroup, { egress: [{ protocol: "-1" }] }),
    "has egress rules",
  ],
  ["log-retention", crafted(T.logGroup, { name: "/x" }), "has no retention"],
  ["rds-private", crafted(T.rdsInstance, {}), "is not set publiclyAccessible: false"],
  [
    "rds-private",
    crafted(T.rdsInstance, { publiclyAccessible: true }),
    "is not set publiclyAccessible: false",
  ],
  [
    "rds-encrypted",
    crafted(T.rdsInstance, { storageEncrypted: false }),
    "does not encrypt its storage",
  ],
  [
    "rds-multi-az-with-backups",
    crafted(T.rdsInstance, { multiAz: false, backupRetentionPeriod: 7 }),
    "is not Multi-AZ",
  ],
  [
    "rds-multi-az-with-backups",
    crafted(T.rdsInstance, { multiAz: true, backupRetentionPeriod: 0 }),
    "keeps no automated backups",
  ],
  [
    "objects-sse-kms",
    crafted(T.bucketObject, { key: "bundles/x.json", serverSideEncryption: "AES256" }),
    "is not encrypted with SSE-KMS (serverSideEncryption is AES256, not aws:kms)",
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
