// Real values for the offline plan's mocks, so the lab boots what the program renders: keys,
// certificates and passwords computed locally, as @pulumi/tls and @pulumi/random would.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { OutputOverride } from "../plan/mocks";
import { revealSecrets } from "../plan/secrets";

type Inputs = Record<string, unknown>;

const KEY_USAGE: Record<string, string> = {
  digital_signature: "digitalSignature",
  key_encipherment: "keyEncipherment",
  cert_signing: "keyCertSign",
  crl_signing: "cRLSign",
};
const EXTENDED_KEY_USAGE: Record<string, string> = {
  server_auth: "serverAuth",
  client_auth: "clientAuth",
};

function openssl(args: string[], files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-tls-"));
  try {
    for (const [name, content] of Object.entries(files))
      fs.writeFileSync(path.join(dir, name), content, { mode: 0o600 });
    const result = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr}`);
    return result.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function subject(inputs: Inputs): string {
  const s = (inputs.subject ?? {}) as Record<string, string>;
  const parts = [
    s.organization && `/O=${s.organization}`,
    s.commonName && `/CN=${s.commonName}`,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join("") : "/";
}

function subjectAltName(inputs: Inputs): string | undefined {
  const names = [
    ...((inputs.dnsNames as string[] | undefined) ?? []).map((n) => `DNS:${n}`),
    ...((inputs.ipAddresses as string[] | undefined) ?? []).map((ip) => `IP:${ip}`),
  ];
  return names.length > 0 ? `subjectAltName=${names.join(",")}` : undefined;
}

/** The X.509 extensions a tls certificate resource asks for, as openssl config lines. */
function extensions(inputs: Inputs): string[] {
  const uses = (inputs.allowedUses as string[] | undefined) ?? [];
  const usage = uses.filter((u) => KEY_USAGE[u]).map((u) => KEY_USAGE[u]);
  const extended = uses.filter((u) => EXTENDED_KEY_USAGE[u]).map((u) => EXTENDED_KEY_USAGE[u]);
  const pathLength =
    inputs.maxPathLength === undefined ? "" : `,pathlen:${String(inputs.maxPathLength)}`;
  return [
    inputs.isCaCertificate
      ? `basicConstraints=critical,CA:TRUE${pathLength}`
      : "basicConstraints=critical,CA:FALSE",
    ...(usage.length > 0 ? [`keyUsage=critical,${usage.join(",")}`] : []),
    ...(extended.length > 0 ? [`extendedKeyUsage=${extended.join(",")}`] : []),
    "subjectKeyIdentifier=hash",
  ];
}

const days = (inputs: Inputs) =>
  String(Math.max(1, Math.ceil(Number(inputs.validityPeriodHours ?? 24) / 24)));

function privateKey(inputs: Inputs): Inputs {
  const { privateKey: key, publicKey } =
    inputs.algorithm === "RSA"
      ? crypto.generateKeyPairSync("rsa", { modulusLength: Number(inputs.rsaBits ?? 2048) })
      : crypto.generateKeyPairSync("ec", {
          namedCurve: inputs.ecdsaCurve === "P384" ? "secp384r1" : "prime256v1",
        });
  return {
    privateKeyPem: key.export({
      type: inputs.algorithm === "RSA" ? "pkcs1" : "sec1",
      format: "pem",
    }),
    privateKeyPemPkcs8: key.export({ type: "pkcs8", format: "pem" }),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }),
  };
}

function selfSignedCert(inputs: Inputs): Inputs {
  const san = subjectAltName(inputs);
  const args = [
    "req",
    "-x509",
    "-new",
    "-key",
    "key.pem",
    "-subj",
    subject(inputs),
    "-days",
    days(inputs),
    "-sha256",
  ];
  for (const ext of [...extensions(inputs), ...(san ? [san] : [])]) args.push("-addext", ext);
  return { certPem: openssl(args, { "key.pem": String(inputs.privateKeyPem) }) };
}

function certRequest(inputs: Inputs): Inputs {
  const san = subjectAltName(inputs);
  const args = [
    "req",
    "-new",
    "-key",
    "key.pem",
    "-subj",
    subject(inputs),
    "-sha256",
    ...(san ? ["-addext", san] : []),
  ];
  return { certRequestPem: openssl(args, { "key.pem": String(inputs.privateKeyPem) }) };
}

function locallySignedCert(inputs: Inputs): Inputs {
  const serial = `0x${crypto.randomBytes(16).toString("hex")}`;
  const certPem = openssl(
    [
      "x509",
      "-req",
      "-in",
      "req.pem",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
      "-set_serial",
      serial,
      "-days",
      days(inputs),
      "-sha256",
      "-copy_extensions",
      "copy",
      "-extfile",
      "ext.cnf",
    ],
    {
      "req.pem": String(inputs.certRequestPem),
      "ca.pem": String(inputs.caCertPem),
      "ca-key.pem": String(inputs.caPrivateKeyPem),
      "ext.cnf": `${extensions(inputs).join("\n")}\nauthorityKeyIdentifier=keyid\n`,
    },
  );
  return { certPem };
}

/** A password from crypto randomness with the resource's character classes and minimum counts. */
export function randomPassword(inputs: Inputs): string {
  const classes = {
    lower: {
      chars: "abcdefghijklmnopqrstuvwxyz",
      on: inputs.lower !== false,
      min: Number(inputs.minLower ?? 0),
    },
    upper: {
      chars: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
      on: inputs.upper !== false,
      min: Number(inputs.minUpper ?? 0),
    },
    numeric: {
      chars: "0123456789",
      on: inputs.numeric !== false,
      min: Number(inputs.minNumeric ?? 0),
    },
    special: {
      chars: String(inputs.overrideSpecial ?? "!@#$%&*()-_=+[]{}<>:?"),
      on: inputs.special !== false,
      min: Number(inputs.minSpecial ?? 0),
    },
  };
  const enabled = Object.values(classes).filter((c) => c.on);
  const pick = (chars: string) => chars[crypto.randomInt(chars.length)];
  const chars = [...enabled.flatMap((c) => Array.from({ length: c.min }, () => pick(c.chars)))];
  const all = enabled.map((c) => c.chars).join("");
  while (chars.length < Number(inputs.length)) chars.push(pick(all));
  for (let i = chars.length - 1; i > 0; i--) {
    const j = crypto.randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j], chars[i]];
  }
  return chars.join("");
}

const COMPUTE: Record<string, (inputs: Inputs) => Inputs> = {
  "tls:index/privateKey:PrivateKey": privateKey,
  "tls:index/selfSignedCert:SelfSignedCert": selfSignedCert,
  "tls:index/certRequest:CertRequest": certRequest,
  "tls:index/locallySignedCert:LocallySignedCert": locallySignedCert,
  "random:index/randomPassword:RandomPassword": (inputs) => ({ result: randomPassword(inputs) }),
};

/** The plan's override for the lab: real outputs for tls and random resources, fakes for the rest. */
export const realOutputs: OutputOverride = (args: pulumi.runtime.MockResourceArgs) => {
  const compute = COMPUTE[args.type];
  return compute ? compute(revealSecrets(args.inputs as Inputs)) : undefined;
};

export interface LabTlsPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * The lab's own CA and server certificates for its stand-ins (SSM, Pebble), computed like the
 * plan's: the nodes trust this CA as EC2 nodes trust the public CAs.
 */
export function labCertificates(names: Record<string, string[]>): {
  ca: LabTlsPair;
  servers: Record<string, LabTlsPair>;
} {
  const ecdsa = { algorithm: "ECDSA", ecdsaCurve: "P256" };
  const caKey = String(privateKey(ecdsa).privateKeyPem);
  const caCert = String(
    selfSignedCert({
      privateKeyPem: caKey,
      subject: { organization: "webstack lab", commonName: "webstack lab stand-ins CA" },
      isCaCertificate: true,
      maxPathLength: 0,
      allowedUses: ["cert_signing", "crl_signing"],
      validityPeriodHours: 24 * 30,
    }).certPem,
  );
  const servers = Object.fromEntries(
    Object.entries(names).map(([server, dnsNames]) => {
      const key = String(privateKey(ecdsa).privateKeyPem);
      const request = certRequest({
        privateKeyPem: key,
        subject: { commonName: dnsNames[0] },
        dnsNames,
      });
      const cert = locallySignedCert({
        certRequestPem: request.certRequestPem,
        caCertPem: caCert,
        caPrivateKeyPem: caKey,
        allowedUses: ["digital_signature", "server_auth"],
        validityPeriodHours: 24 * 30,
      });
      return [server, { certPem: String(cert.certPem), keyPem: key }];
    }),
  );
  return { ca: { certPem: caCert, keyPem: caKey }, servers };
}

/**
 * The lab's override with a memory, as a stack's state is: the first plan's real outputs are kept
 * in `file` (0600: keys and passwords, like the stand-ins' own state) and a later plan (`lab apply`)
 * gets the same keys, certificates and passwords for the same resources, as `pulumi up` would.
 */
export function rememberedOutputs(file: string): OutputOverride {
  const remembered: Record<string, Inputs> = fs.existsSync(file)
    ? (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, Inputs>)
    : {};
  return (args: pulumi.runtime.MockResourceArgs) => {
    if (!COMPUTE[args.type]) return undefined;
    const id = `${args.type}::${args.name}`;
    if (!remembered[id]) {
      remembered[id] = realOutputs(args) as Inputs;
      fs.writeFileSync(file, JSON.stringify(remembered), { mode: 0o600 });
    }
    return remembered[id];
  };
}
