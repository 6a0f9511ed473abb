// Composition root: config → topology → network → firewalls → identities → stack outputs.
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./config";
import { buildTopology, mapNodes } from "./topology";
import { makeTagger } from "./tags";
import { logGroupName, parameterPath } from "./naming";
import { currentAccount } from "./account";
import { Network } from "./components/network";
import { Firewalls } from "./components/firewalls";
import { ParameterKey } from "./components/parameterKey";
import { NodeIdentity } from "./components/nodeIdentity";

export = async () => {
  // Every config problem is reported here, before any resource exists.
  const config = loadConfig();
  const stack = pulumi.getStack();
  const topology = buildTopology(config.vpcCidr);
  const tags = makeTagger(stack, config.tags);
  const account = currentAccount();

  const network = new Network("network", {
    topology,
    account,
    flowLogGroupName: logGroupName(stack, "vpc-flow-logs"),
    logRetentionDays: config.logRetentionDays,
    tags,
  });
  const firewalls = new Firewalls("firewalls", {
    vpcId: network.vpcId,
    nodes: topology.nodes,
    flows: topology.flows,
    tags,
  });
  const parameterKey = new ParameterKey("parameters", { stack, tags });
  const identities = mapNodes(
    (node) =>
      new NodeIdentity(`${node}-identity`, {
        node: topology.nodes[node],
        stack,
        account,
        parameterKeyArn: parameterKey.keyArn,
        tags,
      }),
  );

  return {
    region: account.region,
    vpcId: network.vpcId,
    vpcCidr: topology.vpcCidr,
    subnetIds: {
      public: network.subnetIds.public,
      privateA: network.subnetIds["private-a"],
      privateB: network.subnetIds["private-b"],
    },
    natPublicIp: network.natPublicIp,
    flowLogGroupName: network.flowLogGroupName,
    securityGroupIds: firewalls.groupIds,
    privateIps: mapNodes((node) => topology.nodes[node].privateIp),
    internalNames: mapNodes((node) => topology.nodes[node].internalName),
    instanceRoleArns: mapNodes((node) => identities[node].roleArn),
    instanceProfiles: mapNodes((node) => identities[node].instanceProfileName),
    parameterPaths: {
      ...mapNodes((node) => parameterPath(stack, node)),
      shared: parameterPath(stack, "shared"),
    },
    parameterKeyArn: parameterKey.keyArn,
  };
};
