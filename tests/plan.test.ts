// The offline plan as reviewers use it: the CLI's contract, redaction, placeholders, config errors.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderTree } from "../plan/cli";
import {
  REDACTED,
  collectSecrets,
  redactSecrets,
  revealSecrets,
  wrapSecret,
} from "../plan/secrets";
import { StackConfigError, readStackConfig } from "../plan/stackConfig";
import { mapNodes } from "../model/topology";
import { CONFIG_KEYS } from "../model/config";
import { PlannedResource } from "../plan/plan";
import { encryptedKeys } from "../platform/pulumiConfig";
import { DEV_TOPOLOGY, PROJECT_DIR, T, planCli } from "./harness";

const API_KEY = "fedcba9876543210fedcba9876543210";
function tempStackFile(body: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-plan-"));
  const file = path.join(dir, "Pulumi.scratch.yaml");
  fs.writeFileSync(file, body);
  return file;
}

/** What the CLI prints on stderr for a stack file of these lines, which it must refuse (exit 1). */
function refusedPlan(lines: string[]): string {
  const run = planCli(
    "--stack",
    "scratch",
    "--stack-file",
    tempStackFile([...lines, ""].join("\n")),
  );
  expect(run.code).toBe(1);
  expect(run.stdout).toBe("");
  return run.stderr;
}

describe("npm run plan -- --stack dev --json", () => {
  let json: {
    stack: string;
    resources: Record<string, unknown>[];
    outputs: Record<string, unknown>;
    warnings: string[];
    placeholders: string[];
  };

  beforeAll(() => {
    const started = Date.now();
    const run = planCli("--stack", "dev", "--json");
    // Informational (the README gives the measured figures); not a timed assertion.
    console.log(`npm run plan -- --stack dev --json took ${Date.now() - started} ms`);
    expect(run.code).toBe(0);
    json = JSON.parse(run.stdout);
  });

  test("prints {stack, resources, outputs, warnings, placeholders}", () => {
    expect(json.stack).toBe("dev");
    expect(Array.isArray(json.resources)).toBe(true);
    expect(json.outputs.vpcCidr).toBe(DEV_TOPOLOGY.vpcCidr);
    // The mocked look-up finds the image the stack recorded: no newer image to warn of.
    expect(json.warnings).toEqual([]);
    expect(json.placeholders).toEqual([]);
  });

  test("every resource has urn, type, name, parent, id, inputs and outputs", () => {
    const urns = new Set(json.resources.map((r) => r.urn));
    for (const r of json.resources) {
      expect(typeof r.urn).toBe("string");
      expect(typeof r.type).toBe("string");
      expect(typeof r.name).toBe("string");
      expect(typeof r.inputs).toBe("object");
      expect(typeof r.outputs).toBe("object");
      if (r.type === "pulumi:pulumi:Stack") continue;
      expect(urns.has(r.parent)).toBe(true);
      // Custom (provider) resources have ids; components do not.
      expect(typeof r.id === "string").toBe(!String(r.type).startsWith("webstack:"));
    }
  });
});

describe("the CLI", () => {
  test("prints the resource tree and the outputs", () => {
    const run = planCli("--stack", "dev");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      "pulumi:pulumi:Stack  webstack-dev\n├─ webstack:network:Network  network\n",
    );
    expect(run.stdout).toMatch(/│  ├─ aws:ec2\/vpc:Vpc  network-vpc\n/);
    const privateIps = mapNodes(
      DEV_TOPOLOGY.nodeNames,
      (node) => DEV_TOPOLOGY.nodes[node].privateIp,
    );
    expect(run.stdout).toContain(`  privateIps: ${JSON.stringify(privateIps)}\n`);
  });

  test("--set overrides config for one run, and a secret set that way is never printed", () => {
    const run = planCli(
      "--stack",
      "dev",
      "--json",
      "--set",
      "datadog=true",
      "--set",
      `datadogApiKey=${API_KEY}`,
      "--set",
      "webstack:logRetentionDays=90",
    );
    expect(run.code).toBe(0);
    expect(run.stdout + run.stderr).not.toContain(API_KEY);
    const flowLogs = JSON.parse(run.stdout).resources.find(
      (r: { name: string }) => r.name === "network-flow-logs",
    );
    expect(flowLogs.inputs.retentionInDays).toBe(90);
  });

  test("--json prints every generated private key and password as [secret] (issue 19)", () => {
    const run = planCli("--stack", "dev", "--json");
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(/PRIVATE KEY/);
    const generated = (JSON.parse(run.stdout) as { resources: PlannedResource[] }).resources.filter(
      (r) => r.type === T.privateKey || r.type === T.randomPassword,
    );
    expect(generated.length).toBeGreaterThan(5);
    for (const r of generated) {
      const secret = r.type === T.privateKey ? ["privateKeyPem", "privateKeyOpenssh"] : ["result"];
      for (const key of secret)
        expect({ [r.name]: r.outputs[key] }).toEqual({ [r.name]: REDACTED });
    }
  });

  test("prod without its encrypted key runs on a marked placeholder", () => {
    const run = planCli("--stack", "prod", "--json");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).placeholders).toEqual(["webstack:datadogApiKey"]);
    const human = planCli("--stack", "prod");
    expect(human.stdout).toContain(
      "Placeholders:\n  webstack:datadogApiKey: placeholder (the real value is a Pulumi secret)",
    );
  });

  test("a stack file with three wrong keys exits 1 listing all three", () => {
    const stderr = refusedPlan([
      "config:",
      "  aws:region: eu-west-1",
      "  webstack:domain: www.example.com",
      "  webstack:vpcCidr: 10.40.0.0/8",
      "  webstack:dbEngine: postgres",
      "  webstack:logRetention: 30",
    ]);
    expect(stderr).toBe(
      [
        "plan: invalid webstack configuration (3 problems):",
        "  - webstack:logRetention: unknown key; did you mean webstack:logRetentionDays?",
        '  - webstack:dbEngine: "postgres" is not one of the accepted values; expected one of mariadb, mysql',
        '  - webstack:vpcCidr: "10.40.0.0/8" has a prefix outside /16 to /24; expected an RFC 1918 IPv4 network from /16 to /24 with no host bits set',
        "",
      ].join("\n"),
    );
  });

  test("a missing stack file or region is a clear error", () => {
    expect(planCli("--stack", "nosuchstack").stderr).toMatch(
      /^plan: no stack file .*Pulumi\.nosuchstack\.yaml\n$/,
    );
    const file = tempStackFile("config:\n  webstack:domain: www.example.com\n");
    const run = planCli("--stack", "scratch", "--stack-file", file);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      "plan: aws:region: missing; set it with pulumi config set aws:region <region>\n",
    );
  });

  test("a stack file that sets a key twice exits 1 naming the file and the line, no stack trace", () => {
    const file = tempStackFile(
      "config:\n  aws:region: eu-west-1\n  webstack:domain: a.example.com\n  webstack:domain: b.example.com\n",
    );
    const run = planCli("--stack", "scratch", "--stack-file", file);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`plan: ${file}:4: webstack:domain is set twice (first on line 3)\n`);
  });

  test.each([
    [
      "a number too large for JSON shows as given, not as null",
      ["  webstack:qpsAlarmThreshold: 1e400"],
      '  - webstack:qpsAlarmThreshold: "1e400" is not a number; expected a number greater than 0 and at most 1000000',
    ],
    [
      "a key under a misspelt namespace is named",
      ["  webstak:vpcCidr: 10.50.0.0/16"],
      "  - webstak:vpcCidr: unknown namespace; did you mean webstack:vpcCidr?",
    ],
    [
      "a value only the renderer used to refuse is named with its key",
      ["  webstack:certificate: letsencrypt", "  webstack:acmeEmail: ops%team@example.com"],
      `  - webstack:acmeEmail: "ops%team@example.com" holds "%", which a node's env file cannot carry; expected ${CONFIG_KEYS.acmeEmail.accepted}`,
    ],
  ])("%s, and the plan stops before any resource", (_, lines, problem) => {
    const stderr = refusedPlan([
      "config:",
      "  aws:region: eu-west-1",
      "  webstack:domain: www.example.com",
      ...lines,
    ]);
    expect(stderr).toBe(
      ["plan: invalid webstack configuration (1 problem):", problem, ""].join("\n"),
    );
  });

  test("usage errors exit 2", () => {
    const run = planCli("--json");
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--stack is required");
  });

  test.each([
    [
      ["--stack", "dev", "--diagram", "--json"],
      "plan: --json and --diagram are two outputs: choose one",
    ],
    [["--stack", "dev", "--mermaid"], "plan: unknown argument --mermaid"],
  ])("%j is a usage error", (args, message) => {
    const run = planCli(...args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(
      `${message}\nusage: npm run plan -- --stack <name> [--json | --diagram] [--set key=value]... [--stack-file FILE]\n`,
    );
  });
});

describe("stack files", () => {
  test("encrypted values become marked placeholders and count as secrets", () => {
    const file = tempStackFile(
      [
        "config:",
        "  aws:region: eu-west-1",
        "  webstack:domain: www.example.com",
        "  webstack:datadog: true",
        "  webstack:datadogApiKey:",
        "    secure: v1:AAAABBBBCCCC",
        "  webstack:tags:",
        "    Team: web",
        "  webstack:protectData: false",
        "",
      ].join("\n"),
    );
    const config = readStackConfig(file);
    expect(config.values).toEqual({
      "aws:region": "eu-west-1",
      "webstack:domain": "www.example.com",
      "webstack:datadog": "true",
      "webstack:datadogApiKey": "0".repeat(32),
      "webstack:tags": '{"Team":"web"}',
      "webstack:protectData": "false",
    });
    expect(config.secretKeys).toEqual(["webstack:datadogApiKey"]);
    expect(config.placeholders).toEqual(["webstack:datadogApiKey"]);
  });

  test("an override replaces a placeholder with the real value", () => {
    const file = tempStackFile("config:\n  aws:region: eu-west-1\n  webstack:datadog: true\n");
    const config = readStackConfig(file, [`datadogApiKey=${API_KEY}`]);
    expect(config.values["webstack:datadogApiKey"]).toBe(API_KEY);
    expect(config.placeholders).toEqual([]);
    expect(config.secretKeys).toEqual(["webstack:datadogApiKey"]);
  });

  /** What readStackConfig refuses a file with, its path shown as FILE. */
  function refusal(body: string): string {
    const file = tempStackFile(body);
    try {
      readStackConfig(file);
    } catch (err) {
      if (err instanceof StackConfigError) return err.message.split(file).join("FILE");
      throw err;
    }
    throw new Error("expected a StackConfigError");
  }

  const HEAD = "config:\n  aws:region: eu-west-1\n";

  test.each([
    [
      "a key set twice",
      `${HEAD}  webstack:domain: www.example.com\n  webstack:domain: www.other.com\n`,
      "FILE:4: webstack:domain is set twice (first on line 3)",
    ],
    [
      "a key set twice, once in Pulumi's short form",
      `${HEAD}  domain: www.example.com\n  webstack:domain: www.other.com\n`,
      "FILE:4: webstack:domain is set twice (first on line 3, as domain)",
    ],
    [
      "a tag set twice",
      `${HEAD}  webstack:tags:\n    Team: web\n    Team: ops\n`,
      "FILE:5: Team is set twice (first on line 4)",
    ],
    [
      "config: twice",
      `${HEAD}config:\n  webstack:domain: www.example.com\n`,
      "FILE:3: config is set twice (first on line 1)",
    ],
    [
      "config: holding a list",
      "# scratch\nconfig:\n  - aws:region: eu-west-1\n",
      "FILE:2: config: must map keys to values, found a list",
    ],
    [
      "config: holding a scalar",
      "config: eu-west-1\n",
      'FILE:1: config: must map keys to values, found the scalar "eu-west-1"',
    ],
    [
      "a file that is a list",
      "- config\n",
      "FILE:1: expected a map with a config: section, found a list",
    ],
    [
      "a file that is not YAML",
      `${HEAD}  webstack:domain: [www.example.com\n`,
      "FILE:4: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ],
  ])("%s is refused with the file and the line", (_, body, message) => {
    expect(refusal(body)).toBe(message);
  });

  test.each([
    ["1e400", "1e400"],
    [".inf", ".inf"],
    [".nan", ".nan"],
    ["2000", "2000"],
    ["12.5", "12.5"],
  ])("the number %s reaches the program as %j", (written, given) => {
    const file = tempStackFile(`${HEAD}  webstack:qpsAlarmThreshold: ${written}\n`);
    expect(readStackConfig(file).values["webstack:qpsAlarmThreshold"]).toBe(given);
  });

  test("no stack file in the repository holds an encrypted value", () => {
    for (const name of fs.readdirSync(PROJECT_DIR).filter((f) => /^Pulumi\..+\.yaml$/.test(f))) {
      expect(fs.readFileSync(path.join(PROJECT_DIR, name), "utf8")).not.toMatch(/secure:/);
    }
  });
});

describe("fail closed when Pulumi's internals move (issue 19)", () => {
  test("no isConfigSecret: the program stops rather than take every secret key as encrypted", () => {
    expect(() => encryptedKeys({ "webstack:datadogApiKey": "x" }, {})).toThrow(
      /no runtime\.isConfigSecret: webstack cannot tell an encrypted config value from a plain one/,
    );
    const secret = (key: string) => key === "webstack:datadogApiKey";
    expect([
      ...encryptedKeys(
        { "webstack:datadogApiKey": "x", "aws:region": "y" },
        { isConfigSecret: secret },
      ),
    ]).toEqual(["webstack:datadogApiKey"]);
  });

  test("no secret signature in Pulumi's rpc module: the plan's secrets module refuses to load", () => {
    jest.isolateModules(() => {
      jest.doMock("@pulumi/pulumi/runtime/rpc", () => ({}));
      expect(() => require("../plan/secrets")).toThrow(/no longer exports specialSigKey/);
    });
    jest.dontMock("@pulumi/pulumi/runtime/rpc");
  });
});

describe("secrets in a plan", () => {
  const recorded = {
    inputs: { value: wrapSecret("s3cret"), list: [wrapSecret({ key: "k1" })], plain: "visible" },
  };

  test("redaction replaces every secret, however deep", () => {
    expect(redactSecrets(recorded)).toEqual({
      inputs: { value: REDACTED, list: [REDACTED], plain: "visible" },
    });
  });

  test("revealing unwraps every secret for in-process consumers", () => {
    expect(revealSecrets(recorded)).toEqual({
      inputs: { value: "s3cret", list: [{ key: "k1" }], plain: "visible" },
    });
  });

  test("collectSecrets finds every secret value", () => {
    expect(collectSecrets(recorded)).toEqual(["s3cret", '{"key":"k1"}']);
  });

  test("renderTree nests children under their parent", () => {
    const r = (urn: string, parent?: string) => ({
      urn,
      type: "t",
      name: urn,
      parent,
      inputs: {},
      outputs: {},
      options: {},
    });
    expect(renderTree([r("root"), r("a", "root"), r("a1", "a"), r("b", "root")])).toBe(
      ["t  root", "├─ t  a", "│  └─ t  a1", "└─ t  b"].join("\n"),
    );
  });
});
