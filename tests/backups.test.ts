// The database volumes' snapshots under mocks: a daily DLM policy keeping backupRetentionDays of
// them, selecting this stack's data volumes alone, run by its own role with AWS's DLM policy.
import { dlmServiceRolePolicyArn } from "../components/iamPolicies";
import { SNAPSHOT_TIME_UTC } from "../components/backups";
import { FULL_BACKUP_CALENDAR } from "../model/backups";
import { Plan } from "../plan/plan";
import { T, grantsOf, ofType, one, planConfig, planStack } from "./harness";

let dev: Plan;
let prod: Plan;
beforeAll(async () => {
  dev = await planStack("dev");
  prod = await planStack("prod");
});

/** Every tag set a plan puts on a volume: the volumes' own, and the instances' root volumes'. */
function volumeTags(plan: Plan): { volume: string; tags: Record<string, string> }[] {
  return [
    ...ofType(plan, T.volume).map((v) => ({
      volume: v.name,
      tags: v.inputs.tags as Record<string, string>,
    })),
    ...ofType(plan, T.instance).map((i) => ({
      volume: `${i.name} root`,
      tags: (i.inputs.rootBlockDevice as { tags: Record<string, string> }).tags,
    })),
  ];
}

describe("the data volumes' snapshots", () => {
  test.each([
    ["dev", 7],
    ["prod", 30],
  ])("%s: daily at 01:00 UTC, the newest %i kept, with the volume's tags", (stack, kept) => {
    const plan = stack === "dev" ? dev : prod;
    const policy = one(plan, T.dlmPolicy, "backups-snapshots");
    expect(policy.inputs).toEqual({
      description: `webstack ${stack} daily snapshots of the database volumes`,
      executionRoleArn: one(plan, T.role, "backups-dlm-role").outputs.arn,
      state: "ENABLED",
      policyDetails: {
        policyType: "EBS_SNAPSHOT_MANAGEMENT",
        resourceTypes: ["VOLUME"],
        targetTags: { Snapshots: `webstack-${stack}` },
        schedules: [
          {
            name: "daily",
            createRule: { interval: 24, intervalUnit: "HOURS", times: "01:00" },
            retainRule: { count: kept },
            copyTags: true,
          },
        ],
      },
      tags: expect.objectContaining({
        Role: "shared",
        Name: `webstack-${stack}-backups-snapshots`,
      }),
    });
    // Created once its role holds AWS's policy: the first run can snapshot.
    expect(policy.options.dependsOn).toEqual([
      one(plan, T.rolePolicyAttachment, "backups-dlm-service-role").urn,
    ]);
  });

  test("backupRetentionDays sets how many are kept", async () => {
    const plan = await planConfig({ domain: "www.example.com", backupRetentionDays: "365" });
    const policy = one(plan, T.dlmPolicy, "backups-snapshots");
    expect(policy.inputs.policyDetails).toMatchObject({
      schedules: [{ retainRule: { count: 365 } }],
    });
  });

  test.each(["dev", "prod"])(
    "%s: the target tag is on the two data volumes and on no other volume, of any stack",
    (stack) => {
      const plan = stack === "dev" ? dev : prod;
      const { targetTags } = one(plan, T.dlmPolicy, "backups-snapshots").inputs.policyDetails as {
        targetTags: Record<string, string>;
      };
      // DLM snapshots a volume carrying any one of the target tags: each must select alone.
      const selected = (tags: Record<string, string>) =>
        Object.entries(targetTags).some(([key, value]) => tags[key] === value);
      const volumes = volumeTags(plan);
      expect(volumes).toHaveLength(5);
      expect(volumes.filter((v) => selected(v.tags)).map((v) => v.volume)).toEqual([
        "s2-data",
        "s1-data",
      ]);
      // Another stack's volumes carry the same Project, Role and ManagedBy tags, but not this one.
      const other = stack === "dev" ? prod : dev;
      expect(volumeTags(other).filter((v) => selected(v.tags))).toEqual([]);
    },
  );

  test("a stack name DLM's description cannot hold is made to fit it", async () => {
    const plan = await planConfig({ domain: "www.example.com" }, { stack: "shop.eu" });
    const policy = one(plan, T.dlmPolicy, "backups-snapshots");
    expect(policy.inputs.description).toBe(
      "webstack shop-eu daily snapshots of the database volumes",
    );
    expect(policy.inputs.description).toMatch(/^[0-9A-Za-z _-]+$/);
    // The tag is not restricted so: it names the stack as it is.
    expect(policy.inputs.policyDetails).toMatchObject({
      targetTags: { Snapshots: "webstack-shop.eu" },
    });
  });

  test("they start two hours before the nightly physical backup, not with it", () => {
    const backupHour = Number(/ (\d\d):00:00 UTC$/.exec(FULL_BACKUP_CALENDAR)![1]);
    const snapshotHour = Number(SNAPSHOT_TIME_UTC.split(":")[0]);
    // DLM starts within the hour after its time: the two never overlap at the start.
    expect(backupHour - snapshotHour).toBe(2);
  });
});

describe("the role DLM acts as", () => {
  test("its own, assumable by DLM only, with AWS's managed DLM policy and nothing else", () => {
    const role = one(dev, T.role, "backups-dlm-role");
    expect(grantsOf(role.inputs.assumeRolePolicy)).toEqual([
      { principal: "Service:dlm.amazonaws.com", actions: ["sts:AssumeRole"] },
    ]);
    expect(role.inputs.tags).toMatchObject({
      Role: "shared",
      Name: "webstack-dev-backups-dlm-role",
    });
    const attached = ofType(dev, T.rolePolicyAttachment).filter(
      (a) => a.inputs.role === role.outputs.name,
    );
    expect(attached.map((a) => [a.name, a.inputs.policyArn])).toEqual([
      [
        "backups-dlm-service-role",
        "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole",
      ],
    ]);
    // No inline policy either (the mock's role id is its name: either way of naming it counts).
    const named = [role.id, role.outputs.name];
    expect(named.every((n) => typeof n === "string" && n !== "")).toBe(true);
    expect(
      ofType(dev, T.rolePolicy).filter((p) => named.includes(p.inputs.role as string)),
    ).toEqual([]);
    // No node's instance profile hands it out.
    expect(
      ofType(dev, T.instanceProfile).filter((p) => p.inputs.role === role.outputs.name),
    ).toEqual([]);
  });

  test.each([
    ["aws", "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"],
    ["aws-cn", "arn:aws-cn:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"],
    [
      "aws-us-gov",
      "arn:aws-us-gov:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole",
    ],
  ])("the managed policy is the %s partition's", (partition, arn) => {
    expect(
      dlmServiceRolePolicyArn({
        partition,
        region: "r",
        accountId: "123456789012",
        dnsSuffix: "amazonaws.com",
      }),
    ).toBe(arn);
  });

  test("the snapshot component is the stack's, its children named from it", () => {
    const urns = [T.role, T.rolePolicyAttachment, T.dlmPolicy].map(
      (type) => ofType(dev, type).filter((r) => r.name.startsWith("backups-"))[0].urn,
    );
    for (const urn of urns)
      expect(urn).toMatch(/^urn:pulumi:dev::webstack::webstack:storage:Backups\$aws:/);
  });
});
