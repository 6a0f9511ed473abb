// The offline plan as reviewers use it: the CLI's contract, redaction, placeholders, config errors.
import { spawnSync } from "child_process";
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
import { readStackConfig, stackFile } from "../plan/stackConfig";
import { buildTopology, mapNodes } from "../model/topology";
import { PROJECT_DIR } from "./harness";

const API_KEY = "fedcba9876543210fedcba9876543210";
/** dev's address plan, from the range in its stack file. */
const DEV_TOPOLOGY = buildTopology(
  readStackConfig(stackFile(PROJECT_DIR, "dev")).values["webstack:vpcCidr"],
);
const TSX = path.join(PROJECT_DIR, "node_modules", ".bin", "tsx");

function plan(...args: string[]) {
  const run = spawnSync(TSX, ["plan/cli.ts", ...args], {
    cwd: PROJECT_DIR,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function tempStackFile(body: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-plan-"));
  const file = path.join(dir, "Pulumi.scratch.yaml");
  fs.writeFileSync(file, body);
  return file;
}

describe("npm run plan -- --stack dev --json", () => {
  let json: {
    stack: string;
    resources: Record<string, unknown>[];
    outputs: Record<string, unknown>;
    placeholders: string[];
  };

  beforeAll(() => {
    const started = Date.now();
    const run = spawnSync("npm", ["run", "-s", "plan", "--", "--stack", "dev", "--json"], {
      cwd: PROJECT_DIR,
      encoding: "utf8",
      timeout: 60_000,
    });
    // Informational: the issue asks for under 3 s on this machine; not a timed assertion.
    console.log(`npm run plan -- --stack dev --json took ${Date.now() - started} ms`);
    expect(run.status).toBe(0);
    json = JSON.parse(run.stdout);
  });

  test("prints {stack, resources, outputs}", () => {
    expect(json.stack).toBe("dev");
    expect(Array.isArray(json.resources)).toBe(true);
    expect(json.outputs.vpcCidr).toBe(DEV_TOPOLOGY.vpcCidr);
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
    const run = plan("--stack", "dev");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      "pulumi:pulumi:Stack  webstack-dev\n├─ webstack:network:Network  network\n",
    );
    expect(run.stdout).toMatch(/│  ├─ aws:ec2\/vpc:Vpc  network-vpc\n/);
    const privateIps = mapNodes((node) => DEV_TOPOLOGY.nodes[node].privateIp);
    expect(run.stdout).toContain(`  privateIps: ${JSON.stringify(privateIps)}\n`);
  });

  test("--set overrides config for one run, and a secret set that way is never printed", () => {
    const run = plan(
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

  test("prod without its encrypted key runs on a marked placeholder", () => {
    const run = plan("--stack", "prod", "--json");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).placeholders).toEqual(["webstack:datadogApiKey"]);
    const human = plan("--stack", "prod");
    expect(human.stdout).toContain(
      "Placeholders:\n  webstack:datadogApiKey: placeholder (the real value is a Pulumi secret)",
    );
  });

  test("a stack file with three wrong keys exits 1 listing all three", () => {
    const file = tempStackFile(
      [
        "config:",
        "  aws:region: eu-west-1",
        "  webstack:domain: www.example.com",
        "  webstack:vpcCidr: 10.40.0.0/8",
        "  webstack:dbEngine: postgres",
        "  webstack:logRetention: 30",
        "",
      ].join("\n"),
    );
    const run = plan("--stack", "scratch", "--stack-file", file);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(
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
    expect(plan("--stack", "nosuchstack").stderr).toMatch(
      /^plan: no stack file .*Pulumi\.nosuchstack\.yaml\n$/,
    );
    const file = tempStackFile("config:\n  webstack:domain: www.example.com\n");
    const run = plan("--stack", "scratch", "--stack-file", file);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      "plan: aws:region: missing; set it with pulumi config set aws:region <region>\n",
    );
  });

  test("usage errors exit 2", () => {
    const run = plan("--json");
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
    const run = plan(...args);
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

  test("no stack file in the repository holds an encrypted value", () => {
    for (const name of fs.readdirSync(PROJECT_DIR).filter((f) => /^Pulumi\..+\.yaml$/.test(f))) {
      expect(fs.readFileSync(path.join(PROJECT_DIR, name), "utf8")).not.toMatch(/secure:/);
    }
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
