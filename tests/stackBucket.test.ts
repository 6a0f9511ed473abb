// The stack's bucket under mocks: private, owner-enforced, versioned, SSE-KMS with the stack's key,
// TLS only, old versions expired; destroyable only where the data is not protected.
import { Plan } from "../plan/plan";
import { T, one, planConfig, planStack } from "./harness";

let plan: Plan;
beforeAll(async () => {
  plan = await planConfig({ domain: "www.example.com", protectData: "false" });
});

const bucket = (p: Plan) => one(p, T.bucket, "files-bucket");

describe("the stack's bucket", () => {
  test("autonamed, tagged, destroyable with its versions where data is not protected", async () => {
    expect(bucket(plan).inputs).toEqual({
      forceDestroy: true,
      tags: expect.objectContaining({ Role: "shared", Name: "webstack-test-files-bucket" }),
    });
    expect(bucket(plan).outputs.bucket).toMatch(/^files-bucket-[0-9a-f]{7}$/);
    expect(bucket(await planStack("prod")).inputs.forceDestroy).toBe(false);
  });

  test("no public access, by ACL or by policy", () => {
    expect(one(plan, T.bucketPublicAccessBlock, "files-public-access").inputs).toEqual({
      bucket: bucket(plan).id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
  });

  test("ACLs off: the bucket owner owns every object", () => {
    expect(one(plan, T.bucketOwnershipControls, "files-ownership").inputs).toEqual({
      bucket: bucket(plan).id,
      rule: { objectOwnership: "BucketOwnerEnforced" },
    });
  });

  test("versioned", () => {
    expect(one(plan, T.bucketVersioning, "files-versioning").inputs).toEqual({
      bucket: bucket(plan).id,
      versioningConfiguration: { status: "Enabled" },
    });
  });

  test("SSE-KMS with the stack's own key, with a bucket key", () => {
    expect(one(plan, T.bucketEncryption, "files-encryption").inputs).toEqual({
      bucket: bucket(plan).id,
      rules: [
        {
          applyServerSideEncryptionByDefault: {
            sseAlgorithm: "aws:kms",
            kmsMasterKeyId: one(plan, T.kmsKey, "parameters-key").outputs.arn,
          },
          bucketKeyEnabled: true,
        },
      ],
    });
  });

  test("old versions expire after 30 days; abandoned uploads and lone delete markers go", () => {
    expect(one(plan, T.bucketLifecycle, "files-lifecycle").inputs).toEqual({
      bucket: bucket(plan).id,
      rules: [
        {
          id: "expire-old-versions",
          status: "Enabled",
          filter: { prefix: "" },
          noncurrentVersionExpiration: { noncurrentDays: 30 },
          abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
          expiration: { expiredObjectDeleteMarker: true },
        },
      ],
    });
  });

  test("TLS only: any request without it is denied, whoever makes it; set after the public access block", () => {
    const policy = one(plan, T.bucketPolicy, "files-tls-only");
    const arn = bucket(plan).outputs.arn;
    expect(policy.inputs.bucket).toBe(bucket(plan).id);
    expect(JSON.parse(String(policy.inputs.policy))).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "DenyInsecureTransport",
          Effect: "Deny",
          Principal: "*",
          Action: "s3:*",
          Resource: [arn, `${arn}/*`],
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        },
      ],
    });
    expect(policy.options.dependsOn).toEqual([
      one(plan, T.bucketPublicAccessBlock, "files-public-access").urn,
    ]);
  });
});
