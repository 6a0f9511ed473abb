// Real values for the lab: the plan's tls and random resources computed locally, as the providers would.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { randomPassword, realOutputs } from "../lab/realOutputs";
import { DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import { Plan, runPlan } from "../plan/plan";
import { T, TOPOLOGY, bundleFile, bundleObject, ofType, one, userDataText } from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

let plan: Plan;
const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-real-"));
afterAll(() => fs.rmSync(SCRATCH, { recursive: true, force: true }));

beforeAll(async () => {
  plan = await runPlan({
    stack: "lab",
    config: {
      "aws:region": "eu-west-1",
      "webstack:domain": "www.example.com",
      "webstack:protectData": "false",
    },
    override: realOutputs,
  });
});

const pemFile = (name: string, pem: unknown) => {
  const file = path.join(SCRATCH, name);
  fs.writeFileSync(file, String(pem));
  return file;
};
const x509 = (file: string, ...args: string[]) =>
  spawnSync("openssl", ["x509", "-in", file, "-noout", ...args], { encoding: "utf8" }).stdout;

test("every private key is a real, distinct key", () => {
  const keys = ofType(plan, T.privateKey).map((k) => String(k.outputs.privateKeyPem));
  expect(keys.length).toBe(4); // CA, s1, s2, the LB's self-signed certificate
  for (const pem of keys)
    expect(crypto.createPrivateKey(pem).asymmetricKeyDetails).toEqual({ namedCurve: "prime256v1" });
  expect(new Set(keys).size).toBe(keys.length);
});

test.each([
  ["s1", TOPOLOGY.nodes.s1.privateIp],
  ["s2", TOPOLOGY.nodes.s2.privateIp],
])(
  "%s's certificate chains to the private CA, for its name and address, with its own key",
  (node, ip) => {
    const ca = pemFile("ca.pem", one(plan, T.selfSignedCert, "pki-ca").outputs.certPem);
    const leaf = pemFile(
      `${node}.pem`,
      one(plan, T.locallySignedCert, `pki-${node}-cert`).outputs.certPem,
    );
    const verify = spawnSync("openssl", ["verify", "-CAfile", ca, leaf], { encoding: "utf8" });
    expect(verify.stdout.trim()).toBe(`${leaf}: OK`);
    expect(x509(leaf, "-ext", "subjectAltName")).toContain(
      `DNS:${node}.webstack.internal, IP Address:${ip}`,
    );
    expect(x509(leaf, "-ext", "extendedKeyUsage")).toContain(
      "TLS Web Server Authentication, TLS Web Client Authentication",
    );
    const key = crypto.createPrivateKey(
      String(one(plan, T.privateKey, `pki-${node}-key`).outputs.privateKeyPem),
    );
    const certKey = new crypto.X509Certificate(fs.readFileSync(leaf)).publicKey;
    expect(certKey.export({ type: "spki", format: "pem" })).toBe(
      crypto.createPublicKey(key).export({ type: "spki", format: "pem" }),
    );
  },
);

test("the CA may sign leaves only", () => {
  const ca = pemFile("ca2.pem", one(plan, T.selfSignedCert, "pki-ca").outputs.certPem);
  expect(x509(ca, "-ext", "basicConstraints")).toContain("CA:TRUE, pathlen:0");
  expect(x509(ca, "-ext", "keyUsage")).toContain("Certificate Sign, CRL Sign");
});

test("the LB's self-signed certificate names the domain", () => {
  const cert = pemFile(
    "site.pem",
    one(plan, T.selfSignedCert, "certificate-self-signed").outputs.certPem,
  );
  expect(x509(cert, "-ext", "subjectAltName")).toContain("DNS:www.example.com");
  expect(x509(cert, "-subject")).toContain("CN = www.example.com");
});

test("passwords: 32 letters and digits, distinct, each class present", () => {
  const passwords = ofType(plan, T.randomPassword).map((p) => String(p.outputs.result));
  expect(passwords).toHaveLength(4);
  for (const p of passwords) {
    expect(p).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(p).toMatch(/[a-z]/);
    expect(p).toMatch(/[A-Z]/);
    expect(p).toMatch(/[0-9]/);
  }
  expect(new Set(passwords).size).toBe(4);
});

test("randomPassword honours lengths, classes and minimums", () => {
  const p = randomPassword({
    length: 40,
    special: true,
    minSpecial: 5,
    overrideSpecial: "#%",
    minUpper: 3,
  });
  expect(p).toHaveLength(40);
  expect((p.match(/[#%]/g) ?? []).length).toBeGreaterThanOrEqual(5);
  expect((p.match(/[A-Z]/g) ?? []).length).toBeGreaterThanOrEqual(3);
  expect(randomPassword({ length: 12, special: false, upper: false, numeric: false })).toMatch(
    /^[a-z]{12}$/,
  );
});

test("the real CA travels in every bundle; no real secret in any bundle or user-data", () => {
  const caPem = String(one(plan, T.selfSignedCert, "pki-ca").outputs.certPem);
  const secrets = [
    ...ofType(plan, T.randomPassword).map((p) => String(p.outputs.result)),
    ...ofType(plan, T.privateKey).map((k) => String(k.outputs.privateKeyPem).split("\n")[1]),
  ];
  for (const node of NODES) {
    expect(bundleFile(plan, node, "/etc/webstack/tls/ca.crt")).toBe(caPem);
    const texts = [userDataText(plan, node), String(bundleObject(plan, node).inputs.content)];
    for (const text of texts) for (const secret of secrets) expect(text).not.toContain(secret);
  }
});
