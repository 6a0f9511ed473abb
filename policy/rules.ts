// webstack's security controls as pure predicates: the policy pack and the jest suite both run these.
// No Pulumi import: a resource is its type, name, properties, and the resources a property refers to.
import * as zlib from "zlib";
import { decodeUserData } from "../cloud-init/userDataEncoding";
import { parseCidr } from "../model/ipv4";
import { PORTS } from "../model/topology";

export interface Resource {
  readonly type: string;
  readonly name: string;
  readonly props: Readonly<Record<string, unknown>>;
  /** The resources a property's value comes from (ids, names, ARNs of other resources). */
  linked(prop: string): Resource[];
}

export interface RuleConfig {
  /** Regular expressions that must match nowhere in user-data. */
  readonly secretPatterns: readonly string[];
}

/** Values that look like secrets; placeholders such as '@APP_PASSWORD@' are not. */
export const DEFAULT_SECRET_PATTERNS: readonly string[] = [
  "-----BEGIN (RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----",
  "\\b(AKIA|ASIA)[0-9A-Z]{16}\\b",
  "(?i)aws_secret_access_key",
  "(?i)(password|passwd|secret|api_key|apikey)[\"']?\\s*[:=]\\s*[\"'](?!@)[^\"'\\s]{8,}[\"']",
  // Unquoted (datadog.yaml's `api_key: <hex>`, env lines `DB_APP_PASSWORD=…`); a placeholder
  // (@…@), a variable ($…, {{…}}, <…>, %…%) or a path is not a value.
  "(?i)(password|passwd|secret|api_key|apikey)[\"']?\\s*[:=]\\s*(?![\\s\"'@$<{%/])[^\\s\"']{8,}",
];

export interface ResourceRule {
  readonly id: string;
  /** The control it enforces (FSBP, checkov), as messages cite it. */
  readonly control: string;
  readonly description: string;
  readonly types: readonly string[];
  /** One message per violation, empty when the resource complies. */
  check(resource: Resource): string[];
}

export interface StackRule {
  readonly id: string;
  readonly control: string;
  readonly description: string;
  check(
    resources: readonly Resource[],
    config: RuleConfig,
  ): { resource: string; message: string }[];
}

const SG = "aws:ec2/securityGroup:SecurityGroup";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule";
const LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule";
const INSTANCE = "aws:ec2/instance:Instance";
const BUCKET_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2";
const SSM_PARAMETER = "aws:ssm/parameter:Parameter";
const BUCKET = "aws:s3/bucket:Bucket";
const EIP = "aws:ec2/eip:Eip";
const EIP_ASSOCIATION = "aws:ec2/eipAssociation:EipAssociation";
const VPC = "aws:ec2/vpc:Vpc";
const RDS_INSTANCE = "aws:rds/instance:Instance";
const RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup";
const APP_ROLES = ["primary", "replica"];
/** The database's ports between nodes: MySQL's, and Galera's group, IST and SST. */
const DATABASE_PORTS = [PORTS.mysql, PORTS.galera, PORTS.galeraIst, PORTS.galeraSst];
/** Where a VPC's CIDR cannot be resolved: RFC 1918's private ranges. */
const PRIVATE_IPV4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/**
 * A property's value, or UNKNOWN when a preview does not know it yet: CrossGuard's props throw on
 * reading an unknown value, which would skip the whole stack policy (advisory) instead of one value.
 */
const UNKNOWN = Symbol("unknown at preview");
function known(r: Resource, prop: string): unknown {
  try {
    return r.props[prop];
  } catch {
    return UNKNOWN;
  }
}

const tagsOf = (r: Resource) => (r.props.tags ?? {}) as Record<string, string>;
const num = (v: unknown) => (typeof v === "number" ? v : v === undefined ? undefined : Number(v));

/** The ports a rule opens, as [from, to]; all ports when the protocol is "-1". */
function portRange(r: Resource): [number, number] {
  if (r.props.ipProtocol === "-1" || r.props.ipProtocol === "all") return [0, 65535];
  return [num(r.props.fromPort) ?? 0, num(r.props.toPort) ?? 65535];
}
const opens = (r: Resource, port: number) => {
  const [from, to] = portRange(r);
  return from <= port && port <= to;
};

/** Whether IPv4 block `inner` lies inside `outer` (both strictly written CIDRs). */
function ipv4Inside(inner: string, outer: string): boolean {
  const a = parseCidr(inner);
  const b = parseCidr(outer);
  if (!a || !b || a.prefix < b.prefix) return false;
  const size = 2 ** (32 - b.prefix);
  return Math.floor(a.network / size) === Math.floor(b.network / size);
}

/** An IPv6 CIDR as its eight 16-bit groups and prefix, or undefined (no embedded IPv4 form). */
export function parseIpv6Cidr(
  text: string,
): { readonly groups: readonly number[]; readonly prefix: number } | undefined {
  const match = /^([0-9a-fA-F:]+)\/(\d{1,3})$/.exec(text);
  if (!match || Number(match[2]) > 128) return undefined;
  const halves = match[1].split("::");
  if (halves.length > 2) return undefined;
  const split = (s: string) => (s === "" ? [] : s.split(":"));
  const head = split(halves[0]);
  const tail = halves.length === 2 ? split(halves[1]) : [];
  if ([...head, ...tail].some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  return { groups: groups.map((g) => parseInt(g, 16)), prefix: Number(match[2]) };
}

/** Inside fc00::/7 (unique local) or exactly ::1/128; everything else is the world. */
function ipv6Private(block: { readonly groups: readonly number[]; readonly prefix: number }) {
  const loopback =
    block.prefix === 128 && block.groups.slice(0, 7).every((g) => g === 0) && block.groups[7] === 1;
  return loopback || (block.prefix >= 7 && (block.groups[0] & 0xfe00) === 0xfc00);
}

/**
 * Why an ingress rule's source is the world, "" when it is not, undefined when it cannot be parsed.
 * IPv4: the world is anything not inside the VPC's own CIDR (the group's vpcId, resolved), or,
 * where the VPC cannot be resolved, not inside RFC 1918. IPv6: anything outside fc00::/7 and
 * ::1/128 (the stack's VPC has no IPv6 block; an Amazon-provided one would count as the world).
 */
function worldReason(source: string, family: 4 | 6, vpcCidr: string | undefined) {
  if (family === 6) {
    const block = parseIpv6Cidr(source);
    if (!block) return undefined;
    return ipv6Private(block) ? "" : "outside fc00::/7 and ::1/128";
  }
  if (!parseCidr(source)) return undefined;
  const inside = vpcCidr ? [vpcCidr] : PRIVATE_IPV4;
  if (inside.some((block) => ipv4Inside(source, block))) return "";
  return vpcCidr ? `outside the VPC's ${vpcCidr}` : "outside RFC 1918's private ranges";
}

export const RESOURCE_RULES: readonly ResourceRule[] = [
  {
    id: "no-ssh-or-rdp",
    control: "FSBP EC2.13/EC2.14, CKV_AWS_24/25",
    description:
      "No rule for port 22 or 3389, from anywhere (access is through SSM Session Manager)",
    types: [INGRESS, EGRESS, LEGACY_RULE],
    check: (r) => [22, 3389].filter((port) => opens(r, port)).map((port) => `opens port ${port}`),
  },
  {
    id: "database-only-from-groups",
    control: "webstack east-west rule",
    description:
      "The database's ports (MySQL's 3306, Galera's 4567, 4568 and 4444) are opened only to referenced security groups, never to address ranges",
    types: [INGRESS],
    check: (r) =>
      r.props.referencedSecurityGroupId === undefined ||
      r.props.cidrIpv4 ||
      r.props.cidrIpv6 ||
      r.props.prefixListId
        ? DATABASE_PORTS.filter((port) => opens(r, port)).map(
            (port) =>
              `opens port ${port} to an address range instead of a referenced security group`,
          )
        : [],
  },
  {
    id: "no-inline-rules",
    control: "AWS provider guidance: never mix inline and standalone rules",
    description:
      "Security groups have no inline rules, and no legacy aws.ec2.SecurityGroupRule is used",
    types: [SG, LEGACY_RULE],
    check: (r) => {
      if (r.type === LEGACY_RULE)
        return ["uses aws.ec2.SecurityGroupRule; use aws.vpc.SecurityGroupIngressRule/EgressRule"];
      return (["ingress", "egress"] as const)
        .filter((k) => Array.isArray(r.props[k]) && (r.props[k] as unknown[]).length > 0)
        .map((k) => `has inline ${k} rules`);
    },
  },
  {
    id: "described",
    control: "FSBP EC2 hygiene, CKV_AWS_23",
    description: "Every security group and rule has a description",
    types: [SG, INGRESS, EGRESS],
    check: (r) =>
      typeof r.props.description === "string" && r.props.description.trim()
        ? []
        : ["has no description"],
  },
  {
    id: "imdsv2-required",
    control: "FSBP EC2.8, CKV_AWS_79",
    description: "Instances require IMDSv2 (session tokens)",
    types: [INSTANCE],
    check: (r) =>
      (r.props.metadataOptions as Record<string, unknown> | undefined)?.httpTokens === "required"
        ? []
        : ["does not require IMDSv2 (metadataOptions.httpTokens must be required)"],
  },
  {
    id: "encrypted-volumes",
    control: "FSBP EC2.3/EC2.7, CKV_AWS_8",
    description:
      "Root volumes, an instance's EBS block devices, and EBS volumes are encrypted (encrypted: true)",
    types: [INSTANCE, "aws:ebs/volume:Volume"],
    check: (r) => {
      if (r.type !== INSTANCE) return r.props.encrypted === true ? [] : ["is not encrypted"];
      const root = (r.props.rootBlockDevice as Record<string, unknown> | undefined)?.encrypted;
      const devices = (
        Array.isArray(r.props.ebsBlockDevices) ? r.props.ebsBlockDevices : []
      ) as Record<string, unknown>[];
      return [
        ...(root === true ? [] : ["has an unencrypted root volume"]),
        ...devices
          .filter((d) => d.encrypted !== true)
          .map((d) => `has an unencrypted EBS block device ${String(d.deviceName ?? "")}`),
      ];
    },
  },
  {
    id: "no-public-ip-on-app-nodes",
    control: "FSBP EC2.9, CKV_AWS_88",
    description: "App nodes (Role primary or replica) have no public IP",
    types: [INSTANCE],
    check: (r) =>
      APP_ROLES.includes(tagsOf(r).Role) && r.props.associatePublicIpAddress !== false
        ? [`is an app node (Role ${tagsOf(r).Role}) without associatePublicIpAddress: false`]
        : [],
  },
  {
    id: "rds-private",
    control: "FSBP RDS.2, CKV_AWS_17",
    description: "RDS instances are not publicly accessible (publiclyAccessible: false)",
    types: [RDS_INSTANCE],
    check: (r) =>
      r.props.publiclyAccessible === false ? [] : ["is not set publiclyAccessible: false"],
  },
  {
    id: "rds-encrypted",
    control: "FSBP RDS.3, CKV_AWS_16",
    description: "RDS instances encrypt their storage (storageEncrypted: true)",
    types: [RDS_INSTANCE],
    check: (r) => (r.props.storageEncrypted === true ? [] : ["does not encrypt its storage"]),
  },
  {
    id: "rds-multi-az-with-backups",
    control: "FSBP RDS.5/RDS.11, CKV_AWS_157/CKV_AWS_133",
    description:
      "RDS instances run Multi-AZ and keep automated backups (backupRetentionPeriod of 1 day or more)",
    types: [RDS_INSTANCE],
    check: (r) => [
      ...(r.props.multiAz === true ? [] : ["is not Multi-AZ"]),
      ...((num(r.props.backupRetentionPeriod) ?? 0) >= 1 ? [] : ["keeps no automated backups"]),
    ],
  },
  {
    id: "subnets-map-no-public-ips",
    control: "FSBP EC2.15, CKV_AWS_130",
    description: "No subnet hands out public IPs on launch",
    types: ["aws:ec2/subnet:Subnet"],
    check: (r) => (r.props.mapPublicIpOnLaunch === true ? ["maps public IPs on launch"] : []),
  },
  {
    id: "default-security-group-closed",
    control: "FSBP EC2.2, CKV2_AWS_12",
    description: "The VPC's default security group has no rules",
    types: ["aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"],
    check: (r) =>
      (["ingress", "egress"] as const)
        .filter((k) => Array.isArray(r.props[k]) && (r.props[k] as unknown[]).length > 0)
        .map((k) => `has ${k} rules`),
  },
  {
    id: "log-retention",
    control: "CKV_AWS_338, FSBP CloudWatch hygiene",
    description: "Log groups keep logs for a set number of days",
    types: ["aws:cloudwatch/logGroup:LogGroup"],
    check: (r) => ((num(r.props.retentionInDays) ?? 0) > 0 ? [] : ["has no retention"]),
  },
  {
    id: "objects-sse-kms",
    control: "FSBP S3.17, CKV_AWS_186",
    description:
      "Every S3 object the stack uploads is encrypted with SSE-KMS (serverSideEncryption aws:kms)",
    types: [BUCKET_OBJECT],
    check: (r) =>
      r.props.serverSideEncryption === "aws:kms"
        ? []
        : [
            `is not encrypted with SSE-KMS (serverSideEncryption is ${String(r.props.serverSideEncryption ?? "unset")}, not aws:kms)`,
          ],
  },
];

const byType = (resources: readonly Resource[], type: string) =>
  resources.filter((r) => r.type === type);

/**
 * Text hidden in base64 runs: cloud-init's write_files `encoding: b64`/`base64`, and gzip+base64
 * (`gz+b64`, `gzip+base64`), single-line or as a block of base64 lines. Only runs that decode to
 * text count, so a random password (itself base64-like) is not turned into noise.
 */
function decodedRuns(text: string): string[] {
  const joined = text.replace(/\n[ \t]*(?=[A-Za-z0-9+/]+=*[ \t]*$)/gm, "");
  const run = /[A-Za-z0-9+/]{16,}={0,2}/g;
  const runs = new Set([...(text.match(run) ?? []), ...(joined.match(run) ?? [])]);
  return [...runs].flatMap((run) => {
    let bytes = Buffer.from(run, "base64");
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
      try {
        bytes = zlib.gunzipSync(bytes);
      } catch {
        return [];
      }
    }
    const decoded = bytes.toString("utf8");
    return /^[\t\n\r\x20-\x7e\u00a0-\uffef]+$/.test(decoded) ? [decoded] : [];
  });
}

const T_PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock";
const T_ENCRYPTION =
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration";
const T_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy";

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);

/** A policy document's statements; none when it is not JSON. */
function statementsOf(policy: string): Record<string, unknown>[] {
  try {
    return list((JSON.parse(policy) as { Statement?: unknown }).Statement) as Record<
      string,
      unknown
    >[];
  } catch {
    return [];
  }
}

/** Whether a bucket policy denies every action, to everyone, on requests without TLS. */
function deniesPlainHttp(policy: string): boolean {
  return statementsOf(policy).some((s) => {
    const principal = s?.Principal;
    const everyone =
      principal === "*" ||
      list((principal as Record<string, unknown> | undefined)?.AWS).includes("*");
    const condition = (s?.Condition as Record<string, Record<string, unknown>> | undefined)?.Bool;
    return (
      s?.Effect === "Deny" &&
      everyone &&
      list(s.Action).includes("s3:*") &&
      String(condition?.["aws:SecureTransport"]) === "false"
    );
  });
}

const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
/** What the SSM agent needs to register the instance and open Session Manager's channels. */
const SESSION_MANAGER_NEEDS = ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel"];

/** Whether a role policy's Allow statements on "*" grant what Session Manager's agent needs. */
function allowsSessionManager(policy: string): boolean {
  const allowed = statementsOf(policy)
    .filter((s) => s?.Effect === "Allow" && s.Condition === undefined)
    .filter((s) => list(s.Resource).includes("*"))
    .flatMap((s) => list(s.Action).map(String));
  return SESSION_MANAGER_NEEDS.every((action) => allowed.includes(action));
}

/** A JavaScript RegExp from a pattern that may start with the inline flag (?i). */
function compile(pattern: string): RegExp {
  return pattern.startsWith("(?i)") ? new RegExp(pattern.slice(4), "i") : new RegExp(pattern);
}

export const STACK_RULES: readonly StackRule[] = [
  {
    // A stack rule: the node a rule opens is its security group's (securityGroupId, resolved),
    // never the rule's own tags; and "inside" is the group's VPC's CIDR.
    id: "world-ingress-only-https-on-lb",
    control: "FSBP EC2.18/EC2.19, CKV_AWS_24/25/260",
    description:
      "Ingress from any range outside the VPC only to ports 80 and 443, and only on the load balancer's group; every ingress rule's group resolves to a security group of the stack",
    check: (resources) =>
      byType(resources, INGRESS).flatMap((rule) => {
        const violation = (message: string) => [{ resource: rule.name, message }];
        const groups = rule.linked("securityGroupId").filter((g) => g.type === SG);
        if (groups.length !== 1)
          return violation(
            `attaches to a security group the policy cannot resolve (${String(known(rule, "securityGroupId") ?? "unset")})`,
          );
        const group = groups[0];
        const vpc = group.linked("vpcId").find((v) => v.type === VPC);
        const vpcCidr = vpc ? known(vpc, "cidrBlock") : undefined;
        const sources = [
          [known(rule, "cidrIpv4"), 4],
          [known(rule, "cidrIpv6"), 6],
        ] as const;
        const [from, to] = portRange(rule);
        const ports = from === to ? `port ${from}` : `ports ${from}-${to}`;
        return sources.flatMap(([source, family]) => {
          if (typeof source !== "string") return []; // none, or unknown at preview
          const reason = worldReason(
            source,
            family,
            typeof vpcCidr === "string" ? vpcCidr : undefined,
          );
          if (reason === undefined)
            return violation(`has an address range the policy cannot parse: ${source}`);
          if (reason === "") return [];
          const problems: string[] = [];
          if (!(from === to && (from === 80 || from === 443)))
            problems.push(`opens ${ports} to ${source} (${reason})`);
          const role = tagsOf(group).Role;
          if (role !== "loadbalancer")
            problems.push(
              `opens ${source} on security group ${group.name}, whose Role is ${role ?? "unset"}`,
            );
          return problems.flatMap(violation);
        });
      }),
  },
  {
    id: "vpc-flow-logs",
    control: "FSBP EC2.6, CKV2_AWS_11",
    description: "Every VPC has flow logs capturing all traffic",
    check: (resources) => {
      const logs = byType(resources, "aws:ec2/flowLog:FlowLog").filter(
        (f) => f.props.trafficType === "ALL",
      );
      return byType(resources, "aws:ec2/vpc:Vpc")
        .filter((vpc) => !logs.some((f) => f.linked("vpcId").includes(vpc)))
        .map((vpc) => ({ resource: vpc.name, message: "has no flow log capturing ALL traffic" }));
    },
  },
  {
    id: "instances-managed-by-ssm",
    control: "FSBP SSM.1",
    description:
      "Every instance has an instance profile whose role has an inline policy (aws.iam.RolePolicy) allowing Session Manager's agent: ssm:UpdateInstanceInformation and ssmmessages:CreateControlChannel",
    check: (resources) => {
      // A policy unknown at preview (one that names the account) is judged at update.
      const ssmRoles = byType(resources, ROLE_POLICY)
        .filter((p) => {
          const policy = known(p, "policy");
          return policy === UNKNOWN || (typeof policy === "string" && allowsSessionManager(policy));
        })
        .flatMap((p) => p.linked("role"));
      return byType(resources, INSTANCE)
        .filter((i) => {
          const roles = i.linked("iamInstanceProfile").flatMap((p) => p.linked("role"));
          return !roles.some((role) => ssmRoles.includes(role));
        })
        .map((i) => ({
          resource: i.name,
          message: "has no instance profile whose role is managed by SSM",
        }));
    },
  },
  {
    id: "rds-tls-required",
    control: "webstack: TLS in transit",
    description:
      "Every RDS instance uses a parameter group of the stack's that sets require_secure_transport to 1 (ON): a plain connection is refused",
    check: (resources) =>
      byType(resources, RDS_INSTANCE)
        .filter(
          (i) =>
            !i
              .linked("parameterGroupName")
              .filter((g) => g.type === RDS_PARAMETER_GROUP)
              .some((g) =>
                ((g.props.parameters ?? []) as Record<string, unknown>[]).some(
                  (p) =>
                    p.name === "require_secure_transport" &&
                    ["1", "ON"].includes(String(p.value).toUpperCase()),
                ),
              ),
        )
        .map((i) => ({
          resource: i.name,
          message: "has no parameter group of the stack's with require_secure_transport 1",
        })),
  },
  {
    id: "elastic-ips-only-on-lb",
    control: "FSBP EC2.9, CKV_AWS_88",
    description:
      "An Elastic IP (aws.ec2.Eip's instance or networkInterface, aws.ec2.EipAssociation's instanceId or networkInterfaceId) goes only to the load balancer (Role loadbalancer)",
    check: (resources) => {
      const targets: Record<string, readonly string[]> = {
        [EIP]: ["instance", "networkInterface"],
        [EIP_ASSOCIATION]: ["instanceId", "networkInterfaceId"],
      };
      return resources
        .filter((r) => r.type in targets)
        .flatMap((r) =>
          targets[r.type]
            .filter((prop) => known(r, prop) !== undefined)
            .flatMap((prop) => {
              const linked = r.linked(prop);
              if (linked.length === 0)
                return [
                  `gives an Elastic IP to ${String(known(r, prop))}, which the policy cannot resolve`,
                ];
              return linked
                .filter((t) => tagsOf(t).Role !== "loadbalancer")
                .map(
                  (t) =>
                    `gives an Elastic IP to ${t.name}, whose Role is ${tagsOf(t).Role ?? "unset"}`,
                );
            })
            .map((message) => ({ resource: r.name, message })),
        );
    },
  },
  {
    id: "buckets-private-kms-tls-only",
    control: "FSBP S3.1/S3.8, S3.5, S3.17",
    description:
      "Every bucket has a public access block with all four settings true, default encryption SSE-KMS (aws:kms), and a bucket policy denying s3:* to everyone when aws:SecureTransport is false",
    check: (resources) => {
      const of = (type: string, bucket: Resource) =>
        byType(resources, type).filter((r) => r.linked("bucket").includes(bucket));
      const blocks = [
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
      ];
      return byType(resources, BUCKET).flatMap((bucket) => {
        const problems: string[] = [];
        if (!of(T_PUBLIC_ACCESS, bucket).some((b) => blocks.every((k) => b.props[k] === true)))
          problems.push("has no public access block with all four settings true");
        const kms = of(T_ENCRYPTION, bucket).some((c) =>
          ((c.props.rules ?? []) as Record<string, Record<string, unknown> | undefined>[]).some(
            (rule) => rule.applyServerSideEncryptionByDefault?.sseAlgorithm === "aws:kms",
          ),
        );
        if (!kms) problems.push("has no default encryption with SSE-KMS (aws:kms)");
        // A policy unknown at preview (it names the bucket's ARN) is judged at update.
        if (
          !of(T_BUCKET_POLICY, bucket).some((p) => {
            const policy = known(p, "policy");
            return policy === UNKNOWN || (typeof policy === "string" && deniesPlainHttp(policy));
          })
        )
          problems.push(
            "has no bucket policy denying every request without TLS (aws:SecureTransport false)",
          );
        return problems.map((message) => ({ resource: bucket.name, message }));
      });
    },
  },
  {
    // The id predates bundles; policy configs name it, so it stays.
    id: "no-secrets-in-user-data",
    control: "AWS EC2 user-data guidance, CKV_AWS_46",
    description:
      "User-data and the bundles uploaded for the nodes hold no secret: no generated secret value, nothing matching the secret patterns",
    // What the pack sees: every resource's inputs, secrets included in plain text (CrossGuard
    // unwraps them), so generated values (random passwords, TLS keys) and SecureString
    // parameters' values are compared with user-data. What it cannot see: the stack's config
    // itself — a config secret is seen only where the program puts it into a resource (the
    // Datadog key's SecureString), and nothing whose value is unknown at preview.
    check: (resources, config) => {
      const secrets = new Map<string, string>(); // value → how a message names it
      const remember = (value: unknown, label: string) => {
        if (typeof value === "string" && value.length >= 8 && !secrets.has(value))
          secrets.set(value, label);
      };
      for (const r of byType(resources, "random:index/randomPassword:RandomPassword"))
        remember(known(r, "result"), "a generated secret value");
      for (const r of byType(resources, "tls:index/privateKey:PrivateKey"))
        remember(known(r, "privateKeyPem"), "a generated secret value");
      for (const r of byType(resources, SSM_PARAMETER).filter(
        (p) => p.props.type === "SecureString",
      ))
        remember(known(r, "value"), `the value of the secret ${r.name}`);
      const patterns = config.secretPatterns.map(compile);
      const leaks = (resource: Resource, what: string, plain: string) => {
        const texts = [plain, ...decodedRuns(plain)];
        const found = [
          ...[...secrets]
            .filter(([secret]) => texts.some((t) => t.includes(secret)))
            .map(([, label]) => `contains ${label}`),
          ...patterns
            .filter((p) => texts.some((t) => p.test(t)))
            .map((p) => `matches the secret pattern ${p.source}`),
        ];
        return [...new Set(found)].map((message) => ({
          resource: resource.name,
          message: `${what} ${message}`,
        }));
      };
      const userData = byType(resources, INSTANCE).flatMap((instance) => {
        try {
          return leaks(instance, "user-data", decodeUserData(instance.props));
        } catch {
          return []; // no user-data, or not known yet at preview
        }
      });
      // A bundle's content is unknown at preview until its inputs are; it is checked at update.
      const bundles = byType(resources, BUCKET_OBJECT)
        .filter((o) => typeof known(o, "content") === "string")
        .flatMap((o) => leaks(o, "object", String(known(o, "content"))));
      return [...userData, ...bundles];
    },
  },
];

export interface Violation {
  readonly rule: string;
  readonly resource: string;
  readonly message: string;
}

/** Runs every rule over a stack's resources; the message names the resource and the control. */
export function evaluate(
  resources: readonly Resource[],
  config: RuleConfig = { secretPatterns: DEFAULT_SECRET_PATTERNS },
): Violation[] {
  const violations: Violation[] = [];
  for (const rule of RESOURCE_RULES) {
    for (const r of resources.filter((res) => rule.types.includes(res.type))) {
      for (const message of rule.check(r)) {
        violations.push({
          rule: rule.id,
          resource: r.name,
          message: `${r.name}: ${message} (${rule.control})`,
        });
      }
    }
  }
  for (const rule of STACK_RULES) {
    for (const v of rule.check(resources, config)) {
      violations.push({
        rule: rule.id,
        resource: v.resource,
        message: `${v.resource}: ${v.message} (${rule.control})`,
      });
    }
  }
  return violations;
}
