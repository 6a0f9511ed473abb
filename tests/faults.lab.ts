// The stack under faults: each test runs a bounded load from the client namespace while one part
// fails and comes back, and asserts 0 failed requests, 0 rows lost and a bounded longest stall.
import { waitFor } from "../lab/commands";
import { inNamespace } from "../lab/namespaces";
import { inNode, startNode, stopNode } from "../lab/nodes";
import {
  forceRenewal,
  nodeSql,
  reloadHaproxy,
  servedCertificate,
  writeItems,
} from "../lab/runningStack";
import { INTERNET_NS, LAB_TOPOLOGY } from "../lab/labPlan";
import { IS_ROOT, labCli, labTest } from "./harness";
import { unitJournal } from "./labProbes";
import {
  CUT_LINK_STALL_MS,
  MIXED,
  READS,
  STOPPED_SERVICE_STALL_MS,
  appliedOn,
  backendState,
  checksum,
  convergence,
  expectServed,
  initStartTicks,
  lab,
  labCliInBackground,
  missingRows,
  orderingCycles,
  replicaCaughtUp,
  seedReads,
  sleep,
  underLoad,
} from "./labLoad";

beforeAll(() => {
  if (!IS_ROOT) return;
  lab("up"); // a running, healthy lab is reused as is
  // Rows every read in the load asks for, already on the replica.
  seedReads(writeItems(20, "seed"));
}, 30 * 60_000);

afterAll(() => {
  if (IS_ROOT) lab("down");
}, 5 * 60_000);

labTest(
  "a backend's nginx stopped, then started: no failed request, s1 serves again",
  async () => {
    const report = await underLoad(
      "nginx stopped on s1",
      { rate: 40, seconds: 16, mix: READS },
      async () => {
        inNode("s1", ["systemctl", "stop", "nginx"]);
        await waitFor("HAProxy marking s1 down", 10, () => backendState("s1").startsWith("DOWN"));
        await sleep(2000);
        inNode("s1", ["systemctl", "start", "nginx"]);
        await waitFor("s1 back up", 15, () => backendState("s1") === "UP");
        await sleep(1000);
      },
    );
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    expect(report.nodes.s1).toBeGreaterThan(0);
  },
  120_000,
);

labTest(
  "a backend's link cut (the instance gone), then restored: no failed request; writes in flight, sent again with their Idempotency-Key, land once each",
  async () => {
    // The bridge port of s1's link: down, packets to s1 vanish without an answer, as when an
    // instance dies; up, it is back with its state (connections HAProxy had are long gone).
    const link = (state: "up" | "down") =>
      expect(inNamespace(INTERNET_NS, ["ip", "link", "set", "s1", state]).status).toBe(0);
    // A POST that reached s1 is not HAProxy's to resend (it may have been applied): the client,
    // with its key, sends it again when the answer does not come (HAProxy's 502 after ~2 s).
    const report = await underLoad(
      "s1's link cut",
      { rate: 40, seconds: 25, mix: "root=1,read=1,write=1", keyedWrites: 5 },
      async () => {
        link("down");
        try {
          await waitFor("HAProxy marking s1 down", 15, () => backendState("s1").startsWith("DOWN"));
          await sleep(2000);
        } finally {
          link("up");
        }
        await waitFor("s1 back up", 20, () => backendState("s1") === "UP");
        await sleep(1000);
      },
    );
    expectServed(report, CUT_LINK_STALL_MS);
    // Every acknowledged write on the primary once, and no other row of this load's.
    expect(missingRows("s2", report.rows)).toEqual([]);
    const prefix = report.rows[0].note.replace(/\d+$/, "").replace(/'/g, "''");
    expect(nodeSql("s2", `SELECT COUNT(*) FROM items WHERE note LIKE '${prefix}%'`)).toBe(
      String(report.rows.length),
    );
    await replicaCaughtUp(report.rows);
  },
  120_000,
);

labTest(
  "the replica's database stopped: reads fall back to the primary; started again, it catches up",
  async () => {
    const report = await underLoad(
      "replica database stopped",
      { rate: 40, seconds: 16, mix: MIXED },
      async () => {
        inNode("s1", ["systemctl", "stop", "mariadb"]);
        await sleep(4000);
        inNode("s1", ["systemctl", "start", "mariadb"]);
        await sleep(1000);
      },
    );
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    expect(report.read_from.primary).toBeGreaterThan(0);
    expect(missingRows("s2", report.rows)).toEqual([]);
    await replicaCaughtUp(report.rows);
  },
  180_000,
);

// Reads only while the primary restarts: an INSERT in flight when the primary shuts down fails
// with "lost connection during query", which the app cannot retry (it may have been applied);
// idempotency keys on writes would lift this (open item). Rows written before are compared.
labTest(
  "the primary's database restarted: the replica reconnects by itself, both hold identical data",
  async () => {
    const report = await underLoad(
      "primary database restarted",
      { rate: 40, seconds: 16, mix: READS },
      async () => {
        inNode("s2", ["systemctl", "restart", "mariadb"]);
        await sleep(2000);
      },
    );
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    expect(missingRows("s2", report.rows)).toEqual([]);
    await replicaCaughtUp(report.rows);
    await waitFor("the replica's threads running", 60, () => {
      const status = inNode("s1", ["mariadb", "-e", "SHOW REPLICA STATUS\\G"]);
      return /Slave_IO_Running: Yes/.test(status) && /Slave_SQL_Running: Yes/.test(status);
    });
    await waitFor(
      "identical checksums of the app's table",
      30,
      () => checksum("s1") === checksum("s2"),
    );
  },
  180_000,
);

// What a rollout of the databases' settings does (the replica restarted, then the primary), on a
// quiet stack: every app worker's kept connections were stale at once, and the health checks
// failing on each in turn took both backends out of HAProxy for seconds while both databases were
// up (before reads were sent again on a new connection).
labTest(
  "both databases restarted, the replica then the primary, on a quiet stack: no backend leaves HAProxy, a trickle of reads is served",
  async () => {
    await sleep(40_000); // the health checks alone, long enough to reach every app worker
    const since = inNode("lb", ["date", "+%Y-%m-%d %H:%M:%S"]).trim();
    const report = await underLoad(
      "both databases restarted",
      { rate: 6, seconds: 20, mix: READS },
      async () => {
        inNode("s1", ["systemctl", "restart", "mariadb"]);
        await sleep(1000);
        inNode("s2", ["systemctl", "restart", "mariadb"]);
        await sleep(6000);
      },
    );
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    const checks = unitJournal("lb", "haproxy", since).split("\n");
    expect(checks.filter((l) => / is DOWN/.test(l))).toEqual([]);
  },
  180_000,
);

labTest(
  "HAProxy reloaded under load, for a config change and for a renewed certificate: no failed request",
  async () => {
    const before = servedCertificate(true);
    const report = await underLoad(
      "HAProxy reloads",
      { rate: 40, seconds: 30, mix: READS },
      async () => {
        // A config change: HAProxy's own file, one more comment line, validated and reloaded.
        reloadHaproxy(`${inNode("lb", ["cat", "/etc/haproxy/haproxy.cfg"])}# reload under load\n`);
        await sleep(2000);
        // A renewal: certbot, then its deploy hook installs the certificate and reloads HAProxy.
        const renew = forceRenewal();
        expect(renew.status).toBe(0);
        await sleep(2000);
      },
    );
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    const after = servedCertificate(true);
    expect(after).toMatch(/^serial=/m);
    expect(after).not.toBe(before);
  },
  180_000,
);

/** How HAProxy's access log splits a request's total_ms (-1: the request never got that far). */
const LOG_PHASES = ["queue_ms", "connect_ms", "response_ms"] as const;
type LogEntry = Record<(typeof LOG_PHASES)[number] | "total_ms" | "status", number> & {
  server: string;
  retries: number;
  redispatched: number;
};

labTest(
  "after the faults, every line of HAProxy's access log is JSON, retried and redispatched requests included, its total time split into phases",
  () => {
    const lines = inNode("lb", ["grep", "-h", '"frontend":', "/var/log/haproxy.log"])
      .split("\n")
      .filter(Boolean);
    const entries = lines.map((line) => {
      const json = line.slice(line.indexOf("{"));
      try {
        return JSON.parse(json) as LogEntry;
      } catch {
        throw new Error(`not JSON: ${line}`);
      }
    });
    expect(entries.length).toBeGreaterThan(1000);
    // The link cut made HAProxy send requests to the other server: those lines parse too.
    expect(entries.some((e) => e.redispatched > 0 || e.retries > 0)).toBe(true);
    // Each phase -1 or a part of the whole; every answer below 500 a server gave went through all
    // three (a 503 after failed connects has no server time; a client gone before an answer, -1).
    const misfits = entries.filter((e) => {
      const spent = LOG_PHASES.map((p) => e[p]);
      if (!spent.every((ms) => Number.isInteger(ms) && ms >= -1)) return true;
      const parts = spent.filter((ms) => ms > 0).reduce((a, b) => a + b, 0);
      if (e.total_ms >= 0 && parts > e.total_ms) return true;
      const answered = e.server !== "<NOSRV>" && e.status >= 200 && e.status < 500;
      return answered && spent.some((ms) => ms < 0);
    });
    expect(misfits.slice(0, 5)).toEqual([]);
    expect(entries.filter((e) => e.response_ms > 0).length).toBeGreaterThan(100);
  },
);

// ---- Changes reach running nodes in place: bundles, applied under load --------------------------

/** Where HAProxy reads its config on the LB, as the LB's bundle delivers it. */
const HAPROXY_CFG = "/etc/haproxy/haproxy.cfg";

labTest(
  "one apply changes an HAProxy setting, an Nginx setting and turns Datadog on, under load: every node converges within 60 s, the replica before the primary, no failed request, no instance replaced",
  async () => {
    const booted = Object.fromEntries(LAB_TOPOLOGY.nodeNames.map((n) => [n, initStartTicks(n)]));
    let result = { status: null as number | null, output: "" };
    const report = await underLoad("apply", { rate: 40, seconds: 100, mix: MIXED }, async () => {
      result = labCli([
        "apply",
        "--set",
        "lbServerTimeoutSeconds=90",
        "--set",
        "maxBodyMiB=20",
        "--set",
        "datadog=true",
      ]);
    });
    console.log(`apply:\n${result.output}`);
    expect(result.status).toBe(0);
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    const seconds = convergence(result.output);
    expect(Object.keys(seconds).sort()).toEqual([...LAB_TOPOLOGY.nodeNames].sort());
    for (const node of LAB_TOPOLOGY.nodeNames) expect(seconds[node]).toBeLessThanOrEqual(60);
    expect(Date.parse(appliedOn("s1").at)).toBeLessThan(Date.parse(appliedOn("s2").at));
    // In place: the same instances, still booted since before, their user-data unchanged.
    expect(Object.fromEntries(LAB_TOPOLOGY.nodeNames.map((n) => [n, initStartTicks(n)]))).toEqual(
      booted,
    );
    expect(result.output).not.toContain("user-data changed");
    // And in effect: HAProxy's, Nginx's and Datadog's.
    expect(inNode("lb", ["cat", HAPROXY_CFG])).toMatch(/^ {4}timeout server 90s$/m);
    for (const node of ["s1", "s2"] as const) {
      expect(inNode(node, ["cat", "/etc/nginx/sites-available/webstack"])).toMatch(
        /^ {4}client_max_body_size 20m;$/m,
      );
    }
    for (const node of LAB_TOPOLOGY.nodeNames) {
      expect(inNode(node, ["cat", "/etc/webstack/datadog.env"])).toMatch(/^DATADOG_ENABLED=true$/m);
    }
    expect(missingRows("s2", report.rows)).toEqual([]);
    await replicaCaughtUp(report.rows);
  },
  600_000,
);

labTest(
  "a bundle whose HAProxy config fails haproxy -c is refused on the LB: the old config keeps serving, the LB says why, apply exits non-zero",
  async () => {
    const before = inNode("lb", ["cat", HAPROXY_CFG]);
    let result = { status: null as number | null, output: "" };
    const report = await underLoad("refused", { rate: 40, seconds: 60, mix: READS }, async () => {
      result = labCli("apply", { WEBSTACK_LAB_BREAK_BUNDLE: `lb:${HAPROXY_CFG}` });
    });
    console.log(`apply of a broken bundle:\n${result.output}`);
    expect(result.status).toBe(1);
    expect(result.output).toMatch(/lb: REFUSED \w+: .*haproxy/);
    expectServed(report, STOPPED_SERVICE_STALL_MS);
    expect(inNode("lb", ["cat", HAPROXY_CFG])).toBe(before);
    expect(appliedOn("lb")).toMatchObject({
      state: "refused",
      reason: expect.stringMatching(/haproxy/),
    });
    // The good bundle again: applied.
    expect(labCli("apply").status).toBe(0);
    expect(appliedOn("lb").state).toBe("applied");
  },
  600_000,
);

labTest(
  "a node that was stopped while a change was published comes back on the latest bundle; the primary waits for it",
  async () => {
    const argv = await stopNode("s1");
    const apply = labCliInBackground(["apply", "--set", "maxBodyMiB=30"]);
    // The primary holds back while its replica is away.
    await sleep(40_000);
    expect(apply.output()).not.toMatch(/lab: s2: applied/);
    await startNode("s1", argv);
    // Its second boot, like its first, ordered every unit without a cycle, and reported itself.
    expect(orderingCycles("s1")).toEqual([]);
    await waitFor("s1's boot report", 60, () =>
      /cloud-init finished cleanly/.test(
        inNode("s1", [
          "journalctl",
          "--boot",
          "--no-pager",
          "-o",
          "cat",
          "-u",
          "webstack-boot-status",
        ]),
      ),
    );
    expect(await apply.exited).toBe(0);
    console.log(`apply while s1 was stopped:\n${apply.output()}`);
    for (const node of ["s1", "s2"] as const) {
      expect(inNode(node, ["cat", "/etc/nginx/sites-available/webstack"])).toMatch(
        /^ {4}client_max_body_size 30m;$/m,
      );
    }
    expect(Date.parse(appliedOn("s1").at)).toBeLessThan(Date.parse(appliedOn("s2").at));
    await waitFor("s1 back up", 60, () => backendState("s1") === "UP");
  },
  600_000,
);
