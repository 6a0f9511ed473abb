// Renderers: the lines that matter for each engine and role, the composer, templates, encoding.
import YAML from "yaml";
import {
  AppNodeParams,
  databaseParams,
  renderAppNodeUserData,
  secretsManifest,
} from "../cloud-init/appNode";
import { renderEnvFile } from "../cloud-init/nodeFiles";
import { composeCloudConfig } from "../cloud-init/cloudConfig";
import {
  DatabaseParams,
  MYSQL_APT_KEY_FINGERPRINT,
  renderPrimarySql,
  renderReplicaSql,
  renderServerConfig,
  renderLateConfig,
} from "../cloud-init/database";
import { fillTemplate } from "../cloud-init/template";
import { decodeUserData, encodeUserData, shippedSize } from "../cloud-init/userDataEncoding";
import { DbEngine } from "../model/config";
import { parameterName } from "../model/naming";
import { DbRole, buildTopology } from "../model/topology";
import { testMonitoring } from "./harness";

const TOPOLOGY = buildTopology("10.40.0.0/16");
const S1 = TOPOLOGY.nodes.s1.privateIp;
const S2 = TOPOLOGY.nodes.s2.privateIp;

function nodeParams(engine: DbEngine, role: DbRole): AppNodeParams {
  const node = role === "primary" ? TOPOLOGY.nodes.s2 : TOPOLOGY.nodes.s1;
  return {
    node,
    primaryIp: S2,
    replicaIp: S1,
    appNodeIps: [S1, S2],
    engine,
    caCertPem: "-----BEGIN CERTIFICATE-----\nTEST-CA\n-----END CERTIFICATE-----\n",
    dataVolumeId: "vol-0123456789abcdef0",
    parameters: {
      "db-app-password": parameterName("t", node.name, "db-app-password"),
      "db-replication-password": parameterName("t", node.name, "db-replication-password"),
      "db-monitor-password": parameterName("t", node.name, "db-monitor-password"),
      "tls-key": parameterName("t", node.name, "tls-key"),
      "tls-cert": parameterName("t", node.name, "tls-cert"),
    },
    architecture: "amd64",
    monitoring: testMonitoring(node.name, engine),
  };
}

const dbParams = (engine: DbEngine, role: DbRole): DatabaseParams =>
  databaseParams(nodeParams(engine, role));

interface Doc {
  write_files: { path: string; content: string; permissions: string; owner: string }[];
  packages: string[];
  bootcmd: (string | string[])[];
  runcmd: (string | string[])[];
  apt?: { sources: Record<string, { source: string; keyid: string; keyserver: string }> };
  [key: string]: unknown;
}

function parse(
  engine: DbEngine,
  role: DbRole,
): { text: string; doc: Doc; file: (path: string) => string } {
  const text = renderAppNodeUserData(nodeParams(engine, role));
  const doc = YAML.parse(text) as Doc;
  const file = (path: string) => {
    const found = doc.write_files.find((f) => f.path === path);
    if (!found) throw new Error(`no ${path} in write_files`);
    return found.content;
  };
  return { text, doc, file };
}

const lines = (text: string) => text.split("\n");

describe.each([
  ["mariadb", "primary"],
  ["mariadb", "replica"],
  ["mysql", "primary"],
  ["mysql", "replica"],
] as [DbEngine, DbRole][])("%s %s", (engine, role) => {
  const p = dbParams(engine, role);
  const server = lines(renderServerConfig(p));
  const tls = lines(renderLateConfig(p));
  const { text, doc } = parse(engine, role);

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
        ? [`gtid_domain_id = ${p.serverId}`, "gtid_strict_mode = ON", "log_slave_updates = ON"]
        : ["gtid_mode = ON", "enforce_gtid_consistency = ON", "log_replica_updates = ON"];
    expect(server).toEqual(expect.arrayContaining(expected));
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

  test("a restarted replica resumes by itself: no skip_replica_start anywhere", () => {
    expect(text).not.toMatch(/skip[-_](replica|slave)[-_]start/);
  });

  test("the server config is written before packages, the late config staged for the boot script", () => {
    const paths = doc.write_files.map((f) => f.path);
    const confDir = engine === "mariadb" ? "/etc/mysql/mariadb.conf.d" : "/etc/mysql/mysql.conf.d";
    expect(paths).toContain(
      engine === "mariadb" ? `${confDir}/60-webstack.cnf` : `${confDir}/webstack.cnf`,
    );
    expect(paths.filter((path) => path.startsWith(confDir))).toHaveLength(1);
    expect(paths).toContain(
      engine === "mariadb"
        ? "/etc/webstack/db/61-webstack-late.cnf"
        : "/etc/webstack/db/webstack-late.cnf",
    );
  });

  test("only this role's SQL ships, readable by root alone", () => {
    const sql = doc.write_files.filter((f) => f.path.endsWith(".sql"));
    expect(sql.map((f) => [f.path, f.permissions])).toEqual([
      [`/etc/webstack/db/${role}.sql`, "0600"],
    ]);
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
      // Idempotent: every creation is conditional.
      expect(sql.filter((l) => /^CREATE /.test(l) && !/IF NOT EXISTS/.test(l))).toEqual([]);
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
  test("MySQL's APT repository for 8.4 LTS, its key pinned by full fingerprint, fetched over 443", () => {
    const { doc } = parse("mysql", "replica");
    expect(doc.apt).toEqual({
      sources: {
        "mysql-8.4-lts": {
          source:
            "deb [signed-by=$KEY_FILE] http://repo.mysql.com/apt/debian $RELEASE mysql-8.4-lts",
          keyid: MYSQL_APT_KEY_FINGERPRINT,
          keyserver: "hkps://keyserver.ubuntu.com",
        },
      },
    });
    expect(MYSQL_APT_KEY_FINGERPRINT).toMatch(/^[0-9A-F]{40}$/);
    expect(parse("mariadb", "replica").doc.apt).toBeUndefined();
  });
});

describe("the app node's document", () => {
  const { text, doc, file } = parse("mariadb", "replica");

  test("starts with #cloud-config and names the node", () => {
    expect(text.startsWith("#cloud-config\n# webstack s1 (replica): ")).toBe(true);
    expect(doc).toMatchObject({
      hostname: "s1",
      fqdn: "s1.webstack.internal",
      ssh_pwauth: false,
      package_update: true,
    });
  });

  test("no SSH server: sshd stopped and masked first thing at every boot", () => {
    expect(doc.bootcmd[0]).toEqual(["systemctl", "mask", "--now", "ssh.service", "ssh.socket"]);
  });

  test("Nginx: TLS 1.2+ on 443 with the node's certificate, stub_status on loopback only", () => {
    const site = lines(file("/etc/nginx/sites-available/webstack")).map((l) => l.trim());
    expect(site).toEqual(
      expect.arrayContaining([
        "listen 443 ssl;",
        "server_name s1.webstack.internal;",
        "ssl_certificate /etc/webstack/tls/node.crt;",
        "ssl_certificate_key /etc/webstack/tls/node.key;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "location = /healthz {",
        "listen 127.0.0.1:8080;",
        "stub_status;",
        "server unix:/run/webstack/app.sock;",
      ]),
    );
    expect(site.filter((l) => l.startsWith("listen"))).toEqual([
      "listen 443 ssl;",
      "listen 127.0.0.1:8080;",
    ]);
  });

  test("Gunicorn: a systemd service as www-data, on a unix socket, workers sized to the CPUs", () => {
    const unit = lines(file("/etc/systemd/system/webstack-app.service"));
    expect(unit).toEqual(
      expect.arrayContaining([
        "User=www-data",
        "EnvironmentFile=/etc/webstack/app.env",
        "ExecStart=/usr/bin/gunicorn --config /etc/webstack/gunicorn.conf.py app:application",
        "After=network-online.target mariadb.service",
        "NoNewPrivileges=true",
      ]),
    );
    const conf = lines(file("/etc/webstack/gunicorn.conf.py"));
    expect(conf).toEqual(
      expect.arrayContaining([
        'bind = "unix:/run/webstack/app.sock"',
        "workers = multiprocessing.cpu_count() * 2 + 1",
      ]),
    );
  });

  test("the data volume is mounted from bootcmd, before packages create the data directory", () => {
    expect(doc.bootcmd).toHaveLength(2);
    const [shell, flag, script, name, device, mountpoint] = doc.bootcmd[1] as string[];
    expect([shell, flag, name, device, mountpoint]).toEqual([
      "bash",
      "-c",
      "webstack-data-volume",
      "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0",
      "/var/lib/mysql",
    ]);
    expect(script).toContain("set -euo pipefail");
    expect(file("/etc/systemd/system/mariadb.service.d/webstack-data.conf")).toBe(
      "[Unit]\nRequiresMountsFor=/var/lib/mysql\n",
    );
  });

  test("the CA certificate travels at its documented path; no key does", () => {
    expect(file("/etc/webstack/tls/ca.crt")).toContain("TEST-CA");
    expect(text).not.toMatch(/PRIVATE KEY/);
  });

  test("one boot script runs after packages, and every shipped script stops at the first failure", () => {
    // The boot script last, after the monitoring units (so even a failed boot reports itself);
    // `set -eu`: a failed step fails the boot.
    expect(doc.runcmd[0]).toBe("set -eu");
    expect(doc.runcmd.at(-1)).toEqual(["/usr/local/sbin/webstack-boot"]);
    expect(doc.runcmd.slice(1, -1).flat()).toContain("webstack-boot-status.service");
    const scripts = doc.write_files.filter((f) => f.content.startsWith("#!/bin/bash"));
    expect(scripts.map((f) => f.path).sort()).toEqual([
      "/usr/local/sbin/webstack-boot",
      "/usr/local/sbin/webstack-db-bootstrap",
      "/usr/local/sbin/webstack-install-cloudwatch-agent",
      "/usr/local/sbin/webstack-refresh-tls",
    ]);
    for (const s of scripts) expect(s.content).toContain("\nset -euo pipefail\n");
    // Failures are never swallowed.
    expect(text).not.toMatch(/\|\|\s*true/);
  });

  test("a daily timer re-fetches only the certificate and key, and reloads TLS only if they changed", () => {
    const manifest = JSON.parse(file("/etc/webstack/tls-manifest.json"));
    expect(manifest.map((e: { parameter: string }) => e.parameter).sort()).toEqual([
      "/webstack/t/s1/tls-cert",
      "/webstack/t/s1/tls-cert",
      "/webstack/t/s1/tls-key",
      "/webstack/t/s1/tls-key",
    ]);
    expect(file("/etc/systemd/system/webstack-refresh-tls.timer")).toContain("OnCalendar=daily");
    const script = file("/usr/local/sbin/webstack-refresh-tls");
    expect(script).toContain('if [ "$before" = "$after" ]; then exit 0; fi');
    expect(script).toContain("FLUSH SSL");
    expect(script).toContain("ALTER INSTANCE RELOAD TLS");
    expect(file("/usr/local/sbin/webstack-boot")).toContain(
      "systemctl enable --now webstack-refresh-tls.timer",
    );
  });

  test("the secrets manifest lists parameter names and where they land, never values", () => {
    const manifest = JSON.parse(file("/etc/webstack/secrets.json"));
    expect(manifest).toEqual(secretsManifest(nodeParams("mariadb", "replica")));
    expect(
      manifest
        .filter((e: { mode: string }) => e.mode !== "0600")
        .map((e: { path: string }) => e.path),
    ).toEqual(["/etc/webstack/tls/node.crt", "/etc/mysql/webstack/node.crt"]);
    expect(
      manifest.every((e: { parameter: string }) => e.parameter.startsWith("/webstack/t/s1/")),
    ).toBe(true);
  });

  test("the node environment: the replica reads locally and writes to the primary", () => {
    expect(lines(file("/etc/webstack/node.env"))).toEqual(
      expect.arrayContaining([
        "NODE=s1",
        "DB_ROLE=replica",
        `DB_PRIMARY_IP=${S2}`,
        `APP_DB_PRIMARY=${S2}`,
        "APP_DB_REPLICA=local",
      ]),
    );
    const primary = parse("mariadb", "primary");
    expect(lines(primary.file("/etc/webstack/node.env"))).toEqual(
      expect.arrayContaining(["APP_DB_PRIMARY=local", `APP_DB_REPLICA=${S1}`]),
    );
  });
});

describe("building blocks", () => {
  test("the composer refuses two parts writing one file, and merges packages once", () => {
    const file = { path: "/etc/x", content: "x", permissions: "0644" };
    expect(() =>
      composeCloudConfig({ hostname: "h", fqdn: "h.x", description: "d" }, [
        { writeFiles: [file] },
        { writeFiles: [file] },
      ]),
    ).toThrow("two parts write /etc/x");
    const doc = YAML.parse(
      composeCloudConfig({ hostname: "h", fqdn: "h.x", description: "d" }, [
        { packages: ["a", "b"] },
        { packages: ["b", "c"] },
      ]),
    );
    expect(doc.packages).toEqual(["a", "b", "c"]);
  });

  test("several commands: runcmd stops at the first failure", () => {
    const header = { hostname: "h", fqdn: "h.x", description: "d" };
    const one = YAML.parse(composeCloudConfig(header, [{ runcmd: [["/boot"]] }]));
    expect(one.runcmd).toEqual([["/boot"]]);
    const two = YAML.parse(
      composeCloudConfig(header, [{ runcmd: [["/boot"]] }, { runcmd: ["echo later"] }]),
    );
    expect(two.runcmd).toEqual(["set -eu", ["/boot"], "echo later"]);
  });

  test("templates: every placeholder filled, every value used", () => {
    expect(fillTemplate("a {{X}} b {{Y}}", { X: 1, Y: "two" })).toBe("a 1 b two");
    expect(() => fillTemplate("a {{X}}", {})).toThrow("template placeholder {{X}} has no value");
    expect(() => fillTemplate("a", { X: 1 })).toThrow("template values never used: X");
  });

  test("environment files take plain words only", () => {
    expect(renderEnvFile({ A: "10.0.0.1", B: "/etc/x" })).toBe("A=10.0.0.1\nB=/etc/x\n");
    expect(() => renderEnvFile({ A: "x; rm -rf /" })).toThrow(
      'A: "x; rm -rf /" is not a plain word',
    );
  });

  test("user-data: plain up to 12 KB, gzipped above, refused past 16 KB gzipped", () => {
    const small = "#cloud-config\n" + "a".repeat(1000);
    expect(encodeUserData(small)).toEqual({ userData: small });
    const big = "#cloud-config\n" + "line of text\n".repeat(2000);
    const encoded = encodeUserData(big);
    expect("userDataBase64" in encoded).toBe(true);
    expect(decodeUserData(encoded)).toBe(big);
    expect(shippedSize(encoded)).toBeLessThan(2000);
    const random = Array.from({ length: 20000 }, (_, i) => ((i * 7919) % 65536).toString(36)).join(
      "",
    );
    expect(() => encodeUserData(random)).toThrow(/even gzipped; EC2 allows 16384/);
  });
});
