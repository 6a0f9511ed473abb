// Plain inputs the renderer tests share, on the default address plan: CA, backends, node configs.
import YAML from "yaml";
import {
  AppNodeParameterNames,
  AppNodeParams,
  AppReleaseParams,
  renderAppNodeBootstrap,
  renderAppNodeBundle,
} from "../cloud-init/appNode";
import { BundlePayload } from "../cloud-init/bundle";
import { galeraMember } from "../cloud-init/database";
import { HaproxyBackend } from "../cloud-init/haproxy";
import { renderCloudWatchAgentConfig } from "../cloud-init/monitoring";
import { DbEngine } from "../model/config";
import { gunicornWorkers, requestTimeouts } from "../model/limits";
import { APP_NODE_PARAMETERS, parameterName } from "../model/naming";
import { DatabaseMode, DbRole, LB_NODE, NodeName, hasArbitrator } from "../model/topology";
import { CloudConfigDocument, TEST_SSM_AGENT_URL, TOPOLOGY, testMonitoring } from "./harness";

export const TEST_CA_PEM = "-----BEGIN CERTIFICATE-----\nTEST-CA\n-----END CERTIFICATE-----\n";

/** s1 and s2 as the LB's HAProxy backends. */
export const BACKENDS: readonly HaproxyBackend[] = [TOPOLOGY.nodes.s1, TOPOLOGY.nodes.s2].map(
  (n) => ({ name: n.name, address: n.privateIp, fqdn: n.internalName }),
);

/** A release id (64 hex digits) the fixtures' app nodes run. */
export const TEST_RELEASE_ID = "ab".repeat(32);

/** The app release the fixtures' app nodes run: the default module, no variables, no command. */
export const TEST_RELEASE: AppReleaseParams = {
  id: TEST_RELEASE_ID,
  bucket: "webstack-t-files",
  key: `releases/${TEST_RELEASE_ID}.tar.gz`,
  module: "app:application",
  env: {},
  secrets: [],
};

/**
 * What the program passes to the app node renderer for a node of this role (stack "t"); with
 * `galera`, the node's view of its cluster as the program makes it; with `rds`, the instance.
 */
export function appNodeParams(
  engine: DbEngine,
  role: DbRole,
  cluster: DatabaseMode = "replication",
): AppNodeParams {
  const node = role === "primary" ? TOPOLOGY.nodes.s2 : TOPOLOGY.nodes.s1;
  return {
    stack: "t",
    node,
    primaryIp: TOPOLOGY.nodes.s2.privateIp,
    primaryServerId: TOPOLOGY.nodes.s2.dbServerId,
    replicaIp: TOPOLOGY.nodes.s1.privateIp,
    appNodeIps: [TOPOLOGY.nodes.s1.privateIp, TOPOLOGY.nodes.s2.privateIp],
    engine,
    cluster,
    ...(cluster === "galera" ? { galera: galeraMember("t", TOPOLOGY, node.name) } : {}),
    ...(cluster === "rds" ? { rds: TEST_RDS } : {}),
    limits: { timeouts: requestTimeouts(60), maxBodyMiB: 10 },
    // A t3.small's 2 vCPUs.
    workers: gunicornWorkers(2),
    caCertPem: TEST_CA_PEM,
    parameters: Object.fromEntries(
      APP_NODE_PARAMETERS.map((key) => [key, parameterName("t", node.name, key)]),
    ) as AppNodeParameterNames,
    architecture: "amd64",
    monitoring: testMonitoring(node.name, engine),
    ssmAgentUrl: TEST_SSM_AGENT_URL,
    release: TEST_RELEASE,
  };
}

/** The RDS instance the fixtures' app nodes use with `database: rds`. */
export const TEST_RDS = {
  address: "webstack-t.cabcdefghijk.eu-west-1.rds.amazonaws.com",
  port: 3306,
  adminSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0123-AbC123",
} as const;

/** The data volume the fixtures' app nodes boot with. */
export const TEST_VOLUME_ID = "vol-0123456789abcdef0";

/** A bundle's entry for one path; fails the test when it is missing. */
export function bundleEntryOf(bundle: BundlePayload, path: string) {
  const found = bundle.files.find((f) => f.path === path);
  if (!found) throw new Error(`no ${path} in ${bundle.node}'s bundle`);
  return found;
}

/**
 * An app node's two documents: its bootstrap as text and parsed, and its bundle, with the
 * bundle's files by path.
 */
export function renderedAppNode(
  engine: DbEngine,
  role: DbRole,
  cluster: DatabaseMode = "replication",
) {
  const params = appNodeParams(engine, role, cluster);
  const text = renderAppNodeBootstrap({
    stack: params.stack,
    node: params.node,
    engine,
    cluster: params.cluster,
    ...(cluster === "rds" ? {} : { dataVolumeId: TEST_VOLUME_ID }),
  });
  const doc = YAML.parse(text) as CloudConfigDocument;
  const bundle = renderAppNodeBundle(params);
  const file = (path: string) => bundleEntryOf(bundle, path).content;
  return { text, doc, bundle, file };
}

/** A node's CloudWatch agent config, with testMonitoring's log groups. */
export function cloudWatchAgentConfig(
  node: NodeName,
  engine: DbEngine = "mariadb",
  cluster: DatabaseMode = "replication",
) {
  return renderCloudWatchAgentConfig({
    node,
    role: TOPOLOGY.nodes[node].role,
    engine,
    cluster,
    // The default stack's LB runs the arbitrator with galera (two members).
    arbitrator: node === LB_NODE && hasArbitrator(cluster, TOPOLOGY.appNodes.length),
    logGroups: testMonitoring(node, engine).logGroups,
    agentPackageUrl: "https://agent.example.com/amazon-cloudwatch-agent.deb",
  });
}
