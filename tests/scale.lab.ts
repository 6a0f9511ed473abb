// `appNodeCount: 3` booted for real (issue 21): s3 beside s1 in the other AZ's subnet, a replica of
// s2 like s1; HAProxy round-robins over three backends; the firewalls follow the larger flow table.
// Then with `database: galera`: three members, no arbitrator.
import { waitFor } from "../lab/commands";
import { labNetwork, labTopology } from "../lab/labPlan";
import { nodeMemoryMiB } from "../lab/cgroups";
import { execInNode, inNode } from "../lab/nodes";
import { getThroughLb, nodeSql, writeItems } from "../lab/runningStack";
import { AppNodeName, LB_NODE, PRIMARY_NODE, PORTS } from "../model/topology";
import { IS_ROOT, labTest } from "./harness";
import { answeringNode, firewallMatrix } from "./labProbes";
import { backendState, checksum, lab } from "./labLoad";

const SETS = { "webstack:appNodeCount": "3" };
const TOPOLOGY = labTopology(SETS);
const NETWORK = labNetwork(TOPOLOGY);
const REPLICAS = TOPOLOGY.appNodes.filter((node) => node !== PRIMARY_NODE);

beforeAll(() => {
  if (!IS_ROOT) return;
  lab(["up", "--set", "appNodeCount=3"]); // a lab booted with other sets is taken down first
}, 30 * 60_000);

afterAll(() => {
  if (IS_ROOT) lab("down");
}, 5 * 60_000);

labTest(
  "four nodes boot; HAProxy's three backends are UP and take turns (round-robin)",
  async () => {
    expect(TOPOLOGY.appNodes).toEqual(["s1", "s2", "s3"]);
    await waitFor("s1, s2 and s3 UP in HAProxy", 60, () =>
      TOPOLOGY.appNodes.every((node) => backendState(node) === "UP"),
    );
    const served = Array.from({ length: 12 }, answeringNode);
    // Sequential requests: every three in a row went to the three backends.
    for (let i = 0; i + 3 <= served.length; i++)
      expect(new Set(served.slice(i, i + 3))).toEqual(new Set(TOPOLOGY.appNodes));
    const memory = Object.fromEntries(
      TOPOLOGY.nodeNames.map((node) => [node, nodeMemoryMiB(node)]),
    );
    const total = Object.values(memory).reduce((a, b) => a + b, 0);
    console.log(
      `memory used by each node's processes (PSS, MiB): ${Object.entries(memory)
        .map(([node, mib]) => `${node} ${mib}`)
        .join(", ")}; total ${total}`,
    );
    for (const mib of Object.values(memory)) expect(mib).toBeGreaterThan(0);
  },
);

labTest(
  "s3 is a replica of s2 like s1: a write through the LB reaches both, one history",
  async () => {
    for (const replica of REPLICAS) {
      const status = inNode(replica, ["mariadb", "-e", "SHOW REPLICA STATUS\\G"]);
      expect(status).toMatch(/Slave_IO_Running: Yes|Replica_IO_Running: Yes/);
      expect(status).toMatch(/Slave_SQL_Running: Yes|Replica_SQL_Running: Yes/);
      expect(status).toContain(`Master_Host: ${TOPOLOGY.nodes[PRIMARY_NODE].privateIp}`);
      expect(nodeSql(replica, "SELECT @@read_only")).toBe("1");
    }
    const ids = writeItems(9, "scale");
    const count = `SELECT COUNT(*) FROM items WHERE id IN (${ids.join(",")})`;
    expect(nodeSql(PRIMARY_NODE, count)).toBe("9");
    for (const replica of REPLICAS)
      await waitFor(`${replica} holding the writes`, 30, () => nodeSql(replica, count) === "9");
    await waitFor("equal checksums on all three", 30, () =>
      REPLICAS.every((replica) => checksum(replica) === checksum(PRIMARY_NODE)),
    );
  },
);

labTest(
  "the firewalls are the three-node flow table: s3 reaches s2's database, nothing else more",
  () => {
    const ports = new Set<number>([PORTS.https, PORTS.mysql, PORTS.http, PORTS.galera]);
    const { actual, expected } = firewallMatrix(ports, TOPOLOGY.flows, new Set(), NETWORK);
    expect(actual).toEqual(expected);
    // The rows this test is about, spelled out: s3 is an app node like s1, and no more.
    const s3 = NETWORK.nodes.s3;
    expect(expected[`lb -> s3:${PORTS.https}`]).toBe("open");
    expect(expected[`s3 -> s2:${PORTS.mysql}`]).toBe("open");
    expect(expected[`s2 -> s3:${PORTS.mysql}`]).toBe("filtered");
    expect(expected[`s1 -> s3:${PORTS.mysql}`]).toBe("filtered");
    expect(expected[`internet -> s3:${PORTS.https}`]).toBe("filtered");
    expect(s3).toBe(TOPOLOGY.nodes.s3.privateIp);
  },
);

/** The wsrep status of a member's server, by variable name ({} while it restarts). */
function wsrep(node: AppNodeName): Record<string, string> {
  const r = execInNode(node, [
    "mariadb",
    "--batch",
    "--skip-column-names",
    "-e",
    "SHOW GLOBAL STATUS LIKE 'wsrep_%'",
  ]);
  if (r.status !== 0) return {};
  return Object.fromEntries(
    r.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t") as [string, string]),
  );
}

labTest(
  "galera with three app nodes: three members and no arbitrator, each writable, one history; the LB outside the group",
  async () => {
    const sets = { ...SETS, "webstack:database": "galera" };
    const topology = labTopology(sets);
    lab(["up", "--set", "appNodeCount=3", "--set", "database=galera"]);
    await waitFor("three members synced in a cluster of three", 120, () =>
      topology.appNodes.every((node) => {
        const s = wsrep(node);
        return s.wsrep_local_state_comment === "Synced" && s.wsrep_cluster_size === "3";
      }),
    );
    for (const node of topology.appNodes) {
      expect(wsrep(node).wsrep_cluster_status).toBe("Primary");
      expect(nodeSql(node, "SELECT @@wsrep_provider_options")).toMatch(/\bsocket\.ssl = YES\b/);
    }
    // An odd count needs no arbitrator: the LB has no garbd, and no Galera port opens to it.
    expect(execInNode(LB_NODE, ["dpkg-query", "-W", "galera-arbitrator-4"]).status).not.toBe(0);
    const ids = writeItems(9, "scale-galera");
    const writers = new Set(ids.map((id) => String(getThroughLb(`/items/${id}`).written_by)));
    expect([...writers].sort()).toEqual(["s1", "s2", "s3"]);
    const count = `SELECT COUNT(*) FROM items WHERE id IN (${ids.join(",")})`;
    for (const node of topology.appNodes) expect(nodeSql(node, count)).toBe("9");
    await waitFor("equal checksums on the three members", 30, () =>
      topology.appNodes.every((node) => checksum(node) === checksum(PRIMARY_NODE)),
    );
    const ports = new Set<number>([PORTS.galera, PORTS.galeraIst, PORTS.galeraSst, PORTS.mysql]);
    // IST and SST listen only while a transfer runs: admitted, they answer "closed".
    const idle = new Set<number>([PORTS.galeraIst, PORTS.galeraSst]);
    const { actual, expected } = firewallMatrix(ports, topology.flows, idle, labNetwork(topology));
    expect(actual).toEqual(expected);
    expect(expected[`lb -> s3:${PORTS.galera}`]).toBe("filtered");
    expect(expected[`s3 -> s1:${PORTS.galera}`]).toBe("open");
  },
  20 * 60_000,
);
