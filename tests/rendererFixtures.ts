// Plain inputs the renderer tests share, on the default address plan: CA, backends, node configs.
import YAML from "yaml";
import { AppNodeParameterNames, AppNodeParams, renderAppNodeUserData } from "../cloud-init/appNode";
import { HaproxyBackend } from "../cloud-init/haproxy";
import { renderCloudWatchAgentConfig } from "../cloud-init/monitoring";
import { DbEngine } from "../model/config";
import { requestTimeouts } from "../model/limits";
import { APP_NODE_PARAMETERS, parameterName } from "../model/naming";
import { DbRole, NodeName } from "../model/topology";
import { CloudConfigDocument, TOPOLOGY, testMonitoring, writtenFile } from "./harness";

export const TEST_CA_PEM = "-----BEGIN CERTIFICATE-----\nTEST-CA\n-----END CERTIFICATE-----\n";

/** s1 and s2 as the LB's HAProxy backends. */
export const BACKENDS: readonly HaproxyBackend[] = [TOPOLOGY.nodes.s1, TOPOLOGY.nodes.s2].map(
  (n) => ({ name: n.name, address: n.privateIp, fqdn: n.internalName }),
);

/** What the program passes to the app node renderer for a node of this role (stack "t"). */
export function appNodeParams(engine: DbEngine, role: DbRole): AppNodeParams {
  const node = role === "primary" ? TOPOLOGY.nodes.s2 : TOPOLOGY.nodes.s1;
  return {
    node,
    primaryIp: TOPOLOGY.nodes.s2.privateIp,
    replicaIp: TOPOLOGY.nodes.s1.privateIp,
    appNodeIps: [TOPOLOGY.nodes.s1.privateIp, TOPOLOGY.nodes.s2.privateIp],
    engine,
    limits: { timeouts: requestTimeouts(60), maxBodyMiB: 10 },
    caCertPem: TEST_CA_PEM,
    dataVolumeId: "vol-0123456789abcdef0",
    parameters: Object.fromEntries(
      APP_NODE_PARAMETERS.map((key) => [key, parameterName("t", node.name, key)]),
    ) as AppNodeParameterNames,
    architecture: "amd64",
    monitoring: testMonitoring(node.name, engine),
  };
}

/** An app node's user-data as text and parsed, with its written files by path. */
export function renderedAppNode(engine: DbEngine, role: DbRole) {
  const text = renderAppNodeUserData(appNodeParams(engine, role));
  const doc = YAML.parse(text) as CloudConfigDocument;
  const file = (path: string) => writtenFile(doc, path).content;
  return { text, doc, file };
}

/** A node's CloudWatch agent config, with testMonitoring's log groups. */
export function cloudWatchAgentConfig(node: NodeName, engine: DbEngine = "mariadb") {
  return renderCloudWatchAgentConfig({
    node,
    role: TOPOLOGY.nodes[node].role,
    engine,
    logGroups: testMonitoring(node, engine).logGroups,
    agentPackageUrl: "https://agent.example.com/amazon-cloudwatch-agent.deb",
  });
}
