// The HAProxy config of the load balancer: a pure function of the backends, the domain, the ports
// and the limits.
import {
  LbConnectionLimits,
  RATE_LIMIT_RETRY_AFTER_SECONDS,
  RATE_LIMIT_WINDOW_SECONDS,
  requireWholeFrom,
} from "../model/limits";
import { PORTS } from "../model/topology";
import { ERROR_MESSAGES, jsonErrorBody } from "./jsonErrors";
import { renderShipped } from "./template";

export interface HaproxyBackend {
  /** Server name in HAProxy (the node's name). */
  readonly name: string;
  readonly address: string;
  /** The name its certificate carries: sent as SNI and checked. */
  readonly fqdn: string;
}

export interface HaproxyParams {
  /** The LB's node name, as its JSON access log states it (the metric filters count by it). */
  readonly node: string;
  /** The LB's role, as its own JSON errors state it (the app nodes' errors name theirs). */
  readonly role: string;
  readonly domain: string;
  readonly backends: readonly HaproxyBackend[];
  /** The private CA that issued the backends' certificates. */
  readonly caFile: string;
  /** The public certificate and key, one PEM. */
  readonly certFile: string;
  /** Local port certbot answers ACME challenges on. */
  readonly certbotPort: number;
  /** Loopback port of the stats page and the Prometheus endpoint (/metrics). */
  readonly statsPort: number;
  /** How long HAProxy waits for a backend's answer (and for a client), in seconds. */
  readonly serverTimeoutSeconds: number;
  /** How long a health check may take once connected, in ms (healthCheckTimeoutMs). */
  readonly checkTimeoutMs: number;
  /** Requests one client address may send per RATE_LIMIT_WINDOW_SECONDS; 0: no per-client limit. */
  readonly rateLimitPerClient: number;
  /** Connections HAProxy holds at once, in all and per frontend. */
  readonly connections: LbConnectionLimits;
  /** Requests sent to one server at once (lbServerMaxconn); the rest wait in HAProxy's queue. */
  readonly serverMaxconn: number;
}

/**
 * The name of the HTTPS frontend (haproxy.cfg): an answer HAProxy gives there itself, such as the
 * per-client limit's 429, logs it as its backend.
 */
export const HTTPS_FRONTEND = "https";

/** What the LB's 429 says, in the shape of the app's and Nginx's JSON errors. */
export const RATE_LIMITED_ERROR = ERROR_MESSAGES[429];

/**
 * The statuses HAProxy 3.0 answers itself and lets a config replace (its manual, `http-error`),
 * 200 (the stats page) aside: each answers in JSON.
 */
const HAPROXY_OWN_ERRORS: readonly number[] = [
  400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504,
];

/**
 * The arguments of an answer HAProxy gives itself, as JSON in the app's shape: its body and
 * headers, `Cache-Control: no-store` last.
 */
function jsonAnswer(
  p: Pick<HaproxyParams, "node" | "role">,
  status: number,
  headers: readonly (readonly [string, string | number])[] = [],
): string {
  const body = jsonErrorBody(p.node, p.role, status);
  // Inside '…' HAProxy takes every character as it is: a body must hold no quote of that kind.
  if (body.includes("'")) throw new Error(`HAProxy's ${status} body cannot be quoted: ${body}`);
  const hdrs = [...headers, ["Cache-Control", "no-store"] as const];
  return [
    `content-type application/json string '${body}'`,
    ...hdrs.map(([name, value]) => `hdr ${name} ${value}`),
  ].join(" ");
}

/**
 * HAProxy's own answers in JSON, for every section: a request no server took (503), a server's
 * invalid or missing answer (502, 504), a request body it cannot parse (400) … Not what its
 * connection layer answers while it reads a request's head (a malformed request line or header,
 * a head still incomplete after `timeout http-request`): there HAProxy 3.0 sends its built-in
 * HTML 400 or 408, which no http-error or errorfile reaches (the manual's note under http-error;
 * seen with the nodes' 3.0.11).
 */
function renderJsonErrors(p: Pick<HaproxyParams, "node" | "role">): string {
  return HAPROXY_OWN_ERRORS.map(
    (status) => `    http-error status ${status} ${jsonAnswer(p, status)}`,
  ).join("\n");
}

/**
 * The per-client request limit of the HTTPS frontend: each client address tracked in a stick
 * table, and past the limit a JSON 429 answered by HAProxy itself, before any backend sees it. The
 * request being judged counts: the limit is the number of requests still served per window.
 *
 * - `type ipv6`: IPv4 clients are kept as IPv4-mapped addresses, so one table holds both.
 * - `size 100k`: about 70 bytes each (HAProxy's 60 per ipv6 entry, 12 for the rate), 7 MiB at most;
 *   past 100k addresses within the expiry the oldest entries go, and their clients start afresh.
 * - `expire 30s` after an address's last request: longer than the two windows its rate spans.
 */
function renderRateLimit(p: Pick<HaproxyParams, "node" | "role" | "rateLimitPerClient">): string {
  requireWholeFrom("a per-client limit is", p.rateLimitPerClient, 0);
  if (p.rateLimitPerClient === 0)
    return "    # No per-client request limit (rateLimitPerClient 0).";
  const answer = jsonAnswer(p, 429, [["Retry-After", RATE_LIMIT_RETRY_AFTER_SECONDS]]);
  return [
    `    # At most ${p.rateLimitPerClient} requests per client address per ${RATE_LIMIT_WINDOW_SECONDS} s (rateLimitPerClient).`,
    `    stick-table type ipv6 size 100k expire 30s store http_req_rate(${RATE_LIMIT_WINDOW_SECONDS}s)`,
    "    http-request track-sc0 src",
    `    http-request return status 429 ${answer} if { sc_http_req_rate(0) gt ${p.rateLimitPerClient} }`,
  ].join("\n");
}

/**
 * `verify required` + `ca-file` alone would accept any certificate from the private CA: `sni`
 * makes HAProxy check the name the backend presents, and `check-sni` does the same for checks.
 * `tcp-ut` (TCP_USER_TIMEOUT) gives up on a connection whose data or keep-alive probe the backend
 * has not acknowledged for 2 s: a vanished backend, never a slow one. It must sit on each server
 * line: HAProxy ignores it on `default-server`, which has no address family yet.
 */
export function renderServerLine(b: HaproxyBackend): string {
  return `    server ${b.name} ${b.address}:${PORTS.https} sni str(${b.fqdn}) check-sni ${b.fqdn} tcp-ut 2s`;
}

export function renderHaproxyConfig(p: HaproxyParams): string {
  requireWholeFrom("a per-server limit is", p.serverMaxconn, 1);
  return renderShipped("haproxy.cfg", {
    NODE: p.node,
    MAXCONN: p.connections.total,
    HTTP_MAXCONN: p.connections.http,
    HTTPS_MAXCONN: p.connections.https,
    STATS_MAXCONN: p.connections.stats,
    SERVER_MAXCONN: p.serverMaxconn,
    RATE_LIMIT: renderRateLimit(p),
    JSON_ERRORS: renderJsonErrors(p),
    DOMAIN: p.domain,
    CA_FILE: p.caFile,
    CERT_FILE: p.certFile,
    CERTBOT_PORT: p.certbotPort,
    STATS_PORT: p.statsPort,
    SERVER_TIMEOUT: p.serverTimeoutSeconds,
    CHECK_TIMEOUT:
      p.checkTimeoutMs % 1000 === 0 ? `${p.checkTimeoutMs / 1000}s` : `${p.checkTimeoutMs}ms`,
    SERVERS: p.backends.map(renderServerLine).join("\n"),
  });
}
