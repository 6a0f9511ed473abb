// The newest official Debian 13 AMI for an architecture: looked up on every run, never followed by
// a running stack on its own (components/nodeImage.ts records the image a stack runs).
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { Architecture, EC2_ARCHITECTURE } from "../model/aws";

/** Debian's own AWS account, which publishes the official cloud images. */
export const DEBIAN_AMI_OWNER = "136693071363";

export function newestDebian13AmiId(
  architecture: Architecture,
  opts: pulumi.InvokeOutputOptions,
): pulumi.Output<string> {
  return aws.ec2.getAmiOutput(
    {
      owners: [DEBIAN_AMI_OWNER],
      mostRecent: true,
      filters: [
        { name: "name", values: [`debian-13-${architecture}-*`] },
        { name: "architecture", values: [EC2_ARCHITECTURE[architecture]] },
        { name: "virtualization-type", values: ["hvm"] },
        { name: "root-device-type", values: ["ebs"] },
      ],
    },
    opts,
  ).id;
}
