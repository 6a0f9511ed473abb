// AWS facts the program, the lab and the tests share: account, link-local services, instance types.
import { hostOf } from "./ipv4";
import type { DatabaseMode } from "./topology";

/** Where the stack runs; resolved once from the provider (platform/account.ts). */
export interface AwsAccount {
  readonly partition: string;
  readonly region: string;
  readonly accountId: string;
  /** DNS suffix of the partition's endpoints, e.g. amazonaws.com. */
  readonly dnsSuffix: string;
}

/** Instance metadata (IMDS), answered on every instance's own link. */
export const INSTANCE_METADATA_ADDRESS = "169.254.169.254";

/** Amazon Time Sync and the Route 53 resolver's link-local address. */
export const TIME_SYNC_ADDRESS = "169.254.169.123";
export const LINK_LOCAL_RESOLVER_ADDRESS = "169.254.169.253";

/** The VPC's own DNS resolver (Route 53 Resolver): the network address plus two. */
export function vpcResolver(vpcCidr: string): string {
  return hostOf(vpcCidr, 2);
}

/** The architectures of Debian's packages a node may run, as nodes name them. */
export const ARCHITECTURES = ["amd64", "arm64"] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** The placeholder a package URL may hold, once: a node puts its architecture in its place. */
export const ARCH_PLACEHOLDER = "{arch}";

/** A package URL for one architecture (the first placeholder replaced, as documented). */
export function packageUrlFor(url: string, architecture: Architecture): string {
  return url.replace(ARCH_PLACEHOLDER, architecture);
}

/** EC2's name of each architecture Debian 13 publishes AMIs for. */
export const EC2_ARCHITECTURE: Readonly<Record<Architecture, string>> = {
  amd64: "x86_64",
  arm64: "arm64",
};

/**
 * What EC2 says about an instance type (DescribeInstanceTypes, as `aws.ec2.getInstanceType`
 * returns it): the facts webstack decides on.
 */
export interface InstanceTypeFacts {
  readonly instanceType: string;
  /** "nitro" or "xen"; empty on bare metal, which runs no hypervisor. */
  readonly hypervisor: string;
  /** "required": every EBS volume is an NVMe device, as `ebsDevicePath` names it. */
  readonly ebsNvmeSupport: string;
  /** EC2's names: i386, x86_64, arm64, x86_64_mac, arm64_mac. */
  readonly supportedArchitectures: readonly string[];
  /** The instance's memory in MiB (MemoryInfo.SizeInMiB): the LB's HAProxy sizes its limits by it. */
  readonly memorySize: number;
  /** The instance's vCPUs (VCpuInfo.DefaultVCpus): the app nodes' Gunicorn workers follow them. */
  readonly defaultVcpus: number;
}

/** What EC2 answered for one instance type: its facts, or why it does not know the type. */
export type InstanceTypeAnswer =
  { readonly facts: InstanceTypeFacts } | { readonly unknown: string };

/** EC2's answer for each instance type the configuration names. */
export type InstanceTypeCatalog = ReadonlyMap<string, InstanceTypeAnswer>;

/** What a node asks of its instance type beyond an architecture Debian 13 has AMIs for. */
export interface InstanceNeeds {
  /** The node attaches an EBS data volume and finds it at its NVMe path (`ebsDevicePath`). */
  readonly ebsAsNvme: boolean;
}

/** The Debian architecture an instance type runs, from EC2's data; none if Debian has no AMI. */
export function debianArchitectureOf(facts: InstanceTypeFacts): Architecture | undefined {
  return ARCHITECTURES.find((arch) =>
    facts.supportedArchitectures.includes(EC2_ARCHITECTURE[arch]),
  );
}

/** What an instance type lacks for a node, each as the rest of a sentence about the type. */
export function instanceTypeShortfalls(facts: InstanceTypeFacts, needs: InstanceNeeds): string[] {
  const shortfalls: string[] = [];
  if (!debianArchitectureOf(facts)) {
    shortfalls.push(
      `runs ${facts.supportedArchitectures.join(", ")} only, for which Debian 13 has no AMI`,
    );
  }
  if (needs.ebsAsNvme && facts.ebsNvmeSupport !== "required") {
    const hypervisor = facts.hypervisor || "none";
    shortfalls.push(
      "does not always expose EBS volumes as NVMe devices " +
        `(EC2: ebsNvmeSupport ${facts.ebsNvmeSupport}, hypervisor ${hypervisor})`,
    );
  }
  return shortfalls;
}

/**
 * EC2's reason when a failed getInstanceType says the type does not exist in the region (the
 * provider's message carries the API error InvalidInstanceType, or no match at all); undefined
 * for any other failure, which is not the configuration's fault.
 */
export function unknownInstanceTypeReason(message: string): string | undefined {
  const invalid = /InvalidInstanceType: ([^\n]+)/.exec(message);
  if (invalid) return invalid[1].trim();
  if (message.includes("no matching EC2 Instance Type found")) {
    return "no matching EC2 Instance Type found";
  }
  return undefined;
}

/**
 * How an instance that exposes EBS volumes as NVMe devices names an attached one (the volume id
 * without its dash, as the NVMe serial). Other types name it differently; the config refuses them
 * for app nodes (`InstanceNeeds.ebsAsNvme`).
 */
export function ebsDevicePath(volumeId: string): string {
  return `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace("-", "")}`;
}

/**
 * The AWS services the nodes reach through interface endpoints (config `vpcEndpoints`): Systems
 * Manager and Session Manager's channel (ssmmessages), KMS, CloudWatch Logs and metrics
 * (monitoring). ec2messages is not among them: Run Command is not used.
 */
export const INTERFACE_ENDPOINT_SERVICES = [
  "ssm",
  "ssmmessages",
  "kms",
  "logs",
  "monitoring",
] as const;
/**
 * With `database: rds`, Secrets Manager too: s2 reads the RDS instance's master user's secret
 * there (no other stack makes this endpoint, at $14.60 a month).
 */
export const RDS_INTERFACE_ENDPOINT_SERVICES = [
  ...INTERFACE_ENDPOINT_SERVICES,
  "secretsmanager",
] as const;
export type InterfaceEndpointService = (typeof RDS_INTERFACE_ENDPOINT_SERVICES)[number];

/** The interface endpoints a stack with `vpcEndpoints` makes, by how its databases hold the data. */
export function interfaceEndpointServices(
  database: DatabaseMode,
): readonly InterfaceEndpointService[] {
  return database === "rds" ? RDS_INTERFACE_ENDPOINT_SERVICES : INTERFACE_ENDPOINT_SERVICES;
}

/** S3 is reached through a gateway endpoint: routes in the VPC's route tables, free of charge. */
export const GATEWAY_ENDPOINT_SERVICE = "s3";

/** A VPC endpoint service's name in a region (the form the commercial and GovCloud regions use). */
export function endpointServiceName(region: string, service: string): string {
  return `com.amazonaws.${region}.${service}`;
}
