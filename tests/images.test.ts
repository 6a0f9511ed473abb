// The nodes' images under mocks: recorded at the first deploy, kept when Debian publishes a newer
// one (which the run reports and warns about), moved only by lbAmi/appAmi.
import { ImageKind, imageRecordName } from "../model/naming";
import { renderHuman } from "../plan/cli";
import { OutputOverride } from "../plan/mocks";
import { Plan } from "../plan/plan";
import { T, one, planConfig } from "./harness";

const CONFIG = { domain: "www.example.com", protectData: "false" };
/** A release after the mocks' default one: Debian has published newer images since. */
const LATER = "20270115-0000";
const LB_AMI = "ami-0123456789abcdef0";
const APP_AMI = "ami-0fedcba9876543210";
const RUNBOOK = '"Rolling out a new image, node by node"';

const amiOf = (plan: Plan, node: string) => one(plan, T.instance, `${node}-instance`).inputs.ami;
const recordOf = (plan: Plan, kind: ImageKind) => one(plan, T.ssmParameter, `${kind}-image-record`);
const imagesOf = (plan: Plan) =>
  plan.outputs.images as Record<ImageKind, { running: string; latest: string; source: string }>;

/**
 * A later run as the engine sees it: the record ignores changes to its value, so it keeps the
 * value the first deploy wrote, whatever the program passes now.
 */
function replayingRecords(first: Plan): OutputOverride {
  return (args) => {
    if (args.type !== T.ssmParameter || !args.name.endsWith("-image-record")) return undefined;
    return {
      insecureValue: recordOf(first, args.name.split("-")[0] as ImageKind).outputs.insecureValue,
    };
  };
}

let first: Plan;
let later: Plan;
beforeAll(async () => {
  first = await planConfig(CONFIG);
  later = await planConfig(CONFIG, { imageRelease: LATER, override: replayingRecords(first) });
});

describe("the first deploy", () => {
  test("records the newest Debian 13 AMI per kind of node in SSM, and the instances use the record", () => {
    for (const kind of ["lb", "app"] as const) {
      const record = recordOf(first, kind);
      const looked = imagesOf(first)[kind].latest;
      expect(looked).toMatch(/^ami-[0-9a-f]{17}$/);
      expect(record.inputs).toMatchObject({
        name: imageRecordName("test", kind),
        type: "String",
        insecureValue: looked,
      });
      expect(record.inputs.value).toBeUndefined();
      // Resolved once: later look-ups never reach the record.
      expect(record.options).toEqual({ ignoreChanges: ["insecureValue"] });
    }
    expect(amiOf(first, "lb")).toBe(recordOf(first, "lb").outputs.insecureValue);
    for (const node of ["s1", "s2"])
      expect(amiOf(first, node)).toBe(recordOf(first, "app").outputs.insecureValue);
  });

  test("each kind is looked up for its own architecture", async () => {
    const arm = await planConfig({ ...CONFIG, appInstanceType: "m7g.large" });
    expect(amiOf(arm, "s1")).not.toBe(amiOf(arm, "lb"));
    expect(amiOf(arm, "lb")).toBe(amiOf(first, "lb"));
  });

  test("the images output says what each kind runs, from the record, and nothing is warned", () => {
    const lb = String(amiOf(first, "lb"));
    const app = String(amiOf(first, "s1"));
    expect(imagesOf(first)).toEqual({
      lb: { running: lb, latest: lb, source: "recorded" },
      app: { running: app, latest: app, source: "recorded" },
    });
    expect(first.warnings).toEqual([]);
  });
});

describe("a later run, after Debian published newer images", () => {
  test("keeps every instance on the image the stack recorded", () => {
    for (const node of ["lb", "s1", "s2"]) expect(amiOf(later, node)).toBe(amiOf(first, node));
    // The look-up did find another image: only the record keeps the nodes where they are.
    expect(imagesOf(later).app.latest).not.toBe(imagesOf(first).app.latest);
  });

  test("reports the newer image per kind and warns once per kind, naming the key and the runbook", () => {
    const images = imagesOf(later);
    expect(images).toEqual({
      lb: { running: amiOf(first, "lb"), latest: expect.any(String), source: "recorded" },
      app: { running: amiOf(first, "s1"), latest: expect.any(String), source: "recorded" },
    });
    expect(later.warnings).toHaveLength(2);
    const warningOf = (key: string) => later.warnings.find((w) => w.includes(`set ${key} `));
    expect(warningOf("lbAmi")).toMatch(
      new RegExp(
        `^the LB run ${images.lb.running} \\(its record\\).*pulumi config set lbAmi ${images.lb.latest}`,
      ),
    );
    expect(warningOf("appAmi")).toMatch(
      new RegExp(
        `^the app nodes \\(s1, s2\\) run ${images.app.running} \\(its record\\).*pulumi config set appAmi ${images.app.latest}`,
      ),
    );
    for (const warning of later.warnings) expect(warning).toContain(RUNBOOK);
  });

  test("the offline plan prints the warnings after the outputs", () => {
    const text = renderHuman(later, []);
    expect(text).toContain(`\nWarnings:\n${later.warnings.map((w) => `  ${w}\n`).join("")}`);
    expect(renderHuman(first, [])).not.toContain("Warnings:");
  });
});

describe("a configured image", () => {
  let pinned: Plan;
  beforeAll(async () => {
    pinned = await planConfig({ ...CONFIG, lbAmi: LB_AMI, appAmi: APP_AMI });
  });

  test("lbAmi and appAmi are what the instances run, and are written over the record", () => {
    expect(amiOf(pinned, "lb")).toBe(LB_AMI);
    expect(amiOf(pinned, "s1")).toBe(APP_AMI);
    expect(amiOf(pinned, "s2")).toBe(APP_AMI);
    for (const [kind, ami] of [
      ["lb", LB_AMI],
      ["app", APP_AMI],
    ] as const) {
      expect(recordOf(pinned, kind).inputs.insecureValue).toBe(ami);
      expect(recordOf(pinned, kind).options).toEqual({});
    }
  });

  test("is reported as coming from config, with a warning while Debian's newest differs", () => {
    const images = imagesOf(pinned);
    expect(images).toEqual({
      lb: { running: LB_AMI, latest: imagesOf(first).lb.latest, source: "config" },
      app: { running: APP_AMI, latest: imagesOf(first).app.latest, source: "config" },
    });
    // Sorted: "the LB …" before "the app nodes …".
    expect([...pinned.warnings].sort()).toEqual([
      expect.stringContaining(`run ${LB_AMI} (lbAmi in the stack's config)`),
      expect.stringContaining(`run ${APP_AMI} (appAmi in the stack's config)`),
    ]);
  });

  test("set to the newest image, it warns of nothing", async () => {
    const current = await planConfig({ ...CONFIG, appAmi: imagesOf(first).app.latest });
    expect(imagesOf(current).app).toEqual({ ...imagesOf(first).app, source: "config" });
    expect(current.warnings).toEqual([]);
  });
});
