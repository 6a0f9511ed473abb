// parseConfig: every key's default, every key's rejection, cross-key rules, secrets, typos.
import * as util from "util";
import {
  CONFIG_KEYS,
  ConfigError,
  ConfigKey,
  SecretValue,
  parseConfig,
  RawConfig,
} from "../model/config";
import { AppSourceListing } from "../model/appSource";

const MINIMAL = { "webstack:domain": "www.example.com" };
const API_KEY = "0123456789abcdef0123456789abcdef";

/** The problems of a config, judged with what its app directory holds when `appSource` is given. */
function problemsOf(
  raw: RawConfig,
  secretKeys?: string[],
  appSource?: AppSourceListing,
): readonly string[] {
  try {
    parseConfig(raw, { secretKeys: secretKeys ? new Set(secretKeys) : undefined, appSource });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

function withKeys(values: Record<string, string>): RawConfig {
  const raw: Record<string, string> = { ...MINIMAL };
  for (const [k, v] of Object.entries(values)) raw[`webstack:${k}`] = v;
  return raw;
}

// What each key is when unset. Written out by hand: deriving it from CONFIG_KEYS would prove nothing.
const DEFAULTS: Record<Exclude<ConfigKey, "domain">, unknown> = {
  hostedZone: undefined,
  certificate: "self-signed",
  acmeEmail: undefined,
  acmeDirectory: "https://acme-v02.api.letsencrypt.org/directory",
  lbInstanceType: "t3.micro",
  appInstanceType: "t3.small",
  lbAmi: undefined,
  appAmi: undefined,
  dbEngine: "mariadb",
  database: "replication",
  appNodeCount: 2,
  rdsInstanceClass: "db.t4g.small",
  vpcCidr: "10.40.0.0/16",
  vpcEndpoints: false,
  protectData: true,
  dataVolumeGiB: 20,
  logRetentionDays: 30,
  backupRetentionDays: 7,
  datadog: false,
  datadogSite: "datadoghq.com",
  datadogApiKey: undefined,
  lbServerTimeoutSeconds: 60,
  maxBodyMiB: 10,
  rateLimitPerClient: 1000,
  alarmEmail: undefined,
  qpsAlarmThreshold: 500,
  replicaLagAlarmSeconds: 60,
  tags: {},
  cloudWatchAgentUrl:
    "https://amazoncloudwatch-agent.s3.amazonaws.com/debian/{arch}/latest/amazon-cloudwatch-agent.deb",
  datadogRepoUrl: "https://apt.datadoghq.com/",
  appSource: "app",
  appModule: "app:application",
  appEnv: {},
  appSecrets: {},
  releaseCommand: undefined,
};

describe("defaults", () => {
  const config = parseConfig(MINIMAL);

  test.each(Object.entries(DEFAULTS))("%s defaults to %j", (key, expected) => {
    expect(config[key as ConfigKey]).toEqual(expected);
  });

  test("domain has no default: it is required", () => {
    expect(problemsOf({})).toEqual([
      'webstack:domain: missing; expected a lowercase fully qualified domain name such as "www.example.com"; ' +
        "set it with pulumi config set domain <value>",
    ]);
  });

  test("every key has a default test", () => {
    expect(["domain", ...Object.keys(DEFAULTS)].sort()).toEqual(Object.keys(CONFIG_KEYS).sort());
  });

  test("the result is frozen", () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.tags)).toBe(true);
  });
});

// [key, bad value, what the message says is wrong]
const REJECTED: [ConfigKey, string, string][] = [
  ["domain", "localhost", "is not a fully qualified domain name"],
  ["domain", "www.Example.com", "must be lowercase"],
  ["domain", "-www.example.com", "is not a fully qualified domain name"],
  ["domain", "www.example.com.", "is not a fully qualified domain name"],
  ["domain", "www.exa_mple.com", "is not a fully qualified domain name"],
  ["hostedZone", "example", "is not a fully qualified domain name"],
  ["certificate", "lets-encrypt", "is not one of the accepted values"],
  ["acmeEmail", "ops-at-example.com", "is not an e-mail address"],
  ["acmeEmail", "ops@localhost", "is not an e-mail address"],
  ["acmeDirectory", "http://acme.example.com/directory", "is not an https:// URL"],
  ["acmeDirectory", "not a url", "is not a URL"],
  ["acmeDirectory", "https://user:pw@acme.example.com/dir", "must not carry credentials"],
  ["lbInstanceType", "micro", "is not an EC2 instance type"],
  ["appInstanceType", "t3.small ", "is not an EC2 instance type"],
  ["lbAmi", "ami-xyz", "is not an AMI id"],
  ["appAmi", "0123456789abcdef0", "is not an AMI id"],
  ["dbEngine", "postgres", "is not one of the accepted values"],
  ["database", "Galera", "is not one of the accepted values"],
  ["database", "aurora", "is not one of the accepted values"],
  ["appNodeCount", "1", "is out of range [2, 16]"],
  ["appNodeCount", "17", "is out of range [2, 16]"],
  ["appNodeCount", "3.0", "is not a whole number"],
  ["appNodeCount", "three", "is not a whole number"],
  ["appNodeCount", "-2", "is not a whole number"],
  ["rdsInstanceClass", "t4g.small", "is not an RDS DB instance class"],
  ["rdsInstanceClass", "db.t4g", "is not an RDS DB instance class"],
  ["rdsInstanceClass", "db.t4g.small ", "is not an RDS DB instance class"],
  ["rdsInstanceClass", "db.T4G.small", "is not an RDS DB instance class"],
  ["vpcCidr", "10.40.0.0", "is not an IPv4 CIDR block"],
  ["vpcCidr", "10.40.0.0/8", "has a prefix outside /16 to /24"],
  ["vpcCidr", "10.40.0.0/26", "has a prefix outside /16 to /24"],
  ["vpcCidr", "10.40.1.0/16", "has host bits set (the network is 10.40.0.0/16)"],
  ["vpcCidr", "8.8.0.0/16", "is not a private (RFC 1918) range"],
  ["vpcCidr", "10.040.0.0/16", "is not an IPv4 CIDR block"],
  ["vpcCidr", "10.256.0.0/16", "is not an IPv4 CIDR block"],
  ["vpcEndpoints", "on", "is not a boolean"],
  ["protectData", "yes", "is not a boolean"],
  ["dataVolumeGiB", "9", "is out of range [10, 16384]"],
  ["dataVolumeGiB", "16385", "is out of range [10, 16384]"],
  ["dataVolumeGiB", "20.5", "is not a whole number"],
  ["dataVolumeGiB", "20G", "is not a whole number"],
  ["logRetentionDays", "10", "is not a retention CloudWatch Logs accepts"],
  ["backupRetentionDays", "0", "is out of range [1, 365]"],
  ["backupRetentionDays", "366", "is out of range [1, 365]"],
  ["backupRetentionDays", "7d", "is not a whole number"],
  ["backupRetentionDays", "1.5", "is not a whole number"],
  ["datadog", "1", "is not a boolean"],
  ["datadogSite", "datadoghq.co", "is not one of the accepted values"],
  ["alarmEmail", "oncall", "is not an e-mail address"],
  ["qpsAlarmThreshold", "0", "is out of range (0, 1000000]"],
  ["qpsAlarmThreshold", "-5", "is not a number"],
  ["replicaLagAlarmSeconds", "1.5", "is not a whole number"],
  ["replicaLagAlarmSeconds", "0", "is out of range [1, 86400]"],
  ["lbServerTimeoutSeconds", "1.5", "is not a whole number"],
  ["lbServerTimeoutSeconds", "4", "is out of range [5, 3600]"],
  ["lbServerTimeoutSeconds", "3601", "is out of range [5, 3600]"],
  ["maxBodyMiB", "0", "is out of range [1, 1024]"],
  ["maxBodyMiB", "10m", "is not a whole number"],
  ["rateLimitPerClient", "-1", "is not a whole number"],
  ["rateLimitPerClient", "100.5", "is not a whole number"],
  ["rateLimitPerClient", "100/s", "is not a whole number"],
  ["rateLimitPerClient", "1000001", "is out of range [0, 1000000]"],
  ["cloudWatchAgentUrl", "http://example.com/agent.deb", "is not an https:// URL"],
  ["cloudWatchAgentUrl", "https://example.com/agent.rpm", "is not the URL of a .deb package"],
  ["datadogRepoUrl", "apt.datadoghq.com", "is not a URL"],
  ["tags", "Environment=dev", "is not an object"],
  ["tags", '["dev"]', "is not an object"],
  ["tags", '{"Role": "web"}', "is not a valid tag set: Role is set by webstack"],
  // On every resource, it would put the root volumes in the snapshots too.
  ["tags", '{"Snapshots": "webstack-dev"}', "is not a valid tag set: Snapshots is set by webstack"],
  ["tags", '{"aws:owner": "x"}', 'is not a valid tag set: key "aws:owner" is not a valid tag key'],
  [
    "tags",
    '{"Owner": 5}',
    "is not a valid tag set: value of Owner is not a tag value (a string of at most 256 characters)",
  ],
  ["appSource", "app\u0000", "holds a NUL character"],
  ["appModule", "app", "is not module.path:callable"],
  ["appModule", "shop-web:app", "is not module.path:callable"],
  ["appModule", "shop.:app", "is not module.path:callable"],
  ["appModule", "shop:app()", "is not module.path:callable"],
  ["appEnv", "SHOP_CURRENCY=EUR", "is not an object"],
  ["appEnv", '["EUR"]', "is not an object"],
  [
    "appEnv",
    '{"shop_currency": "EUR"}',
    'is not a valid set of variables: "shop_currency" is not an upper-case name ([A-Z][A-Z0-9_]*)',
  ],
  [
    "appEnv",
    '{"DB_HOST": "x", "WEBSTACK_NODE": "x", "AWS_REGION": "x", "GUNICORN_CMD_ARGS": "x"}',
    "is not a valid set of variables: DB_HOST starts with DB_, which webstack keeps for itself; " +
      "WEBSTACK_NODE starts with WEBSTACK_, which webstack keeps for itself; " +
      "AWS_REGION starts with AWS_, which webstack keeps for itself; " +
      "GUNICORN_CMD_ARGS starts with GUNICORN_, which webstack keeps for itself",
  ],
  [
    "appEnv",
    '{"PYTHONPATH": "/tmp"}',
    "is not a valid set of variables: PYTHONPATH is the process's own and cannot be set",
  ],
  [
    "appEnv",
    '{"SHOP_WORKERS": 4}',
    "is not a valid set of variables: the value of SHOP_WORKERS is not a string of 0 to 4096 characters without NUL",
  ],
  [
    "appEnv",
    JSON.stringify(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`V${i}`, "x"]))),
    "is not a valid set of variables: more than 50 variables",
  ],
  ["releaseCommand", "python -m shop.migrate\npython -m shop.seed", "holds a line break or NUL"],
  ["releaseCommand", "x".repeat(1001), "is longer than 1000 characters"],
];

describe("rejected values", () => {
  test.each(REJECTED)("%s = %j: %s", (key, value, what) => {
    const problems = problemsOf(withKeys({ [key]: value }));
    expect(problems).toHaveLength(1);
    // Names the key, shows the value, says what is wrong and what is accepted.
    expect(problems[0]).toBe(
      `webstack:${key}: ${JSON.stringify(value)} ${what}; expected ${CONFIG_KEYS[key].accepted}`,
    );
  });

  test("datadogApiKey: a malformed key is rejected without echoing it", () => {
    const bad = "not-a-datadog-key";
    const problems = problemsOf(withKeys({ datadog: "true", datadogApiKey: bad }), [
      "webstack:datadogApiKey",
    ]);
    expect(problems).toEqual([
      "webstack:datadogApiKey: the value (hidden) is not a Datadog API key; expected " +
        CONFIG_KEYS.datadogApiKey.accepted,
    ]);
    expect(problems.join("\n")).not.toContain(bad);
  });

  test("appSecrets: bad names are named, values never echoed", () => {
    const value = "sk_live_do-not-print";
    const problems = problemsOf(
      withKeys({ appSecrets: JSON.stringify({ DB_TOKEN: value, SHOP_KEY: "", PATH: value }) }),
      ["webstack:appSecrets"],
    );
    expect(problems).toEqual([
      "webstack:appSecrets: the value (hidden) is not a valid set of variables: " +
        "DB_TOKEN starts with DB_, which webstack keeps for itself; " +
        "the value of SHOP_KEY is not a string of 1 to 4096 characters without NUL; " +
        "PATH is the process's own and cannot be set; expected " +
        CONFIG_KEYS.appSecrets.accepted,
    ]);
    expect(problems.join("\n")).not.toContain(value);
  });

  test("appSecrets in plain text is refused, and not echoed", () => {
    expect(problemsOf(withKeys({ appSecrets: '{"SHOP_KEY": "k1"}' }), [])).toEqual([
      "webstack:appSecrets: stored in plain text (value hidden); store it encrypted with " +
        "pulumi config set --secret appSecrets <value>",
    ]);
  });

  test("every key has at least one rejected value", () => {
    const covered = new Set<string>([
      ...REJECTED.map(([key]) => key),
      "datadogApiKey",
      "appSecrets",
    ]);
    expect([...covered].sort()).toEqual(Object.keys(CONFIG_KEYS).sort());
  });
});

describe("accepted values", () => {
  test.each([
    ["domain", "xn--bcher-kva.example", "xn--bcher-kva.example"],
    ["domain", "a.b.c.example.co", "a.b.c.example.co"],
    ["dbEngine", "mysql", "mysql"],
    ["database", "replication", "replication"],
    ["database", "galera", "galera"],
    ["database", "rds", "rds"],
    ["rdsInstanceClass", "db.m7g.2xlarge", "db.m7g.2xlarge"],
    ["rdsInstanceClass", "db.r6gd.xlarge", "db.r6gd.xlarge"],
    ["rdsInstanceClass", "db.m6i.metal", "db.m6i.metal"],
    ["lbInstanceType", "m7i-flex.large", "m7i-flex.large"],
    ["appInstanceType", "c7gn.xlarge", "c7gn.xlarge"],
    ["lbAmi", "ami-12345678", "ami-12345678"],
    ["appAmi", "ami-0123456789abcdef0", "ami-0123456789abcdef0"],
    ["vpcCidr", "172.16.0.0/20", "172.16.0.0/20"],
    ["vpcCidr", "192.168.10.0/24", "192.168.10.0/24"],
    ["vpcEndpoints", "true", true],
    ["protectData", "false", false],
    ["dataVolumeGiB", "10", 10],
    ["dataVolumeGiB", "16384", 16384],
    ["logRetentionDays", "3653", 3653],
    ["backupRetentionDays", "1", 1],
    ["backupRetentionDays", "365", 365],
    ["qpsAlarmThreshold", "12.5", 12.5],
    ["replicaLagAlarmSeconds", "86400", 86400],
    ["lbServerTimeoutSeconds", "5", 5],
    ["lbServerTimeoutSeconds", "3600", 3600],
    ["maxBodyMiB", "1024", 1024],
    ["rateLimitPerClient", "0", 0],
    ["rateLimitPerClient", "1000000", 1000000],
    ["datadogSite", "ddog-gov.com", "ddog-gov.com"],
    ["appSource", "/srv/teams/shop", "/srv/teams/shop"],
    ["appModule", "shop.wsgi:application", "shop.wsgi:application"],
    ["appModule", "_private.app_2:make_app", "_private.app_2:make_app"],
    ["appEnv", '{"SHOP_CURRENCY": "EUR", "A": ""}', { SHOP_CURRENCY: "EUR", A: "" }],
    [
      "releaseCommand",
      "python -m shop.migrate && echo done",
      "python -m shop.migrate && echo done",
    ],
    [
      "tags",
      '{"Environment": "prod", "Cost Center": "web/1"}',
      { Environment: "prod", "Cost Center": "web/1" },
    ],
  ])("%s = %j", (key, value, expected) => {
    expect(parseConfig(withKeys({ [key]: value }))[key as ConfigKey]).toEqual(expected);
  });

  test("keys of other namespaces are not webstack's business", () => {
    expect(() =>
      parseConfig({ ...MINIMAL, "aws:region": "eu-west-1", "pulumi:tags": "{}" }),
    ).not.toThrow();
  });
});

describe("all problems at once", () => {
  test("five bad keys give five problems in one error", () => {
    const problems = problemsOf({
      "webstack:domain": "nope",
      "webstack:vpcCidr": "10.0.0.0/8",
      "webstack:dbEngine": "oracle",
      "webstack:logRetentionDays": "2",
      "webstack:certficate": "acm",
    });
    expect(problems.map((p) => p.split(":").slice(0, 2).join(":"))).toEqual([
      "webstack:certficate",
      "webstack:domain",
      "webstack:dbEngine",
      "webstack:vpcCidr",
      "webstack:logRetentionDays",
    ]);
  });

  test("a bad backupRetentionDays is reported with the other problems, naming its accepted form", () => {
    expect(problemsOf({ "webstack:domain": "nope", "webstack:backupRetentionDays": "0" })).toEqual([
      expect.stringMatching(/^webstack:domain: /),
      'webstack:backupRetentionDays: "0" is out of range [1, 365]; ' +
        "expected a whole number of days from 1 to 365",
    ]);
  });

  test("a bad appNodeCount is reported with the other problems, naming its accepted form", () => {
    expect(
      problemsOf({
        "webstack:domain": "nope",
        "webstack:appNodeCount": "1",
        "webstack:database": "aurora",
      }),
    ).toEqual([
      expect.stringMatching(/^webstack:domain: /),
      expect.stringMatching(/^webstack:database: /),
      'webstack:appNodeCount: "1" is out of range [2, 16]; expected a whole number from 2 to 16',
    ]);
  });

  test.each(["2", "3", "16"])("appNodeCount %s is taken as a number", (count) => {
    expect(parseConfig(withKeys({ appNodeCount: count })).appNodeCount).toBe(Number(count));
  });

  test("the app's keys and its directory: every problem in one error", () => {
    const problems = problemsOf(
      withKeys({
        appModule: "shop.wsgi:application",
        appEnv: '{"db_url": "x"}',
        releaseCommand: "a\nb",
        appSource: "shop",
      }),
      undefined,
      {
        path: "/work/shop",
        isDirectory: true,
        files: ["requirements.txt", "shop/__init__.py"],
        unsupported: ["static/logo.png"],
        requirements: "flask==3.1\n",
        archiveBytes: 101 * 1024 * 1024,
      },
    );
    expect(problems.map((p) => p.split(":").slice(0, 2).join(":"))).toEqual([
      "webstack:appEnv",
      "webstack:releaseCommand",
      "webstack:appModule",
      "webstack:appSource",
      "webstack:appSource",
      "webstack:appSource",
    ]);
  });

  test("the error message lists every problem", () => {
    expect(() => parseConfig({ "webstack:domain": "x", "webstack:datadog": "maybe" })).toThrow(
      /invalid webstack configuration \(2 problems\):\n  - webstack:domain: .*\n  - webstack:datadog: /,
    );
  });
});

describe("unknown keys", () => {
  test.each([
    ["certficate", "did you mean webstack:certificate?"],
    ["Domain", "did you mean webstack:domain?"],
    ["vpcCIDR", "did you mean webstack:vpcCidr?"],
    ["datadogApiKy", "did you mean webstack:datadogApiKey?"],
    ["backupRetentionDay", "did you mean webstack:backupRetentionDays?"],
  ])("%s suggests the closest key", (key, suggestion) => {
    expect(problemsOf({ ...MINIMAL, [`webstack:${key}`]: "x" })).toEqual([
      `webstack:${key}: unknown key; ${suggestion}`,
    ]);
  });

  test("a key far from every known key lists the known keys", () => {
    const [problem] = problemsOf({ ...MINIMAL, "webstack:frobnicate": "x" });
    expect(problem).toBe(
      `webstack:frobnicate: unknown key; known keys: ${Object.keys(CONFIG_KEYS).join(", ")}`,
    );
  });
});

describe("misspelt namespaces", () => {
  test.each([
    ["webstak:vpcCidr", "webstack:vpcCidr"],
    ["Webstack:protectData", "webstack:protectData"],
    ["wepstack:datadog", "webstack:datadog"],
    ["webstack_:domain", "webstack:domain"],
    ["webstak:vpcCIDR", "webstack:vpcCidr"],
  ])("%s is an error suggesting %s, not a default used silently", (key, meant) => {
    expect(problemsOf({ ...MINIMAL, [key]: "x" })).toEqual([
      `${key}: unknown namespace; did you mean ${meant}?`,
    ]);
  });

  test.each([
    ["aws:region", "eu-west-1"],
    ["pulumi:tags", '{"Team": "web"}'],
    ["pulumi:disable-default-providers", '["*"]'],
    ["tls:proxy", "{}"],
    ["random:anything", "x"],
    // Near webstack's namespace, but naming nothing webstack has: some other package's key.
    ["websock:timeout", "30"],
    // A webstack key name under a namespace far from webstack's.
    ["aws:domain", "x"],
  ])("%s belongs to another namespace and is left alone", (key, value) => {
    expect(() => parseConfig({ ...MINIMAL, [key]: value })).not.toThrow();
  });
});

describe("cross-key rules", () => {
  test.each([
    ["www.foobar.com", "foobar.com"],
    ["foobar.com", "foobar.com"],
    ["a.b.foobar.com", "b.foobar.com"],
  ])("domain %s lies in zone %s", (domain, zone) => {
    expect(parseConfig({ "webstack:domain": domain, "webstack:hostedZone": zone }).hostedZone).toBe(
      zone,
    );
  });

  test.each([
    ["www.evilfoobar.com", "foobar.com"],
    ["foobar.com", "www.foobar.com"],
  ])("domain %s does not lie in zone %s", (domain, zone) => {
    expect(problemsOf({ "webstack:domain": domain, "webstack:hostedZone": zone })).toEqual([
      `webstack:hostedZone: "${zone}" does not contain webstack:domain "${domain}"; ` +
        "expected the zone's name or a parent of the domain",
    ]);
  });

  test("letsencrypt needs an ACME e-mail", () => {
    expect(problemsOf(withKeys({ certificate: "letsencrypt" }))).toEqual([
      "webstack:acmeEmail: missing; webstack:certificate letsencrypt needs an ACME contact e-mail",
    ]);
    expect(
      parseConfig(withKeys({ certificate: "letsencrypt", acmeEmail: "ops@example.com" })).acmeEmail,
    ).toBe("ops@example.com");
  });

  test("letsencrypt with a malformed e-mail reports the e-mail once", () => {
    const problems = problemsOf(withKeys({ certificate: "letsencrypt", acmeEmail: "ops" }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^webstack:acmeEmail: "ops" is not an e-mail address/);
  });

  test("acm needs a hosted zone", () => {
    expect(problemsOf(withKeys({ certificate: "acm" }))).toEqual([
      "webstack:hostedZone: missing; webstack:certificate acm validates the certificate by DNS in a Route53 zone",
    ]);
  });

  test("self-signed needs nothing more", () => {
    expect(parseConfig(withKeys({ certificate: "self-signed" })).certificate).toBe("self-signed");
  });

  test("galera is MariaDB's: with dbEngine mysql it is refused, naming both keys and both ways out", () => {
    expect(problemsOf(withKeys({ database: "galera", dbEngine: "mysql" }))).toEqual([
      "webstack:database: galera is MariaDB's (Debian's galera-4); webstack:dbEngine is \"mysql\"; " +
        "expected webstack:dbEngine mariadb with galera, or webstack:database replication",
    ]);
    expect(parseConfig(withKeys({ database: "galera" }))).toMatchObject({
      database: "galera",
      dbEngine: "mariadb",
    });
    expect(parseConfig(withKeys({ database: "galera", dbEngine: "mariadb" })).database).toBe(
      "galera",
    );
    expect(parseConfig(withKeys({ database: "replication", dbEngine: "mysql" })).database).toBe(
      "replication",
    );
  });

  test("galera with mysql is reported with every other problem in one error; a bad dbEngine only once", () => {
    expect(
      problemsOf(withKeys({ database: "galera", dbEngine: "mysql", certificate: "letsencrypt" })),
    ).toEqual([
      "webstack:acmeEmail: missing; webstack:certificate letsencrypt needs an ACME contact e-mail",
      expect.stringMatching(
        /^webstack:database: galera is MariaDB's .*; webstack:dbEngine is "mysql"; /,
      ),
    ]);
    // An engine that is no engine is its own problem, not also galera's.
    expect(problemsOf(withKeys({ database: "galera", dbEngine: "oracle" }))).toEqual([
      `webstack:dbEngine: "oracle" is not one of the accepted values; expected ${CONFIG_KEYS.dbEngine.accepted}`,
    ]);
  });

  test("rds is MariaDB's: mysql is refused naming both keys", () => {
    expect(problemsOf(withKeys({ database: "rds", dbEngine: "mysql" }))).toEqual([
      'webstack:database: rds is Amazon RDS for MariaDB; webstack:dbEngine is "mysql"; ' +
        "expected webstack:dbEngine mariadb with rds, or webstack:database replication",
    ]);
  });

  test("rds: storage below RDS's gp3 minimum and backups kept longer than RDS keeps them are refused", () => {
    expect(
      problemsOf(withKeys({ database: "rds", dataVolumeGiB: "19", backupRetentionDays: "36" })),
    ).toEqual([
      "webstack:dataVolumeGiB: 19 is below RDS's smallest gp3 storage (20 GiB); expected 20 or more with webstack:database rds",
      "webstack:backupRetentionDays: 36 is more than RDS keeps automated backups; expected 1 to 35 with webstack:database rds",
    ]);
  });

  test("rds at RDS's limits, and the same values with the nodes' own databases, are accepted", () => {
    const limits = { dataVolumeGiB: "20", backupRetentionDays: "35" };
    expect(parseConfig(withKeys({ database: "rds", ...limits })).database).toBe("rds");
    const own = { dataVolumeGiB: "10", backupRetentionDays: "365", dbEngine: "mysql" };
    expect(parseConfig(withKeys(own)).database).toBe("replication");
  });
});

describe("cross-key rules of the app", () => {
  test("a name in both appEnv and appSecrets", () => {
    expect(
      problemsOf(
        withKeys({
          appEnv: '{"SHOP_KEY": "a", "SHOP_MODE": "b"}',
          appSecrets: '{"SHOP_KEY": "s", "SHOP_MODE": "t", "SHOP_TOKEN": "u"}',
        }),
        ["webstack:appSecrets"],
      ),
    ).toEqual([
      "webstack:appSecrets: SHOP_KEY, SHOP_MODE also set in webstack:appEnv; expected each name in one of them only",
    ]);
  });

  test("secret values are wrapped", () => {
    const config = parseConfig(withKeys({ appSecrets: '{"SHOP_KEY": "k1"}' }), {
      secretKeys: new Set(["webstack:appSecrets"]),
    });
    expect(Object.keys(config.appSecrets)).toEqual(["SHOP_KEY"]);
    expect(config.appSecrets.SHOP_KEY).toBeInstanceOf(SecretValue);
    expect(config.appSecrets.SHOP_KEY.reveal()).toBe("k1");
    expect(util.inspect(config)).not.toContain("k1");
  });
});

describe("secrets", () => {
  test("datadog on without an API key says how to set it as a secret", () => {
    expect(problemsOf(withKeys({ datadog: "true" }))).toEqual([
      "webstack:datadogApiKey: missing (required because webstack:datadog is true); expected " +
        `${CONFIG_KEYS.datadogApiKey.accepted}; set it with pulumi config set --secret datadogApiKey <value>`,
    ]);
  });

  test("an API key stored in plain text is refused, and not echoed", () => {
    const problems = problemsOf(withKeys({ datadog: "true", datadogApiKey: API_KEY }), []);
    expect(problems).toEqual([
      "webstack:datadogApiKey: stored in plain text (value hidden); store it encrypted with " +
        "pulumi config set --secret datadogApiKey <value>",
    ]);
  });

  test("an encrypted API key is accepted and stays wrapped", () => {
    const config = parseConfig(withKeys({ datadog: "true", datadogApiKey: API_KEY }), {
      secretKeys: new Set(["webstack:datadogApiKey"]),
    });
    expect(config.datadogApiKey).toBeInstanceOf(SecretValue);
    expect(config.datadogApiKey!.reveal()).toBe(API_KEY);
  });

  test("a secret value prints as [secret] in every form", () => {
    const secret = new SecretValue(API_KEY);
    expect(String(secret)).toBe("[secret]");
    expect(JSON.stringify({ secret })).toBe('{"secret":"[secret]"}');
    expect(util.inspect({ secret })).not.toContain(API_KEY);
    expect(`${secret}`).toBe("[secret]");
  });
});
