// What the lab builds, as data: its config, network, names, and what it takes from the plan.
import * as crypto from "crypto";
import * as YAML from "yaml";
import { Plan, PlannedResource, plannedUserData } from "../plan/plan";
import { revealSecrets } from "../plan/secrets";
import { CONFIG_KEYS } from "../model/config";
import {
  DEFAULT_APP_NODE_COUNT,
  DatabaseMode,
  NodeName,
  Peer,
  SecurityGroupRule,
  Topology,
  buildTopology,
} from "../model/topology";
import { hostOf, splitCidr } from "../model/ipv4";
import { vpcResolver } from "../model/aws";
import { DEBIAN_ARCHIVE_HOSTS } from "../model/aptSources";

export const LAB_STACK = "lab";
export const LAB_REGION = "eu-west-1";
export const LAB_DOMAIN = "www.example.com";
/** Pebble's hostname (`.test` is reserved: it can never mean a real host). */
export const ACME_HOST = "acme.lab.test";

/** The lab's stack configuration: MariaDB, Let's Encrypt against the lab's Pebble. */
export const LAB_CONFIG: Readonly<Record<string, string>> = {
  "aws:region": LAB_REGION,
  "webstack:domain": LAB_DOMAIN,
  "webstack:certificate": "letsencrypt",
  "webstack:acmeEmail": "ops@example.com",
  "webstack:acmeDirectory": `https://${ACME_HOST}/dir`,
  "webstack:dbEngine": "mariadb",
  "webstack:protectData": "false",
  "webstack:datadog": "false",
};

/**
 * The lab's address plan: the program's own topology for the lab's VPC range and the config `up`
 * was given (`--set appNodeCount=3` boots s3 too).
 */
export function labTopology(sets: Readonly<Record<string, string>> = {}): Topology {
  const config = { ...LAB_CONFIG, ...sets };
  return buildTopology(config["webstack:vpcCidr"] ?? String(CONFIG_KEYS.vpcCidr.default), {
    vpcEndpoints: false,
    database: (config["webstack:database"] ?? "replication") as DatabaseMode,
    appNodeCount: Number(config["webstack:appNodeCount"] ?? DEFAULT_APP_NODE_COUNT),
  });
}

/** The topology of the lab's own config (two app nodes, replication). */
export const LAB_TOPOLOGY = labTopology();

/**
 * What must differ from AWS, in one place (the README lists the same). Everything else — the
 * user-data, its package installs, instance metadata, SSM — runs as on EC2.
 */
export const LAB_DIFFERENCES: readonly string[] = [
  "Vendor downloads are not reachable: the CloudWatch agent's package and Datadog's APT repository " +
    "have no host in the lab, and the S3 stand-in, which serves only the stack's bucket, refuses the SSM " +
    "agent's package (in its region's bucket); their installer units keep retrying in the background " +
    "and the boot completes without them. So no node runs an SSM agent: the lab has no Session Manager.",
  "CloudWatch's metrics have a stand-in that takes the nodes' pushes (the collector's, the boot " +
    "report's, the applier's) in their roles' namespaces and logs them; no alarm evaluates them. CloudWatch Logs has " +
    "none: no node runs the CloudWatch agent (above).",
  "The Debian mirror holds only the packages the user-data and the bundles name (and their dependencies), with " +
    "Debian's own signed indexes, so an unattended upgrade cannot fetch a security update of a package " +
    "the base image already had; the nodes trust the lab's CA (for the mirror, SSM, S3, CloudWatch and " +
    "Pebble stand-ins) as EC2 nodes trust public CAs.",
  "cloud-init's network configuration is off: the lab sets each node's address, as EC2's DHCP would.",
  `The domain resolves to the LB's private address (no Elastic IP); the client lives in the "internet" namespace.`,
  "The data volume is a loop device at the EBS volume's NVMe by-id path.",
  "A host that withholds CAP_SYS_RESOURCE from its containers (one that is a container itself) " +
    "cannot grow a mounted filesystem: there the kernel refuses the grow unit's online resize, and " +
    "the lab's test of a grown data volume checks that refusal instead of the new size.",
];

/** Why the lab refuses `database` rds: the instance is Amazon's, with nothing to stand in for it. */
export const LAB_HAS_NO_RDS =
  "database rds (Amazon RDS for MariaDB) has no lab equivalent; it is proven by the offline " +
  "plan only: npm run plan -- --stack dev --set database=rds";

/**
 * The config the lab cannot run, refused before anything starts: `up --set` and `apply --set`
 * (full keys, as the lab keeps them) ask this first.
 */
export function labRefusal(
  sets: Readonly<Record<string, string>>,
  upSets?: Readonly<Record<string, string>>,
): string | undefined {
  if (sets["webstack:database"] === "rds") return LAB_HAS_NO_RDS;
  if (!upSets) return undefined;
  // The lab's namespaces, addresses and containers are made by `up`: `apply` changes bundles only.
  const changed = SHAPE_KEYS.filter((key) => (sets[key] ?? "") !== (upSets[key] ?? ""));
  return changed.length > 0
    ? `${changed.join(", ")} changes the lab's nodes or their network, which only up builds: ` +
        `npm run lab -- up ${changed.map((key) => `--set ${key.slice("webstack:".length)}=${sets[key] ?? ""}`).join(" ")}`
    : undefined;
}

/** The config keys that decide the lab's nodes and their network: `apply` refuses a change to them. */
const SHAPE_KEYS = ["webstack:appNodeCount", "webstack:database", "webstack:vpcCidr"] as const;

/** Namespaces: one per node, plus "internet" (client, Pebble, mirror, SSM, resolver, the bridge). */
export const INTERNET_NS = "wslab-internet";
export const nodeNamespace = (node: NodeName) => `wslab-${node}`;
export const BRIDGE = "wslab0";

export interface LabNetwork {
  /** The VPC's range and the lab's "internet" range: both blackholed on the host while up. */
  readonly ranges: readonly string[];
  /** Prefix length the lab's single bridge segment uses for the VPC addresses. */
  readonly vpcPrefixLength: number;
  /** VPC router (.1, the nodes' gateway) and resolver (.2), held by the internet namespace. */
  readonly router: string;
  readonly resolver: string;
  /** Addresses of the internet-side services. */
  readonly mirror: string;
  readonly ssm: string;
  readonly s3: string;
  /** CloudWatch's metrics endpoint (monitoring.REGION.amazonaws.com). */
  readonly cloudwatch: string;
  readonly pebble: string;
  /** The client's address on the internet (connections from "the internet" start from it). */
  readonly client: string;
  /**
   * A second client's address on the internet, not held by `up`: a test that needs two clients
   * at once (the LB's per-client limit) adds it for its run (`withSecondClient`).
   */
  readonly secondClient: string;
  readonly nodes: Readonly<Record<NodeName, string>>;
  /** The nodes, the LB first, then s1…sN (the topology's order). */
  readonly nodeNames: readonly NodeName[];
  /** Name → address, as the lab's resolver answers. */
  readonly hosts: Readonly<Record<string, string>>;
}

const INTERNET_RANGE = "10.41.0.0/24";

export function labNetwork(topology: Topology, region: string = LAB_REGION): LabNetwork {
  const { prefix } = splitCidr(topology.vpcCidr);
  const nodes = Object.fromEntries(
    topology.nodeNames.map((n) => [n, topology.nodes[n].privateIp]),
  ) as Record<NodeName, string>;
  const service = (host: number) => hostOf(INTERNET_RANGE, host);
  const mirror = service(80);
  const ssm = service(43);
  const s3 = service(33);
  const cloudwatch = service(62);
  const pebble = service(14);
  return {
    ranges: [topology.vpcCidr, INTERNET_RANGE],
    vpcPrefixLength: prefix,
    router: hostOf(topology.vpcCidr, 1),
    resolver: vpcResolver(topology.vpcCidr),
    mirror,
    ssm,
    s3,
    cloudwatch,
    pebble,
    client: service(100),
    secondClient: service(101),
    nodes,
    nodeNames: topology.nodeNames,
    hosts: {
      ...Object.fromEntries(DEBIAN_ARCHIVE_HOSTS.map((host) => [host, mirror])),
      [`ssm.${region}.amazonaws.com`]: ssm,
      [s3Endpoint(region)]: s3,
      [cloudWatchEndpoint(region)]: cloudwatch,
      [ACME_HOST]: pebble,
      [LAB_DOMAIN]: nodes.lb,
      ...Object.fromEntries(
        topology.nodeNames.map((n) => [topology.nodes[n].internalName, nodes[n]]),
      ),
    },
  };
}

/** Everything a node needs from the plan. */
export interface LabNode {
  readonly name: NodeName;
  readonly userData: string;
  readonly instanceId: string;
  readonly role: string;
  /** The packages its user-data and its bundle install (the mirror holds them). */
  readonly packages: readonly string[];
  /** Its data volume's id (app nodes), as the user-data names the device. */
  readonly dataVolumeId?: string;
  /** SSM names and "prefix/" scopes its role's policy allows. */
  readonly ssmScopes: readonly string[];
  /** The objects its role may get: "bucket/key", or "bucket/prefix*". */
  readonly s3Scopes: S3Grants;
  /** The CloudWatch namespaces its role may put metrics in. */
  readonly metricNamespaces: readonly string[];
}

/** S3's regional endpoint; a bucket is reached at "<bucket>.<endpoint>" (virtual-hosted style). */
export const s3Endpoint = (region: string = LAB_REGION) => `s3.${region}.amazonaws.com`;

/** CloudWatch's regional endpoint (its API's name for it is "monitoring"). */
export const cloudWatchEndpoint = (region: string = LAB_REGION) =>
  `monitoring.${region}.amazonaws.com`;

const instanceOf = (plan: Plan, node: NodeName) =>
  onlyOne(
    plan.resources.filter(
      (r) => r.type === "aws:ec2/instance:Instance" && r.name === `${node}-instance`,
    ),
    `${node}'s instance`,
  );

function onlyOne(found: PlannedResource[], what: string): PlannedResource {
  if (found.length !== 1)
    throw new Error(`lab: expected one ${what} in the plan, found ${found.length}`);
  return found[0];
}

/** A policy statement, its Action and Resource as lists (IAM takes a string or a list for each). */
interface Statement {
  readonly effect: string;
  readonly actions: readonly string[];
  readonly resources: readonly string[];
  readonly condition: Record<string, Record<string, string | string[]>>;
}

/** A policy document's statements, each read once. */
function statementsOf(policyJson: string): Statement[] {
  const policy = JSON.parse(policyJson) as {
    Statement: {
      Effect?: string;
      Action: string | string[];
      Resource?: string | string[];
      Condition?: Record<string, Record<string, string | string[]>>;
    }[];
  };
  return policy.Statement.map((s) => ({
    effect: s.Effect ?? "Allow",
    actions: ([] as string[]).concat(s.Action),
    resources: ([] as string[]).concat(s.Resource ?? []),
    condition: s.Condition ?? {},
  }));
}

/** The resources of a policy's Allow statements with an action that `wanted` picks. */
function resourcesAllowing(policyJson: string, wanted: (action: string) => boolean): string[] {
  return statementsOf(policyJson)
    .filter((s) => s.effect !== "Deny" && s.actions.some(wanted))
    .flatMap((s) => s.resources);
}

/** A name, or "prefix/" for a pattern "prefix/*". */
const scopeOf = (name: string) => (name.endsWith("/*") ? name.slice(0, -1) : name);

/**
 * The SSM actions the stand-in serves and scopes by parameter name. Other ssm: actions (the
 * Session Manager agent's ssm:UpdateInstanceInformation on "*") name no parameter: they are no
 * read scope.
 */
const SSM_PARAMETER_ACTIONS = [
  "ssm:GetParameter",
  "ssm:GetParameters",
  "ssm:GetParametersByPath",
  "ssm:PutParameter",
];

/** The node's SSM scopes, from its role's policy: "parameter/X/*" → "X/", "parameter/X" → "X". */
export function ssmScopes(policyJson: string): string[] {
  const names = resourcesAllowing(policyJson, (a) => SSM_PARAMETER_ACTIONS.includes(a)).map((arn) =>
    arn.slice(arn.indexOf(":parameter/") + ":parameter".length),
  );
  return [...new Set(names.map(scopeOf))];
}

/** What a node's role may do in S3, as the stand-in checks it: "bucket/key" or "bucket/prefix*" patterns. */
export interface S3Grants {
  /** s3:GetObject (and HeadObject) resources. */
  readonly get: readonly string[];
  /** s3:PutObject resources (the backups, issue 20). */
  readonly put: readonly string[];
  /** s3:ListBucket, as "bucket/prefix*" from its bucket and its s3:prefix condition (none: "bucket/*"). */
  readonly list: readonly string[];
}

const objectName = (arn: string) => arn.slice(arn.indexOf(":::") + 3);

/** One role's grants from its policies, each pattern once. */
function mergeGrants(grants: readonly S3Grants[]): S3Grants {
  const each = (k: keyof S3Grants) => [...new Set(grants.flatMap((g) => g[k]))];
  return { get: each("get"), put: each("put"), list: each("list") };
}

/** The S3 grants of a node's role, from its policy's Allow statements. */
export function s3Scopes(policyJson: string): S3Grants {
  const list = statementsOf(policyJson)
    .filter((s) => s.effect !== "Deny" && s.actions.includes("s3:ListBucket"))
    .flatMap((s) => {
      const prefixes = Object.values(s.condition).flatMap((c) =>
        ([] as string[]).concat(c["s3:prefix"] ?? []),
      );
      return s.resources.flatMap((arn) =>
        (prefixes.length ? prefixes : ["*"]).map((p) => `${objectName(arn)}/${p}`),
      );
    });
  return {
    get: resourcesAllowing(policyJson, (a) => a === "s3:GetObject").map(objectName),
    put: resourcesAllowing(policyJson, (a) => a === "s3:PutObject").map(objectName),
    list,
  };
}

/**
 * The namespaces a policy lets its role put metrics in: cloudwatch:PutMetricData has no resource,
 * so its Allow statements' cloudwatch:namespace condition (StringEquals) is the scope. What the
 * stand-in could not reproduce faithfully — a statement without that condition (every namespace),
 * a Deny, an action pattern that covers PutMetricData — the lab refuses rather than guess.
 */
export function metricNamespaces(policyJson: string): string[] {
  const covers = (action: string) =>
    /^(\*|cloudwatch:(\*|Put\*|PutMetric\*|PutMetricData))$/i.test(action);
  return statementsOf(policyJson)
    .filter((s) => s.actions.some(covers))
    .flatMap((s) => {
      if (s.effect === "Deny" || !s.actions.includes("cloudwatch:PutMetricData"))
        throw new Error(
          `lab: the CloudWatch stand-in takes only Allow statements naming cloudwatch:PutMetricData, not ${s.effect} ${s.actions.join(", ")}`,
        );
      const namespaces = s.condition.StringEquals?.["cloudwatch:namespace"];
      if (namespaces === undefined)
        throw new Error("lab: a cloudwatch:PutMetricData statement without a namespace condition");
      return ([] as string[]).concat(namespaces);
    });
}

/** An object as the S3 stand-in serves it: text, or the bytes of a file (an app release's archive). */
export type S3Object = string | { readonly file: string };

/** The objects the plan uploads, by "bucket/key", with their content, as the S3 stand-in serves them. */
export function s3Objects(plan: Plan): Record<string, S3Object> {
  return Object.fromEntries(
    plan.resources
      .filter((r) => r.type === "aws:s3/bucketObjectv2:BucketObjectv2")
      .map((r) => {
        const inputs = revealSecrets(r.inputs) as {
          bucket: string;
          key: string;
          content?: string;
          source?: { asset: "file"; path: string };
        };
        const object = inputs.source ? { file: inputs.source.path } : inputs.content;
        if (object === undefined)
          throw new Error(`lab: ${inputs.key} has neither content nor a file`);
        return [`${inputs.bucket}/${inputs.key}`, object];
      }),
  );
}

/** The packages a node's bundle installs (some only there: the LB's added since its bootstrap). */
function bundlePackagesOf(plan: Plan, node: string): string[] {
  const bundle = onlyOne(
    plan.resources.filter(
      (r) => r.type === "aws:s3/bucketObjectv2:BucketObjectv2" && r.name === `bundles-${node}`,
    ),
    `${node}'s bundle`,
  );
  const content = revealSecrets(bundle.inputs) as { content: string };
  return ((JSON.parse(content.content) as { packages?: string[] }).packages ?? []).map(String);
}

/** The packages a cloud-config installs (`packages:` entries are names here). */
export function packagesOf(userData: string): string[] {
  return ((YAML.parse(userData) as { packages?: string[] }).packages ?? []).map(String);
}

export function labNodes(plan: Plan, names: readonly NodeName[]): LabNode[] {
  return names.map((name) => {
    const instance = instanceOf(plan, name);
    const userData = plannedUserData(instance);
    const policies = plan.resources.filter(
      (r) => r.type === "aws:iam/rolePolicy:RolePolicy" && r.name.startsWith(`${name}-identity-`),
    );
    const attachment = plan.resources.find(
      (r) =>
        r.type === "aws:ec2/volumeAttachment:VolumeAttachment" &&
        r.name === `${name}-data-attachment`,
    );
    return {
      name,
      userData,
      instanceId: String(instance.id),
      role: String(
        onlyOne(
          plan.resources.filter(
            (r) => r.type === "aws:iam/role:Role" && r.name === `${name}-identity-role`,
          ),
          `${name}'s role`,
        ).id,
      ),
      packages: [...new Set([...packagesOf(userData), ...bundlePackagesOf(plan, name)])],
      dataVolumeId: attachment ? String(attachment.inputs.volumeId) : undefined,
      ssmScopes: [...new Set(policies.flatMap((p) => ssmScopes(String(p.inputs.policy))))],
      s3Scopes: mergeGrants(policies.map((p) => s3Scopes(String(p.inputs.policy)))),
      metricNamespaces: [
        ...new Set(policies.flatMap((p) => metricNamespaces(String(p.inputs.policy)))),
      ],
    };
  });
}

/** The SSM parameters the plan creates, with their real values, as the SSM stand-in serves them. */
export function ssmParameters(plan: Plan): Record<string, { Type: string; Value: string }> {
  return Object.fromEntries(
    plan.resources
      .filter((r) => r.type === "aws:ssm/parameter:Parameter")
      .map((r) => {
        const inputs = revealSecrets(r.inputs) as { name: string; type: string; value: string };
        return [inputs.name, { Type: inputs.type, Value: inputs.value }];
      }),
  );
}

const RULE_TYPES = {
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
} as const;

/** The groups on a node's network interface: the instance's own, or its primary ENI's. */
function securityGroupsOf(plan: Plan, node: NodeName): string[] {
  const instance = instanceOf(plan, node).inputs;
  const eniId = (instance.primaryNetworkInterface as { networkInterfaceId?: string } | undefined)
    ?.networkInterfaceId;
  const groups = eniId
    ? onlyOne(
        plan.resources.filter(
          (r) => r.type === "aws:ec2/networkInterface:NetworkInterface" && r.id === eniId,
        ),
        `${node}'s network interface`,
      ).inputs.securityGroups
    : instance.vpcSecurityGroupIds;
  return ((groups ?? []) as unknown[]).map(String);
}

/**
 * The security-group rules the plan creates, as the lab's firewalls apply them: each rule belongs
 * to the node whose instance carries its group; a peer is another node's group or 0.0.0.0/0.
 * Anything the lab cannot reproduce faithfully (port ranges, other CIDRs, other protocols) throws.
 */
export function planFirewallRules(plan: Plan, names: readonly NodeName[]): SecurityGroupRule[] {
  const nodeOfGroup = new Map<string, NodeName>();
  for (const node of names) {
    for (const group of securityGroupsOf(plan, node)) nodeOfGroup.set(group, node);
  }
  const nodeOf = (group: unknown, rule: string) => {
    const node = nodeOfGroup.get(String(group));
    if (!node) throw new Error(`lab: ${rule} refers to ${String(group)}, on no node's instance`);
    return node;
  };
  return (["ingress", "egress"] as const).flatMap((direction) =>
    plan.resources
      .filter((r) => r.type === RULE_TYPES[direction])
      .map((r): SecurityGroupRule => {
        const i = r.inputs;
        const unsupported = (what: string) =>
          new Error(`lab: ${r.name}: ${what} has no nftables equivalent in the lab`);
        if (i.ipProtocol !== "tcp") throw unsupported(`protocol ${String(i.ipProtocol)}`);
        if (i.fromPort !== i.toPort)
          throw unsupported(`port range ${String(i.fromPort)}-${String(i.toPort)}`);
        let peer: Peer;
        if (i.referencedSecurityGroupId !== undefined)
          peer = nodeOf(i.referencedSecurityGroupId, r.name);
        else if (i.cidrIpv4 === "0.0.0.0/0") peer = "internet";
        else throw unsupported(`peer ${String(i.cidrIpv4 ?? i.cidrIpv6 ?? i.prefixListId)}`);
        return {
          key: r.name,
          group: nodeOf(i.securityGroupId, r.name),
          direction,
          peer,
          port: Number(i.fromPort),
          protocol: "tcp",
          description: String(i.description ?? ""),
        };
      }),
  );
}

/** What the failing boot step prints, so a test can find it in the node's log. */
export const BROKEN_BOOT_MARKER = "webstack-lab: a deliberately failing boot step";

/**
 * The user-data with one more boot step that fails (the lab's fault injection, for proving that a
 * broken boot fails `lab up` with the node's log). Everything else in the document is kept.
 */
export function withFailingBootStep(userData: string): string {
  const document = YAML.parseDocument(userData);
  const runcmd = document.get("runcmd") as YAML.YAMLSeq | undefined;
  if (!runcmd) throw new Error("lab: the user-data has no runcmd to break");
  runcmd.add(`echo '${BROKEN_BOOT_MARKER}' >&2; exit 7`);
  return document.toString({ lineWidth: 0, blockQuote: "literal" });
}

/**
 * Fault injection for the lab's own tests: WEBSTACK_LAB_BREAK_BUNDLE=<node>:<path> makes `apply`
 * publish that node's bundle with a line no program accepts appended to the file at <path>, as a bad
 * release would: re-addressed (new sha256, new key) and pointed to, like any bundle.
 */
export function withBrokenBundleFile(
  published: {
    parameters: Record<string, { Type: string; Value: string }>;
    objects: Record<string, S3Object>;
  },
  pointerName: string,
  filePath: string,
): void {
  const pointer = JSON.parse(published.parameters[pointerName].Value) as {
    bucket: string;
    key: string;
    sha256: string;
  };
  const text = published.objects[`${pointer.bucket}/${pointer.key}`];
  if (typeof text !== "string") throw new Error(`lab: ${pointer.key} is not a bundle`);
  const bundle = JSON.parse(text) as {
    files: { path: string; content: string }[];
  };
  const file = bundle.files.find((f) => f.path === filePath);
  if (!file) throw new Error(`lab: the bundle behind ${pointerName} has no ${filePath}`);
  file.content += "\nwebstack-lab: a line no program accepts\n";
  const content = JSON.stringify(bundle);
  const sha256 = crypto.createHash("sha256").update(content).digest("hex");
  const key = pointer.key.replace(/[0-9a-f]{64}\.json$/, `${sha256}.json`);
  published.objects[`${pointer.bucket}/${key}`] = content;
  published.parameters[pointerName] = {
    ...published.parameters[pointerName],
    Value: JSON.stringify({ ...pointer, key, sha256 }),
  };
}
