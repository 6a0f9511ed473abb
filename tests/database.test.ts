// An app node's database config per engine and role: server, TLS, read-only, replication, users.
import { appNodePackages, databaseParams } from "../cloud-init/appNode";
import { backupPackages } from "../cloud-init/backups";
import { NODE_TOOL_PATH } from "../cloud-init/bundle";
import { debianAptConfig } from "../model/aptSources";
import {
  DB_BOOTSTRAP_PATH,
  DatabaseParams,
  MYSQL_APT_KEY_FINGERPRINT,
  galeraMember,
  renderPrimarySql,
  renderReplicaSql,
  renderServerConfig,
  renderLateConfig,
} from "../cloud-init/database";
import { DbEngine } from "../model/config";
import { DbRole } from "../model/topology";
import { TOPOLOGY } from "./harness";
import { appNodeParams, renderedAppNode } from "./rendererFixtures";

const S1 = TOPOLOGY.nodes.s1.privateIp;
const S2 = TOPOLOGY.nodes.s2.privateIp;

const dbParams = (engine: DbEngine, role: DbRole): DatabaseParams =>
  databaseParams(appNodeParams(engine, role));

const lines = (text: string) => text.split("\n");
const ENV = "/etc/webstack/node.env";

describe.each([
  ["mariadb", "primary"],
  ["mariadb", "replica"],
  ["mysql", "primary"],
  ["mysql", "replica"],
] as [DbEngine, DbRole][])("%s %s", (engine, role) => {
  const p = dbParams(engine, role);
  const server = lines(renderServerConfig(p));
  const tls = lines(renderLateConfig(p));
  const { text, doc, bundle } = renderedAppNode(engine, role);

  test("identity, binlog and bind address", () => {
    expect(server).toEqual(
      expect.arrayContaining([
        `server_id = ${role === "primary" ? 2 : 1}`,
        "log_bin = mysql-bin",
        "binlog_format = ROW",
        `bind_address = ${role === "primary" ? S2 : S1}`,
        "skip_name_resolve = ON",
      ]),
    );
  });

  test("GTID settings", () => {
    const expected =
      engine === "mariadb"
        ? [
            `gtid_domain_id = ${role === "primary" ? 2 : 1}`,
            "gtid_strict_mode = ON",
            "log_slave_updates = ON",
          ]
        : ["gtid_mode = ON", "enforce_gtid_consistency = ON", "log_replica_updates = ON"];
    expect(server).toEqual(expect.arrayContaining(expected));
  });

  test("durable commits, with the settings a bundle brings: the redo log and the binlog flushed at each commit (MySQL 8.4's defaults)", () => {
    const durability = (l: string) => /^(innodb_flush_log_at_trx_commit|sync_binlog)\b/.test(l);
    expect(tls.filter(durability)).toEqual(
      engine === "mariadb" ? ["innodb_flush_log_at_trx_commit = 1", "sync_binlog = 1"] : [],
    );
    expect(server.filter(durability)).toEqual([]);
  });

  test("the server section the engine reads", () => {
    expect(server[2]).toBe(engine === "mariadb" ? "[mariadbd]" : "[mysqld]");
    expect(tls[1]).toBe(engine === "mariadb" ? "[mariadbd]" : "[mysqld]");
  });

  test("read-only on the replica only, as the engine allows", () => {
    const all = [...server, ...tls];
    if (role === "primary") {
      expect(all.filter((l) => /read_only/.test(l))).toEqual([]);
    } else if (engine === "mariadb") {
      // MariaDB refuses to start with super_read_only.
      expect(server).toContain("read_only = ON");
      expect(text).not.toMatch(/super_read_only/);
    } else {
      expect(tls).toEqual(expect.arrayContaining(["read_only = ON", "super_read_only = ON"]));
    }
  });

  test("the replica applies side by side, committing in the primary's order; the primary's settings untouched", () => {
    const apply = [...server, ...tls].filter((l) => /parallel/.test(l));
    if (role === "primary" || engine === "mysql") expect(apply).toEqual([]);
    else
      expect(tls.filter((l) => /parallel/.test(l))).toEqual([
        "slave_parallel_threads = 4",
        "slave_parallel_mode = optimistic",
      ]);
  });

  test("TLS required off the socket, with the node's certificate and the private CA", () => {
    expect(tls).toEqual(
      expect.arrayContaining([
        "ssl_ca = /etc/mysql/webstack/ca.crt",
        "ssl_cert = /etc/mysql/webstack/node.crt",
        "ssl_key = /etc/mysql/webstack/node.key",
        "tls_version = TLSv1.2,TLSv1.3",
        "require_secure_transport = ON",
        "log_error = /var/log/mysql/error.log",
        "slow_query_log_file = /var/log/mysql/slow.log",
      ]),
    );
    // Not before the boot script has made the log directory.
    expect(server.filter((l) => l.includes("/var/log/mysql"))).toEqual([]);
  });

  test("a restarted replica resumes by itself: no skip_replica_start in anything the node runs with", () => {
    expect(text).not.toMatch(/skip[-_](replica|slave)[-_]start/);
    // The node tool's restore sets it for the restored past only, until --resume
    // (tests/artifacts/test_webstack_backup.py): every other file of the bundle is the node's own.
    const files = bundle.files.filter((f) => f.path !== NODE_TOOL_PATH);
    expect(files.length).toBe(bundle.files.length - 1);
    expect(JSON.stringify({ ...bundle, files })).not.toMatch(/skip[-_](replica|slave)[-_]start/);
  });

  test("the server config is in the bootstrap, before packages; the late config in the bundle, installed by the boot script or a change", () => {
    const confDir = engine === "mariadb" ? "/etc/mysql/mariadb.conf.d" : "/etc/mysql/mysql.conf.d";
    const bootPaths = doc.write_files.map((f) => f.path);
    expect(bootPaths).toContain(
      engine === "mariadb" ? `${confDir}/60-webstack.cnf` : `${confDir}/webstack.cnf`,
    );
    expect(bootPaths.filter((path) => path.startsWith(confDir))).toHaveLength(1);
    const bundlePaths = bundle.files.map((f) => f.path);
    expect(bundlePaths.filter((path) => path.startsWith(confDir))).toEqual([]);
    const late =
      engine === "mariadb"
        ? "/etc/webstack/db/61-webstack-late.cnf"
        : "/etc/webstack/db/webstack-late.cnf";
    expect(bundle.files.find((f) => f.path === late)?.onChange).toEqual([
      "/usr/local/sbin/webstack-db-late-config",
    ]);
  });

  test("only this role's SQL ships, readable by root alone", () => {
    const sql = bundle.files.filter((f) => f.path.endsWith(".sql"));
    expect(sql.map((f) => [f.path, f.mode])).toEqual([[`/etc/webstack/db/${role}.sql`, "0600"]]);
  });

  test("packages", () => {
    expect(doc.packages).toEqual(
      expect.arrayContaining([
        "nginx",
        "gunicorn",
        "python3-pymysql",
        "python3-boto3",
        ...(engine === "mariadb" ? ["mariadb-server"] : ["mysql-server"]),
      ]),
    );
  });
});

describe("replication SQL", () => {
  test("MariaDB: GTID slave_pos over TLS with the server certificate verified", () => {
    expect(renderReplicaSql(dbParams("mariadb", "replica"))).toBe(
      [
        "-- webstack replica: GTID auto-position over verified TLS; run once, by the bootstrap.",
        "CHANGE MASTER TO",
        `  MASTER_HOST = '${S2}', MASTER_PORT = 3306,`,
        "  MASTER_USER = 'replication', MASTER_PASSWORD = '@REPLICATION_PASSWORD@',",
        "  MASTER_USE_GTID = slave_pos,",
        "  MASTER_SSL = 1, MASTER_SSL_CA = '/etc/mysql/webstack/ca.crt', MASTER_SSL_VERIFY_SERVER_CERT = 1,",
        "  MASTER_CONNECT_RETRY = 5;",
        "START REPLICA;",
        "",
      ].join("\n"),
    );
  });

  test("MySQL 8.4: CHANGE REPLICATION SOURCE with auto-position over verified TLS", () => {
    const sql = renderReplicaSql(dbParams("mysql", "replica"));
    expect(sql).toContain("CHANGE REPLICATION SOURCE TO");
    expect(sql).toContain("  SOURCE_AUTO_POSITION = 1,");
    expect(sql).toContain(
      "  SOURCE_SSL = 1, SOURCE_SSL_CA = '/etc/mysql/webstack/ca.crt', SOURCE_SSL_VERIFY_SERVER_CERT = 1,",
    );
    // Removed in 8.4.
    expect(sql).not.toMatch(/CHANGE MASTER|START SLAVE/);
  });

  test.each(["mariadb", "mysql"] as DbEngine[])(
    "%s primary: users on the primary only, remote ones TLS-only",
    (engine) => {
      const sql = lines(renderPrimarySql(dbParams(engine, "primary")));
      for (const ip of [S1, S2]) {
        expect(sql).toContain(
          `CREATE USER IF NOT EXISTS 'replication'@'${ip}' IDENTIFIED BY '@REPLICATION_PASSWORD@' REQUIRE SSL;`,
        );
        expect(sql).toContain(
          `CREATE USER IF NOT EXISTS 'app'@'${ip}' IDENTIFIED BY '@APP_PASSWORD@' REQUIRE SSL;`,
        );
        expect(sql).toContain(`GRANT SELECT, INSERT ON webstack.* TO 'app'@'${ip}';`);
      }
      // The app user gets nothing that bypasses read-only (SUPER, READ ONLY ADMIN, ALL).
      expect(sql.filter((l) => /TO 'app'/.test(l) && /SUPER|READ ONLY ADMIN|ALL/.test(l))).toEqual(
        [],
      );
      expect(sql).toContain(
        `GRANT ${engine === "mariadb" ? "PROCESS, BINLOG MONITOR, REPLICA MONITOR" : "PROCESS, REPLICATION CLIENT"} ON *.* TO 'monitor'@'localhost';`,
      );
      // A release's command (issue 18): all of the schema, from this node's socket only; locked
      // but while a release command runs (issue 19: release-command.sh unlocks it).
      expect(sql.filter((l) => /'migrate'/.test(l))).toEqual([
        "CREATE USER IF NOT EXISTS 'migrate'@'localhost' IDENTIFIED BY '@MIGRATE_PASSWORD@' ACCOUNT LOCK;",
        "GRANT ALL ON webstack.* TO 'migrate'@'localhost';",
      ]);
      // Idempotent: every creation is conditional.
      expect(sql.filter((l) => /^CREATE /.test(l) && !/IF NOT EXISTS/.test(l))).toEqual([]);
    },
  );

  test.each(["mariadb", "mysql"] as DbEngine[])(
    "%s primary: items keep a unique idempotency key, added in place to a table from before it",
    (engine) => {
      const sql = lines(renderPrimarySql(dbParams(engine, "primary")));
      const column = "idempotency_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL";
      const index = "UNIQUE KEY items_idempotency_key (idempotency_key)";
      const create = sql.indexOf("CREATE TABLE IF NOT EXISTS webstack.items (");
      expect(sql.slice(create + 5, create + 8)).toEqual([`  ${column},`, `  ${index}`, ");"]);
      // MySQL 8.4 has no ADD COLUMN IF NOT EXISTS: the ALTER runs only where the column is missing.
      const upgrade = sql.indexOf(
        "SET @webstack_ddl = IF((SELECT COUNT(*) FROM information_schema.COLUMNS",
      );
      expect(upgrade).toBeGreaterThan(create);
      expect(sql.slice(upgrade + 1, upgrade + 9)).toEqual([
        "    WHERE TABLE_SCHEMA = 'webstack' AND TABLE_NAME = 'items' AND COLUMN_NAME = 'idempotency_key') = 0,",
        `  'ALTER TABLE webstack.items ADD COLUMN ${column}, ADD ${index}', 'DO 0');`,
        "PREPARE webstack_ddl FROM @webstack_ddl;",
        "-- A lock held on the table (a long transaction) fails the change after 10 s, to be run again at",
        "-- the next apply, instead of queueing every statement on the table behind it.",
        "SET SESSION lock_wait_timeout = 10;",
        "EXECUTE webstack_ddl;",
        "DEALLOCATE PREPARE webstack_ddl;",
      ]);
    },
  );

  test.each(["mariadb", "mysql"] as DbEngine[])(
    "%s: a change to the primary's SQL runs it again (it is idempotent); the replica's runs once",
    (engine) => {
      const sqlOf = (role: DbRole) =>
        renderedAppNode(engine, role).bundle.files.find((f) => f.path.endsWith(`/${role}.sql`));
      expect(sqlOf("primary")?.onChange).toEqual([DB_BOOTSTRAP_PATH]);
      expect(sqlOf("replica")?.onChange).toBeUndefined();
    },
  );

  test("the replica's SQL creates no user (users replicate from the primary)", () => {
    for (const engine of ["mariadb", "mysql"] as DbEngine[]) {
      expect(renderReplicaSql(dbParams(engine, "replica"))).not.toMatch(/CREATE USER/);
    }
  });

  test("no password in any SQL: placeholders filled on the node", () => {
    for (const engine of ["mariadb", "mysql"] as DbEngine[]) {
      const sql =
        renderPrimarySql(dbParams(engine, "primary")) +
        renderReplicaSql(dbParams(engine, "replica"));
      expect(
        sql.match(/IDENTIFIED BY '[^']*'|PASSWORD = '[^']*'/g)!.every((m) => /'@[A-Z_]+@'/.test(m)),
      ).toBe(true);
    }
  });
});

describe("MySQL's package source", () => {
  test("MySQL's APT repository for 8.4 LTS over HTTPS, its key pinned by full fingerprint, fetched over 443, beside Debian's sources", () => {
    const { doc } = renderedAppNode("mysql", "replica");
    expect(doc.apt).toEqual({
      ...debianAptConfig(),
      sources: {
        "mysql-8.4-lts": {
          source:
            "deb [signed-by=$KEY_FILE] https://repo.mysql.com/apt/debian $RELEASE mysql-8.4-lts",
          keyid: MYSQL_APT_KEY_FINGERPRINT,
          keyserver: "hkps://keyserver.ubuntu.com",
        },
      },
    });
    expect(MYSQL_APT_KEY_FINGERPRINT).toMatch(/^[0-9A-F]{40}$/);
    expect(renderedAppNode("mariadb", "replica").doc.apt).toEqual(debianAptConfig());
  });
});

describe("galera members (database: galera)", () => {
  const NODES = { primary: TOPOLOGY.nodes.s2, replica: TOPOLOGY.nodes.s1 } as const;
  const LB = TOPOLOGY.nodes.lb.privateIp;
  const member = (role: DbRole) => databaseParams(appNodeParams("mariadb", role, "galera"));
  const envOf = (text: string) =>
    Object.fromEntries(
      lines(text)
        .filter((l) => l !== "")
        .map((l) => l.split(/=(.*)/s).slice(0, 2)),
    ) as Record<string, string>;

  test.each(["primary", "replica"] as DbRole[])(
    "%s: its settings before the package installs: no read-only, no GTID strict mode, interleaved auto-increment locks",
    (role) => {
      const node = NODES[role];
      expect(renderServerConfig(member(role))).toBe(
        [
          `# webstack ${node.name} (member): written before the server package installs, so binlog and GTID`,
          "# settings hold from the very first start.",
          "[mariadbd]",
          `server_id = ${node.dbServerId}`,
          "log_bin = mysql-bin",
          "binlog_format = ROW",
          `gtid_domain_id = ${node.dbServerId}`,
          "log_slave_updates = ON",
          "innodb_autoinc_lock_mode = 2",
          "default_storage_engine = InnoDB",
          `bind_address = ${node.privateIp}`,
          "skip_name_resolve = ON",
          "",
        ].join("\n"),
      );
    },
  );

  test.each(["primary", "replica"] as DbRole[])(
    "%s: its late settings: TLS as every server, then the cluster over TLS on its own address, state transfers verified by name",
    (role) => {
      const node = NODES[role];
      const peer = role === "primary" ? S1 : S2;
      const late = lines(renderLateConfig(member(role)));
      const durability = /^(innodb_flush_log_at_trx_commit|sync_binlog)\b/;
      const tls = lines(renderLateConfig(dbParams("mariadb", "primary")))
        .slice(1, -1)
        .filter((l) => !durability.test(l));
      expect(late[0]).toBe(
        `# webstack ${node.name}: installed by the boot script once the node's key and /var/log/mysql exist.`,
      );
      // The replication primary's settings but its durable commits (a member keeps the engine's
      // defaults), none other left out (no read-only on either member) ...
      expect(late.slice(1, tls.length + 1)).toEqual(tls);
      // ... then the cluster's.
      expect(late.slice(tls.length + 1)).toEqual([
        "wsrep_on = ON",
        "wsrep_provider = /usr/lib/galera/libgalera_smm.so",
        "wsrep_cluster_name = webstack-t",
        `wsrep_cluster_address = gcomm://${peer},${LB}`,
        `wsrep_node_name = ${node.internalName}`,
        `wsrep_node_address = ${node.privateIp}`,
        'wsrep_provider_options = "' +
          [
            "socket.ssl=yes",
            "socket.ssl_ca=/etc/mysql/webstack/ca.crt",
            "socket.ssl_cert=/etc/mysql/webstack/node.crt",
            "socket.ssl_key=/etc/mysql/webstack/node.key",
            `gmcast.listen_addr=tcp://${node.privateIp}:4567`,
            `ist.recv_addr=${node.privateIp}:4568`,
          ].join(";") +
          '"',
        "wsrep_sst_method = mariabackup",
        `wsrep_sst_receive_address = ${node.privateIp}:4444`,
        "",
        "[sst]",
        "ssl-mode = VERIFY_IDENTITY",
        "ssl-ca = /etc/mysql/webstack/ca.crt",
        "ssl-cert = /etc/mysql/webstack/node.crt",
        "ssl-key = /etc/mysql/webstack/node.key",
        "",
      ]);
      expect(late.filter((l) => /read_only|gtid_strict_mode/.test(l))).toEqual([]);
    },
  );

  test("the node name a donor verifies is the node's internal name, the name its certificate is issued for", () => {
    for (const node of ["s1", "s2"] as const) {
      const g = galeraMember("t", TOPOLOGY, node);
      // components/pki.ts issues each certificate with CN and SAN = the node's internal name.
      expect(g.nodeName).toBe(TOPOLOGY.nodes[node].internalName);
      expect(g.nodeName).toBe(`${node}.webstack.internal`);
    }
  });

  test("node.env: a member's role, its cluster, the founder and the other data members; the app reads and writes its own server", () => {
    const galeraKeys = (env: Record<string, string>) =>
      Object.fromEntries(
        Object.entries(env).filter(([k]) => /^(DB_ROLE|DB_CLUSTER|GALERA_|APP_DB_)/.test(k)),
      );
    expect(galeraKeys(envOf(renderedAppNode("mariadb", "primary", "galera").file(ENV)))).toEqual({
      DB_ROLE: "member",
      DB_CLUSTER: "galera",
      GALERA_CLUSTER_NAME: "webstack-t",
      GALERA_FOUNDER: "yes",
      GALERA_FOUNDER_IP: S2,
      GALERA_MEMBER_IPS: S1,
      APP_DB_PRIMARY: "local",
      APP_DB_REPLICA: "local",
    });
    expect(galeraKeys(envOf(renderedAppNode("mariadb", "replica", "galera").file(ENV)))).toEqual({
      DB_ROLE: "member",
      DB_CLUSTER: "galera",
      GALERA_CLUSTER_NAME: "webstack-t",
      GALERA_FOUNDER: "no",
      GALERA_FOUNDER_IP: S2,
      GALERA_MEMBER_IPS: S2,
      APP_DB_PRIMARY: "local",
      APP_DB_REPLICA: "local",
    });
    // Replication stacks: no Galera key, the roles as they were.
    for (const role of ["primary", "replica"] as DbRole[]) {
      expect(galeraKeys(envOf(renderedAppNode("mariadb", role).file(ENV)))).toEqual({
        DB_ROLE: role,
        DB_CLUSTER: "replication",
        APP_DB_PRIMARY: role === "primary" ? "local" : S2,
        APP_DB_REPLICA: role === "replica" ? "local" : S1,
      });
    }
  });

  test("the founder (s2) runs the schema and users, again on a change; no replication user; s1 runs no SQL at all", () => {
    const founder = renderedAppNode("mariadb", "primary", "galera").bundle;
    expect(
      founder.files.filter((f) => f.path.endsWith(".sql")).map((f) => [f.path, f.mode, f.onChange]),
    ).toEqual([["/etc/webstack/db/primary.sql", "0600", [DB_BOOTSTRAP_PATH]]]);
    const other = renderedAppNode("mariadb", "replica", "galera").bundle;
    expect(other.files.filter((f) => f.path.endsWith(".sql"))).toEqual([]);
    // The replication primary's SQL without its replication users and the app's remote users (a
    // member's app uses its own server only), and nothing else changed.
    const sql = lines(renderPrimarySql(member("primary")));
    const replicationSql = lines(renderPrimarySql(dbParams("mariadb", "primary")));
    const remoteApp = /'app'@'10\./;
    expect(sql).toEqual(
      replicationSql.filter((l) => !/replication|REPLICATION SLAVE/i.test(l) && !remoteApp.test(l)),
    );
    expect(replicationSql.length - sql.length).toBe(1 + 2 * 2 + 2 * 2);
    expect(sql.filter((l) => /REPLICATION|'replication'|'app'@'1/.test(l))).toEqual([]);
  });

  test("the member's header names it a member; its bootstrap and bundle install the provider and socat, a replication node's neither", () => {
    for (const role of ["primary", "replica"] as DbRole[]) {
      const galera = renderedAppNode("mariadb", role, "galera");
      expect(galera.text.split("\n")[1]).toBe(
        `# webstack ${NODES[role].name} (member): bootstrap rendered by webstack; its files come from its bundle`,
      );
      expect(galera.doc.packages).toEqual(expect.arrayContaining(["galera-4", "socat"]));
      expect(galera.bundle.packages).toEqual(expect.arrayContaining(["galera-4", "socat"]));
      const replication = renderedAppNode("mariadb", role);
      for (const packages of [replication.doc.packages, replication.bundle.packages])
        expect(packages!.filter((p) => ["galera-4", "socat"].includes(p))).toEqual([]);
    }
    const backup = backupPackages("mariadb");
    expect(appNodePackages("mariadb", "galera")).toEqual([
      ...appNodePackages("mariadb", "replication").filter((p) => !backup.includes(p)),
      "galera-4",
      "socat",
      ...backup,
    ]);
    // A state transfer is made by mariadb-backup (wsrep_sst_method mariabackup): the backups'
    // package is the members' too.
    expect(backup).toContain("mariadb-backup");
  });
});
