// Monitoring: the CloudWatch agent's config and log groups, an installer that never blocks boot.
import * as fs from "fs";
import * as path from "path";
import Ajv from "ajv-draft-04";
import {
  ARBITRATOR_PROCESS,
  renderCloudWatchAgentConfig,
  CLOUDWATCH_AGENT_KEY_FINGERPRINT,
  servedCertificates,
} from "../cloud-init/monitoring";
import { logSources } from "../cloud-init/logSources";
import { shippedFile } from "../cloud-init/template";
import { logGroupName, parameterName } from "../model/naming";
import { DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import { Plan } from "../plan/plan";
import {
  PROJECT_DIR,
  T,
  bootSequence,
  bundleEntry,
  bundleFile,
  bundleOf,
  ofType,
  planConfig,
  testNeeding,
  TOPOLOGY,
} from "./harness";
import { cloudWatchAgentConfig } from "./rendererFixtures";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

const SCHEMA_FILE = path.join(PROJECT_DIR, "..", "shared", "data", "cloudwatch-agent-schema.json");
// Beside the repository in CI (../shared/data); absent elsewhere, the schema check is skipped.
const withSchema = testNeeding(`the agent's schema at ${SCHEMA_FILE}`, fs.existsSync(SCHEMA_FILE));

/** The units monitoring starts at first boot: the agent's installer, the collector, the boot report. */
const MONITORING_UNITS = [
  "webstack-boot-status.service",
  "webstack-cloudwatch-agent.service",
  "webstack-collector.timer",
];

function validator() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile(JSON.parse(fs.readFileSync(SCHEMA_FILE, "utf8")));
}

describe("the CloudWatch agent's config", () => {
  const lb = cloudWatchAgentConfig("lb");
  const s1 = cloudWatchAgentConfig("s1");
  const mysql = cloudWatchAgentConfig("s1", "mysql");
  const galeraLb = cloudWatchAgentConfig("lb", "mariadb", "galera");
  const galeraS1 = cloudWatchAgentConfig("s1", "mariadb", "galera");

  withSchema("is valid under the agent's own JSON schema, for every node and engine", () => {
    const validate = validator();
    for (const config of [lb, s1, mysql, galeraLb, galeraS1]) {
      const valid = validate(config);
      expect(validate.errors ?? []).toEqual([]);
      expect(valid).toBe(true);
    }
  });

  withSchema("the schema check rejects a broken config", () => {
    const validate = validator();
    const broken = JSON.parse(JSON.stringify(s1));
    broken.metrics.metrics_collected.cpu.measurement = "usage_active";
    broken.logs.logs_collected.files.collect_list[0].file_path = 42;
    expect(validate(broken)).toBe(false);
    expect(validate.errors!.length).toBeGreaterThanOrEqual(2);
  });

  test("metrics carry InstanceId only (no host dimension), as the alarms look them up", () => {
    expect(s1.agent).toMatchObject({ omit_hostname: true, run_as_user: "cwagent" });
    expect((s1.metrics as Record<string, unknown>).append_dimensions).toEqual({
      InstanceId: "${aws:InstanceId}",
    });
  });

  test("CPU, memory, disk (with the data volume on app nodes) and swap", () => {
    const metrics = (s1.metrics as Record<string, Record<string, Record<string, unknown>>>)
      .metrics_collected;
    expect(Object.keys(metrics).sort()).toEqual(["cpu", "disk", "mem", "procstat", "swap"]);
    expect(metrics.disk.resources).toEqual(["/", "/var/lib/mysql"]);
    const lbDisk = (lb.metrics as Record<string, Record<string, Record<string, unknown>>>)
      .metrics_collected.disk;
    expect(lbDisk.resources).toEqual(["/"]);
  });

  test.each([
    ["lb", lb, ["haproxy"]],
    ["s1 on MariaDB", s1, ["nginx", "gunicorn", "mariadbd"]],
    ["s1 on MySQL", mysql, ["nginx", "gunicorn", "mysqld"]],
    // A galera stack's LB runs the arbitrator too: a dead garbd shows as its own process gone.
    ["lb of a galera stack", galeraLb, ["haproxy", "garbd"]],
    ["s1 of a galera stack", galeraS1, ["nginx", "gunicorn", "mariadbd"]],
  ])("%s: per-process stats for its services", (_, config, processes) => {
    const procstat = (config.metrics as Record<string, Record<string, { exe: string }[]>>)
      .metrics_collected.procstat;
    expect(procstat.map((p) => p.exe)).toEqual(processes);
  });

  test("logs: every source to its own group, one stream per instance", () => {
    const list = (c: Record<string, unknown>) =>
      (c.logs as { logs_collected: { files: { collect_list: Record<string, string>[] } } })
        .logs_collected.files.collect_list;
    // testMonitoring's groups are stack "t"'s.
    const group = (node: string, source: string) => logGroupName("t", node, source);
    expect(list(lb).map((l) => [l.file_path, l.log_group_name])).toEqual([
      ["/var/log/cloud-init-output.log", group("lb", "cloud-init")],
      ["/var/log/unattended-upgrades/unattended-upgrades.log", group("lb", "unattended-upgrades")],
      ["/var/log/haproxy.log", group("lb", "haproxy")],
    ]);
    expect(list(s1).map((l) => [l.file_path, l.log_group_name])).toEqual([
      ["/var/log/cloud-init-output.log", group("s1", "cloud-init")],
      ["/var/log/unattended-upgrades/unattended-upgrades.log", group("s1", "unattended-upgrades")],
      ["/var/log/nginx/webstack-access.log", group("s1", "nginx-access")],
      ["/var/log/nginx/webstack-error.log", group("s1", "nginx-error")],
      ["/var/log/webstack/app.log", group("s1", "app")],
      ["/var/log/mysql/error.log", group("s1", "db-error")],
      ["/var/log/mysql/slow.log", group("s1", "db-slow")],
    ]);
    expect(list(s1).every((l) => l.log_stream_name === "{instance_id}")).toBe(true);
  });

  test("a source without a log group is an error, not a silent gap", () => {
    expect(() =>
      renderCloudWatchAgentConfig({
        node: "lb",
        role: "loadbalancer",
        engine: "mariadb",
        cluster: "replication",
        logGroups: { haproxy: "x" },
        agentPackageUrl: "x",
      }),
    ).toThrow("no log group for lb's cloud-init log");
  });
});

describe("the program", () => {
  let plan: Plan;
  beforeAll(async () => {
    plan = await planConfig({
      domain: "www.example.com",
      logRetentionDays: "90",
      lbInstanceType: "t4g.small",
    });
  });

  test("a log group per node and source, with the configured retention and a stable name", () => {
    const groups = ofType(plan, T.logGroup).filter((g) => g.name.startsWith("logs-"));
    expect(groups.map((g) => g.inputs.name).sort()).toEqual(
      NODES.flatMap((node) =>
        logSources(TOPOLOGY.nodes[node].role).map((source) =>
          logGroupName(plan.stack, node, source.key),
        ),
      ).sort(),
    );
    expect(groups.every((g) => g.inputs.retentionInDays === 90)).toBe(true);
    expect((plan.outputs.logGroups as Record<string, Record<string, string>>).s2.app).toBe(
      logGroupName(plan.stack, "s2", "app"),
    );
  });

  test.each(NODES)("%s ships to exactly its own log groups", (node) => {
    const config = JSON.parse(bundleFile(plan, node, "/etc/webstack/cloudwatch-agent.json"));
    const shipped = config.logs.logs_collected.files.collect_list.map(
      (l: { log_group_name: string }) => l.log_group_name,
    );
    expect(shipped.sort()).toEqual(
      Object.values(
        (plan.outputs.logGroups as Record<string, Record<string, string>>)[node],
      ).sort(),
    );
  });

  test("the agent package for the node's architecture, checked against AWS's key by fingerprint", () => {
    const env = (node: string) => bundleFile(plan, node, "/etc/webstack/monitoring.env");
    expect(env("lb")).toContain(
      "CLOUDWATCH_AGENT_URL=https://amazoncloudwatch-agent.s3.amazonaws.com/debian/arm64/latest/amazon-cloudwatch-agent.deb\n",
    );
    expect(env("s1")).toContain("/debian/amd64/latest/amazon-cloudwatch-agent.deb\n");
    expect(env("s1")).toContain(
      `CLOUDWATCH_AGENT_KEY_FINGERPRINT=${CLOUDWATCH_AGENT_KEY_FINGERPRINT}\n`,
    );
    // The shared installer checks the signature (tests/signedDeb.test.ts), before the config.
    const installer = bundleFile(plan, "s1", "/usr/local/sbin/webstack-install-cloudwatch-agent");
    const install =
      '/usr/local/sbin/webstack-install-signed-deb amazon-cloudwatch-agent "$CLOUDWATCH_AGENT_URL" \\\n' +
      '  "$CLOUDWATCH_AGENT_KEY_URL" "$CLOUDWATCH_AGENT_KEY_FINGERPRINT"\n';
    expect(installer).toContain(install);
    expect(installer.indexOf(install)).toBeLessThan(installer.indexOf("fetch-config"));
    expect(installer).toContain("usermod -a -G adm cwagent");
    for (const node of NODES)
      expect(bundleEntry(plan, node, "/usr/local/sbin/webstack-install-signed-deb")).toMatchObject({
        content: shippedFile("install-signed-deb.sh"),
        mode: "0755",
      });
  });

  test.each([
    ["lb", "collect loadbalancer lb --certificate public=/etc/haproxy/certs/site.pem"],
    [
      "s2",
      "collect primary s2 mariadb --certificate node=/etc/webstack/tls/node.crt" +
        " --certificate database=/etc/mysql/webstack/node.crt" +
        " --age BinlogShipAgeSeconds=/var/lib/webstack/backup/binlog.json:shipped",
    ],
    [
      "s1",
      "collect replica s1 mariadb --certificate node=/etc/webstack/tls/node.crt" +
        " --certificate database=/etc/mysql/webstack/node.crt" +
        " --age BackupAgeSeconds=/var/lib/webstack/backup/full.json:finished",
    ],
  ])("%s: a collector every minute (%s) and a boot-status report", (node, args) => {
    const file = (at: string) => bundleFile(plan, node, at);
    // One process collecting every 60 s (issue 22), which its timer starts 3 min after boot and 60 s
    // after it ends.
    const unitLines = (at: string, keys: RegExp) =>
      file(`/etc/systemd/system/${at}`)
        .split("\n")
        .filter((l) => keys.test(l));
    expect(unitLines("webstack-collector.service", /^(Type|ExecStart)=/)).toEqual([
      "Type=exec",
      `ExecStart=/usr/local/sbin/webstack-aws ${args} --every 60`,
    ]);
    expect(unitLines("webstack-collector.timer", /^(On\w+|Unit|AccuracySec)=/)).toEqual([
      "OnBootSec=3min",
      "OnUnitInactiveSec=60s",
      "AccuracySec=5s",
    ]);
    // A changed service restarts a running collector, with its new arguments.
    for (const unit of ["webstack-collector.service", "webstack-collector.timer"])
      expect(bundleEntry(plan, node, `/etc/systemd/system/${unit}`).onChange).toEqual([
        "/usr/local/sbin/webstack-unit-changed",
        "try-restart",
        unit,
      ]);
    const boot = file("/etc/systemd/system/webstack-boot-status.service");
    expect(boot).toContain(`ExecStart=/usr/local/sbin/webstack-aws boot-status ${node}\n`);
    expect(boot).toContain("After=cloud-final.service");
    // Debian's cloud-final.service runs after multi-user.target: the report is cloud-init.target's
    // and no boot target waits for it to end (it retries for minutes without CloudWatch).
    expect(boot.split("\n").filter((l) => /^(WantedBy|Type)=/.test(l))).toEqual([
      "Type=exec",
      "WantedBy=cloud-init.target",
    ]);
    // A node enabled under the older [Install] (multi-user.target) moves on its next apply.
    expect(
      bundleEntry(plan, node, "/etc/systemd/system/webstack-boot-status.service").onChange,
    ).toEqual([
      "/usr/local/sbin/webstack-unit-changed",
      "reenable",
      "webstack-boot-status.service",
    ]);
  });

  test("no unit a boot target waits for is ordered after cloud-final.service, which Debian orders after multi-user.target", () => {
    for (const node of NODES) {
      for (const f of bundleOf(plan, node).files.filter((f) => f.path.endsWith(".service"))) {
        const lines = f.content.split("\n");
        const after = lines.filter((l) => l.startsWith("After=")).join(" ");
        const wantedBy = lines.filter((l) => l.startsWith("WantedBy=")).join(" ");
        if (/\bcloud-final\.service\b/.test(after))
          expect([f.path, wantedBy]).toEqual([f.path, "WantedBy=cloud-init.target"]);
      }
    }
  });

  test("the collector watches the certificates the nodes serve: HAProxy's one PEM, and each copy of an app node's own", () => {
    expect(bundleFile(plan, "lb", "/etc/haproxy/haproxy.cfg")).toContain(
      `bind :443 ssl crt ${servedCertificates("loadbalancer").public} `,
    );
    for (const node of ["s1", "s2"]) {
      const manifest = JSON.parse(bundleFile(plan, node, "/etc/webstack/secrets.json")) as {
        parameter: string;
        path: string;
      }[];
      const certificateCopies = manifest
        .filter((e) => e.parameter === parameterName(plan.stack, node as "s1", "tls-cert"))
        .map((e) => e.path);
      expect(certificateCopies.sort()).toEqual(
        Object.values(servedCertificates(TOPOLOGY.nodes[node as "s1"].role)).sort(),
      );
    }
  });

  test("installed by a unit that retries until it works, started without holding up the boot", () => {
    for (const node of NODES) {
      const bundle = bundleOf(plan, node);
      const unit = bundleFile(plan, node, "/etc/systemd/system/webstack-cloudwatch-agent.service");
      expect(unit.split("\n")).toEqual(
        expect.arrayContaining(["Restart=on-failure", "RestartSec=60", "StartLimitIntervalSec=0"]),
      );
      // Each monitoring unit started without the first apply waiting for it, and before the boot
      // script, so that even a failed boot reports itself.
      const boot = bootSequence(bundle);
      const monitoring = boot.started.filter((s) => MONITORING_UNITS.includes(s.unit));
      expect(monitoring.sort((a, b) => a.unit.localeCompare(b.unit))).toEqual(
        MONITORING_UNITS.map((unit) => ({ unit, waits: false, beforeBootScript: true })),
      );
      expect(boot.started.filter((s) => s.waits && s.beforeBootScript)).toEqual([]);
      const script = node === "lb" ? "webstack-lb-boot" : "webstack-boot";
      expect(boot.bootScript).toBe(`/usr/local/sbin/${script}`);
      expect(bundleEntry(plan, node, boot.bootScript).mode).toBe("0755");
      // A change to any of the agent's files re-runs its installer, not waited for.
      for (const path of [
        "/etc/webstack/cloudwatch-agent.json",
        "/etc/webstack/monitoring.env",
        "/etc/systemd/system/webstack-cloudwatch-agent.service",
      ])
        expect(bundleEntry(plan, node, path).onChange).toEqual([
          "/usr/local/sbin/webstack-unit-changed",
          "restart",
          "--no-block",
          "webstack-cloudwatch-agent.service",
        ]);
    }
  });
});

describe("a galera stack (database: galera)", () => {
  let galera: Plan;
  beforeAll(async () => {
    galera = await planConfig({ domain: "www.example.com", database: "galera" });
  });
  const collector = (node: string) =>
    bundleFile(galera, node, "/etc/systemd/system/webstack-collector.service");

  test.each([
    ["lb", "collect loadbalancer lb --certificate public=/etc/haproxy/certs/site.pem"],
    [
      "s2",
      "collect member s2 mariadb --certificate node=/etc/webstack/tls/node.crt" +
        " --certificate database=/etc/mysql/webstack/node.crt" +
        " --age BinlogShipAgeSeconds=/var/lib/webstack/backup/binlog.json:shipped",
    ],
    [
      "s1",
      "collect member s1 mariadb --certificate node=/etc/webstack/tls/node.crt" +
        " --certificate database=/etc/mysql/webstack/node.crt" +
        " --age BackupAgeSeconds=/var/lib/webstack/backup/full.json:finished",
    ],
  ])("%s's collector runs as the database's role, a member on s1 and s2 (%s)", (node, args) => {
    expect(collector(node)).toContain(
      `ExecStart=/usr/local/sbin/webstack-aws ${args} --every 60\n`,
    );
  });

  test("the LB's agent watches the process the arbitrator's unit starts", () => {
    const procstat = (of: Plan) =>
      JSON.parse(
        bundleFile(of, "lb", "/etc/webstack/cloudwatch-agent.json"),
      ).metrics.metrics_collected.procstat.map((p: { exe: string }) => p.exe);
    expect(procstat(galera)).toEqual(["haproxy", ARBITRATOR_PROCESS]);
    expect(bundleFile(galera, "lb", "/etc/systemd/system/garb.service.d/webstack.conf")).toContain(
      `\nExecStart=/usr/bin/${ARBITRATOR_PROCESS} --address gcomm://`,
    );
  });
});
