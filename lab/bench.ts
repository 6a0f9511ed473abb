// `npm run lab -- bench [--json]`: latency at a fixed rate and maximum rate through the LB and
// directly to one backend (same client, same run), ours against a naive HAProxy configuration,
// the replica's visibility delay, and the offline plan time. Prints numbers; asserts nothing.
import * as fs from "fs";
import * as path from "path";
import { runPlan } from "../plan/plan";
import { readStackConfig, stackFile } from "../plan/stackConfig";
import { MAX_RATE_LIMIT_PER_CLIENT } from "../model/limits";
import { LB_NODE, LOOPBACK_PORTS, PRIMARY_NODE } from "../model/topology";
import { LAB_DIR, LabError, PROJECT_DIR, PYTHON, waitFor } from "./commands";
import { apply, appliedSetting, up } from "./lab";
import { ACME_ROOT, STATE_DIR } from "./labState";
import { inNamespace } from "./namespaces";
import { execInNode, inNode } from "./nodes";
import { backendStates, nodeSql, reloadHaproxy, writeItems } from "./runningStack";
import { INTERNET_NS, LAB_DOMAIN, LAB_TOPOLOGY, labNetwork, nodeNamespace } from "./labPlan";

/** The fixed request rate both paths sustain on this 2-core machine, and how long each run lasts. */
const FIXED_RATE = 100;
const FIXED_SECONDS = 10;
/** Fixed-rate runs per target and path, alternating between the targets. */
const FIXED_ROUNDS = 3;
const PATHS = ["static", "db"] as const;
/** Closed-loop maximum rate: wrk's threads and connections, and how long. */
const MAX_RATE_ARGS = ["-t2", "-c16", "-d8s", "--latency"];
const REPLICA_RATE = 200;
const REPLICA_SECONDS = 10;
const PLAN_RUNS = 5;
/**
 * The per-client limit while the bench runs: the bench is one client address sending as fast as it
 * can, which the default limit (1000 per 10 s) would answer with 429s. Not 0, which renders no
 * limit at all: at the highest value the config accepts every request still goes through the
 * stick table and the check, as with the default, so the figures include their cost; and no rate
 * this machine reaches comes near 1000000 per 10 s (a 429 would count among wrk's errors).
 */
const BENCH_RATE_LIMIT = MAX_RATE_LIMIT_PER_CLIENT;

/**
 * The naive peer: what a user typically writes first — the defaults section of the sample
 * haproxy.cfg that RHEL, Fedora and Amazon Linux ship (`option http-server-close`: a new server
 * connection for every request, the sample's timeouts), without its retry lines, and a TCP+TLS
 * check. Benchmark code only, never rendered for a node. It keeps what makes the comparison fair:
 * the same certificate, TLS to verified backends, a log line per request.
 *
 * Not `http-reuse never` alone: that only stops sharing idle server connections between clients;
 * each keep-alive client still keeps its own server connection, so with wrk's keep-alive clients it
 * measured the same as ours (ours ÷ it: 0.89–1.04).
 */
export function naiveHaproxyConfig(ours: string): string {
  const certificate = /^\s*bind :443 ssl crt (\S+)/m.exec(ours)?.[1];
  const caFile = /ca-file (\S+)/.exec(ours)?.[1];
  // Our servers without our dead-backend detection (tcp-ut): names, addresses and SNI checks.
  const servers = ours
    .split("\n")
    .filter((l) => /^\s+server s\d /.test(l))
    .map((l) => l.replace(/ tcp-ut \S+/, ""));
  if (!certificate || !caFile || servers.length !== 2)
    throw new LabError("bench: the LB's HAProxy config is not the one the program renders");
  return [
    "# webstack bench: the naive peer (benchmark only)",
    "global",
    "    log /dev/log local0",
    "    user haproxy",
    "    group haproxy",
    "    daemon",
    "defaults",
    "    mode http",
    "    log global",
    "    option httplog",
    "    option dontlognull",
    "    option http-server-close",
    "    option forwardfor except 127.0.0.0/8",
    "    timeout http-request 10s",
    "    timeout queue 1m",
    "    timeout connect 10s",
    "    timeout client 1m",
    "    timeout server 1m",
    "    timeout http-keep-alive 10s",
    "    timeout check 10s",
    "    maxconn 3000",
    "frontend https",
    `    bind :443 ssl crt ${certificate}`,
    "    default_backend app",
    "backend app",
    "    balance roundrobin",
    `    default-server check ssl verify required ca-file ${caFile}`,
    ...servers,
    "frontend stats",
    `    bind 127.0.0.1:${LOOPBACK_PORTS.haproxyStats}`,
    "    stats enable",
    "    stats uri /stats",
    "",
  ].join("\n");
}

interface Latency {
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly failed: number;
  readonly sent: number;
}

/** A row's fixed-rate figures: the median round's p50 and p99, every round's p99, all requests. */
interface FixedRate extends Latency {
  readonly rounds_p99_ms: number[];
}

export function medianOfRounds(runs: readonly Latency[]): FixedRate {
  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return {
    p50_ms: median(runs.map((r) => r.p50_ms)),
    p99_ms: median(runs.map((r) => r.p99_ms)),
    failed: runs.reduce((sum, r) => sum + r.failed, 0),
    sent: runs.reduce((sum, r) => sum + r.sent, 0),
    rounds_p99_ms: runs.map((r) => r.p99_ms),
  };
}

interface MaxRate {
  readonly requests_per_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly errors: number;
}

type Path = (typeof PATHS)[number];

/** One HAProxy config and target: its fixed-rate rounds and maximum rate, per path. */
interface Series {
  readonly config: string;
  readonly target: Target;
  readonly fixed: Record<Path, Latency[]>;
  readonly max: Partial<Record<Path, MaxRate>>;
}

interface Target {
  readonly name: string;
  readonly host: string;
  readonly cafile: string;
}

function fixedRate(target: Target, path_: Path, readIds: number[]): Latency {
  const r = inNamespace(
    INTERNET_NS,
    [
      PYTHON,
      path.join(LAB_DIR, "load.py"),
      "--host",
      target.host,
      "--cafile",
      target.cafile,
      "--rate",
      String(FIXED_RATE),
      "--duration",
      String(FIXED_SECONDS),
      "--count",
      String(FIXED_RATE * FIXED_SECONDS),
      "--mix",
      path_ === "static" ? "root=1" : "read=1",
      "--read-ids",
      readIds.join(","),
    ],
    { timeout: (FIXED_SECONDS + 60) * 1000 },
  );
  if (r.status !== 0) throw new LabError(`bench: load.py failed: ${r.stderr}`);
  const report = JSON.parse(r.stdout) as Latency;
  return { p50_ms: report.p50_ms, p99_ms: report.p99_ms, failed: report.failed, sent: report.sent };
}

/** wrk's "50%  1.23ms" lines, in milliseconds. */
function wrkPercentile(output: string, pct: string): number {
  const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s)$`, "m").exec(output);
  if (!m) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000 }[m[2] as "us" | "ms" | "s"];
  return Math.round(Number(m[1]) * scale * 100) / 100;
}

function maxRate(target: Target, path_: Path, readIds: number[]): MaxRate {
  const url = `https://${target.host}${path_ === "static" ? "/" : `/items/${readIds[0]}`}`;
  const r = inNamespace(INTERNET_NS, ["wrk", ...MAX_RATE_ARGS, url], { timeout: 60_000 });
  if (r.status !== 0) throw new LabError(`bench: wrk failed: ${r.stderr}${r.stdout}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(r.stdout)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
    r.stdout,
  );
  const errors = non2xx + (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return {
    requests_per_s: Math.round(rps),
    p50_ms: wrkPercentile(r.stdout, "50"),
    p99_ms: wrkPercentile(r.stdout, "99"),
    errors,
  };
}

/** Both backends UP in HAProxy's stats (after a reload). */
async function backendsUp(): Promise<void> {
  await waitFor("both backends up", 30, () =>
    Object.values(backendStates()).every((state) => state === "UP"),
  );
}

/** Lets the client namespace reach s1's Nginx directly while `run` runs (a bench-only rule). */
async function withDirectAccess<T>(source: string, run: () => Promise<T>): Promise<T> {
  const ns = nodeNamespace("s1");
  const added = inNamespace(ns, [
    "nft",
    "--echo",
    "--handle",
    "insert",
    "rule",
    "inet",
    "webstack",
    "input",
    "ip",
    "saddr",
    source,
    "tcp",
    "dport",
    "443",
    "accept",
    "comment",
    '"bench: direct client"',
  ]);
  const handle = /# handle (\d+)/.exec(added.stdout)?.[1];
  if (added.status !== 0 || !handle)
    throw new LabError(`bench: nft insert failed: ${added.stderr}`);
  try {
    return await run();
  } finally {
    inNamespace(ns, ["nft", "delete", "rule", "inet", "webstack", "input", "handle", handle]);
  }
}

/** Runs a lab command with its progress lines on stderr: stdout is the bench's (its JSON). */
async function labProgressToStderr(run: () => Promise<void>): Promise<void> {
  const log = console.log;
  console.log = (...args: unknown[]) => process.stderr.write(`${args.join(" ")}\n`);
  try {
    await run();
  } finally {
    console.log = log;
  }
}

/**
 * Applies `rateLimitPerClient` = BENCH_RATE_LIMIT to the running lab while `run` runs, then gives
 * the key back the value it had (a value of its own, or none: the lab's config).
 */
async function withBenchRateLimit<T>(say: (m: string) => void, run: () => Promise<T>): Promise<T> {
  const previous = appliedSetting("rateLimitPerClient");
  const was = previous === undefined ? "the lab's config" : previous;
  say(`rateLimitPerClient=${BENCH_RATE_LIMIT} for the bench, one client address (was ${was})`);
  await labProgressToStderr(() => apply(["--set", `rateLimitPerClient=${BENCH_RATE_LIMIT}`]));
  try {
    return await run();
  } finally {
    await labProgressToStderr(() => apply(["--set", `rateLimitPerClient=${previous ?? ""}`]));
    say(`rateLimitPerClient back to ${was}`);
  }
}

async function planSeconds(): Promise<{ median_ms: number; min_ms: number; runs: number }> {
  const stack = readStackConfig(stackFile(PROJECT_DIR, "dev"));
  const times: number[] = [];
  for (let i = 0; i < PLAN_RUNS; i++) {
    const t0 = process.hrtime.bigint();
    await runPlan({ stack: "dev", config: stack.values, secretKeys: stack.secretKeys });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return {
    median_ms: Math.round(times[Math.floor(times.length / 2)]),
    min_ms: Math.round(times[0]),
    runs: PLAN_RUNS,
  };
}

export async function bench(argv: readonly string[]): Promise<void> {
  const json = argv.includes("--json");
  const say = (m: string) =>
    json ? process.stderr.write(`bench: ${m}\n`) : console.log(`bench: ${m}`);
  // The bench runs on a lab that is up; `up` reuses a running one.
  await labProgressToStderr(up);
  const network = labNetwork(LAB_TOPOLOGY);
  const caFile = path.join(STATE_DIR, "internet", "webstack-ca.crt");
  fs.writeFileSync(caFile, inNode("s1", ["cat", "/etc/webstack/tls/ca.crt"]));
  const lb: Target = {
    name: "LB",
    host: LAB_DOMAIN,
    cafile: ACME_ROOT,
  };
  const direct: Target = { name: "s1 direct", host: "s1.webstack.internal", cafile: caFile };
  const readIds = writeItems(20, "bench");

  // Fixed-rate runs alternate between the targets, round after round, and each row reports the
  // median of its rounds: drift on the shared cores (a timer, a log flush) spreads over all.
  const series = (config: string, target: Target): Series => ({
    config,
    target,
    fixed: { static: [], db: [] },
    max: {},
  });
  const oursLb = series("ours", lb);
  const s1Direct = series("-", direct);
  const naiveLb = series("naive", lb);
  const rounds = (group: Series[]) => {
    for (let round = 1; round <= FIXED_ROUNDS; round++) {
      say(
        `${group.map((s) => `${s.config} HAProxy config, ${s.target.name}`).join(" / ")}: ${FIXED_RATE}/s, round ${round} of ${FIXED_ROUNDS}`,
      );
      for (const s of group)
        for (const p of PATHS) s.fixed[p].push(fixedRate(s.target, p, readIds));
    }
  };
  const maxRates = (s: Series) => {
    for (const p of PATHS) {
      say(`${s.config} HAProxy config, ${s.target.name}, ${p} path: maximum rate`);
      s.max[p] = maxRate(s.target, p, readIds);
    }
  };

  await withBenchRateLimit(say, async () => {
    // Direct from the client's own address (the internet namespace's address toward the VPC).
    await withDirectAccess(network.router, async () => {
      rounds([oursLb, s1Direct]);
      maxRates(oursLb);
      maxRates(s1Direct);
    });
    const ours = inNode(LB_NODE, ["cat", "/etc/haproxy/haproxy.cfg"]);
    reloadHaproxy(naiveHaproxyConfig(ours));
    try {
      await backendsUp();
      rounds([naiveLb]);
      maxRates(naiveLb);
    } finally {
      reloadHaproxy(ours);
      await backendsUp();
    }
  });
  const rows = [oursLb, s1Direct, naiveLb].flatMap((s) =>
    PATHS.map((p) => ({
      config: s.config,
      target: s.target.name,
      path: p,
      fixed: medianOfRounds(s.fixed[p]),
      max: s.max[p]!,
    })),
  );

  say(`replica visibility delay at ${REPLICA_RATE} writes/s`);
  const delay = execInNode(
    "s1",
    [PYTHON, "-", String(REPLICA_RATE), String(REPLICA_SECONDS)],
    fs.readFileSync(path.join(LAB_DIR, "replica-delay.py"), "utf8"),
  );
  if (delay.status !== 0) throw new LabError(`bench: replica-delay.py failed: ${delay.stderr}`);
  const probe = JSON.parse(delay.stdout) as { tag: string };
  // The probe rows go (as root on the primary: the app user cannot delete), on the replica too.
  nodeSql(PRIMARY_NODE, `DELETE FROM items WHERE note LIKE '${probe.tag}%'`);
  const replica = JSON.parse(delay.stdout) as {
    write_rate: number;
    p50_ms: number;
    p99_ms: number;
    max_ms: number;
    seen: number;
    writes: number;
  };

  say("offline plan time");
  const plan = await planSeconds();

  const find = (config: string, target: string, p: string) =>
    rows.find((r) => r.config === config && r.target === target && r.path === p)!;
  const ratios = Object.fromEntries(
    PATHS.map((p) => [
      p,
      {
        lb_p99_over_direct_p99:
          Math.round(
            (find("ours", "LB", p).fixed.p99_ms / find("-", "s1 direct", p).fixed.p99_ms) * 100,
          ) / 100,
        ours_max_over_naive_max:
          Math.round(
            (find("ours", "LB", p).max.requests_per_s / find("naive", "LB", p).max.requests_per_s) *
              100,
          ) / 100,
      },
    ]),
  );
  const result = {
    fixed_rate_per_s: FIXED_RATE,
    fixed_seconds: FIXED_SECONDS,
    fixed_rounds: FIXED_ROUNDS,
    max_rate_tool: `wrk ${MAX_RATE_ARGS.join(" ")}`,
    rate_limit_per_client: BENCH_RATE_LIMIT,
    rows,
    ratios,
    replica_delay: { target_writes_per_s: REPLICA_RATE, ...replica },
    plan,
  };
  if (json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const pad = (s: string | number, n: number) => String(s).padEnd(n);
  console.log(
    [
      "",
      `${pad("HAProxy", 8)}${pad("target", 11)}${pad("path", 8)}${pad(`p50@${FIXED_RATE}/s`, 12)}${pad(`p99@${FIXED_RATE}/s`, 12)}${pad("failed", 8)}${pad("max req/s", 11)}${pad("p50@max", 9)}${pad("p99@max", 9)}${pad("errors", 8)}p99 per round`,
      ...rows.map(
        (r) =>
          `${pad(r.config, 8)}${pad(r.target, 11)}${pad(r.path, 8)}${pad(`${r.fixed.p50_ms} ms`, 12)}${pad(`${r.fixed.p99_ms} ms`, 12)}${pad(r.fixed.failed, 8)}${pad(r.max.requests_per_s, 11)}${pad(`${r.max.p50_ms} ms`, 9)}${pad(`${r.max.p99_ms} ms`, 9)}${pad(r.max.errors, 8)}${r.fixed.rounds_p99_ms.join(" / ")} ms`,
      ),
      `(p50 and p99 at ${FIXED_RATE}/s: the median of ${FIXED_ROUNDS} rounds of ${FIXED_SECONDS} s, alternating between the LB and s1 direct)`,
      `(ours with rateLimitPerClient=${BENCH_RATE_LIMIT}: every request tracked and checked, as with the default, none refused)`,
      "",
      ...PATHS.map(
        (p) =>
          `${pad(p, 7)} LB p99 / direct p99: ${ratios[p].lb_p99_over_direct_p99} (goal <= 2)   ours / naive max rate: ${ratios[p].ours_max_over_naive_max} (goal >= 1.3)`,
      ),
      `replica visibility delay at ${replica.write_rate} writes/s (goal ${REPLICA_RATE}): p50 ${replica.p50_ms} ms, p99 ${replica.p99_ms} ms, max ${replica.max_ms} ms (${replica.seen}/${replica.writes} seen; goal p99 < 50 ms)`,
      `offline plan of the whole program (dev stack): median ${plan.median_ms} ms, min ${plan.min_ms} ms over ${plan.runs} runs`,
      "",
    ].join("\n"),
  );
}
