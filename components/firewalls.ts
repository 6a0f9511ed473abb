// The firewalls: one security group per node, and the VPC endpoints' and the RDS
// instance's groups when the stack has them; every rule generated from the topology's flows.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import {
  ENDPOINTS,
  Flow,
  GroupName,
  NodeName,
  NodeSpec,
  RDS,
  groupsOf,
  isAppNodeName,
  mapNodes,
  nodesInWords,
  securityGroupRules,
} from "../model/topology";
import { TagRole, Tagger } from "../model/tags";

export interface FirewallsArgs {
  readonly vpcId: pulumi.Input<string>;
  /** The nodes that each get a group (role and description come from here). */
  readonly nodes: Readonly<Record<NodeName, NodeSpec>>;
  /** Every allowed flow; nothing else is opened. A flow to the endpoints gives them a group. */
  readonly flows: readonly Flow[];
  readonly tags: Tagger;
}

/** Any address outside the VPC; the stack is IPv4-only, so there is no ::/0 rule. */
const INTERNET_IPV4 = "0.0.0.0/0";

export class Firewalls extends pulumi.ComponentResource {
  /** Security group id per node. */
  readonly groupIds: Readonly<Record<NodeName, pulumi.Output<string>>>;
  /** The VPC endpoints' security group, when the flows reach them (`vpcEndpoints`). */
  readonly endpointsGroupId?: pulumi.Output<string>;
  /** The RDS instance's security group, when the flows reach it (`database` rds). */
  readonly rdsGroupId?: pulumi.Output<string>;

  constructor(name: string, args: FirewallsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:network:Firewalls", name, {}, opts);
    const child = { parent: this };
    const roleOf = (group: GroupName): TagRole =>
      group === ENDPOINTS ? "network" : group === RDS ? "database" : args.nodes[group].role;
    const nodes = Object.values(args.nodes).map((spec) => spec.name);
    const describe = (group: GroupName) =>
      group === ENDPOINTS
        ? "webstack endpoints: the VPC interface endpoints, reached on 443 from the nodes only"
        : group === RDS
          ? `webstack rds: the Amazon RDS for MariaDB instance, reached on 3306 from ${nodesInWords(nodes.filter(isAppNodeName))} only`
          : `webstack ${group}: ${args.nodes[group].description}`;

    // No `name` (autonaming allows create-before-delete) and no inline rules: rules are
    // standalone resources below, one per (group, direction, port, peer).
    const groups = new Map(
      groupsOf(args.flows).map((group) => [
        group,
        new aws.ec2.SecurityGroup(
          `${name}-${group}`,
          {
            vpcId: args.vpcId,
            description: describe(group),
            // Lets a group be deleted while the peer's rules still reference it.
            revokeRulesOnDelete: true,
            tags: args.tags(roleOf(group), `sg-${group}`),
          },
          child,
        ),
      ]),
    );
    // groupsOf gives every end of a flow but the internet its group.
    const groupId = (group: GroupName) => groups.get(group)!.id;

    for (const rule of securityGroupRules(args.flows)) {
      const peer =
        rule.peer === "internet"
          ? { cidrIpv4: INTERNET_IPV4 }
          : { referencedSecurityGroupId: groupId(rule.peer) };
      const ruleArgs = {
        securityGroupId: groupId(rule.group),
        ipProtocol: rule.protocol,
        fromPort: rule.port,
        toPort: rule.port,
        description: rule.description,
        tags: args.tags(roleOf(rule.group), `sg-${rule.key}`),
        ...peer,
      };
      if (rule.direction === "ingress") {
        new aws.vpc.SecurityGroupIngressRule(`${name}-${rule.key}`, ruleArgs, child);
      } else {
        new aws.vpc.SecurityGroupEgressRule(`${name}-${rule.key}`, ruleArgs, child);
      }
    }

    this.groupIds = mapNodes(nodes, groupId);
    this.endpointsGroupId = groups.get(ENDPOINTS)?.id;
    this.rdsGroupId = groups.get(RDS)?.id;
    this.registerOutputs({
      groupIds: this.groupIds,
      endpointsGroupId: this.endpointsGroupId,
      rdsGroupId: this.rdsGroupId,
    });
  }
}
