// `database: galera` booted for real (issue 21): s1 and s2 writable members of one MariaDB Galera
// cluster, the LB's garbd the third vote. Under a bounded load of reads and keyed writes, a member's
// database is killed, then a member is cut off from the others: no failed request, every
// acknowledged row once on both members, one history after each.
import { waitFor } from "../lab/commands";
import { CA_CERT_PATH } from "../cloud-init/nodeFiles";
import { LAB_TOPOLOGY, labTopology, nodeNamespace } from "../lab/labPlan";
import { inNamespace } from "../lab/namespaces";
import { execInNode, inNode } from "../lab/nodes";
import { getThroughLb, nodeSql, writeItems } from "../lab/runningStack";
import { AppNodeName, LB_NODE, PORTS } from "../model/topology";
import { IS_ROOT, labTest } from "./harness";
import { firewallMatrix, freshCollectorReading } from "./labProbes";
import {
  LoadReport,
  backendState,
  checksum,
  expectServed,
  lab,
  missingRows,
  runUnit,
  seedReads,
  underLoad,
} from "./labLoad";

/**
 * The longest a request waits while a member is lost: the survivor's commits wait until the group
 * evicts the silent member (Galera's evs.suspect_timeout, 5 s, and the view change), and the
 * member's return is one more view change. Measured 5.4–6.5 s on an idle machine and 8.9 s once
 * with the machine's two cores busy with other work; the bound keeps a margin over that, and is
 * far from what a wait for a timeout (60 s) would give.
 */
const MEMBER_LOSS_STALL_MS = 12_000;

/** The lab's topology with `database: galera`: its flows are the ones the firewalls must enforce. */
const GALERA_TOPOLOGY = labTopology({ "webstack:database": "galera" });

/** The wsrep status of a member's server, by variable name. */
function wsrep(node: AppNodeName): Record<string, string> {
  const lines = inNode(node, [
    "mariadb",
    "--batch",
    "--skip-column-names",
    "-e",
    "SHOW GLOBAL STATUS LIKE 'wsrep_%'",
  ]);
  return Object.fromEntries(
    lines
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t") as [string, string]),
  );
}

const synced = (node: AppNodeName) => {
  try {
    const s = wsrep(node);
    return s.wsrep_local_state_comment === "Synced" && s.wsrep_cluster_size === "3";
  } catch {
    return false; // restarting
  }
};

/**
 * The state transfers a member has received, by kind: incremental (IST: the writes it missed, from
 * the donor's cache) counted in its own log, full (SST: a whole copy by mariadb-backup) in its
 * donor's, where a transfer without `--bypass` is a full one.
 */
const transfers = (joiner: AppNodeName) => {
  const donor = joiner === "s1" ? "s2" : "s1";
  const log = (node: AppNodeName) => inNode(node, ["cat", "/var/log/mysql/error.log"]);
  const donations = log(donor)
    .split("\n")
    .filter(
      (l) =>
        l.includes("on DONOR side") &&
        l.includes(`--address '${LAB_TOPOLOGY.nodes[joiner].privateIp}:`),
    );
  return {
    ist: (log(joiner).match(/IST received/g) ?? []).length,
    sst: donations.filter((l) => !l.includes("--bypass")).length,
  };
};

/** The load's acknowledged rows: each on both members, and no other row of the load's on either. */
async function oneHistory(report: LoadReport): Promise<void> {
  const prefix = report.rows[0].note.replace(/\d+$/, "").replace(/'/g, "''");
  const count = `SELECT COUNT(*) FROM items WHERE note LIKE '${prefix}%'`;
  for (const node of ["s1", "s2"] as const) {
    await waitFor(`${node} holding every acknowledged row`, 60, () => {
      try {
        return missingRows(node, report.rows).length === 0;
      } catch {
        return false;
      }
    });
    expect(nodeSql(node, count)).toBe(String(report.rows.length));
  }
  await waitFor(
    "identical checksums of the app's table",
    30,
    () => checksum("s1") === checksum("s2"),
  );
}

beforeAll(() => {
  if (!IS_ROOT) return;
  lab(["up", "--set", "database=galera"]); // a running galera lab is reused as is; another is taken down
  seedReads(writeItems(20, "galera-seed"));
}, 30 * 60_000);

afterAll(() => {
  if (IS_ROOT) lab("down");
}, 5 * 60_000);

labTest(
  "three members over TLS (s1, s2 and the LB's arbitrator), both data members synced and writable",
  async () => {
    await waitFor(
      "both members synced in a cluster of three",
      60,
      () => synced("s1") && synced("s2"),
    );
    for (const node of ["s1", "s2"] as const) {
      const status = wsrep(node);
      expect(status.wsrep_cluster_status).toBe("Primary");
      expect(status.wsrep_ready).toBe("ON");
      // The group's traffic is TLS: the provider runs with socket.ssl.
      const options = nodeSql(node, "SELECT @@wsrep_provider_options");
      expect(options).toMatch(/\bsocket\.ssl = YES\b/);
      expect(nodeSql(node, "SELECT @@read_only")).toBe("0");
    }
    expect(inNode(LB_NODE, ["systemctl", "is-active", "garb.service"]).trim()).toBe("active");
    // Both answer writes through the LB (round-robin), each row on both members at once.
    const ids = writeItems(6, "galera-both");
    const writers = new Set(ids.map((id) => String(getThroughLb(`/items/${id}`).written_by)));
    expect([...writers].sort()).toEqual(["s1", "s2"]);
    for (const node of ["s1", "s2"] as const) {
      expect(nodeSql(node, `SELECT COUNT(*) FROM items WHERE note LIKE 'galera-both-%'`)).toBe("6");
    }
    expect(getThroughLb("/").role).toBe("member");
  },
  120_000,
);

labTest(
  "each member's collector reports it ready in a cluster of three; the LB runs garbd",
  async () => {
    for (const node of ["s1", "s2"] as const)
      await freshCollectorReading(
        node,
        /collected DatabaseUp=1 GaleraReady=1 GaleraClusterSize=3 /,
      );
    expect(inNode(LB_NODE, ["pidof", "garbd"]).trim()).toMatch(/^\d+$/);
  },
  120_000,
);

labTest(
  "the firewalls follow galera's flow table: group traffic between members and the arbitrator, transfers between members, no 3306 between nodes",
  () => {
    const ports = new Set<number>([...GALERA_TOPOLOGY.flows.map((f) => f.port), PORTS.mysql]);
    // The transfer ports listen only while a transfer runs: admitted, they answer with a reset.
    const { actual, expected } = firewallMatrix(
      ports,
      GALERA_TOPOLOGY.flows,
      new Set([PORTS.galeraIst, PORTS.galeraSst]),
    );
    console.log(
      `galera firewall matrix: ${Object.keys(actual).length} probes over ports ${[...ports].join(", ")}`,
    );
    expect(actual).toEqual(expected);
    expect(actual[`s1 -> s2:${PORTS.galera}`]).toBe("open");
    expect(actual[`lb -> s1:${PORTS.galera}`]).toBe("open");
    expect(actual[`s2 -> lb:${PORTS.galera}`]).toBe("open");
    expect(actual[`s1 -> s2:${PORTS.mysql}`]).toBe("filtered");
    expect(actual[`internet -> lb:${PORTS.galera}`]).toBe("filtered");
  },
  60_000,
);

labTest(
  "s2's database killed under reads and keyed writes: no failed request, no row lost or doubled; it rejoins by IST",
  async () => {
    const before = transfers("s2");
    const report = await underLoad(
      "s2's database killed",
      { rate: 40, seconds: 40, mix: "root=1,read=1,write=1", keyedWrites: 5 },
      async () => {
        // A crash: SIGKILL, no shutdown; its unit restarts it (Restart=on-abnormal, 5 s later),
        // crash recovery, then it rejoins the group and catches up on what it missed.
        const pid = inNode("s2", ["pidof", "mariadbd"]).trim();
        inNode("s2", ["kill", "-KILL", pid]);
        await waitFor("s2 rejoined and synced", 30, () => synced("s2"));
        await waitFor("HAProxy serving from s2 again", 15, () => backendState("s2") === "UP");
      },
    );
    expectServed(report, MEMBER_LOSS_STALL_MS);
    expect(report.rows.length).toBeGreaterThan(100);
    await oneHistory(report);
    const after = transfers("s2");
    expect(after.ist).toBeGreaterThan(before.ist);
    expect(after.sst).toBe(before.sst);
  },
  180_000,
);

labTest(
  "s1's database cut off from s2 and the LB's arbitrator: the side with the arbitrator keeps writing, s1 refuses and its /healthz takes it out; healed, one history",
  async () => {
    // The group's ports only: HAProxy still reaches s1's Nginx, so s1 leaves the LB by failing
    // its own /healthz (its server outside the primary component), not by a dead link.
    const s1 = nodeNamespace("s1");
    const others = [LAB_TOPOLOGY.nodes.s2.privateIp, LAB_TOPOLOGY.nodes.lb.privateIp].join(", ");
    const ports = [PORTS.galera, PORTS.galeraIst, PORTS.galeraSst].join(", ");
    const cut = () =>
      expect(
        inNamespace(s1, ["nft", "-f", "-"], {
          input: [
            "table inet wslab_partition {",
            "  chain input { type filter hook input priority -10; policy accept;",
            `    ip saddr { ${others} } tcp dport { ${ports} } drop;`,
            `    ip saddr { ${others} } tcp sport { ${ports} } drop; }`,
            "  chain output { type filter hook output priority -10; policy accept;",
            `    ip daddr { ${others} } tcp dport { ${ports} } drop;`,
            `    ip daddr { ${others} } tcp sport { ${ports} } drop; }`,
            "}",
          ].join("\n"),
        }).status,
      ).toBe(0);
    const s1Name = LAB_TOPOLOGY.nodes.s1.internalName;
    const ownHealth = () =>
      inNode("s1", [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        CA_CERT_PATH,
        "--resolve",
        `${s1Name}:${PORTS.https}:127.0.0.1`,
        `https://${s1Name}/healthz`,
      ]);
    let health = "";
    const heal = () =>
      expect(inNamespace(s1, ["nft", "delete", "table", "inet", "wslab_partition"]).status).toBe(0);
    const before = transfers("s1");
    let refused = "";
    const report = await underLoad(
      "s1's database partitioned",
      { rate: 40, seconds: 40, mix: "root=1,read=1,write=1", keyedWrites: 5 },
      async () => {
        cut();
        try {
          await waitFor("s1 out of the primary component", 20, () => {
            try {
              return wsrep("s1").wsrep_cluster_status !== "Primary";
            } catch {
              return false;
            }
          });
          // Its own app, on the node itself: the database refuses (no split brain).
          refused = inNode("s1", [
            "bash",
            "-c",
            "mariadb webstack -e \"INSERT INTO items (note, written_by) VALUES ('minority', 's1')\" 2>&1; true",
          ]);
          await waitFor("HAProxy marking s1 down", 15, () => backendState("s1").startsWith("DOWN"));
          health = ownHealth();
          await new Promise((r) => setTimeout(r, 3000));
        } finally {
          heal();
        }
        await waitFor("s1 rejoined and synced", 30, () => synced("s1"));
        await waitFor("HAProxy serving from s1 again", 15, () => backendState("s1") === "UP");
      },
    );
    expect(refused).toMatch(/ERROR 1047 .*WSREP has not yet prepared node for application use/);
    expect(health).toBe("503");
    expectServed(report, MEMBER_LOSS_STALL_MS);
    expect(report.nodes.s2).toBeGreaterThan(0);
    await oneHistory(report);
    expect(nodeSql("s2", "SELECT COUNT(*) FROM items WHERE note = 'minority'")).toBe("0");
    const after = transfers("s1");
    expect(after.ist).toBeGreaterThan(before.ist);
    expect(after.sst).toBe(before.sst);
  },
  180_000,
);

labTest(
  "s1 backs up as a member (its cluster position in the manifest); a restore refuses this mode",
  () => {
    const backup = runUnit("s1", "webstack-db-backup.service");
    expect(backup).toMatch(
      /full backup backups\/full\/\d{8}T\d{6}Z\/ in [\d.]+ s \(galera position [0-9a-f-]{36}:\d+\)/,
    );
    const restore = execInNode("s1", [
      "webstack-db-restore",
      "--to",
      "2026-01-01 00:00:00",
      "--yes",
    ]);
    expect(restore.status).not.toBe(0);
    expect(restore.stderr).toContain("database: galera");
    // Refused before anything was touched: s1 still a synced member.
    expect(synced("s1")).toBe(true);
  },
  5 * 60_000,
);
