// The nodes: Debian 13 overlays seeded with their user-data, booted by systemd-nspawn, and run in.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ebsDevicePath } from "../model/aws";
import { NodeName } from "../model/topology";
import { inNodeCgroups } from "./cgroups";
import { LAB_DIR, LabError, log, run, waitFor } from "./commands";
import { LabNetwork, LabNode, nodeNamespace, withFailingBootStep } from "./labPlan";
import {
  alive,
  LabState,
  nodeDir,
  readState,
  saveState,
  startProcess,
  stopProcess,
} from "./labState";

const BOOT_TIMEOUT_S = Number(process.env.WEBSTACK_LAB_BOOT_TIMEOUT ?? 900);

/** The Debian 13 rootfs every node's disk starts from (built once, cached); its directory. */
export function baseRootfs(): string {
  return run("bash", [path.join(LAB_DIR, "rootfs.sh"), "base"]).trim();
}

/**
 * Fault injection for the lab's own tests: WEBSTACK_LAB_BREAK_BOOT=<node> adds a failing boot
 * step to that node's user-data, which must make `up` fail and print the node's log.
 */
export function breakBootIfAsked(node: LabNode): LabNode {
  if (process.env.WEBSTACK_LAB_BREAK_BOOT !== node.name) return node;
  log(`${node.name}: a failing boot step added to its user-data (WEBSTACK_LAB_BREAK_BOOT)`);
  return { ...node, userData: withFailingBootStep(node.userData) };
}

/** The node's disk: an overlay of the base rootfs, seeded for cloud-init's NoCloud datasource. */
export function prepareRoot(
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

const dataVolumeImage = (node: NodeName) => path.join(nodeDir(node), "data-volume.img");

export function attachDataVolume(state: LabState, node: LabNode): string[] {
  if (!node.dataVolumeId) return [];
  const image = dataVolumeImage(node.name);
  fs.writeFileSync(image, "");
  fs.truncateSync(image, 4 * 1024 ** 3); // sparse, like a fresh gp3 volume
  const loop = run("losetup", ["--find", "--show", image]).trim();
  state.loops.push(loop);
  saveState(state);
  return [`--bind=${loop}`, `--bind=${loop}:${ebsDevicePath(node.dataVolumeId)}`];
}

/**
 * A node's data volume grown while the node runs, as EBS grows a volume `dataVolumeGiB` raised: its
 * image made larger, then its loop device told (`losetup -c`), which the node sees at once as a
 * larger device. Returns the loop device.
 */
export function growDataVolume(node: NodeName, bytes: number): string {
  const image = dataVolumeImage(node);
  const loop = run("losetup", [
    "--list",
    "--noheadings",
    "--output",
    "NAME",
    "--associated",
    image,
  ]);
  if (!loop.trim()) throw new LabError(`${node} has no data volume attached`);
  if (fs.statSync(image).size >= bytes) throw new LabError(`${node}'s data volume is not smaller`);
  fs.truncateSync(image, bytes);
  run("losetup", ["--set-capacity", loop.trim()]);
  return loop.trim();
}

/**
 * How a node's container runs as an EC2 instance's Debian 13 does: under the unified cgroup
 * hierarchy alone (this host mounts the hybrid one, which systemd 257 runs with no BPF firewall),
 * and with the bpf() call nspawn's seccomp filter withholds by default: without both, a unit's
 * `IPAddressDeny=` (the app's sandbox: no instance metadata) is silently not in force. And with
 * its network settings its own (/proc/sys/net writable, the rest of /proc/sys read-only), as an
 * instance's are: systemd raises net.unix.max_dgram_qlen from the kernel's 10 to 512 at boot, and
 * with 10 the LB's HAProxy dropped up to a fifth of its log lines in a burst.
 */
const NSPAWN_ENV = {
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1",
  SYSTEMD_NSPAWN_API_VFS_WRITABLE: "network",
};

export function bootNode(state: LabState, node: LabNode, root: string, binds: string[]): void {
  startProcess(
    state,
    `node-${node.name}`,
    undefined,
    inNodeCgroups(node.name, [
      "systemd-nspawn",
      "--system-call-filter=bpf",
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
    ]),
    NSPAWN_ENV,
  );
}

/**
 * A node stopped, as an EC2 instance is: its container's systemd powers off cleanly (nspawn passes
 * SIGTERM on as a shutdown request). Returns what starts it again (startNode).
 */
export async function stopNode(node: NodeName): Promise<string[]> {
  const state = readState();
  const index = state?.processes.findIndex((p) => p.name === `node-${node}`) ?? -1;
  if (!state || index < 0) throw new LabError(`${node} is not running`);
  const nspawn = state.processes[index];
  const argv = fs.readFileSync(`/proc/${nspawn.pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  await stopProcess(nspawn);
  state.processes.splice(index, 1);
  saveState(state);
  return argv;
}

/**
 * A stopped node started again by the same nspawn command, on the same disk and data volume:
 * cloud-init sees the same instance (only per-boot steps run) and enabled units start. Resolves
 * once the node's systemd has finished starting.
 */
export async function startNode(node: NodeName, argv: string[]): Promise<void> {
  const state = readState();
  if (!state) throw new LabError("the lab is not up");
  startProcess(state, `node-${node}`, undefined, inNodeCgroups(node, argv), NSPAWN_ENV);
  try {
    await waitFor(`${node} booted again`, 120, () => {
      const leader = containerLeader(state, node);
      if (!leader) return false;
      const r = spawnSync(
        "nsenter",
        ["-t", String(leader), "-a", "systemctl", "is-system-running"],
        { encoding: "utf8" },
      );
      return ["running", "degraded"].includes(r.stdout.trim());
    });
  } catch (err) {
    // What its systemd is stuck on: a CI timed out here after 120 s with nothing else to go on.
    const jobs = containerLeader(state, node)
      ? execInNode(node, ["systemctl", "list-jobs", "--no-pager"], undefined, state)
      : { stdout: "(its container is not running)", stderr: "" };
    throw new LabError(
      `${(err as Error).message}; ${node}'s systemctl list-jobs:\n${jobs.stdout}${jobs.stderr}`,
    );
  }
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

/** The most a command run in a node may print: far more than any log a lab run writes. */
const NODE_OUTPUT_BYTES = 512 * 1024 * 1024;

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
    // A node's whole log read back (HAProxy's, after a load test): Node's 1 MiB default would end
    // the command and cut its output short.
    maxBuffer: NODE_OUTPUT_BYTES,
  });
}

/**
 * Starts a command inside a node's container without waiting for it (bounded by `timeoutMs`);
 * resolves with its exit status and output when it ends.
 */
export function startInNode(
  node: NodeName,
  command: string[],
  timeoutMs: number,
): Promise<{ status: number | null; output: string }> {
  const state = readState();
  const leader = state && containerLeader(state, node);
  if (!leader) throw new LabError(`${node} is not running`);
  const child = spawn("nsenter", ["-t", String(leader), "-a", ...command], {
    stdio: ["ignore", "pipe", "pipe"],
    timeout: timeoutMs,
  });
  let output = "";
  child.stdout.on("data", (d) => (output += String(d)));
  child.stderr.on("data", (d) => (output += String(d)));
  return new Promise((resolve) => child.on("exit", (status) => resolve({ status, output })));
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

export function cloudInitStatus(state: LabState, node: NodeName): string {
  if (!containerLeader(state, node)) return "not running";
  const r = execInNode(node, ["cloud-init", "status"], undefined, state);
  const reported = /status: (\S+)/.exec(r.stdout ?? "")?.[1] ?? "unknown";
  // Exit 2 is "done" with recoverable errors: not a clean boot.
  return reported === "done" && r.status === 2 ? "degraded" : reported;
}

function nodeLogTail(node: NodeName): string {
  const file = path.join(nodeDir(node), "root/var/log/cloud-init-output.log");
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "(no cloud-init-output.log)";
  return text.split("\n").slice(-120).join("\n");
}

export async function waitForNodes(state: LabState): Promise<void> {
  const names = state.network?.nodeNames ?? [];
  const started = Date.now();
  const finished = new Map<NodeName, string>();
  await waitFor("cloud-init on every node", BOOT_TIMEOUT_S, () => {
    for (const node of names.filter((n) => !finished.has(n))) {
      const status = cloudInitStatus(state, node);
      if (["done", "error", "degraded", "disabled", "not running"].includes(status)) {
        finished.set(node, status);
        log(`${node}: cloud-init ${status} after ${Math.round((Date.now() - started) / 1000)} s`);
      }
    }
    return finished.size === names.length;
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
