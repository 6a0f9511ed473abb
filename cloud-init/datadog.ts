// The Datadog agent on a node (when enabled): its config, the integrations, and the installer unit.
import YAML from "yaml";
import { renderEnvFile, rootFile } from "./nodeFiles";
import { DbEngine } from "../model/config";
import { LOOPBACK_PORTS, NodeName, NodeRole } from "../model/topology";
import { CloudConfigPart } from "./cloudConfig";
import { logPath } from "./logSources";
import { shippedFile } from "./template";

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

export interface DatadogParams extends DatadogAgent {
  readonly node: NodeName;
  readonly role: NodeRole;
  readonly engine: DbEngine;
}

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
  return {
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

export function renderDatadogPart(p: DatadogParams): CloudConfigPart {
  const secret = (parameter: string, name: string) =>
    rootFile(parameter, `/etc/webstack/secrets/${name}`);
  const manifest = [
    secret(p.apiKeyParameter, "datadog-api-key"),
    ...(p.monitorPasswordParameter
      ? [secret(p.monitorPasswordParameter, "db-monitor-password")]
      : []),
  ];
  return {
    packages: ["curl", "gpg"],
    writeFiles: [
      {
        path: "/etc/webstack/datadog.env",
        content: renderEnvFile({
          DATADOG_REPO_URL: p.repoUrl,
          DATADOG_KEY_FINGERPRINTS: DATADOG_KEY_FINGERPRINTS.join(","),
        }),
        permissions: "0644",
      },
      { path: `${STAGING}/datadog.yaml`, content: renderDatadogConfig(p), permissions: "0644" },
      {
        path: `${STAGING}/secrets.json`,
        content: `${JSON.stringify(manifest, null, 2)}\n`,
        permissions: "0600",
      },
      ...Object.entries(renderDatadogChecks(p)).map(([check, content]) => ({
        path: `${STAGING}/conf.d/${check}.yaml`,
        content,
        permissions: "0600",
      })),
      {
        path: "/usr/local/sbin/webstack-install-datadog-agent",
        content: shippedFile("install-datadog-agent.sh"),
        permissions: "0755",
      },
      {
        path: "/etc/systemd/system/webstack-datadog-agent.service",
        content: shippedFile("webstack-datadog-agent.service"),
        permissions: "0644",
      },
    ],
    runcmd: [["systemctl", "enable", "--now", "--no-block", "webstack-datadog-agent.service"]],
  };
}
