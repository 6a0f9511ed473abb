// The lab's record of what `up` set up (state file, processes by PID), so `down` undoes it all.
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { NodeName } from "../model/topology";
import { LabNetwork } from "./labPlan";

export const STATE_DIR = process.env.WEBSTACK_LAB_STATE ?? "/var/lib/webstack-lab";
const STATE_FILE = path.join(STATE_DIR, "lab.json");
/** Pebble's root of the run (it makes a new one at every start): what the client trusts. */
export const ACME_ROOT = path.join(STATE_DIR, "internet", "acme-root.pem");

/** What `up` set up, written as it goes, so `down` undoes even a half-finished `up`. */
export interface LabState {
  startedAt: string;
  processes: LabProcess[];
  mounts: string[];
  loops: string[];
  routes: string[];
  namespaces: string[];
  network?: LabNetwork;
  nodes?: NodeName[];
  outputs?: Record<string, unknown>;
  createdNspawnRunDir?: boolean;
  upSeconds?: number;
  /** The config `up` was given (`--set`), by full key: a later `up` reuses the lab only with the same. */
  upSets?: Record<string, string>;
}

/** A process the lab started: `match` is part of its command line, so a reused PID is not it. */
interface LabProcess {
  name: string;
  pid: number;
  match: string;
}

export function readState(): LabState | undefined {
  return fs.existsSync(STATE_FILE)
    ? (JSON.parse(fs.readFileSync(STATE_FILE, "utf8")) as LabState)
    : undefined;
}

export function saveState(state: LabState): void {
  fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
}

/** A fresh state, with the directories the lab writes to, saved before anything is set up. */
export function newState(network: LabNetwork, outputs: Record<string, unknown>): LabState {
  fs.mkdirSync(path.join(STATE_DIR, "logs"), { recursive: true });
  for (const node of network.nodeNames) fs.mkdirSync(nodeDir(node), { recursive: true });
  const state: LabState = {
    startedAt: new Date().toISOString(),
    processes: [],
    mounts: [],
    loops: [],
    routes: [],
    namespaces: [],
    network,
    nodes: [...network.nodeNames],
    outputs,
    createdNspawnRunDir: !fs.existsSync("/run/systemd/nspawn"),
  };
  saveState(state);
  return state;
}

export function nodeDir(node: NodeName): string {
  return path.join(STATE_DIR, "nodes", node);
}

/** Whether a recorded process still runs (its PID, with its own command line: not a reused PID). */
export function alive(pid: number, match: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(match);
  } catch {
    return false;
  }
}

/** Whether everything the lab started still runs. */
export function healthy(state: LabState): boolean {
  return state.processes.every((p) => alive(p.pid, p.match));
}

/** Starts a long-running process, detached, logging to STATE/logs/NAME.log, recorded by PID. */
export function startProcess(
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

/** Stops a recorded process by its PID: SIGTERM, then SIGKILL if it still runs after 15 s. */
export async function stopProcess(p: LabProcess): Promise<void> {
  if (!alive(p.pid, p.match)) return;
  process.kill(p.pid, "SIGTERM");
  const deadline = Date.now() + 15_000;
  while (alive(p.pid, p.match) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  if (alive(p.pid, p.match)) process.kill(p.pid, "SIGKILL");
}
