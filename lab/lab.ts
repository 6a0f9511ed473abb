// The lab: boots the user-data the program renders with real cloud-init on Debian 13, in
// systemd-nspawn containers inside network namespaces at the nodes' own addresses (see labPlan.ts).
import { spawn, spawnSync, SpawnSyncOptions } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { runPlan } from "../plan/plan";
import { redactSecrets } from "../plan/secrets";
import {
  buildTopology,
  NODE_NAMES,
  NodeName,
  SecurityGroupRule,
  Topology,
  LOOPBACK_PORTS,
} from "../model/topology";
import {
  ACME_HOST,
  BRIDGE,
  INTERNET_NS,
  LAB_CONFIG,
  LAB_DIFFERENCES,
  LAB_DOMAIN,
  LAB_REGION,
  LAB_STACK,
  LabNetwork,
  LabNode,
  labNetwork,
  labNodes,
  nodeNamespace,
  planFirewallRules,
  ssmParameters,
  withFailingBootStep,
} from "./labPlan";
import { ebsDevicePath } from "../model/aws";
import { renderNftables } from "./nftables";
import { labCertificates, realOutputs } from "./realOutputs";

export const LAB_DIR = __dirname;
export const PROJECT_DIR = path.dirname(LAB_DIR);
export const STATE_DIR = process.env.WEBSTACK_LAB_STATE ?? "/var/lib/webstack-lab";
const STATE_FILE = path.join(STATE_DIR, "lab.json");
/** Pebble's root of the run (it makes a new one at every start): what the client trusts. */
export const ACME_ROOT = path.join(STATE_DIR, "internet", "acme-root.pem");
export const PYTHON = "/usr/bin/python3"; // Debian's: its modules (boto3) import only here
const HOST_PACKAGES = [
  "systemd-container",
  "debootstrap",
  "nftables",
  "pebble",
  "dnsmasq-base",
  "iproute2",
  "openssl",
  "util-linux",
  "e2fsprogs",
  "python3",
  "curl",
  "wrk", // the benchmark's closed-loop client
];
const BOOT_TIMEOUT_S = Number(process.env.WEBSTACK_LAB_BOOT_TIMEOUT ?? 900);

/** What `up` set up, written as it goes, so `down` undoes even a half-finished `up`. */
interface LabState {
  startedAt: string;
  processes: { name: string; pid: number; match: string }[];
  mounts: string[];
  loops: string[];
  routes: string[];
  namespaces: string[];
  network?: LabNetwork;
  nodes?: NodeName[];
  outputs?: Record<string, unknown>;
  createdNspawnRunDir?: boolean;
  upSeconds?: number;
}

export class LabError extends Error {}

const log = (message: string) => console.log(`lab: ${message}`);

function run(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(command, args, { encoding: "utf8", ...options });
  if (result.status !== 0) {
    const output = `${result.stderr ?? ""}${result.stdout ?? ""}`.trim();
    throw new LabError(`${command} ${args.join(" ")} failed (${result.status}): ${output}`);
  }
  return String(result.stdout ?? "");
}

/** Runs a command inside a lab namespace, its exit status the caller's: every lab connection starts in one. */
export const inNamespace = (ns: string, command: string[], options: SpawnSyncOptions = {}) =>
  spawnSync("ip", ["netns", "exec", ns, ...command], { ...options, encoding: "utf8" });

/** Runs a command inside a lab namespace; throws with its output when it fails. */
export const runIn = (
  ns: string,
  command: string,
  args: string[],
  options: SpawnSyncOptions = {},
) => run("ip", ["netns", "exec", ns, command, ...args], options);

function readState(): LabState | undefined {
  return fs.existsSync(STATE_FILE)
    ? (JSON.parse(fs.readFileSync(STATE_FILE, "utf8")) as LabState)
    : undefined;
}

function saveState(state: LabState): void {
  fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
}

/** Whether a recorded process still runs (its PID, with its own command line: not a reused PID). */
export function alive(pid: number, match: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(match);
  } catch {
    return false;
  }
}

/** Starts a long-running process, detached, logging to STATE/logs/NAME.log, recorded by PID. */
function startProcess(
  state: LabState,
  name: string,
  ns: string | undefined,
  command: string[],
  env: Record<string, string> = {},
): void {
  const logFile = fs.openSync(path.join(STATE_DIR, "logs", `${name}.log`), "a");
  const argv = ns ? ["ip", "netns", "exec", ns, ...command] : command;
  const child = spawn(argv[0], argv.slice(1), {
    detached: true,
    stdio: ["ignore", logFile, logFile],
    env: { ...process.env, ...env },
  });
  fs.closeSync(logFile);
  child.unref();
  // `ip netns exec` execs the command: the PID is the command's, and so is its cmdline.
  state.processes.push({ name, pid: child.pid!, match: command[command.length - 1] });
  saveState(state);
}

export async function waitFor(what: string, seconds: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > deadline)
      throw new LabError(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const listening = (ns: string, address: string, port: number) =>
  inNamespace(ns, ["bash", "-c", `exec 3<>/dev/tcp/${address}/${port}`], { timeout: 5000 })
    .status === 0;

function nodeDir(node: NodeName): string {
  return path.join(STATE_DIR, "nodes", node);
}

// ---------------------------------------------------------------------------------------------
// up

function checkHost(): void {
  if (process.platform !== "linux") throw new LabError("the lab needs Linux (network namespaces)");
  if (process.getuid?.() !== 0) throw new LabError("the lab needs root: run it with sudo");
}

function installHostPackages(): void {
  const out = run("bash", [
    path.join(PROJECT_DIR, "scripts", "install-debian-packages.sh"),
    ...HOST_PACKAGES,
  ]).trim();
  if (out) log(out);
}

function blackholeRanges(state: LabState, network: LabNetwork): void {
  for (const range of network.ranges) {
    const existing = run("ip", ["route", "show", range]).trim();
    if (existing && !existing.startsWith("blackhole")) {
      throw new LabError(`the lab's range ${range} is routed on this host (${existing})`);
    }
    if (!existing) run("ip", ["route", "add", "blackhole", range]);
    state.routes.push(range);
    saveState(state);
  }
}

function createNetwork(state: LabState, network: LabNetwork): void {
  const inet = INTERNET_NS;
  const addNs = (ns: string) => {
    run("ip", ["netns", "add", ns]);
    state.namespaces.push(ns);
    saveState(state);
    run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  };
  addNs(inet);
  run("ip", ["-n", inet, "link", "add", BRIDGE, "type", "bridge"]);
  run("ip", ["-n", inet, "link", "set", BRIDGE, "up"]);
  const bits = network.vpcPrefixLength;
  for (const address of [`${network.router}/${bits}`, `${network.resolver}/${bits}`]) {
    run("ip", ["-n", inet, "addr", "add", address, "dev", BRIDGE]);
  }
  // Instance metadata answers from the lab's side, not from the node's own stack: a node must stay
  // free to bind :80 (HAProxy does), and the nodes reach it through their gateway.
  const services = [network.mirror, network.ssm, network.pebble, network.client, "169.254.169.254"];
  for (const address of services) {
    run("ip", ["-n", inet, "addr", "add", `${address}/32`, "dev", "lo"]);
  }
  for (const node of NODE_NAMES) {
    const ns = nodeNamespace(node);
    addNs(ns);
    run("ip", [
      "-n",
      ns,
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      node,
      "netns",
      inet,
    ]);
    run("ip", ["-n", inet, "link", "set", node, "master", BRIDGE, "up"]);
    run("ip", ["-n", ns, "addr", "add", `${network.nodes[node]}/${bits}`, "dev", "eth0"]);
    run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    run("ip", ["-n", ns, "route", "add", "default", "via", network.router]);
  }
  // The client and Pebble resolve through the lab's resolver, like everything else.
  const etc = path.join("/etc/netns", inet);
  fs.mkdirSync(etc, { recursive: true });
  fs.writeFileSync(path.join(etc, "resolv.conf"), `nameserver ${network.resolver}\n`);
  fs.writeFileSync(path.join(etc, "hosts"), "127.0.0.1 localhost\n");
}

function applyFirewalls(topology: Topology, rules: SecurityGroupRule[]): void {
  for (const node of NODE_NAMES) {
    const file = path.join(nodeDir(node), "nftables.conf");
    fs.writeFileSync(file, renderNftables(topology, node, rules));
    runIn(nodeNamespace(node), "nft", ["-f", file]);
  }
}

async function startInternet(
  state: LabState,
  network: LabNetwork,
  mirror: string,
  nodes: LabNode[],
  parameters: Record<string, { Type: string; Value: string }>,
): Promise<string> {
  const dir = path.join(STATE_DIR, "internet");
  fs.mkdirSync(dir, { recursive: true });
  const tls = labCertificates({
    ssm: [`ssm.${LAB_REGION}.amazonaws.com`],
    pebble: [ACME_HOST],
  });
  const write = (name: string, content: string, mode = 0o600) => {
    fs.writeFileSync(path.join(dir, name), content, { mode });
    return path.join(dir, name);
  };
  const caFile = write("lab-ca.crt", tls.ca.certPem, 0o644);
  const hosts = Object.entries(network.hosts).map(([name, ip]) => `${ip} ${name}`);
  write("hosts", `${hosts.join("\n")}\n`, 0o644);
  startProcess(state, "dns", INTERNET_NS, [
    "dnsmasq",
    "--keep-in-foreground",
    "--log-facility=-",
    "--log-queries",
    "--no-resolv",
    "--no-hosts",
    "--pid-file=",
    "--bind-interfaces",
    `--listen-address=${network.resolver}`,
    `--addn-hosts=${path.join(dir, "hosts")}`,
  ]);
  startProcess(state, "mirror", INTERNET_NS, [
    PYTHON,
    "-m",
    "http.server",
    "80",
    "--bind",
    network.mirror,
    "--directory",
    mirror,
  ]);
  const ssmState = write(
    "ssm.json",
    JSON.stringify({
      listen: network.ssm,
      cert: write("ssm.crt", tls.servers.ssm.certPem, 0o644),
      key: write("ssm.key", tls.servers.ssm.keyPem),
      principals: Object.fromEntries(nodes.map((n) => [accessKeyId(n.name), n.ssmScopes])),
      parameters,
    }),
  );
  startProcess(state, "ssm", INTERNET_NS, [
    PYTHON,
    path.join(LAB_DIR, "standins", "aws.py"),
    "ssm",
    ssmState,
  ]);
  const pebbleConfig = write(
    "pebble.json",
    JSON.stringify({
      pebble: {
        listenAddress: `${network.pebble}:443`,
        managementListenAddress: `${network.pebble}:15000`,
        certificate: write("pebble.crt", tls.servers.pebble.certPem, 0o644),
        privateKey: write("pebble.key", tls.servers.pebble.keyPem),
        httpPort: 80,
        tlsPort: 443,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );
  startProcess(
    state,
    "pebble",
    INTERNET_NS,
    ["pebble", "-dnsserver", `${network.resolver}:53`, "-config", pebbleConfig],
    { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" },
  );
  const ports: [string, number, string][] = [
    [network.mirror, 80, "the Debian mirror"],
    [network.ssm, 443, "the SSM stand-in"],
    [network.pebble, 443, "Pebble"],
  ];
  for (const [address, port, what] of ports) {
    await waitFor(what, 20, () => listening(INTERNET_NS, address, port));
  }
  return caFile;
}

const accessKeyId = (node: NodeName) => `ASIALAB${node.toUpperCase()}ROLE`;

/** Instance metadata for every node, on the nodes' side of the lab's "hypervisor" link. */
async function startMetadata(
  state: LabState,
  network: LabNetwork,
  nodes: LabNode[],
): Promise<void> {
  const file = path.join(STATE_DIR, "internet", "imds.json");
  const instances = nodes.map((n) => [
    network.nodes[n.name],
    { instanceId: n.instanceId, role: n.role, accessKeyId: accessKeyId(n.name) },
  ]);
  fs.writeFileSync(
    file,
    JSON.stringify({ region: LAB_REGION, instances: Object.fromEntries(instances) }),
  );
  startProcess(state, "imds", INTERNET_NS, [
    PYTHON,
    path.join(LAB_DIR, "standins", "aws.py"),
    "imds",
    file,
  ]);
  await waitFor("the metadata stand-in", 20, () => listening(INTERNET_NS, "169.254.169.254", 80));
}

/** The node's disk: an overlay of the base rootfs, seeded for cloud-init's NoCloud datasource. */
function prepareRoot(
  state: LabState,
  node: LabNode,
  base: string,
  network: LabNetwork,
  caFile: string,
) {
  const dir = nodeDir(node.name);
  const root = path.join(dir, "root");
  for (const d of ["upper", "work", "root"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
  run("mount", [
    "-t",
    "overlay",
    "overlay",
    "-o",
    `lowerdir=${base},upperdir=${dir}/upper,workdir=${dir}/work`,
    root,
  ]);
  state.mounts.push(root);
  saveState(state);
  const seed = path.join(root, "var/lib/cloud/seed/nocloud");
  fs.mkdirSync(seed, { recursive: true });
  fs.writeFileSync(path.join(seed, "user-data"), node.userData, { mode: 0o600 });
  fs.writeFileSync(
    path.join(seed, "meta-data"),
    `instance-id: ${node.instanceId}\nlocal-hostname: ${node.name}\n`,
  );
  fs.writeFileSync(
    path.join(root, "etc/cloud/cloud.cfg.d/90-webstack-lab.cfg"),
    "# webstack lab: NoCloud seed; addresses are set by the lab, as EC2's DHCP would.\n" +
      "datasource_list: [ NoCloud, None ]\nnetwork: {config: disabled}\n",
  );
  // The VPC's resolver, as EC2's DHCP announces it.
  fs.writeFileSync(path.join(root, "etc/resolv.conf"), `nameserver ${network.resolver}\n`);
  fs.copyFileSync(caFile, path.join(root, "usr/local/share/ca-certificates/webstack-lab.crt"));
  run("chroot", [root, "update-ca-certificates"]);
  return root;
}

function attachDataVolume(state: LabState, node: LabNode): string[] {
  if (!node.dataVolumeId) return [];
  const image = path.join(nodeDir(node.name), "data-volume.img");
  fs.writeFileSync(image, "");
  fs.truncateSync(image, 4 * 1024 ** 3); // sparse, like a fresh gp3 volume
  const loop = run("losetup", ["--find", "--show", image]).trim();
  state.loops.push(loop);
  saveState(state);
  return [`--bind=${loop}`, `--bind=${loop}:${ebsDevicePath(node.dataVolumeId)}`];
}

function bootNode(state: LabState, node: LabNode, root: string, binds: string[]): void {
  startProcess(state, `node-${node.name}`, undefined, [
    "systemd-nspawn",
    "--quiet",
    "--boot",
    "--register=no",
    "--keep-unit",
    `--machine=wslab-${node.name}`,
    `--network-namespace-path=/run/netns/${nodeNamespace(node.name)}`,
    "--resolv-conf=off",
    "--timezone=off",
    "--link-journal=no",
    "--console=pipe",
    ...binds,
    `--directory=${root}`,
  ]);
}

/** PID 1 of a node's container: nspawn's child running systemd. */
function containerLeader(state: LabState, node: NodeName): number | undefined {
  const nspawn = state.processes.find((p) => p.name === `node-${node}`);
  if (!nspawn || !alive(nspawn.pid, nspawn.match)) return undefined;
  const children = (pid: number) =>
    fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  const queue = children(nspawn.pid);
  while (queue.length > 0) {
    const pid = queue.shift()!;
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "systemd") return pid;
      queue.push(...children(pid));
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

/** Runs a command inside a node's container (all its namespaces); its exit status is the caller's. */
export function execInNode(
  node: NodeName,
  command: string[],
  input?: string,
  state: LabState | undefined = readState(),
) {
  const leader = state && containerLeader(state, node);
  if (!leader) throw new LabError(`${node} is not running`);
  return spawnSync("nsenter", ["-t", String(leader), "-a", ...command], {
    encoding: "utf8",
    input,
    timeout: 120_000,
  });
}

/** Runs a command inside a node's container; throws with its output when it fails. */
export function inNode(node: NodeName, command: string[]): string {
  const r = execInNode(node, command);
  if (r.status !== 0) {
    throw new LabError(
      `${node}: ${command.join(" ")} failed (${r.status}): ${r.stderr}${r.stdout}`,
    );
  }
  return r.stdout;
}

function cloudInitStatus(state: LabState, node: NodeName): string {
  if (!containerLeader(state, node)) return "not running";
  const r = execInNode(node, ["cloud-init", "status"], undefined, state);
  const reported = /status: (\S+)/.exec(r.stdout ?? "")?.[1] ?? "unknown";
  // Exit 2 is "done" with recoverable errors: not a clean boot.
  return reported === "done" && r.status === 2 ? "degraded" : reported;
}

function nodeLogTail(node: NodeName): string {
  const file = path.join(nodeDir(node), "root/var/log/cloud-init-output.log");
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "(no cloud-init-output.log)";
  return text.split("\n").slice(-60).join("\n");
}

async function waitForNodes(state: LabState): Promise<void> {
  const started = Date.now();
  const finished = new Map<NodeName, string>();
  await waitFor("cloud-init on every node", BOOT_TIMEOUT_S, () => {
    for (const node of NODE_NAMES.filter((n) => !finished.has(n))) {
      const status = cloudInitStatus(state, node);
      if (["done", "error", "degraded", "disabled", "not running"].includes(status)) {
        finished.set(node, status);
        log(`${node}: cloud-init ${status} after ${Math.round((Date.now() - started) / 1000)} s`);
      }
    }
    return finished.size === NODE_NAMES.length;
  });
  const failed = [...finished].filter(([, status]) => status !== "done");
  if (failed.length > 0) {
    const details = failed.map(([node, status]) => {
      const summary = execInNode(node, ["cloud-init", "status", "--long"], undefined, state);
      return (
        `--- ${node}: cloud-init ${status}; the end of its /var/log/cloud-init-output.log:\n${nodeLogTail(node)}\n` +
        `--- ${node}: cloud-init status --long:\n${summary.stdout}${summary.stderr}`
      );
    });
    throw new LabError(`nodes did not boot cleanly:\n${details.join("\n")}`);
  }
}

/** The LB's certificate from Pebble (its timer retries issuance until the ACME server answers). */
async function waitForCertificate(state: LabState): Promise<void> {
  log("lb: waiting for its Let's Encrypt certificate from Pebble");
  try {
    await waitFor("the LB's certificate from Pebble", 180, () =>
      servedCertificate().includes("Pebble"),
    );
  } catch (err) {
    const journal = execInNode(
      "lb",
      ["journalctl", "-u", "webstack-certificate*", "--no-pager", "-n", "40"],
      undefined,
      state,
    ).stdout;
    throw new LabError(`${(err as Error).message}\n${journal}`);
  }
  // Pebble makes a new root at every start: the client trusts this one.
  const root = runIn(INTERNET_NS, "curl", [
    "-sSf",
    "--cacert",
    path.join(STATE_DIR, "internet", "lab-ca.crt"),
    `https://${ACME_HOST}:15000/roots/0`,
  ]);
  fs.writeFileSync(ACME_ROOT, root);
}

/**
 * Fault injection for the lab's own tests: WEBSTACK_LAB_BREAK_BOOT=<node> adds a failing boot
 * step to that node's user-data, which must make `up` fail and print the node's log.
 */
function breakBootIfAsked(node: LabNode): LabNode {
  if (process.env.WEBSTACK_LAB_BREAK_BOOT !== node.name) return node;
  log(`${node.name}: a failing boot step added to its user-data (WEBSTACK_LAB_BREAK_BOOT)`);
  return { ...node, userData: withFailingBootStep(node.userData) };
}

export async function up(): Promise<void> {
  checkHost();
  const existing = readState();
  if (existing) {
    if (existing.upSeconds !== undefined && healthy(existing)) {
      log("already up");
      return status();
    }
    log("a previous lab is half up: taking it down first");
    await down();
  }
  const t0 = Date.now();
  log("host packages");
  installHostPackages();
  log("plan: the program under mocks, with real keys, certificates and passwords");
  const plan = await runPlan({ stack: LAB_STACK, config: LAB_CONFIG, override: realOutputs });
  const nodes = labNodes(plan).map(breakBootIfAsked);
  const topology = buildTopology(String(plan.outputs.vpcCidr));
  const network = labNetwork(topology);
  log("Debian 13 rootfs (cached)");
  const base = run("bash", [path.join(LAB_DIR, "rootfs.sh"), "base"]).trim();
  log("Debian mirror with the user-data's packages (cached)");
  const packages = [...new Set(nodes.flatMap((n) => n.packages))].sort();
  const mirror = run(PYTHON, [path.join(LAB_DIR, "mirror.py"), base, ...packages]).trim();

  fs.mkdirSync(path.join(STATE_DIR, "logs"), { recursive: true });
  for (const node of NODE_NAMES) fs.mkdirSync(nodeDir(node), { recursive: true });
  const state: LabState = {
    startedAt: new Date().toISOString(),
    processes: [],
    mounts: [],
    loops: [],
    routes: [],
    namespaces: [],
    network,
    nodes: [...NODE_NAMES],
    outputs: redactSecrets(plan.outputs),
    createdNspawnRunDir: !fs.existsSync("/run/systemd/nspawn"),
  };
  saveState(state);
  log(`network: blackhole ${network.ranges.join(", ")} on the host; namespaces and bridge`);
  blackholeRanges(state, network);
  createNetwork(state, network);
  log("firewalls: nftables per node from the plan's security-group rules, before anything starts");
  applyFirewalls(topology, planFirewallRules(plan));
  log("internet: resolver, Debian mirror, SSM stand-in, Pebble");
  const caFile = await startInternet(state, network, mirror, nodes, ssmParameters(plan));
  await startMetadata(state, network, nodes);
  for (const node of nodes) {
    const root = prepareRoot(state, node, base, network, caFile);
    const binds = attachDataVolume(state, node);
    log(`${node.name}: booting ${network.nodes[node.name]}`);
    bootNode(state, node, root, binds);
  }
  await waitForNodes(state);
  await waitForCertificate(state);
  state.upSeconds = Math.round((Date.now() - t0) / 1000);
  saveState(state);
  log(`up in ${state.upSeconds} s`);
  await status();
}

// ---------------------------------------------------------------------------------------------
// status

function healthy(state: LabState): boolean {
  return state.processes.every((p) => alive(p.pid, p.match));
}

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

/** Items written through the LB from the client namespace, as a user would; returns their ids. */
export function writeItems(count: number, tag: string): number[] {
  return Array.from({ length: count }, (_, i) => {
    const r = runIn(INTERNET_NS, "curl", [
      "-sS",
      "--max-time",
      "10",
      "--cacert",
      ACME_ROOT,
      "-X",
      "POST",
      "--data",
      `${tag}-${i}`,
      `https://${LAB_DOMAIN}/items`,
    ]);
    return (JSON.parse(r) as { id: number }).id;
  });
}

/** Each backend's state in HAProxy's own stats on the LB: {s1: "UP", s2: "DOWN 1/2", …}. */
export function backendStates(): Record<string, string> {
  const csv = inNode("lb", [
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
    "lb",
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

/** certbot's forced renewal on the LB: through Pebble, then the deploy hook reloads HAProxy. */
export const forceRenewal = () =>
  execInNode("lb", [
    "certbot",
    "renew",
    "--cert-name",
    "webstack",
    "--force-renewal",
    "--no-random-sleep-on-renew",
  ]);

export async function status(): Promise<void> {
  checkHost();
  const state = readState();
  if (!state) {
    log("not running");
    return;
  }
  const summary = [
    "",
    `webstack lab (stack ${LAB_STACK}), up since ${state.startedAt}${state.upSeconds ? ` (took ${state.upSeconds} s)` : ""}`,
    "",
    "Try it from the client namespace:",
    `  sudo ip netns exec ${INTERNET_NS} curl --cacert ${ACME_ROOT} https://${LAB_DOMAIN}/`,
    `  (${ACME_ROOT}: the root of Pebble, the lab's Let's Encrypt, which issued the LB's certificate)`,
    "",
    "Nodes:",
    ...(state.nodes ?? []).map(
      (n) =>
        `  ${n.padEnd(3)} ${state.network?.nodes[n].padEnd(14)} cloud-init ${cloudInitStatus(state, n)}`,
    ),
    `  LB certificate: ${servedCertificate()}`,
    "",
    "Processes:",
    ...state.processes.map(
      (p) =>
        `  ${p.name.padEnd(10)} pid ${String(p.pid).padEnd(8)} ${alive(p.pid, p.match) ? "running" : "gone"}`,
    ),
    "",
    "Stack outputs:",
    ...Object.entries(state.outputs ?? {}).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
    "",
    "Differences from AWS:",
    ...LAB_DIFFERENCES.map((d) => `  - ${d}`),
    "",
  ];
  console.log(summary.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// down

async function stopProcess(p: { name: string; pid: number; match: string }): Promise<void> {
  if (!alive(p.pid, p.match)) return;
  process.kill(p.pid, "SIGTERM");
  const deadline = Date.now() + 15_000;
  while (alive(p.pid, p.match) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  if (alive(p.pid, p.match)) process.kill(p.pid, "SIGKILL");
}

const quiet = (command: string, args: string[]) => spawnSync(command, args, { encoding: "utf8" });

export async function down(): Promise<void> {
  checkHost();
  const state = readState();
  if (!state) {
    log("nothing to take down");
  } else {
    // Containers first (a clean poweroff, all at once), then the stand-ins they were talking to.
    const isNode = (p: { name: string }) => p.name.startsWith("node-");
    await Promise.all(state.processes.filter(isNode).map(stopProcess));
    for (const p of state.processes.filter((p) => !isNode(p))) await stopProcess(p);
    for (const mount of [...state.mounts].reverse()) {
      // Anything the container left mounted below its root goes first.
      const below = fs
        .readFileSync("/proc/self/mounts", "utf8")
        .split("\n")
        .map((l) => l.split(" ")[1])
        .filter((m) => m && m.startsWith(`${mount}/`))
        .reverse();
      for (const m of [...below, mount]) quiet("umount", [m]);
    }
    for (const loop of state.loops) quiet("losetup", ["-d", loop]);
    for (const ns of [...state.namespaces].reverse()) {
      quiet("ip", ["netns", "del", ns]);
      fs.rmSync(path.join("/etc/netns", ns), { recursive: true, force: true });
    }
    for (const range of state.routes) quiet("ip", ["route", "del", "blackhole", range]);
    if (state.createdNspawnRunDir)
      fs.rmSync("/run/systemd/nspawn", { recursive: true, force: true });
    if (fs.existsSync("/etc/netns") && fs.readdirSync("/etc/netns").length === 0)
      fs.rmdirSync("/etc/netns");
    const left = leftovers(state);
    if (left.length > 0) throw new LabError(`down left behind: ${left.join("; ")}`);
    fs.rmSync(STATE_DIR, { recursive: true, force: true });
    log("down: processes stopped, mounts, loop devices, namespaces and routes removed");
  }
}

/** What a lab could leave on the host: empty after `down`. */
export function leftovers(state: LabState | undefined = readState()): string[] {
  const found: string[] = [];
  const namespaces = quiet("ip", ["netns", "list"])
    .stdout.split("\n")
    .map((l) => l.split(" ")[0]);
  found.push(...namespaces.filter((n) => n.startsWith("wslab-")).map((n) => `namespace ${n}`));
  const mounts = fs
    .readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1]);
  found.push(...mounts.filter((m) => m?.startsWith(STATE_DIR)).map((m) => `mount ${m}`));
  for (const p of state?.processes ?? [])
    if (alive(p.pid, p.match)) found.push(`process ${p.name} (${p.pid})`);
  for (const range of state?.routes ?? []) {
    if (quiet("ip", ["route", "show", range]).stdout.trim()) found.push(`route ${range}`);
  }
  const loops = quiet("losetup", ["--list", "--noheadings", "--output", "NAME,BACK-FILE"]).stdout;
  for (const line of loops.split("\n"))
    if (line.includes(STATE_DIR)) found.push(`loop ${line.trim()}`);
  return found;
}
