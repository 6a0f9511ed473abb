// A galera stack under mocks (database: galera): its firewall rules, the arbitrator's certificate
// and parameters, what the LB's role reads, and what each node's bootstrap and bundle carry.
import { Plan } from "../plan/plan";
import { redactSecrets } from "../plan/secrets";
import { SG_DESCRIPTION, DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import { parameterName } from "../model/naming";
import {
  T,
  TOPOLOGY,
  bundleEntry,
  bundleFile,
  bundleObject,
  bundleOf,
  byId,
  generatedSecrets,
  grantsOf,
  ofType,
  one,
  planConfig,
  ruleRow,
  userDataDocument,
  userDataText,
} from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

const CONFIG = { domain: "www.example.com" };
const [LB, S1, S2] = [TOPOLOGY.nodes.lb, TOPOLOGY.nodes.s1, TOPOLOGY.nodes.s2];
const ARBITRATOR_TLS = "webstack:secrets:ArbitratorTls";
const DROP_IN = "/etc/systemd/system/garb.service.d/webstack.conf";

let galera: Plan;
let replication: Plan;

beforeAll(async () => {
  galera = await planConfig({ ...CONFIG, database: "galera" });
  replication = await planConfig(CONFIG);
}, 120_000);

describe("firewalls", () => {
  test("ingress: the LB's public ports as ever; 443 and 4567 from the LB's group; 4567, 4568 and 4444 between s1's and s2's; 4567 into the LB from s1's and s2's; nothing on 3306", () => {
    expect(
      ofType(galera, T.ingressRule)
        .map((r) => ruleRow(galera, r))
        .sort(),
    ).toEqual([
      "lb tcp 443-443 0.0.0.0/0",
      "lb tcp 4567-4567 sg:s1",
      "lb tcp 4567-4567 sg:s2",
      "lb tcp 80-80 0.0.0.0/0",
      "s1 tcp 443-443 sg:lb",
      "s1 tcp 4444-4444 sg:s2",
      "s1 tcp 4567-4567 sg:lb",
      "s1 tcp 4567-4567 sg:s2",
      "s1 tcp 4568-4568 sg:s2",
      "s2 tcp 443-443 sg:lb",
      "s2 tcp 4444-4444 sg:s1",
      "s2 tcp 4567-4567 sg:lb",
      "s2 tcp 4567-4567 sg:s1",
      "s2 tcp 4568-4568 sg:s1",
    ]);
  });

  test("egress: HTTPS out as ever, the LB to the app groups on 443 and 4567, the members to each other and to the LB", () => {
    expect(
      ofType(galera, T.egressRule)
        .map((r) => ruleRow(galera, r))
        .sort(),
    ).toEqual([
      "lb tcp 443-443 0.0.0.0/0",
      "lb tcp 443-443 sg:s1",
      "lb tcp 443-443 sg:s2",
      "lb tcp 4567-4567 sg:s1",
      "lb tcp 4567-4567 sg:s2",
      "s1 tcp 443-443 0.0.0.0/0",
      "s1 tcp 4444-4444 sg:s2",
      "s1 tcp 4567-4567 sg:lb",
      "s1 tcp 4567-4567 sg:s2",
      "s1 tcp 4568-4568 sg:s2",
      "s2 tcp 443-443 0.0.0.0/0",
      "s2 tcp 4444-4444 sg:s1",
      "s2 tcp 4567-4567 sg:lb",
      "s2 tcp 4567-4567 sg:s1",
      "s2 tcp 4568-4568 sg:s1",
    ]);
  });

  test("the Galera ports only between the stack's groups, each rule described, single-port TCP", () => {
    const rules = [...ofType(galera, T.ingressRule), ...ofType(galera, T.egressRule)];
    expect(rules).toHaveLength(29);
    for (const r of rules) {
      expect(r.inputs.ipProtocol).toBe("tcp");
      expect(r.inputs.fromPort).toBe(r.inputs.toPort);
      expect(r.inputs.cidrIpv6).toBeUndefined();
      expect(r.inputs.description).toMatch(SG_DESCRIPTION);
      if ([4567, 4568, 4444].includes(Number(r.inputs.fromPort))) {
        expect(r.inputs.cidrIpv4).toBeUndefined();
        expect(byId(galera, r.inputs.referencedSecurityGroupId).type).toBe(T.securityGroup);
      }
    }
    expect(
      ofType(galera, T.securityGroup)
        .map((g) => g.name)
        .sort(),
    ).toEqual(["firewalls-lb", "firewalls-s1", "firewalls-s2"]);
  });

  test("a replication stack has none of them", () => {
    const rules = [...ofType(replication, T.ingressRule), ...ofType(replication, T.egressRule)];
    expect(rules.filter((r) => [4567, 4568, 4444].includes(Number(r.inputs.fromPort)))).toEqual([]);
    expect(rules.filter((r) => r.inputs.fromPort === 3306)).toHaveLength(4);
  });
});

describe("the arbitrator's identity", () => {
  test("the private CA issues the LB a certificate for its internal name and address, in galera only", () => {
    expect(one(galera, T.privateKey, "pki-lb-key").inputs).toEqual({
      algorithm: "ECDSA",
      ecdsaCurve: "P256",
    });
    expect(one(galera, T.certRequest, "pki-lb-csr").inputs).toMatchObject({
      privateKeyPem: one(galera, T.privateKey, "pki-lb-key").outputs.privateKeyPem,
      subject: { commonName: LB.internalName },
      dnsNames: [LB.internalName],
      ipAddresses: [LB.privateIp],
    });
    expect(one(galera, T.locallySignedCert, "pki-lb-cert").inputs).toMatchObject({
      certRequestPem: one(galera, T.certRequest, "pki-lb-csr").outputs.certRequestPem,
      caCertPem: one(galera, T.selfSignedCert, "pki-ca").outputs.certPem,
      allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
    });
    const pkiNames = (p: Plan) =>
      [T.privateKey, T.certRequest, T.locallySignedCert]
        .flatMap((type) => ofType(p, type).map((r) => r.name))
        .sort();
    expect(pkiNames(galera)).toEqual(
      [...pkiNames(replication), "pki-lb-key", "pki-lb-csr", "pki-lb-cert"].sort(),
    );
    expect(pkiNames(replication).filter((n) => n.startsWith("pki-lb-"))).toEqual([]);
  });

  test("its certificate is a String and its key a SecureString with the stack's key, both under the LB's path, children of ArbitratorTls", () => {
    const keyId = one(galera, T.kmsKey, "parameters-key").outputs.keyId;
    const [component] = ofType(galera, ARBITRATOR_TLS);
    expect(component.name).toBe("arbitrator-tls");
    const cert = one(galera, T.ssmParameter, "arbitrator-tls-cert");
    const key = one(galera, T.ssmParameter, "arbitrator-tls-key");
    expect([cert, key].map((p) => p.parent)).toEqual([component.urn, component.urn]);
    expect(cert.inputs).toMatchObject({
      name: parameterName("test", "lb", "galera-tls-cert"),
      type: "String",
      value: one(galera, T.locallySignedCert, "pki-lb-cert").outputs.certPem,
      tier: "Standard",
    });
    expect(cert.inputs.keyId).toBeUndefined();
    expect(key.inputs).toMatchObject({
      name: parameterName("test", "lb", "galera-tls-key"),
      type: "SecureString",
      keyId,
      value: one(galera, T.privateKey, "pki-lb-key").outputs.privateKeyPem,
      tier: "Standard",
    });
    // The key is a Pulumi secret: shown redacted, kept encrypted in the state.
    const raw = galera.resources.find((r) => r.name === "arbitrator-tls-key")!;
    expect(redactSecrets(raw).inputs.value).toBe("[secret]");
    expect(ofType(replication, ARBITRATOR_TLS)).toEqual([]);
    expect(
      ofType(replication, T.ssmParameter).filter((p) => p.name.startsWith("arbitrator-tls")),
    ).toEqual([]);
  });

  test("the LB's role reads and decrypts its own parameters only: the arbitrator's among them; s1's and s2's roles cannot reach them", () => {
    const parameters = ofType(galera, T.ssmParameter);
    const covers = (pattern: string, arn: string) =>
      new RegExp(
        `^${pattern
          .split("*")
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join(".*")}$`,
      ).test(arn);
    const reachedBy = (node: string) => {
      const grants = grantsOf(
        one(galera, T.rolePolicy, `${node}-identity-parameters`).inputs.policy,
      );
      const read = grants.find((g) => g.actions.includes("ssm:GetParameter"))!;
      const decrypt = grants.find((g) => g.actions.includes("kms:Decrypt"))!;
      const decryptable = (decrypt.condition as Record<string, Record<string, string[]>>)
        .StringLike["kms:EncryptionContext:PARAMETER_ARN"];
      const reached = (patterns: readonly string[]) =>
        parameters
          .filter((p) => patterns.some((pattern) => covers(pattern, String(p.outputs.arn))))
          .map((p) => p.name)
          .sort();
      return { read: reached(read.resources!), decrypt: reached(decryptable) };
    };
    const lbOwn = [
      "arbitrator-tls-cert",
      "arbitrator-tls-key",
      "bundles-lb-pointer",
      "certificate-site-cert",
      "certificate-site-key",
    ];
    expect(lbOwn.every((name) => parameters.some((p) => p.name === name))).toBe(true);
    expect(reachedBy("lb")).toEqual({ read: lbOwn, decrypt: lbOwn });
    for (const node of ["s1", "s2"]) {
      const { read, decrypt } = reachedBy(node);
      expect([...read, ...decrypt].filter((n) => n.startsWith("arbitrator-tls"))).toEqual([]);
    }
  });
});

describe("what the nodes carry", () => {
  test("the LB: the same bootstrap as a replication stack's, without garbd's package; its bundle installs it and runs garbd towards s1 and s2", () => {
    expect(userDataText(galera, "lb")).toBe(userDataText(replication, "lb"));
    expect(userDataDocument(galera, "lb").packages).not.toContain("galera-arbitrator-4");
    expect(bundleOf(galera, "lb").packages).toEqual(
      [...bundleOf(replication, "lb").packages, "galera-arbitrator-4"].sort(),
    );
    // The founder first, then s1 (the program's order of the app nodes).
    expect(bundleFile(galera, "lb", DROP_IN)).toContain(
      `ExecStart=/usr/bin/garbd --address gcomm://${S2.privateIp}:4567,${S1.privateIp}:4567 --group webstack-test `,
    );
    expect(bundleFile(galera, "lb", DROP_IN)).toContain(
      `gmcast.listen_addr=tcp://${LB.privateIp}:4567"\n`,
    );
    const manifest = JSON.parse(bundleFile(galera, "lb", "/etc/webstack/secrets.json")) as {
      parameter: string;
      path: string;
      mode: string;
    }[];
    expect(manifest.filter((e) => e.path.startsWith("/etc/webstack/galera/"))).toEqual([
      {
        parameter: parameterName("test", "lb", "galera-tls-cert"),
        path: "/etc/webstack/galera/lb.crt",
        mode: "0644",
        owner: "root:root",
      },
      {
        parameter: parameterName("test", "lb", "galera-tls-key"),
        path: "/etc/webstack/galera/lb.key",
        mode: "0600",
        owner: "root:root",
      },
    ]);
    expect(bundleOf(replication, "lb").files.map((f) => f.path)).not.toContain(DROP_IN);
  });

  test.each(["s1", "s2"] as const)(
    "%s: its bootstrap and bundle install galera-4 and socat; its cluster name is the stack's, its node name its certificate's",
    (node) => {
      for (const packages of [
        userDataDocument(galera, node).packages,
        bundleOf(galera, node).packages,
      ])
        expect(packages).toEqual(expect.arrayContaining(["galera-4", "socat"]));
      for (const packages of [
        userDataDocument(replication, node).packages,
        bundleOf(replication, node).packages,
      ])
        expect(packages!.filter((p) => ["galera-4", "socat"].includes(p))).toEqual([]);
      const late = bundleFile(galera, node, "/etc/webstack/db/61-webstack-late.cnf").split("\n");
      const csr = one(galera, T.certRequest, `pki-${node}-csr`).inputs as {
        subject: { commonName: string };
      };
      expect(late).toContain(`wsrep_node_name = ${csr.subject.commonName}`);
      expect(late).toContain("wsrep_cluster_name = webstack-test");
    },
  );

  test("the founder's SQL on s2, none on s1; both read and write their own server", () => {
    expect(bundleEntry(galera, "s2", "/etc/webstack/db/primary.sql").mode).toBe("0600");
    expect(bundleOf(galera, "s1").files.filter((f) => f.path.endsWith(".sql"))).toEqual([]);
    for (const node of ["s1", "s2"]) {
      const env = bundleFile(galera, node, "/etc/webstack/node.env").split("\n");
      expect(env).toEqual(
        expect.arrayContaining(["DB_ROLE=member", "APP_DB_PRIMARY=local", "APP_DB_REPLICA=local"]),
      );
    }
  });

  test("outputs: the database's mode is galera, and each app node's role is member", () => {
    expect(galera.outputs.database).toEqual({ mode: "galera" });
    const appNodes = galera.outputs.appNodes as Record<string, { role: string }>;
    expect([appNodes.s1?.role, appNodes.s2?.role]).toEqual(["member", "member"]);
  });

  test("no generated secret, the arbitrator's key included, in any user-data, bundle, pointer or output", () => {
    const secrets = generatedSecrets(galera);
    const lbKey = String(one(galera, T.privateKey, "pki-lb-key").outputs.privateKeyPem);
    expect(secrets).toContain(lbKey.split("\n").find((l) => l.startsWith("mock-secret")) ?? lbKey);
    const documents = [
      ...NODES.flatMap((node) => [
        userDataText(galera, node),
        String(bundleObject(galera, node).inputs.content),
      ]),
      ...ofType(galera, T.ssmParameter)
        .filter((r) => r.name.endsWith("-pointer"))
        .map((r) => String(r.inputs.value)),
      JSON.stringify(galera.outputs),
    ];
    for (const secret of secrets) for (const doc of documents) expect(doc).not.toContain(secret);
  });
});
