// The edge: HAProxy's config line by line, the LB's user-data per certificate mode, and the program's
// LB resources, IAM scope and DNS for each mode.
import YAML from "yaml";
import { renderHaproxyConfig, renderServerLine } from "../cloud-init/haproxy";
import {
  CertificateSetup,
  lbSecretsManifest,
  renderLoadBalancerUserData,
} from "../cloud-init/loadBalancer";
import { decodeUserData } from "../cloud-init/userDataEncoding";
import { Plan } from "../plan/plan";
import { revealSecrets } from "../plan/secrets";
import { buildTopology } from "../model/topology";
import { T, ofType, one, planConfig, testMonitoring } from "./harness";

const TOPOLOGY = buildTopology("10.40.0.0/16");
const BACKENDS = [TOPOLOGY.nodes.s1, TOPOLOGY.nodes.s2].map((n) => ({
  name: n.name,
  address: n.privateIp,
  fqdn: n.internalName,
}));
const CONFIG_LINES = renderHaproxyConfig({
  domain: "www.example.com",
  backends: BACKENDS,
  caFile: "/etc/webstack/tls/ca.crt",
  certFile: "/etc/haproxy/certs/site.pem",
  certbotPort: 8888,
  statsPort: 8404,
})
  .split("\n")
  .map((l) => l.trim());

/** The lines of one section (`frontend http`, `backend app` …), up to the next section. */
function section(header: string): string[] {
  const start = CONFIG_LINES.indexOf(header);
  expect(start).toBeGreaterThanOrEqual(0);
  const rest = CONFIG_LINES.slice(start + 1);
  const end = rest.findIndex((l) => /^(global|defaults|frontend|backend|listen)\b/.test(l));
  return rest.slice(0, end < 0 ? undefined : end).filter((l) => l && !l.startsWith("#"));
}

describe("HAProxy config", () => {
  test("port 80: the ACME path to certbot on loopback, everything else 301 to HTTPS", () => {
    expect(section("frontend http")).toEqual([
      "bind :80",
      "acl acme path_beg /.well-known/acme-challenge/",
      "http-request redirect scheme https code 301 unless acme",
      "use_backend acme if acme",
    ]);
    expect(section("backend acme")).toEqual(["server certbot 127.0.0.1:8888"]);
  });

  test("port 443: the public certificate, TLS 1.2+, ALPN h2 and http/1.1, HSTS", () => {
    expect(section("frontend https")).toEqual([
      "bind :443 ssl crt /etc/haproxy/certs/site.pem alpn h2,http/1.1",
      "http-request set-header X-Forwarded-Proto https",
      'http-response set-header Strict-Transport-Security "max-age=63072000"',
      "default_backend app",
    ]);
    const global = section("global");
    expect(global).toContain("ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets");
    expect(global).toContain("ssl-default-server-options ssl-min-ver TLSv1.2");
    // Forward secrecy and AEAD only.
    const ciphers = global
      .find((l) => l.startsWith("ssl-default-bind-ciphers "))!
      .split(" ")[1]
      .split(":");
    expect(ciphers.every((c) => c.startsWith("ECDHE-") && /GCM|CHACHA20/.test(c))).toBe(true);
  });

  test("backends: round-robin, health checks on /healthz with fast detection", () => {
    const app = section("backend app");
    expect(app).toEqual(
      expect.arrayContaining([
        "balance roundrobin",
        "option httpchk",
        "http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com",
        "http-check expect status 200",
        "http-reuse safe",
      ]),
    );
    const defaults = app.find((l) => l.startsWith("default-server "))!.split(" ");
    expect(defaults).toEqual(
      expect.arrayContaining(["check", "inter", "1s", "fall", "2", "rise", "2"]),
    );
  });

  test("re-encrypted to each backend, verified against the private CA and the backend's own name", () => {
    const app = section("backend app");
    expect(app.find((l) => l.startsWith("default-server "))).toContain(
      "ssl verify required ca-file /etc/webstack/tls/ca.crt",
    );
    expect(app.filter((l) => l.startsWith("server "))).toEqual([
      "server s1 10.40.192.10:443 sni str(s1.webstack.internal) check-sni s1.webstack.internal",
      "server s2 10.40.128.10:443 sni str(s2.webstack.internal) check-sni s2.webstack.internal",
    ]);
    // Both active: no backup server.
    expect(CONFIG_LINES.join("\n")).not.toMatch(/\bbackup\b/);
    expect(renderServerLine(BACKENDS[0])).toBe(
      "    server s1 10.40.192.10:443 sni str(s1.webstack.internal) check-sni s1.webstack.internal",
    );
  });

  test("safe retries: redispatch, retry-on, and no layer-7 retry of a non-idempotent request", () => {
    const defaults = section("defaults");
    expect(defaults).toEqual(
      expect.arrayContaining([
        "retries 2",
        "option redispatch 1",
        "retry-on conn-failure empty-response response-timeout",
      ]),
    );
    expect(section("backend app")).toContain(
      "http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS",
    );
  });

  test("a dead backend holds a client for one short timeout, then the other server answers", () => {
    const defaults = section("defaults");
    const timeout = (name: string) =>
      defaults.find((l) => l.startsWith(`timeout ${name} `))!.split(" ")[2];
    // The lab's fault tests hold a cut link under 3 s: one of these timeouts, then a retry; the
    // app's slowest path (a write waiting out a primary restart, 1 s) fits in the server timeout.
    expect([timeout("connect"), timeout("server"), timeout("check")]).toEqual([
      "500ms",
      "1500ms",
      "500ms",
    ]);
    expect(defaults).toEqual(
      expect.arrayContaining([
        "retries 2",
        "option redispatch 1",
        "retry-on conn-failure empty-response response-timeout",
        "option idle-close-on-response",
      ]),
    );
    const server = section("backend app").find((l) => l.startsWith("default-server "))!;
    expect(server).toContain("check inter 1s fastinter 250ms fall 2 rise 2");
    // In-flight requests on a server marked down are retried, not cut.
    expect(server).not.toContain("shutdown-sessions");
  });

  test("stats and the Prometheus endpoint on loopback only; logs through syslog to a file", () => {
    expect(section("frontend stats")).toEqual([
      "bind 127.0.0.1:8404",
      "http-request set-log-level silent",
      "http-request use-service prometheus-exporter if { path /metrics }",
      "stats enable",
      "stats uri /stats",
      "stats refresh 10s",
    ]);
    expect(CONFIG_LINES.filter((l) => l.startsWith("bind "))).toEqual([
      "bind :80",
      "bind :443 ssl crt /etc/haproxy/certs/site.pem alpn h2,http/1.1",
      "bind 127.0.0.1:8404",
    ]);
    expect(section("global")).toContain("log /dev/log local0");
  });
});

const CA = "-----BEGIN CERTIFICATE-----\nTEST-CA\n-----END CERTIFICATE-----\n";
const SETUPS: Record<string, CertificateSetup> = {
  "self-signed": {
    mode: "self-signed",
    parameters: { cert: "/webstack/t/lb/site-cert", key: "/webstack/t/lb/site-key" },
  },
  letsencrypt: {
    mode: "letsencrypt",
    acmeEmail: "ops+acme@example.com",
    acmeDirectory: "https://acme-staging-v02.api.letsencrypt.org/directory",
    parameters: { sitePem: "/webstack/t/lb/site-pem" },
    parameterKeyId: "1234abcd-12ab-34cd-56ef-1234567890ab",
  },
  acm: {
    mode: "acm",
    certificateArn: "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
    parameters: { passphrase: "/webstack/t/lb/acm-passphrase" },
  },
};

function lbDocument(mode: string) {
  const text = renderLoadBalancerUserData({
    node: TOPOLOGY.nodes.lb,
    domain: "www.example.com",
    backends: BACKENDS,
    caCertPem: CA,
    certificate: SETUPS[mode],
    architecture: "amd64",
    monitoring: testMonitoring("lb"),
  });
  const doc = YAML.parse(text);
  const paths = doc.write_files.map((f: { path: string }) => f.path) as string[];
  const file = (p: string) =>
    doc.write_files.find((f: { path: string }) => f.path === p)?.content as string;
  return { text, doc, paths, file };
}

describe("the LB's user-data", () => {
  test.each(Object.keys(SETUPS))(
    "%s: HAProxy staged, started by the boot script once a certificate exists",
    (mode) => {
      const { doc, paths, file } = lbDocument(mode);
      expect(paths).toContain("/etc/webstack/haproxy.cfg");
      expect(paths.filter((p) => p.startsWith("/etc/haproxy/"))).toEqual([]);
      // The boot script last, after the monitoring units (so even a failed boot reports itself);
      // `set -eu`: a failed step fails the boot.
      expect(doc.runcmd[0]).toBe("set -eu");
      expect(doc.runcmd.at(-1)).toEqual(["/usr/local/sbin/webstack-lb-boot"]);
      expect(doc.runcmd.slice(1, -1).flat()).toContain("webstack-boot-status.service");
      // No SSH server, only SSM: sshd stopped and masked first thing at every boot.
      expect(doc.bootcmd).toEqual([["systemctl", "mask", "--now", "ssh.service", "ssh.socket"]]);
      expect(doc.packages).toEqual(expect.arrayContaining(["haproxy", "rsyslog", "python3-boto3"]));
      expect(file("/etc/webstack/tls/ca.crt")).toBe(CA);
      expect(file("/etc/webstack/lb.env")).toContain(`CERT_MODE=${mode}\n`);
      expect(JSON.parse(file("/etc/webstack/secrets.json"))).toEqual(
        lbSecretsManifest(SETUPS[mode]),
      );
    },
  );

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
        "SITE_PEM_PARAMETER=/webstack/t/lb/site-pem",
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

describe("the program, per certificate mode", () => {
  const plans: Record<string, Plan> = {};
  beforeAll(async () => {
    plans["self-signed"] = await planConfig({ domain: "www.example.com" });
    plans.letsencrypt = await planConfig({
      domain: "www.example.com",
      hostedZone: "example.com",
      certificate: "letsencrypt",
      acmeEmail: "ops@example.com",
    });
    plans.acm = await planConfig({
      domain: "www.example.com",
      hostedZone: "example.com",
      certificate: "acm",
    });
  });

  test.each(["self-signed", "letsencrypt", "acm"])(
    "%s: an Elastic IP on the LB's interface before it boots",
    (mode) => {
      const plan = plans[mode];
      const eni = one(plan, T.networkInterface, "lb-eni");
      expect(eni.inputs).toMatchObject({
        subnetId: one(plan, T.subnet, "network-public").id,
        privateIps: ["10.40.0.10"],
        securityGroups: [one(plan, T.securityGroup, "firewalls-lb").id],
      });
      const eip = one(plan, T.eip, "lb-eip");
      expect(eip.inputs.domain).toBe("vpc");
      const association = one(plan, T.eipAssociation, "lb-eip-association");
      expect(association.inputs).toEqual({
        allocationId: eip.outputs.allocationId,
        networkInterfaceId: eni.id,
      });
      const instance = one(plan, T.instance, "lb-instance");
      expect(instance.options).toEqual({ dependsOn: [association.urn], deleteBeforeReplace: true });
      expect(instance.inputs).toMatchObject({
        primaryNetworkInterface: { networkInterfaceId: eni.id },
        iamInstanceProfile: one(plan, T.instanceProfile, "lb-identity-profile").outputs.name,
        userDataReplaceOnChange: true,
        monitoring: true,
        metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 1 },
        rootBlockDevice: { encrypted: true, volumeType: "gp3" },
      });
      expect(plan.outputs.loadBalancer).toEqual({
        instanceId: instance.id,
        publicIp: eip.outputs.publicIp,
        privateIp: "10.40.0.10",
        internalName: "lb.webstack.internal",
      });
      expect(plan.outputs.url).toBe("https://www.example.com/");
      expect(plan.outputs.certificateMode).toBe(mode);
    },
  );

  test("the A record exists only with a hosted zone, pointing at the Elastic IP", () => {
    expect(ofType(plans["self-signed"], T.route53Record)).toEqual([]);
    expect(plans["self-signed"].outputs.dnsRecordManaged).toBe(false);
    const plan = plans.letsencrypt;
    expect(one(plan, T.route53Record, "lb-dns").inputs).toMatchObject({
      name: "www.example.com",
      type: "A",
      ttl: 60,
      records: [one(plan, T.eip, "lb-eip").outputs.publicIp],
    });
    expect(plan.outputs.dnsRecordManaged).toBe(true);
  });

  test("self-signed: a certificate for the domain via SSM; the LB's role gets nothing more", () => {
    const plan = plans["self-signed"];
    expect(one(plan, T.selfSignedCert, "certificate-self-signed").inputs).toMatchObject({
      dnsNames: ["www.example.com"],
      subject: { commonName: "www.example.com" },
      allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
    });
    expect(one(plan, T.ssmParameter, "certificate-site-key").inputs).toMatchObject({
      name: "/webstack/test/lb/site-key",
      type: "SecureString",
    });
    expect(one(plan, T.ssmParameter, "certificate-site-cert").inputs).toMatchObject({
      type: "String",
    });
    expect(ofType(plan, T.rolePolicy).filter((p) => p.name === "lb-certificate-access")).toEqual(
      [],
    );
    expect(ofType(plan, T.acmCertificate)).toEqual([]);
  });

  test("letsencrypt: the LB may write exactly its own site-pem parameter, encrypted with the stack's key", () => {
    const plan = plans.letsencrypt;
    const parameter = one(plan, T.ssmParameter, "certificate-site-pem");
    expect(parameter.inputs).toMatchObject({
      name: "/webstack/test/lb/site-pem",
      type: "SecureString",
      value: "none",
    });
    expect(parameter.options).toEqual({ ignoreChanges: ["value"] });
    const arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/webstack/test/lb/site-pem";
    const policy = JSON.parse(
      one(plan, T.rolePolicy, "lb-certificate-access").inputs.policy as string,
    );
    expect(policy.Statement).toEqual([
      { Sid: "PersistSiteCertificate", Effect: "Allow", Action: "ssm:PutParameter", Resource: arn },
      {
        Sid: "EncryptSiteCertificate",
        Effect: "Allow",
        Action: ["kms:Encrypt", "kms:GenerateDataKey"],
        Resource: ofType(plan, T.kmsKey)[0].outputs.arn,
        Condition: {
          StringEquals: {
            "kms:ViaService": "ssm.eu-west-1.amazonaws.com",
            "kms:EncryptionContext:PARAMETER_ARN": arn,
          },
        },
      },
    ]);
    expect(one(plan, T.rolePolicy, "lb-certificate-access").inputs.role).toBe(
      one(plan, T.role, "lb-identity-role").outputs.name,
    );
  });

  test("acm: an exportable certificate validated by DNS in the zone; export scoped to its ARN", () => {
    const plan = plans.acm;
    const cert = one(plan, T.acmCertificate, "certificate-acm");
    expect(cert.inputs).toMatchObject({
      domainName: "www.example.com",
      validationMethod: "DNS",
      options: { export: "ENABLED" },
    });
    const validation = (cert.outputs.domainValidationOptions as Record<string, string>[])[0];
    expect(one(plan, T.route53Record, "certificate-acm-validation").inputs).toMatchObject({
      name: validation.resourceRecordName,
      type: "CNAME",
      records: [validation.resourceRecordValue],
    });
    expect(one(plan, T.acmValidation, "certificate-acm-validated").inputs.certificateArn).toBe(
      cert.outputs.arn,
    );
    const policy = JSON.parse(
      one(plan, T.rolePolicy, "lb-certificate-access").inputs.policy as string,
    );
    expect(policy.Statement).toEqual([
      {
        Sid: "ExportSiteCertificate",
        Effect: "Allow",
        Action: "acm:ExportCertificate",
        Resource: cert.outputs.arn,
      },
    ]);
    expect(one(plan, T.ssmParameter, "certificate-acm-passphrase").inputs).toMatchObject({
      type: "SecureString",
    });
  });

  test.each(["self-signed", "letsencrypt", "acm"])(
    "%s: nothing secret in the LB's user-data",
    (mode) => {
      const plan = plans[mode];
      const text = decodeUserData(one(plan, T.instance, "lb-instance").inputs);
      const secrets = [
        ...ofType(plan, T.randomPassword).map((r) => String(r.outputs.result)),
        ...ofType(plan, T.privateKey).map((r) => String(r.outputs.privateKeyPem).split("\n")[1]),
      ];
      expect(secrets.length).toBeGreaterThan(0);
      for (const secret of secrets) expect(text).not.toContain(secret);
      expect(text).not.toMatch(/PRIVATE KEY/);
      // The backends' CA travels; the LB's parameters are named, never valued.
      expect(text).toContain(
        String(one(plan, T.selfSignedCert, "pki-ca").outputs.certPem).split("\n")[1],
      );
      expect(JSON.stringify(revealSecrets(plan.outputs))).not.toMatch(/mock-secret/);
    },
  );
});
