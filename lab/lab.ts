// The lab's `up`, `status` and `down`: the order of the steps; each step lives in its own module.
import * as fs from "fs";
import { runPlan } from "../plan/plan";
import { redactSecrets } from "../plan/secrets";
import { LabError, log } from "./commands";
import { blackholeRanges, checkHost, installHostPackages } from "./hostSetup";
import { buildMirror, startInternet, startMetadata, waitForCertificate } from "./internet";
import {
  INTERNET_NS,
  LAB_CONFIG,
  LAB_DIFFERENCES,
  LAB_DOMAIN,
  LAB_STACK,
  LAB_TOPOLOGY,
  labNetwork,
  labNodes,
  planFirewallRules,
  ssmParameters,
} from "./labPlan";
import { ACME_ROOT, alive, healthy, newState, readState, saveState, STATE_DIR } from "./labState";
import { applyFirewalls, createNetwork } from "./namespaces";
import {
  attachDataVolume,
  baseRootfs,
  bootNode,
  breakBootIfAsked,
  cloudInitStatus,
  prepareRoot,
  waitForNodes,
} from "./nodes";
import { realOutputs } from "./realOutputs";
import { servedCertificate } from "./runningStack";
import { leftovers, tearDown } from "./teardown";

/**
 * Boots the lab, or reuses a healthy one: the program planned with real keys, then the host, the
 * network and its firewalls, the "internet", and the nodes booting their rendered user-data.
 */
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
  const topology = LAB_TOPOLOGY;
  const network = labNetwork(topology);
  log("Debian 13 rootfs (cached)");
  const base = baseRootfs();
  log("Debian mirror with the user-data's packages (cached)");
  const mirror = buildMirror(base, nodes);

  const state = newState(network, redactSecrets(plan.outputs));
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

/** Undoes everything `up` recorded, even a half-finished `up`, and fails if anything is left. */
export async function down(): Promise<void> {
  checkHost();
  const state = readState();
  if (!state) {
    log("nothing to take down");
  } else {
    await tearDown(state);
    const left = leftovers(state);
    if (left.length > 0) throw new LabError(`down left behind: ${left.join("; ")}`);
    fs.rmSync(STATE_DIR, { recursive: true, force: true });
    log("down: processes stopped, mounts, loop devices, namespaces and routes removed");
  }
}
