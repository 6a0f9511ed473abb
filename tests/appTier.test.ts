// The app tier under mocks: nodes, data volumes, PKI, secrets in SSM, and no secret in any user-data.
import YAML from "yaml";
import { Plan, PlannedResource } from "../plan/plan";
import { redactSecrets, revealSecrets } from "../plan/secrets";
import { decodeUserData, USER_DATA_LIMIT_BYTES } from "../cloud-init/userDataEncoding";
import { T, byId, ofType, one, planConfig, planStack } from "./harness";

const CONFIG = { domain: "www.example.com", protectData: "false" };
let plan: Plan;

beforeAll(async () => {
  plan = await planConfig(CONFIG);
});

const userDataOf = (instance: PlannedResource) => decodeUserData(instance.inputs);
const appInstances = (p: Plan) =>
  ofType(p, T.instance).filter((i) => /^s\d-instance$/.test(i.name));

/** Every value the mocks generated as a secret: passwords and private keys. */
function generatedSecrets(p: Plan): string[] {
  const passwords = ofType(p, T.randomPassword).map((r) => String(r.outputs.result));
  const keys = ofType(p, T.privateKey).flatMap((r) => [
    String(r.outputs.privateKeyPem),
    String(r.outputs.privateKeyPemPkcs8),
    String(r.outputs.privateKeyOpenssh),
  ]);
  return [...passwords, ...keys];
}

/** The secret's distinctive part: a PEM's body, or the whole value. */
const needle = (secret: string) =>
  secret.split("\n").find((l) => l.startsWith("mock-secret")) ?? secret;

describe("app nodes", () => {
  test.each([
    ["s2", "network-private-a", "10.40.128.10", "eu-west-1a"],
    ["s1", "network-private-b", "10.40.192.10", "eu-west-1b"],
  ])(
    "%s: private subnet %s at %s, no public IP, its own firewall and role",
    (node, subnet, ip, az) => {
      const instance = one(plan, T.instance, `${node}-instance`);
      expect(instance.inputs).toMatchObject({
        subnetId: one(plan, T.subnet, subnet).id,
        privateIp: ip,
        associatePublicIpAddress: false,
        vpcSecurityGroupIds: [one(plan, T.securityGroup, `firewalls-${node}`).id],
        iamInstanceProfile: one(plan, T.instanceProfile, `${node}-identity-profile`).outputs.name,
        instanceType: "t3.small",
      });
      expect(instance.inputs.securityGroups).toBeUndefined();
      expect(one(plan, T.subnet, subnet).inputs.availabilityZone).toBe(az);
    },
  );

  test("IMDSv2 required, encrypted gp3 root, detailed monitoring", () => {
    for (const node of ["s1", "s2"]) {
      const { inputs } = one(plan, T.instance, `${node}-instance`);
      expect(inputs.metadataOptions).toEqual({
        httpEndpoint: "enabled",
        httpTokens: "required",
        httpPutResponseHopLimit: 1,
        instanceMetadataTags: "disabled",
      });
      expect(inputs.rootBlockDevice).toMatchObject({ volumeType: "gp3", encrypted: true });
      expect(inputs.monitoring).toBe(true);
    }
  });

  test("the database lives on its own encrypted volume in the node's AZ, attached to it", () => {
    for (const [node, az] of [
      ["s1", "eu-west-1b"],
      ["s2", "eu-west-1a"],
    ]) {
      const volume = one(plan, T.volume, `${node}-data`);
      expect(volume.inputs).toMatchObject({
        availabilityZone: az,
        type: "gp3",
        encrypted: true,
        size: 20,
      });
      const attachment = one(plan, T.volumeAttachment, `${node}-data-attachment`);
      expect(attachment.inputs).toMatchObject({
        volumeId: volume.id,
        instanceId: one(plan, T.instance, `${node}-instance`).id,
      });
      // The boot script waits for exactly this device.
      expect(userDataOf(one(plan, T.instance, `${node}-instance`))).toContain(
        `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volume.id!.replace("-", "")}`,
      );
    }
  });

  test("the Debian 13 AMI is looked up for the instance's architecture", () => {
    const ami = one(plan, T.instance, "s1-instance").inputs.ami as string;
    expect(ami).toMatch(/^ami-[0-9a-f]{17}$/);
    expect(ami).toBe(one(plan, T.instance, "s2-instance").inputs.ami);
  });

  test("a pinned AMI is used as given", async () => {
    const pinned = await planConfig({ ...CONFIG, appAmi: "ami-0123456789abcdef0" });
    expect(one(pinned, T.instance, "s1-instance").inputs.ami).toBe("ami-0123456789abcdef0");
  });

  test("pets: AMI and user-data changes are ignored, a replacement frees the fixed address first; unprotected in dev", () => {
    for (const node of ["s1", "s2"]) {
      const instance = one(plan, T.instance, `${node}-instance`);
      expect(instance.options).toEqual({
        ignoreChanges: ["ami", "userData", "userDataBase64"],
        deleteBeforeReplace: true,
      });
      expect(instance.inputs.disableApiTermination).toBe(false);
      expect(one(plan, T.volume, `${node}-data`).options).toEqual({});
    }
  });

  test("protectData protects instances and data volumes, and turns on termination protection", async () => {
    const prod = await planStack("prod");
    for (const node of ["s1", "s2"]) {
      const instance = one(prod, T.instance, `${node}-instance`);
      expect(instance.options).toEqual({
        protect: true,
        ignoreChanges: ["ami", "userData", "userDataBase64"],
        deleteBeforeReplace: true,
      });
      expect(instance.inputs.disableApiTermination).toBe(true);
      expect(one(prod, T.volume, `${node}-data`).options).toEqual({ protect: true });
    }
  });

  test("outputs: instance id, private IP, internal name and role per node; DB endpoints", () => {
    expect(plan.outputs.appNodes).toEqual({
      s2: {
        instanceId: one(plan, T.instance, "s2-instance").id,
        privateIp: "10.40.128.10",
        internalName: "s2.webstack.internal",
        role: "primary",
      },
      s1: {
        instanceId: one(plan, T.instance, "s1-instance").id,
        privateIp: "10.40.192.10",
        internalName: "s1.webstack.internal",
        role: "replica",
      },
    });
    expect(plan.outputs.dbEndpoints).toEqual({
      primary: "10.40.128.10:3306",
      replica: "10.40.192.10:3306",
    });
  });
});

describe("private PKI", () => {
  test("an ECDSA P-256 CA that signs leaves only", () => {
    const ca = one(plan, T.selfSignedCert, "pki-ca");
    expect(one(plan, T.privateKey, "pki-ca-key").inputs).toEqual({
      algorithm: "ECDSA",
      ecdsaCurve: "P256",
    });
    expect(ca.inputs).toMatchObject({
      isCaCertificate: true,
      maxPathLength: 0,
      validityPeriodHours: 87600,
      allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
    });
  });

  test.each([
    ["s1", "10.40.192.10"],
    ["s2", "10.40.128.10"],
  ])("%s: a leaf for its fixed name and address, renewed early", (node, ip) => {
    expect(one(plan, T.privateKey, `pki-${node}-key`).inputs).toEqual({
      algorithm: "ECDSA",
      ecdsaCurve: "P256",
    });
    expect(one(plan, T.certRequest, `pki-${node}-csr`).inputs).toMatchObject({
      dnsNames: [`${node}.webstack.internal`],
      ipAddresses: [ip],
      subject: { commonName: `${node}.webstack.internal` },
    });
    expect(one(plan, T.locallySignedCert, `pki-${node}-cert`).inputs).toMatchObject({
      validityPeriodHours: 8760,
      earlyRenewalHours: 720,
      allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
      caCertPem: one(plan, T.selfSignedCert, "pki-ca").outputs.certPem,
    });
  });

  test("the CA certificate travels in user-data at its documented path", () => {
    const caPem = one(plan, T.selfSignedCert, "pki-ca").outputs.certPem;
    for (const node of ["s1", "s2"]) {
      const doc = YAML.parse(userDataOf(one(plan, T.instance, `${node}-instance`)));
      const ca = doc.write_files.find(
        (f: { path: string }) => f.path === "/etc/webstack/tls/ca.crt",
      );
      expect(ca).toMatchObject({ content: caPem, permissions: "0644" });
    }
  });
});

describe("secrets", () => {
  test("passwords: 32 letters and digits, generated", () => {
    const passwords = ofType(plan, T.randomPassword);
    expect(passwords.map((p) => p.name).sort()).toEqual([
      "app-secrets-db-app",
      "app-secrets-db-monitor",
      "app-secrets-db-replication",
    ]);
    for (const p of passwords) expect(p.inputs).toMatchObject({ length: 32, special: false });
  });

  test.each(["s1", "s2"])(
    "%s's parameters: under its own path, encrypted with the stack's key",
    (node) => {
      const keyId = ofType(plan, T.kmsKey)[0].outputs.keyId;
      const params = ofType(plan, T.ssmParameter).filter((p) =>
        p.name.startsWith(`app-secrets-${node}-`),
      );
      expect(
        params.map((p) => [p.inputs.name, p.inputs.type, p.inputs.keyId ?? null]).sort(),
      ).toEqual(
        [
          [`/webstack/test/${node}/db-app-password`, "SecureString", keyId],
          [`/webstack/test/${node}/db-monitor-password`, "SecureString", keyId],
          [`/webstack/test/${node}/db-replication-password`, "SecureString", keyId],
          [`/webstack/test/${node}/tls-cert`, "String", null],
          [`/webstack/test/${node}/tls-key`, "SecureString", keyId],
        ].sort(),
      );
    },
  );

  test("secret parameter values are Pulumi secrets, shown redacted", () => {
    const raw = plan.resources.find((r) => r.name === "app-secrets-s1-tls-key")!;
    expect(redactSecrets(raw).inputs.value).toBe("[secret]");
    expect(revealSecrets(raw).inputs.value).toBe(
      one(plan, T.privateKey, "pki-s1-key").outputs.privateKeyPem,
    );
  });

  test("the LB's role cannot read database secrets: none under shared/ or lb/", () => {
    const names = ofType(plan, T.ssmParameter).map((p) => String(p.inputs.name));
    expect(names.filter((n) => /\/(shared|lb)\//.test(n) && /\/db-/.test(n))).toEqual([]);
    expect(
      names.filter((n) => /\/db-/.test(n)).every((n) => /\/webstack\/test\/s[12]\//.test(n)),
    ).toBe(true);
  });

  test("no generated secret appears in any user-data or stack output", async () => {
    for (const p of [plan, await planConfig({ ...CONFIG, dbEngine: "mysql" })]) {
      const secrets = generatedSecrets(p);
      expect(secrets.length).toBeGreaterThanOrEqual(3 + 3 * 3);
      expect(new Set(secrets).size).toBe(secrets.length);
      // Every node's document, the LB's included.
      const documents = ofType(p, T.instance).map(userDataOf);
      expect(documents).toHaveLength(3);
      const outputs = JSON.stringify(revealSecrets(p.outputs));
      for (const secret of secrets) {
        for (const doc of documents) expect(doc).not.toContain(needle(secret));
        expect(outputs).not.toContain(needle(secret));
      }
    }
  });

  test("the SSM parameter names in user-data are the node's own", () => {
    const doc = userDataOf(one(plan, T.instance, "s1-instance"));
    expect(doc).toContain("/webstack/test/s1/tls-key");
    expect(doc).not.toMatch(/\/webstack\/test\/(s2|lb|shared)\//);
  });
});

describe("user-data", () => {
  test.each(["mariadb", "mysql"])(
    "%s: within EC2's 16 KB, gzipped past 12 KB, and valid YAML",
    async (engine) => {
      const p = engine === "mariadb" ? plan : await planConfig({ ...CONFIG, dbEngine: engine });
      for (const instance of appInstances(p)) {
        const shipped =
          instance.inputs.userDataBase64 !== undefined
            ? Buffer.from(String(instance.inputs.userDataBase64), "base64").length
            : Buffer.byteLength(String(instance.inputs.userData));
        expect(shipped).toBeLessThanOrEqual(USER_DATA_LIMIT_BYTES);
        const text = userDataOf(instance);
        if (Buffer.byteLength(text) > 12 * 1024) expect(instance.inputs.userData).toBeUndefined();
        expect(text.startsWith("#cloud-config\n")).toBe(true);
        const packages = YAML.parse(text).packages as string[];
        expect(packages).toContain(engine === "mariadb" ? "mariadb-server" : "mysql-server");
      }
    },
  );

  test("the replica waits for the primary at its fixed address", () => {
    const doc = userDataOf(one(plan, T.instance, "s1-instance"));
    expect(doc).toContain("DB_PRIMARY_IP=10.40.128.10");
    expect(byId(plan, one(plan, T.instance, "s1-instance").inputs.subnetId).name).toBe(
      "network-private-b",
    );
  });
});
