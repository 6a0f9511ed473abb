// Releases (issue 18) in the lab: a team's own app directory shipped with `lab release DIR` (what
// `pulumi up` publishes), rolled out s1 first, health-gated, rolled back, under the faults' load.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { startNode, stopNode, inNode } from "../lab/nodes";
import { getFromApp, getThroughLb, nodeSql, writeItems } from "../lab/runningStack";
import { IS_ROOT, PROJECT_DIR, labCli, labTest } from "./harness";
import {
  MIXED,
  READS,
  STOPPED_SERVICE_STALL_MS,
  appliedOn,
  expectServed,
  lab,
  labCliInBackground,
  seedReads,
  sleep,
  underLoad,
} from "./labLoad";

const FIXTURES = path.join(PROJECT_DIR, "tests", "fixtures", "releases");
/** Debian's Python on the host: it has pip, setuptools and wheel (pyenv's first on PATH has not). */
const HOST_PYTHON = "/usr/bin/python3";
const made: string[] = [];

/**
 * An app directory as a team would have it: the demo app (app/, as `demo.py`) wrapped by the
 * version's own files (tests/fixtures/releases/<version>/); with `wheel`, the third-party package
 * built into wheels/ by `pip wheel`, no package index involved.
 */
function releaseDir(version: string, wheel = false): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `webstack-release-${version}-`));
  made.push(dir);
  const demo = path.join(PROJECT_DIR, "app");
  fs.copyFileSync(path.join(demo, "app.py"), path.join(dir, "demo.py"));
  fs.copyFileSync(path.join(demo, "requirements.txt"), path.join(dir, "requirements.txt"));
  fs.copyFileSync(path.join(FIXTURES, "common", "lab_answer.py"), path.join(dir, "lab_answer.py"));
  fs.cpSync(path.join(FIXTURES, version), dir, { recursive: true });
  if (wheel) {
    const source = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-wheel-"));
    made.push(source);
    fs.cpSync(path.join(FIXTURES, "greeting"), source, { recursive: true });
    const built = spawnSync(
      HOST_PYTHON,
      [
        "-m",
        "pip",
        "wheel",
        "--no-index",
        "--no-build-isolation",
        "--no-deps",
        "-w",
        path.join(dir, "wheels"),
        source,
      ],
      { encoding: "utf8" },
    );
    if (built.status !== 0) throw new Error(`pip wheel failed:\n${built.stderr}${built.stdout}`);
  }
  return dir;
}

/** `lab release DIR [--set …]` under the faults' load of reads and writes: its result and the load's. */
async function releaseUnderLoad(version: string, seconds: number, ...sets: string[]) {
  let result = { status: null as number | null, output: "" };
  const report = await underLoad(
    `release ${version}`,
    { rate: 40, seconds, mix: MIXED },
    async () => {
      result = labCli(["release", releaseDir(version), ...sets]);
    },
  );
  console.log(`release ${version}:\n${result.output}`);
  return { result, report };
}

/** The rollout's length as `lab release` prints it. */
const rolloutSeconds = (output: string) =>
  Number(/rollout followed for ([\d.]+) s/.exec(output)?.[1] ?? NaN);

/** The app release each app node reports it runs. */
const runningRelease = () => ({ s1: appliedOn("s1").app, s2: appliedOn("s2").app });

beforeAll(() => {
  if (!IS_ROOT) return;
  lab("up");
  seedReads(writeItems(20, "seed"));
}, 30 * 60_000);

afterAll(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
  if (IS_ROOT) lab("down");
}, 5 * 60_000);

labTest(
  "release v2 under load: s1 switches first, then s2, 0 failed requests, then every answer is v2's",
  async () => {
    const before = runningRelease();
    expect(before.s1).toMatch(/^[0-9a-f]{64}$/);
    const { result, report } = await releaseUnderLoad("v2", 110);
    expect(result.status).toBe(0);
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    const after = runningRelease();
    expect(after.s1).toMatch(/^[0-9a-f]{64}$/);
    expect(after.s1).not.toBe(before.s1);
    expect(after.s2).toBe(after.s1);
    expect(Date.parse(appliedOn("s1").at)).toBeLessThan(Date.parse(appliedOn("s2").at));
    // Both releases answered during the rollout; afterwards only v2.
    expect(Object.keys(report.releases).sort()).toEqual([before.s1, after.s1].sort());
    const settled = await underLoad(
      "after v2",
      { rate: 40, seconds: 6, mix: READS },
      async () => {},
    );
    expectServed(settled, STOPPED_SERVICE_STALL_MS);
    expect(Object.keys(settled.releases)).toEqual([after.s1]);
    expect(getThroughLb("/")).toMatchObject({ version: "v2", release: after.s1 });
    const seconds = rolloutSeconds(result.output);
    console.log(`rollout of v2: ${seconds} s from publishing to both nodes on v2`);
    expect(seconds).toBeLessThan(120);
  },
  600_000,
);

labTest(
  "a broken v3 (its import fails): s1 rolls back, s2 never leaves v2, 0 failed requests, release exits non-zero with s1's error",
  async () => {
    const v2 = runningRelease().s1;
    const { result, report } = await releaseUnderLoad("v3", 90);
    expect(result.status).toBe(1);
    expect(result.output).toMatch(/s1: REFUSED \w+: .*webstack_lab_no_such_module/);
    expect(result.output).toMatch(/s2: holds back: s1 refused/);
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    expect(Object.keys(report.releases)).toEqual([v2]);
    expect(appliedOn("s1")).toMatchObject({ state: "refused" });
    expect(getFromApp("s1", "/")).toMatchObject({ version: "v2", release: v2 });
    expect(getFromApp("s2", "/")).toMatchObject({ version: "v2", release: v2 });
    // The failed canary is counted where the alarm looks.
    expect(inNode("s1", ["cat", "/var/log/webstack/app.log"])).toMatch(
      /webstack_lab_no_such_module/,
    );
  },
  600_000,
);

labTest(
  "v4's release command adds a column: run once, on the primary, before any node switches; the replica receives it; v4 uses it on both",
  async () => {
    const { result, report } = await releaseUnderLoad(
      "v4",
      110,
      "--set",
      "releaseCommand=python3 migrate.py",
    );
    expect(result.status).toBe(0);
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    const v4 = runningRelease().s1;
    expect(runningRelease().s2).toBe(v4);
    for (const node of ["s1", "s2"] as const) {
      expect(nodeSql(node, "SHOW COLUMNS FROM items LIKE 'label'")).toMatch(/^label\t/);
      expect(getFromApp(node, "/label")).toEqual({ label: "v4", node });
    }
    // Once, on the primary only: its output in the app's log, prefixed with the release.
    const ran = (node: "s1" | "s2") =>
      inNode(node, ["cat", "/var/log/webstack/app.log"])
        .split("\n")
        .filter((l) => l.includes(`release ${v4!.slice(0, 12)}: added items.label`));
    expect(ran("s2")).toHaveLength(1);
    expect(ran("s1")).toHaveLength(0);
    // Before any node switched: the primary's record of the command (written once it succeeded)
    // is older than the replica having switched, the first of the two to switch.
    const ranAt = Number(
      inNode("s2", ["stat", "-c", "%.3Y", `/var/lib/webstack/bundle/release-commands/${v4}`]),
    );
    expect(ranAt * 1000).toBeLessThan(Date.parse(appliedOn("s1").at));
    // `migrate` is locked again once the command ended, on the replica too (ALTER USER replicates).
    for (const node of ["s1", "s2"] as const)
      expect(nodeSql(node, "SHOW CREATE USER 'migrate'@'localhost'")).toMatch(/ ACCOUNT LOCK\b/);
  },
  600_000,
);

labTest(
  "v5 carries a third-party wheel: installed with no package index; s1 restarted during the rollout comes back on v5",
  async () => {
    const dir = releaseDir("v5", true);
    expect(fs.readdirSync(path.join(dir, "wheels"))).toEqual([
      "webstack_lab_greeting-1.0-py3-none-any.whl",
    ]);
    const argv = await stopNode("s1");
    // v4's command is not v5's: an empty value returns the key to its default (none).
    const rollout = labCliInBackground(["release", dir, "--set", "releaseCommand="]);
    // The primary holds back while its replica is away.
    await sleep(30_000);
    expect(rollout.output()).not.toMatch(/lab: s2: applied/);
    await startNode("s1", argv);
    expect(await rollout.exited).toBe(0);
    console.log(`release v5 with s1 restarted:\n${rollout.output()}`);
    const v5 = runningRelease().s1;
    expect(runningRelease().s2).toBe(v5);
    for (const node of ["s1", "s2"] as const) {
      expect(getFromApp(node, "/")).toMatchObject({
        version: "v5",
        greeting: "hello from a wheel",
        release: v5,
      });
    }
  },
  600_000,
);
