// The stack's private S3 bucket: what nodes fetch (their bundles) and the database's backups,
// encrypted with the stack's key.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { BINLOG_PREFIX, FULL_BACKUP_PREFIX } from "../model/backups";
import { Tagger } from "../model/tags";
import { tlsOnlyBucketPolicy } from "./iamPolicies";

export interface StackBucketArgs {
  readonly stack: string;
  /** The stack's customer-managed key (components/parameterKey.ts): objects are SSE-KMS with it. */
  readonly keyArn: pulumi.Input<string>;
  /** When true, `pulumi destroy` leaves a bucket that still holds versions (no forceDestroy). */
  readonly protectData: boolean;
  /** Days an object's replaced or deleted versions are kept. @default 30 */
  readonly noncurrentVersionDays?: number;
  /** Days a physical backup is kept (config `backupRetentionDays`); its binlogs a day longer. */
  readonly backupRetentionDays: number;
  readonly tags: Tagger;
}

export class StackBucket extends pulumi.ComponentResource {
  readonly bucketName: pulumi.Output<string>;
  readonly bucketArn: pulumi.Output<string>;

  constructor(name: string, args: StackBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:storage:StackBucket", name, {}, opts);
    const child = { parent: this };

    // Autonamed (a bucket name is global); inline settings are deprecated in favour of the
    // resources below, one per concern.
    const bucket = new aws.s3.Bucket(
      `${name}-bucket`,
      { forceDestroy: !args.protectData, tags: args.tags("shared", `${name}-bucket`) },
      child,
    );
    // S3.1/S3.8: no public access by ACL or policy, whatever a later change asks for.
    const publicAccess = new aws.s3.BucketPublicAccessBlock(
      `${name}-public-access`,
      {
        bucket: bucket.id,
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      },
      child,
    );
    // S3.12: ACLs off; the bucket's account owns every object and IAM alone grants access.
    new aws.s3.BucketOwnershipControls(
      `${name}-ownership`,
      { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } },
      child,
    );
    // S3.14: a replaced or deleted object stays recoverable for a while.
    new aws.s3.BucketVersioning(
      `${name}-versioning`,
      { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } },
      child,
    );
    // S3.17: SSE-KMS with the stack's key; the bucket key keeps KMS calls (and their cost) few.
    new aws.s3.BucketServerSideEncryptionConfiguration(
      `${name}-encryption`,
      {
        bucket: bucket.id,
        rules: [
          {
            applyServerSideEncryptionByDefault: {
              sseAlgorithm: "aws:kms",
              kmsMasterKeyId: args.keyArn,
            },
            bucketKeyEnabled: true,
          },
        ],
      },
      child,
    );
    // S3.13: old versions and abandoned uploads do not pile up, and backups go after
    // backupRetentionDays. The rules overlap (the first covers every key), which S3 accepts of
    // rules with a `filter` (lifecycle V2; a rule-level `prefix` would refuse it): each object gets
    // every action that applies to it. An expired backup becomes an old version, kept
    // noncurrentVersionDays more by the first rule, like any object a node overwrote.
    new aws.s3.BucketLifecycleConfiguration(
      `${name}-lifecycle`,
      {
        bucket: bucket.id,
        rules: [
          {
            id: "expire-old-versions",
            status: "Enabled",
            filter: { prefix: "" },
            noncurrentVersionExpiration: { noncurrentDays: args.noncurrentVersionDays ?? 30 },
            abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
            expiration: { expiredObjectDeleteMarker: true },
          },
          {
            id: "expire-full-backups",
            status: "Enabled",
            filter: { prefix: FULL_BACKUP_PREFIX },
            expiration: { days: args.backupRetentionDays },
          },
          // A day longer: restoring from the oldest backup kept replays every binlog from its start.
          {
            id: "expire-binlogs",
            status: "Enabled",
            filter: { prefix: BINLOG_PREFIX },
            expiration: { days: args.backupRetentionDays + 1 },
          },
        ],
      },
      child,
    );
    // S3.5: requests without TLS are refused. After the public access block: S3 judges the policy
    // against it.
    new aws.s3.BucketPolicy(
      `${name}-tls-only`,
      {
        bucket: bucket.id,
        policy: bucket.arn.apply((arn) => JSON.stringify(tlsOnlyBucketPolicy(arn))),
      },
      { parent: this, dependsOn: [publicAccess] },
    );

    this.bucketName = bucket.bucket;
    this.bucketArn = bucket.arn;
    this.registerOutputs({ bucketName: this.bucketName, bucketArn: this.bucketArn });
  }
}
