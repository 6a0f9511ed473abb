// The host under the lab: Linux and root, the tools it runs, and its ranges blackholed while up.
import * as path from "path";
import { LabError, log, PROJECT_DIR, run } from "./commands";
import { LabNetwork } from "./labPlan";
import { LabState, saveState } from "./labState";

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
  "nghttp2-client", // h2load: the benchmark's HTTP/2 client
];

export function checkHost(): void {
  if (process.platform !== "linux") throw new LabError("the lab needs Linux (network namespaces)");
  if (process.getuid?.() !== 0) throw new LabError("the lab needs root: run it with sudo");
}

export function installHostPackages(): void {
  const out = run("bash", [
    path.join(PROJECT_DIR, "scripts", "install-debian-packages.sh"),
    ...HOST_PACKAGES,
  ]).trim();
  if (out) log(out);
}

/** The lab's ranges go nowhere from the host: nothing addressed to them can leave this machine. */
export function blackholeRanges(state: LabState, network: LabNetwork): void {
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
