// The app tier under mocks: nodes, data volumes, PKI, secrets in SSM, and no secret in any
// user-data, bundle or output.
import YAML from "yaml";
import { Plan } from "../plan/plan";
import { redactSecrets, revealSecrets } from "../plan/secrets";
import { decodeUserData, USER_DATA_GOAL_BYTES } from "../cloud-init/userDataEncoding";
import { ParameterScope, parameterName, parameterPath } from "../model/naming";
import { AppNodeName, PORTS, DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import {
  T,
  TOPOLOGY,
  bundleEntry,
  bundleFile,
  bundleObject,
  byId,
  generatedSecrets,
  ofType,
  one,
  planConfig,
  planStack,
  userDataText,
} from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

const CONFIG = { domain: "www.example.com", protectData: "false" };
let plan: Plan;

beforeAll(async () => {
  plan = await planConfig(CONFIG);
});

const appInstances = (p: Plan) =>
  ofType(p, T.instance).filter((i) => /^s\d-instance$/.test(i.name));

/** An app node's place in the address plan: its subnet's resource name and its fixed address. */
const placed = (node: AppNodeName) =>
  [node, `network-${TOPOLOGY.nodes[node].subnet}`, TOPOLOGY.nodes[node].privateIp] as const;

describe("app nodes", () => {
  test.each([
    [...placed("s2"), "eu-west-1a"],
    [...placed("s1"), "eu-west-1b"],
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
      expect(userDataText(plan, node)).toContain(
        `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volume.id!.replace("-", "")}`,
      );
    }
  });

  test("both run the app nodes' image, as the stack recorded it", () => {
    const ami = one(plan, T.instance, "s1-instance").inputs.ami as string;
    expect(ami).toMatch(/^ami-[0-9a-f]{17}$/);
    expect(ami).toBe(one(plan, T.instance, "s2-instance").inputs.ami);
    expect(ami).toBe(one(plan, T.ssmParameter, "app-image-record").outputs.insecureValue);
  });

  test("a pinned AMI is used as given", async () => {
    const pinned = await planConfig({ ...CONFIG, appAmi: "ami-0123456789abcdef0" });
    expect(one(pinned, T.instance, "s1-instance").inputs.ami).toBe("ami-0123456789abcdef0");
  });

  test("pets: user-data changes are ignored, an image change is not (the record keeps it still), a replacement frees the fixed address first, the bundle comes first; unprotected in dev", () => {
    for (const node of ["s1", "s2"]) {
      const instance = one(plan, T.instance, `${node}-instance`);
      expect(instance.options).toEqual({
        ignoreChanges: ["userData", "userDataBase64"],
        deleteBeforeReplace: true,
        dependsOn: [one(plan, T.ssmParameter, `bundles-${node}-pointer`).urn],
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
        ignoreChanges: ["userData", "userDataBase64"],
        deleteBeforeReplace: true,
        dependsOn: [one(prod, T.ssmParameter, `bundles-${node}-pointer`).urn],
      });
      expect(instance.inputs.disableApiTermination).toBe(true);
      expect(one(prod, T.volume, `${node}-data`).options).toEqual({ protect: true });
    }
  });

  test("outputs: instance id, private IP, internal name and role per node; DB endpoints", () => {
    const { s1, s2 } = TOPOLOGY.nodes;
    expect(plan.outputs.appNodes).toEqual({
      s2: {
        instanceId: one(plan, T.instance, "s2-instance").id,
        privateIp: s2.privateIp,
        internalName: s2.internalName,
        role: "primary",
      },
      s1: {
        instanceId: one(plan, T.instance, "s1-instance").id,
        privateIp: s1.privateIp,
        internalName: s1.internalName,
        role: "replica",
      },
    });
    expect(plan.outputs.dbEndpoints).toEqual({
      primary: `${s2.privateIp}:${PORTS.mysql}`,
      replica: `${s1.privateIp}:${PORTS.mysql}`,
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

  test.each(["s1", "s2"] as const)(
    "%s: a leaf for its fixed name and address, renewed early",
    (node) => {
      const { internalName, privateIp } = TOPOLOGY.nodes[node];
      expect(one(plan, T.privateKey, `pki-${node}-key`).inputs).toEqual({
        algorithm: "ECDSA",
        ecdsaCurve: "P256",
      });
      expect(one(plan, T.certRequest, `pki-${node}-csr`).inputs).toMatchObject({
        dnsNames: [internalName],
        ipAddresses: [privateIp],
        subject: { commonName: internalName },
      });
      expect(one(plan, T.locallySignedCert, `pki-${node}-cert`).inputs).toMatchObject({
        validityPeriodHours: 8760,
        earlyRenewalHours: 720,
        allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
        caCertPem: one(plan, T.selfSignedCert, "pki-ca").outputs.certPem,
      });
    },
  );

  test("the CA certificate travels in each node's bundle at its documented path", () => {
    const caPem = one(plan, T.selfSignedCert, "pki-ca").outputs.certPem;
    for (const node of NODES) {
      const ca = bundleEntry(plan, node, "/etc/webstack/tls/ca.crt");
      expect(ca).toMatchObject({ content: caPem, mode: "0644", owner: "root:root" });
    }
  });
});

describe("secrets", () => {
  test("passwords: 32 letters and digits, generated", () => {
    const passwords = ofType(plan, T.randomPassword);
    expect(passwords.map((p) => p.name).sort()).toEqual([
      "app-secrets-db-app",
      "app-secrets-db-migrate",
      "app-secrets-db-monitor",
      "app-secrets-db-replication",
    ]);
    for (const p of passwords) expect(p.inputs).toMatchObject({ length: 32, special: false });
  });

  test.each(["s1", "s2"] as const)(
    "%s's parameters: under its own path, encrypted with the stack's key",
    (node) => {
      const keyId = one(plan, T.kmsKey, "parameters-key").outputs.keyId;
      const params = ofType(plan, T.ssmParameter).filter((p) =>
        p.name.startsWith(`app-secrets-${node}-`),
      );
      expect(
        params.map((p) => [p.inputs.name, p.inputs.type, p.inputs.keyId ?? null]).sort(),
      ).toEqual(
        [
          [parameterName(plan.stack, node, "db-app-password"), "SecureString", keyId],
          [parameterName(plan.stack, node, "db-migrate-password"), "SecureString", keyId],
          [parameterName(plan.stack, node, "db-monitor-password"), "SecureString", keyId],
          [parameterName(plan.stack, node, "db-replication-password"), "SecureString", keyId],
          [parameterName(plan.stack, node, "tls-cert"), "String", null],
          [parameterName(plan.stack, node, "tls-key"), "SecureString", keyId],
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
    const under = (scope: ParameterScope) => (name: string) =>
      name.startsWith(`${parameterPath(plan.stack, scope)}/`);
    const database = names.filter((n) => /\/db-/.test(n));
    expect(database.filter((n) => under("shared")(n) || under("lb")(n))).toEqual([]);
    expect(database.every((n) => under("s1")(n) || under("s2")(n))).toBe(true);
  });

  test("no generated secret, nor an app secret, appears in any user-data, bundle or stack output", async () => {
    const appSecret = "sk_live_0123456789abcdef";
    const withAppSecret = await planConfig(
      { ...CONFIG, dbEngine: "mysql", appSecrets: JSON.stringify({ SHOP_API_KEY: appSecret }) },
      { secretKeys: ["webstack:appSecrets"] },
    );
    for (const p of [plan, withAppSecret]) {
      const secrets = [...generatedSecrets(p), ...(p === withAppSecret ? [appSecret] : [])];
      expect(secrets.length).toBeGreaterThanOrEqual(3 + 3 * 3);
      expect(new Set(secrets).size).toBe(secrets.length);
      // Every node's bootstrap and bundle, the LB's included; the pointers too.
      const documents = NODES.flatMap((node) => [
        userDataText(p, node),
        String(bundleObject(p, node).inputs.content),
      ]);
      expect(ofType(p, T.instance)).toHaveLength(NODES.length);
      expect(ofType(p, T.bucketObject).filter((o) => o.name.startsWith("bundles-"))).toHaveLength(
        NODES.length,
      );
      const pointers = ofType(p, T.ssmParameter)
        .filter((r) => r.name.endsWith("-pointer"))
        .map((r) => String(r.inputs.value));
      expect(pointers).toHaveLength(NODES.length);
      const outputs = JSON.stringify(revealSecrets(p.outputs));
      for (const secret of secrets) {
        for (const doc of [...documents, ...pointers]) expect(doc).not.toContain(secret);
        expect(outputs).not.toContain(secret);
      }
    }
  });

  test("the SSM parameter names in s1's documents are its own", () => {
    for (const doc of [userDataText(plan, "s1"), String(bundleObject(plan, "s1").inputs.content)]) {
      for (const other of ["s2", "lb", "shared"] as const)
        expect(doc).not.toContain(`${parameterPath(plan.stack, other)}/`);
    }
    expect(bundleFile(plan, "s1", "/etc/webstack/secrets.json")).toContain(
      parameterName(plan.stack, "s1", "tls-key"),
    );
  });
});

describe("user-data", () => {
  test.each(["mariadb", "mysql"])(
    "%s: the bootstrap within 4 KB as sent, gzipped past 4 KB, and valid YAML",
    async (engine) => {
      const p = engine === "mariadb" ? plan : await planConfig({ ...CONFIG, dbEngine: engine });
      for (const instance of appInstances(p)) {
        const shipped =
          instance.inputs.userDataBase64 !== undefined
            ? Buffer.from(String(instance.inputs.userDataBase64), "base64").length
            : Buffer.byteLength(String(instance.inputs.userData));
        expect(shipped).toBeLessThanOrEqual(USER_DATA_GOAL_BYTES);
        const text = decodeUserData(instance.inputs);
        if (Buffer.byteLength(text) > USER_DATA_GOAL_BYTES)
          expect(instance.inputs.userData).toBeUndefined();
        expect(text.startsWith("#cloud-config\n")).toBe(true);
        const packages = YAML.parse(text).packages as string[];
        expect(packages).toContain(engine === "mariadb" ? "mariadb-server" : "mysql-server");
      }
    },
  );

  test("the replica waits for the primary at its fixed address", () => {
    expect(bundleFile(plan, "s1", "/etc/webstack/node.env")).toContain(
      `DB_PRIMARY_IP=${TOPOLOGY.nodes.s2.privateIp}`,
    );
    expect(byId(plan, one(plan, T.instance, "s1-instance").inputs.subnetId).name).toBe(
      "network-private-b",
    );
  });
});
