// The offline plan's EC2: getInstanceType answered from real DescribeInstanceTypes records.
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";

/** One record of instanceTypes.yaml: DescribeInstanceTypes' own shape, trimmed. */
interface DescribedInstanceType {
  readonly InstanceType: string;
  /** Absent on bare metal. */
  readonly Hypervisor?: string;
  readonly BareMetal: boolean;
  readonly EbsInfo: { readonly NvmeSupport: string };
  readonly ProcessorInfo: { readonly SupportedArchitectures: string[] };
  readonly MemoryInfo: { readonly SizeInMiB: number };
  readonly VCpuInfo: { readonly DefaultVCpus: number };
}

const FIXTURE = path.join(__dirname, "instanceTypes.yaml");

/** Every instance type the offline plan knows, by name. */
export const KNOWN_INSTANCE_TYPES: ReadonlyMap<string, DescribedInstanceType> = new Map(
  (YAML.parse(fs.readFileSync(FIXTURE, "utf8")) as DescribedInstanceType[]).map((t) => [
    t.InstanceType,
    t,
  ]),
);

/** An error EC2 itself answers with: the program gets it, as it would from the provider. */
export class Ec2Error extends Error {
  /** Where gRPC carries the message: the Pulumi runtime rejects the invoke with this text. */
  readonly details: string;
  constructor(message: string) {
    super(message);
    this.details = message;
  }
}

/**
 * What the provider's getInstanceType returns for a known type (the fields it maps as the
 * Terraform provider's data source does); for any other type, the error EC2 answers with, saying
 * which types the offline plan knows.
 */
export function describeInstanceType(name: string): Record<string, unknown> {
  const described = KNOWN_INSTANCE_TYPES.get(name);
  if (!described) {
    throw new Ec2Error(
      "reading EC2 Instance Type: operation error EC2: DescribeInstanceTypes, https response error " +
        "StatusCode: 400, api error InvalidInstanceType: The following supplied instance types " +
        `do not exist: [${name}] (the offline plan knows only ` +
        `${[...KNOWN_INSTANCE_TYPES.keys()].join(", ")}, from plan/instanceTypes.yaml)`,
    );
  }
  return {
    id: described.InstanceType,
    instanceType: described.InstanceType,
    hypervisor: described.Hypervisor ?? "",
    bareMetal: described.BareMetal,
    ebsNvmeSupport: described.EbsInfo.NvmeSupport,
    supportedArchitectures: described.ProcessorInfo.SupportedArchitectures,
    memorySize: described.MemoryInfo.SizeInMiB,
    defaultVcpus: described.VCpuInfo.DefaultVCpus,
  };
}
