// Undoing what `up` recorded, in reverse, and finding anything a lab could have left on the host.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { labCgroupRoots, removeLabCgroups } from "./cgroups";
import { alive, LabState, readState, STATE_DIR, stopProcess } from "./labState";

const quiet = (command: string, args: string[]) => spawnSync(command, args, { encoding: "utf8" });

/** Stops the recorded processes and removes the mounts, loop devices, namespaces and routes. */
export async function tearDown(state: LabState): Promise<void> {
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
  await removeLabCgroups();
  for (const loop of state.loops) quiet("losetup", ["-d", loop]);
  for (const ns of [...state.namespaces].reverse()) {
    quiet("ip", ["netns", "del", ns]);
    fs.rmSync(path.join("/etc/netns", ns), { recursive: true, force: true });
  }
  for (const range of state.routes) quiet("ip", ["route", "del", "blackhole", range]);
  if (state.createdNspawnRunDir) fs.rmSync("/run/systemd/nspawn", { recursive: true, force: true });
  if (fs.existsSync("/etc/netns") && fs.readdirSync("/etc/netns").length === 0)
    fs.rmdirSync("/etc/netns");
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
  found.push(
    ...labCgroupRoots()
      .filter((root) => fs.existsSync(root))
      .map((c) => `cgroup ${c}`),
  );
  return found;
}
