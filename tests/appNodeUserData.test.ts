// An app node's two documents: its bootstrap (identity, no SSH, data volume, packages, server
// settings) and its bundle (Nginx, Gunicorn, boot order, TLS, how each change is taken into use).
import * as fs from "fs";
import * as path from "path";
import { renderAppNodeBundle, secretsManifest } from "../cloud-init/appNode";
import { parameterName, parameterPath } from "../model/naming";
import { PROJECT_DIR, TOPOLOGY, bootSequence, writtenFile } from "./harness";
import { TEST_CA_PEM, appNodeParams, bundleEntryOf, renderedAppNode } from "./rendererFixtures";

const lines = (text: string) => text.split("\n");

describe("the app node's documents", () => {
  const { text, doc, bundle, file } = renderedAppNode("mariadb", "replica");

  test("starts with #cloud-config and names the node", () => {
    expect(text.startsWith("#cloud-config\n# webstack s1 (replica): ")).toBe(true);
    expect(doc).toMatchObject({
      hostname: "s1",
      fqdn: TOPOLOGY.nodes.s1.internalName,
      ssh_pwauth: false,
      package_update: true,
    });
  });

  test("no SSH server: sshd stopped and masked first thing at every boot", () => {
    expect(doc.bootcmd?.[0]).toEqual(["systemctl", "mask", "--now", "ssh.service", "ssh.socket"]);
  });

  test("Nginx: TLS 1.2+ on 443 with the node's certificate, stub_status on loopback only", () => {
    const site = lines(file("/etc/nginx/sites-available/webstack")).map((l) => l.trim());
    expect(site).toEqual(
      expect.arrayContaining([
        "listen 443 ssl;",
        `server_name ${TOPOLOGY.nodes.s1.internalName};`,
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

  test("Nginx answers its own errors in JSON, with their status, like the app's answers", () => {
    const site = file("/etc/nginx/sites-available/webstack");
    const env = file("/etc/webstack/node.env");
    const pages = new Map<number, string>();
    for (const [, codes, uri] of site.matchAll(/^\s*error_page ((?:\d+ )+)(?:=\d+ )?(\S+);$/gm))
      for (const code of codes.trim().split(" ")) pages.set(Number(code), uri);
    // What Nginx itself answers here: bad or oversized requests, and a missing or slow Gunicorn.
    for (const status of [400, 408, 413, 414, 494, 500, 502, 503, 504]) {
      const uri = pages.get(status);
      const block = new RegExp(`^\\s*location = ${uri} \\{\\n([\\s\\S]*?)\\n\\s*\\}$`, "m").exec(
        site,
      )?.[1];
      const directives = lines(block ?? "").map((l) => l.trim());
      const answer = /^return (\d+) '(.*)';$/.exec(
        directives.find((l) => l.startsWith("return")) ?? "",
      );
      expect({ status, uri, directives, answer: answer?.[1] }).toEqual({
        status,
        uri: expect.stringMatching(/^\/_webstack\//),
        directives: expect.arrayContaining([
          "internal;",
          "default_type application/json;",
          "add_header Cache-Control no-store always;",
        ]),
        answer: String(status === 494 ? 400 : status),
      });
      expect(JSON.parse(answer![2])).toEqual({
        node: "s1",
        role: /^DB_ROLE=(.*)$/m.exec(env)![1],
        error: expect.any(String),
      });
    }
    // The app's own answers (404, 405, 503 …) reach the client as the app wrote them.
    expect(site).not.toMatch(/intercept_errors on/);
  });

  test("Gunicorn: a systemd service as the app's own user, on a unix socket only Nginx reaches, workers sized to the instance type's vCPUs", () => {
    const unit = lines(file("/etc/systemd/system/webstack-app.service"));
    expect(unit).toEqual(
      expect.arrayContaining([
        "User=webstack-app",
        "Group=webstack-app",
        "EnvironmentFile=/etc/webstack/app.env",
        "ExecStart=/usr/bin/gunicorn --config /etc/webstack/gunicorn.conf.py app:application",
        "After=network-online.target mariadb.service",
        "NoNewPrivileges=yes",
        // The socket's directory (tmpfiles.d: the app's, group www-data's), writable in its sandbox.
        "ExecStartPre=+/usr/bin/systemd-tmpfiles --create --prefix=/run/webstack /etc/tmpfiles.d/webstack.conf",
        "ReadWritePaths=/run/webstack",
      ]),
    );
    // systemd gives a RuntimeDirectory= back to User:Group before each command: Nginx's group would go.
    expect(unit.filter((l) => /^RuntimeDirectory/.test(l))).toEqual([]);
    expect(lines(file("/etc/tmpfiles.d/webstack.conf"))).toContain(
      "d     /run/webstack               0750 webstack-app www-data     -",
    );
    expect(unit.filter((l) => /^(User|Group)=/.test(l))).toEqual([
      "User=webstack-app",
      "Group=webstack-app",
    ]);
    const conf = lines(file("/etc/webstack/gunicorn.conf.py"));
    expect(conf).toEqual(
      expect.arrayContaining([
        'bind = "unix:/run/webstack/app.sock"',
        // 2 × a t3.small's 2 vCPUs + 1, rendered: the LB's per-server limit follows it.
        "workers = 5",
      ]),
    );
  });

  test("a worker count that is not a whole number from 1 is refused, not rendered", () => {
    for (const workers of [0, -1, 2.5, Number.NaN])
      expect(() =>
        renderAppNodeBundle({ ...appNodeParams("mariadb", "replica"), workers }),
      ).toThrow(`Gunicorn's workers are a whole number from 1: ${workers}`);
  });

  test("limits from the config: Nginx's body size and read timeout, Gunicorn's and the app's waits", () => {
    // The fixture's limits: a 60 s LB server timeout, 10 MiB bodies.
    const site = lines(file("/etc/nginx/sites-available/webstack")).map((l) => l.trim());
    expect(site.filter((l) => /^(client_max_body_size|proxy_\w+_timeout) /.test(l))).toEqual([
      "client_max_body_size 10m;",
      "proxy_connect_timeout 2s;",
      "proxy_read_timeout 59s;",
    ]);
    expect(lines(file("/etc/webstack/gunicorn.conf.py"))).toContain("timeout = 60");
    // Gunicorn hands the app's database wait to its workers, a reload's new ones included; the
    // app reads it (app_test.py runs the app with it).
    expect(lines(file("/etc/webstack/gunicorn.conf.py"))).toContain(
      '        "WEBSTACK_DB_WAIT_S": "58",',
    );
    expect(fs.readFileSync(path.join(PROJECT_DIR, "app", "app.py"), "utf8")).toContain(
      'os.environ["WEBSTACK_DB_WAIT_S"]',
    );
    expect(file("/usr/local/sbin/webstack-boot")).not.toContain("WEBSTACK_DB_WAIT_S");
    // A reload lets the old workers finish a request that may take as long as HAProxy waits.
    expect(lines(file("/etc/webstack/gunicorn.conf.py"))).toContain("graceful_timeout = 60");
  });

  test("logrotate rotates Gunicorn's logs and makes Gunicorn reopen them", () => {
    const gunicorn = file("/etc/webstack/gunicorn.conf.py");
    const logs = [...gunicorn.matchAll(/^(?:accesslog|errorlog) = "(.+)"$/gm)].map((m) => m[1]);
    expect(logs).toHaveLength(2);
    const rule = file("/etc/logrotate.d/webstack");
    const patterns = /^(\S+) \{$/m.exec(rule)![1].split(" ");
    const glob = (p: string) => new RegExp(`^${p.replace(/\./g, "\\.").replace(/\*/g, "[^/]*")}$`);
    for (const log of logs)
      expect({ log, covered: patterns.some((p) => glob(p).test(log)) }).toEqual({
        log,
        covered: true,
      });
    // The unit that runs Gunicorn, whose main process (the master) reopens the logs on USR1.
    const unit = "webstack-app.service";
    expect(file(`/etc/systemd/system/${unit}`)).toMatch(/^ExecStart=\/usr\/bin\/gunicorn /m);
    const postrotate = /^\s*postrotate\n([\s\S]*?)^\s*endscript$/m.exec(rule)?.[1] ?? "";
    expect(postrotate).toContain(`systemctl kill --kill-whom=main --signal=USR1 ${unit}`);
    expect(rule).not.toMatch(/copytruncate/); // Gunicorn reopens: no line lost between copy and truncate
    expect(rule).toMatch(/^\s*su webstack-app webstack-app$/m);
    expect(rule).toMatch(/^\s*create 0644 webstack-app webstack-app$/m);
    expect(file(`/etc/systemd/system/${unit}`)).toMatch(/^User=webstack-app$/m);
    expect(doc.packages).toContain("logrotate");
  });

  test.each([
    ["mariadb", "primary"],
    ["mysql", "replica"],
  ] as const)(
    "%s %s: the bundle names the bootstrap's packages, python3-venv and openssl too",
    (engine, role) => {
      const { doc, bundle } = renderedAppNode(engine, role);
      expect(doc.packages).toContain("python3-venv");
      // The TLS refresh checks a fetched certificate and key with it.
      expect(doc.packages).toContain("openssl");
      // A running node (a pet: user-data changes never reach it) installs one added later.
      expect(bundle.packages).toEqual([...(doc.packages ?? [])].sort());
    },
  );

  test("the data volume is mounted from bootcmd, before packages create the data directory", () => {
    expect(doc.bootcmd).toHaveLength(2);
    const [shell, flag, script, name, device, mountpoint] = doc.bootcmd![1] as string[];
    expect([shell, flag, name, device, mountpoint]).toEqual([
      "bash",
      "-c",
      "webstack-data-volume",
      "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0",
      "/var/lib/mysql",
    ]);
    expect(script).toContain("set -euo pipefail");
    expect(writtenFile(doc, "/etc/systemd/system/mariadb.service.d/webstack-data.conf")).toEqual({
      path: "/etc/systemd/system/mariadb.service.d/webstack-data.conf",
      content: "[Unit]\nRequiresMountsFor=/var/lib/mysql\n",
      permissions: "0644",
    });
  });

  test("the CA certificate travels at its documented path; no key does", () => {
    expect(file("/etc/webstack/tls/ca.crt")).toBe(TEST_CA_PEM);
    expect(text).not.toMatch(/PRIVATE KEY/);
    expect(JSON.stringify(bundle)).not.toMatch(/PRIVATE KEY/);
  });

  test("the bootstrap: what must precede the packages, the bundle's env, and the bootstrap alone runs", () => {
    expect(doc.write_files.map((f) => f.path)).toEqual([
      "/etc/webstack/bundle.env",
      "/usr/local/sbin/webstack-bootstrap",
      "/etc/mysql/mariadb.conf.d/60-webstack.cnf",
      "/etc/systemd/system/mariadb.service.d/webstack-data.conf",
    ]);
    expect(writtenFile(doc, "/etc/webstack/bundle.env").content).toBe(
      [
        "NODE=s1",
        "BUNDLE_PARAMETER=/webstack/t/s1/bundle",
        "STATUS_PARAMETER=/webstack/t/s1/bundle-status",
        "METRIC_NAMESPACE=Webstack",
        "",
      ].join("\n"),
    );
    expect(writtenFile(doc, "/usr/local/sbin/webstack-bootstrap").permissions).toBe("0755");
    expect(doc.runcmd).toEqual([["/usr/local/sbin/webstack-bootstrap"]]);
  });

  test("one boot script on the first apply, after the agents' units; the apply timer last; every shipped script stops at the first failure", () => {
    // The boot script after the boot report's unit (so even a failed boot reports itself); the
    // applier stops at a failed step, which fails the boot.
    const boot = bootSequence(bundle);
    expect(boot.bootScript).toBe("/usr/local/sbin/webstack-boot");
    expect(boot.started.find((s) => s.unit === "webstack-boot-status.service")).toMatchObject({
      beforeBootScript: true,
    });
    expect(boot.last).toBe("systemctl enable --now webstack-apply.timer");
    const scripts = bundle.files.filter((f) => f.content.startsWith("#!/bin/bash"));
    expect(scripts.map((f) => f.path).sort()).toEqual([
      "/usr/local/sbin/webstack-boot",
      "/usr/local/sbin/webstack-db-bootstrap",
      "/usr/local/sbin/webstack-db-late-config",
      "/usr/local/sbin/webstack-grow-data",
      "/usr/local/sbin/webstack-install-cloudwatch-agent",
      "/usr/local/sbin/webstack-install-datadog-agent",
      "/usr/local/sbin/webstack-install-signed-deb",
      "/usr/local/sbin/webstack-install-ssm-agent",
      "/usr/local/sbin/webstack-refresh-tls",
      "/usr/local/sbin/webstack-release-command",
      "/usr/local/sbin/webstack-unit-changed",
    ]);
    for (const s of scripts) {
      expect(s.content).toContain("\nset -euo pipefail\n");
      expect(s.mode).toBe("0755");
    }
    // Failures are never swallowed.
    expect(text).not.toMatch(/\|\|\s*true/);
    expect(JSON.stringify(bundle)).not.toMatch(/\|\|\s*true/);
  });

  test.each([
    // Nginx: checked as it will read the site, then reloaded (old workers finish their requests).
    ["/etc/nginx/sites-available/webstack", ["nginx", "-t"], ["systemctl", "reload", "nginx"]],
    // Gunicorn: HUP, new workers with the new settings, the old ones drain.
    ["/etc/webstack/app-settings.json", undefined, ["systemctl", "reload", "webstack-app.service"]],
    // A new secret's version: fetched again, then the app reloaded to read it.
    [
      "/etc/webstack/app-secrets.json",
      undefined,
      [
        "/usr/local/sbin/webstack-aws",
        "fetch",
        "/etc/webstack/app-secrets.json",
        "--reload",
        "webstack-app.service",
      ],
    ],
    // A new parameter (the migrate password) reaches a running node's files.
    [
      "/etc/webstack/secrets.json",
      undefined,
      ["/usr/local/sbin/webstack-aws", "fetch", "/etc/webstack/secrets.json"],
    ],
    ["/etc/logrotate.d/webstack", ["logrotate", "--debug", "/etc/logrotate.d/webstack"], undefined],
    // The database reads its late settings only at a start: the replica restarts first.
    [
      "/etc/webstack/db/61-webstack-late.cnf",
      undefined,
      ["/usr/local/sbin/webstack-db-late-config"],
    ],
    [
      "/etc/systemd/system/webstack-app.service",
      undefined,
      ["/usr/local/sbin/webstack-unit-changed", "try-restart", "webstack-app.service"],
    ],
    [
      "/etc/systemd/system/webstack-refresh-tls.timer",
      undefined,
      ["/usr/local/sbin/webstack-unit-changed", "try-restart", "webstack-refresh-tls.timer"],
    ],
    [
      "/etc/webstack/cloudwatch-agent.json",
      undefined,
      [
        "/usr/local/sbin/webstack-unit-changed",
        "restart",
        "--no-block",
        "webstack-cloudwatch-agent.service",
      ],
    ],
    [
      "/etc/webstack/datadog.env",
      undefined,
      [
        "/usr/local/sbin/webstack-unit-changed",
        "restart",
        "--no-block",
        "webstack-datadog-agent.service",
      ],
    ],
    // Read at first boot only, or by each run of what reads them.
    ["/etc/webstack/node.env", undefined, undefined],
    ["/usr/local/sbin/webstack-aws", undefined, undefined],
    ["/usr/local/sbin/webstack-release-command", undefined, undefined],
  ])("%s: validate %j, on change %j", (path, validate, onChange) => {
    const entry = bundleEntryOf(bundle, path);
    expect([entry.validate, entry.onChange]).toEqual([validate, onChange]);
  });

  test.each(["/etc/webstack/gunicorn.conf.py", "/usr/local/lib/webstack/app_environment.py"])(
    "%s is checked like the app, and reloaded the same way",
    (at) => {
      const entry = bundleEntryOf(bundle, at);
      expect(entry.validate?.slice(-1)).toEqual([at]);
      expect(entry.onChange).toEqual(["systemctl", "reload", "webstack-app.service"]);
    },
  );

  test("healthy: its own Nginx answers /healthz under its own name, verified against the CA", () => {
    const fqdn = TOPOLOGY.nodes.s1.internalName;
    expect(bundle.healthCheck).toEqual([
      "curl",
      "-fsS",
      "-o",
      "/dev/null",
      "--max-time",
      "5",
      "--cacert",
      "/etc/webstack/tls/ca.crt",
      "--resolve",
      `${fqdn}:443:127.0.0.1`,
      `https://${fqdn}/healthz`,
    ]);
  });

  test("the replica waits for nobody; the primary for the replica's status", () => {
    expect(bundle.after).toEqual([]);
    expect(renderedAppNode("mariadb", "primary").bundle.after).toEqual([
      { node: "s1", status: "/webstack/t/s1/bundle-status" },
    ]);
  });

  test("a daily timer re-fetches only the certificate and key, and reloads TLS only if they changed", () => {
    const manifest = JSON.parse(file("/etc/webstack/tls-manifest.json"));
    const [cert, key] = [parameterName("t", "s1", "tls-cert"), parameterName("t", "s1", "tls-key")];
    expect(manifest.map((e: { parameter: string }) => e.parameter).sort()).toEqual([
      cert,
      cert,
      key,
      key,
    ]);
    expect(file("/etc/systemd/system/webstack-refresh-tls.timer")).toContain("OnCalendar=daily");
    // What it does with them, tests/artifacts/test_refresh_tls.py runs: fetched where nothing reads
    // them, checked as a pair by openssl, installed and reloaded only if they changed.
    const script = file("/usr/local/sbin/webstack-refresh-tls");
    expect(script).toContain('/usr/local/sbin/webstack-aws fetch "$scratch/manifest.json"\n');
    expect(script).toContain('if [ "$changed" = false ]; then exit 0; fi');
    expect(script.split("\n").filter((l) => !l.startsWith("#") && l.includes("nginx -t"))).toEqual(
      [],
    );
    expect(script).toContain("FLUSH SSL");
    expect(script).toContain("ALTER INSTANCE RELOAD TLS");
    expect(file("/usr/local/sbin/webstack-boot")).toContain(
      "systemctl enable --now webstack-refresh-tls.timer",
    );
  });

  test("the secrets manifest lists parameter names and where they land, never values", () => {
    const manifest = JSON.parse(file("/etc/webstack/secrets.json"));
    expect(manifest).toEqual(secretsManifest(appNodeParams("mariadb", "replica")));
    expect(
      manifest
        .filter((e: { mode: string }) => e.mode !== "0600")
        .map((e: { path: string }) => e.path),
    ).toEqual([
      "/etc/webstack/tls/node.crt",
      "/etc/mysql/webstack/node.crt",
      "/etc/webstack/app-secrets/DB_APP_PASSWORD",
    ]);
    // Every file is root's, but for the database's copies and the app's own copy of its password.
    expect(
      manifest
        .map((e: { path: string; owner: string }) => [e.path, e.owner])
        .filter(([, owner]: string[]) => owner !== "root:root"),
    ).toEqual([
      ["/etc/mysql/webstack/node.crt", "mysql:mysql"],
      ["/etc/mysql/webstack/node.key", "mysql:mysql"],
      ["/etc/webstack/app-secrets/DB_APP_PASSWORD", "webstack-app:webstack-app"],
    ]);
    expect(
      manifest.every((e: { parameter: string }) =>
        e.parameter.startsWith(`${parameterPath("t", "s1")}/`),
      ),
    ).toBe(true);
  });

  test("the node environment: the replica reads locally and writes to the primary", () => {
    expect(lines(file("/etc/webstack/node.env"))).toEqual(
      expect.arrayContaining([
        "NODE=s1",
        "DB_ROLE=replica",
        `DB_PRIMARY_IP=${TOPOLOGY.nodes.s2.privateIp}`,
        `APP_DB_PRIMARY=${TOPOLOGY.nodes.s2.privateIp}`,
        "APP_DB_REPLICA=local",
      ]),
    );
    const primary = renderedAppNode("mariadb", "primary");
    expect(lines(primary.file("/etc/webstack/node.env"))).toEqual(
      expect.arrayContaining([
        "APP_DB_PRIMARY=local",
        `APP_DB_REPLICA=${TOPOLOGY.nodes.s1.privateIp}`,
      ]),
    );
  });
});
