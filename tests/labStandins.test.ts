// The lab's AWS stand-ins, with the real node tool as the client: region and role credentials from
// IMDSv2, SSM over TLS at its real hostname, and IAM-like scoping to the node's own paths.
import * as crypto from "crypto";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { IS_ROOT, PROJECT_DIR, commandWorks, testNeeding } from "./harness";

const runTest = testNeeding(
  "root and python3-boto3",
  IS_ROOT &&
    commandWorks("/usr/bin/python3", ["-c", "import boto3"]) &&
    commandWorks("openssl", ["version"]),
);

function openssl(dir: string, ...args: string[]) {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
}

runTest(
  "the node tool fetches and stores its own parameters through the stand-ins, and nothing else",
  () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-standins-"));
    try {
      const ecdsa = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
      openssl(
        dir,
        "req",
        "-x509",
        ...ecdsa,
        "-days",
        "1",
        "-subj",
        "/CN=lab CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
      );
      openssl(
        dir,
        "req",
        ...ecdsa,
        "-subj",
        "/CN=ssm.eu-west-1.amazonaws.com",
        "-keyout",
        "ssm.key",
        "-out",
        "ssm.csr",
      );
      // One certificate for the endpoints: SSM's name, S3's and its virtual-hosted buckets', CloudWatch's.
      fs.writeFileSync(
        path.join(dir, "ext.cnf"),
        "subjectAltName=DNS:ssm.eu-west-1.amazonaws.com,DNS:s3.eu-west-1.amazonaws.com,DNS:*.s3.eu-west-1.amazonaws.com," +
          "DNS:monitoring.eu-west-1.amazonaws.com\nextendedKeyUsage=serverAuth\n",
      );
      openssl(
        dir,
        "x509",
        "-req",
        "-in",
        "ssm.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "ssm.pem",
        "-extfile",
        "ext.cnf",
      );
      fs.writeFileSync(
        path.join(dir, "state.json"),
        JSON.stringify({
          region: "eu-west-1",
          // The client reaches the stand-in on the namespace's loopback, from the metadata address.
          instances: {
            "169.254.169.254": {
              instanceId: "i-lab0s1",
              role: "s1-identity-role",
              accessKeyId: "ASIALABS1",
            },
          },
          principals: {
            ASIALABS1: ["/webstack/lab/s1/", "/webstack/lab/shared/"],
            ASIALABS2: ["/webstack/lab/s2/", "/webstack/lab/shared/"],
          },
          listen: "203.0.113.5", // TEST-NET-3, on the namespace's loopback only
          cert: path.join(dir, "ssm.pem"),
          key: path.join(dir, "ssm.key"),
          parameters: {
            "/webstack/lab/s1/db-app-password": { Type: "SecureString", Value: "lab-password-1" },
            "/webstack/lab/s2/db-app-password": { Type: "SecureString", Value: "not-for-s1" },
          },
        }),
      );
      fs.writeFileSync(
        path.join(dir, "s3.json"),
        JSON.stringify({
          listen: "203.0.113.6",
          cert: path.join(dir, "ssm.pem"),
          key: path.join(dir, "ssm.key"),
          suffix: "s3.eu-west-1.amazonaws.com",
          // As the roles' s3:GetObject statements: each node its own bundles.
          principals: {
            ASIALABS1: { get: ["lab-bucket/bundles/s1/*", "lab-bucket/releases/*"] },
            ASIALABS2: { get: ["lab-bucket/bundles/s2/*"] },
          },
          objects: {
            "lab-bucket/bundles/s1/one.json": "bundle one",
            "lab-bucket/bundles/s2/two.json": "not for s1",
            // An app release: bytes, not text, served from the file the lab keeps.
            "lab-bucket/releases/r1.tar.gz": { file: path.join(dir, "r1.tar.gz") },
          },
        }),
      );
      const entry = (parameter: string, file: string) => [
        { parameter, path: path.join(dir, "out", file), mode: "0600", owner: "root:root" },
      ];
      fs.writeFileSync(
        path.join(dir, "manifest.json"),
        JSON.stringify(entry("/webstack/lab/s1/db-app-password", "db-app-password")),
      );
      fs.writeFileSync(
        path.join(dir, "manifest-denied.json"),
        JSON.stringify(entry("/webstack/lab/s2/db-app-password", "stolen")),
      );
      fs.writeFileSync(
        path.join(dir, "cloudwatch.json"),
        JSON.stringify({
          listen: "203.0.113.7",
          cert: path.join(dir, "ssm.pem"),
          key: path.join(dir, "ssm.key"),
          // As the roles' cloudwatch:namespace conditions.
          principals: { ASIALABS1: ["Webstack", "CWAgent"] },
        }),
      );
      fs.writeFileSync(path.join(dir, "stored.txt"), "stored-value");
      const release = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x00, 0x80]);
      fs.writeFileSync(path.join(dir, "r1.tar.gz"), release);

      const run = spawnSync("bash", [path.join(PROJECT_DIR, "lab", "standins", "check.sh"), dir], {
        encoding: "utf8",
        timeout: 90_000,
      });
      expect(run.status).toBe(0);
      const sections = Object.fromEntries(
        run.stdout
          .split(/^== /m)
          .filter(Boolean)
          .map((s) => [s.split("\n")[0], s.split("\n").slice(1).join("\n").trim()]),
      );
      expect(sections["fetch exit=0"]).toBe("webstack-aws: wrote 1 files from 1 parameters");
      expect(fs.readFileSync(path.join(dir, "out", "db-app-password"), "utf8")).toBe(
        "lab-password-1",
      );
      expect(sections["fetch-denied exit=1"]).toBe(
        "webstack-aws: AccessDeniedException: not authorized to access /webstack/lab/s2/db-app-password",
      );
      expect(fs.existsSync(path.join(dir, "out", "stolen"))).toBe(false);
      expect(sections["put exit=0"]).toBe("webstack-aws: stored /webstack/lab/s1/stored");
      expect(sections["put-denied exit=1"]).toContain("AccessDeniedException");
      expect(sections["s3-own exit=0"]).toBe("bundle one");
      expect(sections["s3-other exit=1"]).toBe("AccessDenied");
      // A missing key, as S3 answers a caller without s3:ListBucket.
      expect(sections["s3-missing exit=1"]).toBe("AccessDenied");
      expect(sections["s3-published exit=0"]).toBe("published later");
      expect(sections["s3-release exit=0"]).toBe(
        `sha256:${crypto.createHash("sha256").update(release).digest("hex")}`,
      );
      // The stand-in answered: tokens first, the role's credentials, never a token-less read.
      const log = sections["stand-in log"].split("\n");
      expect(log).toContain("imds 169.254.169.254 PUT /latest/api/token");
      expect(log).toContain(
        "imds 169.254.169.254 GET /latest/meta-data/iam/security-credentials/s1-identity-role",
      );
      expect(log).toContain("ssm GetParameters /webstack/lab/s1/db-app-password");
      expect(log.filter((l) => l.includes("GET-without-token"))).toEqual([]);
      expect(run.stdout).not.toContain("not-for-s1");
      expect(run.stdout).not.toContain("not for s1");
      expect(log).toContain("s3 GET lab-bucket/bundles/s1/one.json");
      // CloudWatch: the role's namespace takes the metric; another is refused, and not recorded.
      expect(sections["metric-own exit=0"]).toBe("pushed");
      expect(sections["metric-other exit=1"]).toBe("AccessDenied");
      expect(log).toContain("cloudwatch PutMetricData ASIALABS1 Webstack BackendsUp[s1]=2");
      expect(log.filter((l) => l.includes("AWS/EC2"))).toEqual([
        "cloudwatch refused AccessDenied ASIALABS1 is not authorized to perform cloudwatch:PutMetricData in namespace AWS/EC2",
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  120_000,
);
