// The lab's firewalls: generated from the flows, valid for nft, and filtering exactly as the
// security groups would (probed across scratch network namespaces).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderNftables, unfilteredAddresses } from "../lab/nftables";
import { admits, buildTopology, flowsInto, flowsOutOf, NodeName, PORTS } from "../model/topology";
import { IS_ROOT, PROJECT_DIR, commandWorks, testNeeding } from "./harness";

const topology = buildTopology("10.40.0.0/16");
const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-nft-"));
afterAll(() => fs.rmSync(SCRATCH, { recursive: true, force: true }));

const probeTest = testNeeding(
  "root and nftables",
  IS_ROOT && commandWorks("nft", ["--version"]) && commandWorks("unshare", ["--version"]),
);

function rulesetFile(node: NodeName): string {
  const file = path.join(SCRATCH, `${node}.nft`);
  fs.writeFileSync(file, renderNftables(topology, node));
  return file;
}

describe("generated rulesets", () => {
  test.each(["lb", "s1", "s2"] as NodeName[])(
    "%s: default drop both ways, one accept per flow",
    (node) => {
      const lines = renderNftables(topology, node)
        .split("\n")
        .map((l) => l.trim());
      expect(lines.filter((l) => l.startsWith("type filter hook"))).toEqual([
        "type filter hook input priority filter; policy drop;",
        "type filter hook output priority filter; policy drop;",
      ]);
      const accepts = lines.filter((l) => / dport \d+ accept/.test(l));
      expect(accepts).toHaveLength(flowsInto(node).length + flowsOutOf(node).length);
    },
  );

  test("what security groups never filter stays open: metadata, time, the VPC resolver", () => {
    expect(unfilteredAddresses("10.40.0.0/16")).toEqual([
      "169.254.169.254",
      "169.254.169.123",
      "169.254.169.253",
      "10.40.0.2",
    ]);
  });

  probeTest("nft accepts every node's ruleset", () => {
    for (const node of ["lb", "s1", "s2"] as NodeName[]) {
      const result = spawnSync("unshare", ["-n", "nft", "-c", "-f", rulesetFile(node)], {
        encoding: "utf8",
      });
      expect({ node, code: result.status, stderr: result.stderr }).toEqual({
        node,
        code: 0,
        stderr: "",
      });
    }
  });
});

const IP: Record<NodeName | "outside", string> = {
  lb: "10.40.0.10",
  s1: "10.40.192.10",
  s2: "10.40.128.10",
  outside: "10.40.250.10",
};

/** Connections that must succeed, written out by hand from the seed's rules; all others must fail. */
const OPEN: Record<NodeName, string[]> = {
  // 0.0.0.0/0 includes the other nodes, as it does for a security group.
  // The app nodes have no port 80 outbound, so the LB's port 80 is the outside's only.
  lb: ["outside:80", "outside:443", "s1:443", "s2:443"],
  s1: ["lb:443", "s2:3306"],
  s2: ["lb:443", "s1:3306"],
};

/**
 * What each node's own ruleset admits, whatever the source's egress: the probe below loads only the
 * destination's ruleset (its sources have none), and a rule from the internet matches every address,
 * the other nodes' included. The sources' egress is the booted lab's egress matrix's to check.
 */
const INGRESS_OPEN: Record<NodeName, string[]> = {
  lb: ["outside:80", "outside:443", "s1:80", "s1:443", "s2:80", "s2:443"],
  s1: ["lb:443", "s2:3306"],
  s2: ["lb:443", "s1:3306"],
};

test("the security-group model the lab's matrix expects agrees with the hand-written table", () => {
  const sources = ["lb", "s1", "s2", "outside"] as const;
  for (const node of ["lb", "s1", "s2"] as NodeName[]) {
    const open = sources
      .filter((source) => source !== node)
      .flatMap((source) =>
        [...Object.values(PORTS), 22, 8080]
          .filter((port) => admits(source === "outside" ? "internet" : source, node, port))
          .map((port) => `${source}:${port}`),
      );
    expect({ node, open: open.sort() }).toEqual({ node, open: [...OPEN[node]].sort() });
  }
});

describe("probed across namespaces", () => {
  probeTest.each(["lb", "s1", "s2"] as NodeName[])(
    "%s admits exactly its flows",
    (node) => {
      const sources = (["lb", "s1", "s2", "outside"] as const).filter((s) => s !== node);
      const ports = node === "lb" ? "80,443,3306,22" : "443,3306,22";
      const result = spawnSync(
        "bash",
        [
          path.join(PROJECT_DIR, "lab", "firewall-probe.sh"),
          rulesetFile(node),
          IP[node],
          "10.40.0.0/16",
          ports,
          ...sources.map((s) => IP[s]),
        ],
        { encoding: "utf8", timeout: 90_000 },
      );
      expect(result.status).toBe(0);
      const byAddress = Object.fromEntries(Object.entries(IP).map(([name, ip]) => [ip, name]));
      const open = result.stdout
        .trim()
        .split("\n")
        .map((line) => line.split(" "))
        .filter(([, , state]) => state === "open")
        .map(([source, port]) => `${byAddress[source]}:${port}`);
      expect(open.sort()).toEqual([...INGRESS_OPEN[node]].sort());
      expect(result.stdout.trim().split("\n")).toHaveLength(
        sources.length * ports.split(",").length,
      );
    },
    120_000,
  );
});
