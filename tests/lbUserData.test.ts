// The LB's bootstrap and bundle per certificate mode: HAProxy checked and reloaded, certificates
// obtained and installed.
import { PATCHING_PACKAGES } from "../cloud-init/patching";
import YAML from "yaml";
import {
  ArbitratorSetup,
  CertificateSetup,
  lbSecretsManifest,
  renderLoadBalancerBootstrap,
  renderLoadBalancerBundle,
} from "../cloud-init/loadBalancer";
import { parameterName } from "../model/naming";
import {
  CloudConfigDocument,
  TEST_SSM_AGENT_URL,
  TOPOLOGY,
  bootSequence,
  testMonitoring,
} from "./harness";
import { BACKENDS, TEST_CA_PEM, bundleEntryOf } from "./rendererFixtures";

const SETUPS: Record<string, CertificateSetup> = {
  "self-signed": {
    mode: "self-signed",
    parameters: {
      cert: parameterName("t", "lb", "site-cert"),
      key: parameterName("t", "lb", "site-key"),
    },
  },
  letsencrypt: {
    mode: "letsencrypt",
    acmeEmail: "ops+acme@example.com",
    acmeDirectory: "https://acme-staging-v02.api.letsencrypt.org/directory",
    parameters: { sitePem: parameterName("t", "lb", "site-pem") },
    parameterKeyId: "1234abcd-12ab-34cd-56ef-1234567890ab",
  },
  acm: {
    mode: "acm",
    certificateArn: "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
    parameters: { passphrase: parameterName("t", "lb", "acm-passphrase") },
  },
};

/** The arbitrator a galera stack's LB runs (stack "t"). */
const ARBITRATOR: ArbitratorSetup = {
  clusterName: "webstack-t",
  memberIps: [TOPOLOGY.nodes.s1.privateIp, TOPOLOGY.nodes.s2.privateIp],
  parameters: {
    cert: parameterName("t", "lb", "galera-tls-cert"),
    key: parameterName("t", "lb", "galera-tls-key"),
  },
};

function lbDocument(mode: string, arbitrator?: ArbitratorSetup) {
  const text = renderLoadBalancerBootstrap({
    stack: "t",
    node: TOPOLOGY.nodes.lb,
    domain: "www.example.com",
    certificateMode: SETUPS[mode].mode,
  });
  const bundle = renderLoadBalancerBundle({
    stack: "t",
    node: TOPOLOGY.nodes.lb,
    domain: "www.example.com",
    backends: BACKENDS,
    caCertPem: TEST_CA_PEM,
    certificate: SETUPS[mode],
    serverTimeoutSeconds: 60,
    database: "replication",
    rateLimitPerClient: 1000,
    memoryMiB: 1024,
    appWorkers: 5,
    architecture: "amd64",
    monitoring: testMonitoring("lb"),
    ssmAgentUrl: TEST_SSM_AGENT_URL,
    ...(arbitrator ? { arbitrator } : {}),
  });
  const doc = YAML.parse(text) as CloudConfigDocument;
  const paths = bundle.files.map((f) => f.path);
  const file = (p: string) => bundleEntryOf(bundle, p).content;
  return { text, doc, bundle, paths, file };
}

describe("the LB's bootstrap and bundle", () => {
  test.each(Object.keys(SETUPS))(
    "%s: HAProxy's config where HAProxy reads it, started by the boot script once a certificate exists",
    (mode) => {
      const { doc, bundle, paths, file } = lbDocument(mode);
      expect(paths.filter((p) => p.startsWith("/etc/haproxy/"))).toEqual([
        "/etc/haproxy/haproxy.cfg",
      ]);
      // The boot script after the boot report's unit (so even a failed boot reports itself); the
      // applier stops at a failed step, which fails the boot.
      const boot = bootSequence(bundle);
      expect(boot.bootScript).toBe("/usr/local/sbin/webstack-lb-boot");
      expect(boot.started.find((s) => s.unit === "webstack-boot-status.service")).toMatchObject({
        beforeBootScript: true,
      });
      expect(boot.last).toBe("systemctl enable --now webstack-apply.timer");
      // No SSH server, only SSM: sshd stopped and masked first thing at every boot.
      expect(doc.bootcmd).toEqual([["systemctl", "mask", "--now", "ssh.service", "ssh.socket"]]);
      expect(doc.packages).toEqual(expect.arrayContaining(["haproxy", "rsyslog", "python3-boto3"]));
      // The bundle names the same packages and those added since (patching's): a running LB
      // installs them, and its user-data, which a change would replace it for, stays as it was.
      expect(bundle.packages).toEqual([...(doc.packages ?? []), ...PATCHING_PACKAGES].sort());
      expect(doc.packages).not.toEqual(expect.arrayContaining([...PATCHING_PACKAGES]));
      expect(doc.runcmd).toEqual([["/usr/local/sbin/webstack-bootstrap"]]);
      expect(bundle.after).toEqual([]);
      expect(file("/etc/webstack/tls/ca.crt")).toBe(TEST_CA_PEM);
      expect(file("/etc/webstack/lb.env")).toContain(`CERT_MODE=${mode}\n`);
      expect(JSON.parse(file("/etc/webstack/secrets.json"))).toEqual(
        lbSecretsManifest(SETUPS[mode]),
      );
    },
  );

  test("HAProxy: checked where it reads its config (once a certificate exists), then reloaded seamlessly", () => {
    const { bundle, file } = lbDocument("letsencrypt");
    for (const path of ["/etc/haproxy/haproxy.cfg", "/etc/webstack/tls/ca.crt"]) {
      const entry = bundleEntryOf(bundle, path);
      expect([path, entry.validate, entry.onChange]).toEqual([
        path,
        ["/usr/local/sbin/webstack-check-haproxy"],
        ["systemctl", "reload", "haproxy"],
      ]);
    }
    const check = file("/usr/local/sbin/webstack-check-haproxy");
    expect(check).toContain("exec haproxy -c -f /etc/haproxy/haproxy.cfg\n");
    expect(check).toContain("if [ ! -e /etc/haproxy/certs/site.pem ]; then");
    const rsyslog = bundleEntryOf(bundle, "/etc/rsyslog.d/48-webstack-haproxy.conf");
    expect([rsyslog.validate, rsyslog.onChange]).toEqual([
      ["rsyslogd", "-N1"],
      ["systemctl", "restart", "rsyslog"],
    ]);
    // A change runs each distinct onChange once, where it first appears: rsyslog (which makes the
    // socket HAProxy logs to) restarts before any change reloads HAProxy.
    const actions = [
      ...new Set(bundle.files.filter((f) => f.onChange).map((f) => JSON.stringify(f.onChange))),
    ];
    expect(actions.indexOf(JSON.stringify(rsyslog.onChange))).toBeGreaterThanOrEqual(0);
    expect(actions.indexOf(JSON.stringify(rsyslog.onChange))).toBeLessThan(
      actions.indexOf(JSON.stringify(["systemctl", "reload", "haproxy"])),
    );
    expect(
      bundleEntryOf(bundle, "/etc/systemd/system/webstack-certificate.timer").onChange,
    ).toEqual([
      "/usr/local/sbin/webstack-unit-changed",
      "try-restart",
      "webstack-certificate.timer",
    ]);
    // HAProxy itself answers on loopback: the process that serves has loaded what it was given.
    expect(bundle.healthCheck).toEqual([
      "curl",
      "-fsS",
      "-o",
      "/dev/null",
      "--max-time",
      "5",
      "http://127.0.0.1:8404/stats",
    ]);
  });

  test("the bootstrap names the domain and the mode: a change to either replaces the LB", () => {
    const [selfSigned, acm] = [lbDocument("self-signed").text, lbDocument("acm").text];
    expect(selfSigned.split("\n")[1]).toBe(
      "# webstack lb (load balancer, self-signed certificate for www.example.com): bootstrap rendered by webstack; its files come from its bundle",
    );
    expect(acm).not.toBe(selfSigned);
  });

  test("self-signed: the pair from SSM, no timer, no certbot", () => {
    const { doc, paths } = lbDocument("self-signed");
    expect(paths).not.toContain("/etc/systemd/system/webstack-certificate.timer");
    expect(doc.packages).not.toContain("certbot");
    expect(lbSecretsManifest(SETUPS["self-signed"]).map((e) => [e.path, e.mode])).toEqual([
      ["/etc/webstack/site/cert.pem", "0644"],
      ["/etc/webstack/site/key.pem", "0600"],
    ]);
  });

  test("letsencrypt: certbot through HAProxy's ACME path, retried by a timer, with a deploy hook", () => {
    const { doc, file } = lbDocument("letsencrypt");
    expect(doc.packages).toContain("certbot");
    const issue = file("/usr/local/sbin/webstack-certificate");
    expect(issue).toContain('--http-01-address 127.0.0.1 --http-01-port "$CERTBOT_PORT"');
    expect(issue).toContain('--server "$ACME_DIRECTORY"');
    expect(issue).toContain("--deploy-hook /usr/local/sbin/webstack-certbot-deploy");
    expect(file("/etc/systemd/system/webstack-certificate.timer")).toContain(
      "OnUnitActiveSec=5min",
    );
    const hook = file("/usr/local/sbin/webstack-certbot-deploy");
    expect(hook).toContain(
      'webstack-install-certificate "$RENEWED_LINEAGE/fullchain.pem" "$RENEWED_LINEAGE/privkey.pem"',
    );
    expect(hook).toContain(
      'webstack-aws put "$SITE_PEM_PARAMETER" /etc/haproxy/certs/site.pem "$PARAMETER_KEY_ID"',
    );
    expect(file("/etc/webstack/lb.env").split("\n")).toEqual(
      expect.arrayContaining([
        "ACME_EMAIL=ops+acme@example.com",
        "ACME_DIRECTORY=https://acme-staging-v02.api.letsencrypt.org/directory",
        "CERTBOT_PORT=8888",
        `SITE_PEM_PARAMETER=${parameterName("t", "lb", "site-pem")}`,
      ]),
    );
  });

  test("acm: exported with the node's role and re-exported twice a day", () => {
    const { file } = lbDocument("acm");
    expect(file("/usr/local/sbin/webstack-certificate")).toContain(
      '/usr/local/sbin/webstack-aws acm-export "$ACM_CERTIFICATE_ARN" "$passphrase" "$work"',
    );
    expect(file("/etc/systemd/system/webstack-certificate.timer")).toContain("OnUnitActiveSec=12h");
    expect(file("/etc/webstack/lb.env")).toContain(
      "ACM_CERTIFICATE_ARN=arn:aws:acm:eu-west-1:123456789012:certificate/abc\n",
    );
  });

  test("installing a certificate: written aside, key checked, haproxy -c, then a reload", () => {
    const script = lbDocument("acm").file("/usr/local/sbin/webstack-install-certificate");
    const order = [
      "umask 077",
      "mktemp /etc/haproxy/certs/.site",
      "openssl pkey -pubout",
      'mv "$next" "$target"',
      "haproxy -c -q",
      "systemctl reload haproxy",
    ];
    const positions = order.map((step) => script.indexOf(step));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });
});

describe("the Galera arbitrator on the LB (database: galera)", () => {
  const DROP_IN = "/etc/systemd/system/garb.service.d/webstack.conf";
  const [S1, S2, LB] = [TOPOLOGY.nodes.s1, TOPOLOGY.nodes.s2, TOPOLOGY.nodes.lb].map(
    (n) => n.privateIp,
  );

  test("garbd: Debian's unit, as a dynamic user reading its key only as a credential, in the group over TLS on the LB's address, always restarted", () => {
    const { bundle, file } = lbDocument("self-signed", ARBITRATOR);
    expect(file(DROP_IN)).toBe(
      [
        "# webstack: the arbitrator of webstack-t (database: galera), rendered by webstack.",
        "[Service]",
        "User=",
        "DynamicUser=yes",
        "LoadCredential=galera.key:/etc/webstack/galera/lb.key",
        "StateDirectory=garbd",
        "ExecStart=",
        `ExecStart=/usr/bin/garbd --address gcomm://${S1}:4567,${S2}:4567 --group webstack-t --workdir %S/garbd --options "socket.ssl=yes;socket.ssl_ca=/etc/webstack/tls/ca.crt;socket.ssl_cert=/etc/webstack/galera/lb.crt;socket.ssl_key=%d/galera.key;gmcast.listen_addr=tcp://${LB}:4567"`,
        "Restart=always",
        "RestartSec=5",
        // Its sandbox: no capability, TCP and its state directory only.
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
        "SystemCallFilter=~@privileged",
        "SystemCallArchitectures=native",
        "UMask=0077",
        "",
      ].join("\n"),
    );
    expect(bundleEntryOf(bundle, DROP_IN)).toMatchObject({
      mode: "0644",
      onChange: ["/usr/local/sbin/webstack-unit-changed", "restart", "garb.service"],
    });
  });

  test("the first boot starts garbd once the boot script has fetched its key and certificate", () => {
    const { bundle } = lbDocument("self-signed", ARBITRATOR);
    const boot = bootSequence(bundle);
    expect(boot.started.filter((s) => s.unit === "garb.service")).toEqual([
      { unit: "garb.service", waits: false, beforeBootScript: false },
    ]);
    expect(boot.last).toBe("systemctl enable --now webstack-apply.timer");
    expect(bootSequence(lbDocument("self-signed").bundle).started.map((s) => s.unit)).not.toContain(
      "garb.service",
    );
  });

  test.each(Object.keys(SETUPS))(
    "%s: the secrets manifest adds the arbitrator's certificate (0644) and key (0600), root's, after the site's",
    (mode) => {
      const { file } = lbDocument(mode, ARBITRATOR);
      const manifest = JSON.parse(file("/etc/webstack/secrets.json")) as unknown[];
      expect(manifest).toEqual(lbSecretsManifest(SETUPS[mode], ARBITRATOR));
      expect(manifest).toEqual([
        ...lbSecretsManifest(SETUPS[mode]),
        {
          parameter: parameterName("t", "lb", "galera-tls-cert"),
          path: "/etc/webstack/galera/lb.crt",
          mode: "0644",
          owner: "root:root",
        },
        {
          parameter: parameterName("t", "lb", "galera-tls-key"),
          path: "/etc/webstack/galera/lb.key",
          mode: "0600",
          owner: "root:root",
        },
      ]);
    },
  );

  test.each(Object.keys(SETUPS))(
    "%s: galera-arbitrator-4 in the bundle's packages only with the arbitrator, never in the bootstrap",
    (mode) => {
      const galera = lbDocument(mode, ARBITRATOR);
      const replication = lbDocument(mode);
      expect(galera.bundle.packages).toEqual(
        [...replication.bundle.packages, "galera-arbitrator-4"].sort(),
      );
      expect(replication.bundle.packages).not.toContain("galera-arbitrator-4");
      // The bootstrap takes no arbitrator: the same text, whatever the database.
      expect(galera.text).toBe(replication.text);
      expect(galera.doc.packages).not.toContain("galera-arbitrator-4");
      expect(replication.paths).not.toContain(DROP_IN);
    },
  );
});
