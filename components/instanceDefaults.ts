// What every webstack instance shares: the image, IMDSv2, an encrypted root, detailed metrics and
// its rendered user-data.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { Architecture } from "../model/aws";
import { EncodedUserData } from "../cloud-init/userDataEncoding";
import { debian13AmiId } from "../platform/ami";

export interface InstanceDefaultsArgs {
  readonly instanceType: string;
  /** The instance type's architecture: the image is looked up for it. */
  readonly architecture: Architecture;
  /** Pinned AMI; otherwise the current Debian 13 AMI. */
  readonly ami?: string;
  readonly rootVolumeGiB: number;
  readonly rootTags: Record<string, string>;
  /** The rendered document, encoded (plain or gzipped). */
  readonly userData: pulumi.Output<EncodedUserData>;
}

/** The instance arguments whose values are security or operations decisions, made once. */
export function instanceDefaults(
  args: InstanceDefaultsArgs,
  parent: pulumi.Resource,
): Partial<aws.ec2.InstanceArgs> {
  return {
    ami: debian13AmiId(args.architecture, args.ami, { parent }),
    instanceType: args.instanceType,
    metadataOptions: {
      httpEndpoint: "enabled",
      httpTokens: "required", // IMDSv2 — EC2.8
      httpPutResponseHopLimit: 1,
      instanceMetadataTags: "disabled",
    },
    rootBlockDevice: {
      volumeType: "gp3",
      volumeSize: args.rootVolumeGiB,
      encrypted: true, // EC2.3
      deleteOnTermination: true,
      tags: args.rootTags,
    },
    monitoring: true, // detailed (1-minute) CloudWatch metrics
    userData: args.userData.apply((u) => ("userData" in u ? u.userData : undefined)),
    userDataBase64: args.userData.apply((u) =>
      "userDataBase64" in u ? u.userDataBase64 : undefined,
    ),
  };
}
