// Session Manager's preferences under mocks (issue 20): the stack's own shell document, streaming
// every session to the stack's encrypted sessions log group; the account-wide default untouched.
import { Plan } from "../plan/plan";
import { ACCOUNT_ID, T, grantsOf, ofType, one, planConfig, planStack } from "./harness";

let plan: Plan;

beforeAll(async () => {
  plan = await planConfig({ domain: "www.example.com", logRetentionDays: "90" });
});

describe("the stack's Session Manager preferences", () => {
  test("one Session document of the stack's own, never the account's SSM-SessionManagerRunShell", () => {
    const documents = ofType(plan, T.ssmDocument);
    expect(documents.map((d) => [d.name, d.inputs.name, d.inputs.documentType])).toEqual([
      ["sessions-document", "webstack-test-shell", "Session"],
    ]);
    expect(documents[0].inputs.documentFormat).toBe("JSON");
    expect(plan.outputs.sessions).toEqual({
      document: "webstack-test-shell",
      logGroup: "/webstack/test/sessions",
    });
  });

  test("a shell as ssm-user, streamed to the sessions group, refused where that group is not encrypted", () => {
    const content = JSON.parse(
      String(one(plan, T.ssmDocument, "sessions-document").inputs.content),
    );
    expect(content).toEqual({
      schemaVersion: "1.0",
      description: "webstack test: a shell on a node, streamed to /webstack/test/sessions",
      sessionType: "Standard_Stream",
      inputs: {
        s3BucketName: "",
        s3KeyPrefix: "",
        s3EncryptionEnabled: true,
        cloudWatchLogGroupName: "/webstack/test/sessions",
        cloudWatchEncryptionEnabled: true,
        cloudWatchStreamingEnabled: true,
        kmsKeyId: "",
        runAsEnabled: false,
        runAsDefaultUser: "",
        idleSessionTimeout: "20",
        shellProfile: { linux: "", windows: "" },
      },
    });
  });

  test("the sessions group: the stack's retention, encrypted with its own rotated key", () => {
    const group = one(plan, T.logGroup, "sessions-logs");
    const key = one(plan, T.kmsKey, "sessions-key");
    expect(group.inputs).toMatchObject({
      name: "/webstack/test/sessions",
      retentionInDays: 90,
      kmsKeyId: key.outputs.arn,
    });
    expect(key.inputs).toMatchObject({ enableKeyRotation: true, deletionWindowInDays: 30 });
    expect(group.inputs.tags).toMatchObject({ Role: "shared", Name: "webstack-test-log-sessions" });
  });

  test("the key: the account administers it through IAM, CloudWatch Logs uses it for the sessions group only", () => {
    const group = `arn:aws:logs:eu-west-1:${ACCOUNT_ID}:log-group:/webstack/test/sessions`;
    expect(grantsOf(one(plan, T.kmsKey, "sessions-key").inputs.policy)).toEqual([
      {
        principal: `AWS:arn:aws:iam::${ACCOUNT_ID}:root`,
        actions: ["kms:*"],
        resources: ["*"],
      },
      {
        principal: "Service:logs.eu-west-1.amazonaws.com",
        actions: [
          "kms:Decrypt*",
          "kms:Describe*",
          "kms:Encrypt*",
          "kms:GenerateDataKey*",
          "kms:ReEncrypt*",
        ],
        resources: ["*"],
        condition: { ArnEquals: { "kms:EncryptionContext:aws:logs:arn": group } },
      },
    ]);
  });

  test("prod and dev each name their own document and group", async () => {
    for (const stack of ["dev", "prod"]) {
      const stackPlan = await planStack(stack);
      expect(stackPlan.outputs.sessions).toEqual({
        document: `webstack-${stack}-shell`,
        logGroup: `/webstack/${stack}/sessions`,
      });
    }
  });
});
