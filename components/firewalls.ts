// The seed's three firewalls: one security group per node, rules generated from the topology's flows.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { Flow, NodeName, NodeSpec, mapNodes, securityGroupRules } from "../model/topology";
import { Tagger } from "../model/tags";

export interface FirewallsArgs {
  readonly vpcId: pulumi.Input<string>;
  /** The nodes that each get a group (role and description come from here). */
  readonly nodes: Readonly<Record<NodeName, NodeSpec>>;
  /** Every allowed flow; nothing else is opened. */
  readonly flows: readonly Flow[];
  readonly tags: Tagger;
}

/** Any address outside the VPC; the stack is IPv4-only, so there is no ::/0 rule. */
const INTERNET_IPV4 = "0.0.0.0/0";

export class Firewalls extends pulumi.ComponentResource {
  /** Security group id per node. */
  readonly groupIds: Readonly<Record<NodeName, pulumi.Output<string>>>;

  constructor(name: string, args: FirewallsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:network:Firewalls", name, {}, opts);
    const child = { parent: this };

    // No `name` (autonaming allows create-before-delete) and no inline rules: rules are
    // standalone resources below, one per (group, direction, port, peer).
    const groups = mapNodes(
      (node) =>
        new aws.ec2.SecurityGroup(
          `${name}-${node}`,
          {
            vpcId: args.vpcId,
            description: `webstack ${node}: ${args.nodes[node].description}`,
            // Lets a group be deleted while the peer's rules still reference it.
            revokeRulesOnDelete: true,
            tags: args.tags(args.nodes[node].role, `sg-${node}`),
          },
          child,
        ),
    );

    for (const rule of securityGroupRules(args.flows)) {
      const peer =
        rule.peer === "internet"
          ? { cidrIpv4: INTERNET_IPV4 }
          : { referencedSecurityGroupId: groups[rule.peer].id };
      const ruleArgs = {
        securityGroupId: groups[rule.group].id,
        ipProtocol: rule.protocol,
        fromPort: rule.port,
        toPort: rule.port,
        description: rule.description,
        tags: args.tags(args.nodes[rule.group].role, `sg-${rule.key}`),
        ...peer,
      };
      if (rule.direction === "ingress") {
        new aws.vpc.SecurityGroupIngressRule(`${name}-${rule.key}`, ruleArgs, child);
      } else {
        new aws.vpc.SecurityGroupEgressRule(`${name}-${rule.key}`, ruleArgs, child);
      }
    }

    this.groupIds = mapNodes((node) => groups[node].id);
    this.registerOutputs({ groupIds: this.groupIds });
  }
}
