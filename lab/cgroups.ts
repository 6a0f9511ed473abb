// Each node's container in its own cgroup, as each EC2 instance is its own machine. The lab starts
// nspawn with --keep-unit (this host runs no systemd to register machines with), so nspawn stays
// in the cgroup it was started in and makes its `payload` and `supervisor` there: started in one
// cgroup, the three nodes' systemds would share one tree (s1's webstack-app.service would be s2's
// too, and stopping a unit on one node would kill the other's processes).
import * as fs from "fs";
import * as path from "path";
import { NodeName } from "../model/topology";

/** The lab's cgroup in each hierarchy nspawn uses: cgroup v2's and, on a hybrid host, name=systemd. */
export function labCgroupRoots(mounts = fs.readFileSync("/proc/self/mounts", "utf8")): string[] {
  return mounts
    .split("\n")
    .map((l) => l.split(" "))
    .filter(
      ([, , type, options]) =>
        type === "cgroup2" || (type === "cgroup" && options.split(",").includes("name=systemd")),
    )
    .map(([, mountpoint]) => path.join(mountpoint, "webstack-lab"));
}

/**
 * The command, run in the node's own cgroups: a shell makes them, moves itself in and execs the
 * command (whose PID and command line are then the command's own, as `startProcess` records).
 */
export function inNodeCgroups(node: NodeName, command: string[], roots = labCgroupRoots()) {
  const dirs = roots.map((root) => path.join(root, node));
  const script = `for g in ${dirs.join(" ")}; do mkdir -p "$g" && echo $$ > "$g/cgroup.procs" || exit 1; done; exec "$@"`;
  return ["/bin/sh", "-c", script, "sh", ...command];
}

/**
 * Removes the lab's cgroups, deepest first, once whatever a node left in them is killed (only the
 * lab's processes are there: a node's init that outlived its nspawn, and its children); returns
 * those still there.
 */
export async function removeLabCgroups(roots = labCgroupRoots()): Promise<string[]> {
  for (const root of roots.filter((r) => fs.existsSync(path.join(r, "cgroup.kill")))) {
    fs.writeFileSync(path.join(root, "cgroup.kill"), "1");
    const events = path.join(root, "cgroup.events");
    for (let i = 0; i < 50 && /^populated 1$/m.test(fs.readFileSync(events, "utf8")); i++)
      await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const left: string[] = [];
  const remove = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }))
      if (entry.isDirectory()) remove(path.join(dir, entry.name));
    try {
      fs.rmdirSync(dir);
    } catch {
      left.push(dir);
    }
  };
  for (const root of roots) if (fs.existsSync(root)) remove(root);
  return left;
}

/** Every process in a cgroup and the cgroups under it. */
function processesIn(dir: string): number[] {
  if (!fs.existsSync(dir)) return [];
  const own = fs
    .readFileSync(path.join(dir, "cgroup.procs"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map(Number);
  const children = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => processesIn(path.join(dir, entry.name)));
  return [...own, ...children];
}

/**
 * The memory a node's processes use, in MiB: the sum of their proportional set sizes (PSS: each
 * shared page split between its sharers), read from the host's /proc for every process in the
 * node's cgroup. The page cache is not in it (the host's memory controller may not be the
 * lab's); a process that ends while it is read counts for nothing.
 */
export function nodeMemoryMiB(node: NodeName, roots = labCgroupRoots()): number {
  const pids = [...new Set(roots.flatMap((root) => processesIn(path.join(root, node))))];
  let kib = 0;
  for (const pid of pids) {
    try {
      const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      kib += Number(/^Pss:\s+(\d+) kB$/m.exec(rollup)?.[1] ?? 0);
    } catch {
      // ended meanwhile
    }
  }
  return Math.round(kib / 1024);
}

/**
 * The CPU time a node's processes have used so far, in ms: `usage_usec` of its cgroup v2's
 * cpu.stat, which the kernel keeps whether or not the cpu controller is enabled there (on a hybrid
 * host too) and which keeps the time of processes that have ended.
 */
export function nodeCpuMs(node: NodeName, roots = labCgroupRoots()): number {
  for (const root of roots) {
    const stat = path.join(root, node, "cpu.stat");
    if (fs.existsSync(stat))
      return Number(/^usage_usec (\d+)$/m.exec(fs.readFileSync(stat, "utf8"))?.[1]) / 1000;
  }
  throw new Error(`no cpu.stat in ${node}'s cgroups (${roots.join(", ")}): is the lab up?`);
}
