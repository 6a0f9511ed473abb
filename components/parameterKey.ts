// The customer-managed KMS key that encrypts every SSM SecureString parameter of the stack, the
// objects of its bucket (components/stackBucket.ts) and, with `database: rds`, the RDS instance's
// storage, snapshots, backups and its master user's secret (components/rdsDatabase.ts); then the
// key outlives the stack.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { PROJECT } from "../model/naming";
import { Tagger } from "../model/tags";

export interface ParameterKeyArgs {
  readonly stack: string;
  /**
   * What the key encrypts outlives the stack (`database: rds`: the instance's final snapshot and its
   * automated backups, kept after it): the key is kept when the stack is destroyed, and protected
   * when `protect` (config `protectData`). @default undefined: deleted with the stack (30 days on).
   */
  readonly outlivesStack?: { readonly protect: boolean };
  readonly tags: Tagger;
}

/**
 * Not the AWS-managed aws/ssm key: that one lets every principal in the account decrypt, so a
 * node's role could not be kept from another node's secrets. With this key, decryption follows
 * the IAM policies, which scope it per node by the parameter's ARN (and, for the bucket, to S3 for
 * that bucket). Its description still names the parameters alone: changing it would update the key
 * on every stack for a word.
 */
export class ParameterKey extends pulumi.ComponentResource {
  readonly keyArn: pulumi.Output<string>;
  readonly keyId: pulumi.Output<string>;
  readonly aliasName: pulumi.Output<string>;

  constructor(name: string, args: ParameterKeyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:secrets:ParameterKey", name, {}, opts);
    const child = { parent: this };
    const key = new aws.kms.Key(
      `${name}-key`,
      {
        description: `${PROJECT} ${args.stack}: encrypts the stack's SSM SecureString parameters`,
        enableKeyRotation: true, // KMS.4
        deletionWindowInDays: 30,
        tags: args.tags("shared", "parameter-key"),
      },
      // A deleted key would leave the snapshots and backups that outlive the stack unreadable; a
      // stack whose data is all its own keeps its options, and its plan, unchanged.
      args.outlivesStack
        ? { ...child, retainOnDelete: true, protect: args.outlivesStack.protect }
        : child,
    );
    // Alias names allow letters, digits, '/', '_' and '-'; stack names may also hold '.'.
    const alias = new aws.kms.Alias(
      `${name}-alias`,
      {
        name: `alias/${PROJECT}/${args.stack.replace(/[^A-Za-z0-9/_-]/g, "-")}/parameters`,
        targetKeyId: key.keyId,
      },
      child,
    );
    this.keyArn = key.arn;
    this.keyId = key.keyId;
    this.aliasName = alias.name;
    this.registerOutputs({ keyArn: this.keyArn, keyId: this.keyId, aliasName: this.aliasName });
  }
}
