// `database: rds` under mocks: the RDS instance's exact inputs, its security group from the flow
// table, app nodes holding no database, the master secret's IAM, the alarms, outputs, config errors.
import { ConfigError } from "../model/config";
import { RDS_LOG_EXPORTS, RDS_MARIADB_LOGS, rdsIdentifier } from "../model/rds";
import { APP_NODE_PARAMETERS } from "../model/naming";
import { README } from "./readmeTables";
import { secretNameOf } from "../cloud-init/database";
import { Plan } from "../plan/plan";
import {
  T,
  bundleEntry,
  bundleFile,
  bundleOf,
  grantsOf,
  ofType,
  one,
  planConfig,
  planStack,
  userDataDocument,
  userDataText,
} from "./harness";

let prod: Plan;
let dev: Plan;
let replication: Plan;
beforeAll(async () => {
  // prod: protectData, Datadog and the VPC endpoints on; dev: nothing protected.
  prod = await planStack("prod", ["database=rds"]);
  dev = await planStack("dev", ["database=rds"]);
  replication = await planStack("prod");
}, 120_000);

const instanceOf = (plan: Plan) => one(plan, T.rdsInstance, "database-instance");
const suffixOf = (plan: Plan) => one(plan, T.randomId, "database-final-snapshot-suffix");
const groupId = (plan: Plan, group: string) => one(plan, T.securityGroup, `firewalls-${group}`).id;
const APP_NODES = ["s1", "s2"] as const;

describe("the RDS instance", () => {
  test("prod: MariaDB 11.8, Multi-AZ, encrypted with the stack's key, private, TLS, backups, deletion protected", () => {
    const instance = instanceOf(prod);
    const keyArn = one(prod, T.kmsKey, "parameters-key").outputs.arn;
    expect(instance.inputs).toEqual({
      identifier: "webstack-prod",
      engine: "mariadb",
      engineVersion: "11.8",
      autoMinorVersionUpgrade: true,
      instanceClass: "db.t4g.small",
      multiAz: true,
      dbSubnetGroupName: one(prod, T.rdsSubnetGroup, "database-subnets").outputs.name,
      vpcSecurityGroupIds: [groupId(prod, "rds")],
      publiclyAccessible: false,
      port: 3306,
      parameterGroupName: one(prod, T.rdsParameterGroup, "database-parameters").outputs.name,
      caCertIdentifier: "rds-ca-rsa2048-g1",
      storageType: "gp3",
      allocatedStorage: 20,
      storageEncrypted: true,
      kmsKeyId: keyArn,
      username: "webstack_admin",
      manageMasterUserPassword: true,
      masterUserSecretKmsKeyId: keyArn,
      backupRetentionPeriod: 30,
      copyTagsToSnapshot: true,
      deleteAutomatedBackups: false,
      deletionProtection: true,
      // Explicit: a new class or size waits for the maintenance window. No maxAllocatedStorage:
      // dataVolumeGiB is the size, the storage alarm the safety net.
      applyImmediately: true,
      skipFinalSnapshot: false,
      finalSnapshotIdentifier: `webstack-prod-final-${String(suffixOf(prod).outputs.hex)}`,
      enabledCloudwatchLogsExports: ["error", "slowquery"],
      tags: {
        Environment: "prod",
        CostCenter: "web",
        Project: "webstack",
        Stack: "prod",
        Role: "database",
        ManagedBy: "pulumi",
        Name: "webstack-prod-rds",
      },
    });
    // No password anywhere in the program: RDS keeps it.
    expect(instance.inputs.password).toBeUndefined();
    expect(instance.options.protect).toBe(true);
    // A fixed identifier: the old instance goes before its replacement comes.
    expect(instance.options.deleteBeforeReplace).toBe(true);
    // Its log groups exist first, with the stack's retention.
    const logs = ["error", "slowquery"].map((log) => one(prod, T.logGroup, `database-log-${log}`));
    expect(logs.map((g) => [g.inputs.name, g.inputs.retentionInDays])).toEqual([
      ["/aws/rds/instance/webstack-prod/error", 365],
      ["/aws/rds/instance/webstack-prod/slowquery", 365],
    ]);
    expect(instance.options.dependsOn).toEqual(logs.map((g) => g.urn));
  });

  test("dev (protectData false): no deletion protection, not protected, still a final snapshot; the config's class, size and backups", async () => {
    expect(instanceOf(dev).inputs).toMatchObject({
      deletionProtection: false,
      skipFinalSnapshot: false,
      finalSnapshotIdentifier: `webstack-dev-final-${String(suffixOf(dev).outputs.hex)}`,
      backupRetentionPeriod: 7,
    });
    expect(instanceOf(dev).options.protect).toBeUndefined();
    expect(instanceOf(dev).options.deleteBeforeReplace).toBe(true);
    const sized = await planConfig({
      domain: "www.example.com",
      database: "rds",
      rdsInstanceClass: "db.m7g.large",
      dataVolumeGiB: "200",
      backupRetentionDays: "35",
    });
    expect(instanceOf(sized).inputs).toMatchObject({
      instanceClass: "db.m7g.large",
      allocatedStorage: 200,
      backupRetentionPeriod: 35,
    });
  });

  test("its final snapshot's name ends in a random suffix drawn again with whatever replaces the instance: a stack made again, or an instance replaced, never meets its predecessor's", () => {
    for (const [plan, identifier] of [
      [prod, "webstack-prod"],
      [dev, "webstack-dev"],
    ] as const) {
      const suffix = suffixOf(plan);
      const instance = instanceOf(plan).inputs;
      // Every input the instance has that AWS cannot change in place.
      expect(suffix.inputs).toEqual({
        byteLength: 4,
        keepers: {
          identifier,
          engine: "mariadb",
          storageEncrypted: "true",
          kmsKeyId: one(plan, T.kmsKey, "parameters-key").outputs.arn,
          username: "webstack_admin",
        },
      });
      for (const key of ["identifier", "engine", "kmsKeyId", "username"])
        expect(String(instance[key])).toBe(
          String((suffix.inputs.keepers as Record<string, unknown>)[key]),
        );
      expect(String(suffix.outputs.hex)).toMatch(/^[0-9a-f]{8}$/);
      expect(instanceOf(plan).inputs.finalSnapshotIdentifier).toBe(
        `${identifier}-final-${String(suffix.outputs.hex)}`,
      );
    }
    expect(ofType(replication, T.randomId)).toEqual([]);
  });

  test("the stack's key outlives it (its final snapshot and backups need it), protected with protectData; a replication stack's is as it was", () => {
    expect(one(prod, T.kmsKey, "parameters-key").options).toEqual({
      retainOnDelete: true,
      protect: true,
    });
    expect(one(dev, T.kmsKey, "parameters-key").options).toEqual({ retainOnDelete: true });
    expect(one(replication, T.kmsKey, "parameters-key").options).toEqual({});
    // The alias goes with the stack: a stack made again under the name makes its own.
    expect(one(prod, T.kmsAlias, "parameters-alias").options).toEqual({});
  });

  test("its parameter group requires TLS and logs slow queries to a file RDS publishes", () => {
    expect(one(prod, T.rdsParameterGroup, "database-parameters").inputs).toMatchObject({
      family: "mariadb11.8",
      parameters: [
        { name: "require_secure_transport", value: "1" },
        { name: "slow_query_log", value: "1" },
        { name: "long_query_time", value: "1" },
        { name: "log_output", value: "FILE" },
      ],
    });
  });

  test("its subnet group is the two private subnets, one per AZ", () => {
    const subnets = ofType(prod, T.subnet);
    const id = (name: string) => subnets.find((s) => s.name === `network-${name}`)!.id;
    expect(one(prod, T.rdsSubnetGroup, "database-subnets").inputs.subnetIds).toEqual([
      id("private-a"),
      id("private-b"),
    ]);
  });
});

describe("its security group, from the flow table", () => {
  const rules = (plan: Plan) =>
    [...ofType(plan, T.ingressRule), ...ofType(plan, T.egressRule)].map((r) => r.inputs);

  test("3306 from s1's and s2's groups into RDS's, their egress to it, nothing else about RDS", () => {
    const rds = groupId(prod, "rds");
    const about = rules(prod).filter(
      (r) => r.securityGroupId === rds || r.referencedSecurityGroupId === rds,
    );
    expect(
      about.map((r) => ({
        group: r.securityGroupId,
        peer: r.referencedSecurityGroupId,
        port: [r.fromPort, r.toPort],
        protocol: r.ipProtocol,
      })),
    ).toEqual([
      { group: rds, peer: groupId(prod, "s1"), port: [3306, 3306], protocol: "tcp" },
      { group: rds, peer: groupId(prod, "s2"), port: [3306, 3306], protocol: "tcp" },
      { group: groupId(prod, "s1"), peer: rds, port: [3306, 3306], protocol: "tcp" },
      { group: groupId(prod, "s2"), peer: rds, port: [3306, 3306], protocol: "tcp" },
    ]);
    expect(one(prod, T.securityGroup, "firewalls-rds").inputs.description).toBe(
      "webstack rds: the Amazon RDS for MariaDB instance, reached on 3306 from s1 and s2 only",
    );
  });

  test("no database or Galera port between s1 and s2, none from or to the LB", () => {
    const [s1, s2, lb] = ["s1", "s2", "lb"].map((g) => groupId(prod, g));
    const database = rules(prod).filter((r) =>
      [3306, 4444, 4567, 4568].includes(Number(r.fromPort)),
    );
    for (const r of database) {
      expect([r.securityGroupId, r.referencedSecurityGroupId]).not.toEqual([s1, s2]);
      expect([r.securityGroupId, r.referencedSecurityGroupId]).not.toEqual([s2, s1]);
      expect([r.securityGroupId, r.referencedSecurityGroupId]).not.toContain(lb);
    }
    expect(database).toHaveLength(4);
  });
});

describe("the app nodes hold no database", () => {
  const SERVER_PACKAGES = /^(mariadb-server|mariadb-backup|mysql-server|galera|socat|percona|zstd)/;

  test("no EBS volume, no attachment, no snapshot policy", () => {
    for (const type of [T.volume, T.volumeAttachment, T.dlmPolicy])
      expect(ofType(prod, type)).toEqual([]);
    expect(ofType(replication, T.volume)).toHaveLength(2);
  });

  test.each(APP_NODES)(
    "%s's user-data: the database client alone, no volume, no server settings",
    (node) => {
      const doc = userDataDocument(prod, node);
      expect(doc.packages).toContain("mariadb-client");
      expect(doc.packages!.filter((p) => SERVER_PACKAGES.test(p))).toEqual([]);
      expect(JSON.stringify(doc.bootcmd)).not.toMatch(/data-volume|nvme|mkfs/);
      expect(doc.write_files.map((f) => f.path).filter((p) => /mysql|mariadb/.test(p))).toEqual([]);
      expect(userDataText(prod, node)).toMatch(/^# webstack s\d \(client\): /m);
    },
  );

  test.each(APP_NODES)(
    "%s's bundle: no server, backup, data-volume or late-config file; the app points at RDS",
    (node) => {
      const bundle = bundleOf(prod, node);
      const address = instanceOf(prod).outputs.address;
      expect(bundle.packages.filter((p) => SERVER_PACKAGES.test(p))).toEqual([]);
      const paths = bundle.files.map((f) => f.path);
      expect(
        paths.filter((p) => /mysql|backup|grow-data|late-config|replica\.sql|primary\.sql/.test(p)),
      ).toEqual([]);
      expect(bundle.files.filter((f) => /mysql/.test(f.owner))).toEqual([]);
      const env = bundleFile(prod, node, "/etc/webstack/node.env");
      expect(env).toContain(
        `\nAPP_DB_PRIMARY=${String(address)}\nAPP_DB_REPLICA=${String(address)}\n`,
      );
      expect(env).toContain("\nDB_ROLE=client\nDB_CLUSTER=rds\n");
      const boot = bundleFile(prod, node, "/usr/local/sbin/webstack-boot");
      expect(boot).toContain(
        "/usr/local/sbin/webstack-aws rds-ca https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/webstack/tls/rds-ca.pem rds-ca-rsa2048-g1\n",
      );
      expect(boot).toContain("printf 'DB_CA_FILE=/etc/webstack/tls/rds-ca.pem\\n'");
      expect(boot).not.toContain("webstack-db-late-config");
      expect(bundleFile(prod, node, "/etc/webstack/db/client-tls.cnf")).toBe(
        "ssl-ca=/etc/webstack/tls/rds-ca.pem\nssl-verify-server-cert\n",
      );
      expect(bundleFile(prod, node, "/etc/systemd/system/webstack-collector.service")).toContain(
        `ExecStart=/usr/local/sbin/webstack-aws collect client ${node} --certificate node=/etc/webstack/tls/node.crt --every 60\n`,
      );
      // prod runs Datadog: its nginx check, no MySQL check, no monitoring password.
      expect(paths.filter((p) => p.startsWith("/etc/webstack/datadog/conf.d/"))).toEqual([
        "/etc/webstack/datadog/conf.d/nginx.yaml",
      ]);
      expect(bundleFile(prod, node, "/etc/webstack/datadog/secrets.json")).not.toContain(
        "db-monitor-password",
      );
      const secrets = JSON.parse(bundleFile(prod, node, "/etc/webstack/secrets.json")) as {
        parameter: string;
      }[];
      expect(secrets.map((e) => e.parameter.split("/").pop())).toEqual([
        "tls-cert",
        "tls-key",
        "db-app-password",
        "db-app-password",
        "db-migrate-password",
      ]);
    },
  );

  test("s2 writes the schema and users on RDS, as its master user, from the secret's name; s1 has neither", () => {
    const arn = String(
      (instanceOf(prod).outputs.masterUserSecrets as { secretArn: string }[])[0].secretArn,
    );
    expect(bundleFile(prod, "s2", "/etc/webstack/db/rds-admin-secret")).toBe(
      `${secretNameOf(arn)}\n`,
    );
    const sql = bundleEntry(prod, "s2", "/etc/webstack/db/rds.sql");
    expect(sql.onChange).toEqual(["/usr/local/sbin/webstack-db-bootstrap"]);
    expect(sql.content).toContain(
      "CREATE USER IF NOT EXISTS 'app'@'10.41.192.10' IDENTIFIED BY '@APP_PASSWORD@' REQUIRE SSL;",
    );
    expect(sql.content).toContain(
      "CREATE USER IF NOT EXISTS 'migrate'@'10.41.128.10' IDENTIFIED BY '@MIGRATE_PASSWORD@' REQUIRE SSL ACCOUNT LOCK;",
    );
    expect(sql.content).not.toMatch(/localhost|replication|monitor/);
    expect(bundleFile(prod, "s2", "/etc/webstack/node.env")).toContain("\nDB_SCHEMA=yes\n");
    expect(bundleFile(prod, "s1", "/etc/webstack/node.env")).toContain("\nDB_SCHEMA=no\n");
    const s1 = bundleOf(prod, "s1").files.map((f) => f.path);
    expect(s1).not.toContain("/etc/webstack/db/rds.sql");
    expect(s1).not.toContain("/etc/webstack/db/rds-admin-secret");
    // The release command reaches RDS as its master user, `migrate` from s2, RDS's own kill.
    const command = bundleFile(prod, "s2", "/usr/local/sbin/webstack-release-command");
    expect(command).toContain(
      `/usr/bin/mariadb --defaults-extra-file=<(/usr/local/sbin/webstack-aws db-admin-options "$(</etc/webstack/db/rds-admin-secret)"; cat /etc/webstack/db/client-tls.cnf) --host=${String(instanceOf(prod).outputs.address)} --port=3306 "$@"`,
    );
    expect(command).toContain("ALTER USER 'migrate'@'10.41.128.10' ACCOUNT UNLOCK;");
    expect(command).toContain('echo "CALL mysql.rds_kill($id);"');
    expect(command).not.toMatch(/localhost|--protocol=socket/);
  });

  test("only the passwords the mode uses are made: app and migrate, no replication or monitor", () => {
    const passwords = (plan: Plan) => ofType(plan, T.randomPassword).map((p) => p.name);
    const parameters = (plan: Plan, node: string) =>
      ofType(plan, T.ssmParameter)
        .filter((p) => p.name.startsWith(`app-secrets-${node}-`))
        .map((p) => String(p.inputs.name).replace(`/webstack/prod/${node}/`, ""));
    expect(passwords(prod).filter((n) => n.startsWith("app-secrets-"))).toEqual([
      "app-secrets-db-app",
      "app-secrets-db-migrate",
    ]);
    for (const node of APP_NODES)
      expect(parameters(prod, node)).toEqual([
        "db-app-password",
        "db-migrate-password",
        "tls-key",
        "tls-cert",
      ]);
    expect(passwords(replication).filter((n) => n.startsWith("app-secrets-"))).toEqual([
      "app-secrets-db-app",
      "app-secrets-db-replication",
      "app-secrets-db-monitor",
      "app-secrets-db-migrate",
    ]);
    expect(parameters(replication, "s2")).toEqual([...APP_NODE_PARAMETERS]);
  });

  test("the rendered bundles never carry the master secret's ARN", () => {
    const arn = String(
      (instanceOf(prod).outputs.masterUserSecrets as { secretArn: string }[])[0].secretArn,
    );
    for (const node of ["lb", ...APP_NODES])
      expect(String(one(prod, T.bucketObject, `bundles-${node}`).inputs.content)).not.toContain(
        arn,
      );
  });
});

describe("IAM: the master user's secret, to s2 alone", () => {
  const policies = (plan: Plan, node: string) =>
    ofType(plan, T.rolePolicy).filter((p) => p.name.startsWith(`${node}-identity-`));

  test("s2 reads that one secret and decrypts it only through Secrets Manager, for that secret", () => {
    const arn = (instanceOf(prod).outputs.masterUserSecrets as { secretArn: string }[])[0]
      .secretArn;
    const keyArn = one(prod, T.kmsKey, "parameters-key").outputs.arn;
    expect(grantsOf(one(prod, T.rolePolicy, "s2-identity-database-admin").inputs.policy)).toEqual([
      {
        actions: ["kms:Decrypt"],
        resources: [keyArn],
        condition: {
          StringEquals: {
            "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com",
            "kms:EncryptionContext:SecretARN": arn,
          },
        },
      },
      { actions: ["secretsmanager:GetSecretValue"], resources: [arn] },
    ]);
  });

  test("no other node may read it; no node has a backups policy (RDS backs up)", () => {
    for (const node of ["lb", "s1"])
      expect(policies(prod, node).map((p) => p.name)).not.toContain(
        `${node}-identity-database-admin`,
      );
    for (const plan of [prod, dev])
      for (const p of ofType(plan, T.rolePolicy)) {
        expect(p.name).not.toMatch(/-identity-backups$/);
        if (p.name !== "s2-identity-database-admin")
          expect(String(p.inputs.policy)).not.toContain("secretsmanager");
      }
    expect(ofType(replication, T.rolePolicy).map((p) => p.name)).toContain("s1-identity-backups");
  });
});

describe("monitoring", () => {
  const alarms = (plan: Plan) => ofType(plan, T.metricAlarm).map((a) => String(a.inputs.name));

  test("RDS's own alarms; none for the nodes' databases, volumes or backups", () => {
    const names = alarms(prod);
    expect(
      names.filter((n) =>
        /replica|database-down|backup|binlog|data-disk|certificate-database/.test(n),
      ),
    ).toEqual([]);
    const rds = ofType(prod, T.metricAlarm).filter((a) => String(a.inputs.name).includes("-rds-"));
    expect(
      rds.map((a) => [
        a.inputs.name,
        a.inputs.namespace,
        a.inputs.metricName,
        a.inputs.dimensions,
        a.inputs.comparisonOperator,
        a.inputs.threshold,
      ]),
    ).toEqual([
      [
        "webstack-prod-rds-cpu-high",
        "AWS/RDS",
        "CPUUtilization",
        { DBInstanceIdentifier: "webstack-prod" },
        "GreaterThanThreshold",
        80,
      ],
      [
        "webstack-prod-rds-storage-low",
        "AWS/RDS",
        "FreeStorageSpace",
        { DBInstanceIdentifier: "webstack-prod" },
        "LessThanThreshold",
        2147483648,
      ],
    ]);
    expect(alarms(replication)).toEqual(
      expect.arrayContaining(["webstack-prod-s1-replica-lag", "webstack-prod-s2-data-disk-high"]),
    );
    expect(alarms(replication).filter((n) => n.includes("-rds-"))).toEqual([]);
  });

  test("the dashboard graphs the instance where replication would be; no node volume or backups", () => {
    const body = (plan: Plan) =>
      JSON.parse(String(one(plan, T.dashboard, "monitoring-dashboard").inputs.dashboardBody)) as {
        widgets: { properties: { title?: string; metrics?: unknown[] } }[];
      };
    const titles = (plan: Plan) => body(plan).widgets.map((w) => w.properties.title);
    expect(titles(prod)).toContain("RDS webstack-prod: CPU (%) and free storage (GiB)");
    expect(titles(prod).filter((t) => /Replication|backup|binlogs/.test(t ?? ""))).toEqual([]);
    expect(JSON.stringify(body(prod))).not.toContain("/var/lib/mysql");
    expect(titles(replication)).toContain("Replication (s1)");
  });

  test("no database log groups on the nodes", () => {
    const names = ofType(prod, T.logGroup).map((g) => String(g.inputs.name));
    expect(names.filter((n) => /\/s[12]\/db-/.test(n))).toEqual([]);
    expect(ofType(replication, T.logGroup).map((g) => String(g.inputs.name))).toContain(
      "/webstack/prod/s1/db-error",
    );
  });
});

describe("outputs", () => {
  test("database: the mode, and with rds where the instance is; dbEndpoints name it for both; no secret", () => {
    const instance = instanceOf(prod);
    const at = `${String(instance.outputs.address)}:3306`;
    expect(prod.outputs.database).toEqual({
      mode: "rds",
      instance: "webstack-prod",
      address: instance.outputs.address,
      port: 3306,
      securityGroupId: groupId(prod, "rds"),
      engineVersion: "11.8",
      instanceClass: "db.t4g.small",
    });
    expect(prod.outputs.dbEndpoints).toEqual({ primary: at, replica: at });
    expect(prod.outputs.backups).toEqual({ rdsInstance: "webstack-prod", retentionDays: 30 });
    expect(JSON.stringify(prod.outputs)).not.toMatch(/secretsmanager|webstack_admin/);
    expect(replication.outputs.database).toEqual({ mode: "replication" });
  });

  test("appNodes: each node's role is client, as its collector's, never primary or replica", () => {
    const roles = (plan: Plan) =>
      Object.fromEntries(
        Object.entries(plan.outputs.appNodes as Record<string, { role: string }>).map(
          ([node, n]) => [node, n.role],
        ),
      );
    expect(roles(prod)).toEqual({ s1: "client", s2: "client" });
    expect(roles(replication)).toEqual({ s1: "replica", s2: "primary" });
    for (const node of APP_NODES) {
      expect(bundleFile(prod, node, "/etc/webstack/node.env").split("\n")).toContain(
        "DB_ROLE=client",
      );
    }
  });
});

describe("its logs", () => {
  test("the README says which of RDS.9's MariaDB logs the instance does not publish, and why", () => {
    const section = README.slice(README.indexOf("### rds (Amazon RDS for MariaDB)")).replace(
      /\s+/g,
      " ",
    );
    const unpublished = RDS_MARIADB_LOGS.filter(
      (log) => !(RDS_LOG_EXPORTS as readonly string[]).includes(log),
    );
    expect(unpublished).toEqual(["audit", "general"]);
    expect(section).toContain(
      "Not its audit log (it needs an option group with `MARIADB_AUDIT_PLUGIN`, which the stack does not make) nor its general log",
    );
    expect(section).toContain(
      "FSBP RDS.9, whose default parameters expect `audit`, `error`, `general` and `slowquery` for MariaDB, flags the instance.",
    );
    expect(instanceOf(prod).inputs.enabledCloudwatchLogsExports).toEqual(["error", "slowquery"]);
  });
});

describe("config", () => {
  test("rds with MySQL is refused before anything is planned", async () => {
    await expect(
      planConfig({ domain: "www.example.com", database: "rds", dbEngine: "mysql" }),
    ).rejects.toThrow(ConfigError);
  });

  test.each([
    ["prod", "webstack-prod"],
    ["Dev.Stack_1", "webstack-dev-stack-1"],
    ["a".repeat(80), `webstack-${"a".repeat(54)}`],
    ["x--", "webstack-x"],
  ])("the instance's identifier for stack %s is %s", (stack, identifier) => {
    expect(rdsIdentifier(stack)).toBe(identifier);
    expect(identifier).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
    expect(identifier.length).toBeLessThanOrEqual(63);
  });

  test("a secret's name from its ARN, or a refusal", () => {
    expect(
      secretNameOf("arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1a2b-3c4d-AbC123"),
    ).toBe("rds!db-1a2b-3c4d");
    expect(() => secretNameOf("arn:aws:ssm:eu-west-1:123456789012:parameter/x")).toThrow(
      "not a Secrets Manager secret's ARN",
    );
  });
});
