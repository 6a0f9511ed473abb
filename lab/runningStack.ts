// What the lab, its tests and the bench do to the running stack, as a user or an operator would.
import { LB_NODE, LOOPBACK_PORTS, NodeName } from "../model/topology";
import { LabError } from "./commands";
import { INTERNET_NS, LAB_DOMAIN } from "./labPlan";
import { ACME_ROOT } from "./labState";
import { inNamespace, runIn } from "./namespaces";
import { execInNode, inNode, startInNode } from "./nodes";

/** The certificate the LB serves, as a client in the internet namespace sees it (issuer; serial too). */
export function servedCertificate(withSerial = false): string {
  const r = inNamespace(
    INTERNET_NS,
    [
      "bash",
      "-c",
      `openssl s_client -connect ${LAB_DOMAIN}:443 -servername ${LAB_DOMAIN} </dev/null 2>/dev/null | openssl x509 -noout -issuer${withSerial ? " -serial" : ""}`,
    ],
    { timeout: 15_000 },
  );
  return (r.stdout ?? "").trim() || "(none)";
}

/**
 * curl to the site through the LB from the client namespace, trusting Pebble's root (as a user
 * trusts a public CA): its output. `failOnError` makes an HTTP error status a failure (`-f`).
 */
function curlThroughLb(urlPath: string, failOnError: boolean, ...requestOptions: string[]): string {
  return runIn(INTERNET_NS, "curl", [
    failOnError ? "-fsS" : "-sS",
    "--max-time",
    "10",
    "--cacert",
    ACME_ROOT,
    ...requestOptions,
    `https://${LAB_DOMAIN}${urlPath}`,
  ]);
}

/** Items written through the LB from the client namespace, as a user would; returns their ids. */
export function writeItems(count: number, tag: string): number[] {
  return Array.from({ length: count }, (_, i) => {
    const r = curlThroughLb("/items", false, "-X", "POST", "--data", `${tag}-${i}`);
    const id = (JSON.parse(r) as { id?: unknown }).id;
    if (typeof id !== "number") throw new LabError(`a write through the LB was not made: ${r}`);
    return id;
  });
}

/** A GET through the LB from the client namespace, as a user would: the answer's JSON. */
export function getThroughLb(path: string): Record<string, unknown> {
  return JSON.parse(curlThroughLb(path, true)) as Record<string, unknown>;
}

/** A GET to a node's app itself, over Gunicorn's socket: that node's release answers. */
export function getFromApp(node: NodeName, path: string): Record<string, unknown> {
  const r = inNode(node, [
    "curl",
    "-fsS",
    "--max-time",
    "10",
    "--unix-socket",
    "/run/webstack/app.sock",
    `http://${node}${path}`,
  ]);
  return JSON.parse(r) as Record<string, unknown>;
}

/** Each backend's state in HAProxy's own stats on the LB: {s1: "UP", s2: "DOWN 1/2", …}. */
export function backendStates(): Record<string, string> {
  const csv = inNode(LB_NODE, [
    "curl",
    "-s",
    `http://127.0.0.1:${LOOPBACK_PORTS.haproxyStats}/stats;csv`,
  ]);
  const [header, ...rows] = csv.trim().split("\n");
  const columns = header.replace(/^# /, "").split(",");
  const status = columns.indexOf("status");
  return Object.fromEntries(
    rows
      .map((row) => row.split(","))
      .filter((cells) => cells[0] === "app" && cells[1] !== "BACKEND")
      .map((cells) => [cells[1], cells[status]]),
  );
}

/** HAProxy's config on the LB replaced (validated first), then HAProxy reloaded. */
export function reloadHaproxy(config: string): void {
  const r = execInNode(
    LB_NODE,
    [
      "sh",
      "-c",
      "cat > /etc/haproxy/haproxy.cfg && haproxy -c -q -f /etc/haproxy/haproxy.cfg && systemctl reload haproxy",
    ],
    config,
  );
  if (r.status !== 0) throw new LabError(`HAProxy reload failed: ${r.stderr}${r.stdout}`);
}

/** A query as root on a node's database; its tab-separated rows, without headers. */
export const nodeSql = (node: NodeName, query: string) =>
  inNode(node, ["mariadb", "--batch", "--skip-column-names", "webstack", "-e", query]).trim();

/**
 * Holds a write lock on the app's table on a node's database for `seconds`, as a long transaction
 * would: statements on the table wait for it. Resolves once the lock is released.
 */
export async function holdTableLock(node: NodeName, seconds: number): Promise<void> {
  const { status, output } = await startInNode(
    node,
    ["mariadb", "webstack", "-e", `LOCK TABLES items WRITE; DO SLEEP(${seconds}); UNLOCK TABLES;`],
    (seconds + 30) * 1000,
  );
  if (status !== 0) throw new LabError(`${node}: holding the table lock failed: ${output}`);
}

/** certbot's forced renewal on the LB: through Pebble, then the deploy hook reloads HAProxy. */
export const forceRenewal = () =>
  execInNode(LB_NODE, [
    "certbot",
    "renew",
    "--cert-name",
    "webstack",
    "--force-renewal",
    "--no-random-sleep-on-renew",
  ]);
