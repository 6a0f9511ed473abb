// The lab tests' load and the records they read: a bounded load from the client namespace while
// something happens, and what each node last reached with its bundle.
import { spawn } from "child_process";
import * as path from "path";
import { PYTHON, waitFor } from "../lab/commands";
import { ACME_ROOT } from "../lab/labState";
import { INTERNET_NS, LAB_DOMAIN } from "../lab/labPlan";
import { execInNode, inNode } from "../lab/nodes";
import { backendStates, nodeSql } from "../lab/runningStack";
import { AppNodeName, NodeName } from "../model/topology";
import { LAB_CLI, PROJECT_DIR, labCli } from "./harness";

/** Bounds from the issue: a stopped service stalls a client less than this, a cut link 3 s. */
export const STOPPED_SERVICE_STALL_MS = 1500;
export const CUT_LINK_STALL_MS = 3000;

export function lab(command: string | string[]) {
  const r = labCli(command);
  if (r.status !== 0) throw new Error(`lab ${[command].flat().join(" ")} failed:\n${r.output}`);
}

export interface LoadReport {
  sent: number;
  answered: number;
  ok: number;
  /** 429s with a Retry-After and a JSON error (with `limitedOk` only; a failure otherwise). */
  limited: number;
  failed: number;
  resent: number;
  /** Writes sent again with their Idempotency-Key (with `keyedWrites` only). */
  retried: number;
  seconds: number;
  longest_stall_ms: number;
  p50_ms: number;
  p99_ms: number;
  /** Answers by HTTP status. */
  statuses: Record<string, number>;
  failures: string[];
  /** What the 429s said: their Retry-After values, errors, nodes; when the first was due (s). */
  limited_retry_after: number[];
  limited_errors: string[];
  limited_nodes: string[];
  first_limited_s: number | null;
  nodes: Record<string, number>;
  /** Answers by the app release that gave them (the demo app says which: issue 18). */
  releases: Record<string, number>;
  read_from: Record<string, number>;
  rows: { id: number; note: string }[];
}

export interface Load {
  readonly rate: number;
  readonly seconds: number;
  readonly mix: string;
  /** The client address its connections start from; the namespace's own address by default. */
  readonly source?: string;
  /** Counts a 429 with a Retry-After and a JSON error as limited instead of failed. */
  readonly limitedOk?: boolean;
  /**
   * Writes carry an Idempotency-Key and are sent again, with it, when no answer comes within this
   * many seconds (or the connection fails, or a 502/503/504): a client that may retry a POST.
   */
  readonly keyedWrites?: number;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Rows every read in a load asks for (seeded once per lab by the test file). */
let readIds: number[] = [];
export const seedReads = (ids: number[]) => (readIds = ids);

/** Starts a bounded load from the client namespace; `report()` waits for its end and reads it. */
export function startLoad(name: string, load: Load): { report(): Promise<LoadReport> } {
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      INTERNET_NS,
      PYTHON,
      path.join(PROJECT_DIR, "lab", "load.py"),
      "--host",
      LAB_DOMAIN,
      "--cafile",
      ACME_ROOT,
      "--rate",
      String(load.rate),
      "--duration",
      String(load.seconds),
      "--count",
      String(Math.ceil(load.rate * load.seconds)),
      "--mix",
      load.mix,
      "--read-ids",
      readIds.join(","),
      "--tag",
      `${name}-${Date.now()}`,
      ...(load.source ? ["--source", load.source] : []),
      ...(load.limitedOk ? ["--limited-ok"] : []),
      ...(load.keyedWrites ? ["--keyed-writes", String(load.keyedWrites)] : []),
    ],
    { stdio: ["ignore", "pipe", "pipe"], timeout: (load.seconds + 60) * 1000 },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += String(d)));
  child.stderr.on("data", (d) => (err += String(d)));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  return {
    async report() {
      const code = await exited;
      if (code !== 0) throw new Error(`load.py exited ${code}: ${err}`);
      return JSON.parse(out) as LoadReport;
    },
  };
}

/**
 * Runs `fault` while a bounded load runs from the client namespace (it starts 2 s into the load
 * and must end before the load does), then returns the load's report.
 */
export async function underLoad(
  name: string,
  load: Load,
  fault: () => Promise<void>,
): Promise<LoadReport> {
  const running = startLoad(name, load);
  const started = Date.now();
  await sleep(2000);
  await fault();
  const faultSeconds = (Date.now() - started) / 1000;
  const report = await running.report();
  expect(faultSeconds).toBeLessThan(load.seconds); // the whole fault happened under load
  console.log(
    `${name}: ${report.sent} requests at ${load.rate}/s, ${report.failed} failed, ` +
      `${report.resent} resent on a closed keep-alive connection, ` +
      (load.keyedWrites ? `${report.retried} writes sent again with their key, ` : "") +
      `longest stall ` +
      `${report.longest_stall_ms} ms (p50 ${report.p50_ms} ms, p99 ${report.p99_ms} ms); ` +
      `answered by ${JSON.stringify(report.nodes)}, reads from ${JSON.stringify(report.read_from)}, ` +
      `${report.rows.length} rows written` +
      (report.failures.length ? `\n  failures: ${report.failures.join("\n  ")}` : ""),
  );
  return report;
}

/** The strict bounds every fault test holds to. */
export function expectServed(report: LoadReport, stallMs: number) {
  expect(report.failures).toEqual([]);
  expect(report.failed).toBe(0);
  expect(report.answered).toBe(report.sent);
  expect(report.sent).toBeGreaterThan(100);
  expect(report.longest_stall_ms).toBeLessThan(stallMs);
}

export const backendState = (node: AppNodeName) => backendStates()[node] ?? "absent";

/** Every acknowledged row, with its note, on the node's database. */
export function missingRows(node: AppNodeName, rows: { id: number; note: string }[]): string[] {
  if (rows.length === 0) return [];
  const found = new Map(
    nodeSql(node, `SELECT id, note FROM items WHERE id IN (${rows.map((r) => r.id).join(",")})`)
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t") as [string, string]),
  );
  return rows.filter((r) => found.get(String(r.id)) !== r.note).map((r) => `${r.id}:${r.note}`);
}

export async function replicaCaughtUp(rows: { id: number; note: string }[]): Promise<void> {
  await waitFor("the replica holding every acknowledged row", 60, () => {
    try {
      return missingRows("s1", rows).length === 0;
    } catch {
      return false; // the replica restarting
    }
  });
}

export const checksum = (node: AppNodeName) => nodeSql(node, "CHECKSUM TABLE items").split("\t")[1];

export const MIXED = "root=1,read=2,write=1";
export const READS = "root=1,read=1";

/** What a node last reached with its bundle (the applier's own record). */
export const appliedOn = (node: NodeName) =>
  JSON.parse(inNode(node, ["cat", "/var/lib/webstack/bundle/status.json"])) as {
    sha256: string;
    state: string;
    reason?: string;
    at: string;
    app?: string;
  };

/**
 * A process's start in clock ticks since the host booted: field 22 of its /proc/<pid>/stat. Counted
 * after the last ")", as the command name before it (field 2) may hold spaces and parentheses.
 */
export function startTicks(stat: string): number {
  const close = stat.lastIndexOf(")");
  const fields = stat.slice(close + 2).split(" "); // field 3 (the state) first
  const ticks = Number(fields[22 - 3]);
  if (close < 0 || !Number.isSafeInteger(ticks)) throw new Error(`no start time in: ${stat}`);
  return ticks;
}

/**
 * When the node's init (its PID 1) started: unchanged means the instance was neither replaced nor
 * rebooted. In ticks since the host booted, not `ps -o lstart`: that adds them to a boot time
 * derived from the wall clock, so a step of the host's clock (4 s in a CI) moved every node's.
 */
export const initStartTicks = (node: NodeName) => startTicks(inNode(node, ["cat", "/proc/1/stat"]));

/**
 * What a node's systemd said of ordering cycles in its current boot (none: empty). systemd breaks
 * a cycle by dropping a job of its own choice, which may be one the boot needs: a boot with a
 * cycle works or hangs by chance (a report wanted by multi-user.target but ordered after
 * cloud-final hung a restarted node that way).
 */
export function orderingCycles(node: NodeName): string[] {
  const r = execInNode(node, ["journalctl", "--boot", "--no-pager", "--output=cat"]);
  if (r.status !== 0) throw new Error(`${node}: journalctl failed (${r.status}): ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => /ordering cycle/i.test(l));
}

/** `lab apply`'s line per node: "<node>: applied <sha>[, app release <id>] at <time> (seen after <s> s)". */
export function convergence(output: string): Record<string, number> {
  return Object.fromEntries(
    [
      ...output.matchAll(
        /lab: (\w+): applied \w+(?:, app release \w+)? at \S+ \(seen after ([\d.]+) s\)/g,
      ),
    ].map((m) => [m[1], Number(m[2])]),
  );
}

/** A lab command run in the background (the test goes on meanwhile): its exit and its output so far. */
export function labCliInBackground(args: string[]) {
  const child = spawn(process.execPath, [...LAB_CLI, ...args], {
    cwd: PROJECT_DIR,
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 400_000,
  });
  let output = "";
  child.stdout.on("data", (d) => (output += String(d)));
  child.stderr.on("data", (d) => (output += String(d)));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { exited, output: () => output };
}

/** A oneshot unit run now, to its end; its journal's lines of this run. */
export function runUnit(node: AppNodeName, unit: string): string {
  const since = inNode(node, ["date", "+%Y-%m-%d %H:%M:%S"]).trim();
  const r = execInNode(node, ["systemctl", "start", unit]);
  const journal = inNode(node, [
    "journalctl",
    "-u",
    unit,
    "--since",
    since,
    "--no-pager",
    "-o",
    "cat",
  ]);
  if (r.status !== 0)
    throw new Error(`${node}: ${unit} failed (${r.status}): ${r.stderr}\n${journal}`);
  return journal;
}
