// How long a request may take and how large it may be, at each layer that handles it: HAProxy,
// Nginx, Gunicorn and the app. One configured value sets every layer, innermost first, so the
// layer closest to the cause gives up first and answers in JSON naming the node.
import type { DatabaseMode } from "./topology";

/** The smallest configurable LB server timeout: the app keeps two seconds of it for its database. */
export const MIN_LB_SERVER_TIMEOUT_SECONDS = 5;

/** The seconds each layer gives one request. */
export interface RequestTimeouts {
  /** HAProxy's `timeout server` and `timeout client`: the configured value. */
  readonly lbServerSeconds: number;
  /** Nginx's `proxy_read_timeout`: one second earlier, so Nginx's JSON 504 reaches the client. */
  readonly nginxReadSeconds: number;
  /**
   * Gunicorn's worker `timeout`: a sync worker silent this long (its request included) is killed
   * and replaced; by then HAProxy has given up on the request.
   */
  readonly gunicornWorkerSeconds: number;
  /**
   * The longest the app waits for its primary database (a statement, a write waiting out a
   * restart): two seconds before HAProxy gives up, so the app answers its own 503.
   */
  readonly appDatabaseSeconds: number;
}

/**
 * Refuses a value that is not a whole number from `min`, e.g. "an app node's vCPUs are a whole
 * number from 1: 0.5" (`subject` carries its verb; `unit`, if any, reads "a whole number of …").
 */
export function requireWholeFrom(subject: string, value: number, min: number, unit?: string): void {
  if (!Number.isInteger(value) || value < min)
    throw new Error(`${subject} a whole number ${unit ? `of ${unit} ` : ""}from ${min}: ${value}`);
}

export function requestTimeouts(lbServerSeconds: number): RequestTimeouts {
  requireWholeFrom(
    "an LB server timeout is",
    lbServerSeconds,
    MIN_LB_SERVER_TIMEOUT_SECONDS,
    "seconds",
  );
  return {
    lbServerSeconds,
    nginxReadSeconds: lbServerSeconds - 1,
    gunicornWorkerSeconds: lbServerSeconds,
    appDatabaseSeconds: lbServerSeconds - 2,
  };
}

/** What one request may take and carry, as every layer is configured. */
export interface RequestLimits {
  readonly timeouts: RequestTimeouts;
  /** The largest request body Nginx accepts (`client_max_body_size`); larger gets a JSON 413. */
  readonly maxBodyMiB: number;
}

/**
 * The window of the LB's per-client request limit (`rateLimitPerClient` requests per window): long
 * enough to let a page's burst of requests through, short enough to stop a flood within seconds.
 */
export const RATE_LIMIT_WINDOW_SECONDS = 10;

/** The highest per-client limit the config accepts: far above what one client sends the LB. */
export const MAX_RATE_LIMIT_PER_CLIENT = 1_000_000;

/**
 * The Retry-After of a refused request. HAProxy's rate over the window is this window's count plus
 * the last one's, weighted by the share of this window still to come: a client silent for one
 * window may still count as over its limit (a burst at the start of the last one), silent for two
 * it counts nothing.
 */
export const RATE_LIMIT_RETRY_AFTER_SECONDS = 2 * RATE_LIMIT_WINDOW_SECONDS;

/** How many connections HAProxy holds at once on the LB: in all, and per frontend. */
export interface LbConnectionLimits {
  /** The global `maxconn`: every frontend's connections together. */
  readonly total: number;
  /** Port 443, the site. */
  readonly https: number;
  /** Port 80: redirects to HTTPS and ACME challenges only. */
  readonly http: number;
  /** The stats page and Prometheus endpoint on loopback (the collector, the health check, Datadog). */
  readonly stats: number;
}

/**
 * HAProxy's own figure: about 5000 concurrent TLS connections per GB of RAM with TLS on both sides,
 * the memory for the kernel's buffers included (its manual, intro.txt, "3.6. Sizing").
 */
const TLS_CONNECTIONS_PER_GIB = 5000;
/**
 * Above 100000 connections one LB is the wrong design anyway; the cap keeps HAProxy's file
 * descriptors (two per connection) far below the kernel's per-process ceiling (fs.nr_open, 1048576).
 */
const MAX_LB_CONNECTIONS = 100_000;
const STATS_CONNECTIONS = 10;

/**
 * The LB's connection limits from its memory: HAProxy gets half of it (the rest is the OS, rsyslog,
 * the agents, the applier's watcher and the collector (about 70 and 60 MB) and certbot), at
 * HAProxy's figure per GiB: 2500 connections on a t3.micro (1 GiB),
 * 20000 on an m7i.large (8 GiB). Past the limit the kernel queues new connections (the listen
 * backlog) instead of HAProxy running out of memory. Port 80 gets a tenth, and the frontends
 * together no more than the total, so a flood on one port cannot take the other's connections.
 */
export function lbConnectionLimits(memoryMiB: number): LbConnectionLimits {
  requireWholeFrom("an LB's memory is", memoryMiB, 256, "MiB");
  const total = Math.min(
    MAX_LB_CONNECTIONS,
    Math.floor(((memoryMiB / 2) * TLS_CONNECTIONS_PER_GIB) / 1024),
  );
  const http = Math.floor(total / 10);
  return { total, https: total - http - STATS_CONNECTIONS, http, stats: STATS_CONNECTIONS };
}

/**
 * How long HAProxy waits for a health check's answer once connected, in ms. A vanished backend is
 * noticed by the check's connect timeout (500 ms) whatever this is, a failing one by its answer.
 * With `galera` a member's loss stalls the survivor's commits until the group evicts it (Galera's
 * evs.suspect_timeout, 5 s, and the view change: ~6.5 s measured in the lab): the survivor's
 * workers wait on those commits and its checks queue behind them, so a check waits past that
 * rather than mark the only member left down. The cost: an app that hangs is out after two such
 * checks (~20 s) instead of ~1.5 s.
 */
export function healthCheckTimeoutMs(database: DatabaseMode): number {
  return database === "galera" ? 10_000 : 500;
}

/**
 * Gunicorn's sync workers on an app node with this many vCPUs: Gunicorn's own advice, 2 × cores
 * + 1, so a worker waiting on the database or a client leaves the CPUs busy. Rendered from EC2's
 * count for the configured type (VCpuInfo.DefaultVCpus), not worked out on the node, so the LB's
 * per-server limit (lbServerMaxconn) follows the same number: 5 on a t3.small.
 */
export function gunicornWorkers(vcpus: number): number {
  requireWholeFrom("an app node's vCPUs are", vcpus, 1);
  return 2 * vcpus + 1;
}

/**
 * How many requests HAProxy sends one app node at once (`maxconn` on each server): twice its
 * Gunicorn workers, so each worker has the next request waiting in Nginx while it answers one (a
 * worker idles while its answer travels back: one request per worker cost the lab's database read
 * a fifth of its rate). The rest wait in HAProxy's queue, not on a node that is busy: unlimited, a
 * saturated node's health checks queued behind hundreds of requests, timed out, and HAProxy marked
 * both nodes down and answered 503 to everyone (measured in the lab at 160 requests in flight).
 */
export function lbServerMaxconn(workers: number): number {
  requireWholeFrom("an app node's workers are", workers, 1);
  return 2 * workers;
}
