// The README and the workflow are contracts: their tables must match the code they describe.
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";
import { alarmSpecs } from "../components/metrics";
import { CONFIG_KEYS } from "../model/config";
import { UNIT_EXPOSURE } from "../model/exposure";
import { stackFlows } from "../model/topology";
import { PROJECT_DIR, planCli, planStack } from "./harness";
import { README, tableAfter } from "./readmeTables";

test("the configuration table is exactly config.ts's key table", () => {
  const expected = Object.entries(CONFIG_KEYS).map(([key, spec]) => {
    const def = spec.required
      ? "required"
      : spec.default !== undefined
        ? `\`${spec.default}\``
        : spec.secret
          ? "unset (secret)"
          : "unset";
    return `| \`${key}\` | ${def} | ${spec.accepted} | \`${spec.example}\` | ${spec.doc} |`;
  });
  const start = README.indexOf("| Key | Default | Accepted | Example | What it does |");
  expect(start).toBeGreaterThan(0);
  const actual = README.slice(start)
    .split("\n")
    .slice(2, 2 + expected.length);
  // On failure, the expected rows are the table to paste into the README.
  expect(actual.join("\n")).toBe(expected.join("\n"));
});

test("the outputs table names exactly the stack's outputs", async () => {
  const plan = await planStack("dev");
  const documented = tableAfter("## Outputs").map((row) => row[0].replace(/`/g, ""));
  expect(documented.sort()).toEqual(Object.keys(plan.outputs).sort());
});

// Its score columns are held to what the tests compute: systemd 252's by tests/sandbox.test.ts (this
// machine's systemd-analyze), systemd 257's by tests/artifacts.test.ts (the nodes' rootfs).
test("the sandbox's exposure table lists every service with its ceiling", () => {
  const documented = tableAfter("**Exposure**").map(([unit, , , , ceiling]) => [
    unit.replace(/`/g, ""),
    Number(ceiling),
  ]);
  expect(documented).toEqual(UNIT_EXPOSURE.map((u) => [u.unit, u.ceiling]));
});

/** An alarm table's rows: each alarm, the nodes it names, and its missing-data choice. */
function alarmRows(marker: string) {
  return tableAfter(marker).map(([alarm, nodes, , missing]) => ({
    alarm: alarm.replace(/`/g, ""),
    nodes: nodes.split(", "),
    missing: missing.startsWith("breaching") ? "breaching" : "notBreaching",
  }));
}
/** The alarms a table documents, as [key, missing-data choice], one per node it names. */
const documentedAlarms = (rows: ReturnType<typeof alarmRows>) =>
  rows.flatMap((r) => r.nodes.map((node) => [`${node}-${r.alarm}`, r.missing]));

const alarmInputs = {
  instanceIds: { lb: "i-lb", s1: "i-s1", s2: "i-s2" },
  qpsThreshold: 500,
  replicaLagSeconds: 60,
} as const;

test("the alarms-people-need table names each of its alarms on exactly its nodes, and their missing-data choice", () => {
  const specs = alarmSpecs({ ...alarmInputs, cluster: "replication" });
  const rows = alarmRows("The alarms people need (issue 20)");
  const alarmed = specs
    .filter((spec) => rows.some((r) => spec.key.endsWith(`-${r.alarm}`)))
    .map((spec) => [spec.key, spec.missing]);
  expect(documentedAlarms(rows).sort()).toEqual(alarmed.sort());
  expect(rows).toHaveLength(8);
});

test("the Galera alarm table names exactly the alarms a galera stack has and a replication stack has not", () => {
  const keys = (cluster: "replication" | "galera") =>
    alarmSpecs({ ...alarmInputs, cluster }).map((spec) => [spec.key, spec.missing]);
  const replication = new Set(keys("replication").map(([key]) => key));
  const galeraOnly = keys("galera").filter(([key]) => !replication.has(key));
  expect(documentedAlarms(alarmRows("A `database: galera` stack has no replica")).sort()).toEqual(
    galeraOnly.sort(),
  );
});

test("the firewall table lists exactly the topology's flows, the endpoints' (vpcEndpoints) included", () => {
  const documented = tableAfter("**Firewalls.**").flatMap(([from, to, port]) =>
    from.split(", ").flatMap((f) => to.split(", ").map((t) => `${f}→${t}:${port}`)),
  );
  const flows = stackFlows({ vpcEndpoints: true });
  expect(documented.sort()).toEqual(flows.map((f) => `${f.from}→${f.to}:${f.port}`).sort());
});

test("the README's diagram is what npm run plan -- --stack dev --diagram prints", () => {
  const blocks = README.split("```mermaid\n").slice(1);
  expect(blocks).toHaveLength(1);
  const run = planCli("--stack", "dev", "--diagram");
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  // On failure, the command's output is the block to paste into the README.
  expect(blocks[0].split("```")[0]).toBe(run.stdout);
});

test("CI and the pull-request workflow run the README's test command", () => {
  // Two commands on a fresh machine: the lab, and the tests.
  const frontDoor = README.split("## On a fresh machine")[1].split("```sh\n")[1].split("```")[0];
  expect(
    frontDoor
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("#")[0].trim()),
  ).toEqual(["npm ci && npm run lab -- up", "bash scripts/test.sh"]);
  const ci = fs.readFileSync(path.join(PROJECT_DIR, ".ci", "run"), "utf8");
  expect(ci).toMatch(/^bash scripts\/test\.sh\b/m);
  expect(ci).toMatch(/^npm run test:lab\b/m);
  const script = fs.readFileSync(path.join(PROJECT_DIR, "scripts", "test.sh"), "utf8");
  expect(script.split("\n").filter((l) => /^(bash|npm) /.test(l))).toEqual([
    "bash scripts/setup.sh",
    "npm run typecheck",
    "npm run format:check",
    'npm test -- "$@"',
  ]);
  const workflow = YAML.parse(
    fs.readFileSync(path.join(PROJECT_DIR, ".github/workflows/pull-request.yml"), "utf8"),
  );
  const runs = workflow.jobs.test.steps.map((s: { run?: string }) => s.run).filter(Boolean);
  expect(runs.at(-1)).toBe('sudo env "PATH=$PATH" CI=true bash scripts/test.sh');
  // The agent's schema the monitoring tests need, where CI has it, checked against a pinned digest.
  expect(runs.slice(0, -1)).toEqual([
    expect.stringContaining("../shared/data/cloudwatch-agent-schema.json"),
  ]);
  expect(runs[0]).toContain("sha256sum -c");
});

test("the workflow previews dev and prod with pulumi/actions@v7 and comments them and their diagrams", () => {
  const workflow = YAML.parse(
    fs.readFileSync(path.join(PROJECT_DIR, ".github/workflows/pull-request.yml"), "utf8"),
  );
  const preview = workflow.jobs.preview;
  expect(preview.strategy.matrix.stack).toEqual(["dev", "prod"]);
  expect(preview.permissions["id-token"]).toBe("write");
  const step = preview.steps.find((s: { uses?: string }) => s.uses?.startsWith("pulumi/actions"));
  expect(step.uses).toBe("pulumi/actions@v7");
  expect(step.with).toMatchObject({
    command: "preview",
    "stack-name": "${{ matrix.stack }}",
    "comment-on-pr": true,
    policyPacks: "policy",
  });
  // Before the preview, each stack's diagram from the offline plan, in a comment of its own.
  const names = preview.steps.map((s: { name?: string; uses?: string }) => s.name ?? s.uses);
  const diagram = preview.steps.find((s: { name?: string }) => s.name === "Diagram of the stack");
  expect(diagram.env.STACK).toBe("${{ matrix.stack }}");
  expect(diagram.run).toContain('npm run -s plan -- --stack "$STACK" --diagram\n');
  expect(diagram.run).toContain('} > "$RUNNER_TEMP/diagram.md"');
  const comment = preview.steps[names.indexOf(diagram.name) + 1];
  expect(comment.uses).toBe("actions/github-script@v7");
  expect(comment.with.script).toContain("diagram.md");
  expect(names.indexOf(diagram.name)).toBeLessThan(names.indexOf(step.uses));
  // Every secret and variable the workflow reads is documented in the README.
  const read = [...JSON.stringify(workflow).matchAll(/(?:secrets|vars)\.([A-Z_]+)/g)].map(
    (m) => m[1],
  );
  for (const name of new Set(read.filter((n) => n !== "GITHUB_TOKEN")))
    expect(README).toContain(`| \`${name}\` |`);
});
