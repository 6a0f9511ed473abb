// Where the stack runs (partition, region, account), resolved once from the AWS provider.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { AwsAccount } from "../model/aws";

export function currentAccount(): pulumi.Output<AwsAccount> {
  return pulumi
    .all([aws.getPartitionOutput(), aws.getRegionOutput(), aws.getCallerIdentityOutput()])
    .apply(([partition, region, identity]) => ({
      partition: partition.partition,
      dnsSuffix: partition.dnsSuffix,
      region: region.region,
      accountId: identity.accountId,
    }));
}
