// HAProxy's config line by line: ACME and redirect, TLS, the per-client limit, connection limits,
// verified backends, retries, stats.
import * as path from "path";
import { HTTPS_FRONTEND, HaproxyParams, renderHaproxyConfig } from "../cloud-init/haproxy";
import { shippedFile } from "../cloud-init/template";
import { gunicornWorkers, lbConnectionLimits, lbServerMaxconn } from "../model/limits";
import { PORTS } from "../model/topology";
import { TOPOLOGY } from "./harness";
import { BACKENDS } from "./rendererFixtures";

const PARAMS: HaproxyParams = {
  node: TOPOLOGY.nodes.lb.name,
  role: TOPOLOGY.nodes.lb.role,
  domain: "www.example.com",
  backends: BACKENDS,
  caFile: "/etc/webstack/tls/ca.crt",
  certFile: "/etc/haproxy/certs/site.pem",
  certbotPort: 8888,
  statsPort: 8404,
  serverTimeoutSeconds: 75,
  checkTimeoutMs: 500,
  rateLimitPerClient: 700,
  // A t3.micro's 1 GiB.
  connections: lbConnectionLimits(1024),
  // A t3.small app node's 5 Gunicorn workers.
  serverMaxconn: lbServerMaxconn(gunicornWorkers(2)),
};

const linesOf = (p: HaproxyParams) =>
  renderHaproxyConfig(p)
    .split("\n")
    .map((l) => l.trim());
const CONFIG_LINES = linesOf(PARAMS);

/** The lines of one section (`frontend http`, `backend app` …), up to the next section. */
function section(header: string, lines: string[] = CONFIG_LINES): string[] {
  const start = lines.indexOf(header);
  expect(start).toBeGreaterThanOrEqual(0);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => /^(global|defaults|frontend|backend|listen)\b/.test(l));
  return rest.slice(0, end < 0 ? undefined : end).filter((l) => l && !l.startsWith("#"));
}

const RATE_LIMITED =
  `http-request return status 429 content-type application/json ` +
  `string '{"node":"lb","role":"loadbalancer","error":"too many requests"}' ` +
  "hdr Retry-After 20 hdr Cache-Control no-store if { sc_http_req_rate(0) gt 700 }";

describe("HAProxy config", () => {
  test("port 80: the ACME path to certbot on loopback, everything else 301 to HTTPS", () => {
    expect(section("frontend http")).toEqual([
      "bind :80",
      "maxconn 250",
      "acl acme path_beg /.well-known/acme-challenge/",
      "http-request redirect scheme https code 301 unless acme",
      "use_backend acme if acme",
    ]);
    expect(section("backend acme")).toEqual(["server certbot 127.0.0.1:8888"]);
  });

  test("port 443: the public certificate, TLS 1.2+, ALPN h2 and http/1.1, HSTS on every answer", () => {
    expect(section("frontend https")).toEqual([
      "bind :443 ssl crt /etc/haproxy/certs/site.pem alpn h2,http/1.1",
      "maxconn 2240",
      "stick-table type ipv6 size 100k expire 30s store http_req_rate(10s)",
      "http-request track-sc0 src",
      RATE_LIMITED,
      "http-request set-header X-Forwarded-Proto https",
      // http-after-response: HAProxy's own answers (the 429 above, a 503) carry it too.
      'http-after-response set-header Strict-Transport-Security "max-age=63072000"',
      "default_backend app",
    ]);
    expect(CONFIG_LINES.join("\n")).not.toMatch(/http-response set-header Strict/);
    const global = section("global");
    expect(global).toContain("ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets");
    expect(global).toContain("ssl-default-server-options ssl-min-ver TLSv1.2");
    // Forward secrecy and AEAD only.
    const ciphers = global
      .find((l) => l.startsWith("ssl-default-bind-ciphers "))!
      .split(" ")[1]
      .split(":");
    expect(ciphers.every((c) => c.startsWith("ECDHE-") && /GCM|CHACHA20/.test(c))).toBe(true);
  });

  test("backends: round-robin, health checks on /healthz with fast detection", () => {
    const app = section("backend app");
    expect(app).toEqual(
      expect.arrayContaining([
        "balance roundrobin",
        "option httpchk",
        "http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com",
        "http-check expect status 200",
        "http-reuse safe",
      ]),
    );
    const defaults = app.find((l) => l.startsWith("default-server "))!.split(" ");
    expect(defaults).toEqual(
      expect.arrayContaining(["check", "inter", "1s", "fall", "2", "rise", "2"]),
    );
  });

  test("re-encrypted to each backend, verified against the private CA and the backend's own name", () => {
    const app = section("backend app");
    expect(app.find((l) => l.startsWith("default-server "))).toContain(
      "ssl verify required ca-file /etc/webstack/tls/ca.crt",
    );
    // Each app node at its fixed address on 443, sent its own name as SNI, in checks too.
    // The whole line: nothing else (no `verify none`, no `backup`) may ride along.
    expect(app.filter((l) => l.startsWith("server "))).toEqual(
      BACKENDS.map(
        (b) =>
          `server ${b.name} ${b.address}:${PORTS.https} sni str(${b.fqdn}) check-sni ${b.fqdn} tcp-ut 2s`,
      ),
    );
    // Both active: no backup server.
    expect(CONFIG_LINES.join("\n")).not.toMatch(/\bbackup\b/);
  });

  test("safe retries: redispatch, retry-on, and no layer-7 retry of a non-idempotent request", () => {
    const defaults = section("defaults");
    expect(defaults).toEqual(
      expect.arrayContaining([
        "retries 2",
        "option redispatch 1",
        "retry-on conn-failure empty-response 503",
      ]),
    );
    expect(section("backend app")).toContain(
      "http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS",
    );
  });

  test("a slow answer gets the configured time; a vanished backend is noticed by TCP and the request retried", () => {
    const defaults = section("defaults");
    const timeout = (name: string) =>
      defaults.find((l) => l.startsWith(`timeout ${name} `))!.split(" ")[2];
    // The server (and client) timeout is the configured one: no short timeout stands in for
    // failure detection, and a response timeout is never retried (it would take twice as long).
    expect([timeout("connect"), timeout("server"), timeout("client"), timeout("check")]).toEqual([
      "500ms",
      "75s",
      "75s",
      "500ms",
    ]);
    // A request waiting for a server's free slot waits as long as for its answer, no less.
    expect(timeout("queue")).toBe("75s");
    // A connection the backend fell silent on: probed after 1 s idle; tcp-ut (below) bounds both
    // the probe and a request the backend never acknowledges to 2 s. The lab's fault tests hold a
    // cut link under 3 s with these.
    expect(defaults).toEqual(
      expect.arrayContaining([
        "option srvtcpka",
        "srvtcpka-idle 1s",
        "srvtcpka-intvl 1s",
        "retries 2",
        "option redispatch 1",
        "retry-on conn-failure empty-response 503",
        "option idle-close-on-response",
      ]),
    );
    expect(defaults.join("\n")).not.toMatch(/response-timeout/);
    const server = section("backend app").find((l) => l.startsWith("default-server "))!;
    expect(server).toContain("check inter 1s fastinter 250ms fall 2 rise 2 maxconn 10 ssl ");
    // tcp-ut on each server line: HAProxy drops it from default-server (no address family there).
    expect(server).not.toContain("tcp-ut");
    for (const line of section("backend app").filter((l) => l.startsWith("server ")))
      expect(line).toMatch(/ tcp-ut 2s$/);
    // In-flight requests on a server marked down are retried, not cut.
    expect(server).not.toContain("shutdown-sessions");
  });

  test("stats and the Prometheus endpoint on loopback only; logs through syslog to a file", () => {
    expect(section("frontend stats")).toEqual([
      "bind 127.0.0.1:8404",
      "maxconn 10",
      "http-request set-log-level silent",
      "http-request use-service prometheus-exporter if { path /metrics }",
      "stats enable",
      "stats uri /stats",
      "stats refresh 10s",
    ]);
    expect(CONFIG_LINES.filter((l) => l.startsWith("bind "))).toEqual([
      "bind :80",
      "bind :443 ssl crt /etc/haproxy/certs/site.pem alpn h2,http/1.1",
      "bind 127.0.0.1:8404",
    ]);
  });
});

test("HAProxy logs to rsyslog's own socket in its chroot, not to /dev/log (journald's there), written in batches", () => {
  // Debian's haproxy.service binds journald's /dev/log into the chroot: lines sent there are stored
  // twice and, past journald's rate limit, lost before rsyslog writes /var/log/haproxy.log.
  const chroot = section("global")
    .find((l) => l.startsWith("chroot "))!
    .split(" ")[1];
  const target = section("global").find((l) => l.startsWith("log "))!;
  expect(target).toBe("log /dev/webstack-log local0");
  const rsyslog = shippedFile("rsyslog-haproxy.conf");
  const socket = /^input\(type="imuxsock" socket="([^"]+)"/m.exec(rsyslog)?.[1];
  expect(socket).toBe(path.posix.join(chroot, target.split(" ")[1]));
  // Every line counts (the QPS metrics): no rate limit on that socket. Its lines go to their own
  // ruleset, which writes them to the file the CloudWatch agent and the metric filters read.
  expect(rsyslog).toMatch(
    /socket="[^"]+" createPath="on" rateLimit.interval="0" ruleset="webstack-haproxy"\)$/m,
  );
  const ruleset = /^ruleset\(name="webstack-haproxy" ([^)]*)\) \{\n(.*)\n\}$/m.exec(rsyslog);
  expect(ruleset?.[2].trim()).toBe(
    'action(type="omfile" file="/var/log/haproxy.log" template="webstack-message-only" fileCreateMode="0640" fileGroup="adm")',
  );
  // Batched: the writer sleeps 10 ms after each batch instead of waking for every line, and its
  // in-memory queue holds far more than a burst (past it, HAProxy counts what it drops).
  expect(ruleset?.[1]).toBe(
    'queue.type="FixedArray" queue.size="100000" queue.dequeueBatchSize="1024" queue.dequeueSlowdown="10000"',
  );
});

/**
 * The statuses HAProxy 3.0 answers itself and lets a config replace: its manual, under
 * `http-error`, "HAProxy is capable of generating codes 200, 400, 401, 403, 404, 405, 407, 408,
 * 410, 413, 425, 429, 500, 501, 502, 503, and 504"; 200 (the stats page) is no error.
 */
const HAPROXY_OWN_ERRORS = [
  400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504,
];

test("every error HAProxy can answer itself is JSON in the app's shape, with a generic message (issue 16)", () => {
  const answers = section("defaults")
    .filter((l) => l.startsWith("http-error "))
    .map((l) => {
      const m = l.match(
        /^http-error status (\d{3}) content-type application\/json string '([^']*)' hdr Cache-Control no-store$/,
      );
      expect(m).not.toBeNull();
      return { status: Number(m![1]), body: JSON.parse(m![2]) as Record<string, string> };
    });
  expect(answers.map((a) => a.status)).toEqual(HAPROXY_OWN_ERRORS);
  for (const { body } of answers) {
    expect(Object.keys(body)).toEqual(["node", "role", "error"]);
    expect(body).toMatchObject({ node: "lb", role: "loadbalancer" });
    // A few plain words: no address, no server's name, no detail.
    expect(body.error).toMatch(/^[a-z]+( [a-z]+)*$/);
  }
  const said = Object.fromEntries(answers.map((a) => [a.status, a.body.error]));
  expect(said).toMatchObject({
    400: "bad request",
    429: "too many requests",
    502: "the app is unavailable",
    503: "the app is unavailable",
    504: "the app did not answer in time",
  });
  // Nothing else replaces them (a section's own would win over the defaults').
  expect(CONFIG_LINES.filter((l) => /^(http-error|errorfiles?|errorloc\d*) /.test(l))).toHaveLength(
    HAPROXY_OWN_ERRORS.length,
  );
});

test("the JSON access log names the node, as the LB's metric filters select it", () => {
  const format = CONFIG_LINES.find((l) => l.startsWith("log-format "))!;
  expect(format).toContain(`{\\"node\\":\\"${TOPOLOGY.nodes.lb.name}\\",`);
});

test("the JSON access log stays JSON whatever HAProxy prints for each variable", () => {
  const format = JSON.parse(CONFIG_LINES.find((l) => l.startsWith("log-format "))!.slice(11));
  // What HAProxy may print for each (haproxy's configuration manual, "Custom log format"): the
  // aborted request's -1, a redispatch's "+1" (%rc), names with a "~" (an SSL frontend).
  const printed: Record<string, string[]> = {
    "%ft": ["https~"],
    // An answer HAProxy gave itself (a 429, a redirect) names the frontend as its backend.
    "%b": ["app", "https", "http"],
    "%s": ["s1", "<NOSRV>"],
    "%ST": ["200", "-1"],
    "%Ta": ["12", "-1"],
    "%Tw": ["0", "-1"],
    "%Tc": ["1", "-1"],
    "%Tr": ["5", "-1"],
    "%B": ["176", "0"],
    "%rc": ["0", "+1"],
    "%[txn.conn_retries]": ["0", "2"],
    "%[txn.redispatched]": ["0", "1"],
  };
  const variables = [...String(format).matchAll(/%\[[^\]]+\]|%\w+/g)].map((m) => m[0]);
  expect(variables.length).toBeGreaterThan(5);
  for (const variable of variables) {
    expect(Object.keys(printed)).toContain(variable);
    for (const value of printed[variable]) {
      const line = String(format)
        .replace(variable, value)
        .replace(/%\[[^\]]+\]|%\w+/g, "0");
      expect(() => JSON.parse(line)).not.toThrow();
    }
  }
});

describe("the per-client request limit (rateLimitPerClient)", () => {
  test("tracks each client address and answers 429 past the configured number, before any backend", () => {
    const https = section("frontend https");
    // Tracked first, judged at once: no rule before it can send the request on.
    expect(https.slice(1, 5)).toEqual([
      "maxconn 2240",
      "stick-table type ipv6 size 100k expire 30s store http_req_rate(10s)",
      "http-request track-sc0 src",
      RATE_LIMITED,
    ]);
    // Port 80 (redirects, ACME challenges) is not limited.
    expect(section("frontend http").join("\n")).not.toMatch(/track-sc|stick-table|429/);
  });

  test("a 429 logs the https frontend as its backend and status 429: what RateLimited counts", () => {
    expect(section(`frontend ${HTTPS_FRONTEND}`)).toContain(RATE_LIMITED);
    const format = CONFIG_LINES.find((l) => l.startsWith("log-format "))!.slice(11);
    // What HAProxy 3.0 prints for an answer it gave in a frontend: %b that frontend, %s <NOSRV>.
    const line = JSON.parse(
      JSON.parse(format)
        .replace("%b", HTTPS_FRONTEND)
        .replace("%s", "<NOSRV>")
        .replace("%ST", "429")
        .replace(/%\[[^\]]+\]|%\w+/g, "0"),
    );
    expect(line).toMatchObject({ status: 429, backend: "https", server: "<NOSRV>" });
  });

  test("the 429's body is JSON in the shape of the app's errors, naming the LB", () => {
    const body = /string '([^']*)'/.exec(RATE_LIMITED)![1];
    expect(JSON.parse(body)).toEqual({
      node: TOPOLOGY.nodes.lb.name,
      role: "loadbalancer",
      error: "too many requests",
    });
  });

  test.each([
    [1, "gt 1 }"],
    [1000, "gt 1000 }"],
    [1_000_000, "gt 1000000 }"],
  ])("%i requests per 10 s: the configured number is the threshold", (limit, threshold) => {
    const https = section("frontend https", linesOf({ ...PARAMS, rateLimitPerClient: limit }));
    expect(https.filter((l) => l.includes("status 429"))).toHaveLength(1);
    expect(https.find((l) => l.includes("status 429"))).toMatch(new RegExp(` ${threshold}$`));
  });

  test("0: no table, no tracking, no 429 anywhere", () => {
    const lines = linesOf({ ...PARAMS, rateLimitPerClient: 0 });
    // (The defaults' JSON answer for a 429 is HAProxy's own error page, not a limit.)
    const text = lines.filter((l) => !l.startsWith("#") && !l.startsWith("http-error ")).join("\n");
    expect(text).not.toMatch(/stick-table|track-sc|sc_http_req_rate|429|Retry-After/);
    expect(lines).toContain("# No per-client request limit (rateLimitPerClient 0).");
    // The rest of the frontend as with a limit.
    expect(section("frontend https", lines)).toEqual(
      section("frontend https").filter((l) => !/stick-table|track-sc|status 429/.test(l)),
    );
  });

  test.each([-1, 1.5, NaN])("%p is refused by the renderer", (limit) => {
    expect(() => renderHaproxyConfig({ ...PARAMS, rateLimitPerClient: limit })).toThrow(
      /per-client limit/,
    );
  });
});

describe("connection limits (maxconn) from the LB's memory", () => {
  test("global and per frontend, the frontends together within the global limit", () => {
    expect(section("global")).toContain("maxconn 2500");
    const frontends = ["frontend http", "frontend https", "frontend stats"].map((header) =>
      Number(
        section(header)
          .find((l) => l.startsWith("maxconn "))!
          .split(" ")[1],
      ),
    );
    expect(frontends).toEqual([250, 2240, 10]);
    expect(frontends.reduce((a, b) => a + b)).toBe(2500);
    // Nothing in defaults: each frontend states its own.
    expect(section("defaults").some((l) => l.startsWith("maxconn"))).toBe(false);
  });

  test.each([
    // [MiB, total, https, http]
    [512, 1250, 1115, 125],
    [1024, 2500, 2240, 250],
    [2048, 5000, 4490, 500],
    [8192, 20000, 17990, 2000],
    [15616, 38125, 34303, 3812],
    [524288, 100000, 89990, 10000],
  ])("%i MiB: %i connections, %i on 443, %i on 80, 10 for stats", (mib, total, https, http) => {
    expect(lbConnectionLimits(mib)).toEqual({ total, https, http, stats: 10 });
  });

  test.each([0, 100, 1024.5])("%p MiB is no LB's memory", (mib) => {
    expect(() => lbConnectionLimits(mib)).toThrow(/memory/);
  });
});

describe("a busy app node is not a dead one: at most twice its workers in flight, the rest queued", () => {
  test("maxconn on every server (default-server): twice the node's Gunicorn workers", () => {
    const server = section("backend app").find((l) => l.startsWith("default-server "))!;
    expect(server.split(" ")).toEqual(expect.arrayContaining(["maxconn", "10"]));
    // The per-server limit is the only one in the backend: no backend-wide fullconn or maxqueue.
    expect(section("backend app").filter((l) => /\b(maxqueue|fullconn|minconn)\b/.test(l))).toEqual(
      [],
    );
  });

  test.each([
    // [vCPUs, workers, per-server limit]
    [1, 3, 6],
    [2, 5, 10],
    [8, 17, 34],
    [72, 145, 290],
  ])("%i vCPUs: %i Gunicorn workers, %i requests per server", (vcpus, workers, maxconn) => {
    expect(gunicornWorkers(vcpus)).toBe(workers);
    expect(lbServerMaxconn(workers)).toBe(maxconn);
  });

  test.each([0, -2, 1.5, NaN])("%p is refused as vCPUs, workers and a per-server limit", (n) => {
    expect(() => gunicornWorkers(n)).toThrow(/vCPUs/);
    expect(() => lbServerMaxconn(n)).toThrow(/workers/);
    expect(() => renderHaproxyConfig({ ...PARAMS, serverMaxconn: n })).toThrow(/per-server limit/);
  });
});
