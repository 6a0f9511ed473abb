// The lab's firewalls: each node's security group, as an nftables ruleset generated from the
// security-group rules the program creates (by default, the ones it derives from the flows).
import {
  ENDPOINTS,
  NodeName,
  Peer,
  RDS,
  SecurityGroupRule,
  Topology,
  securityGroupRules,
} from "../model/topology";
import {
  INSTANCE_METADATA_ADDRESS,
  LINK_LOCAL_RESOLVER_ADDRESS,
  TIME_SYNC_ADDRESS,
  vpcResolver,
} from "../model/aws";
import { LAB_HAS_NO_RDS } from "./labPlan";

/**
 * Addresses security groups never filter (EC2 answers them on the instance's own link): instance
 * metadata, Amazon Time Sync, the Route 53 resolver.
 */
export function unfilteredAddresses(vpcCidr: string): string[] {
  const resolver = vpcResolver(vpcCidr);
  return [INSTANCE_METADATA_ADDRESS, TIME_SYNC_ADDRESS, LINK_LOCAL_RESOLVER_ADDRESS, resolver];
}

/** A rule's far end as an nftables address: a node's fixed IP, or anything (0.0.0.0/0). */
function peerAddress(topology: Topology, peer: Peer): string | undefined {
  if (peer === "internet") return undefined;
  // The endpoints' addresses are EC2's to pick, and the lab has no stand-in for them.
  if (peer === ENDPOINTS)
    throw new Error("lab: the VPC endpoints (vpcEndpoints) have no lab equivalent");
  if (peer === RDS) throw new Error(`lab: ${LAB_HAS_NO_RDS}`);
  return topology.nodes[peer].privateIp;
}

function accept(topology: Topology, rule: SecurityGroupRule): string {
  const address = peerAddress(topology, rule.peer);
  const direction = rule.direction === "ingress" ? "saddr" : "daddr";
  const match = address ? `ip ${direction} ${address} ` : "";
  return `    ${match}${rule.protocol} dport ${rule.port} accept comment "${rule.description.replace(/"/g, "'")}"`;
}

/** The ruleset of one node: stateful like a security group, default drop both ways. */
export function renderNftables(
  topology: Topology,
  node: NodeName,
  rules: readonly SecurityGroupRule[] = securityGroupRules(topology.flows),
): string {
  const exempt = unfilteredAddresses(topology.vpcCidr).join(", ");
  const own = (direction: SecurityGroupRule["direction"]) =>
    rules
      .filter((r) => r.group === node && r.direction === direction)
      .map((r) => accept(topology, r));
  return [
    `# webstack lab: ${node}'s security group, generated from the program's security-group rules.`,
    "table inet webstack",
    "delete table inet webstack",
    "table inet webstack {",
    "  chain input {",
    "    type filter hook input priority filter; policy drop;",
    '    iif "lo" accept',
    "    ct state established,related accept",
    `    ip saddr { ${exempt} } accept`,
    ...own("ingress"),
    "  }",
    "  chain output {",
    "    type filter hook output priority filter; policy drop;",
    '    oif "lo" accept',
    "    ct state established,related accept",
    `    ip daddr { ${exempt} } accept`,
    ...own("egress"),
    "  }",
    "}",
    "",
  ].join("\n");
}
