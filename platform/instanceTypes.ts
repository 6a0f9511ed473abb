// What EC2 says about the configured instance types: one getInstanceType invoke per distinct type.
import * as aws from "@pulumi/aws";
import { InstanceTypeAnswer, InstanceTypeCatalog, unknownInstanceTypeReason } from "../model/aws";

/** Asks EC2 about each instance type once; a type it does not know is an answer, not a failure. */
export async function lookUpInstanceTypes(names: readonly string[]): Promise<InstanceTypeCatalog> {
  const unique = [...new Set(names)];
  const answers = await Promise.all(unique.map(lookUpInstanceType));
  return new Map(unique.map((name, i) => [name, answers[i]]));
}

async function lookUpInstanceType(name: string): Promise<InstanceTypeAnswer> {
  try {
    const found = await aws.ec2.getInstanceType({ instanceType: name });
    return {
      facts: {
        instanceType: found.instanceType,
        // Bare metal runs no hypervisor: EC2 leaves the field out.
        hypervisor: found.hypervisor ?? "",
        ebsNvmeSupport: found.ebsNvmeSupport,
        supportedArchitectures: found.supportedArchitectures,
        memorySize: found.memorySize,
        defaultVcpus: found.defaultVcpus,
      },
    };
  } catch (err) {
    const unknown = unknownInstanceTypeReason(err instanceof Error ? err.message : String(err));
    if (unknown === undefined) throw err;
    return { unknown };
  }
}
