// The Datadog agent on a node (when enabled): its config, the integrations, and the installer unit.
import YAML from "yaml";
import { renderEnvFile, rootFile } from "./nodeFiles";
import { DbEngine } from "../model/config";
import {
  DatabaseMode,
  LOOPBACK_PORTS,
  NodeName,
  NodeRole,
  appNodesHoldData,
} from "../model/topology";
import { agentInstallerChanged, agentInstallerFiles, agentInstallerUnit } from "./agentInstaller";
import { BundleFile, BundlePart } from "./bundle";
import { logPath } from "./logSources";

/** Datadog's APT signing keys (repository metadata and packages), by full fingerprint. */
export const DATADOG_KEY_FINGERPRINTS = [
  "D18886567EABAD8B2D2526900D826EB906462314", // DATADOG_APT_KEY_06462314, until 2033
  "5F1E256061D813B125E156E8E6266D4AC0962C7D", // DATADOG_APT_KEY_C0962C7D, until 2028
  "D75CEA17048B9ACBF186794B32637D44F14F620E", // DATADOG_APT_KEY_F14F620E, until 2032
] as const;

/** The stack's Datadog settings a node's agent needs. */
export interface DatadogAgent {
  readonly stack: string;
  readonly site: string;
  readonly repoUrl: string;
  /** SSM parameter holding the API key (SecureString). */
  readonly apiKeyParameter: string;
  /** SSM parameter of the database monitoring user's password (app nodes). */
  readonly monitorPasswordParameter?: string;
}

/** The node a Datadog switch belongs to. */
export interface DatadogNode {
  readonly node: NodeName;
  readonly role: NodeRole;
  readonly engine: DbEngine;
  /** With `rds` an app node has no database for the agent to watch. @default "replication" */
  readonly cluster?: DatabaseMode;
}

export interface DatadogParams extends DatadogAgent, DatadogNode {}

const STAGING = "/etc/webstack/datadog";

/** datadog.yaml without the API key, which the installer appends from SSM. */
export function renderDatadogConfig(p: DatadogParams): string {
  return YAML.stringify({
    site: p.site,
    tags: [`env:${p.stack}`, `role:${p.role}`, `node:${p.node}`, "service:webstack"],
    logs_enabled: true,
    // DogStatsD owns UDP 8125; the CloudWatch agent runs no statsd listener.
    use_dogstatsd: true,
    dogstatsd_port: 8125,
  });
}

/** One conf.yaml per integration; the MySQL password is a placeholder filled on the node. */
export function renderDatadogChecks(p: DatadogParams): Record<string, string> {
  const log = (path: string, source: string) => ({
    type: "file",
    path,
    source,
    service: "webstack",
  });
  if (p.role === "loadbalancer") {
    return {
      haproxy: YAML.stringify({
        init_config: {},
        instances: [
          {
            use_openmetrics: true,
            openmetrics_endpoint: `http://127.0.0.1:${LOOPBACK_PORTS.haproxyStats}/metrics`,
          },
        ],
        logs: [log(logPath(p.role, "haproxy"), "haproxy")],
      }),
    };
  }
  const nginx = {
    nginx: YAML.stringify({
      init_config: {},
      instances: [
        { nginx_status_url: `http://127.0.0.1:${LOOPBACK_PORTS.nginxStatus}/nginx_status` },
      ],
      logs: [
        log(logPath(p.role, "nginx-access"), "nginx"),
        log(logPath(p.role, "nginx-error"), "nginx"),
      ],
    }),
  };
  // RDS's own metrics and logs are in CloudWatch: nothing of it for the nodes' agents.
  if (!appNodesHoldData(p.cluster ?? "replication")) return nginx;
  return {
    ...nginx,
    mysql: YAML.stringify({
      init_config: {},
      instances: [
        {
          host: "localhost",
          sock: "/run/mysqld/mysqld.sock",
          username: "monitor",
          password: "@MONITOR_PASSWORD@",
          options: { replication: true },
        },
      ],
      // Datadog names the log sources as we name the engines.
      logs: [log(logPath(p.role, "db-error"), p.engine)],
    }),
  };
}

/** The agent's installer: any change re-runs it, to turn the agent on or off (datadog.env). */
const DATADOG_AGENT = "datadog-agent";

/**
 * Datadog's switch, in every bundle: datadog.env says on or off, and its unit (enabled at first
 * boot, re-run whenever a Datadog file changes) installs, configures and starts the agent, or stops
 * and disables an agent a former bundle installed. The agent's settings ship only when it is on.
 */
export function renderDatadogPart(own: DatadogNode, agent?: DatadogAgent): BundlePart {
  const file = (path: string, content: string, mode = "0644"): BundleFile => ({
    path,
    content,
    mode,
    onChange: agentInstallerChanged(DATADOG_AGENT),
  });
  const settings = agent ? datadogSettings({ ...own, ...agent }) : [];
  return {
    files: [
      file(
        "/etc/webstack/datadog.env",
        renderEnvFile(
          agent
            ? {
                DATADOG_ENABLED: "true",
                DATADOG_REPO_URL: agent.repoUrl,
                DATADOG_KEY_FINGERPRINTS: DATADOG_KEY_FINGERPRINTS.join(","),
              }
            : { DATADOG_ENABLED: "false" },
        ),
      ),
      ...settings.map((s) => file(s.path, s.content, s.mode)),
      ...agentInstallerFiles(DATADOG_AGENT, "Datadog agent"),
    ],
    firstApply: [["systemctl", "enable", "--now", "--no-block", agentInstallerUnit(DATADOG_AGENT)]],
  };
}

/** The agent's staged settings: datadog.yaml (no key), what to fetch from SSM, the integrations. */
function datadogSettings(p: DatadogParams): { path: string; content: string; mode: string }[] {
  const secret = (parameter: string, name: string) =>
    rootFile(parameter, `/etc/webstack/secrets/${name}`);
  const manifest = [
    secret(p.apiKeyParameter, "datadog-api-key"),
    ...(p.monitorPasswordParameter
      ? [secret(p.monitorPasswordParameter, "db-monitor-password")]
      : []),
  ];
  return [
    { path: `${STAGING}/datadog.yaml`, content: renderDatadogConfig(p), mode: "0644" },
    {
      path: `${STAGING}/secrets.json`,
      content: `${JSON.stringify(manifest, null, 2)}\n`,
      mode: "0600",
    },
    ...Object.entries(renderDatadogChecks(p)).map(([check, content]) => ({
      path: `${STAGING}/conf.d/${check}.yaml`,
      content,
      mode: "0600",
    })),
  ];
}
