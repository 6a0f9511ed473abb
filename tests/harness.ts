// Shared mock harness: runs the real program under the offline plan's mocks and queries the result.
import { spawnSync } from "child_process";
import * as path from "path";
import YAML from "yaml";
import { decodeUserData } from "../cloud-init/userDataEncoding";
import { Plan, PlannedResource, runPlan } from "../plan/plan";
import { readStackConfig, stackFile } from "../plan/stackConfig";
import { revealSecrets } from "../plan/secrets";
import { NodeMonitoring, logSources } from "../cloud-init/monitoring";
import { DbEngine } from "../model/config";
import { logGroupName } from "../model/naming";
import { NodeName } from "../model/topology";

export const PROJECT_DIR = path.resolve(__dirname, "..");

/** The lab's own CLI (`npm run lab -- COMMAND`), as a user runs it; its status and all it printed. */
export function labCli(command: string, env: Record<string, string> = {}) {
  const r = spawnSync("npx", ["tsx", path.join(PROJECT_DIR, "lab", "cli.ts"), command], {
    cwd: PROJECT_DIR,
    encoding: "utf8",
    timeout: 25 * 60_000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
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
  legacySecurityGroupRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
  ingressRule: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egressRule: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  logGroup: "aws:cloudwatch/logGroup:LogGroup",
  role: "aws:iam/role:Role",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  rolePolicyAttachment: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
  instanceProfile: "aws:iam/instanceProfile:InstanceProfile",
  kmsKey: "aws:kms/key:Key",
  kmsAlias: "aws:kms/alias:Alias",
  instance: "aws:ec2/instance:Instance",
  volume: "aws:ebs/volume:Volume",
  volumeAttachment: "aws:ec2/volumeAttachment:VolumeAttachment",
  ssmParameter: "aws:ssm/parameter:Parameter",
  networkInterface: "aws:ec2/networkInterface:NetworkInterface",
  eipAssociation: "aws:ec2/eipAssociation:EipAssociation",
  route53Record: "aws:route53/record:Record",
  acmCertificate: "aws:acm/certificate:Certificate",
  acmValidation: "aws:acm/certificateValidation:CertificateValidation",
  randomPassword: "random:index/randomPassword:RandomPassword",
  privateKey: "tls:index/privateKey:PrivateKey",
  selfSignedCert: "tls:index/selfSignedCert:SelfSignedCert",
  certRequest: "tls:index/certRequest:CertRequest",
  locallySignedCert: "tls:index/locallySignedCert:LocallySignedCert",
} as const;

/** Plans a stack from its Pulumi.<stack>.yaml, with optional `key=value` overrides. */
export function planStack(stack: string, overrides: string[] = []): Promise<Plan> {
  const config = readStackConfig(stackFile(PROJECT_DIR, stack), overrides);
  return runPlan({ stack, config: config.values, secretKeys: config.secretKeys });
}

/** Plans a stack from a config map; keys without a namespace are webstack's. */
export function planConfig(
  config: Record<string, string>,
  options: { stack?: string; secretKeys?: string[] } = {},
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

/** A file a planned node's user-data writes (`write_files`); fails the test when it is missing. */
export function userDataFile(plan: Plan, node: string, at: string): string {
  const doc = YAML.parse(decodeUserData(one(plan, T.instance, `${node}-instance`).inputs)) as {
    write_files: { path: string; content: string }[];
  };
  const found = doc.write_files.find((f) => f.path === at);
  if (!found) throw new Error(`${node}: no ${at} in its user-data`);
  return found.content;
}

/** The resource a given id belongs to (ids are what inputs reference). */
export function byId(plan: Plan, id: unknown): PlannedResource {
  const found = plan.resources.filter((r) => r.id !== undefined && r.id === id);
  if (found.length !== 1)
    throw new Error(`expected one resource with id ${String(id)}, found ${found.length}`);
  return found[0];
}

/** Whether a command runs here (for tests that need a machine tool). */
export function commandWorks(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: "ignore" }).status === 0;
}

export const IS_ROOT = process.getuid?.() === 0;

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

/** A node's monitoring values as the program passes them to a renderer (stack "t", no Datadog). */
export function testMonitoring(node: NodeName, engine: DbEngine = "mariadb"): NodeMonitoring {
  return {
    logGroups: Object.fromEntries(
      logSources(node).map((s) => [s.key, logGroupName("t", node, s.key)]),
    ),
    cloudWatchAgentUrl: "https://agent.example.com/{arch}/amazon-cloudwatch-agent.deb",
    engine,
  };
}
