// The policy pack as Pulumi runs it: pinned dependencies, CrossGuard policies called as Pulumi.
import * as fs from "fs";
import * as path from "path";
import { encodeUserData } from "../cloud-init/userDataEncoding";
import { PROJECT_DIR, T } from "./harness";
import { GOOD_INSTANCE } from "./policyFixtures";

test("the pack pins the program's @pulumi/pulumi", () => {
  const pack = JSON.parse(
    fs.readFileSync(path.join(PROJECT_DIR, "policy", "package.json"), "utf8"),
  );
  const program = JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, "package.json"), "utf8"));
  expect(pack.dependencies["@pulumi/pulumi"]).toBe(program.dependencies["@pulumi/pulumi"]);
  expect(pack.dependencies["@pulumi/policy"]).toBe("~1.21.0");
});

describe("the pack's CrossGuard policies (called as Pulumi calls them)", () => {
  // Loaded lazily: the module imports only types from @pulumi/policy.
  const load = () => require("../policy/policies") as typeof import("../policy/policies");
  /** A resource as CrossGuard passes it to a stack policy. */
  const resource = (
    urn: string,
    type: string,
    props: Record<string, unknown>,
    deps: Record<string, unknown[]> = {},
  ) => ({ urn, type, name: urn, props, propertyDependencies: deps });

  test("a resource policy reports a violation naming the resource and the control", () => {
    const { resourcePolicies } = load();
    const imdsv2 = resourcePolicies.find((p) => p.name === "imdsv2-required")!;
    const reported: string[] = [];
    const validate = imdsv2.validateResource as (
      args: unknown,
      report: (m: string) => void,
    ) => void;
    validate(
      {
        type: T.instance,
        name: "web",
        props: { ...GOOD_INSTANCE, metadataOptions: { httpTokens: "optional" } },
      },
      (m) => reported.push(m),
    );
    validate({ type: T.instance, name: "ok", props: GOOD_INSTANCE }, (m) => reported.push(m));
    expect(reported).toEqual([
      "web: does not require IMDSv2 (metadataOptions.httpTokens must be required) (FSBP EC2.8, CKV_AWS_79)",
    ]);
    expect(resourcePolicies.every((p) => p.enforcementLevel === "mandatory")).toBe(true);
  });

  test("a stack policy follows property dependencies, as a preview provides them before ids exist", () => {
    const { stackPolicies } = load();
    const ssm = stackPolicies.find((p) => p.name === "instances-managed-by-ssm")!;
    const role = resource("role", T.role, {});
    const profile = resource("profile", T.instanceProfile, {}, { role: [role] });
    const sessionManager = resource(
      "ssm",
      T.rolePolicy,
      {
        policy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Action: ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel"],
              Resource: "*",
            },
          ],
        }),
      },
      { role: [role] },
    );
    const managed = resource("managed", T.instance, {}, { iamInstanceProfile: [profile] });
    const orphan = resource("orphan", T.instance, {});
    // The AWS-managed policy no longer counts: the role needs the inline Session Manager policy.
    const oldRole = resource("old-role", T.role, {});
    const oldProfile = resource("old-profile", T.instanceProfile, {}, { role: [oldRole] });
    const attachment = resource(
      "old-ssm",
      T.rolePolicyAttachment,
      { policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" },
      { role: [oldRole] },
    );
    const old = resource("old", T.instance, {}, { iamInstanceProfile: [oldProfile] });
    const reported: string[] = [];
    const validate = ssm.validateStack as (args: unknown, report: (m: string) => void) => void;
    validate(
      {
        resources: [
          role,
          profile,
          sessionManager,
          managed,
          orphan,
          oldRole,
          oldProfile,
          attachment,
          old,
        ],
        getConfig: () => ({}),
      },
      (m) => reported.push(m),
    );
    expect(reported).toEqual([
      "orphan: has no instance profile whose role is managed by SSM (FSBP SSM.1)",
      "old: has no instance profile whose role is managed by SSM (FSBP SSM.1)",
    ]);
  });

  test("the secret-pattern list comes from the pack's config", () => {
    const { stackPolicies } = load();
    const secrets = stackPolicies.find((p) => p.name === "no-secrets-in-user-data")!;
    const instance = {
      urn: "i",
      type: T.instance,
      name: "i",
      props: encodeUserData("#cloud-config\n# token-42\n"),
      propertyDependencies: {},
    };
    const run = (config: object) => {
      const reported: string[] = [];
      (secrets.validateStack as (args: unknown, report: (m: string) => void) => void)(
        { resources: [instance], getConfig: () => config },
        (m) => reported.push(m),
      );
      return reported;
    };
    expect(run({})).toEqual([]);
    expect(run({ secretPatterns: ["token-\\d+"] })).toHaveLength(1);
  });

  test("at preview, an unknown value is skipped, not the whole stack policy", () => {
    const { stackPolicies } = load();
    // What CrossGuard passes at preview: props behind a proxy that throws on an unknown value.
    const proxy = require("@pulumi/policy/proxy") as {
      unknownCheckingProxy: <X>(x: X) => X;
      unknownStringValue: string;
    };
    const unknown = proxy.unknownStringValue;
    const node = (...args: Parameters<typeof resource>) => {
      const r = resource(...args);
      return { ...r, props: proxy.unknownCheckingProxy(r.props) };
    };
    const bucket = node("bucket", T.bucket, {});
    const onBucket = { bucket: [bucket] };
    const resources = [
      bucket,
      node(
        "public-access",
        T.bucketPublicAccessBlock,
        {
          bucket: unknown,
          blockPublicAcls: true,
          blockPublicPolicy: true,
          ignorePublicAcls: true,
          restrictPublicBuckets: true,
        },
        onBucket,
      ),
      node(
        "encryption",
        T.bucketEncryption,
        {
          bucket: unknown,
          rules: [
            {
              applyServerSideEncryptionByDefault: {
                sseAlgorithm: "aws:kms",
                kmsMasterKeyId: unknown,
              },
            },
          ],
        },
        onBucket,
      ),
      node("tls-only", T.bucketPolicy, { bucket: unknown, policy: unknown }, onBucket),
      node("key", T.ssmParameter, { type: "SecureString", value: unknown }),
      node("bundle", T.bucketObject, { content: unknown, serverSideEncryption: "aws:kms" }),
      node("i", T.instance, {
        userData: "#cloud-config\n# api_key: 0123456789abcdef0123456789abcdef\n",
      }),
    ];
    const run = (name: string) => {
      const reported: string[] = [];
      const policy = stackPolicies.find((p) => p.name === name)!;
      (policy.validateStack as (args: unknown, report: (m: string) => void) => void)(
        { resources, getConfig: () => ({}) },
        (m) => reported.push(m),
      );
      return reported;
    };
    expect(run("buckets-private-kms-tls-only")).toEqual([]);
    expect(run("no-secrets-in-user-data")).toEqual([
      expect.stringMatching(/^i: user-data matches the secret pattern /),
    ]);
  });
});
