// The lab's firewalls: each node's security group, as an nftables ruleset generated from the same
// flow rows the program turns into security-group rules.
import { Flow, NodeName, Topology, flowsInto, flowsOutOf, intToIpv4, ipv4ToInt } from "../topology";

/**
 * Addresses security groups never filter (EC2 answers them on the instance's own link): instance
 * metadata, Amazon Time Sync, the Route 53 resolver.
 */
export function unfilteredAddresses(vpcCidr: string): string[] {
  const resolver = intToIpv4(ipv4ToInt(vpcCidr.split("/")[0]) + 2);
  return ["169.254.169.254", "169.254.169.123", "169.254.169.253", resolver];
}

/** A flow's far end as an nftables address: a node's fixed IP, or anything (0.0.0.0/0). */
function peerAddress(topology: Topology, peer: Flow["from"]): string | undefined {
  return peer === "internet" ? undefined : topology.nodes[peer].privateIp;
}

function accept(direction: "saddr" | "daddr", address: string | undefined, flow: Flow): string {
  const match = address ? `ip ${direction} ${address} ` : "";
  return `    ${match}${flow.protocol} dport ${flow.port} accept comment "${flow.why.replace(/"/g, "'")}"`;
}

/** The ruleset of one node: stateful like a security group, default drop both ways. */
export function renderNftables(topology: Topology, node: NodeName): string {
  const exempt = unfilteredAddresses(topology.vpcCidr).join(", ");
  return [
    `# webstack lab: ${node}'s security group, generated from topology.ts's flows.`,
    "table inet webstack",
    "delete table inet webstack",
    "table inet webstack {",
    "  chain input {",
    "    type filter hook input priority filter; policy drop;",
    '    iif "lo" accept',
    "    ct state established,related accept",
    `    ip saddr { ${exempt} } accept`,
    ...flowsInto(node, topology.flows).map((f) =>
      accept("saddr", peerAddress(topology, f.from), f),
    ),
    "  }",
    "  chain output {",
    "    type filter hook output priority filter; policy drop;",
    '    oif "lo" accept',
    "    ct state established,related accept",
    `    ip daddr { ${exempt} } accept`,
    ...flowsOutOf(node, topology.flows).map((f) => accept("daddr", peerAddress(topology, f.to), f)),
    "  }",
    "}",
    "",
  ].join("\n");
}
