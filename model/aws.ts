// AWS facts the program, the lab and the tests share: account, link-local services, architectures.
import { hostOf } from "./ipv4";

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

/** Graviton families carry a "g" after the generation digit: t4g, m7g, c7gn, r8g, x2gd, im4gn. */
export function architectureOf(instanceType: string): Architecture {
  const family = instanceType.split(".")[0];
  const match = /^[a-z]+\d+([a-z-]*)$/.exec(family);
  return match && match[1].includes("g") ? "arm64" : "amd64";
}

/** Xen-based families: they expose EBS volumes as /dev/xvd*, not as NVMe devices. */
const XEN_FAMILIES = /^(t1|t2|m1|m2|m3|m4|c1|c3|c4|r3|r4|i2|i3|x1|x1e|d2|g3|g3s|p2|p3|f1|h1)\./;

/** Whether an instance type is Nitro-based, so that `ebsDevicePath` names its volumes. */
export function isNitro(instanceType: string): boolean {
  return !XEN_FAMILIES.test(instanceType);
}

/**
 * How a Nitro instance names an attached EBS volume (the volume id without its dash, as the NVMe
 * serial). Xen-based types name it differently; the config refuses them for app nodes.
 */
export function ebsDevicePath(volumeId: string): string {
  return `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace("-", "")}`;
}
