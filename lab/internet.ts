// The lab's "internet": resolver, Debian mirror, SSM, S3 and metadata stand-ins, Pebble as the ACME CA.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { LB_NODE, NodeName } from "../model/topology";
import { LAB_DIR, LabError, log, PYTHON, run, waitFor } from "./commands";
import {
  ACME_HOST,
  INTERNET_NS,
  LAB_REGION,
  LabNetwork,
  LabNode,
  S3Object,
  cloudWatchEndpoint,
  s3Endpoint,
} from "./labPlan";
import { ACME_ROOT, LabState, STATE_DIR, startProcess } from "./labState";
import { listening, runIn } from "./namespaces";
import { execInNode } from "./nodes";
import { labCertificates } from "./realOutputs";
import { servedCertificate } from "./runningStack";
import { INSTANCE_METADATA_ADDRESS } from "../model/aws";
import { DEBIAN_ARCHIVE_HOSTS, debianSources } from "../model/aptSources";

/**
 * A Debian mirror (cached) of the archives and suites the nodes' own APT sources name, holding the
 * packages their user-data installs; its directory.
 */
export function buildMirror(base: string, nodes: LabNode[]): string {
  const packages = [...new Set(nodes.flatMap((n) => n.packages))].sort();
  const sources = path.join(STATE_DIR, "debian.sources");
  fs.writeFileSync(sources, debianSources());
  return run(PYTHON, [path.join(LAB_DIR, "mirror.py"), base, sources, ...packages]).trim();
}

/** What the program publishes for the nodes: SSM parameters and S3 objects ("bucket/key"). */
export interface Published {
  readonly parameters: Record<string, { Type: string; Value: string }>;
  readonly objects: Record<string, S3Object>;
}

const INTERNET_DIR = path.join(STATE_DIR, "internet");

/** Writes a file of the internet's state (0600 unless told), atomically: a stand-in may read it. */
function writeState(name: string, content: string, mode = 0o600): string {
  const file = path.join(INTERNET_DIR, name);
  fs.writeFileSync(`${file}.new`, content, { mode });
  fs.renameSync(`${file}.new`, file);
  return file;
}

/** The AWS stand-ins, each a process of lab/standins/aws.py, recorded under its name. */
export const AWS_STAND_INS = ["ssm", "s3", "cloudwatch"] as const;

/** The SSM, S3 and CloudWatch stand-ins' state: what they serve, and to which role. */
function standInStates(network: LabNetwork, nodes: LabNode[], published: Published) {
  return {
    ssm: {
      listen: network.ssm,
      cert: path.join(INTERNET_DIR, "aws.crt"),
      key: path.join(INTERNET_DIR, "aws.key"),
      principals: Object.fromEntries(nodes.map((n) => [accessKeyId(n.name), n.ssmScopes])),
      parameters: published.parameters,
    },
    s3: {
      listen: network.s3,
      cert: path.join(INTERNET_DIR, "aws.crt"),
      key: path.join(INTERNET_DIR, "aws.key"),
      suffix: s3Endpoint(LAB_REGION),
      principals: Object.fromEntries(nodes.map((n) => [accessKeyId(n.name), n.s3Scopes])),
      objects: published.objects,
    },
    cloudwatch: {
      listen: network.cloudwatch,
      cert: path.join(INTERNET_DIR, "aws.crt"),
      key: path.join(INTERNET_DIR, "aws.key"),
      principals: Object.fromEntries(nodes.map((n) => [accessKeyId(n.name), n.metricNamespaces])),
    },
  };
}

/**
 * The objects with each file copied into the internet's state, named by its sha256: the stand-in
 * serves it for as long as the lab runs, wherever the plan wrote it.
 */
function keptFiles(published: Published): Published {
  const dir = path.join(INTERNET_DIR, "objects");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const objects = Object.fromEntries(
    Object.entries(published.objects).map(([name, object]) => {
      if (typeof object === "string") return [name, object];
      const data = fs.readFileSync(object.file);
      const kept = path.join(dir, crypto.createHash("sha256").update(data).digest("hex"));
      if (!fs.existsSync(kept)) fs.writeFileSync(kept, data, { mode: 0o600 });
      return [name, { file: kept }];
    }),
  );
  return { ...published, objects };
}

/**
 * Hands a new plan's parameters and objects to the running stand-ins (`lab apply`): they take
 * them in on their next request, keeping what the nodes wrote themselves.
 */
export function publish(network: LabNetwork, nodes: LabNode[], published: Published): void {
  const states = standInStates(network, nodes, keptFiles(published));
  for (const standIn of AWS_STAND_INS)
    writeState(`${standIn}.json`, JSON.stringify(states[standIn]));
}

/** Starts the resolver, the mirror, the SSM, S3 and CloudWatch stand-ins and Pebble; returns the lab CA's file. */
export async function startInternet(
  state: LabState,
  network: LabNetwork,
  mirror: string,
  nodes: LabNode[],
  published: Published,
): Promise<string> {
  const dir = INTERNET_DIR;
  fs.mkdirSync(dir, { recursive: true });
  const endpoint = s3Endpoint(LAB_REGION);
  const tls = labCertificates({
    // One pair for the AWS endpoints: SSM, S3 and its virtual-hosted buckets, CloudWatch.
    aws: [
      `ssm.${LAB_REGION}.amazonaws.com`,
      endpoint,
      `*.${endpoint}`,
      cloudWatchEndpoint(LAB_REGION),
    ],
    pebble: [ACME_HOST],
    // Debian's archives, at the hosts the nodes' APT sources name.
    mirror: DEBIAN_ARCHIVE_HOSTS,
  });
  const write = (name: string, content: string, mode = 0o600) => writeState(name, content, mode);
  const caFile = write("lab-ca.crt", tls.ca.certPem, 0o644);
  write("aws.crt", tls.servers.aws.certPem, 0o644);
  write("aws.key", tls.servers.aws.keyPem);
  const buckets = [...new Set(Object.keys(published.objects).map((o) => o.split("/")[0]))];
  const hosts = [
    ...Object.entries(network.hosts).map(([name, ip]) => `${ip} ${name}`),
    ...buckets.map((bucket) => `${network.s3} ${bucket}.${endpoint}`),
  ];
  write("hosts", `${hosts.join("\n")}\n`, 0o644);
  startProcess(state, "dns", INTERNET_NS, [
    "dnsmasq",
    "--keep-in-foreground",
    "--log-facility=-",
    "--log-queries",
    "--no-resolv",
    "--no-hosts",
    "--pid-file=",
    "--bind-interfaces",
    `--listen-address=${network.resolver}`,
    `--addn-hosts=${path.join(dir, "hosts")}`,
  ]);
  startProcess(state, "mirror", INTERNET_NS, [
    PYTHON,
    path.join(LAB_DIR, "standins", "archive.py"),
    mirror,
    network.mirror,
    write("mirror.crt", tls.servers.mirror.certPem, 0o644),
    write("mirror.key", tls.servers.mirror.keyPem),
  ]);
  publish(network, nodes, published);
  for (const service of AWS_STAND_INS) {
    startProcess(state, service, INTERNET_NS, [
      PYTHON,
      path.join(LAB_DIR, "standins", "aws.py"),
      service,
      path.join(dir, `${service}.json`),
    ]);
  }
  const pebbleConfig = write(
    "pebble.json",
    JSON.stringify({
      pebble: {
        listenAddress: `${network.pebble}:443`,
        managementListenAddress: `${network.pebble}:15000`,
        certificate: write("pebble.crt", tls.servers.pebble.certPem, 0o644),
        privateKey: write("pebble.key", tls.servers.pebble.keyPem),
        httpPort: 80,
        tlsPort: 443,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );
  startProcess(
    state,
    "pebble",
    INTERNET_NS,
    ["pebble", "-dnsserver", `${network.resolver}:53`, "-config", pebbleConfig],
    { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" },
  );
  const ports: [string, number, string][] = [
    [network.mirror, 443, "the Debian mirror (HTTPS)"],
    [network.mirror, 80, "the Debian mirror (HTTP)"],
    [network.ssm, 443, "the SSM stand-in"],
    [network.s3, 443, "the S3 stand-in"],
    [network.cloudwatch, 443, "the CloudWatch stand-in"],
    [network.pebble, 443, "Pebble"],
  ];
  for (const [address, port, what] of ports) {
    await waitFor(what, 20, () => listening(INTERNET_NS, address, port));
  }
  return caFile;
}

/** The access key id of a node's role credentials: the stand-ins know the node by it. */
export const accessKeyId = (node: NodeName) => `ASIALAB${node.toUpperCase()}ROLE`;

/** Instance metadata for every node, on the nodes' side of the lab's "hypervisor" link. */
export async function startMetadata(
  state: LabState,
  network: LabNetwork,
  nodes: LabNode[],
): Promise<void> {
  const file = path.join(STATE_DIR, "internet", "imds.json");
  const instances = nodes.map((n) => [
    network.nodes[n.name],
    { instanceId: n.instanceId, role: n.role, accessKeyId: accessKeyId(n.name) },
  ]);
  fs.writeFileSync(
    file,
    JSON.stringify({ region: LAB_REGION, instances: Object.fromEntries(instances) }),
  );
  startProcess(state, "imds", INTERNET_NS, [
    PYTHON,
    path.join(LAB_DIR, "standins", "aws.py"),
    "imds",
    file,
  ]);
  await waitFor("the metadata stand-in", 20, () =>
    listening(INTERNET_NS, INSTANCE_METADATA_ADDRESS, 80),
  );
}

/** The LB's certificate from Pebble (its timer retries issuance until the ACME server answers). */
export async function waitForCertificate(state: LabState): Promise<void> {
  log("lb: waiting for its Let's Encrypt certificate from Pebble");
  try {
    await waitFor("the LB's certificate from Pebble", 180, () =>
      servedCertificate().includes("Pebble"),
    );
  } catch (err) {
    const journal = execInNode(
      LB_NODE,
      ["journalctl", "-u", "webstack-certificate*", "--no-pager", "-n", "40"],
      undefined,
      state,
    ).stdout;
    throw new LabError(`${(err as Error).message}\n${journal}`);
  }
  // Pebble makes a new root at every start: the client trusts this one.
  const root = runIn(INTERNET_NS, "curl", [
    "-sSf",
    "--cacert",
    path.join(STATE_DIR, "internet", "lab-ca.crt"),
    `https://${ACME_HOST}:15000/roots/0`,
  ]);
  fs.writeFileSync(ACME_ROOT, root);
}
