// Every log group the nodes ship to (retention, stable names), and what is counted from the logs.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { METRIC_NAMESPACE, logGroupName } from "../model/naming";
import { DatabaseMode, NodeName, NodeSpec, isAppNodeName } from "../model/topology";
import { Tagger } from "../model/tags";
import { logSources } from "../cloud-init/logSources";
import { metricFilters } from "./metrics";

export interface NodeLogGroupsArgs {
  readonly stack: string;
  /** Every node (the topology's): each gets its log groups, each app node its metric filters. */
  readonly nodes: Readonly<Record<NodeName, NodeSpec>>;
  /** Retention of every group, in days. */
  readonly retentionDays: number;
  /** How the data is held: with `rds` the app nodes write no database logs. */
  readonly database: DatabaseMode;
  readonly tags: Tagger;
}

/** A node's log group per log source key: the groups NodeLogGroups creates, its role writes to. */
export function nodeLogGroupNames(
  stack: string,
  node: NodeSpec,
  database: DatabaseMode,
): Record<string, string> {
  return Object.fromEntries(
    logSources(node.role, database).map((source) => [
      source.key,
      logGroupName(stack, node.name, source.key),
    ]),
  );
}

export class NodeLogGroups extends pulumi.ComponentResource {
  /** Log group name per node and log source key (plain strings: the agents' config uses them). */
  readonly names: Readonly<Record<NodeName, Record<string, string>>>;

  constructor(name: string, args: NodeLogGroupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:monitoring:NodeLogGroups", name, {}, opts);
    const names = {} as Record<NodeName, Record<string, string>>;
    const groups = new Map<string, aws.cloudwatch.LogGroup>();
    const nodes = Object.values(args.nodes).map((spec) => spec.name);
    for (const node of nodes) {
      names[node] = {};
      for (const source of logSources(args.nodes[node].role, args.database)) {
        const groupName = nodeLogGroupNames(args.stack, args.nodes[node], args.database)[
          source.key
        ];
        const group = new aws.cloudwatch.LogGroup(
          `${name}-${node}-${source.key}`,
          {
            name: groupName,
            retentionInDays: args.retentionDays,
            tags: args.tags(args.nodes[node].role, `${node}-log-${source.key}`),
          },
          { parent: this },
        );
        names[node][source.key] = groupName;
        groups.set(`${node}/${source.key}`, group);
      }
    }
    // QPS, errors and latency come from the JSON access logs (see README, "Monitoring").
    for (const filter of metricFilters(nodes.filter(isAppNodeName))) {
      new aws.cloudwatch.LogMetricFilter(
        `${name}-${filter.key}`,
        {
          logGroupName: groups.get(`${filter.node}/${filter.log}`)!.name,
          pattern: filter.pattern,
          metricTransformation: {
            namespace: METRIC_NAMESPACE,
            name: filter.metric,
            value: filter.value,
            unit: filter.unit,
            dimensions: { Node: "$.node" },
          },
        },
        { parent: this },
      );
    }
    this.names = names;
    this.registerOutputs({ names });
  }
}
