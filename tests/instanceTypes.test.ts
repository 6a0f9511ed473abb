// Instance types judged by EC2's own data: NVMe and architecture from the facts, never from the name.
import {
  InstanceTypeAnswer,
  InstanceTypeCatalog,
  InstanceTypeFacts,
  debianArchitectureOf,
  unknownInstanceTypeReason,
} from "../model/aws";
import {
  CONFIG_KEYS,
  ConfigError,
  ConfigKey,
  RawConfig,
  instanceTypesToLookUp,
  parseConfig,
} from "../model/config";
import { KNOWN_INSTANCE_TYPES, describeInstanceType } from "../plan/instanceTypes";
import { Plan, runPlan } from "../plan/plan";
import { T, one, planConfig, bundleFile } from "./harness";

const DOMAIN = "www.example.com";

/** EC2's answers as the program gets them, from the offline plan's records. */
function catalogOf(names: readonly string[]): InstanceTypeCatalog {
  return new Map(
    names.map((name): [string, InstanceTypeAnswer] => {
      try {
        return [name, { facts: describeInstanceType(name) as unknown as InstanceTypeFacts }];
      } catch (err) {
        return [name, { unknown: unknownInstanceTypeReason((err as Error).message)! }];
      }
    }),
  );
}

/** A made-up answer: EC2 lists no i386-only type today, but its data may say so. */
const I386_ONLY: InstanceTypeFacts = {
  instanceType: "t0.i386",
  hypervisor: "xen",
  ebsNvmeSupport: "unsupported",
  supportedArchitectures: ["i386"],
  memorySize: 1024,
  defaultVcpus: 1,
};

function rawWith(values: Record<string, string>): RawConfig {
  return Object.fromEntries(
    Object.entries({ domain: DOMAIN, ...values }).map(([k, v]) => [`webstack:${k}`, v]),
  );
}

/** The problems of a config, with EC2 asked about its well-formed instance types. */
function problemsOf(values: Record<string, string>, extra?: InstanceTypeCatalog): string[] {
  const raw = rawWith(values);
  const instanceTypes = new Map([...catalogOf(instanceTypesToLookUp(raw)), ...(extra ?? [])]);
  try {
    parseConfig(raw, { instanceTypes });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

const problem = (key: ConfigKey, value: string, what: string) =>
  `webstack:${key}: ${JSON.stringify(value)} ${what}; expected ${CONFIG_KEYS[key].accepted}`;

const NOT_NVME = (ebsNvmeSupport: string, hypervisor: string) =>
  `does not always expose EBS volumes as NVMe devices (EC2: ebsNvmeSupport ${ebsNvmeSupport}, hypervisor ${hypervisor})`;

const UNKNOWN = (name: string) =>
  "is unknown to EC2 in the stack's region: The following supplied instance types do not exist: " +
  `[${name}] (the offline plan knows only ${[...KNOWN_INSTANCE_TYPES.keys()].join(", ")}, ` +
  "from plan/instanceTypes.yaml)";

describe("EC2's facts, read purely", () => {
  test.each([
    ["t3.small", "amd64"],
    ["m7g.large", "arm64"],
    ["t4g.small", "arm64"],
    ["i3.metal", "amd64"],
    ["mac2.metal", undefined],
  ])("%s runs Debian's %s", (name, architecture) => {
    const answer = catalogOf([name]).get(name)!;
    expect("facts" in answer && debianArchitectureOf(answer.facts)).toBe(architecture ?? undefined);
  });

  test("an i386-only type has no Debian architecture; one that also runs x86_64 is amd64", () => {
    expect(debianArchitectureOf(I386_ONLY)).toBeUndefined();
    expect(debianArchitectureOf({ ...I386_ONLY, supportedArchitectures: ["i386", "x86_64"] })).toBe(
      "amd64",
    );
  });

  test.each([
    [
      "the provider's error for a type EC2 does not have",
      "invocation of aws:ec2/getInstanceType:getInstanceType returned an error: invoking " +
        "aws:ec2/getInstanceType:getInstanceType: 1 error occurred:\n\t* reading EC2 Instance Type: " +
        "operation error EC2: DescribeInstanceTypes, https response error StatusCode: 400, " +
        "RequestID: 0b1e, api error InvalidInstanceType: The following supplied instance types do " +
        "not exist: [t3.huge]\n",
      "The following supplied instance types do not exist: [t3.huge]",
    ],
    [
      "an empty answer",
      "reading EC2 Instance Type: no matching EC2 Instance Type found",
      "no matching EC2 Instance Type found",
    ],
    [
      "missing permissions, which are no config problem",
      "reading EC2 Instance Type: operation error EC2: DescribeInstanceTypes, https response " +
        "error StatusCode: 403, api error UnauthorizedOperation: You are not authorized",
      undefined,
    ],
  ])("%s", (_, message, reason) => {
    expect(unknownInstanceTypeReason(message)).toBe(reason);
  });

  test.each([
    [{}, ["t3.micro", "t3.small"]],
    [{ lbInstanceType: "m7g.large", appInstanceType: "m7g.large" }, ["m7g.large"]],
    [{ lbInstanceType: "micro", appInstanceType: "t3.small " }, []],
    [{ lbInstanceType: "", appInstanceType: "i3.metal" }, ["t3.micro", "i3.metal"]],
  ])("%j: EC2 is asked about %j, each once, malformed names never", (values, asked) => {
    expect(instanceTypesToLookUp(rawWith(values))).toEqual(asked);
  });
});

describe("the config refuses what EC2's data rules out, naming the key", () => {
  test.each([
    ["appInstanceType", "g2.2xlarge", NOT_NVME("unsupported", "xen")],
    ["appInstanceType", "i3.large", NOT_NVME("supported", "xen")],
    ["appInstanceType", "mac2.metal", "runs arm64_mac only, for which Debian 13 has no AMI"],
    ["lbInstanceType", "mac2.metal", "runs arm64_mac only, for which Debian 13 has no AMI"],
    ["appInstanceType", "t3.huge", UNKNOWN("t3.huge")],
    ["lbInstanceType", "t3.huge", UNKNOWN("t3.huge")],
  ] as [ConfigKey, string, string][])("%s = %s", (key, value, what) => {
    expect(problemsOf({ [key]: value })).toEqual([problem(key, value, what)]);
  });

  test.each([
    ["lbInstanceType", "runs i386 only, for which Debian 13 has no AMI"],
    [
      "appInstanceType",
      `runs i386 only, for which Debian 13 has no AMI and ${NOT_NVME("unsupported", "xen")}`,
    ],
  ] as [ConfigKey, string][])("%s = an i386-only type", (key, what) => {
    const extra = new Map([["t0.i386", { facts: I386_ONLY }]]);
    expect(problemsOf({ [key]: "t0.i386" }, extra)).toEqual([problem(key, "t0.i386", what)]);
  });

  test.each([
    ["appInstanceType", "i3.metal"],
    ["appInstanceType", "t3.small"],
    ["appInstanceType", "m7g.large"],
    // The LB attaches no data volume: Xen is fine there.
    ["lbInstanceType", "i3.large"],
    ["lbInstanceType", "g2.2xlarge"],
  ])("%s = %s is accepted", (key, value) => {
    expect(problemsOf({ [key]: value })).toEqual([]);
  });

  test("a parse error and instance-type problems come in one error, in the table's order", () => {
    expect(
      problemsOf({ domain: "nope", lbInstanceType: "micro", appInstanceType: "g2.2xlarge" }),
    ).toEqual([
      problem("domain", "nope", "is not a fully qualified domain name"),
      problem("lbInstanceType", "micro", "is not an EC2 instance type"),
      problem("appInstanceType", "g2.2xlarge", NOT_NVME("unsupported", "xen")),
    ]);
  });
});

describe("the program asks EC2 before any resource", () => {
  /** The plan's problems and every resource type registered on the way. */
  async function refused(values: Record<string, string>) {
    const registered: string[] = [];
    const config = rawWith(values);
    const error = await runPlan({
      stack: "test",
      config: { "aws:region": "eu-west-1", ...config },
      override: (args) => {
        registered.push(args.type);
        return undefined;
      },
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    return { problems: (error as ConfigError).problems, registered };
  }

  test("g2.2xlarge for the app nodes: refused with its key, and nothing registered", async () => {
    expect(await refused({ appInstanceType: "g2.2xlarge" })).toEqual({
      problems: [problem("appInstanceType", "g2.2xlarge", NOT_NVME("unsupported", "xen"))],
      registered: [T.stack],
    });
  });

  test("a malformed domain, an unknown LB type and a mac app type: all in one error", async () => {
    expect(
      await refused({ domain: "nope", lbInstanceType: "t3.huge", appInstanceType: "mac2.metal" }),
    ).toEqual({
      problems: [
        problem("domain", "nope", "is not a fully qualified domain name"),
        problem("lbInstanceType", "t3.huge", UNKNOWN("t3.huge")),
        problem(
          "appInstanceType",
          "mac2.metal",
          "runs arm64_mac only, for which Debian 13 has no AMI",
        ),
      ],
      registered: [T.stack],
    });
  });

  describe("accepted types take their architecture from EC2, per node kind", () => {
    let armApp: Plan;
    let armLb: Plan;
    beforeAll(async () => {
      armApp = await planConfig({ domain: DOMAIN, appInstanceType: "m7g.large" });
      armLb = await planConfig({
        domain: DOMAIN,
        appInstanceType: "i3.metal",
        lbInstanceType: "t4g.small",
      });
    });

    const agentArch = (plan: Plan, node: string) =>
      /\/debian\/(\w+)\/latest\//.exec(bundleFile(plan, node, "/etc/webstack/monitoring.env"))?.[1];
    const archs = (plan: Plan) => ["lb", "s1", "s2"].map((node) => agentArch(plan, node));
    const ami = (plan: Plan, node: string) => one(plan, T.instance, `${node}-instance`).inputs.ami;

    test("m7g.large app nodes, t3.micro LB: arm64 and amd64 packages, and their images", () => {
      expect(archs(armApp)).toEqual(["amd64", "arm64", "arm64"]);
      expect(ami(armApp, "s1")).toBe(ami(armApp, "s2"));
      expect(ami(armApp, "s1")).not.toBe(ami(armApp, "lb"));
    });

    test("the LB's HAProxy holds as many connections as EC2's memory for its type allows", () => {
      const maxconn = (plan: Plan) =>
        /^global\n(?:.*\n)*? {4}maxconn (\d+)$/m.exec(
          bundleFile(plan, "lb", "/etc/haproxy/haproxy.cfg"),
        )?.[1];
      // t3.micro (1 GiB), t4g.small (2 GiB): half the memory at 5000 TLS connections per GiB.
      expect([maxconn(armApp), maxconn(armLb)]).toEqual(["2500", "5000"]);
    });

    test("Gunicorn's workers follow EC2's vCPUs for the app type, and the LB's per-server limit them", () => {
      const workers = (plan: Plan, node: string) =>
        /^workers = (\d+)$/m.exec(bundleFile(plan, node, "/etc/webstack/gunicorn.conf.py"))?.[1];
      const serverMaxconn = (plan: Plan) =>
        / maxconn (\d+) /.exec(
          bundleFile(plan, "lb", "/etc/haproxy/haproxy.cfg")
            .split("\n")
            .find((l) => l.trim().startsWith("default-server "))!,
        )?.[1];
      // m7g.large: 2 vCPUs; i3.metal: 72. 2 × vCPUs + 1 workers, twice that per server.
      expect([workers(armApp, "s1"), workers(armApp, "s2"), serverMaxconn(armApp)]).toEqual([
        "5",
        "5",
        "10",
      ]);
      expect([workers(armLb, "s1"), workers(armLb, "s2"), serverMaxconn(armLb)]).toEqual([
        "145",
        "145",
        "290",
      ]);
    });

    test("i3.metal app nodes, t4g.small LB: amd64 and arm64 packages, the same two images", () => {
      expect(one(armLb, T.instance, "s1-instance").inputs.instanceType).toBe("i3.metal");
      expect(archs(armLb)).toEqual(["arm64", "amd64", "amd64"]);
      expect(ami(armLb, "lb")).toBe(ami(armApp, "s1"));
      expect(ami(armLb, "s1")).toBe(ami(armApp, "lb"));
    });
  });
});
