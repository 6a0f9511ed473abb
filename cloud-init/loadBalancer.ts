// The composers of the load balancer's two documents: its bootstrap (user-data: packages) and its
// bundle (HAProxy, the public certificate in one of three modes, monitoring, boot).
import { Architecture } from "../model/aws";
import { healthCheckTimeoutMs, lbConnectionLimits, lbServerMaxconn } from "../model/limits";
import { DatabaseMode, LOOPBACK_PORTS, NodeSpec, PORTS } from "../model/topology";
import {
  CA_CERT_PATH,
  ManifestEntry,
  SECRETS_MANIFEST_PATH,
  SITE_PEM_PATH,
  renderEnvFile,
  rootFile,
} from "./nodeFiles";
import {
  Argv,
  BundleFile,
  BundlePart,
  BundlePayload,
  afterOf,
  composeBundle,
  httpCheck,
  unitFile,
} from "./bundle";
import { composeBootstrap } from "./cloudConfig";
import { HaproxyBackend, renderHaproxyConfig } from "./haproxy";
import { NodeMonitoring, renderNodeMonitoringParts } from "./monitoring";
import { INSTALLER_PACKAGES, signedDebInstallerPart } from "./agentInstaller";
import { PATCHING_PACKAGES, renderPatchingPart } from "./patching";
import { renderSsmAgentPart } from "./ssmAgent";
import { renderShipped, shippedFile } from "./template";
import { galeraSocketTls } from "./database";

/** Where HAProxy reads its config: the bundle writes it there, checked before any reload. */
export const HAPROXY_CONFIG_PATH = "/etc/haproxy/haproxy.cfg";
const SITE_DIR = "/etc/webstack/site";

/** How the public certificate arrives, with the parameters each mode reads. */
export type CertificateSetup =
  | {
      readonly mode: "self-signed";
      /** The certificate (String) and its key (SecureString), made with @pulumi/tls. */
      readonly parameters: { readonly cert: string; readonly key: string };
    }
  | {
      readonly mode: "letsencrypt";
      readonly acmeEmail: string;
      readonly acmeDirectory: string;
      /** Where the LB keeps what it obtained (SecureString, written by its role). */
      readonly parameters: { readonly sitePem: string };
      /** KMS key the LB encrypts that parameter with. */
      readonly parameterKeyId: string;
    }
  | {
      readonly mode: "acm";
      /** The exportable ACM certificate (issued once DNS validation passed). */
      readonly certificateArn: string;
      /** The export passphrase (SecureString). */
      readonly parameters: { readonly passphrase: string };
    };

/**
 * The Galera arbitrator the LB runs with `database: galera` and an even number of app nodes
 * (`hasArbitrator`): its group, and its TLS identity.
 */
export interface ArbitratorSetup {
  readonly clusterName: string;
  /** The data members' addresses (every app node's). */
  readonly memberIps: readonly string[];
  /** The arbitrator's certificate (String) and key (SecureString) from the private CA. */
  readonly parameters: { readonly cert: string; readonly key: string };
}

/** What the LB runs: everything its bundle is made of. */
export interface LoadBalancerParams {
  readonly stack: string;
  /** The lb node: its name, address and internal name. */
  readonly node: NodeSpec;
  /** The FQDN served. */
  readonly domain: string;
  readonly backends: readonly HaproxyBackend[];
  /** PEM of the private CA (public): HAProxy verifies the backends with it. */
  readonly caCertPem: string;
  readonly certificate: CertificateSetup;
  /** How long HAProxy waits for a backend's answer, in seconds (RequestTimeouts.lbServerSeconds). */
  readonly serverTimeoutSeconds: number;
  /** Requests one client address may send per RATE_LIMIT_WINDOW_SECONDS (`rateLimitPerClient`); 0: none. */
  readonly rateLimitPerClient: number;
  /** The instance's memory in MiB, as EC2 reports its type: HAProxy's connection limits follow it. */
  readonly memoryMiB: number;
  /** Each app node's Gunicorn workers: HAProxy sends a node at most lbServerMaxconn of them. */
  readonly appWorkers: number;
  /** The instance's architecture (the agents' packages). */
  readonly architecture: Architecture;
  /** Logs and metrics: merged first, so their commands run before the boot script. */
  readonly monitoring: NodeMonitoring;
  /** The SSM agent's package in the stack's region (`ssmAgentPackageUrl`; `{arch}` in it). */
  readonly ssmAgentUrl: string;
  /** How the app nodes' databases hold the data (config `database`): the health checks' patience. */
  readonly database: DatabaseMode;
  /**
   * With `database: galera` and an even number of app nodes: the arbitrator (garbd), whose vote
   * makes the cluster's count odd.
   */
  readonly arbitrator?: ArbitratorSetup;
}

/**
 * What the LB's bootstrap names: besides the node, the domain and the certificate mode. A change to
 * either needs a new certificate from a fresh boot, so it changes the bootstrap and replaces the LB.
 */
export interface LoadBalancerBootstrapParams {
  readonly stack: string;
  readonly node: NodeSpec;
  readonly domain: string;
  readonly certificateMode: CertificateSetup["mode"];
}

function certificateEnvironment(c: CertificateSetup): Record<string, string> {
  switch (c.mode) {
    case "self-signed":
      return {};
    case "letsencrypt":
      return {
        ACME_EMAIL: c.acmeEmail,
        ACME_DIRECTORY: c.acmeDirectory,
        CERTBOT_PORT: String(LOOPBACK_PORTS.certbot),
        SITE_PEM_PARAMETER: c.parameters.sitePem,
        PARAMETER_KEY_ID: c.parameterKeyId,
      };
    case "acm":
      return { ACM_CERTIFICATE_ARN: c.certificateArn };
  }
}

/** What the boot fetches: the self-signed pair, the persisted Let's Encrypt PEM, or ACM's passphrase. */
export function lbSecretsManifest(c: CertificateSetup, a?: ArbitratorSetup): ManifestEntry[] {
  return [
    ...certificateManifest(c),
    ...(a
      ? [
          rootFile(a.parameters.cert, ARBITRATOR_CERT_PATH, "0644"),
          rootFile(a.parameters.key, ARBITRATOR_KEY_PATH, "0600"),
        ]
      : []),
  ];
}

function certificateManifest(c: CertificateSetup): ManifestEntry[] {
  switch (c.mode) {
    case "self-signed":
      return [
        rootFile(c.parameters.cert, `${SITE_DIR}/cert.pem`, "0644"),
        rootFile(c.parameters.key, `${SITE_DIR}/key.pem`, "0600"),
      ];
    case "letsencrypt":
      return [rootFile(c.parameters.sitePem, `${SITE_DIR}/persisted.pem`, "0600")];
    case "acm":
      return [rootFile(c.parameters.passphrase, "/etc/webstack/secrets/acm-passphrase", "0600")];
  }
}

/** A change HAProxy takes without dropping a connection (master-worker: the old process drains). */
const RELOAD_HAPROXY: Argv = ["systemctl", "reload", "haproxy"];
/** HAProxy's config check where HAProxy reads it (a no-op before the first certificate exists). */
const CHECK_HAPROXY_PATH = "/usr/local/sbin/webstack-check-haproxy";

/** The timer that retries and refreshes the certificate, and the script it runs, per mode. */
function certificatePart(c: CertificateSetup): BundlePart {
  if (c.mode === "self-signed") return {};
  const timer = (name: string, interval: string): BundleFile[] => [
    unitFile(
      "webstack-certificate.service",
      renderShipped("webstack-certificate.service", { MODE: c.mode }),
    ),
    unitFile(
      "webstack-certificate.timer",
      renderShipped("webstack-certificate.timer", { MODE: c.mode, INTERVAL: interval }),
      "try-restart",
      "webstack-certificate.timer",
    ),
    { path: "/usr/local/sbin/webstack-certificate", content: shippedFile(name), mode: "0755" },
  ];
  if (c.mode === "letsencrypt") {
    return {
      files: [
        // Until issuance works: every five minutes; then it returns at once (certbot renews).
        ...timer("certificate-letsencrypt.sh", "5min"),
        {
          path: "/usr/local/sbin/webstack-certbot-deploy",
          content: shippedFile("certbot-deploy.sh"),
          mode: "0755",
        },
      ],
    };
  }
  // ACM renews by itself: exporting twice a day brings a renewal to HAProxy within hours.
  return { files: timer("certificate-acm.sh", "12h") };
}

/**
 * The LB's packages: HAProxy, its log's rsyslog, the tools of its boot, patching, certbot for Let's
 * Encrypt. One list: its bootstrap installs it, its bundles name it (a running LB gets a package
 * added here).
 */
export function loadBalancerPackages(certificateMode: CertificateSetup["mode"]): readonly string[] {
  return [
    "haproxy",
    // rsyslog writes HAProxy's log to /var/log/haproxy.log (group adm): our input and rule.
    "rsyslog",
    "python3-boto3",
    "openssl",
    "ca-certificates",
    ...INSTALLER_PACKAGES,
    ...(certificateMode === "letsencrypt" ? ["certbot"] : []),
  ];
}

/**
 * What the LB's bundle installs: its bootstrap's packages and those added since. A package is
 * added here, never to the bootstrap's list: the LB's user-data is replaced with the LB (a change
 * to it is a new instance, an outage of the single LB), while a bundle installs it in place.
 */
export function loadBalancerBundlePackages(
  certificateMode: CertificateSetup["mode"],
  arbitrator = false,
): readonly string[] {
  return [
    ...loadBalancerPackages(certificateMode),
    ...PATCHING_PACKAGES,
    ...(arbitrator ? [GARBD_PACKAGE] : []),
  ];
}

/** Debian's Galera arbitrator, and the unit it ships (enabled by its package). */
export const GARBD_PACKAGE = "galera-arbitrator-4";
export const GARBD_UNIT = "garb.service";
/** The arbitrator's certificate and key on the LB (the key root's; garbd gets it as a credential). */
const GALERA_DIR = "/etc/webstack/galera";
export const ARBITRATOR_CERT_PATH = `${GALERA_DIR}/lb.crt`;
export const ARBITRATOR_KEY_PATH = `${GALERA_DIR}/lb.key`;

/**
 * garbd in the cluster's group over TLS, on the LB's address: a member with no data whose vote
 * gives an even number of data members an odd count (two: a quorum of three). The package's unit, run as a dynamic user that reads the key
 * only as a systemd credential, and restarted whenever it exits (a member unreachable at its start,
 * the key not fetched yet at first boot).
 */
export function renderArbitratorDropIn(node: NodeSpec, a: ArbitratorSetup): string {
  const options = [
    ...galeraSocketTls(CA_CERT_PATH, ARBITRATOR_CERT_PATH, "%d/galera.key"),
    `gmcast.listen_addr=tcp://${node.privateIp}:${PORTS.galera}`,
  ];
  const members = a.memberIps.map((ip) => `${ip}:${PORTS.galera}`).join(",");
  return [
    `# webstack: the arbitrator of ${a.clusterName} (database: galera), rendered by webstack.`,
    "[Service]",
    "User=",
    "DynamicUser=yes",
    `LoadCredential=galera.key:${ARBITRATOR_KEY_PATH}`,
    "StateDirectory=garbd",
    "ExecStart=",
    `ExecStart=/usr/bin/garbd --address gcomm://${members} --group ${a.clusterName} --workdir %S/garbd --options "${options.join(";")}"`,
    "Restart=always",
    "RestartSec=5",
    ...GARBD_SANDBOX,
    "",
  ].join("\n");
}

/**
 * garbd's sandbox, as webstack's own units have theirs: it talks TCP to the group and writes only
 * its state directory, with no capability (the package's unit has none of this; `PrivateTmp=false`
 * there is overridden). `systemd-analyze security` scores it 1.4 (OK) in the lab.
 */
export const GARBD_SANDBOX: readonly string[] = [
  "CapabilityBoundingSet=",
  "PrivateTmp=yes",
  "PrivateDevices=yes",
  "ProtectHome=yes",
  "ProtectKernelTunables=yes",
  "ProtectKernelModules=yes",
  "ProtectKernelLogs=yes",
  "ProtectControlGroups=yes",
  "ProtectClock=yes",
  "ProtectHostname=yes",
  "ProtectProc=invisible",
  "ProcSubset=pid",
  "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
  "RestrictNamespaces=yes",
  "RestrictRealtime=yes",
  "LockPersonality=yes",
  "MemoryDenyWriteExecute=yes",
  "SystemCallFilter=@system-service",
  // Not ~@resources, as webstack's own units: garbd calls one of them (SIGSYS in the lab).
  "SystemCallFilter=~@privileged",
  "SystemCallArchitectures=native",
  "UMask=0077",
];

function arbitratorPart(node: NodeSpec, a: ArbitratorSetup): BundlePart {
  return {
    files: [
      unitFile(
        `${GARBD_UNIT}.d/webstack.conf`,
        renderArbitratorDropIn(node, a),
        "restart",
        GARBD_UNIT,
      ),
    ],
    // A drop-in's onChange never runs on a first apply, and the package (installed before the
    // files are written) leaves garbd unconfigured: started here, after the boot script (the own
    // part's step) has fetched its key; `enable` reads the units again first.
    firstApply: [["systemctl", "enable", "--now", "--no-block", GARBD_UNIT]],
  };
}

export function renderLoadBalancerBootstrap(p: LoadBalancerBootstrapParams): string {
  return composeBootstrap(
    {
      hostname: p.node.name,
      fqdn: p.node.internalName,
      description: `webstack ${p.node.name} (load balancer, ${p.certificateMode} certificate for ${p.domain}): bootstrap rendered by webstack; its files come from its bundle`,
    },
    { stack: p.stack, node: p.node.name },
    [{ packages: loadBalancerPackages(p.certificateMode) }],
  );
}

/** The LB's own health: HAProxy answering its stats page on loopback (the process that serves). */
export function loadBalancerHealthCheck(): Argv {
  return httpCheck(`http://127.0.0.1:${LOOPBACK_PORTS.haproxyStats}/stats`);
}

export function renderLoadBalancerBundle(p: LoadBalancerParams): BundlePayload {
  const environment = {
    NODE: p.node.name,
    CERT_MODE: p.certificate.mode,
    DOMAIN: p.domain,
    ...certificateEnvironment(p.certificate),
  };
  const haproxy = renderHaproxyConfig({
    node: p.node.name,
    role: p.node.role,
    domain: p.domain,
    backends: p.backends,
    caFile: CA_CERT_PATH,
    certFile: SITE_PEM_PATH,
    certbotPort: LOOPBACK_PORTS.certbot,
    statsPort: LOOPBACK_PORTS.haproxyStats,
    serverTimeoutSeconds: p.serverTimeoutSeconds,
    checkTimeoutMs: healthCheckTimeoutMs(p.database),
    rateLimitPerClient: p.rateLimitPerClient,
    connections: lbConnectionLimits(p.memoryMiB),
    serverMaxconn: lbServerMaxconn(p.appWorkers),
  });
  const script = (path: string, name: string): BundleFile => ({
    path,
    content: shippedFile(name),
    mode: "0755",
  });
  const own: BundlePart = {
    files: [
      // Read by the boot and by each certificate run; mode and domain live in the bootstrap too.
      { path: "/etc/webstack/lb.env", content: renderEnvFile(environment), mode: "0644" },
      // First: a change to HAProxy's log target (haproxy.cfg) reloads HAProxy, and the CA's change
      // too (each action runs once, where it first appears): rsyslog's socket must exist by then.
      {
        path: "/etc/rsyslog.d/48-webstack-haproxy.conf",
        content: shippedFile("rsyslog-haproxy.conf"),
        mode: "0644",
        validate: ["rsyslogd", "-N1"],
        onChange: ["systemctl", "restart", "rsyslog"],
      },
      {
        path: CA_CERT_PATH,
        content: p.caCertPem,
        mode: "0644",
        validate: [CHECK_HAPROXY_PATH],
        onChange: RELOAD_HAPROXY,
      },
      {
        path: SECRETS_MANIFEST_PATH,
        content: `${JSON.stringify(lbSecretsManifest(p.certificate, p.arbitrator), null, 2)}\n`,
        mode: "0600",
      },
      script("/usr/local/sbin/webstack-install-certificate", "install-certificate.sh"),
      script("/usr/local/sbin/webstack-lb-boot", "lb-boot.sh"),
      script(CHECK_HAPROXY_PATH, "check-haproxy.sh"),
      // HAProxy started from it only once a certificate exists (the boot script); later changes
      // are checked, then reloaded.
      {
        path: HAPROXY_CONFIG_PATH,
        content: haproxy,
        mode: "0644",
        validate: [CHECK_HAPROXY_PATH],
        onChange: RELOAD_HAPROXY,
      },
    ],
    firstApply: [["/usr/local/sbin/webstack-lb-boot"]],
  };
  return composeBundle(
    {
      node: p.node.name,
      after: afterOf(p.stack, p.node),
      packages: loadBalancerBundlePackages(p.certificate.mode, p.arbitrator !== undefined),
      healthCheck: loadBalancerHealthCheck(),
    },
    [
      signedDebInstallerPart(),
      ...renderNodeMonitoringParts(
        p.node,
        p.architecture,
        p.monitoring,
        p.arbitrator !== undefined,
      ),
      renderSsmAgentPart(p.architecture, p.ssmAgentUrl),
      renderPatchingPart(p.node),
      own,
      certificatePart(p.certificate),
      ...(p.arbitrator ? [arbitratorPart(p.node, p.arbitrator)] : []),
    ],
  );
}
