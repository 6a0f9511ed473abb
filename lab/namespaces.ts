// The lab's network: a namespace per node and the internet's, one bridge, each node's firewall.
import { spawnSync, SpawnSyncOptions } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { SecurityGroupRule, Topology } from "../model/topology";
import { run } from "./commands";
import { BRIDGE, INTERNET_NS, LabNetwork, nodeNamespace } from "./labPlan";
import { LabState, nodeDir, saveState } from "./labState";
import { renderNftables } from "./nftables";
import { INSTANCE_METADATA_ADDRESS } from "../model/aws";

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

/** Whether something accepts TCP connections at an address, as seen from inside a namespace. */
export const listening = (ns: string, address: string, port: number) =>
  inNamespace(ns, ["bash", "-c", `exec 3<>/dev/tcp/${address}/${port}`], { timeout: 5000 })
    .status === 0;

export function createNetwork(state: LabState, network: LabNetwork): void {
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
  const services = [
    network.mirror,
    network.ssm,
    network.s3,
    network.cloudwatch,
    network.pebble,
    network.client,
    INSTANCE_METADATA_ADDRESS,
  ];
  for (const address of services) {
    run("ip", ["-n", inet, "addr", "add", `${address}/32`, "dev", "lo"]);
  }
  for (const node of network.nodeNames) {
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

/**
 * Runs `during` with the second client's address on the internet namespace's loopback, as `up`
 * holds the first one's; removed after (and with the namespace by `down`, should `during` never
 * return). The nodes reach it as they reach the first: through their gateway, that namespace.
 */
export async function withSecondClient<T>(
  network: LabNetwork,
  during: () => Promise<T>,
): Promise<T> {
  const address = `${network.secondClient}/32`;
  // replace: an address an interrupted run left behind is taken as it is.
  run("ip", ["-n", INTERNET_NS, "addr", "replace", address, "dev", "lo"]);
  try {
    return await during();
  } finally {
    run("ip", ["-n", INTERNET_NS, "addr", "del", address, "dev", "lo"]);
  }
}

export function applyFirewalls(topology: Topology, rules: SecurityGroupRule[]): void {
  for (const node of topology.nodeNames) {
    const file = path.join(nodeDir(node), "nftables.conf");
    fs.writeFileSync(file, renderNftables(topology, node, rules));
    runIn(nodeNamespace(node), "nft", ["-f", file]);
  }
}
