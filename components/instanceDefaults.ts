// What every webstack instance shares: its image, IMDSv2, an encrypted root, detailed metrics and
// its rendered bootstrap (user-data).
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { EncodedUserData } from "../cloud-init/userDataEncoding";

export interface InstanceDefaultsArgs {
  readonly instanceType: string;
  /** The image, as the stack recorded or configured it (components/nodeImage.ts). */
  readonly ami: pulumi.Input<string>;
  readonly rootVolumeGiB: number;
  readonly rootTags: Record<string, string>;
  /** The rendered bootstrap, encoded (plain or gzipped). */
  readonly userData: pulumi.Input<EncodedUserData>;
}

/** The instance arguments whose values are security or operations decisions, made once. */
export function instanceDefaults(args: InstanceDefaultsArgs): Partial<aws.ec2.InstanceArgs> {
  return {
    ami: args.ami,
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
    userData: pulumi.output(args.userData).apply((u) => ("userData" in u ? u.userData : undefined)),
    userDataBase64: pulumi
      .output(args.userData)
      .apply((u) => ("userDataBase64" in u ? u.userDataBase64 : undefined)),
  };
}
