// The backups' share of the app nodes' bundles (issue 20), per engine: the settings the node tool
// reads, the units, and on MySQL the repository Percona XtraBackup comes from. What the node tool
// does with them: tests/artifacts/test_webstack_backup.py (both engines) and the lab (MariaDB).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  BACKUP_ENV_PATH,
  DB_RESTORE_PATH,
  PERCONA_APT_KEY_FINGERPRINT,
  backupTimers,
  perconaXtrabackupSource,
} from "../cloud-init/backups";
import { NODE_ENV_PATH, renderAppNodeBundle } from "../cloud-init/appNode";
import { publishBundles } from "../cloud-init/bundle";
import { galeraMember } from "../cloud-init/database";
import { DEBIAN_RELEASE } from "../model/aptSources";
import { DbEngine } from "../model/config";
import { DbRole } from "../model/topology";
import {
  PROJECT_DIR,
  TOPOLOGY,
  commandWorks,
  envFileValues,
  shownKey,
  testNeeding,
  withGpg,
} from "./harness";
import { appNodeParams, bundleEntryOf, renderedAppNode } from "./rendererFixtures";

const withApt = testNeeding("apt-get", commandWorks("apt-get", ["--version"]));

describe.each(["mariadb", "mysql"] as DbEngine[])("on %s", (engine) => {
  const replica = renderedAppNode(engine, "replica");
  const primary = renderedAppNode(engine, "primary");

  test("the node tool's settings name the engine's own tools, client, service and config dir", () => {
    const tools =
      engine === "mariadb"
        ? { BACKUP_TOOL: "mariadb-backup", STREAM_TOOL: "mbstream", BINLOG_TOOL: "mariadb-binlog" }
        : { BACKUP_TOOL: "xtrabackup", STREAM_TOOL: "xbstream", BINLOG_TOOL: "mysqlbinlog" };
    for (const node of [replica, primary]) {
      const env = envFileValues(node.file(BACKUP_ENV_PATH));
      expect(env).toMatchObject({
        DB_ENGINE: engine,
        ...tools,
        DB_CLIENT: engine,
        DB_SERVICE: `${engine}.service`,
        DB_CONF_DIR: `/etc/mysql/${engine}.conf.d`,
        DATA_DIR: "/var/lib/mysql",
        BINLOG_PREFIX: "backups/binlog/s2/",
        FULL_PREFIX: "backups/full/",
      });
    }
  });

  test("s1 takes the nightly backup and has the restore command; s2 ships its binlogs", () => {
    const paths = (node: typeof replica) => node.bundle.files.map((f) => f.path);
    expect(paths(replica)).toEqual(
      expect.arrayContaining([
        "/etc/systemd/system/webstack-db-backup.service",
        "/etc/systemd/system/webstack-db-backup.timer",
        DB_RESTORE_PATH,
      ]),
    );
    expect(paths(replica)).not.toContain("/etc/systemd/system/webstack-binlog-ship.timer");
    expect(paths(primary)).toContain("/etc/systemd/system/webstack-binlog-ship.timer");
    expect(paths(primary)).not.toContain(DB_RESTORE_PATH);
    expect(replica.bundle.firstApply).toContainEqual([
      "systemctl",
      "enable",
      "--now",
      ...backupTimers("s1"),
    ]);
    expect(replica.file("/etc/systemd/system/webstack-db-backup.service").split("\n")).toContain(
      `ExecCondition=+/usr/bin/${engine} --protocol=socket --user=root --execute="DO 1"`,
    );
  });

  test("the bundle's repositories: Percona's on MySQL only, its package never in a bootstrap", () => {
    for (const node of [replica, primary]) {
      const sources = node.bundle.aptSources;
      expect(sources).toEqual(engine === "mysql" ? [perconaXtrabackupSource()] : []);
      // An applier from before aptSources ignores them: so must it their package.
      expect(node.bundle.packages).not.toContain("percona-xtrabackup-84");
      expect(node.bundle.packages).toContain("zstd");
      expect(node.doc.packages).not.toContain("percona-xtrabackup-84");
      const json = JSON.parse(publishBundles([node.bundle]).bundles[0].text);
      // Without a source the key is left out: MariaDB's bundles' bytes are as before it.
      expect("aptSources" in json).toBe(engine === "mysql");
    }
    expect(replica.bundle.packages.includes("mariadb-backup")).toBe(engine === "mariadb");
  });
});

describe("with database: galera (s1 and s2 members of one cluster)", () => {
  /** A member's bundle (stack "t"), and the same node's with replication. */
  const nodes = (role: DbRole) => {
    const params = appNodeParams("mariadb", role);
    const bundle = renderAppNodeBundle({
      ...params,
      cluster: "galera",
      galera: galeraMember("t", TOPOLOGY, params.node.name),
    });
    const file = (path: string) => bundleEntryOf(bundle, path).content;
    return { galera: { bundle, file }, replication: renderedAppNode("mariadb", role) };
  };
  // What only a restore needs, to replicate from the primary again as the replication user.
  const replicationKeys = [
    "DB_PRIMARY_IP",
    "DB_PRIMARY_PORT",
    "PRIMARY_SERVER_ID",
    "REPLICATION_PASSWORD_FILE",
    "CLIENT_TLS_FILE",
  ];

  test.each(["replica", "primary"] as DbRole[])(
    "the %s's backup settings are replication's without the primary and the replication user",
    (role) => {
      const { galera, replication } = nodes(role);
      const ours = envFileValues(galera.file(BACKUP_ENV_PATH));
      const theirs = envFileValues(replication.file(BACKUP_ENV_PATH));
      expect(Object.keys(theirs)).toEqual(expect.arrayContaining(replicationKeys));
      expect(ours).toEqual(
        Object.fromEntries(Object.entries(theirs).filter(([k]) => !replicationKeys.includes(k))),
      );
    },
  );

  test("s1 keeps the nightly backup and the restore command (which refuses), s2 its shipping", () => {
    for (const role of ["replica", "primary"] as DbRole[]) {
      const { galera, replication } = nodes(role);
      const backupFiles = (b: typeof galera.bundle) =>
        b.files
          .filter(
            (f) => f.path === DB_RESTORE_PATH || /webstack-(db-backup|binlog-ship)/.test(f.path),
          )
          .map((f) => [f.path, f.content]);
      expect(backupFiles(galera.bundle)).toEqual(backupFiles(replication.bundle));
      expect(galera.bundle.firstApply).toEqual(replication.bundle.firstApply);
    }
  });

  test("the node tool reads the mode where the node's own settings say it: node.env's DB_CLUSTER", () => {
    const tool = fs.readFileSync(
      path.join(PROJECT_DIR, "cloud-init/files/webstack-aws.py"),
      "utf8",
    );
    expect(tool).toContain(`NODE_ENV = "${NODE_ENV_PATH}"`);
    expect(tool).toContain('.get("DB_CLUSTER", "replication")');
    expect(envFileValues(nodes("replica").galera.file(NODE_ENV_PATH))).toMatchObject({
      DB_CLUSTER: "galera",
      DB_ROLE: "member",
    });
    expect(envFileValues(nodes("replica").replication.file(NODE_ENV_PATH)).DB_CLUSTER).toBe(
      "replication",
    );
  });
});

describe("Percona's repository (MySQL's XtraBackup)", () => {
  const source = perconaXtrabackupSource();

  test("XtraBackup 8.4 LTS for Debian 13 over HTTPS, its key inline", () => {
    expect(source.name).toBe("percona-xtrabackup-84");
    expect(source.packages).toEqual(["percona-xtrabackup-84"]);
    expect(source.content.split("\n").slice(0, 5)).toEqual([
      "Types: deb",
      "URIs: https://repo.percona.com/pxb-84-lts/apt",
      `Suites: ${DEBIAN_RELEASE}`,
      "Components: main",
      "Signed-By:",
    ]);
    expect(source.content).toContain("\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n");
    expect(source.content.endsWith(" -----END PGP PUBLIC KEY BLOCK-----\n")).toBe(true);
  });

  withGpg("the key inline is Percona's packaging key, by the pinned fingerprint", () => {
    // The key back out of the deb822 field, as apt reads it.
    const field = source.content.slice(source.content.indexOf("Signed-By:\n") + 11);
    const armored = field
      .split("\n")
      .filter((l) => l.startsWith(" "))
      .map((l) => (l === " ." ? "" : l.slice(1)))
      .join("\n");
    const lines = shownKey(`${armored}\n`);
    expect(lines.filter((l) => l.startsWith("pub:")).length).toBe(1);
    expect(lines.find((l) => l.startsWith("fpr:"))).toBe(
      `fpr:::::::::${PERCONA_APT_KEY_FINGERPRINT}:`,
    );
    expect(lines.find((l) => l.startsWith("uid:"))).toContain(
      "Percona Development Team (Packaging key) <info@percona.com>",
    );
  });

  withApt(
    "apt reads it as Percona's layout of trixie's main (no network: its index targets)",
    () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-apt-"));
      try {
        const parts = path.join(dir, "sources.list.d");
        fs.mkdirSync(parts);
        fs.writeFileSync(path.join(parts, `webstack-${source.name}.sources`), source.content);
        const apt = spawnSync(
          "apt-get",
          [
            ...[
              `Dir::State=${dir}/state`,
              `Dir::Cache=${dir}/cache`,
              "Dir::Etc::SourceList=/dev/null",
            ],
            ...[`Dir::Etc::SourceParts=${parts}`, "APT::Architecture=amd64"],
          ]
            .flatMap((o) => ["-o", o])
            .concat(["indextargets", "--no-release-info", "--format", "$(URI)"]),
          { encoding: "utf8" },
        );
        expect(apt.stderr).toBe("");
        expect(apt.status).toBe(0);
        const base = `https://repo.percona.com/pxb-84-lts/apt/dists/${DEBIAN_RELEASE}/main`;
        expect(apt.stdout.split("\n").filter(Boolean).sort()).toEqual([
          `${base}/binary-all/Packages`,
          `${base}/binary-amd64/Packages`,
        ]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
