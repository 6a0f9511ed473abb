// `npm run lab -- security [--json]`: each booted node's services as its own systemd scores them
// (`systemd-analyze security`, live): webstack's against their ceilings (model/exposure.ts), the
// packaged ones (Nginx, HAProxy, MariaDB, the agents where installed) as Debian ships them.
import { NodeName } from "../model/topology";
import { PACKAGED_SERVICES, UNIT_EXPOSURE, parseExposure } from "../model/exposure";
import { LabError } from "./commands";
import { readState } from "./labState";
import { execInNode, inNode } from "./nodes";

/** One service on one node, as its systemd scores it. */
export interface ServiceExposure {
  readonly unit: string;
  readonly exposure: number;
  /** webstack's services: the most they may show. */
  readonly ceiling?: number;
  /** The packaged services: the drop-ins changing Debian's unit (webstack adds none that sandbox). */
  readonly dropIns?: readonly string[];
}

/** The services a node has loaded, of webstack's and the packaged ones. */
function loadedServices(node: NodeName): string[] {
  const candidates = [...UNIT_EXPOSURE.map((u) => u.unit), ...PACKAGED_SERVICES];
  return candidates.filter(
    (unit) =>
      execInNode(node, [
        "systemctl",
        "show",
        "--property=LoadState",
        "--value",
        unit,
      ]).stdout.trim() === "loaded",
  );
}

/** Each loaded service's exposure on a node, webstack's first. */
export function nodeExposure(node: NodeName): ServiceExposure[] {
  const units = loadedServices(node);
  const scores = parseExposure(
    inNode(node, ["systemd-analyze", "security", "--no-pager", ...units]),
  );
  return units.map((unit) => {
    if (scores[unit] === undefined) throw new LabError(`${node}: no exposure for ${unit}`);
    const own = UNIT_EXPOSURE.find((u) => u.unit === unit);
    if (own) return { unit, exposure: scores[unit], ceiling: own.ceiling };
    const dropIns = inNode(node, ["systemctl", "show", "--property=DropInPaths", "--value", unit])
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    return { unit, exposure: scores[unit], dropIns };
  });
}

export async function security(options: readonly string[]): Promise<void> {
  const state = readState();
  if (!state?.upSeconds || !state.network)
    throw new LabError("the lab is not up: `npm run lab -- up` first");
  const names = state.network.nodeNames;
  const report = Object.fromEntries(names.map((node) => [node, nodeExposure(node)]));
  if (options.includes("--json")) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  const version = inNode(names[0], ["systemd-analyze", "--version"]).split("\n")[0];
  const lines = [`systemd-analyze security on each node (live; ${version}):`];
  for (const node of names)
    for (const s of report[node])
      lines.push(
        `  ${node.padEnd(3)} ${s.unit.padEnd(34)} ${s.exposure.toFixed(1)}  ${
          s.ceiling !== undefined
            ? `ceiling ${s.ceiling.toFixed(1)}${s.exposure <= s.ceiling ? "" : "  OVER"}`
            : `Debian's unit${s.dropIns?.length ? `, drop-ins: ${s.dropIns.join(" ")}` : ""}`
        }`,
      );
  console.log(lines.join("\n"));
}
