// The stack's bucket under mocks: private, owner-enforced, versioned, SSE-KMS with the stack's key,
// TLS only, old versions and backups expired; destroyable only where the data is not protected.
import { Plan } from "../plan/plan";
import { FULL_BACKUP_PREFIX, binlogPrefix } from "../model/backups";
import { DEFAULT_APP_NODE_COUNT, appNodeNames } from "../model/topology";
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

  test.each([
    ["the default", 7],
    ["prod's", 30],
  ])(
    "old versions expire after 30 days; abandoned uploads and lone delete markers go; backups after %s %i days, binlogs a day later",
    async (_, days) => {
      const p = days === 7 ? plan : await planStack("prod");
      expect(one(p, T.bucketLifecycle, "files-lifecycle").inputs).toEqual({
        bucket: bucket(p).id,
        rules: [
          {
            id: "expire-old-versions",
            status: "Enabled",
            filter: { prefix: "" },
            noncurrentVersionExpiration: { noncurrentDays: 30 },
            abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
            expiration: { expiredObjectDeleteMarker: true },
          },
          {
            id: "expire-full-backups",
            status: "Enabled",
            filter: { prefix: "backups/full/" },
            expiration: { days },
          },
          {
            id: "expire-binlogs",
            status: "Enabled",
            filter: { prefix: "backups/binlog/" },
            expiration: { days: days + 1 },
          },
        ],
      });
    },
  );

  test("backupRetentionDays moves both backup rules, and nothing else", async () => {
    const rules = (p: Plan) =>
      one(p, T.bucketLifecycle, "files-lifecycle").inputs.rules as Record<string, unknown>[];
    const longer = await planConfig({
      domain: "www.example.com",
      protectData: "false",
      backupRetentionDays: "90",
    });
    expect(rules(longer).map((r) => [r.id, r.expiration])).toEqual([
      ["expire-old-versions", { expiredObjectDeleteMarker: true }],
      ["expire-full-backups", { days: 90 }],
      ["expire-binlogs", { days: 91 }],
    ]);
    expect(rules(longer)[0]).toEqual(rules(plan)[0]);
  });

  test("the backup rules expire exactly the prefixes the nodes write under", () => {
    const rules = one(plan, T.bucketLifecycle, "files-lifecycle").inputs.rules as {
      id: string;
      filter: { prefix: string };
    }[];
    const prefixOf = (id: string) => rules.find((r) => r.id === id)!.filter.prefix;
    expect(prefixOf("expire-full-backups")).toBe(FULL_BACKUP_PREFIX);
    for (const node of appNodeNames(DEFAULT_APP_NODE_COUNT))
      expect(binlogPrefix(node).startsWith(prefixOf("expire-binlogs"))).toBe(true);
    // Neither reaches the bundles or the releases.
    for (const key of ["bundles/s1/x.json", "releases/x.tar.gz", "backupsx/full/y"])
      expect(rules.slice(1).some((r) => key.startsWith(r.filter.prefix))).toBe(false);
  });

  test("rules S3 accepts together: lifecycle V2 filters (overlap allowed), unique ids, no expiration mixing days and delete markers", () => {
    const rules = one(plan, T.bucketLifecycle, "files-lifecycle").inputs.rules as Record<
      string,
      unknown
    >[];
    // A rule-level `prefix` makes the whole configuration V1, where overlapping prefixes with the
    // same action are refused; with `filter` they are allowed.
    for (const rule of rules) {
      expect(rule).not.toHaveProperty("prefix");
      expect(rule.filter).toEqual({ prefix: expect.any(String) });
      const expiration = rule.expiration as Record<string, unknown> | undefined;
      if (expiration) expect(Object.keys(expiration)).toHaveLength(1);
    }
    expect(new Set(rules.map((r) => r.id)).size).toBe(rules.length);
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
