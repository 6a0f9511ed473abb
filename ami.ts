// The nodes' image: a pinned AMI from config, or the current official Debian 13 AMI for the architecture.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

/** Debian's own AWS account, which publishes the official cloud images. */
export const DEBIAN_AMI_OWNER = "136693071363";

export type Architecture = "amd64" | "arm64";

/** Graviton families carry a "g" after the generation digit: t4g, m7g, c7gn, r8g, x2gd, im4gn. */
export function architectureOf(instanceType: string): Architecture {
  const family = instanceType.split(".")[0];
  const match = /^[a-z]+\d+([a-z-]*)$/.exec(family);
  return match && match[1].includes("g") ? "arm64" : "amd64";
}

export function debian13AmiId(
  instanceType: string,
  pinned: string | undefined,
  opts: pulumi.InvokeOutputOptions,
): pulumi.Output<string> {
  if (pinned) return pulumi.output(pinned);
  const arch = architectureOf(instanceType);
  return aws.ec2.getAmiOutput(
    {
      owners: [DEBIAN_AMI_OWNER],
      mostRecent: true,
      filters: [
        { name: "name", values: [`debian-13-${arch}-*`] },
        { name: "architecture", values: [arch === "arm64" ? "arm64" : "x86_64"] },
        { name: "virtualization-type", values: ["hvm"] },
        { name: "root-device-type", values: ["ebs"] },
      ],
    },
    opts,
  ).id;
}
