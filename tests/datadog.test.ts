// Datadog (optional): what turning it on adds, that the API key never leaves SSM, pinned keys, UDP 8125.
import YAML from "yaml";
import {
  DATADOG_KEY_FINGERPRINTS,
  renderDatadogChecks,
  renderDatadogConfig,
} from "../cloud-init/datadog";
import { renderCloudWatchAgentConfig } from "../cloud-init/monitoring";
import { decodeUserData } from "../cloud-init/userDataEncoding";
import { Plan } from "../plan/plan";
import { redactSecrets, revealSecrets } from "../plan/secrets";
import { T, ofType, one, planConfig, userDataFile } from "./harness";

const API_KEY = "fedcba9876543210fedcba9876543210";
const BASE = { domain: "www.example.com", datadogSite: "datadoghq.eu" };
let off: Plan;
let on: Plan;

beforeAll(async () => {
  off = await planConfig(BASE);
  on = await planConfig(
    { ...BASE, datadog: "true", datadogApiKey: API_KEY },
    { secretKeys: ["webstack:datadogApiKey"] },
  );
});

const documentOf = (plan: Plan, node: string) =>
  decodeUserData(one(plan, T.instance, `${node}-instance`).inputs);

describe("turning Datadog on", () => {
  test("adds exactly one resource: the API key as a SecureString every node may read", () => {
    const added = on.resources
      .filter((r) => !off.resources.some((o) => o.urn === r.urn))
      .map((r) => r.type);
    expect(added.sort()).toEqual([
      "aws:ssm/parameter:Parameter",
      "webstack:monitoring:DatadogApiKey",
    ]);
    const parameter = one(on, T.ssmParameter, "datadog-api-key");
    expect(parameter.inputs).toMatchObject({
      name: "/webstack/test/shared/datadog-api-key",
      type: "SecureString",
    });
    expect(
      redactSecrets(on.resources.find((r) => r.name === "datadog-api-key")!).inputs.value,
    ).toBe("[secret]");
  });

  test("adds the agent to every node's user-data and changes nothing else there", () => {
    for (const node of ["lb", "s1", "s2"]) {
      const before = YAML.parse(documentOf(off, node));
      const after = YAML.parse(documentOf(on, node));
      const paths = (d: { write_files: { path: string }[] }) => d.write_files.map((f) => f.path);
      const addedFiles = paths(after).filter((p: string) => !paths(before).includes(p));
      expect(
        addedFiles.every(
          (p: string) => p.startsWith("/etc/webstack/datadog") || p.includes("datadog-agent"),
        ),
      ).toBe(true);
      expect(paths(before).every((p: string) => paths(after).includes(p))).toBe(true);
      expect(after.runcmd).toContainEqual([
        "systemctl",
        "enable",
        "--now",
        "--no-block",
        "webstack-datadog-agent.service",
      ]);
    }
  });

  test("the API key is in no user-data and no output; the nodes read it from SSM", () => {
    for (const node of ["lb", "s1", "s2"]) {
      expect(documentOf(on, node)).not.toContain(API_KEY);
      const manifest = JSON.parse(userDataFile(on, node, "/etc/webstack/datadog/secrets.json"));
      expect(manifest[0]).toEqual({
        parameter: "/webstack/test/shared/datadog-api-key",
        path: "/etc/webstack/secrets/datadog-api-key",
        mode: "0600",
        owner: "root:root",
      });
    }
    expect(JSON.stringify(revealSecrets(on.outputs))).not.toContain(API_KEY);
  });

  test("site and tags from config; the MySQL check reads the monitoring user's own password", () => {
    expect(YAML.parse(userDataFile(on, "s2", "/etc/webstack/datadog/datadog.yaml"))).toEqual({
      site: "datadoghq.eu",
      tags: ["env:test", "role:primary", "node:s2", "service:webstack"],
      logs_enabled: true,
      use_dogstatsd: true,
      dogstatsd_port: 8125,
    });
    const manifest = JSON.parse(userDataFile(on, "s2", "/etc/webstack/datadog/secrets.json"));
    expect(manifest[1].parameter).toBe("/webstack/test/s2/db-monitor-password");
    expect(JSON.parse(userDataFile(on, "lb", "/etc/webstack/datadog/secrets.json"))).toHaveLength(
      1,
    );
  });

  test("the installer trusts only Datadog's pinned keys, and retries", () => {
    const env = userDataFile(on, "lb", "/etc/webstack/datadog.env");
    expect(env).toContain(`DATADOG_KEY_FINGERPRINTS=${DATADOG_KEY_FINGERPRINTS.join(",")}\n`);
    expect(env).toContain("DATADOG_REPO_URL=https://apt.datadoghq.com/\n");
    expect(DATADOG_KEY_FINGERPRINTS.every((f) => /^[0-9A-F]{40}$/.test(f))).toBe(true);
    const installer = userDataFile(on, "lb", "/usr/local/sbin/webstack-install-datadog-agent");
    expect(installer).toContain('gpg --batch --export $fingerprints >"$work/keyring.gpg"');
    expect(installer).toContain('echo "deb [signed-by=$keyring] $DATADOG_REPO_URL stable 7"');
    expect(userDataFile(on, "lb", "/etc/systemd/system/webstack-datadog-agent.service")).toContain(
      "Restart=on-failure",
    );
  });
});

describe("integrations", () => {
  const params = {
    stack: "t",
    site: "datadoghq.com",
    repoUrl: "https://apt.datadoghq.com/",
    apiKeyParameter: "/k",
  };

  test("lb: HAProxy through its OpenMetrics endpoint, and its log", () => {
    const checks = renderDatadogChecks({
      ...params,
      node: "lb",
      role: "loadbalancer",
      engine: "mariadb",
    });
    expect(Object.keys(checks)).toEqual(["haproxy"]);
    expect(YAML.parse(checks.haproxy).instances).toEqual([
      { use_openmetrics: true, openmetrics_endpoint: "http://127.0.0.1:8404/metrics" },
    ]);
  });

  test("app nodes: Nginx's stub_status, MySQL with replication metrics, and their logs", () => {
    const checks = renderDatadogChecks({
      ...params,
      node: "s1",
      role: "replica",
      engine: "mariadb",
      monitorPasswordParameter: "/p",
    });
    expect(Object.keys(checks).sort()).toEqual(["mysql", "nginx"]);
    expect(YAML.parse(checks.nginx).instances).toEqual([
      { nginx_status_url: "http://127.0.0.1:8080/nginx_status" },
    ]);
    expect(YAML.parse(checks.mysql).instances).toEqual([
      {
        host: "localhost",
        sock: "/run/mysqld/mysqld.sock",
        username: "monitor",
        password: "@MONITOR_PASSWORD@",
        options: { replication: true },
      },
    ]);
  });

  test("only DogStatsD listens on UDP 8125: the CloudWatch agent runs no statsd", () => {
    expect(
      YAML.parse(renderDatadogConfig({ ...params, node: "s1", role: "replica", engine: "mariadb" }))
        .dogstatsd_port,
    ).toBe(8125);
    const cw = renderCloudWatchAgentConfig({
      node: "s1",
      role: "replica",
      engine: "mariadb",
      logGroups: Object.fromEntries(
        ["cloud-init", "nginx-access", "nginx-error", "app", "db-error", "db-slow"].map((k) => [
          k,
          k,
        ]),
      ),
      agentPackageUrl: "x",
    });
    expect(JSON.stringify(cw)).not.toMatch(/statsd/);
  });
});

test("prod (Datadog on, key a placeholder) plans the agent everywhere", async () => {
  const { planStack } = await import("./harness");
  const prod = await planStack("prod");
  expect(ofType(prod, T.ssmParameter).map((p) => p.inputs.name)).toContain(
    "/webstack/prod/shared/datadog-api-key",
  );
  for (const node of ["lb", "s1", "s2"])
    expect(documentOf(prod, node)).toContain("webstack-datadog-agent.service");
});
