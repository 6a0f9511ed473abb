// The lab's `up`, `status` and `down`: the order of the steps; each step lives in its own module.
import * as fs from "fs";
import * as path from "path";
import { NodeName, appliesAfter } from "../model/topology";
import { nodeMemoryMiB } from "./cgroups";
import { Plan, runPlan } from "../plan/plan";
import { redactSecrets } from "../plan/secrets";
import { LabError, log } from "./commands";
import { blackholeRanges, checkHost, installHostPackages } from "./hostSetup";
import {
  AWS_STAND_INS,
  buildMirror,
  publish,
  startInternet,
  startMetadata,
  waitForCertificate,
} from "./internet";
import {
  INTERNET_NS,
  LAB_CONFIG,
  LAB_DIFFERENCES,
  LAB_DOMAIN,
  LAB_STACK,
  labTopology,
  labNetwork,
  labRefusal,
  labNodes,
  planFirewallRules,
  s3Objects,
  ssmParameters,
  withBrokenBundleFile,
} from "./labPlan";
import { ACME_ROOT, alive, healthy, newState, readState, saveState, STATE_DIR } from "./labState";
import { applyFirewalls, createNetwork } from "./namespaces";
import {
  attachDataVolume,
  baseRootfs,
  bootNode,
  breakBootIfAsked,
  cloudInitStatus,
  execInNode,
  prepareRoot,
  waitForNodes,
} from "./nodes";
import { rememberedOutputs } from "./realOutputs";
import { servedCertificate } from "./runningStack";
import { leftovers, tearDown } from "./teardown";

/**
 * Boots the lab, or reuses a healthy one booted with the same `--set`s: the program planned with
 * real keys, then the host, the network and its firewalls, the "internet", and the nodes booting
 * their rendered user-data. `--set key=value` boots it with that config over the lab's own (a
 * stack created so, e.g. `database=galera`); it stays for later applies.
 */
export async function up(options: readonly string[] = []): Promise<void> {
  const upSets = parseSets(options, {});
  refuseUnlabbable(upSets);
  checkHost();
  // Before the reuse check: a lab booted before a tool joined the list (the bench's clients) is
  // reused as it is, and the tool must be on the host all the same. Idempotent: apt only for a
  // missing package.
  log("host packages");
  installHostPackages();
  const existing = readState();
  if (existing) {
    const canonical = (sets: Record<string, string>) =>
      JSON.stringify(Object.entries(sets).sort(([a], [b]) => a.localeCompare(b)));
    const same = canonical(existing.upSets ?? {}) === canonical(upSets);
    // A lab booted by an older checkout may lack a stand-in this one starts (CloudWatch's).
    const lacking = AWS_STAND_INS.filter((s) => !existing.processes.some((p) => p.name === s));
    const retake = !same
      ? `the running lab was booted with ${JSON.stringify(existing.upSets ?? {})}`
      : existing.upSeconds === undefined || !healthy(existing)
        ? "a previous lab is half up"
        : lacking.length > 0
          ? `the running lab has no ${lacking.join(", ")} stand-in (an older lab's)`
          : undefined;
    if (!retake) {
      log("already up");
      return status();
    }
    log(`${retake}: taking it down first`);
    await down();
  } else if (fs.existsSync(STATE_DIR)) {
    log("an interrupted lab's files are left (no state file): removing them first");
    await down();
  }
  const t0 = Date.now();
  log("plan: the program under mocks, with real keys, certificates and passwords");
  fs.mkdirSync(STATE_DIR, { recursive: true });
  fs.writeFileSync(SET_CONFIG, JSON.stringify(upSets, null, 2));
  if (Object.keys(upSets).length > 0) log(`config over the lab's own: ${JSON.stringify(upSets)}`);
  const plan = await planLab(upSets);
  const topology = labTopology(upSets);
  const nodes = labNodes(plan, topology.nodeNames).map(breakBootIfAsked);
  const network = labNetwork(topology);
  log("Debian 13 rootfs (cached)");
  const base = baseRootfs();
  log("Debian mirror with the user-data's packages (cached)");
  const mirror = buildMirror(base, nodes);

  const state = newState(network, redactSecrets(plan.outputs));
  state.upSets = upSets;
  log(`network: blackhole ${network.ranges.join(", ")} on the host; namespaces and bridge`);
  blackholeRanges(state, network);
  createNetwork(state, network);
  log("firewalls: nftables per node from the plan's security-group rules, before anything starts");
  applyFirewalls(topology, planFirewallRules(plan, topology.nodeNames));
  log("internet: resolver, Debian mirror, SSM, S3 and CloudWatch stand-ins, Pebble");
  const caFile = await startInternet(state, network, mirror, nodes, {
    parameters: ssmParameters(plan),
    objects: s3Objects(plan),
  });
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

/** The running lab's summary: how to reach it, its nodes and processes, outputs, differences. */
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
        `  ${n.padEnd(3)} ${state.network?.nodes[n].padEnd(14)} cloud-init ${cloudInitStatus(state, n).padEnd(8)} ${nodeMemoryMiB(n)} MiB used (its processes' PSS)`,
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

/** Undoes everything `up` recorded, even a half-finished `up`, and fails if anything is left. */
export async function down(): Promise<void> {
  checkHost();
  const state = readState();
  if (!state && fs.existsSync(STATE_DIR)) {
    // No record, yet the lab's directory is there: a `down` interrupted after the state file was
    // removed, or an `up` stopped before it wrote one. Its node directories would be the next
    // lab's disks (`up` reuses a node directory it finds), so they go, once nothing of a lab is
    // left on the host (what is cannot be undone without the record: it is named instead).
    const left = leftovers(undefined);
    if (left.length > 0)
      throw new LabError(
        `${STATE_DIR} has no state file, and a lab's things are on the host: ${left.join("; ")}; ` +
          `remove them, then run down again`,
      );
    fs.rmSync(STATE_DIR, { recursive: true, force: true });
    log(`down: removed ${STATE_DIR}, an interrupted lab's files (no state file)`);
  } else if (!state) {
    log("nothing to take down");
  } else {
    await tearDown(state);
    const left = leftovers(state);
    if (left.length > 0) throw new LabError(`down left behind: ${left.join("; ")}`);
    fs.rmSync(STATE_DIR, { recursive: true, force: true });
    log("down: processes stopped, mounts, loop devices, namespaces and routes removed");
  }
}

/** Where the lab keeps what a stack keeps in its state and config: real outputs, config set later. */
const REAL_OUTPUTS = path.join(STATE_DIR, "real-outputs.json");
const SET_CONFIG = path.join(STATE_DIR, "config.json");

/** A Datadog API key for the lab (a secret's shape; the agent cannot reach Datadog from here). */
const LAB_DATADOG_API_KEY = "0".repeat(32);

/**
 * `--set key=value …` over `sets` (webstack's keys may go unprefixed); an empty value returns the
 * key to the lab's own config (or the program's default).
 */
function parseSets(
  options: readonly string[],
  base: Record<string, string>,
): Record<string, string> {
  const sets = { ...base };
  for (let i = 0; i < options.length; i++) {
    const pair = options[i] === "--set" ? options[++i] : undefined;
    const match = pair ? /^([A-Za-z][\w:]*)=(.*)$/s.exec(pair) : null;
    if (!match) throw new LabError(`takes --set key=value …, not ${options[i] ?? "(nothing)"}`);
    const key = match[1].includes(":") ? match[1] : `webstack:${match[1]}`;
    if (match[2] === "") delete sets[key];
    else sets[key] = match[2];
  }
  return sets;
}

/** A config the lab cannot run stops `up` and `apply` before they touch the host. */
function refuseUnlabbable(sets: Record<string, string>, upSets?: Record<string, string>): void {
  const refusal = labRefusal(sets, upSets);
  if (refusal) throw new LabError(refusal);
}

/** What `up --set` and `apply --set` changed, by full config key. */
function readSets(): Record<string, string> {
  return fs.existsSync(SET_CONFIG)
    ? (JSON.parse(fs.readFileSync(SET_CONFIG, "utf8")) as Record<string, string>)
    : {};
}

/** What `apply --set` last gave a key (webstack's keys unprefixed), if anything. */
export function appliedSetting(key: string): string | undefined {
  return readSets()[key.includes(":") ? key : `webstack:${key}`];
}

/** The lab's plan: LAB_CONFIG with `sets` over it, the same real outputs. */
async function planLab(sets: Record<string, string>): Promise<Plan> {
  const config: Record<string, string> = { ...LAB_CONFIG, ...sets };
  const secretKeys: string[] = [];
  if (config["webstack:datadog"] === "true" && !config["webstack:datadogApiKey"]) {
    config["webstack:datadogApiKey"] = LAB_DATADOG_API_KEY;
    secretKeys.push("webstack:datadogApiKey");
  }
  return runPlan({
    stack: LAB_STACK,
    config,
    secretKeys,
    override: rememberedOutputs(REAL_OUTPUTS),
  });
}

/** What a node last reached with a bundle, applied or refused (the applier's status.json), if anything. */
interface BundleStatus {
  readonly sha256: string;
  readonly state: "applied" | "refused";
  readonly reason?: string;
  readonly at: string;
  /** The app release the node runs (app nodes, issue 18). */
  readonly app?: string;
}

function bundleStatus(node: NodeName): BundleStatus | undefined {
  let r;
  try {
    r = execInNode(node, ["cat", "/var/lib/webstack/bundle/status.json"]);
  } catch (err) {
    if (err instanceof LabError) return undefined; // stopped: it applies once it runs again
    throw err;
  }
  if (r.status !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as BundleStatus;
  } catch {
    return undefined; // being written
  }
}

/**
 * `apply [--set key=value …]`: the running lab's `pulumi up`. The program is planned again with the
 * changed config (kept for later applies, as a stack's config is) and the same keys; the new bundles
 * and their parameters are published to the stand-ins; then each node is followed until it has
 * applied its bundle (or refused it: exit non-zero). An instance the plan would replace or whose
 * user-data changed is named: the lab cannot replace an instance, and never does it silently.
 */
export async function apply(options: readonly string[]): Promise<void> {
  refuseUnlabbable(parseSets(options, readSets()));
  checkHost();
  const state = readState();
  if (!state?.upSeconds || !state.network)
    throw new LabError("the lab is not up: npm run lab -- up");
  refuseUnlabbable(parseSets(options, readSets()), state.upSets ?? {});
  const names = state.network.nodeNames;
  const before = labNodes(await planLab(readSets()), names);
  const sets = parseSets(options, readSets());
  log(`plan with ${JSON.stringify(sets)}`);
  const plan = await planLab(sets);
  // Kept only once the program accepted them: a refused --set is not remembered.
  fs.writeFileSync(SET_CONFIG, JSON.stringify(sets, null, 2));
  const nodes = labNodes(plan, names);
  for (const node of nodes) {
    const old = before.find((n) => n.name === node.name);
    if (old && old.userData !== node.userData) {
      log(
        `${node.name}: its user-data changed: on AWS this replaces the LB or is ignored by an app node`,
      );
    }
  }
  const parameters = ssmParameters(plan);
  const objects = s3Objects(plan);
  const broken = process.env.WEBSTACK_LAB_BREAK_BUNDLE; // <node>:<path>, the lab's own tests
  if (broken) {
    const [node, file] = [
      broken.slice(0, broken.indexOf(":")),
      broken.slice(broken.indexOf(":") + 1),
    ];
    log(`${node}: ${file} broken in its bundle (WEBSTACK_LAB_BREAK_BUNDLE)`);
    withBrokenBundleFile({ parameters, objects }, `/webstack/${LAB_STACK}/${node}/bundle`, file);
  }
  publish(state.network, nodes, { parameters, objects });
  const wanted = Object.fromEntries(
    names.map((node) => {
      const pointer = parameters[`/webstack/${LAB_STACK}/${node}/bundle`];
      if (!pointer) throw new LabError(`the plan has no bundle parameter for ${node}`);
      return [node, (JSON.parse(pointer.Value) as { sha256: string }).sha256];
    }),
  ) as Record<NodeName, string>;
  await follow(wanted, names);
}

/** How long `apply` follows the nodes: a release builds a venv and checks itself on each in turn. */
const FOLLOW_SECONDS = 240;

/**
 * Follows each node's status until it reports its wanted bundle, applied or refused. A node that
 * waits for a node that refused never applies (the primary holds back when its replica refused):
 * it is named, and following ends there.
 */
async function follow(wanted: Record<NodeName, string>, names: readonly NodeName[]): Promise<void> {
  const count = names.length - 1;
  const started = Date.now();
  const done = new Map<NodeName, BundleStatus>();
  const refused = () => [...done].filter(([, s]) => s.state !== "applied").map(([n]) => n);
  // Held: waiting for a node that refused, or for one held itself (the app nodes go one by one).
  const held = (): NodeName[] => {
    const blocked = new Set<NodeName>(refused());
    for (let grew = true; grew;) {
      grew = false;
      for (const n of names)
        if (!done.has(n) && !blocked.has(n) && appliesAfter(n, count).some((o) => blocked.has(o))) {
          blocked.add(n);
          grew = true;
        }
    }
    return names.filter((n) => blocked.has(n) && !done.has(n));
  };
  while (done.size + held().length < names.length) {
    for (const node of names) {
      if (done.has(node)) continue;
      const status = bundleStatus(node);
      if (status?.sha256 !== wanted[node]) continue;
      done.set(node, status);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const app = status.app ? `, app release ${status.app.slice(0, 12)}` : "";
      log(
        status.state === "applied"
          ? `${node}: applied ${wanted[node].slice(0, 12)}${app} at ${status.at} (seen after ${seconds} s)`
          : `${node}: REFUSED ${wanted[node].slice(0, 12)}: ${status.reason ?? "(no reason)"}`,
      );
    }
    if (done.size + held().length < names.length) {
      if (Date.now() - started > FOLLOW_SECONDS * 1000) {
        const late = names.filter((n) => !done.has(n));
        throw new LabError(`not applied within ${FOLLOW_SECONDS} s: ${late.join(", ")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  for (const node of held())
    log(`${node}: holds back: ${appliesAfter(node, count).join(", ")} refused or held back`);
  log(`rollout followed for ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (refused().length > 0) throw new LabError(`refused by ${refused().join(", ")}`);
}

/**
 * `release DIR [--set key=value …]`: DIR published as the running lab's app (appSource), as `pulumi up` would after
 * `pulumi config set appSource DIR`; the rollout followed per node (s1 first, then s2).
 */
export async function release(options: readonly string[]): Promise<void> {
  const [source, ...sets] = options;
  if (!source || source.startsWith("-"))
    throw new LabError("release takes a directory: release DIR [--set key=value …]");
  const dir = path.resolve(source);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory())
    throw new LabError(`release: ${dir} is not a directory`);
  await apply(["--set", `appSource=${dir}`, ...sets]);
}
