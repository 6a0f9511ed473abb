// What every webstack instance shares: the image, IMDSv2, an encrypted root, detailed metrics,
// user-data, and the monitoring part of that user-data.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { architectureOf, debian13AmiId } from "../ami";
import { DbEngine } from "../config";
import { CloudConfigPart } from "../cloud-init/cloudConfig";
import { MonitoredNode, renderMonitoringPart } from "../cloud-init/monitoring";
import { renderDatadogPart } from "../cloud-init/datadog";
import { EncodedUserData } from "../cloud-init/userDataEncoding";

export interface InstanceDefaultsArgs {
  readonly instanceType: string;
  /** Pinned AMI; otherwise the current Debian 13 AMI. */
  readonly ami?: string;
  readonly rootVolumeGiB: number;
  readonly rootTags: Record<string, string>;
  /** The rendered document, encoded (plain or gzipped). */
  readonly userData: pulumi.Output<EncodedUserData>;
}

/** The instance arguments whose values are security or operations decisions, made once. */
export function instanceDefaults(
  args: InstanceDefaultsArgs,
  parent: pulumi.Resource,
): Partial<aws.ec2.InstanceArgs> {
  return {
    ami: debian13AmiId(args.instanceType, args.ami, { parent }),
    instanceType: args.instanceType,
    metadataOptions: {
      httpEndpoint: "enabled",
      httpTokens: "required", // IMDSv2 — EC2.8
      httpPutResponseHopLimit: 1,
      instanceMetadataTags: "disabled",
    },
    rootBlockDevice: {
      volumeType: "gp3",
      volumeSize: args.rootVolumeGiB,
      encrypted: true, // EC2.3
      deleteOnTermination: true,
      tags: args.rootTags,
    },
    monitoring: true, // detailed (1-minute) CloudWatch metrics
    userData: args.userData.apply((u) => ("userData" in u ? u.userData : undefined)),
    userDataBase64: args.userData.apply((u) =>
      "userDataBase64" in u ? u.userDataBase64 : undefined,
    ),
  };
}

/** What a node needs to know to ship its metrics and logs. */
export interface NodeMonitoringArgs {
  /** Log group name per log source key (from NodeLogGroups). */
  readonly logGroups: Readonly<Record<string, string>>;
  /** The agent package URL; `{arch}` is resolved from the instance type. */
  readonly cloudWatchAgentUrl: string;
  readonly engine: DbEngine;
  /** The Datadog agent, when enabled. */
  readonly datadog?: {
    readonly stack: string;
    readonly site: string;
    readonly repoUrl: string;
    readonly apiKeyParameter: string;
    /** The database monitoring user's password parameter (app nodes). */
    readonly monitorPasswordParameter?: string;
  };
}

/** The monitoring parts of a node's user-data: CloudWatch always, Datadog when enabled. */
export function monitoringParts(
  node: MonitoredNode,
  instanceType: string,
  m: NodeMonitoringArgs,
): CloudConfigPart[] {
  const role = node === "lb" ? "loadbalancer" : node === "s2" ? "primary" : "replica";
  const cloudWatch = renderMonitoringPart({
    node,
    role,
    engine: m.engine,
    logGroups: m.logGroups,
    agentPackageUrl: m.cloudWatchAgentUrl.replace("{arch}", architectureOf(instanceType)),
  });
  if (!m.datadog) return [cloudWatch];
  return [cloudWatch, renderDatadogPart({ node, role, engine: m.engine, ...m.datadog })];
}
