// The composer of the load balancer's user-data: HAProxy, the public certificate (three modes),
// monitoring, boot.
import { Architecture } from "../model/aws";
import { LOOPBACK_PORTS, NodeSpec } from "../model/topology";
import {
  CA_CERT_PATH,
  ManifestEntry,
  SECRETS_MANIFEST_PATH,
  renderEnvFile,
  rootFile,
} from "./nodeFiles";
import { CloudConfigPart, WriteFile, composeCloudConfig } from "./cloudConfig";
import { HaproxyBackend, renderHaproxyConfig } from "./haproxy";
import { NodeMonitoring, renderNodeMonitoringParts } from "./monitoring";
import { renderShipped, shippedFile } from "./template";

/** Where HAProxy finds the public certificate and its key (one PEM). */
export const SITE_PEM_PATH = "/etc/haproxy/certs/site.pem";
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

export interface LoadBalancerParams {
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
  /** The instance's architecture (the agents' packages). */
  readonly architecture: Architecture;
  /** Logs and metrics: merged first, so their commands run before the boot script. */
  readonly monitoring: NodeMonitoring;
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
export function lbSecretsManifest(c: CertificateSetup): ManifestEntry[] {
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

/** The timer that retries and refreshes the certificate, and the script it runs, per mode. */
function certificatePart(c: CertificateSetup): CloudConfigPart {
  if (c.mode === "self-signed") return {};
  const timer = (name: string, interval: string): WriteFile[] => [
    {
      path: "/etc/systemd/system/webstack-certificate.service",
      content: renderShipped("webstack-certificate.service", { MODE: c.mode }),
      permissions: "0644",
    },
    {
      path: "/etc/systemd/system/webstack-certificate.timer",
      content: renderShipped("webstack-certificate.timer", { MODE: c.mode, INTERVAL: interval }),
      permissions: "0644",
    },
    {
      path: "/usr/local/sbin/webstack-certificate",
      content: shippedFile(name),
      permissions: "0755",
    },
  ];
  if (c.mode === "letsencrypt") {
    return {
      packages: ["certbot"],
      writeFiles: [
        // Until issuance works: every five minutes; then it returns at once (certbot renews).
        ...timer("certificate-letsencrypt.sh", "5min"),
        {
          path: "/usr/local/sbin/webstack-certbot-deploy",
          content: shippedFile("certbot-deploy.sh"),
          permissions: "0755",
        },
      ],
    };
  }
  // ACM renews by itself: exporting twice a day brings a renewal to HAProxy within hours.
  return { writeFiles: timer("certificate-acm.sh", "12h") };
}

export function renderLoadBalancerUserData(p: LoadBalancerParams): string {
  const environment = {
    NODE: p.node.name,
    CERT_MODE: p.certificate.mode,
    DOMAIN: p.domain,
    ...certificateEnvironment(p.certificate),
  };
  const haproxy = renderHaproxyConfig({
    node: p.node.name,
    domain: p.domain,
    backends: p.backends,
    caFile: CA_CERT_PATH,
    certFile: SITE_PEM_PATH,
    certbotPort: LOOPBACK_PORTS.certbot,
    statsPort: LOOPBACK_PORTS.haproxyStats,
    serverTimeoutSeconds: p.serverTimeoutSeconds,
  });
  const own: CloudConfigPart = {
    // rsyslog writes HAProxy's log to /var/log/haproxy.log (group adm) through Debian's own snippet.
    packages: ["haproxy", "rsyslog", "python3-boto3", "openssl", "ca-certificates"],
    writeFiles: [
      { path: "/etc/webstack/lb.env", content: renderEnvFile(environment), permissions: "0644" },
      { path: CA_CERT_PATH, content: p.caCertPem, permissions: "0644" },
      {
        path: SECRETS_MANIFEST_PATH,
        content: `${JSON.stringify(lbSecretsManifest(p.certificate), null, 2)}\n`,
        permissions: "0600",
      },
      {
        path: "/usr/local/sbin/webstack-aws",
        content: shippedFile("webstack-aws.py"),
        permissions: "0755",
      },
      {
        path: "/usr/local/sbin/webstack-install-certificate",
        content: shippedFile("install-certificate.sh"),
        permissions: "0755",
      },
      {
        path: "/usr/local/sbin/webstack-lb-boot",
        content: shippedFile("lb-boot.sh"),
        permissions: "0755",
      },
      {
        path: "/etc/rsyslog.d/48-webstack-haproxy.conf",
        content: shippedFile("rsyslog-haproxy.conf"),
        permissions: "0644",
      },
      // Installed by the boot script once a certificate exists: HAProxy must not start without one.
      { path: "/etc/webstack/haproxy.cfg", content: haproxy, permissions: "0644" },
    ],
    runcmd: [["/usr/local/sbin/webstack-lb-boot"]],
  };
  return composeCloudConfig(
    {
      hostname: p.node.name,
      fqdn: p.node.internalName,
      description: `webstack ${p.node.name} (load balancer, ${p.certificate.mode} certificate): rendered by webstack; do not edit on the node`,
    },
    [
      ...renderNodeMonitoringParts(p.node, p.architecture, p.monitoring),
      own,
      certificatePart(p.certificate),
    ],
  );
}
