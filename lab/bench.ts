// `npm run lab -- bench [--json]`: latency at a fixed rate and maximum rate through our LB, through
// a tuned Nginx peer on the LB and directly to one backend (same client, rounds alternating in one
// run), the maximum rate over HTTP/2 through both proxies, ours against a naive HAProxy
// configuration, the replica's visibility delay at 1000 writes/s, and the offline plan time. Prints
// numbers; asserts nothing.
import * as fs from "fs";
import * as path from "path";
import { runPlan } from "../plan/plan";
import { readStackConfig, stackFile } from "../plan/stackConfig";
import { MAX_RATE_LIMIT_PER_CLIENT } from "../model/limits";
import { LB_NODE, LOOPBACK_PORTS, NodeName, PRIMARY_NODE } from "../model/topology";
import { LAB_DIR, LabError, PROJECT_DIR, PYTHON, waitFor } from "./commands";
import { nodeCpuMs } from "./cgroups";
import { apply, appliedSetting, up } from "./lab";
import { ACME_ROOT, STATE_DIR } from "./labState";
import { inNamespace } from "./namespaces";
import { execInNode, inNode } from "./nodes";
import { backendStates, nodeSql, reloadHaproxy, writeItems } from "./runningStack";
import { INTERNET_NS, LAB_DOMAIN, LAB_TOPOLOGY, labNetwork, nodeNamespace } from "./labPlan";

/** The fixed request rate both paths sustain on this 2-core machine, and how long each run lasts. */
const FIXED_RATE = 100;
const FIXED_SECONDS = 10;
/** Rounds per figure (fixed rate and maximum rate), alternating between the series compared. */
const ROUNDS = 3;
const PATHS = ["static", "db"] as const;
/** Closed-loop maximum rate: wrk's threads and connections, and how long. */
const MAX_RATE_CONNECTIONS = 16;
const MAX_RATE_ARGS = ["-t2", `-c${MAX_RATE_CONNECTIONS}`, "-d8s", "--latency"];
/**
 * Streams in flight on each HTTP/2 connection. HTTP/2's gain is multiplexing: with one at a time
 * (h2load's default, -m1) it is HTTP/1.1 in HTTP/2 frames. Ten is below what either proxy allows
 * on one connection by default (HAProxy 100, Nginx 128), so no stream waits for the server's
 * permission; the connections then carry ten times wrk's requests at once, so the maximum rates
 * compare, the times per request do not.
 */
const H2_STREAMS_PER_CLIENT = 10;
/**
 * Closed-loop maximum rate over HTTP/2: h2load with wrk's threads, connections and duration (-D,
 * its duration mode; no --warm-up-time, as wrk has none: the handshakes are in both figures), and
 * HTTP/2 only: h2load offers HTTP/1.1 too by default and would measure that where h2 is refused.
 * h2load does not verify the server's certificate (it has no CA option and checks none): for a load
 * tool against our own lab, acceptable; wrk's TLS does not verify either.
 */
const H2_MAX_RATE_ARGS = [
  "-t2",
  `-c${MAX_RATE_CONNECTIONS}`,
  `-m${H2_STREAMS_PER_CLIENT}`,
  "-D",
  "8",
  "--npn-list=h2",
];
/** The replica's visibility delay: writes per second, for how long, by how many writers. */
const REPLICA_RATE = 1000;
const REPLICA_SECONDS = 10;
const REPLICA_WRITERS = 4;
const PLAN_RUNS = 5;
/**
 * The per-client limit while the bench runs: the bench is one client address sending as fast as it
 * can, which the default limit (1000 per 10 s) would answer with 429s. Not 0, which renders no
 * limit at all: at the highest value the config accepts every request still goes through the
 * stick table and the check, as with the default, so the figures include their cost; and no rate
 * this machine reaches comes near 1000000 per 10 s (a 429 would count among wrk's errors).
 */
const BENCH_RATE_LIMIT = MAX_RATE_LIMIT_PER_CLIENT;

/** What both peers take from our rendered haproxy.cfg: its certificate, CA and server lines. */
function oursOnTheLb(ours: string) {
  const certificate = /^\s*bind :443 ssl crt (\S+)/m.exec(ours)?.[1];
  const caFile = /ca-file (\S+)/.exec(ours)?.[1];
  const serverLines = ours.split("\n").filter((l) => /^\s+server s\d+ /.test(l));
  if (!certificate || !caFile || serverLines.length !== 2)
    throw new LabError("bench: the LB's HAProxy config is not the one the program renders");
  return { certificate, caFile, serverLines };
}

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
  const { certificate, caFile, serverLines } = oursOnTheLb(ours);
  // Our servers without our dead-backend detection (tcp-ut): names, addresses and SNI checks.
  const servers = serverLines.map((l) => l.replace(/ tcp-ut \S+/, ""));
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

/** Where the tuned Nginx peer listens on the LB, beside HAProxy's 443 (a bench-only firewall rule). */
export const NGINX_PEER_PORT = 8443;
/** The peer's files on the LB: Debian's nginx unpacked (not installed), its config, logs, pid. */
const NGINX_PEER_DIR = "/var/lib/webstack-bench-nginx";
/** The peer's transient unit on the LB (systemd-run). */
const NGINX_PEER_UNIT = "webstack-bench-nginx.service";

/**
 * The tuned peer: Debian's Nginx as a reverse proxy in front of the same backends, configured as
 * Nginx's own documentation recommends for proxying — upstream keep-alive (`keepalive`, HTTP/1.1,
 * an empty Connection header), TLS session reuse to the backends, response buffering (on by
 * default), a TLS session cache for clients, a worker per CPU, a buffered access log — with the
 * LB's own certificate. Benchmark code only, never rendered for a node.
 *
 * It does less than ours, which the comparison must say: with one upstream group Nginx can check a
 * backend's certificate against one name only (`proxy_ssl_name`), and each backend has its own, so
 * it does not verify them (`proxy_ssl_verify off`, Nginx's default); verifying by name would take
 * one upstream per backend, and then no failover between them. Nor does it health-check (only
 * passive `max_fails`), retry a 503, or log JSON through syslog.
 */
export function tunedNginxConfig(ours: string, cpus: number): string {
  const { certificate, serverLines } = oursOnTheLb(ours);
  // Each server's address:port, as its line gives it.
  const servers = serverLines.map((l) => l.trim().split(" ")[2]);
  const dir = NGINX_PEER_DIR;
  return [
    "# webstack bench: the tuned Nginx peer (benchmark only)",
    `worker_processes ${cpus};`,
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    "events {",
    "    worker_connections 4096;",
    "}",
    "http {",
    "    default_type application/octet-stream;",
    "    log_format peer '$remote_addr [$time_local] \"$request\" $status $body_bytes_sent '",
    "                    '$request_time $upstream_addr $upstream_response_time';",
    `    access_log ${dir}/access.log peer buffer=64k flush=1s;`,
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(
      (t) => `    ${t}_temp_path ${dir}/${t}-temp;`,
    ),
    "    keepalive_timeout 10s;",
    // As HAProxy: no cap on a kept-alive client's requests (Nginx closes after 1000 by default).
    "    keepalive_requests 100000;",
    "    ssl_protocols TLSv1.2 TLSv1.3;",
    "    ssl_session_cache shared:peer:10m;",
    "    ssl_session_timeout 1h;",
    "    upstream app {",
    ...servers.map((s) => `        server ${s};`),
    "        keepalive 32;",
    "        keepalive_requests 100000;",
    "    }",
    "    server {",
    `        listen ${NGINX_PEER_PORT} ssl;`,
    "        http2 on;",
    `        ssl_certificate ${certificate};`,
    `        ssl_certificate_key ${certificate};`,
    "        location / {",
    "            proxy_pass https://app;",
    "            proxy_http_version 1.1;",
    '            proxy_set_header Connection "";',
    "            proxy_set_header Host $host;",
    "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "            proxy_set_header X-Forwarded-Proto https;",
    "            proxy_ssl_session_reuse on;",
    "            proxy_ssl_verify off;",
    "        }",
    "    }",
    "}",
    "",
  ].join("\n");
}

interface Latency {
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly failed: number;
  readonly sent: number;
}

/** A row's fixed-rate figures: each the median of its rounds', every round's p99, all requests. */
interface FixedRate extends Latency {
  readonly rounds_p99_ms: number[];
}

/** The middle value (of an odd count; the upper middle of an even one). */
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const total = (values: number[]) => values.reduce((a, b) => a + b, 0);

export function medianOfRounds(runs: readonly Latency[]): FixedRate {
  return {
    p50_ms: median(runs.map((r) => r.p50_ms)),
    p99_ms: median(runs.map((r) => r.p99_ms)),
    failed: total(runs.map((r) => r.failed)),
    sent: total(runs.map((r) => r.sent)),
    rounds_p99_ms: runs.map((r) => r.p99_ms),
  };
}

/** What a closed-loop maximum-rate run gives, over HTTP/1.1 (wrk) or HTTP/2 (h2load). */
interface RateRun {
  readonly requests_per_s: number;
  readonly errors: number;
  /** The LB node's CPU time per 1000 requests (NaN for a path that does not cross the LB). */
  readonly lb_cpu_ms_per_1000: number;
}

interface MaxRate extends RateRun {
  readonly p50_ms: number;
  readonly p99_ms: number;
}

/** HTTP/2's: h2load prints no percentiles, only the mean time per request. */
interface H2MaxRate extends RateRun {
  readonly mean_ms: number;
}

/** The rounds' figures every maximum-rate row has: all errors, the LB's median CPU, every round's. */
const rateRounds = (runs: readonly RateRun[]) => ({
  errors: total(runs.map((r) => r.errors)),
  lb_cpu_ms_per_1000: median(runs.map((r) => r.lb_cpu_ms_per_1000)),
  rounds_requests_per_s: runs.map((r) => r.requests_per_s),
  rounds_lb_cpu_ms_per_1000: runs.map((r) => r.lb_cpu_ms_per_1000),
});

/** A row's maximum rate: each figure the median of its rounds', every round's rate, all errors. */
export function medianOfMaxRounds(runs: readonly MaxRate[]) {
  return {
    requests_per_s: median(runs.map((r) => r.requests_per_s)),
    p50_ms: median(runs.map((r) => r.p50_ms)),
    p99_ms: median(runs.map((r) => r.p99_ms)),
    ...rateRounds(runs),
  };
}

/** The same over HTTP/2, with the median of the rounds' mean times. */
export function medianOfH2Rounds(runs: readonly H2MaxRate[]) {
  return {
    requests_per_s: median(runs.map((r) => r.requests_per_s)),
    mean_ms: median(runs.map((r) => r.mean_ms)),
    ...rateRounds(runs),
  };
}

interface ReplicaDelay {
  readonly writes: number;
  readonly writers: number;
  readonly write_rate: number;
  readonly seen: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  /** An INSERT's round trip from s1 to the primary: the network, TLS and its durable commit. */
  readonly commit_p50_ms: number;
  readonly commit_p99_ms: number;
}

/**
 * The replica's figures: the run with the median p99 (its commit times too), every run's p99 and
 * commit p99, all writes and rows seen.
 */
export function medianReplicaRound(runs: readonly ReplicaDelay[]) {
  const middle = [...runs].sort((a, b) => a.p99_ms - b.p99_ms)[Math.floor(runs.length / 2)];
  return {
    ...middle,
    writes: total(runs.map((r) => r.writes)),
    seen: total(runs.map((r) => r.seen)),
    rounds_p99_ms: runs.map((r) => r.p99_ms),
    rounds_commit_p99_ms: runs.map((r) => r.commit_p99_ms),
  };
}

type Path = (typeof PATHS)[number];

/** One proxy (or none) and target: its fixed-rate and maximum-rate rounds, per path. */
interface Series {
  /** "ours", "nginx" (the tuned peer), "naive" (HAProxy's sample config) or "-" (direct). */
  readonly proxy: string;
  readonly target: Target;
  readonly fixed: Record<Path, Latency[]>;
  readonly max: Record<Path, MaxRate[]>;
  /** Its maximum-rate rounds over HTTP/2: only for a proxy that offers HTTP/2 to clients. */
  readonly h2?: Record<Path, H2MaxRate[]>;
}

const offersH2 = (s: Series): s is Series & { h2: Record<Path, H2MaxRate[]> } => s.h2 !== undefined;

interface Target {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly cafile: string;
  /** The node a proxy in front of the backends runs on (the LB): its CPU per request is read. */
  readonly proxyNode?: NodeName;
}

function fixedRate(target: Target, path_: Path, readIds: number[]): Latency {
  const r = inNamespace(
    INTERNET_NS,
    [
      PYTHON,
      path.join(LAB_DIR, "load.py"),
      "--host",
      target.host,
      "--port",
      String(target.port),
      "--cafile",
      target.cafile,
      // Every connection open before the first request is due: the rounds measure requests, not
      // the eight TLS handshakes a round would otherwise start with.
      "--connect-first",
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

/** A duration as wrk and h2load print it ("850us", "1.23ms", "1.05s"), in milliseconds. */
function toMs(value: string, unit: string): number {
  const scale = { us: 0.001, ms: 1, s: 1000 }[unit as "us" | "ms" | "s"];
  return Math.round(Number(value) * scale * 100) / 100;
}

/** wrk's "50%  1.23ms" lines, in milliseconds. */
function wrkPercentile(output: string, pct: string): number {
  const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s)$`, "m").exec(output);
  return m ? toMs(m[1], m[2]) : NaN;
}

/** The URL a maximum-rate run asks for: `/`, or one item (a database read). */
const benchUrl = (target: Target, path_: Path, readIds: number[]) =>
  `https://${target.host}:${target.port}${path_ === "static" ? "/" : `/items/${readIds[0]}`}`;

/**
 * Runs a load tool in the client's namespace, with the LB's CPU time it cost for the proxies on
 * the LB (where the difference between them is): its node's, every process of it.
 */
function loadFromClient(target: Target, command: string[]) {
  const cpuBefore = target.proxyNode ? nodeCpuMs(target.proxyNode) : 0;
  const r = inNamespace(INTERNET_NS, command, { timeout: 60_000 });
  const cpuMs = target.proxyNode ? nodeCpuMs(target.proxyNode) - cpuBefore : NaN;
  if (r.status !== 0) throw new LabError(`bench: ${command[0]} failed: ${r.stderr}${r.stdout}`);
  return { stdout: r.stdout, cpuMs };
}

function maxRate(target: Target, path_: Path, readIds: number[]): MaxRate {
  const r = loadFromClient(target, ["wrk", ...MAX_RATE_ARGS, benchUrl(target, path_, readIds)]);
  const requests = Number(/^\s*(\d+) requests in /m.exec(r.stdout)?.[1]);
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
    lb_cpu_ms_per_1000: Math.round((r.cpuMs / requests) * 1000),
  };
}

/** What one h2load run printed at its end. */
export interface H2loadSummary {
  /** Responses per second of the run's duration (h2load's "req/s"). */
  readonly requests_per_s: number;
  /** Requests ended within the run, answered or not. */
  readonly done: number;
  /**
   * Every request that did not get a 2xx or 3xx answer: h2load's "failed", which already counts
   * its "errored" (reset, abandoned, timed out: "timeout" is among them) and its 4xx and 5xx answers
   * (h2load.cc; added up again they would count twice). A 3xx is a success, as for wrk.
   */
  readonly errors: number;
  readonly status: {
    readonly "2xx": number;
    readonly "3xx": number;
    readonly "4xx": number;
    readonly "5xx": number;
  };
  /** The mean of "time for request" (h2load prints no percentiles). */
  readonly mean_ms: number;
}

/**
 * h2load's end-of-run lines, read; refused when one is missing or no request went over HTTP/2:
 * h2load exits 0 when every connection failed, or when the server would not speak h2 (then no
 * "Application protocol: h2" line).
 */
export function parseH2load(output: string): H2loadSummary {
  const line = (name: string, pattern: RegExp) => {
    const m = pattern.exec(output);
    if (!m) throw new LabError(`bench: h2load printed no ${name} line:\n${output}`);
    return m.slice(1);
  };
  const [rps] = line("finished", /^finished in [\d.]+m?s, ([\d.]+) req\/s/m);
  // "failed" counts "errored" and "timeout" already: read for the line's shape, not added.
  const [, , done, , failed] = line(
    "requests",
    /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout$/m,
  ).map(Number);
  const [s2, s3, s4, s5] = line(
    "status codes",
    /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx$/m,
  ).map(Number);
  const [mean, unit] = line(
    "time for request",
    /^time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s/m,
  );
  if (!/^Application protocol: h2$/m.test(output) || done === 0)
    throw new LabError(`bench: no request went over HTTP/2:\n${output}`);
  return {
    requests_per_s: Number(rps),
    done,
    errors: failed,
    status: { "2xx": s2, "3xx": s3, "4xx": s4, "5xx": s5 },
    mean_ms: toMs(mean, unit),
  };
}

function h2MaxRate(target: Target, path_: Path, readIds: number[]): H2MaxRate {
  const url = benchUrl(target, path_, readIds);
  const r = loadFromClient(target, ["h2load", ...H2_MAX_RATE_ARGS, url]);
  const run = parseH2load(r.stdout);
  return {
    requests_per_s: Math.round(run.requests_per_s),
    mean_ms: run.mean_ms,
    errors: run.errors,
    lb_cpu_ms_per_1000: Math.round((r.cpuMs / run.done) * 1000),
  };
}

/** Both backends UP in HAProxy's stats: after a reload, and before every run of the bench. */
async function backendsUp(): Promise<void> {
  await waitFor("both backends up", 30, () =>
    Object.values(backendStates()).every((state) => state === "UP"),
  );
}

/**
 * Lets `source` reach `port` on a node while `run` runs: a bench-only rule at the head of the
 * node's input chain, deleted afterwards.
 */
async function withPortOpen<T>(
  node: NodeName,
  source: string,
  port: number,
  run: () => Promise<T>,
): Promise<T> {
  const ns = nodeNamespace(node);
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
    String(port),
    "accept",
    "comment",
    '"bench only"',
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

/**
 * Runs the tuned Nginx peer on the LB while `run` runs, reachable from `source` on its port: Debian
 * 13's nginx package, fetched from the LB's own APT sources and unpacked into a directory (not
 * installed: no package state), run as a transient unit, stopped and removed afterwards.
 */
async function withNginxPeer<T>(source: string, run: () => Promise<T>): Promise<T> {
  const dir = NGINX_PEER_DIR;
  const ours = inNode(LB_NODE, ["cat", "/etc/haproxy/haproxy.cfg"]);
  const cpus = Number(inNode(LB_NODE, ["nproc"]).trim());
  inNode(LB_NODE, [
    "sh",
    "-c",
    `rm -rf ${dir} && mkdir -p ${dir} && cd ${dir} && apt-get download -q nginx >/dev/null 2>&1 && dpkg-deb -x nginx_*.deb root`,
  ]);
  const written = execInNode(
    LB_NODE,
    ["sh", "-c", `cat > ${dir}/nginx.conf`],
    tunedNginxConfig(ours, cpus),
  );
  if (written.status !== 0) throw new LabError(`bench: the peer's config: ${written.stderr}`);
  const nginx = [`${dir}/root/usr/sbin/nginx`, "-c", `${dir}/nginx.conf`, "-e", `${dir}/error.log`];
  inNode(LB_NODE, [...nginx, "-t", "-q"]);
  // Started by the LB's own systemd, as a transient unit: so it runs in the node's cgroup, whose CPU
  // time the bench reads for the LB (a process started from the host, as a command in the node is,
  // stays in the host's cgroup: its CPU would count nowhere).
  // One left running by an interrupted bench would hold the unit's name (and the port).
  execInNode(LB_NODE, ["systemctl", "stop", NGINX_PEER_UNIT]);
  inNode(LB_NODE, [
    "systemd-run",
    "--quiet",
    "--collect",
    `--unit=${NGINX_PEER_UNIT}`,
    "--property=Type=forking",
    `--property=PIDFile=${dir}/nginx.pid`,
    ...nginx,
  ]);
  try {
    return await withPortOpen(LB_NODE, source, NGINX_PEER_PORT, run);
  } finally {
    // systemd ends its master and workers; then its files go.
    execInNode(LB_NODE, ["sh", "-c", `systemctl stop ${NGINX_PEER_UNIT}; rm -rf ${dir}`]);
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

const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;

/**
 * Two maximum rates' ratio, or NaN when either run had errors: a proxy answering errors (a 503
 * with no server up, a 429) answers them faster than a page, so its rate is no longer the one
 * compared.
 */
export const rateRatio = (
  a: { requests_per_s: number; errors: number },
  b: { requests_per_s: number; errors: number },
) => (a.errors > 0 || b.errors > 0 ? NaN : ratio(a.requests_per_s, b.requests_per_s));
/** A ratio as printed: NaN (JSON's null) when the runs had errors. */
const shownRatio = (r: number) => (Number.isNaN(r) ? "n/a (errors in a run)" : String(r));
/** A row's LB CPU as printed: its cell and its rounds' suffix ("-" and none off the LB's path). */
const lbCpu = (max: ReturnType<typeof rateRounds>) =>
  Number.isNaN(max.lb_cpu_ms_per_1000)
    ? { cell: "-", rounds: "" }
    : {
        cell: `${max.lb_cpu_ms_per_1000} ms`,
        rounds: ` · ${max.rounds_lb_cpu_ms_per_1000.join(" / ")} ms`,
      };

export async function bench(argv: readonly string[]): Promise<void> {
  const json = argv.includes("--json");
  const say = (m: string) =>
    json ? process.stderr.write(`bench: ${m}\n`) : console.log(`bench: ${m}`);
  // The bench runs on a lab that is up; `up` reuses a running one (and ensures the host's tools,
  // the bench's clients among them, either way).
  await labProgressToStderr(up);
  const network = labNetwork(LAB_TOPOLOGY);
  const caFile = path.join(STATE_DIR, "internet", "webstack-ca.crt");
  fs.writeFileSync(caFile, inNode("s1", ["cat", "/etc/webstack/tls/ca.crt"]));
  const lb: Target = {
    name: "LB",
    host: LAB_DOMAIN,
    port: 443,
    cafile: ACME_ROOT,
    proxyNode: LB_NODE,
  };
  const peer: Target = { ...lb, port: NGINX_PEER_PORT };
  // No proxy: no proxyNode.
  const direct: Target = {
    name: "s1 direct",
    host: "s1.webstack.internal",
    port: 443,
    cafile: caFile,
  };
  const readIds = writeItems(20, "bench");

  const series = (proxy: string, target: Target, http2 = false): Series => ({
    proxy,
    target,
    fixed: { static: [], db: [] },
    max: { static: [], db: [] },
    h2: http2 ? { static: [], db: [] } : undefined,
  });
  // HTTP/2 through ours (`alpn h2,http/1.1`) and the peer (`http2 on`); s1's Nginx and the naive
  // HAProxy's bind offer HTTP/1.1 only.
  const oursLb = series("ours", lb, true);
  const nginxLb = series("nginx", peer, true);
  const s1Direct = series("-", direct);
  const naiveLb = series("naive", lb);
  const label = (s: Series) =>
    s.proxy === "-" ? s.target.name : `${s.proxy} on the LB (:${s.target.port})`;
  // Every figure is the median of ROUNDS rounds that alternate between the series compared, round
  // after round: drift on the shared cores (a timer, a log flush, the other lab) spreads over all.
  // Each round starts with the next series: no series always goes first.
  const inRound = <S>(group: S[], round: number) =>
    group.map((_, i) => group[(i + round - 1) % group.length]);
  // Every run starts with both backends up in the HAProxy on the LB: a run that had one marked
  // down (checks timing out under load) must not spill its outage into the next, whatever it
  // measures.
  const measure = async <F>(run: () => F): Promise<F> => {
    await backendsUp();
    return run();
  };
  const rounds = async (group: Series[]) => {
    for (let round = 1; round <= ROUNDS; round++) {
      const order = inRound(group, round);
      say(`${order.map(label).join(" / ")}: ${FIXED_RATE}/s, round ${round} of ${ROUNDS}`);
      for (const s of order)
        for (const p of PATHS)
          s.fixed[p].push(await measure(() => fixedRate(s.target, p, readIds)));
    }
    for (let round = 1; round <= ROUNDS; round++) {
      const order = inRound(group, round);
      say(`${order.map(label).join(" / ")}: maximum rate, round ${round} of ${ROUNDS}`);
      for (const s of order)
        for (const p of PATHS) s.max[p].push(await measure(() => maxRate(s.target, p, readIds)));
    }
    const http2 = group.filter(offersH2);
    for (let round = 1; http2.length > 0 && round <= ROUNDS; round++) {
      const order = inRound(http2, round);
      say(`${order.map(label).join(" / ")}: maximum rate over HTTP/2, round ${round} of ${ROUNDS}`);
      for (const s of order)
        for (const p of PATHS) s.h2[p].push(await measure(() => h2MaxRate(s.target, p, readIds)));
    }
  };

  await withBenchRateLimit(say, async () => {
    // Direct, and to the peer, from the client's own address (the internet namespace's address
    // toward the VPC).
    await withPortOpen("s1", network.router, 443, () =>
      withNginxPeer(network.router, () => rounds([oursLb, nginxLb, s1Direct])),
    );
    const ours = inNode(LB_NODE, ["cat", "/etc/haproxy/haproxy.cfg"]);
    reloadHaproxy(naiveHaproxyConfig(ours));
    try {
      await rounds([naiveLb]);
    } finally {
      reloadHaproxy(ours);
      await backendsUp();
    }
  });
  // A row per series and path: which, and its figures.
  const rowsOf = <S extends Series, F>(group: S[], figures: (s: S, p: Path) => F) =>
    group.flatMap((s) =>
      PATHS.map((p) => ({
        proxy: s.proxy,
        target: s.target.name,
        port: s.target.port,
        path: p,
        ...figures(s, p),
      })),
    );
  const everySeries = [oursLb, nginxLb, s1Direct, naiveLb];
  const rows = rowsOf(everySeries, (s, p) => ({
    fixed: medianOfRounds(s.fixed[p]),
    max: medianOfMaxRounds(s.max[p]),
  }));
  const h2Rows = rowsOf(everySeries.filter(offersH2), (s, p) => ({
    max: medianOfH2Rounds(s.h2[p]),
  }));

  // The replica's visibility delay: ROUNDS runs, the median run's figures (by p99), every run's p99.
  const replicaRounds: ReplicaDelay[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    say(`replica visibility delay at ${REPLICA_RATE} writes/s, round ${round} of ${ROUNDS}`);
    // Each round starts with s1 caught up: the last round's probe rows, deleted on the primary, are
    // ten thousand row events for it to apply.
    const position = nodeSql(PRIMARY_NODE, "SELECT @@gtid_binlog_pos");
    if (nodeSql("s1", `SELECT MASTER_GTID_WAIT('${position}', 60)`) !== "0")
      throw new LabError(`bench: s1 did not reach the primary's ${position} within 60 s`);
    const delay = execInNode(
      "s1",
      [PYTHON, "-", String(REPLICA_RATE), String(REPLICA_SECONDS), String(REPLICA_WRITERS)],
      fs.readFileSync(path.join(LAB_DIR, "replica-delay.py"), "utf8"),
    );
    if (delay.status !== 0) throw new LabError(`bench: replica-delay.py failed: ${delay.stderr}`);
    const run = JSON.parse(delay.stdout) as ReplicaDelay & { tag: string };
    // The probe rows go (as root on the primary: the app user cannot delete), on the replica too.
    nodeSql(PRIMARY_NODE, `DELETE FROM items WHERE note LIKE '${run.tag}%'`);
    replicaRounds.push(run);
  }
  const replica = medianReplicaRound(replicaRounds);

  say("offline plan time");
  const plan = await planSeconds();

  const find = (proxy: string, p: string) => rows.find((r) => r.proxy === proxy && r.path === p)!;
  const findH2 = (proxy: string, p: string) =>
    h2Rows.find((r) => r.proxy === proxy && r.path === p)!;
  const ratios = Object.fromEntries(
    PATHS.map((p) => [
      p,
      {
        lb_p99_over_direct_p99: ratio(find("ours", p).fixed.p99_ms, find("-", p).fixed.p99_ms),
        ours_max_over_nginx_max: rateRatio(find("ours", p).max, find("nginx", p).max),
        ours_p99_over_nginx_p99_at_max: ratio(
          find("ours", p).max.p99_ms,
          find("nginx", p).max.p99_ms,
        ),
        ours_p99_over_nginx_p99_fixed: ratio(
          find("ours", p).fixed.p99_ms,
          find("nginx", p).fixed.p99_ms,
        ),
        ours_max_over_naive_max: rateRatio(find("ours", p).max, find("naive", p).max),
        ours_h2_max_over_nginx_h2_max: rateRatio(findH2("ours", p).max, findH2("nginx", p).max),
      },
    ]),
  );
  const result = {
    fixed_rate_per_s: FIXED_RATE,
    fixed_seconds: FIXED_SECONDS,
    rounds: ROUNDS,
    max_rate_tool: `wrk ${MAX_RATE_ARGS.join(" ")}`,
    h2_max_rate_tool: `h2load ${H2_MAX_RATE_ARGS.join(" ")}`,
    rate_limit_per_client: BENCH_RATE_LIMIT,
    rows,
    h2_rows: h2Rows,
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
      `${pad("proxy", 7)}${pad("target", 11)}${pad("path", 8)}${pad(`p50@${FIXED_RATE}/s`, 12)}${pad(`p99@${FIXED_RATE}/s`, 12)}${pad("failed", 8)}${pad("max req/s", 11)}${pad("p50@max", 9)}${pad("p99@max", 9)}${pad("errors", 8)}${pad("LB cpu", 8)}p99@${FIXED_RATE}/s per round · max req/s per round · LB cpu per round`,
      ...rows.map((r) => {
        const cpu = lbCpu(r.max);
        return `${pad(r.proxy, 7)}${pad(r.target, 11)}${pad(r.path, 8)}${pad(`${r.fixed.p50_ms} ms`, 12)}${pad(`${r.fixed.p99_ms} ms`, 12)}${pad(r.fixed.failed, 8)}${pad(r.max.requests_per_s, 11)}${pad(`${r.max.p50_ms} ms`, 9)}${pad(`${r.max.p99_ms} ms`, 9)}${pad(r.max.errors, 8)}${pad(cpu.cell, 8)}${r.fixed.rounds_p99_ms.join(" / ")} ms · ${r.max.rounds_requests_per_s.join(" / ")}${cpu.rounds}`;
      }),
      `(LB cpu: the LB node's CPU time per 1000 requests at the maximum rate, every process of it — proxy, log path, agents — from its cgroup's cpu.stat)`,
      `(each figure the median of ${ROUNDS} rounds alternating between ours, the Nginx peer and s1 direct; the naive HAProxy's ${ROUNDS} rounds after them; fixed rate ${FIXED_RATE}/s for ${FIXED_SECONDS} s, maximum rate wrk ${MAX_RATE_ARGS.join(" ")})`,
      `(ours with rateLimitPerClient=${BENCH_RATE_LIMIT}: every request tracked and checked, as with the default, none refused)`,
      `(the Nginx peer does not verify the backends' certificates, health-check them or retry: see lab/bench.ts; the naive HAProxy logs through /dev/log, journald's)`,
      "",
      `HTTP/2 to clients, maximum rate: h2load ${H2_MAX_RATE_ARGS.join(" ")} (${MAX_RATE_CONNECTIONS} connections, ${H2_STREAMS_PER_CLIENT} streams in flight on each)`,
      `${pad("proxy", 7)}${pad("target", 11)}${pad("path", 8)}${pad("max req/s", 11)}${pad("mean ms", 9)}${pad("errors", 8)}${pad("LB cpu", 8)}max req/s per round · LB cpu per round`,
      ...h2Rows.map((r) => {
        const cpu = lbCpu(r.max);
        return `${pad(r.proxy, 7)}${pad(r.target, 11)}${pad(r.path, 8)}${pad(r.max.requests_per_s, 11)}${pad(r.max.mean_ms, 9)}${pad(r.max.errors, 8)}${pad(cpu.cell, 8)}${r.max.rounds_requests_per_s.join(" / ")}${cpu.rounds}`;
      }),
      `(each figure the median of ${ROUNDS} rounds alternating between ours and the Nginx peer, right after the wrk rounds; s1's Nginx and the naive HAProxy offer no HTTP/2; to the backends both proxies speak HTTP/1.1)`,
      `(mean ms: h2load's mean time per request, which it prints instead of percentiles, with ${MAX_RATE_CONNECTIONS * H2_STREAMS_PER_CLIENT} requests in flight: not comparable with wrk's p50 and p99 at ${MAX_RATE_CONNECTIONS}; h2load does not verify the LB's certificate)`,
      "",
      ...PATHS.map((p) =>
        [
          `${pad(p, 7)} ours / nginx max rate: ${shownRatio(ratios[p].ours_max_over_nginx_max)} (goal >= 1.0)`,
          `p99 at max: ${ratios[p].ours_p99_over_nginx_p99_at_max}, at ${FIXED_RATE}/s: ${ratios[p].ours_p99_over_nginx_p99_fixed} (goal <= 1.0)`,
          `LB p99 / direct p99 at ${FIXED_RATE}/s: ${ratios[p].lb_p99_over_direct_p99} (goal <= 1.5)`,
          `ours / naive max rate: ${shownRatio(ratios[p].ours_max_over_naive_max)}`,
          `ours / nginx max rate over HTTP/2: ${shownRatio(ratios[p].ours_h2_max_over_nginx_h2_max)}`,
        ].join("   "),
      ),
      `replica visibility delay at ${replica.write_rate} writes/s (goal ${REPLICA_RATE}, ${REPLICA_WRITERS} writers): p50 ${replica.p50_ms} ms, p99 ${replica.p99_ms} ms (goal < 10 ms), max ${replica.max_ms} ms; p99 per round ${replica.rounds_p99_ms.join(" / ")} ms; ${replica.seen}/${replica.writes} seen; the primary's commit (an INSERT from s1) in that round: p50 ${replica.commit_p50_ms} ms, p99 ${replica.commit_p99_ms} ms, p99 per round ${replica.rounds_commit_p99_ms.join(" / ")} ms`,
      `offline plan of the whole program (dev stack): median ${plan.median_ms} ms, min ${plan.min_ms} ms over ${plan.runs} runs`,
      "",
    ].join("\n"),
  );
}
