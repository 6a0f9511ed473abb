// What the lab tests probe on a booted lab, always from inside a lab namespace, and what they expect.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { logPath } from "../cloud-init/logSources";
import { NODE_CERT_PATH, NODE_KEY_PATH } from "../cloud-init/nodeFiles";
import { PYTHON, waitFor } from "../lab/commands";
import {
  INTERNET_NS,
  LAB_DOMAIN,
  LAB_TOPOLOGY,
  LabNetwork,
  labNetwork,
  nodeNamespace,
} from "../lab/labPlan";
import { accessKeyId } from "../lab/internet";
import { ACME_ROOT, readState, STATE_DIR } from "../lab/labState";
import { inNamespace } from "../lab/namespaces";
import { execInNode, inNode } from "../lab/nodes";
import { admits, admitsOut, FLOWS, Flow, LB_NODE, nodeRole, NodeName } from "../model/topology";
import { PROJECT_DIR, selfSignedCertificate } from "./harness";

/** The lab's own addresses: the program's topology for the lab's VPC range. */
export const TOPOLOGY = LAB_TOPOLOGY;
export const NETWORK = labNetwork(TOPOLOGY);

/** A request from the client namespace: every lab connection starts inside a lab namespace. */
export function fromClient(...args: string[]) {
  return inNamespace(INTERNET_NS, ["curl", "-sS", "--max-time", "10", ...args]);
}

/** A GET through the LB over HTTPS, trusting Pebble's root (as a user trusts a public CA). */
export const getThroughLb = (urlPath = "/", ...curlOptions: string[]) =>
  fromClient(...curlOptions, "--cacert", ACME_ROOT, `https://${LAB_DOMAIN}${urlPath}`);

/** A request through the LB: its status, its body parsed as JSON and how long it took (curl's measure). */
export function timedThroughLb(urlPath: string, ...curlOptions: string[]) {
  const r = getThroughLb(urlPath, "-o", "-", "-w", "\n%{http_code} %{time_total}", ...curlOptions);
  const lines = r.stdout.trimEnd().split("\n");
  const [status, seconds] = lines.pop()!.split(" ").map(Number);
  const text = lines.join("\n");
  let body: Record<string, unknown> | string;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = text; // not JSON: kept as text for the failure message
  }
  return { status, seconds, body, stderr: r.stderr };
}

/** The backend that answered a request for the site's root through the LB. */
export const answeringNode = () => (JSON.parse(getThroughLb().stdout) as { node: string }).node;

/** Requests for the site's root (`GET /`) the app nodes' Nginx answered, by their access logs. */
export function rootRequestsServed(): number {
  return TOPOLOGY.appNodes.reduce((sum, node) => {
    const log = logPath(nodeRole(node), "nginx-access");
    // grep -c exits 1 when it counts 0: its count is the answer either way.
    const r = execInNode(node, ["grep", "-c", '"uri":"/",', log]);
    if (r.status !== 0 && r.status !== 1) throw new Error(`${node}: grep ${log}: ${r.stderr}`);
    return sum + Number(r.stdout.trim());
  }, 0);
}

/** The LB's access-log entries (its JSON lines) for answers of one status, oldest first. */
export function lbLogEntries(status: number): Record<string, unknown>[] {
  const log = logPath(nodeRole(LB_NODE), "haproxy");
  const r = execInNode(LB_NODE, ["grep", "-h", `"status":${status},`, log]);
  if (r.status !== 0 && r.status !== 1) throw new Error(`lb: grep ${log}: ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line.slice(line.indexOf("{"))) as Record<string, unknown>);
}

/**
 * A POST through the LB whose chunked body HAProxy cannot parse, from the client namespace over
 * HTTPS (HTTP/1.1): the head first, the broken chunk a second later, when HAProxy has passed the
 * head on and judges the body itself. Its answer: status, headers (lower-case names) and body.
 */
export function unparsableBodyThroughLb() {
  const script = [
    "import socket, ssl, sys, time",
    "host, cafile = sys.argv[1], sys.argv[2]",
    "tls = ssl.create_default_context(cafile=cafile).wrap_socket(",
    "    socket.create_connection((host, 443), timeout=10), server_hostname=host)",
    "tls.sendall(f'POST / HTTP/1.1\\r\\nHost: {host}\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n'.encode())",
    "time.sleep(1)",
    "tls.sendall(b'not-a-chunk-size\\r\\n\\r\\n')",
    "answer = b''",
    "try:",
    "    while chunk := tls.recv(65536):",
    "        answer += chunk",
    "except TimeoutError:",
    "    pass",
    "sys.stdout.write(answer.decode('latin-1'))",
  ].join("\n");
  const r = inNamespace(INTERNET_NS, [PYTHON, "-c", script, LAB_DOMAIN, ACME_ROOT], {
    timeout: 20_000,
  });
  if (r.status !== 0) throw new Error(`the unparsable POST failed: ${r.stderr}`);
  const [head, ...body] = r.stdout.split("\r\n\r\n");
  const [statusLine, ...headerLines] = head.split("\r\n");
  return {
    status: Number(statusLine.split(" ")[1]),
    headers: Object.fromEntries(
      headerLines.map((l) => [
        l.slice(0, l.indexOf(":")).toLowerCase(),
        l.slice(l.indexOf(":") + 1).trim(),
      ]),
    ),
    body: body.join("\r\n\r\n"),
  };
}

/** The host's route for a range ("" when there is none). */
export const hostRoute = (range: string) =>
  spawnSync("ip", ["route", "show", range], { encoding: "utf8" }).stdout;

/** A TLS handshake at one protocol version, from a client willing to speak it. */
export function handshake(version: string) {
  return inNamespace(
    INTERNET_NS,
    [
      "openssl",
      "s_client",
      "-connect",
      `${LAB_DOMAIN}:443`,
      "-servername",
      LAB_DOMAIN,
      `-${version}`,
      "-cipher",
      "DEFAULT@SECLEVEL=0",
    ],
    { input: "", timeout: 15_000 },
  );
}

/** How many HTTP-01 validations Pebble attempted through the LB's ACME challenge path. */
export const pebbleValidations = () =>
  fs
    .readFileSync(path.join(STATE_DIR, "logs", "pebble.log"), "utf8")
    .split("\n")
    .filter((l) =>
      l.includes(
        `Attempting to validate w/ HTTP: http://${LAB_DOMAIN}:80/.well-known/acme-challenge/`,
      ),
    ).length;

/**
 * A bounded client loop (at most 600 requests, 120 s) from the client namespace, requesting the
 * site through the LB until `stop()`; `stop()` resolves to how many requests were answered or failed.
 */
export function requestLoop(): { stop(): Promise<{ ok: number; failed: number }> } {
  const stopFile = path.join(STATE_DIR, "client-stop");
  const loop = spawn(
    "ip",
    [
      "netns",
      "exec",
      INTERNET_NS,
      "bash",
      "-c",
      `ok=0; failed=0; for i in $(seq 600); do [ -e ${stopFile} ] && break; ` +
        `if curl -sS -o /dev/null --max-time 5 --cacert ${ACME_ROOT} https://${LAB_DOMAIN}/; then ok=$((ok+1)); else failed=$((failed+1)); fi; done; echo "$ok $failed"`,
    ],
    { stdio: ["ignore", "pipe", "inherit"], timeout: 120_000 },
  );
  let counts = "";
  loop.stdout.on("data", (d) => (counts += String(d)));
  const done = new Promise((resolve) => loop.on("exit", resolve));
  return {
    async stop() {
      fs.writeFileSync(stopFile, "");
      await done;
      const [ok, failed] = counts.trim().split(" ").map(Number);
      return { ok, failed };
    },
  };
}

interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

/** A self-signed certificate for s1's own name and address: right name, foreign CA. */
export function foreignCertificate(): KeyPair {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-foreign-"));
  try {
    const s1 = TOPOLOGY.nodes.s1;
    const made = selfSignedCertificate(
      dir,
      s1.internalName,
      `DNS:${s1.internalName},IP:${s1.privateIp}`,
    );
    return {
      cert: fs.readFileSync(made.certFile, "utf8"),
      key: fs.readFileSync(made.keyFile, "utf8"),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The certificate and key a node's Nginx serves to the LB. */
export const nodeCertificate = (node: NodeName): KeyPair => ({
  cert: inNode(node, ["cat", NODE_CERT_PATH]),
  key: inNode(node, ["cat", NODE_KEY_PATH]),
});

/** s1's Nginx made to serve another certificate and key (reloaded). */
export function replaceS1Certificate({ cert, key }: KeyPair): void {
  expect(execInNode("s1", ["sh", "-c", `cat > ${NODE_CERT_PATH}`], cert).status).toBe(0);
  expect(execInNode("s1", ["sh", "-c", `cat > ${NODE_KEY_PATH}`], key).status).toBe(0);
  inNode("s1", ["systemctl", "reload", "nginx"]);
}

/** A row written through the app, which must say it wrote to the primary; its id. */
export function writeThroughApp(note: string): number {
  const r = fromClient(
    "-X",
    "POST",
    "--data",
    note,
    "--cacert",
    ACME_ROOT,
    `https://${LAB_DOMAIN}/items`,
  );
  const body = JSON.parse(r.stdout) as { id: number; written_to: string };
  expect(body.written_to).toBe("primary");
  return body.id;
}

/** A row's note on a node's database, or "" while the database does not answer. */
export const noteOn = (node: NodeName, id: number) =>
  execInNode(node, [
    "mariadb",
    "-N",
    "webstack",
    "-e",
    `SELECT note FROM items WHERE id = ${id}`,
  ]).stdout.trim();

/** An INSERT as the application's database user on a node (its exit status and errors). */
export const insertAsApp = (node: NodeName) =>
  execInNode(node, [
    "sh",
    "-c",
    'mariadb --user=app --password="$(cat /etc/webstack/secrets/db-app-password)" webstack ' +
      "-e \"INSERT INTO items (note, written_by) VALUES ('read-only probe', 'lab')\"",
  ]);

export interface Listener {
  readonly protocol: string;
  readonly address: string;
  readonly port: number;
}

/** Every listening TCP and UDP socket in a node's network namespace. */
export function listeners(node: NodeName): Listener[] {
  const r = inNamespace(nodeNamespace(node), ["ss", "-H", "-t", "-u", "-l", "-n"]);
  expect(r.status).toBe(0);
  return r.stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [protocol, , , , local] = line.split(/\s+/);
      const at = local.lastIndexOf(":");
      return { protocol, address: local.slice(0, at), port: Number(local.slice(at + 1)) };
    });
}

export const onLoopback = (l: Listener) =>
  /^(127\.|\[::1\]|\[::ffff:127\.)/.test(l.address) || l.address.endsWith("%lo");

/**
 * A TCP connection from every namespace to every other node on each port ("open" or "filtered",
 * keyed "source -> node:port"), and what the stack's flows say each should be: admitted, "open"
 * ("closed", the node's reset, for the `idle` ports: a service that listens only at times, such
 * as Galera's state transfers); not admitted, "filtered".
 */
export function firewallMatrix(
  ports: ReadonlySet<number>,
  flows: readonly Flow[] = FLOWS,
  idle: ReadonlySet<number> = new Set(),
  network: LabNetwork = NETWORK,
): {
  actual: Record<string, string>;
  expected: Record<string, string>;
} {
  const probe = path.join(PROJECT_DIR, "lab", "connect-probe.py");
  const sources: (NodeName | "internet")[] = ["internet", ...network.nodeNames];
  const expected: Record<string, string> = {};
  const actual: Record<string, string> = {};
  for (const source of sources) {
    const targets = network.nodeNames
      .filter((n) => n !== source)
      .flatMap((node) => [...ports].map((port) => `${network.nodes[node]}:${port}`));
    const r =
      source === "internet"
        ? inNamespace(INTERNET_NS, [PYTHON, probe, "--source", network.client, ...targets])
        : inNamespace(nodeNamespace(source), [PYTHON, probe, ...targets]);
    expect(r.stderr).toBe("");
    for (const line of r.stdout.trim().split("\n")) {
      const [target, state] = line.split(" ");
      const [address, port] = target.split(":");
      const node = network.nodeNames.find((n) => network.nodes[n] === address)!;
      const key = `${source} -> ${node}:${port}`;
      actual[key] = state;
      expected[key] = admits(source, node, Number(port), flows)
        ? idle.has(Number(port))
          ? "closed"
          : "open"
        : "filtered";
    }
  }
  return { actual, expected };
}

/** The internet's services a node may try to reach, by name: each at its own address. */
export const INTERNET_SERVICES = {
  mirror: NETWORK.mirror,
  ssm: NETWORK.ssm,
  s3: NETWORK.s3,
  cloudwatch: NETWORK.cloudwatch,
  pebble: NETWORK.pebble,
} as const;

/** The TCP ports listening on the internet namespace's addresses, as "address:port". */
function internetListeners(): Set<string> {
  const r = inNamespace(INTERNET_NS, ["ss", "-Hltn"]);
  expect(r.stderr).toBe("");
  // "LISTEN 0 128 10.41.0.80:443 0.0.0.0:*": the fourth column.
  return new Set(
    r.stdout
      .trim()
      .split("\n")
      .map((line) => line.split(/\s+/)[3]),
  );
}

/**
 * The egress matrix: from each node to each of the internet's services on each port, what the
 * node's security group lets out. Allowed and listening: open; allowed, nothing listening: closed
 * (the stand-in's reset reached the node); not allowed: filtered.
 */
export function egressMatrix(ports: ReadonlySet<number>): {
  actual: Record<string, string>;
  expected: Record<string, string>;
} {
  const probe = path.join(PROJECT_DIR, "lab", "connect-probe.py");
  const listening = internetListeners();
  const expected: Record<string, string> = {};
  const actual: Record<string, string> = {};
  const services = Object.entries(INTERNET_SERVICES);
  for (const node of NETWORK.nodeNames) {
    const targets = services.flatMap(([, address]) => [...ports].map((p) => `${address}:${p}`));
    const r = inNamespace(nodeNamespace(node), [PYTHON, probe, ...targets]);
    expect(r.stderr).toBe("");
    for (const line of r.stdout.trim().split("\n")) {
      const [target, state] = line.split(" ");
      const [address, port] = target.split(":");
      const [service] = services.find(([, a]) => a === address)!;
      const key = `${node} -> ${service}:${port}`;
      actual[key] = state;
      expected[key] = !admitsOut(node, Number(port))
        ? "filtered"
        : listening.has(target)
          ? "open"
          : "closed";
    }
  }
  return { actual, expected };
}

/** The processes the running lab recorded in its state file. */
export const recordedProcesses = () => readState()?.processes ?? [];

/** A unit's journal on a node: this boot's, or since a time the node's own `date` gave. */
export function unitJournal(node: NodeName, unit: string, since?: string): string {
  const when = since === undefined ? ["--boot"] : ["--since", since];
  return inNode(node, ["journalctl", "--no-pager", "--output=cat", `--unit=${unit}`, ...when]);
}

const COLLECTOR = "webstack-collector.service";

/**
 * Waits for a reading of the node's collector taken now that matches `reading`. The collector is one
 * process that reads every minute: a restart makes it read at once.
 */
export async function freshCollectorReading(node: NodeName, reading: RegExp): Promise<void> {
  const since = inNode(node, ["date", "+%Y-%m-%d %H:%M:%S"]).trim();
  inNode(node, ["systemctl", "restart", "--no-block", COLLECTOR]);
  await waitFor(`${node}'s collector`, 30, () => reading.test(unitJournal(node, COLLECTOR, since)));
}

/**
 * The metric pushes the CloudWatch stand-in took from a node's role, oldest first, each as
 * "NAMESPACE Metric[dimension,…]=value …".
 */
export function pushedMetrics(node: NodeName): string[] {
  const taken = `cloudwatch PutMetricData ${accessKeyId(node)} `;
  return fs
    .readFileSync(path.join(STATE_DIR, "logs", "cloudwatch.log"), "utf8")
    .split("\n")
    .filter((l) => l.startsWith(taken))
    .map((l) => l.slice(taken.length));
}
