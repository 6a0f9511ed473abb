// Shared mock harness: runs the real program under the offline plan's mocks and queries the result.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import YAML from "yaml";
import {
  Plan,
  PlanOptions,
  PlannedResource,
  runPlan,
  DEFAULT_ACCOUNT_ID,
  plannedUserData,
} from "../plan/plan";
import { readStackConfig, stackFile } from "../plan/stackConfig";
import { revealSecrets } from "../plan/secrets";
import { NodeMonitoring } from "../cloud-init/monitoring";
import { ssmAgentPackageUrl } from "../cloud-init/ssmAgent";
import { logSources } from "../cloud-init/logSources";
import { CONFIG_KEYS, DbEngine } from "../model/config";
import { logGroupName } from "../model/naming";
import { DatabaseMode, NodeName, buildTopology } from "../model/topology";

export const PROJECT_DIR = path.resolve(__dirname, "..");

/**
 * How `npm run lab` starts the lab's CLI (package.json, after the PATH its tools need, which
 * `npm run test:lab` has set too): node under the project's TypeScript loader.
 */
export const LAB_CLI = [
  "--require",
  path.join(PROJECT_DIR, "plan", "loader.js"),
  path.join(PROJECT_DIR, "lab", "cli.ts"),
];

/** The lab's own CLI (`npm run lab -- COMMAND`), as a user runs it; its status and all it printed. */
export function labCli(command: string | string[], env: Record<string, string> = {}) {
  const args = typeof command === "string" ? [command] : command;
  const r = spawnSync(process.execPath, [...LAB_CLI, ...args], {
    cwd: PROJECT_DIR,
    encoding: "utf8",
    timeout: 25 * 60_000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * Room for the whole plan on stdout: a stack's JSON, every bundle's text in it, passes 1 MiB
 * (spawnSync's default buffer, past which it kills the child).
 */
export const PLAN_OUTPUT_BYTES = 64 * 1024 * 1024;

/** `npm run plan -- ARGS` as a reviewer runs it: its exit status and what it printed. */
export function planCli(...args: string[]) {
  const run = spawnSync("npm", ["run", "-s", "plan", "--", ...args], {
    cwd: PROJECT_DIR,
    encoding: "utf8",
    timeout: 60_000,
    maxBuffer: PLAN_OUTPUT_BYTES,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Resource type tokens the tests look for. */
export const T = {
  stack: "pulumi:pulumi:Stack",
  vpc: "aws:ec2/vpc:Vpc",
  subnet: "aws:ec2/subnet:Subnet",
  route: "aws:ec2/route:Route",
  routeTable: "aws:ec2/routeTable:RouteTable",
  routeTableAssociation: "aws:ec2/routeTableAssociation:RouteTableAssociation",
  internetGateway: "aws:ec2/internetGateway:InternetGateway",
  natGateway: "aws:ec2/natGateway:NatGateway",
  eip: "aws:ec2/eip:Eip",
  flowLog: "aws:ec2/flowLog:FlowLog",
  defaultSecurityGroup: "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
  securityGroup: "aws:ec2/securityGroup:SecurityGroup",
  vpcEndpoint: "aws:ec2/vpcEndpoint:VpcEndpoint",
  legacySecurityGroupRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
  ingressRule: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egressRule: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  logGroup: "aws:cloudwatch/logGroup:LogGroup",
  ssmDocument: "aws:ssm/document:Document",
  role: "aws:iam/role:Role",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  rolePolicyAttachment: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
  instanceProfile: "aws:iam/instanceProfile:InstanceProfile",
  kmsKey: "aws:kms/key:Key",
  kmsAlias: "aws:kms/alias:Alias",
  instance: "aws:ec2/instance:Instance",
  volume: "aws:ebs/volume:Volume",
  volumeAttachment: "aws:ec2/volumeAttachment:VolumeAttachment",
  rdsInstance: "aws:rds/instance:Instance",
  rdsParameterGroup: "aws:rds/parameterGroup:ParameterGroup",
  rdsSubnetGroup: "aws:rds/subnetGroup:SubnetGroup",
  dlmPolicy: "aws:dlm/lifecyclePolicy:LifecyclePolicy",
  ssmParameter: "aws:ssm/parameter:Parameter",
  bucket: "aws:s3/bucket:Bucket",
  bucketObject: "aws:s3/bucketObjectv2:BucketObjectv2",
  bucketPublicAccessBlock: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  bucketOwnershipControls: "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
  bucketVersioning: "aws:s3/bucketVersioning:BucketVersioning",
  bucketEncryption:
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  bucketLifecycle: "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
  bucketPolicy: "aws:s3/bucketPolicy:BucketPolicy",
  nodeImage: "webstack:images:NodeImage",
  networkInterface: "aws:ec2/networkInterface:NetworkInterface",
  eipAssociation: "aws:ec2/eipAssociation:EipAssociation",
  route53Record: "aws:route53/record:Record",
  acmCertificate: "aws:acm/certificate:Certificate",
  acmValidation: "aws:acm/certificateValidation:CertificateValidation",
  randomPassword: "random:index/randomPassword:RandomPassword",
  randomId: "random:index/randomId:RandomId",
  privateKey: "tls:index/privateKey:PrivateKey",
  selfSignedCert: "tls:index/selfSignedCert:SelfSignedCert",
  certRequest: "tls:index/certRequest:CertRequest",
  locallySignedCert: "tls:index/locallySignedCert:LocallySignedCert",
  snsTopic: "aws:sns/topic:Topic",
  snsSubscription: "aws:sns/topicSubscription:TopicSubscription",
  metricAlarm: "aws:cloudwatch/metricAlarm:MetricAlarm",
  logMetricFilter: "aws:cloudwatch/logMetricFilter:LogMetricFilter",
  dashboard: "aws:cloudwatch/dashboard:Dashboard",
} as const;

/** The VPC range of every stack planConfig plans without a vpcCidr (the config's default). */
export const DEFAULT_VPC_CIDR = String(CONFIG_KEYS.vpcCidr.default);

/** The address plan of such a stack: where tests take the nodes' addresses and names from. */
export const TOPOLOGY = buildTopology(DEFAULT_VPC_CIDR);

/** dev's address plan, from the range in its stack file. */
export const DEV_TOPOLOGY = buildTopology(
  readStackConfig(stackFile(PROJECT_DIR, "dev")).values["webstack:vpcCidr"],
);

/** The account every plan here runs in, unless a test names another. */
export const ACCOUNT_ID = DEFAULT_ACCOUNT_ID;

/** Plans a stack from its Pulumi.<stack>.yaml, with optional `key=value` overrides. */
export function planStack(stack: string, overrides: string[] = []): Promise<Plan> {
  const config = readStackConfig(stackFile(PROJECT_DIR, stack), overrides);
  return runPlan({
    stack,
    config: config.values,
    secretKeys: config.secretKeys,
    accountId: ACCOUNT_ID,
  });
}

/** Plans a stack from a config map (keys without a namespace are webstack's), in a mocked account. */
export function planConfig(
  config: Record<string, string>,
  options: Pick<PlanOptions, "override" | "imageRelease"> & {
    stack?: string;
    secretKeys?: string[];
    accountId?: string;
  } = {},
): Promise<Plan> {
  const values = Object.fromEntries(
    Object.entries({ "aws:region": "eu-west-1", ...config }).map(([k, v]) => [
      k.includes(":") ? k : `webstack:${k}`,
      v,
    ]),
  );
  return runPlan({
    stack: options.stack ?? "test",
    config: values,
    secretKeys: options.secretKeys,
    accountId: options.accountId ?? ACCOUNT_ID,
    override: options.override,
    imageRelease: options.imageRelease,
  });
}

/** Every resource of a type, secrets revealed. */
export function ofType(plan: Plan, type: string): PlannedResource[] {
  return revealSecrets(plan.resources.filter((r) => r.type === type));
}

/** The one resource of a type and name; fails the test when it is missing. */
export function one(plan: Plan, type: string, name: string): PlannedResource {
  const found = ofType(plan, type).filter((r) => r.name === name);
  if (found.length !== 1)
    throw new Error(`expected one ${type} named ${name}, found ${found.length}`);
  return found[0];
}

/** One entry of a cloud-config's `write_files`. */
export interface WrittenFile {
  readonly path: string;
  readonly content: string;
  readonly permissions?: string;
  readonly owner?: string;
}

/** A node's cloud-config document, as cloud-init parses it (the keys the tests read). */
export interface CloudConfigDocument {
  readonly write_files: WrittenFile[];
  readonly packages?: string[];
  readonly bootcmd?: (string | string[])[];
  readonly runcmd?: (string | string[])[];
  readonly [key: string]: unknown;
}

/** One file of a bundle, as the node's applier reads it (owner filled in). */
export interface PlannedBundleFile {
  readonly path: string;
  readonly content: string;
  readonly mode: string;
  readonly owner: string;
  readonly validate?: string[];
  readonly onChange?: string[];
}

/** A bundle's `app`: the release, where it is, its WSGI callable and its release command's part. */
export interface PlannedBundleApp {
  readonly release: string;
  readonly bucket: string;
  readonly key: string;
  /** module.path:callable, the config's appModule. */
  readonly module: string;
  /** The app's sandbox: the preflight and pip run in it. */
  readonly sandbox: string[];
  readonly command?: { run: string; status: string };
  readonly awaitCommand?: { node: string; status: string };
}

/** A node's bundle, parsed from the object the plan uploads (issue 17's format 1). */
export interface PlannedBundle {
  readonly format: number;
  readonly node: string;
  readonly release: string;
  readonly after: { node: string; status: string }[];
  /** The Debian packages the node's applier installs where missing (its bootstrap's list). */
  readonly packages: string[];
  readonly files: PlannedBundleFile[];
  readonly firstApply: string[][];
  /** The app nodes' release (issue 18). */
  readonly app?: PlannedBundleApp;
  readonly healthCheck?: string[];
}

/** The bucket object holding a node's current bundle. */
export function bundleObject(plan: Plan, node: string): PlannedResource {
  return one(plan, T.bucketObject, `bundles-${node}`);
}

/** A planned node's bundle: the object's exact bytes, parsed. */
export function bundleOf(plan: Plan, node: string): PlannedBundle {
  return JSON.parse(String(bundleObject(plan, node).inputs.content)) as PlannedBundle;
}

/** One file of a planned node's bundle; fails the test when it is missing. */
export function bundleEntry(plan: Plan, node: string, at: string): PlannedBundleFile {
  return entryOf(bundleOf(plan, node), at);
}

/** The entry of a bundle for one path; fails the test when it is missing. */
export function entryOf(bundle: PlannedBundle, at: string): PlannedBundleFile {
  const found = bundle.files.find((f) => f.path === at);
  if (!found) throw new Error(`no ${at} in ${bundle.node}'s bundle`);
  return found;
}

/** A file's content in a planned node's bundle; fails the test when it is missing. */
export function bundleFile(plan: Plan, node: string, at: string): string {
  return bundleEntry(plan, node, at).content;
}

/**
 * What a node runs after its first apply, as one cloud-config: its bootstrap with the bundle's
 * files added to write_files (for the checks that read documents: schema, the servers' own checks).
 */
export function effectiveDocument(userData: string, bundle: PlannedBundle): string {
  const doc = YAML.parse(userData) as CloudConfigDocument;
  const bundleFiles = bundle.files.map((f) => ({
    path: f.path,
    content: f.content,
    permissions: f.mode,
    ...(f.owner !== "root:root" ? { owner: f.owner } : {}),
  }));
  return `#cloud-config\n${YAML.stringify(
    { ...doc, write_files: [...doc.write_files, ...bundleFiles] },
    { lineWidth: 0, blockQuote: "literal" },
  )}`;
}

/** A planned node's user-data as text, decoded as EC2 hands it to cloud-init. */
export function userDataText(plan: Plan, node: string): string {
  return plannedUserData(one(plan, T.instance, `${node}-instance`));
}

/** A planned node's user-data, parsed. */
export function userDataDocument(plan: Plan, node: string): CloudConfigDocument {
  return YAML.parse(userDataText(plan, node)) as CloudConfigDocument;
}

/** The entry of a document's `write_files` for one path; fails the test when it is missing. */
export function writtenFile(doc: CloudConfigDocument, at: string): WrittenFile {
  const found = doc.write_files.find((f) => f.path === at);
  if (!found) throw new Error(`no ${at} in the document's write_files`);
  return found;
}

/** A systemd unit that a bundle's first apply enables and starts. */
export interface StartedUnit {
  readonly unit: string;
  /** Whether the first apply waits for the start to finish (no `--no-block`). */
  readonly waits: boolean;
  /** Whether it is started before the node's boot script runs. */
  readonly beforeBootScript: boolean;
}

/** What a bundle's first apply does at first boot, read as behaviour rather than as argv. */
export interface BootSequence {
  /** Units enabled and started (`systemctl enable --now`), in order. */
  readonly started: StartedUnit[];
  /** The node's boot script: the one step that runs a program of its own (not systemctl). */
  readonly bootScript: string;
  /** The last step. */
  readonly last: string;
}

export function bootSequence(bundle: {
  readonly firstApply: readonly (readonly string[])[];
}): BootSequence {
  const commands = bundle.firstApply;
  const scripts = commands.filter((argv) => argv[0] !== "systemctl");
  if (scripts.length !== 1) throw new Error(`expected one boot script, found ${scripts.length}`);
  const at = commands.indexOf(scripts[0]);
  const started = commands.flatMap((argv, i) => {
    if (argv[0] !== "systemctl" || argv[1] !== "enable" || !argv.includes("--now")) return [];
    const units = argv.slice(2).filter((a) => !a.startsWith("--"));
    const waits = !argv.includes("--no-block");
    return units.map((unit) => ({ unit, waits, beforeBootScript: i < at }));
  });
  return {
    started,
    bootScript: scripts[0].join(" "),
    last: commands[commands.length - 1]?.join(" ") ?? "",
  };
}

/** An env file's values (renderEnvFile's `KEY=value` lines, unquoted), by key. */
export function envFileValues(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

/** The resource a given id belongs to (ids are what inputs reference). */
export function byId(plan: Plan, id: unknown): PlannedResource {
  const found = plan.resources.filter((r) => r.id !== undefined && r.id === id);
  if (found.length !== 1)
    throw new Error(`expected one resource with id ${String(id)}, found ${found.length}`);
  return found[0];
}

/** A security-group rule of a plan as one comparable row: "group protocol from-to peer". */
export function ruleRow(plan: Plan, rule: { inputs: Record<string, unknown> }): string {
  const groupOf = (id: unknown) => byId(plan, id).name.replace(/^firewalls-/, "");
  const i = rule.inputs;
  const peer =
    i.cidrIpv4 !== undefined ? String(i.cidrIpv4) : `sg:${groupOf(i.referencedSecurityGroupId)}`;
  return `${groupOf(i.securityGroupId)} ${String(i.ipProtocol)} ${String(i.fromPort)}-${String(i.toPort)} ${peer}`;
}

/**
 * Every value the mocks generated as a secret (passwords, private keys in each encoding), by its
 * distinctive part: a PEM's body line, or the whole value.
 */
export function generatedSecrets(plan: Plan): string[] {
  const passwords = ofType(plan, T.randomPassword).map((r) => String(r.outputs.result));
  const keys = ofType(plan, T.privateKey).flatMap((r) =>
    [r.outputs.privateKeyPem, r.outputs.privateKeyPemPkcs8, r.outputs.privateKeyOpenssh].map(
      String,
    ),
  );
  return [...passwords, ...keys].map(
    (secret) => secret.split("\n").find((l) => l.startsWith("mock-secret")) ?? secret,
  );
}

/** One thing a policy document allows: to whom (key and trust policies), which actions, on what, when. */
export interface Grant {
  /** `AWS:<arn>` or `Service:<name>`; absent in an identity policy, which grants its holder. */
  readonly principal?: string;
  readonly actions: string[];
  readonly resources?: string[];
  readonly condition?: unknown;
}

const PLAIN_ALLOW_KEYS = ["Sid", "Effect", "Principal", "Action", "Resource", "Condition"];

/**
 * What a policy document (JSON text or object) allows: a row per statement and principal, with
 * actions and resources sorted, whatever the statements' ids, order or grouping. Anything but a
 * plain Allow (a Deny, NotAction, NotResource, NotPrincipal) throws rather than being passed over.
 */
export function grantsOf(policy: unknown): Grant[] {
  const doc = (typeof policy === "string" ? JSON.parse(policy) : policy) as {
    Statement: Record<string, unknown>[];
  };
  const sorted = (value: unknown) => [value].flat().map(String).sort();
  const rows = doc.Statement.flatMap((s): Grant[] => {
    if (s.Effect !== "Allow" || Object.keys(s).some((k) => !PLAIN_ALLOW_KEYS.includes(k)))
      throw new Error(`grantsOf reads plain Allow statements only: ${JSON.stringify(s)}`);
    const principals =
      s.Principal === undefined
        ? [undefined]
        : typeof s.Principal === "string"
          ? [s.Principal]
          : Object.entries(s.Principal as Record<string, unknown>).flatMap(([kind, names]) =>
              sorted(names).map((name) => `${kind}:${name}`),
            );
    return principals.map((principal) => ({
      ...(principal !== undefined && { principal }),
      actions: sorted(s.Action),
      ...(s.Resource !== undefined && { resources: sorted(s.Resource) }),
      ...(s.Condition !== undefined && { condition: s.Condition }),
    }));
  });
  return rows.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

/** Whether a command runs here (for tests that need a machine tool). */
export function commandWorks(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: "ignore" }).status === 0;
}

export const IS_ROOT = process.getuid?.() === 0;

/** A test that needs gpg (scripts/setup.sh installs it). */
export const withGpg: jest.It = testNeeding(
  "gpg (scripts/setup.sh installs it)",
  commandWorks("gpg", ["--version"]),
);

/** An armored public key as gpg shows it (`--with-colons` lines), in a throwaway home. */
export function shownKey(armored: string): string[] {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-key-"));
  try {
    const shown = spawnSync("gpg", ["--batch", "--with-colons", "--show-keys", "-"], {
      input: armored,
      env: { ...process.env, GNUPGHOME: home },
    });
    return String(shown.stdout).split("\n");
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

/**
 * A one-day self-signed ECDSA P-256 certificate for `name`, made by openssl in `dir` (key.pem,
 * cert.pem); `subjectAltName` as openssl takes it ("DNS:a,IP:10.0.0.1").
 */
export function selfSignedCertificate(
  dir: string,
  name: string,
  subjectAltName: string,
): { keyFile: string; certFile: string } {
  const [keyFile, certFile] = ["key.pem", "cert.pem"].map((f) => path.join(dir, f));
  const r = spawnSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-days", "1", "-subj", `/CN=${name}`, "-addext", `subjectAltName=${subjectAltName}`],
      ...["-keyout", keyFile, "-out", certFile],
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { keyFile, certFile };
}

/**
 * `test` when what a test needs is here. Otherwise: skipped with a note on a developer's machine,
 * but failed under CI, where .ci/run (scripts/setup.sh) provides everything.
 */
export function testNeeding(what: string, available: boolean): jest.It {
  if (available) return test;
  if (process.env.CI) {
    const fail = () => {
      throw new Error(`${what} is missing: .ci/run (scripts/setup.sh) provides it`);
    };
    const failing = ((name: string) => test(name, fail)) as unknown as jest.It;
    (failing as unknown as { each: unknown }).each =
      (table: readonly unknown[]) => (name: string) =>
        test.each(table as unknown[][])(name, fail);
    return failing;
  }
  console.warn(`skipping tests that need ${what}`);
  return test.skip;
}

let labTestOrSkip: jest.It | undefined;

/** `test` for the lab's tests, which need root and Linux network namespaces (checked on first use). */
export function labTest(name: string, fn: jest.ProvidesCallback, timeout?: number): void {
  labTestOrSkip ??= testNeeding(
    "root and Linux network namespaces",
    IS_ROOT && commandWorks("ip", ["netns", "list"]),
  );
  labTestOrSkip(name, fn, timeout);
}

/** The SSM agent's package as the program names it for a stack in eu-west-1. */
export const TEST_SSM_AGENT_URL = ssmAgentPackageUrl({
  region: "eu-west-1",
  dnsSuffix: "amazonaws.com",
});

/** A node's monitoring values as the program passes them to a renderer (stack "t", no Datadog). */
export function testMonitoring(
  node: NodeName,
  engine: DbEngine = "mariadb",
  cluster: DatabaseMode = "replication",
): NodeMonitoring {
  return {
    logGroups: Object.fromEntries(
      logSources(TOPOLOGY.nodes[node].role, cluster).map((s) => [
        s.key,
        logGroupName("t", node, s.key),
      ]),
    ),
    cloudWatchAgentUrl: "https://agent.example.com/{arch}/amazon-cloudwatch-agent.deb",
    engine,
    cluster,
  };
}
