// The composers of an app node's (s1, s2) two documents: its bootstrap (user-data: data volume,
// packages, server settings) and its bundle (Nginx, Gunicorn + app, database, secrets manifest,
// monitoring, boot).
import { Architecture, ebsDevicePath } from "../model/aws";
import { DbEngine } from "../model/config";
import { RequestLimits, requireWholeFrom } from "../model/limits";
import { AppNodeParameter, ServerOnlyParameter, releaseCommandStatusName } from "../model/naming";
import {
  AppNodeSpec,
  DatabaseMode,
  LOOPBACK_PORTS,
  PORTS,
  PRIMARY_NODE,
  appNodesHoldData,
} from "../model/topology";
import { RDS_CA_BUNDLE_URL, RDS_CA_IDENTIFIER } from "../model/rds";
import {
  Argv,
  BundleApp,
  BundleFile,
  BundlePart,
  BundlePayload,
  NODE_TOOL_PATH,
  afterOf,
  composeBundle,
  httpCheck,
  unitFile,
} from "./bundle";
import { BootstrapPart, composeBootstrap } from "./cloudConfig";
import { dataVolumeCommand, dataVolumeGrowPart } from "./dataVolume";
import {
  DB_BOOTSTRAP_PATH,
  DB_CERT_PATH,
  DB_LATE_CONFIG_PATH,
  DB_REPLICATION_PASSWORD_PATH,
  DB_TLS_DIR,
  DatabaseParams,
  DatabaseServer,
  ENGINES,
  GALERA_PACKAGES,
  GaleraMember,
  RDS_CA_PATH,
  RDS_CLIENT_PACKAGES,
  RdsEndpoint,
  dbNodeRole,
  databaseBootstrapPart,
  databaseBundlePart,
  databaseEnvironment,
  rdsBundlePart,
  rdsOf,
  releaseCommandDatabase,
} from "./database";
import { jsonErrorBody } from "./jsonErrors";
import { NodeMonitoring, renderNodeMonitoringParts } from "./monitoring";
import { INSTALLER_PACKAGES, signedDebInstallerPart } from "./agentInstaller";
import { PATCHING_PACKAGES, renderPatchingPart } from "./patching";
import { renderSsmAgentPart } from "./ssmAgent";
import { backupPackages, renderBackupPart } from "./backups";
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

/**
 * The SSM parameters an app node reads at boot, by purpose (see APP_NODE_PARAMETERS); the server's
 * own only on a node that holds data.
 */
export type AppNodeParameterNames = Readonly<
  Record<Exclude<AppNodeParameter, ServerOnlyParameter>, string> &
    Partial<Record<ServerOnlyParameter, string>>
>;

/** A parameter only a node holding data has; its absence there is the program's bug. */
function serverParameter(p: AppNodeParams, key: ServerOnlyParameter): string {
  const name = p.parameters[key];
  if (!name) throw new Error(`${p.node.name}: no ${key} parameter, yet it holds a database`);
  return name;
}

/** One secret variable of the app: its parameter, and the version that shows a new value. */
export interface AppSecretRef {
  readonly name: string;
  readonly parameter: string;
  readonly version: number;
}

/** The team's app an app node runs (issue 18). */
export interface AppReleaseParams {
  /** The release id: the sha256 of its archive. */
  readonly id: string;
  /** The bucket and key of its archive (`releases/<id>.tar.gz`). */
  readonly bucket: string;
  readonly key: string;
  /** The WSGI callable Gunicorn serves, `module.path:callable`. */
  readonly module: string;
  /** The app's plain environment variables. */
  readonly env: Readonly<Record<string, string>>;
  readonly secrets: readonly AppSecretRef[];
  /** Run once per release on the primary, before any node serves it. */
  readonly command?: string;
}

/** What an app node runs: everything its bundle is made of. */
export interface AppNodeParams {
  /** The stack: its nodes' parameter names (the replica's bundle status, for the primary). */
  readonly stack: string;
  /** This node: its name, role (primary or replica), address and database server id. */
  readonly node: AppNodeSpec;
  /** The primary's address (the replica's source; the app writes there). */
  readonly primaryIp: string;
  /** The primary's database server id, which is also its GTID domain (a restore replays it). */
  readonly primaryServerId: number;
  /** The replica's address (the app reads there first). */
  readonly replicaIp: string;
  /** Every app node's address: remote app and replication users are created for each. */
  readonly appNodeIps: readonly string[];
  readonly engine: DbEngine;
  /** How the databases hold the data (config `database`). */
  readonly cluster: DatabaseMode;
  /** With `galera`: this member's view of the cluster. */
  readonly galera?: GaleraMember;
  /** With `rds`: the RDS instance the app and the schema use (the node holds no database). */
  readonly rds?: RdsEndpoint;
  /** How long a request may take and how large it may be: Nginx, Gunicorn and the app's share. */
  readonly limits: RequestLimits;
  /** Gunicorn's workers (gunicornWorkers of the type's vCPUs): the LB's per-server limit follows. */
  readonly workers: number;
  /** PEM of the private CA (public); lands at CA_CERT_PATH. */
  readonly caCertPem: string;
  readonly parameters: AppNodeParameterNames;
  /** The instance's architecture (the agents' packages). */
  readonly architecture: Architecture;
  /** Logs and metrics: merged first, so their commands run before the boot script. */
  readonly monitoring: NodeMonitoring;
  /** The SSM agent's package in the stack's region (`ssmAgentPackageUrl`; `{arch}` in it). */
  readonly ssmAgentUrl: string;
  /** The app release and its settings. */
  readonly release: AppReleaseParams;
}

/** What an app node's bootstrap needs: nothing a bundle changes in place. */
export interface AppNodeBootstrapParams {
  readonly stack: string;
  readonly node: AppNodeSpec;
  readonly engine: DbEngine;
  readonly cluster: DatabaseMode;
  /** The database's own EBS volume, which the node finds at its NVMe device path; none with `rds`. */
  readonly dataVolumeId?: string;
}

/** The database server's own settings on an app node. */
function databaseServer(
  node: AppNodeSpec,
  engine: DbEngine,
  cluster: DatabaseMode,
): DatabaseServer {
  return {
    engine,
    cluster,
    role: node.role,
    node: node.name,
    serverId: node.dbServerId,
    bindAddress: node.privateIp,
  };
}

/** The database renderer's view of an app node. */
export function databaseParams(p: AppNodeParams): DatabaseParams {
  return {
    ...databaseServer(p.node, p.engine, p.cluster),
    ...(p.galera ? { galera: p.galera } : {}),
    ...(p.rds ? { rds: p.rds } : {}),
    primaryIp: p.primaryIp,
    appNodeIps: p.appNodeIps,
  };
}

/** The app's own system user (issue 19): Gunicorn, its preflight, the release command and pip. */
export const APP_USER = "webstack-app";
/** Where the app's secret variables land, one file per name, readable by the app's user only. */
export const APP_SECRETS_DIR = "/etc/webstack/app-secrets";
/** The app's copy of the database password: Gunicorn's config reads it, no environment block holds it. */
const APP_DB_PASSWORD_NAME = "DB_APP_PASSWORD";
export const APP_DB_PASSWORD_PATH = `${APP_SECRETS_DIR}/${APP_DB_PASSWORD_NAME}`;

/**
 * The app's sandbox (issue 19): the app unit's directives, and the properties of the transient
 * units (`systemd-run --property=`) that run the release's code outside that unit — the preflight,
 * the release command, pip — so that code never runs with less. It writes nothing but what each
 * adds (`ReadWritePaths=`: the socket's directory, the logs, the venv pip fills). One list: the
 * node tool's `APP_SANDBOX` (webstack-aws.py, which needs it before any bundle file is written, on
 * a node an older applier upgrades), read from the shipped file.
 */
export const APP_SANDBOX: readonly string[] = toolSandbox(shippedFile("webstack-aws.py"));

/** The tool's `APP_SANDBOX = [...]`: its quoted strings, its comment lines left out. */
export function toolSandbox(tool: string): string[] {
  const block = /^APP_SANDBOX = \[\n([\s\S]*?)^\]$/m.exec(tool)?.[1];
  if (block === undefined) throw new Error("webstack-aws.py has no APP_SANDBOX list");
  const items = block
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  if (!items.every((l) => /^"[^"\\]*",$/.test(l)))
    throw new Error(`webstack-aws.py's APP_SANDBOX holds more than one quoted string a line`);
  return items.map((l) => l.slice(1, -2));
}

/** One of the app's secret variables as a fetch manifest entry: a file its user alone reads. */
function appSecretFile(parameter: string, name: string, version?: number): ManifestEntry {
  return {
    parameter,
    path: `${APP_SECRETS_DIR}/${name}`,
    mode: "0400",
    owner: `${APP_USER}:${APP_USER}`,
    ...(version !== undefined ? { version } : {}),
  };
}

export const NODE_ENV_PATH = "/etc/webstack/node.env";
/** The certificate and key entries alone, re-fetched daily to pick up a renewal. */
export const TLS_MANIFEST_PATH = "/etc/webstack/tls-manifest.json";

/**
 * Where each fetched parameter lands: the web side's copy and the database's own copy. With `rds`
 * the node has no database server: no copy of its own, no replication or monitoring password.
 */
export function secretsManifest(p: AppNodeParams): ManifestEntry[] {
  const names = p.parameters;
  const web = [
    rootFile(names["tls-cert"], NODE_CERT_PATH, "0644"),
    rootFile(names["tls-key"], NODE_KEY_PATH),
  ];
  const app = [
    rootFile(names["db-app-password"], "/etc/webstack/secrets/db-app-password"),
    // The app's own copy, its user's alone: Gunicorn's config reads it (issue 19).
    appSecretFile(names["db-app-password"], APP_DB_PASSWORD_NAME),
  ];
  const migrate = rootFile(
    names["db-migrate-password"],
    "/etc/webstack/secrets/db-migrate-password",
  );
  if (!appNodesHoldData(p.cluster)) return [...web, ...app, migrate];
  return [
    ...web,
    {
      parameter: names["tls-cert"],
      path: DB_CERT_PATH,
      mode: "0644",
      owner: "mysql:mysql",
    },
    {
      parameter: names["tls-key"],
      path: `${DB_TLS_DIR}/node.key`,
      mode: "0600",
      owner: "mysql:mysql",
    },
    ...app,
    rootFile(serverParameter(p, "db-replication-password"), DB_REPLICATION_PASSWORD_PATH),
    rootFile(
      serverParameter(p, "db-monitor-password"),
      "/etc/webstack/secrets/db-monitor-password",
    ),
    migrate,
  ];
}

/**
 * The errors Nginx answers itself on an app node (what each says: jsonErrors.ts). 494 (a header
 * too large) is Nginx's internal code for a 400; 404 is only Nginx's own (an internal location
 * asked from outside).
 */
const NGINX_OWN_ERRORS: readonly number[] = [400, 404, 408, 413, 414, 500, 502, 503, 504];

/** Nginx's error_page lines and the internal locations answering each error in JSON. */
function renderNginxJsonErrors(node: AppNodeSpec, role: string): string {
  const at = (status: number) => `/_webstack/error/${status}`;
  return NGINX_OWN_ERRORS.flatMap((status) => {
    const body = jsonErrorBody(node.name, role, status);
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

/** The header both documents of an app node share in spirit: which node, which role. */
function appNodeHeader(node: AppNodeSpec, cluster: DatabaseMode) {
  return {
    hostname: node.name,
    fqdn: node.internalName,
    description: `webstack ${node.name} (${dbNodeRole({ cluster, role: node.role })}): bootstrap rendered by webstack; its files come from its bundle`,
  };
}

/**
 * The app node's packages: Nginx, Gunicorn and the app's libraries, the agents' installers' tools,
 * patching, the database (with `rds`, its client alone: no server, no backup tools). One list: its
 * bootstrap installs it at creation, its bundles name it, so a package added here reaches a running
 * node too (user-data changes never reach s1 and s2).
 */
export function appNodePackages(engine: DbEngine, cluster: DatabaseMode): readonly string[] {
  const database = appNodesHoldData(cluster)
    ? [
        ...ENGINES[engine].packages,
        ...(cluster === "galera" ? GALERA_PACKAGES : []),
        ...backupPackages(engine),
      ]
    : RDS_CLIENT_PACKAGES;
  return [
    "nginx",
    "gunicorn",
    "python3-pymysql",
    "python3-boto3",
    // ensurepip for each release's venv.
    "python3-venv",
    // The TLS refresh checks a fetched certificate and key with it (ca-certificates needs it too).
    "openssl",
    "ca-certificates",
    // logrotate for Gunicorn's rule and the packages' own (Nginx, the database).
    "logrotate",
    ...INSTALLER_PACKAGES,
    ...PATCHING_PACKAGES,
    ...database,
  ];
}

/**
 * The app node's bootstrap: its packages, its data volume, the database's settings and source. With
 * `rds`, its packages alone: no volume, no server to set up.
 */
export function renderAppNodeBootstrap(p: AppNodeBootstrapParams): string {
  const header = appNodeHeader(p.node, p.cluster);
  const stackNode = { stack: p.stack, node: p.node.name };
  const packages = appNodePackages(p.engine, p.cluster);
  if (!appNodesHoldData(p.cluster)) {
    if (p.dataVolumeId !== undefined)
      throw new Error(`${p.node.name}: database ${p.cluster} holds no data on the node, no volume`);
    return composeBootstrap(header, stackNode, [{ packages }]);
  }
  if (p.dataVolumeId === undefined)
    throw new Error(`${p.node.name}: database ${p.cluster} needs the node's data volume`);
  const own: BootstrapPart = {
    packages,
    bootcmd: [dataVolumeCommand(ebsDevicePath(p.dataVolumeId))],
  };
  return composeBootstrap(header, stackNode, [
    own,
    databaseBootstrapPart(databaseServer(p.node, p.engine, p.cluster)),
  ]);
}

/**
 * What differs in the app node's own files with `rds`: the boot's database TLS step (the RDS CA
 * bundle fetched instead of the server's TLS installed), the CA the app verifies its database with,
 * no server for Gunicorn to start after, none whose TLS a renewed certificate reloads.
 */
function ownDatabaseValues(p: AppNodeParams) {
  const engine = ENGINES[p.engine];
  if (appNodesHoldData(p.cluster)) {
    return {
      boot: {
        DB_TLS_STEP: "database TLS and log files",
        DB_TLS_COMMAND: DB_LATE_CONFIG_PATH,
        DB_CA_FILE: CA_CERT_PATH,
      },
      AFTER_DATABASE: ` ${engine.service}.service`,
      AFTER_NGINX: "",
    };
  }
  return {
    boot: {
      DB_TLS_STEP: "the RDS CA bundle, which the database's certificate is checked against",
      // The bundle must hold the root of the instance's CA for the node's region (not pinned).
      DB_TLS_COMMAND: `${NODE_TOOL_PATH} rds-ca ${RDS_CA_BUNDLE_URL} ${RDS_CA_PATH} ${RDS_CA_IDENTIFIER}`,
      DB_CA_FILE: RDS_CA_PATH,
    },
    AFTER_DATABASE: "",
    AFTER_NGINX:
      '\n# database rds: the node holds no database, whose TLS would need reloading.\nif [ "$DB_CLUSTER" = rds ]; then exit 0; fi',
  };
}

/** A change Gunicorn takes without dropping a request: HUP, new workers, the old ones finish. */
const RELOAD_APP: Argv = ["systemctl", "reload", "webstack-app.service"];
/** Python files are parsed before anything runs them (no byte code written). */
const parsesAsPython = (path: string): Argv => [
  "python3",
  "-c",
  "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])",
  path,
];

/**
 * The app node's own health: its Nginx, with its certificate verified against the CA for its own
 * name, answering /healthz from the app and its read path (what HAProxy checks too).
 */
export function appNodeHealthCheck(node: AppNodeSpec): Argv {
  return httpCheck(
    `https://${node.internalName}/healthz`,
    "--cacert",
    CA_CERT_PATH,
    "--resolve",
    `${node.internalName}:${PORTS.https}:127.0.0.1`,
  );
}

/** Where the app writes and reads: its own server, the peer's, or (with `rds`) the instance for both. */
function appDatabaseTargets(p: AppNodeParams, db: DatabaseParams) {
  if (db.rds) return { APP_DB_PRIMARY: db.rds.address, APP_DB_REPLICA: db.rds.address };
  return {
    // "local" = this node's own server over its socket; a Galera member reads and writes its own
    // server only (one that left the group refuses both, and its /healthz fails).
    APP_DB_PRIMARY: db.role === "primary" || db.cluster === "galera" ? "local" : db.primaryIp,
    APP_DB_REPLICA: db.role === "replica" || db.cluster === "galera" ? "local" : p.replicaIp,
  };
}

export function renderAppNodeBundle(p: AppNodeParams): BundlePayload {
  requireWholeFrom("Gunicorn's workers are", p.workers, 1);
  const db = databaseParams(p);
  const holdsData = appNodesHoldData(db.cluster);
  if (!holdsData) rdsOf(db);
  const ownDatabase = ownDatabaseValues(p);
  const environment = {
    NODE: p.node.name,
    ...databaseEnvironment(db),
    ...appDatabaseTargets(p, db),
  };
  const script = (path: string, name: string): BundleFile => ({
    path,
    content: shippedFile(name),
    mode: "0755",
  });
  const python = (path: string, content: string): BundleFile => ({
    path,
    content,
    mode: "0644",
    validate: parsesAsPython(path),
    onChange: RELOAD_APP,
  });
  const own: BundlePart = {
    // Read at first boot (the boot script, the bootstrap) or by each run of their readers.
    files: [
      { path: NODE_ENV_PATH, content: renderEnvFile(environment), mode: "0644" },
      { path: CA_CERT_PATH, content: p.caCertPem, mode: "0644" },
      {
        path: SECRETS_MANIFEST_PATH,
        content: `${JSON.stringify(secretsManifest(p), null, 2)}\n`,
        mode: "0600",
        // A new entry (the migrate password, issue 18) reaches a running node's files too.
        onChange: [NODE_TOOL_PATH, "fetch", SECRETS_MANIFEST_PATH],
      },
      ...(holdsData ? [script(DB_BOOTSTRAP_PATH, "db-bootstrap.sh")] : []),
      {
        path: "/usr/local/sbin/webstack-boot",
        content: renderShipped("app-node-boot.sh", ownDatabase.boot),
        mode: "0755",
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
        mode: "0600",
      },
      {
        path: "/usr/local/sbin/webstack-refresh-tls",
        content: renderShipped("refresh-tls.sh", { AFTER_NGINX: ownDatabase.AFTER_NGINX }),
        mode: "0755",
      },
      unitFile("webstack-refresh-tls.service", shippedFile("webstack-refresh-tls.service")),
      unitFile(
        "webstack-refresh-tls.timer",
        shippedFile("webstack-refresh-tls.timer"),
        "try-restart",
        "webstack-refresh-tls.timer",
      ),
      // A new unit (a code change, another appModule) restarts Gunicorn; everything else reloads it.
      // The unit comes before Gunicorn's config: a change of user (issue 19) restarts Gunicorn as
      // the new user before any reload, which the old user's Gunicorn could not take.
      unitFile(
        "webstack-app.service",
        renderShipped("webstack-app.service", {
          AFTER_DATABASE: ownDatabase.AFTER_DATABASE,
          APP_MODULE: p.release.module,
          APP_USER,
          SANDBOX: APP_SANDBOX.join("\n"),
        }),
        "try-restart",
        "webstack-app.service",
      ),
      // Read by Gunicorn's config at each load (so a change reloads it) and run by the release command.
      python(
        APP_ENVIRONMENT_PATH,
        renderShipped("app_environment.py", {
          APP_SETTINGS_PATH,
          APP_SECRETS_MANIFEST_PATH,
          APP_DB_PASSWORD_PATH,
        }),
      ),
      python(
        "/etc/webstack/gunicorn.conf.py",
        renderShipped("gunicorn.conf.py", {
          WORKERS: p.workers,
          WORKER_TIMEOUT: p.limits.timeouts.gunicornWorkerSeconds,
          DB_WAIT_SECONDS: p.limits.timeouts.appDatabaseSeconds,
          APP_ENVIRONMENT_PATH,
        }),
      ),
      {
        path: "/etc/logrotate.d/webstack",
        content: renderShipped("logrotate-webstack", { APP_USER }),
        mode: "0644",
        validate: ["logrotate", "--debug", "/etc/logrotate.d/webstack"],
      },
      {
        // Enabled by the boot script once the key exists: Nginx must not start without it.
        path: "/etc/nginx/sites-available/webstack",
        content: renderShipped("nginx-site.conf", {
          NODE: p.node.name,
          NODE_FQDN: p.node.internalName,
          JSON_ERROR_PAGES: renderNginxJsonErrors(p.node, dbNodeRole(db)),
          STATUS_PORT: LOOPBACK_PORTS.nginxStatus,
          MAX_BODY_MIB: p.limits.maxBodyMiB,
          READ_TIMEOUT: p.limits.timeouts.nginxReadSeconds,
        }),
        mode: "0644",
        validate: ["nginx", "-t"],
        onChange: ["systemctl", "reload", "nginx"],
      },
    ],
    firstApply: [["/usr/local/sbin/webstack-boot"]],
  };
  return composeBundle(
    {
      node: p.node.name,
      after: afterOf(p.stack, p.node),
      packages: appNodePackages(p.engine, p.cluster),
      app: bundleApp(p),
      healthCheck: appNodeHealthCheck(p.node),
    },
    [
      appUserPart(),
      signedDebInstallerPart(),
      ...renderNodeMonitoringParts(p.node, p.architecture, p.monitoring),
      renderSsmAgentPart(p.architecture, p.ssmAgentUrl),
      // With rds: no volume to grow, no server to set up or back up (RDS's automated backups).
      ...(holdsData ? [dataVolumeGrowPart()] : []),
      renderPatchingPart(p.node),
      own,
      ...(holdsData
        ? [
            databaseBundlePart(db),
            renderBackupPart({
              node: p.node.name,
              engine: p.engine,
              // The stack's bucket: the releases' and the backups'.
              bucket: p.release.bucket,
              cluster: p.cluster,
              primaryIp: p.primaryIp,
              primaryServerId: p.primaryServerId,
            }),
          ]
        : [rdsBundlePart(db)]),
      appReleasePart(p),
    ],
  );
}

export const SYSUSERS_PATH = "/etc/sysusers.d/webstack.conf";
export const TMPFILES_PATH = "/etc/tmpfiles.d/webstack.conf";

/**
 * The app's own user, its secrets' directory and its socket's (issue 19), first in the bundle. The
 * applier makes the users of a sysusers.d file before anything else (a release's venv is handed to
 * the user while it is prepared, before files are written), and the sysusers file's validate applies
 * it again (idempotent) before any other file is checked (logrotate's `su` names the user). The
 * tmpfiles rule changes owners (on a node booted before the app had its own user, it hands the
 * www-data secret files to the app's user), so it is never a check: its validate is a dry run
 * (systemd 256 and later; the nodes' is 257), and the applier applies it once every file is written
 * and checked, before the preflight and the actions, at first boot too. Its onChange applies it for
 * an older applier (issue 18's), which knows no such step, before the app restarts as its user. At
 * every boot systemd applies both.
 */
function appUserPart(): BundlePart {
  return {
    files: [
      {
        path: SYSUSERS_PATH,
        content: renderShipped("webstack-sysusers.conf", { APP_USER }),
        mode: "0644",
        validate: ["systemd-sysusers", SYSUSERS_PATH],
      },
      {
        path: TMPFILES_PATH,
        content: renderShipped("webstack-tmpfiles.conf", { APP_USER, APP_SECRETS_DIR }),
        mode: "0644",
        validate: ["systemd-tmpfiles", "--dry-run", "--create", TMPFILES_PATH],
        onChange: ["systemd-tmpfiles", "--create", TMPFILES_PATH],
      },
    ],
  };
}

export const APP_SETTINGS_PATH = "/etc/webstack/app-settings.json";
export const APP_SECRETS_MANIFEST_PATH = "/etc/webstack/app-secrets.json";
/** The app's environment from its files: one rule for Gunicorn's config and the release command. */
export const APP_ENVIRONMENT_PATH = "/usr/local/lib/webstack/app_environment.py";
export const RELEASE_COMMAND_PATH = "/usr/local/sbin/webstack-release-command";

/** The app's secret variables as a fetch manifest; a new version rewrites it, so they are fetched. */
export function appSecretsManifest(secrets: readonly AppSecretRef[]): ManifestEntry[] {
  return secrets.map((s) => appSecretFile(s.parameter, s.name, s.version));
}

/**
 * The bundle's `app` key: the release, where it is and its WSGI callable; the primary runs the release command and
 * reports, the replica waits for that report. Without a command, neither.
 */
export function bundleApp(p: AppNodeParams): BundleApp {
  const status = releaseCommandStatusName(p.stack, PRIMARY_NODE);
  const command = p.release.command;
  return {
    release: p.release.id,
    bucket: p.release.bucket,
    key: p.release.key,
    module: p.release.module,
    sandbox: [...APP_SANDBOX],
    ...(command !== undefined && p.node.role === "primary"
      ? { command: { run: command, status } }
      : {}),
    ...(command !== undefined && p.node.role === "replica"
      ? { awaitCommand: { node: PRIMARY_NODE, status } }
      : {}),
  };
}

/**
 * The files a release runs with: the app's variables (read by Gunicorn at each start and reload),
 * its secrets' manifest (fetched, then the app reloaded), and the release command's runner.
 */
function appReleasePart(p: AppNodeParams): BundlePart {
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  return {
    files: [
      {
        path: APP_SETTINGS_PATH,
        content: json({ env: p.release.env }),
        mode: "0644",
        onChange: RELOAD_APP,
      },
      {
        // Names, parameters and versions, no value: Gunicorn (the app's user) reads which
        // variables the app has from it, so a secret taken out leaves the app's environment.
        path: APP_SECRETS_MANIFEST_PATH,
        content: json(appSecretsManifest(p.release.secrets)),
        mode: "0644",
        onChange: [
          NODE_TOOL_PATH,
          "fetch",
          APP_SECRETS_MANIFEST_PATH,
          "--reload",
          "webstack-app.service",
        ],
      },
      {
        path: RELEASE_COMMAND_PATH,
        content: renderShipped("release-command.sh", {
          ...releaseCommandDatabase(databaseParams(p)),
          APP_USER,
          APP_ENVIRONMENT_PATH,
          RELEASE_COMMAND_PATH,
          SANDBOX_PROPERTIES: APP_SANDBOX.map((d) => `--property='${d}'`).join(" "),
        }),
        mode: "0755",
      },
    ],
  };
}
