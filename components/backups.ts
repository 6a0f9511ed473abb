// The database volumes' daily snapshots: a Data Lifecycle Manager policy and the role DLM acts as.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { AwsAccount } from "../model/aws";
import { PROJECT } from "../model/naming";
import { Tagger, snapshotTags } from "../model/tags";
import { dlmAssumeRolePolicy, dlmServiceRolePolicyArn } from "./iamPolicies";

/**
 * When DLM starts the daily snapshots (UTC; it starts them within the hour after): two hours before
 * the nightly physical backup (FULL_BACKUP_CALENDAR, 03:00 UTC), so their reads do not meet.
 */
export const SNAPSHOT_TIME_UTC = "01:00";

export interface BackupsArgs {
  readonly stack: string;
  /** Where the stack runs: the managed policy's ARN is in its partition. */
  readonly account: pulumi.Input<AwsAccount>;
  /** Daily snapshots kept of each data volume (config `backupRetentionDays`). */
  readonly retentionDays: number;
  readonly tags: Tagger;
}

/**
 * Snapshots every volume tagged with the stack's snapshot tag (model/tags.ts: the app nodes' data
 * volumes only), daily, keeping the newest `retentionDays`, each with its volume's tags. A snapshot
 * is crash-consistent: the database recovers from it as from a power cut; the physical backups in
 * the bucket are the consistent ones.
 *
 * The data volumes are encrypted with the account's EBS key (`encrypted: true`, no `kmsKeyId`:
 * aws/ebs unless the account set its own default), not the stack's key; a snapshot keeps its
 * volume's key, and aws/ebs lets any principal of the account use it through EC2, DLM's role
 * included. An account whose EBS default is a customer-managed key must let this role use it.
 */
export class Backups extends pulumi.ComponentResource {
  /** The DLM policy's id (`policy-…`). */
  readonly snapshotPolicyId: pulumi.Output<string>;
  readonly roleArn: pulumi.Output<string>;

  constructor(name: string, args: BackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:storage:Backups", name, {}, opts);
    const child = { parent: this };

    const role = new aws.iam.Role(
      `${name}-dlm-role`,
      {
        description: `${PROJECT} ${args.stack}: Data Lifecycle Manager snapshots the database volumes`,
        assumeRolePolicy: JSON.stringify(dlmAssumeRolePolicy()),
        tags: args.tags("shared", `${name}-dlm-role`),
      },
      child,
    );
    const servicePolicy = new aws.iam.RolePolicyAttachment(
      `${name}-dlm-service-role`,
      {
        role: role.name,
        policyArn: pulumi.output(args.account).apply(dlmServiceRolePolicyArn),
      },
      child,
    );
    const snapshots = new aws.dlm.LifecyclePolicy(
      `${name}-snapshots`,
      {
        // DLM takes letters, digits, spaces, '_' and '-' only; stack names may also hold '.'.
        description: `${PROJECT} ${args.stack.replace(/[^0-9A-Za-z _-]/g, "-")} daily snapshots of the database volumes`,
        executionRoleArn: role.arn,
        state: "ENABLED",
        policyDetails: {
          policyType: "EBS_SNAPSHOT_MANAGEMENT",
          resourceTypes: ["VOLUME"],
          targetTags: snapshotTags(args.stack),
          schedules: [
            {
              name: "daily",
              createRule: { interval: 24, intervalUnit: "HOURS", times: SNAPSHOT_TIME_UTC },
              retainRule: { count: args.retentionDays },
              copyTags: true,
            },
          ],
        },
        tags: args.tags("shared", `${name}-snapshots`),
      },
      // Its role can snapshot from the policy's first run on.
      { parent: this, dependsOn: [servicePolicy] },
    );

    this.snapshotPolicyId = snapshots.id;
    this.roleArn = role.arn;
    this.registerOutputs({ snapshotPolicyId: this.snapshotPolicyId, roleArn: this.roleArn });
  }
}
