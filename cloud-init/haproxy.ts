// The HAProxy config of the load balancer: a pure function of the backends, the domain and the ports.
import { PORTS } from "../model/topology";
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
  return renderShipped("haproxy.cfg", {
    NODE: p.node,
    DOMAIN: p.domain,
    CA_FILE: p.caFile,
    CERT_FILE: p.certFile,
    CERTBOT_PORT: p.certbotPort,
    STATS_PORT: p.statsPort,
    SERVER_TIMEOUT: p.serverTimeoutSeconds,
    SERVERS: p.backends.map(renderServerLine).join("\n"),
  });
}
