// lab/load.py, the lab tests' load, against an HTTPS server on loopback: every connection from
// --source, and with --limited-ok the LB's 429s (a Retry-After, a JSON error) counted apart from
// failures; without it, or without either, a 429 is a failure. With --keyed-writes, a write whose
// outcome is unknown is sent again with its Idempotency-Key.
import { spawn } from "child_process";
import * as fs from "fs";
import * as https from "https";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { PYTHON } from "../lab/commands";
import { PROJECT_DIR, commandWorks, selfSignedCertificate, testNeeding } from "./harness";
import type { LoadReport } from "./labLoad";

const withTools = testNeeding(
  "openssl and Debian's python3",
  commandWorks("openssl", ["version"]) && commandWorks(PYTHON, ["--version"]),
);

const LOAD = path.join(PROJECT_DIR, "lab", "load.py");
/** Answers 200 to a client address this many times, then what `limited` says. */
const ADMITTED = 5;
/** A second loopback address: on Linux all of 127/8 is local. */
const SOURCE = "127.0.0.2";

let dir: string;
let cafile: string;
let server: https.Server;
let port: number;
/** Requests seen per client address. */
const seen = new Map<string, number>();
/** How the server answers past ADMITTED: a complete 429, one without Retry-After, or text. */
let limited: "complete" | "no-retry-after" | "text" = "complete";
/** How a write's first send is answered: never (a lost answer), or with a 503. */
let firstWrite: "silent" | "503" = "silent";
/** Each write's Idempotency-Key, once per send. */
const keys: string[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-load-"));
  if (!commandWorks("openssl", ["version"])) return;
  const made = selfSignedCertificate(dir, "localhost", "DNS:localhost");
  cafile = made.certFile;
  server = https.createServer(
    {
      key: fs.readFileSync(made.keyFile),
      cert: fs.readFileSync(made.certFile),
    },
    (req, res) => {
      if (req.method === "POST") {
        const key = String(req.headers["idempotency-key"]);
        req.resume();
        keys.push(key);
        if (keys.filter((k) => k === key).length === 1) {
          if (firstWrite === "503") res.writeHead(503).end("{}");
          return; // silent: the client's wait for this send runs out
        }
        res.writeHead(201, { "content-type": "application/json" });
        res.end(JSON.stringify({ node: "s1", release: "r1", id: new Set(keys).size }));
        return;
      }
      const client = req.socket.remoteAddress ?? "?";
      const count = (seen.get(client) ?? 0) + 1;
      seen.set(client, count);
      req.resume();
      if (count <= ADMITTED) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ node: "s1", release: "r1" }));
      } else if (limited === "text") {
        res.writeHead(429, { "retry-after": "20" });
        res.end("slow down");
      } else {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (limited === "complete") headers["retry-after"] = "20";
        res.writeHead(429, headers);
        res.end(JSON.stringify({ node: "lb", role: "loadbalancer", error: "too many requests" }));
      }
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  if (server) await new Promise((resolve) => server.close(resolve));
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  seen.clear();
  keys.length = 0;
});

/** 12 requests at 100/s from SOURCE: 5 answered 200, then 429s. */
function load(...options: string[]): Promise<LoadReport> {
  const child = spawn(
    PYTHON,
    [
      LOAD,
      "--host",
      "localhost",
      "--port",
      String(port),
      "--cafile",
      cafile,
      "--rate",
      "100",
      "--duration",
      "5",
      "--count",
      "12",
      "--connections",
      "2",
      "--source",
      SOURCE,
      ...options,
    ],
    { stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += String(d)));
  child.stderr.on("data", (d) => (err += String(d)));
  return new Promise((resolve, reject) =>
    child.on("exit", (code) =>
      code === 0
        ? resolve(JSON.parse(out) as LoadReport)
        : reject(new Error(`load.py exited ${code}: ${err}`)),
    ),
  );
}

withTools(
  "--limited-ok: a 429 with a Retry-After and a JSON error is limited, not failed",
  async () => {
    limited = "complete";
    const report = await load("--limited-ok");
    // Every connection came from --source (the IPv4-mapped form Node reports).
    expect([...seen.keys()].map((a) => a.replace(/^::ffff:/, ""))).toEqual([SOURCE]);
    expect(report).toMatchObject({
      sent: 12,
      ok: ADMITTED,
      limited: 12 - ADMITTED,
      failed: 0,
      failures: [],
      statuses: { "200": ADMITTED, "429": 12 - ADMITTED },
      limited_retry_after: [20],
      limited_errors: ["too many requests"],
      limited_nodes: ["lb"],
    });
    // The sixth request was due 50 ms after the first (100/s).
    expect(report.first_limited_s).toBeGreaterThanOrEqual(0.04);
    expect(report.first_limited_s).toBeLessThan(0.1);
  },
  40_000,
);

withTools.each(["silent", "503"] as const)(
  "--keyed-writes: a write whose first send gets %s is sent again with its key, and succeeds",
  async (how) => {
    firstWrite = how;
    const report = await load("--mix", "write=1", "--keyed-writes", "0.3", "--timeout", "5");
    expect(report).toMatchObject({ sent: 12, ok: 12, failed: 0, failures: [], retried: 12 });
    expect(report.rows).toHaveLength(12);
    // Each key twice: the sha256 of its note.
    expect(new Set(keys).size).toBe(12);
    expect(keys).toHaveLength(24);
    for (const key of keys) expect(key).toMatch(/^[0-9a-f]{64}$/);
  },
  40_000,
);

withTools.each([
  ["without --limited-ok, a complete 429", "complete", []],
  ["a 429 without Retry-After", "no-retry-after", ["--limited-ok"]],
  ["a 429 whose body is not JSON", "text", ["--limited-ok"]],
] as const)(
  "%s is a failure",
  async (_, how, options) => {
    limited = how;
    const report = await load(...options);
    expect(report).toMatchObject({ ok: ADMITTED, limited: 0, failed: 12 - ADMITTED });
    expect(report.failures[0]).toMatch(/^GET \/: HTTP 429 /);
  },
  40_000,
);
