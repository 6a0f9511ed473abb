// The team's app release (issue 18): the packed app directory uploaded to the stack's bucket under
// its id, for the app nodes to download, check and switch to.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { releaseKey } from "../model/naming";
import { ReleaseArchive } from "../platform/appArchive";

export interface AppReleaseArgs {
  /** The packed app directory (platform/appArchive.ts). */
  readonly archive: ReleaseArchive;
  /** The stack's bucket (components/stackBucket.ts). */
  readonly bucketName: pulumi.Input<string>;
  /** The key the bucket encrypts with: the object says so itself too. */
  readonly keyArn: pulumi.Input<string>;
}

export class AppRelease extends pulumi.ComponentResource {
  /** The release id: the sha256 of the archive. */
  readonly id: string;
  /** The object's key, known once it is uploaded: a bundle names it only then. */
  readonly key: pulumi.Output<string>;

  constructor(name: string, args: AppReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:app:AppRelease", name, {}, opts);
    // A new key per release: a new object (the old one deleted once the bundles moved on), so S3
    // never serves one key with two contents. No tags: the bucket's say whose it is.
    const object = new aws.s3.BucketObjectv2(
      `${name}-archive`,
      {
        bucket: args.bucketName,
        key: releaseKey(args.archive.id),
        source: new pulumi.asset.FileAsset(args.archive.path),
        contentType: "application/gzip",
        serverSideEncryption: "aws:kms",
        kmsKeyId: args.keyArn,
        bucketKeyEnabled: true,
      },
      { parent: this },
    );
    this.id = args.archive.id;
    this.key = object.key;
    this.registerOutputs({ key: this.key });
  }
}
