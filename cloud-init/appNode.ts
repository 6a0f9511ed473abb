// The composer of an app node's user-data (s1, s2): Nginx, Gunicorn + app, database, secrets, boot.
import { CloudConfigPart, Command, composeCloudConfig } from "./cloudConfig";
import {
  DB_DATA_DIR,
  DB_TLS_DIR,
  DatabaseParams,
  ENGINES,
  databaseEnvironment,
  renderDatabasePart,
} from "./database";
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

/** Parameters an app node reads from SSM at boot, by purpose. */
export interface AppNodeParameterNames {
  readonly "db-app-password": string;
  readonly "db-replication-password": string;
  readonly "db-monitor-password": string;
  readonly "tls-key": string;
  readonly "tls-cert": string;
}

export interface AppNodeParams {
  readonly node: string;
  readonly fqdn: string;
  readonly privateIp: string;
  readonly database: DatabaseParams;
  /** The replica's address (the app reads there first). */
  readonly replicaIp: string;
  /** PEM of the private CA (public); lands at CA_CERT_PATH. */
  readonly caCertPem: string;
  /** Block device of the database's own volume, as the node sees it. */
  readonly dataDevice: string;
  readonly parameters: AppNodeParameterNames;
  /** Loopback port of Nginx's stub_status (the QPS source). */
  readonly statusPort: number;
  /** Extra parts (monitoring): merged first, so their commands run before the boot script. */
  readonly extraParts?: readonly CloudConfigPart[];
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

/** Runs the shipped data-volume script from bootcmd, before write_files and packages exist. */
function dataVolumeCommand(device: string): Command {
  return ["bash", "-c", shippedFile("data-volume.sh"), "webstack-data-volume", device, DB_DATA_DIR];
}

export function renderAppNodeUserData(p: AppNodeParams): string {
  const db = p.database;
  const engine = ENGINES[db.engine];
  const environment = {
    NODE: p.node,
    ...databaseEnvironment(db),
    // "local" = this node's own server over its socket.
    APP_DB_PRIMARY: db.role === "primary" ? "local" : db.primaryIp,
    APP_DB_REPLICA: db.role === "replica" ? "local" : p.replicaIp,
  };
  const own: CloudConfigPart = {
    packages: ["nginx", "gunicorn", "python3-pymysql", "python3-boto3", "ca-certificates"],
    bootcmd: [dataVolumeCommand(p.dataDevice)],
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
        content: shippedFile("gunicorn.conf.py"),
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
          NODE: p.node,
          NODE_FQDN: p.fqdn,
          STATUS_PORT: p.statusPort,
        }),
        permissions: "0644",
      },
    ],
    runcmd: [["/usr/local/sbin/webstack-boot"]],
  };
  return composeCloudConfig(
    {
      hostname: p.node,
      fqdn: p.fqdn,
      description: `webstack ${p.node} (${db.role}): rendered by webstack; do not edit on the node`,
    },
    [...(p.extraParts ?? []), own, renderDatabasePart(db)],
  );
}
