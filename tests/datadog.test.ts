// Datadog (optional): what turning it on adds, that the API key never leaves SSM, pinned keys, UDP 8125.
import YAML from "yaml";
import {
  DATADOG_KEY_FINGERPRINTS,
  renderDatadogChecks,
  renderDatadogConfig,
} from "../cloud-init/datadog";
import { shippedFile } from "../cloud-init/template";
import { parameterName } from "../model/naming";
import { DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import { Plan } from "../plan/plan";
import { redactSecrets, revealSecrets } from "../plan/secrets";
import {
  T,
  bootSequence,
  bundleFile,
  bundleObject,
  bundleOf,
  ofType,
  one,
  planConfig,
  planStack,
  userDataText,
} from "./harness";
import { cloudWatchAgentConfig } from "./rendererFixtures";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

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

describe("turning Datadog on", () => {
  test("adds exactly one resource: the API key as a SecureString every node may read", () => {
    const added = on.resources
      .filter((r) => !off.resources.some((o) => o.urn === r.urn))
      .map((r) => r.type);
    expect(added.sort()).toEqual([T.ssmParameter, "webstack:monitoring:DatadogApiKey"]);
    const parameter = one(on, T.ssmParameter, "datadog-api-key");
    expect(parameter.inputs).toMatchObject({
      name: parameterName(on.stack, "shared", "datadog-api-key"),
      type: "SecureString",
    });
    expect(
      redactSecrets(on.resources.find((r) => r.name === "datadog-api-key")!).inputs.value,
    ).toBe("[secret]");
  });

  test("changes every node's bundle, never its bootstrap: datadog.env says on, the agent's settings are added", () => {
    for (const node of NODES) {
      expect(userDataText(on, node)).toBe(userDataText(off, node));
      const [before, after] = [bundleOf(off, node), bundleOf(on, node)];
      const changed = after.files
        .filter(
          (f) => JSON.stringify(f) !== JSON.stringify(before.files.find((b) => b.path === f.path)),
        )
        .map((f) => f.path);
      expect(changed.every((p) => p.startsWith("/etc/webstack/datadog"))).toBe(true);
      expect(changed).toContain("/etc/webstack/datadog.env");
      expect(before.files.every((b) => after.files.some((f) => f.path === b.path))).toBe(true);
      expect(bundleFile(off, node, "/etc/webstack/datadog.env")).toBe("DATADOG_ENABLED=false\n");
      expect(bundleFile(on, node, "/etc/webstack/datadog.env")).toMatch(/^DATADOG_ENABLED=true$/m);
      // On or off, the switch's unit starts at first boot without the boot waiting for it, before
      // the boot script, like the other agents; any Datadog file's change re-runs it.
      for (const bundle of [before, after]) {
        expect(bootSequence(bundle).started).toContainEqual({
          unit: "webstack-datadog-agent.service",
          waits: false,
          beforeBootScript: true,
        });
        for (const f of bundle.files.filter((f) => /datadog/.test(f.path)))
          expect([f.path, f.onChange]).toEqual([
            f.path,
            [
              "/usr/local/sbin/webstack-unit-changed",
              "restart",
              "--no-block",
              "webstack-datadog-agent.service",
            ],
          ]);
      }
    }
  });

  test("off again: the installer stops and disables an agent a former bundle installed", () => {
    const installer = bundleFile(off, "lb", "/usr/local/sbin/webstack-install-datadog-agent");
    const offBranch = installer.indexOf('if [ "$DATADOG_ENABLED" != true ]; then');
    expect(offBranch).toBeGreaterThan(0);
    expect(installer.indexOf("systemctl disable --now datadog-agent")).toBeGreaterThan(offBranch);
    expect(installer.indexOf("systemctl disable --now datadog-agent")).toBeLessThan(
      installer.indexOf("apt-get update"),
    );
  });

  test("the API key is in no user-data, no bundle and no output; the nodes read it from SSM", () => {
    for (const node of NODES) {
      expect(userDataText(on, node)).not.toContain(API_KEY);
      expect(String(bundleObject(on, node).inputs.content)).not.toContain(API_KEY);
      const manifest = JSON.parse(bundleFile(on, node, "/etc/webstack/datadog/secrets.json"));
      expect(manifest[0]).toEqual({
        parameter: parameterName(on.stack, "shared", "datadog-api-key"),
        path: "/etc/webstack/secrets/datadog-api-key",
        mode: "0600",
        owner: "root:root",
      });
    }
    expect(JSON.stringify(revealSecrets(on.outputs))).not.toContain(API_KEY);
  });

  test("site and tags from config; the MySQL check reads the monitoring user's own password", () => {
    expect(YAML.parse(bundleFile(on, "s2", "/etc/webstack/datadog/datadog.yaml"))).toEqual({
      site: "datadoghq.eu",
      tags: ["env:test", "role:primary", "node:s2", "service:webstack"],
      logs_enabled: true,
      use_dogstatsd: true,
      dogstatsd_port: 8125,
    });
    const manifest = JSON.parse(bundleFile(on, "s2", "/etc/webstack/datadog/secrets.json"));
    expect(manifest[1].parameter).toBe(parameterName(on.stack, "s2", "db-monitor-password"));
    expect(JSON.parse(bundleFile(on, "lb", "/etc/webstack/datadog/secrets.json"))).toHaveLength(1);
  });

  test("the installer trusts only Datadog's pinned keys, and retries", () => {
    const env = bundleFile(on, "lb", "/etc/webstack/datadog.env");
    expect(env).toContain(`DATADOG_KEY_FINGERPRINTS=${DATADOG_KEY_FINGERPRINTS.join(",")}\n`);
    expect(env).toContain("DATADOG_REPO_URL=https://apt.datadoghq.com/\n");
    expect(DATADOG_KEY_FINGERPRINTS.every((f) => /^[0-9A-F]{40}$/.test(f))).toBe(true);
    const installer = bundleFile(on, "lb", "/usr/local/sbin/webstack-install-datadog-agent");
    expect(installer).toContain('gpg --batch --export $fingerprints >"$work/keyring.gpg"');
    expect(installer).toContain('echo "deb [signed-by=$keyring] $DATADOG_REPO_URL stable 7"');
    expect(bundleFile(on, "lb", "/etc/systemd/system/webstack-datadog-agent.service")).toContain(
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
    const mysql = YAML.parse(checks.mysql).instances;
    // The database's own monitoring user, over the local socket only, with replication metrics.
    expect(mysql).toHaveLength(1);
    expect(mysql[0]).toMatchObject({ host: "localhost", username: "monitor" });
    expect(mysql[0].sock).toMatch(/^\/run\/mysqld\/[a-z]+\.sock$/);
    expect(mysql[0].options).toEqual({ replication: true });
    // Its password is a placeholder that the installer fills on the node, never a value.
    expect(mysql[0].password).toMatch(/^@[A-Z_]+@$/);
    expect(shippedFile("install-datadog-agent.sh")).toContain(`\${text//${mysql[0].password}/`);
  });

  test("only DogStatsD listens on UDP 8125: the CloudWatch agent runs no statsd", () => {
    expect(
      YAML.parse(renderDatadogConfig({ ...params, node: "s1", role: "replica", engine: "mariadb" }))
        .dogstatsd_port,
    ).toBe(8125);
    expect(JSON.stringify(cloudWatchAgentConfig("s1"))).not.toMatch(/statsd/);
  });
});

test("prod (Datadog on, key a placeholder) plans the agent everywhere", async () => {
  const prod = await planStack("prod");
  expect(ofType(prod, T.ssmParameter).map((p) => p.inputs.name)).toContain(
    parameterName(prod.stack, "shared", "datadog-api-key"),
  );
  for (const node of NODES)
    expect(bundleFile(prod, node, "/etc/webstack/datadog.env")).toMatch(/^DATADOG_ENABLED=true$/m);
});
