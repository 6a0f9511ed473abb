// Node identities under mocks: EC2-only roles that read and decrypt only their own parameters.
import { DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import { handlesBackups, nodeBackupPolicy } from "../components/iamPolicies";
import { ParameterScope, parameterPath } from "../model/naming";
import { Plan } from "../plan/plan";
import { ACCOUNT_ID, T, grantsOf, ofType, one, planConfig, planStack } from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

let plan: Plan;

beforeAll(async () => {
  plan = await planConfig({ domain: "www.example.com" });
});

/** Whether an IAM resource pattern (`*` for any run of characters) covers an ARN. */
function covers(pattern: string, arn: string): boolean {
  const escaped = pattern.split("*").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${escaped.join(".*")}$`).test(arn);
}

/** Every inline policy of a node's role, whichever way it names the role (its id or its name). */
function policiesOf(node: string) {
  const role = one(plan, T.role, `${node}-identity-role`);
  return ofType(plan, T.rolePolicy).filter((p) =>
    [role.outputs.id, role.outputs.name].includes(p.inputs.role),
  );
}

describe("node identities", () => {
  test("one role per node, assumable by EC2 only, with an instance profile", () => {
    for (const node of NODES) {
      const role = one(plan, T.role, `${node}-identity-role`);
      expect(grantsOf(role.inputs.assumeRolePolicy)).toEqual([
        { principal: "Service:ec2.amazonaws.com", actions: ["sts:AssumeRole"] },
      ]);
      expect(one(plan, T.instanceProfile, `${node}-identity-profile`).inputs.role).toBe(
        role.outputs.name,
      );
    }
  });

  test("no managed policy: every grant is an inline policy of the node's own", () => {
    // The one attachment of the stack is DLM's, on its own role (tests/backups.test.ts).
    const nodeRoles = NODES.map((node) => one(plan, T.role, `${node}-identity-role`));
    const attached = ofType(plan, T.rolePolicyAttachment).map((a) => a.inputs.role);
    expect(attached).toHaveLength(1);
    for (const role of nodeRoles) expect(attached).not.toContain(role.outputs.name);
    for (const node of NODES) {
      const concerns = policiesOf(node)
        .map((p) => p.name.replace(`${node}-identity-`, ""))
        .sort();
      expect(concerns).toEqual(
        node === "lb"
          ? ["agent", "bundles", "parameters", "session-logs", "session-manager"]
          : [
              "agent",
              "backups",
              "bundles",
              "parameters",
              "releases",
              "session-logs",
              "session-manager",
            ],
      );
    }
  });

  test.each(NODES)(
    "%s's Session Manager policy: the agent's channels and registration, no parameter read",
    (node) => {
      const grants = grantsOf(
        one(plan, T.rolePolicy, `${node}-identity-session-manager`).inputs.policy,
      );
      expect(grants).toEqual([
        {
          actions: [
            "ssm:UpdateInstanceInformation",
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
          ],
          // These actions have no resource type IAM can scope them to.
          resources: ["*"],
        },
      ]);
    },
  );

  test.each(NODES)(
    "%s's agent policy: its own log groups' streams, metrics in its namespaces only",
    (node) => {
      const role = node === "lb" ? "loadbalancer" : "app";
      const keys =
        role === "loadbalancer"
          ? ["cloud-init", "haproxy", "unattended-upgrades"]
          : [
              "app",
              "cloud-init",
              "db-error",
              "db-slow",
              "nginx-access",
              "nginx-error",
              "unattended-upgrades",
            ];
      const groups = ofType(plan, T.logGroup)
        .filter((g) => g.name.startsWith(`logs-${node}-`))
        .map((g) => String(g.inputs.name))
        .sort();
      expect(groups).toEqual(keys.map((key) => `/webstack/test/${node}/${key}`));
      const arn = (rest: string) => `arn:aws:logs:eu-west-1:${ACCOUNT_ID}:log-group:${rest}`;
      const grants = grantsOf(one(plan, T.rolePolicy, `${node}-identity-agent`).inputs.policy);
      expect(grants).toEqual([
        {
          actions: ["cloudwatch:PutMetricData"],
          // PutMetricData has no resource type: the namespace condition is its only scope.
          resources: ["*"],
          condition: { StringEquals: { "cloudwatch:namespace": ["CWAgent", "Webstack"] } },
        },
        {
          actions: ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
          resources: groups
            .flatMap((group) => [arn(`${group}:*`), arn(`${group}:log-stream:*`)])
            .sort(),
        },
      ]);
    },
  );

  test.each(NODES)(
    "%s's session-logs policy: streams in the stack's sessions group, and finding that group",
    (node) => {
      const arn = (rest: string) => `arn:aws:logs:eu-west-1:${ACCOUNT_ID}:log-group:${rest}`;
      const grants = grantsOf(
        one(plan, T.rolePolicy, `${node}-identity-session-logs`).inputs.policy,
      );
      expect(grants).toEqual([
        {
          actions: ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
          resources: [
            arn("/webstack/test/sessions:*"),
            arn("/webstack/test/sessions:log-stream:*"),
          ],
        },
        // Authorised on the account's log groups as a whole: it cannot name one group.
        { actions: ["logs:DescribeLogGroups"], resources: [arn("*")] },
      ]);
      // The group the grants name is the one the stack creates and its document streams to.
      const group = one(plan, T.logGroup, "sessions-logs");
      expect(group.inputs.name).toBe("/webstack/test/sessions");
      expect(
        JSON.parse(String(one(plan, T.ssmDocument, "sessions-document").inputs.content)).inputs,
      ).toMatchObject({ cloudWatchLogGroupName: group.inputs.name });
    },
  );

  test("no role creates log groups, changes their retention, writes others' logs, or reads parameters everywhere", () => {
    for (const node of NODES) {
      const grants = policiesOf(node).flatMap((p) => grantsOf(p.inputs.policy));
      for (const grant of grants) {
        const text = JSON.stringify(grant.actions);
        expect(text).not.toMatch(/logs:CreateLogGroup|logs:PutRetentionPolicy|logs:\*|"\*"/);
        expect(text).not.toMatch(/logs:Delete|cloudwatch:\*|ssm:\*|ssm:DescribeParameters/);
        if (grant.actions.some((a) => a.startsWith("ssm:Get")))
          expect(grant.resources).not.toContain("*");
        // Its own groups, the sessions' (every node's sessions share it), and finding that one.
        const own = `^arn:aws:logs:eu-west-1:${ACCOUNT_ID}:log-group:/webstack/test/(${node}/[a-z-]+|sessions):`;
        if (grant.actions.join() === "logs:DescribeLogGroups")
          expect(grant.resources).toEqual([`arn:aws:logs:eu-west-1:${ACCOUNT_ID}:log-group:*`]);
        else if (grant.actions.some((a) => a.startsWith("logs:")))
          for (const resource of grant.resources ?? []) expect(resource).toMatch(new RegExp(own));
        if (grant.actions.includes("cloudwatch:PutMetricData"))
          expect(grant.condition).toEqual({
            StringEquals: { "cloudwatch:namespace": ["CWAgent", "Webstack"] },
          });
      }
      expect(grants.some((g) => g.actions.includes("cloudwatch:PutMetricData"))).toBe(true);
    }
  });

  test("s1 reads and decrypts only its own and the shared parameters", () => {
    const keyArn = one(plan, T.kmsKey, "parameters-key").outputs.arn;
    const arn = (path: string) => `arn:aws:ssm:eu-west-1:${ACCOUNT_ID}:parameter${path}`;
    const scopes: ParameterScope[] = ["s1", "shared"];
    const paths = scopes.map((scope) => arn(parameterPath(plan.stack, scope)));
    const below = scopes.map((scope) => arn(`${parameterPath(plan.stack, scope)}/*`));
    const grants = grantsOf(one(plan, T.rolePolicy, "s1-identity-parameters").inputs.policy);
    expect(grants).toEqual([
      {
        actions: ["kms:Decrypt"],
        resources: [keyArn],
        // Through SSM only, and only for values SSM encrypted for those parameters.
        condition: {
          StringEquals: { "kms:ViaService": "ssm.eu-west-1.amazonaws.com" },
          StringLike: { "kms:EncryptionContext:PARAMETER_ARN": below },
        },
      },
      {
        actions: ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
        // GetParametersByPath is authorised on the path itself.
        resources: [...paths, ...below].sort(),
      },
    ]);
    // Of the planned parameters, s1 can read and decrypt exactly the ones made for it, its bundle
    // pointer included (no shared one exists without Datadog).
    const parameters = ofType(plan, T.ssmParameter);
    const reached = (patterns: string[]) =>
      parameters
        .filter((p) => patterns.some((pattern) => covers(pattern, String(p.outputs.arn))))
        .map((p) => p.name)
        .sort();
    const madeForS1 = parameters.filter(
      (p) => p.name.startsWith("app-secrets-s1-") || p.name === "bundles-s1-pointer",
    );
    expect(madeForS1).toHaveLength(7);
    expect(reached(grants[1].resources!)).toEqual(madeForS1.map((p) => p.name).sort());
    expect(reached(below)).toEqual(madeForS1.map((p) => p.name).sort());
  });

  test.each(NODES)("%s's policy names no other node's parameters", (node) => {
    const text = one(plan, T.rolePolicy, `${node}-identity-parameters`).inputs.policy as string;
    for (const other of NODES.filter((n) => n !== node))
      expect(text).not.toContain(parameterPath(plan.stack, other));
    expect(text).not.toMatch(/"\*"|ssm:\*|kms:\*/);
  });

  test.each(NODES)(
    "%s's bundles: its own prefix only, decrypted through S3 only, its own status written, the status it waits for read",
    (node) => {
      const bucketArn = String(one(plan, T.bucket, "files-bucket").outputs.arn);
      const keyArn = one(plan, T.kmsKey, "parameters-key").outputs.arn;
      const ssm = (name: string) => `arn:aws:ssm:eu-west-1:${ACCOUNT_ID}:parameter${name}`;
      const grants = grantsOf(one(plan, T.rolePolicy, `${node}-identity-bundles`).inputs.policy);
      expect(grants).toEqual(
        [
          {
            actions: ["kms:Decrypt"],
            resources: [keyArn],
            // With the bucket key, S3's encryption context is the bucket's ARN: the prefix is
            // S3's to enforce, and the key serves this bucket through S3 only.
            condition: {
              StringEquals: {
                "kms:ViaService": "s3.eu-west-1.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": bucketArn,
              },
            },
          },
          { actions: ["s3:GetObject"], resources: [`${bucketArn}/bundles/${node}/*`] },
          {
            actions: ["ssm:PutParameter"],
            resources: [ssm(`/webstack/test/${node}/bundle-status`)],
          },
          // The primary applies after the replica: it reads the replica's status, nothing more.
          ...(node === "s2"
            ? [
                {
                  actions: ["ssm:GetParameter"],
                  resources: [ssm("/webstack/test/s1/bundle-status")],
                },
              ]
            : []),
        ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      );
      // No listing: a node cannot learn what other keys exist.
      expect(JSON.stringify(grants)).not.toMatch(/s3:ListBucket|s3:\*|"\*"/);
      // Its pointer is below its own parameter path, which it already reads.
      const pointer = String(one(plan, T.ssmParameter, `bundles-${node}-pointer`).outputs.arn);
      const reads = grantsOf(one(plan, T.rolePolicy, `${node}-identity-parameters`).inputs.policy)
        .filter((g) => g.actions.includes("ssm:GetParameter"))
        .flatMap((g) => g.resources ?? []);
      expect(reads.some((pattern) => covers(pattern, pointer))).toBe(true);
      for (const other of NODES.filter((n) => n !== node)) {
        const theirs = String(one(plan, T.ssmParameter, `bundles-${other}-pointer`).outputs.arn);
        expect(reads.some((pattern) => covers(pattern, theirs))).toBe(false);
      }
    },
  );

  describe.each(["test", "dev", "prod"])("%s's backups", (stack) => {
    let p: Plan;
    beforeAll(async () => {
      p = stack === "test" ? plan : await planStack(stack);
    });
    const bucketArn = () => String(one(p, T.bucket, "files-bucket").outputs.arn);
    const keyArn = () => one(p, T.kmsKey, "parameters-key").outputs.arn;
    const policiesIn = (node: string) => {
      const role = one(p, T.role, `${node}-identity-role`);
      return ofType(p, T.rolePolicy).filter((r) =>
        [role.id, role.outputs.name].includes(r.inputs.role as string),
      );
    };
    // What S3 asks of KMS for the stack's bucket: through S3, for that bucket only.
    const throughS3 = () => ({
      StringEquals: {
        "kms:ViaService": "s3.eu-west-1.amazonaws.com",
        "kms:EncryptionContext:aws:s3:arn": bucketArn(),
      },
    });
    const byText = (a: object, b: object) => JSON.stringify(a).localeCompare(JSON.stringify(b));

    test("s1, the replica, writes full backups, and reads and lists the backups to restore", () => {
      const grants = grantsOf(one(p, T.rolePolicy, "s1-identity-backups").inputs.policy);
      expect(grants).toEqual(
        [
          { actions: ["s3:PutObject"], resources: [`${bucketArn()}/backups/full/*`] },
          { actions: ["kms:GenerateDataKey"], resources: [keyArn()], condition: throughS3() },
          { actions: ["s3:GetObject"], resources: [`${bucketArn()}/backups/*`] },
          {
            actions: ["s3:ListBucket"],
            resources: [bucketArn()],
            // A listing of the whole bucket, or of another prefix, is refused.
            condition: { StringLike: { "s3:prefix": "backups/*" } },
          },
        ].sort(byText),
      );
    });

    test("s2, the primary, ships its own binlogs, and reads nothing back", () => {
      const grants = grantsOf(one(p, T.rolePolicy, "s2-identity-backups").inputs.policy);
      expect(grants).toEqual(
        [
          { actions: ["s3:PutObject"], resources: [`${bucketArn()}/backups/binlog/s2/*`] },
          { actions: ["kms:GenerateDataKey"], resources: [keyArn()], condition: throughS3() },
        ].sort(byText),
      );
    });

    test("a MySQL stack's backups (XtraBackup) have the same two policies, to the letter", async () => {
      const mysql = await planConfig({ domain: "www.example.com", dbEngine: "mysql" });
      const backups = (plan: typeof p) =>
        ofType(plan, T.rolePolicy)
          .filter((r) => r.name.endsWith("-identity-backups"))
          .map((r) => [r.name, r.inputs.policy]);
      expect(backups(mysql)).toHaveLength(2);
      expect(backups(mysql)).toEqual(backups(p));
    });

    test("the LB has no part in them", () => {
      expect(ofType(p, T.rolePolicy).filter((r) => r.name === "lb-identity-backups")).toEqual([]);
      const text = JSON.stringify(policiesIn("lb").map((r) => r.inputs.policy));
      expect(text).not.toContain("backups/");
      expect(text).not.toMatch(/s3:PutObject|s3:ListBucket|kms:GenerateDataKey\b.*s3\./);
    });

    test("each writes only its own prefix, nobody deletes, and the KMS key serves them through S3 only", () => {
      const puts = (node: string) =>
        policiesIn(node)
          .flatMap((r) => grantsOf(r.inputs.policy))
          .filter((g) => g.actions.includes("s3:PutObject"))
          .flatMap((g) => g.resources ?? []);
      const canPut = (node: string, key: string) =>
        puts(node).some((pattern) => covers(pattern, `${bucketArn()}/${key}`));
      const full = "backups/full/20261130T030000Z/backup.xbstream.zst";
      const binlog = "backups/binlog/s2/mariadb-bin.000042.zst";
      expect([canPut("s1", full), canPut("s1", binlog)]).toEqual([true, false]);
      expect([canPut("s2", full), canPut("s2", binlog)]).toEqual([false, true]);
      expect([canPut("lb", full), canPut("lb", binlog)]).toEqual([false, false]);
      for (const node of NODES) {
        for (const key of ["backups/binlog/s1/x.zst", "bundles/s1/x.json", "releases/x.tar.gz"])
          expect(canPut(node, key)).toBe(false);
        const grants = policiesIn(node).flatMap((r) => grantsOf(r.inputs.policy));
        expect(JSON.stringify(grants)).not.toMatch(/s3:Delete|s3:\*|s3:PutBucket|s3:PutLifecycle/);
        // Every use of the key through S3 is for the stack's bucket only.
        for (const g of grants.filter((g) => JSON.stringify(g.condition ?? {}).includes("s3.")))
          expect(g.condition).toEqual(throughS3());
      }
      // Decrypt, for a restore's reads and a multipart upload's completion, is already the bundles'.
      for (const node of ["s1", "s2"])
        expect(
          grantsOf(one(p, T.rolePolicy, `${node}-identity-bundles`).inputs.policy),
        ).toContainEqual({
          actions: ["kms:Decrypt"],
          resources: [keyArn()],
          condition: throughS3(),
        });
    });
  });

  test("a backups policy for a node with no part in backups is refused, not left empty", () => {
    const account = {
      partition: "aws",
      region: "eu-west-1",
      accountId: ACCOUNT_ID,
      dnsSuffix: "amazonaws.com",
    };
    expect(() => nodeBackupPolicy(account, "lb", "arn:aws:s3:::b", "arn:aws:kms:k")).toThrow(
      "lb has no part in the backups",
    );
    expect(NODES.filter(handlesBackups)).toEqual(["s1", "s2"]);
  });

  test("the parameter key is customer-managed with rotation", () => {
    const key = one(plan, T.kmsKey, "parameters-key");
    expect(key.inputs).toMatchObject({ enableKeyRotation: true, deletionWindowInDays: 30 });
    const [alias] = ofType(plan, T.kmsAlias);
    expect(alias.inputs).toMatchObject({
      name: "alias/webstack/test/parameters",
      targetKeyId: key.outputs.keyId,
    });
  });
});
