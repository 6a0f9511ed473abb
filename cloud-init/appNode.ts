// The composer of an app node's user-data (s1, s2): Nginx, Gunicorn + app, database, secrets,
// monitoring, boot.
import { Architecture, ebsDevicePath } from "../model/aws";
import { DbEngine } from "../model/config";
import { RequestLimits } from "../model/limits";
import { AppNodeParameter } from "../model/naming";
import { AppNodeSpec, LOOPBACK_PORTS } from "../model/topology";
import { CloudConfigPart, Command, composeCloudConfig } from "./cloudConfig";
import {
  DB_DATA_DIR,
  DB_TLS_DIR,
  DatabaseParams,
  ENGINES,
  databaseEnvironment,
  renderDatabasePart,
} from "./database";
import { NodeMonitoring, renderNodeMonitoringParts } from "./monitoring";
import { renderShipped, shippedFile } from "./template";
import {
  CA_CERT_PATH,
  ManifestEntry,
  NODE_CERT_PATH,
  NODE_KEY_PATH,
  SECRETS_MANIFEST_PATH,
  renderEnvFile,
  rootFile,
} from "./nodeFiles";

/** The SSM parameters an app node reads at boot, by purpose (see APP_NODE_PARAMETERS). */
export type AppNodeParameterNames = Readonly<Record<AppNodeParameter, string>>;

export interface AppNodeParams {
  /** This node: its name, role (primary or replica), address and database server id. */
  readonly node: AppNodeSpec;
  /** The primary's address (the replica's source; the app writes there). */
  readonly primaryIp: string;
  /** The replica's address (the app reads there first). */
  readonly replicaIp: string;
  /** Every app node's address: remote app and replication users are created for each. */
  readonly appNodeIps: readonly string[];
  readonly engine: DbEngine;
  /** How long a request may take and how large it may be: Nginx, Gunicorn and the app's share. */
  readonly limits: RequestLimits;
  /** PEM of the private CA (public); lands at CA_CERT_PATH. */
  readonly caCertPem: string;
  /** The database's own EBS volume; the node finds it at its NVMe device path. */
  readonly dataVolumeId: string;
  readonly parameters: AppNodeParameterNames;
  /** The instance's architecture (the agents' packages). */
  readonly architecture: Architecture;
  /** Logs and metrics: merged first, so their commands run before the boot script. */
  readonly monitoring: NodeMonitoring;
}

/** The database renderer's view of an app node. */
export function databaseParams(p: AppNodeParams): DatabaseParams {
  return {
    engine: p.engine,
    role: p.node.role,
    node: p.node.name,
    serverId: p.node.dbServerId,
    bindAddress: p.node.privateIp,
    primaryIp: p.primaryIp,
    appNodeIps: p.appNodeIps,
  };
}

export const NODE_ENV_PATH = "/etc/webstack/node.env";
/** The certificate and key entries alone, re-fetched daily to pick up a renewal. */
export const TLS_MANIFEST_PATH = "/etc/webstack/tls-manifest.json";

/** Where each fetched parameter lands: the web side's copy and the database's own copy. */
export function secretsManifest(p: AppNodeParams): ManifestEntry[] {
  const names = p.parameters;
  return [
    rootFile(names["tls-cert"], NODE_CERT_PATH, "0644"),
    rootFile(names["tls-key"], NODE_KEY_PATH),
    {
      parameter: names["tls-cert"],
      path: `${DB_TLS_DIR}/node.crt`,
      mode: "0644",
      owner: "mysql:mysql",
    },
    {
      parameter: names["tls-key"],
      path: `${DB_TLS_DIR}/node.key`,
      mode: "0600",
      owner: "mysql:mysql",
    },
    rootFile(names["db-app-password"], "/etc/webstack/secrets/db-app-password"),
    rootFile(names["db-replication-password"], "/etc/webstack/secrets/db-replication-password"),
    rootFile(names["db-monitor-password"], "/etc/webstack/secrets/db-monitor-password"),
  ];
}

/**
 * The errors Nginx answers itself on an app node, and what each says. 494 (a header too large) is
 * Nginx's internal code for a 400; 404 is only Nginx's own (an internal location asked from outside).
 */
const NGINX_JSON_ERRORS: readonly { readonly status: number; readonly error: string }[] = [
  { status: 400, error: "bad request" },
  { status: 404, error: "no such route" },
  { status: 408, error: "request timeout" },
  { status: 413, error: "request body too large" },
  { status: 414, error: "request URI too long" },
  { status: 500, error: "internal error" },
  { status: 502, error: "the app is unavailable" },
  { status: 503, error: "the app is unavailable" },
  { status: 504, error: "the app did not answer in time" },
];

/** Nginx's error_page lines and the internal locations answering each error in JSON. */
function renderNginxJsonErrors(node: AppNodeSpec): string {
  const at = (status: number) => `/_webstack/error/${status}`;
  return NGINX_JSON_ERRORS.flatMap(({ status, error }) => {
    const body = JSON.stringify({ node: node.name, role: node.role, error });
    // Inside '…' Nginx reads $ as a variable and \ as an escape: a body must hold neither.
    if (/['\\$]/.test(body)) throw new Error(`Nginx error body cannot be quoted: ${body}`);
    return [
      `    error_page ${status === 400 ? "400 494 =400" : status} ${at(status)};`,
      `    location = ${at(status)} {`,
      "        internal;",
      "        default_type application/json;",
      "        add_header Cache-Control no-store always;",
      `        return ${status} '${body}';`,
      "    }",
    ];
  }).join("\n");
}

/** Runs the shipped data-volume script from bootcmd, before write_files and packages exist. */
function dataVolumeCommand(device: string): Command {
  return ["bash", "-c", shippedFile("data-volume.sh"), "webstack-data-volume", device, DB_DATA_DIR];
}

export function renderAppNodeUserData(p: AppNodeParams): string {
  const db = databaseParams(p);
  const engine = ENGINES[db.engine];
  const environment = {
    NODE: p.node.name,
    ...databaseEnvironment(db),
    // "local" = this node's own server over its socket.
    APP_DB_PRIMARY: db.role === "primary" ? "local" : db.primaryIp,
    APP_DB_REPLICA: db.role === "replica" ? "local" : p.replicaIp,
    // The longest the app waits for its primary database (model/limits.ts).
    APP_DB_WAIT_SECONDS: String(p.limits.timeouts.appDatabaseSeconds),
  };
  const own: CloudConfigPart = {
    // logrotate for Gunicorn's rule below and the packages' own (Nginx, the database).
    packages: [
      "nginx",
      "gunicorn",
      "python3-pymysql",
      "python3-boto3",
      "ca-certificates",
      "logrotate",
    ],
    bootcmd: [dataVolumeCommand(ebsDevicePath(p.dataVolumeId))],
    writeFiles: [
      { path: NODE_ENV_PATH, content: renderEnvFile(environment), permissions: "0644" },
      { path: CA_CERT_PATH, content: p.caCertPem, permissions: "0644" },
      {
        path: SECRETS_MANIFEST_PATH,
        content: `${JSON.stringify(secretsManifest(p), null, 2)}\n`,
        permissions: "0600",
      },
      {
        path: "/usr/local/sbin/webstack-aws",
        content: shippedFile("webstack-aws.py"),
        permissions: "0755",
      },
      {
        path: "/usr/local/sbin/webstack-db-bootstrap",
        content: shippedFile("db-bootstrap.sh"),
        permissions: "0755",
      },
      {
        path: "/usr/local/sbin/webstack-boot",
        content: shippedFile("app-node-boot.sh"),
        permissions: "0755",
      },
      {
        path: TLS_MANIFEST_PATH,
        content: `${JSON.stringify(
          secretsManifest(p).filter(
            (e) =>
              e.parameter === p.parameters["tls-cert"] || e.parameter === p.parameters["tls-key"],
          ),
          null,
          2,
        )}\n`,
        permissions: "0600",
      },
      {
        path: "/usr/local/sbin/webstack-refresh-tls",
        content: shippedFile("refresh-tls.sh"),
        permissions: "0755",
      },
      {
        path: "/etc/systemd/system/webstack-refresh-tls.service",
        content: shippedFile("webstack-refresh-tls.service"),
        permissions: "0644",
      },
      {
        path: "/etc/systemd/system/webstack-refresh-tls.timer",
        content: shippedFile("webstack-refresh-tls.timer"),
        permissions: "0644",
      },
      { path: "/srv/webstack/app.py", content: shippedFile("app.py"), permissions: "0644" },
      {
        path: "/etc/webstack/gunicorn.conf.py",
        content: renderShipped("gunicorn.conf.py", {
          WORKER_TIMEOUT: p.limits.timeouts.gunicornWorkerSeconds,
        }),
        permissions: "0644",
      },
      {
        path: "/etc/logrotate.d/webstack",
        content: shippedFile("logrotate-webstack"),
        permissions: "0644",
      },
      {
        path: "/etc/systemd/system/webstack-app.service",
        content: renderShipped("webstack-app.service", { DB_SERVICE: engine.service }),
        permissions: "0644",
      },
      {
        // Enabled by the boot script once the key exists: Nginx must not start without it.
        path: "/etc/nginx/sites-available/webstack",
        content: renderShipped("nginx-site.conf", {
          NODE: p.node.name,
          NODE_FQDN: p.node.internalName,
          JSON_ERROR_PAGES: renderNginxJsonErrors(p.node),
          STATUS_PORT: LOOPBACK_PORTS.nginxStatus,
          MAX_BODY_MIB: p.limits.maxBodyMiB,
          READ_TIMEOUT: p.limits.timeouts.nginxReadSeconds,
        }),
        permissions: "0644",
      },
    ],
    runcmd: [["/usr/local/sbin/webstack-boot"]],
  };
  return composeCloudConfig(
    {
      hostname: p.node.name,
      fqdn: p.node.internalName,
      description: `webstack ${p.node.name} (${db.role}): rendered by webstack; do not edit on the node`,
    },
    [
      ...renderNodeMonitoringParts(p.node, p.architecture, p.monitoring),
      own,
      renderDatabasePart(db),
    ],
  );
}
